#!/usr/bin/env bash
# Builds Lamina with the CUDA backend on the SIMT emulator (LAMINA_CUDA=EMULATE, in
# build/emulate) and runs the device tests (tests/test_cuda_emulated*.py) against it: every
# op on device='cuda', compared with the CPU. The emulated module lives in its own package
# tree (build/emulate/pkg), so python/lamina keeps whichever build it links.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/emulate
for tool in cmake ninja; do
  command -v $tool > /dev/null || { echo "test_cuda_emulated: $tool not found; cannot build the emulated backend" >&2; exit 1; }
done
# The build needs nanobind importable (pip's isolated build normally provides it).
python3 -c "import nanobind" 2> /dev/null || python3 -m pip install -q "nanobind>=2.4"
BUILD_DIR=$build LINK=0 LAMINA_CMAKE_ARGS="-DLAMINA_CUDA=EMULATE ${LAMINA_CMAKE_ARGS:-}" scripts/dev_build.sh
pkg=$build/pkg/lamina
rm -rf "$build/pkg"
mkdir -p "$pkg"
for entry in python/lamina/*; do
  case $(basename "$entry") in _core*.so) continue ;; esac
  ln -s "$PWD/$entry" "$pkg/"
done
ln -s "$PWD"/$build/_core*.so "$pkg/"
PYTHONPATH="$PWD/$build/pkg" LAMINA_EXPECT_CUDA=1 python3 -m pytest -q tests/test_cuda_emulated*.py "$@"
