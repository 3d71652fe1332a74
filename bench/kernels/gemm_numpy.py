"""numpy (OpenBLAS) and, when installed, PyTorch float32 matmul at the gemm_lab sizes,
for the table in GEMM.md.

Run once per thread count; OpenBLAS reads its thread count at import:
    OPENBLAS_NUM_THREADS=1 python bench/kernels/gemm_numpy.py
    OPENBLAS_NUM_THREADS=2 python bench/kernels/gemm_numpy.py
Add OPENBLAS_CORETYPE=Haswell to hold OpenBLAS to its AVX2 kernels on an AVX-512 machine.
With more than one thread, time the libraries in separate runs (argument `numpy` or
`torch`): both thread pools spin after a call and would fight over the cores.
"""

import os
import sys
import time

import numpy as np

SIZES = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (128, 784, 512)]


def median_seconds(fn, budget=0.4):
    fn()
    times = []
    start = time.perf_counter()
    while (time.perf_counter() - start < budget and len(times) < 2000) or len(times) < 3:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    torch = None
    if which in ("both", "torch"):
        try:
            import torch
        except ImportError:
            pass
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    coretype = os.environ.get("OPENBLAS_CORETYPE", "auto")
    print(f"numpy {np.__version__} (OPENBLAS_NUM_THREADS={threads}, OPENBLAS_CORETYPE={coretype})"
          + (f", torch {torch.__version__}" if torch else ""))
    if torch and threads.isdigit():
        torch.set_num_threads(int(threads))
    rng = np.random.default_rng(0)
    for m, k, n in SIZES:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        c = np.empty((m, n), dtype=np.float32)
        flop = 2 * m * n * k
        line = f"{m:5d}x{k:5d}x{n:<5d}"
        if which in ("both", "numpy"):
            t = median_seconds(lambda: np.matmul(a, b, out=c))
            line += f" numpy {t * 1e3:9.3f} ms {flop / t / 1e9:7.1f} GFLOP/s"
        if torch:
            ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
            t = median_seconds(lambda: torch.matmul(ta, tb, out=tc))
            line += f" torch {t * 1e3:9.3f} ms {flop / t / 1e9:7.1f} GFLOP/s"
        print(line)


if __name__ == "__main__":
    main()
