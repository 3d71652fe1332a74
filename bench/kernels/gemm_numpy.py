"""numpy (OpenBLAS) float32 matmul at the gemm_lab sizes, for the table in GEMM.md.

Run once per thread count; OpenBLAS reads its thread count at import:
    OPENBLAS_NUM_THREADS=1 python bench/kernels/gemm_numpy.py
    OPENBLAS_NUM_THREADS=2 python bench/kernels/gemm_numpy.py
"""

import os
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
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    for m, k, n in SIZES:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        c = np.empty((m, n), dtype=np.float32)
        t = median_seconds(lambda: np.matmul(a, b, out=c))
        print(f"{m:5d}x{k:5d}x{n:<5d} {t * 1e3:9.3f} ms {2 * m * n * k / t / 1e9:8.1f} GFLOP/s")


if __name__ == "__main__":
    main()
