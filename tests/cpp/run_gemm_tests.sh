#!/usr/bin/env bash
# Builds and runs the standalone GEMM test: once optimized (full set), once with
# AddressSanitizer + UndefinedBehaviorSanitizer (smaller set); then the thread pool's test
# (test_parallel.cpp), optimized and under ThreadSanitizer. Run from anywhere.
#   tests/cpp/run_gemm_tests.sh [--no-sanitize]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${GEMM_TEST_BUILD_DIR:-$root/build/tests_cpp}"
mkdir -p "$out"
cxx="${CXX:-g++}"
srcs=("$root/tests/cpp/test_gemm.cpp" "$root/cpp/core/parallel.cpp" "$root/cpp/core/scratch.cpp"
      "$root/cpp/core/host_cache.cpp" "$root"/cpp/cpu/gemm*.cpp)
flags=(-std=c++20 -I"$root/cpp" -Wall -Wextra -Wno-unused-parameter -pthread)

echo "== build (-O2)"
"$cxx" -O2 "${flags[@]}" "${srcs[@]}" -o "$out/test_gemm"
echo "== run (full set)"
"$out/test_gemm"

if [[ "${1:-}" != "--no-sanitize" ]]; then
  echo "== build (-O1, address + undefined sanitizers)"
  "$cxx" -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
    "${flags[@]}" "${srcs[@]}" -o "$out/test_gemm_asan"
  echo "== run (quick set, sanitized)"
  "$out/test_gemm_asan" --quick
fi

parallel_srcs=("$root/tests/cpp/test_parallel.cpp" "$root/cpp/core/parallel.cpp")
echo "== thread pool: build and run (-O2)"
"$cxx" -O2 "${flags[@]}" "${parallel_srcs[@]}" -o "$out/test_parallel"
"$out/test_parallel"
if [[ "${1:-}" != "--no-sanitize" ]]; then
  echo "== thread pool: build and run (-O1, thread sanitizer)"
  "$cxx" -O1 -g -fsanitize=thread "${flags[@]}" "${parallel_srcs[@]}" -o "$out/test_parallel_tsan"
  "$out/test_parallel_tsan"
fi
