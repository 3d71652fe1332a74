"""float32 matrix multiply: lamina vs numpy (@) vs PyTorch (torch.mm), same inputs, same
thread count, as GFLOP/s and as a share of the machine's FMA peak at the vector width of
Lamina's kernels (ymm for AVX2, zmm for AVX-512; measured by bench/kernels/fma_peak.cpp,
which this script builds with g++ and runs).

Columns `x / lamina` are time ratios: above 1, lamina is faster.
Run: PYTHONPATH=python python bench/gemm.py [--quick]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import lamina as lm
from harness import optional_torch, time_calls

SQUARE = [64, 128, 256, 512, 1024, 2048]
# (name, M, K, N): MLP 784-512-256-10 at batch 128, forward and the weight-gradient GEMMs,
# and a small inference batch through a wide layer.
MLP = [("fwd 128x784x512", 128, 784, 512), ("fwd 128x512x256", 128, 512, 256), ("fwd 128x256x10", 128, 256, 10),
       ("dW 784x128x512", 784, 128, 512), ("dX 128x512x784", 128, 512, 784),
       ("fwd 8x256x2048", 8, 256, 2048)]
# Weight gradients with op(A) = A^T (x^T @ grad, read as a transposed view): the transformer's
# QKV layer (384 x 4096 x 128) and the LSTM's joined input and recurrent weights
# (1024 x 8192 x 384), where packing op(A) is a large share of the time.
TRANSPOSED_A = [("dW^T 384x4096x128", 384, 4096, 128), ("dW^T 1024x8192x384", 1024, 8192, 384)]


def fma_peak(threads: int) -> tuple[float | None, float | None]:
    """(1-thread, n-thread) GFLOP/s of the FMA loop, or None when it cannot be built."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels", "fma_peak.cpp")
    gxx = shutil.which("g++")
    if gxx is None:
        return None, None
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "fma_peak")
        # The vector width of Lamina's matrix kernels: AVX-512 doubles the peak.
        width = ["-mavx512f", "-DFMA_PEAK_AVX512"] if lm.cpu_isa() == "avx512" else ["-mavx2", "-mfma"]
        subprocess.run([gxx, "-O2", *width, "-pthread", src, "-o", exe], check=True)
        out = subprocess.run([exe, str(threads)], check=True, capture_output=True, text=True).stdout
    vals = [float(v) for v in re.findall(r"gflops=([0-9.]+)", out)]
    return vals[0], vals[1]


def main():
    quick = "--quick" in sys.argv
    torch = optional_torch()
    threads = lm.get_num_threads()
    if torch is not None:
        torch.set_num_threads(threads)
    peak1, peak_n = fma_peak(threads)
    # On a loaded (shared) machine the n-thread figure can fall below the 1-thread one; the
    # machine's peak is the larger.
    peak = None if peak1 is None else max(peak1, peak_n)
    print(f"threads={threads}  FMA peak: {peak1} GFLOP/s (1 thread), {peak_n} GFLOP/s ({threads} threads); "
          f"%peak uses {peak}")
    rng = np.random.default_rng(0)
    cases = [(f"square {n}", n, n, n, False) for n in (SQUARE[:-1] if quick else SQUARE)]
    cases += [(*case, False) for case in MLP] + [(*case, True) for case in TRANSPOSED_A]
    cols = ["lamina", "numpy", "torch"]
    head = f"{'case':<20}" + "".join(f"{c + ' GF/s':>14}" for c in cols) + f"{'lamina %peak':>14}"
    head += "".join(f"{c + ' / lamina':>16}" for c in cols[1:])
    print(head)
    for name, m, k, n, trans_a in cases:
        stored = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
        a = stored.T if trans_a else stored
        b = rng.standard_normal((k, n)).astype(np.float32)
        ls, lb = lm.tensor(stored), lm.tensor(b)
        la = lm.transpose(ls) if trans_a else ls
        flop = 2.0 * m * n * k
        min_time = 0.05 if flop < 1e8 else 0.3
        fns = {"lamina": lambda: lm.matmul(la, lb), "numpy": lambda: a @ b}
        if torch is not None:
            ts, tb = torch.from_numpy(stored), torch.from_numpy(b)
            ta = ts.t() if trans_a else ts
            fns["torch"] = lambda: torch.mm(ta, tb)
        times = time_calls(fns, min_time=min_time, repeats=5)
        line = f"{name:<20}"
        for c in cols:
            t = times.get(c)
            line += f"{'-' if t is None else f'{flop / t / 1e9:.1f}':>14}"
        ours = times["lamina"]
        line += f"{'-' if peak is None else f'{100 * flop / ours / 1e9 / peak:.0f}%':>14}"
        for c in cols[1:]:
            t = times.get(c)
            line += f"{'-' if t is None else f'{t / ours:.2f}x':>16}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
