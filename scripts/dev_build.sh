#!/usr/bin/env bash
# Fast development loop: an incremental native build in $BUILD_DIR (default build/dev),
# linked into python/lamina so that `PYTHONPATH=python python ...` uses it without
# reinstalling. Extra configure flags come from LAMINA_CMAKE_ARGS (e.g. -DLAMINA_CUDA=EMULATE);
# LINK=0 builds without replacing python/lamina's module.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build/dev}
if [[ ! -f $build/build.ninja ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPython_EXECUTABLE="$(command -v python3)" ${LAMINA_CMAKE_ARGS:-} > /dev/null
fi
cmake --build "$build" -j "${JOBS:-2}"
if [[ ${LINK:-1} == 1 ]]; then
  ln -sf "$PWD/$build"/_core*.so python/lamina/
fi
