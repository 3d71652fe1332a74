#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer run of the core and op tests.
#
#   scripts/sanitize.sh                 # build build/asan, run the core/op tests under ASan+UBSan
#   scripts/sanitize.sh tests/test_x.py # run other tests (any pytest arguments) instead
#
# What it does:
#   * configures build/asan with -DLAMINA_SANITIZE=ON (-fsanitize=address,undefined,
#     -fno-sanitize-recover=undefined, frame pointers) and builds the extension there
#     (JOBS=N limits the parallel compile jobs; default 2);
#   * assembles build/asan/pkg/lamina: the Python sources plus the sanitized _core module,
#     so the normal development build in build/dev is left alone;
#   * runs pytest with the ASan runtime preloaded (LD_PRELOAD: the interpreter itself is
#     not instrumented, and ASan must be the first library loaded) and
#       ASAN_OPTIONS: detect_leaks=0 (CPython keeps interned objects and arenas alive at
#         exit; those are not Lamina's leaks), halt_on_error=1 and abort_on_error=1 (the
#         first report stops the run, so a report can never scroll past unnoticed),
#         allocator_may_return_null=1 (a huge allocation returns NULL so the MemoryError
#         path is what gets tested, instead of ASan's own allocation-size report);
#       UBSAN_OPTIONS: halt_on_error=1, print_stacktrace=1.
#   A sanitizer report therefore fails the run (non-zero exit). Zero reports is the bar.
#
# The default test set is the native core and the ops (tensor, autograd, elementwise,
# reductions, joins, einsum, conv, pooling, recurrent, attention, and both op fuzzers);
# the Keras-level tests (layers, models, training on datasets) add minutes under ASan
# and exercise the same kernels, so they are left to the normal run.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build/asan
PY=$(command -v python3)
if [[ ! -f $BUILD/build.ninja ]]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAMINA_SANITIZE=ON \
    -DPython_EXECUTABLE="$PY" ${LAMINA_CMAKE_ARGS:-} > /dev/null
fi
cmake --build "$BUILD" -j "${JOBS:-2}"

PKG=$BUILD/pkg
rm -rf "$PKG"
mkdir -p "$PKG"
cp -r python/lamina "$PKG/lamina"
rm -f "$PKG"/lamina/_core*.so
cp "$BUILD"/_core*.so "$PKG/lamina/"

CXX_BIN=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
ASAN_RT=$("${CXX_BIN:-c++}" -print-file-name=libasan.so)
if [[ ! -e $ASAN_RT ]]; then
  echo "sanitize.sh: cannot find the ASan runtime ($ASAN_RT)" >&2
  exit 1
fi

if [[ $# -eq 0 ]]; then
  set -- tests/test_tensor.py tests/test_autograd.py tests/test_elementwise.py tests/test_reduce.py \
    tests/test_join.py tests/test_einsum.py tests/test_conv.py tests/test_pool.py tests/test_recurrent.py \
    tests/test_attention.py tests/test_fuzz_ops.py tests/test_fuzz.py
fi

export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
# libstdc++ is preloaded too: ASan's __cxa_throw interceptor must find the real one at
# start-up, before the interpreter loads any C++ extension.
STDCXX=$("${CXX_BIN:-c++}" -print-file-name=libstdc++.so)
# --capture=sys: pytest captures Python-level output only, so a sanitizer report (written to
# file descriptor 2) reaches the log even when it stops the process in the middle of a test.
LD_PRELOAD="$ASAN_RT $STDCXX" PYTHONPATH="$PKG" "$PY" -m pytest -q --capture=sys -p no:cacheprovider "$@"
echo "sanitize.sh: no AddressSanitizer or UndefinedBehaviorSanitizer reports"
