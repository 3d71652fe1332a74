#!/usr/bin/env bash
# Fast development loop: an incremental native build in build/dev, linked into
# python/lamina so that `PYTHONPATH=python python ...` uses it without reinstalling.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f build/dev/build.ninja ]]; then
  cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPython_EXECUTABLE="$(command -v python3)" ${LAMINA_CMAKE_ARGS:-} > /dev/null
fi
cmake --build build/dev -j "${JOBS:-2}"
ln -sf "$PWD"/build/dev/_core*.so python/lamina/
