"""Lamina's CUDA kernels against PyTorch (cuBLAS / its own kernels) on a real GPU.

    python bench/cuda/bench_cuda.py            # all families
    python bench/cuda/bench_cuda.py gemm       # one family: gemm, elementwise, reduce, softmax

Needs a Lamina built with the real CUDA backend (LAMINA_CUDA=ON) and a GPU; PyTorch with
CUDA is the reference when installed. Without a GPU it says so and exits 0. Times are
medians after warm-up, with a device synchronisation inside each timed call, so they
include Lamina's per-op host overhead. Prints TFLOP/s for GEMMs, GB/s for the
bandwidth-bound kernels, and the ratio lamina / torch (above 1: torch is faster).
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from harness import optional_torch, time_call  # noqa: E402


def _gpu_or_exit():
    try:
        import lamina as lm
    except ImportError as e:
        print(f"lamina is not importable ({e}); build it first")
        sys.exit(0)
    if not lm.cuda.built:
        print("this build of Lamina has no CUDA backend (configure with -DLAMINA_CUDA=ON); nothing to run")
        sys.exit(0)
    if lm.cuda.emulated:
        print("this build runs CUDA kernels on the SIMT emulator (CPU); the benchmark needs a GPU build")
        sys.exit(0)
    if not lm.cuda.is_available():
        print("no CUDA device available; the CUDA benchmark needs a GPU")
        sys.exit(0)
    torch = optional_torch()
    if torch is not None and not torch.cuda.is_available():
        torch = None
    if torch is None:
        print("note: PyTorch with CUDA not found; printing Lamina's numbers only")
    return lm, torch


def _timed(fn, sync):
    def call():
        fn()
        sync()

    return time_call(call, min_time=0.3, repeats=7)


def _row(case, lam_s, torch_s, work, unit):
    lam = work / lam_s
    line = f"{case:<34}{lam_s * 1e6:>11.1f} us{lam:>10.2f} {unit}"
    if torch_s is not None:
        line += f"{torch_s * 1e6:>11.1f} us{work / torch_s:>10.2f} {unit}{lam_s / torch_s:>9.2f}x"
    print(line)


def _header(title, unit):
    print(f"\n{title}")
    print(f"{'case':<34}{'lamina':>14}{unit:>15}{'torch':>14}{unit:>15}{'lam/torch':>10}")


def bench_gemm(lm, torch):
    _header("GEMM (C = A @ B, row-major)", "TFLOP/s")
    rng = np.random.default_rng(0)
    sizes = [(1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096), (8192, 8192, 8192), (4096, 1024, 4096),
             (127, 4099, 1001)]
    for dtype in ("float32", "bfloat16"):
        for m, n, k in sizes:
            a_np = rng.standard_normal((m, k)).astype(np.float32)
            b_np = rng.standard_normal((k, n)).astype(np.float32)
            a = lm.tensor(a_np, device="cuda").astype(dtype)
            b = lm.tensor(b_np, device="cuda").astype(dtype)
            lam = _timed(lambda: a @ b, lm.cuda.synchronize)
            tt = None
            if torch is not None:
                tdt = torch.float32 if dtype == "float32" else torch.bfloat16
                # Exact fp32 on both sides: PyTorch would otherwise be free to use TF32.
                torch.backends.cuda.matmul.allow_tf32 = False
                ta = torch.from_numpy(a_np).cuda().to(tdt)
                tb = torch.from_numpy(b_np).cuda().to(tdt)
                tt = _timed(lambda: ta @ tb, torch.cuda.synchronize)
            _row(f"{dtype} {m}x{n}x{k}", lam, tt, 2.0 * m * n * k / 1e12, "TFLOP/s")


def bench_elementwise(lm, torch):
    _header("Elementwise (float32)", "GB/s")
    n = 1 << 26
    x_np = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    x = lm.tensor(x_np, device="cuda")
    y = lm.tensor(x_np[::-1].copy(), device="cuda")
    tx = ty = None
    if torch is not None:
        tx, ty = torch.from_numpy(x_np).cuda(), torch.from_numpy(x_np[::-1].copy()).cuda()
    cases = [
        ("add", lambda: x + y, (lambda: tx + ty) if tx is not None else None, 12),
        ("exp", lambda: lm.exp(x), (lambda: torch.exp(tx)) if tx is not None else None, 8),
        ("gelu", lambda: lm.gelu(x), (lambda: torch.nn.functional.gelu(tx)) if tx is not None else None, 8),
        ("add broadcast (4096, 16384) + (16384,)",
         lambda: lm.reshape(x, (4096, 16384)) + y[:16384],
         (lambda: tx.view(4096, 16384) + ty[:16384]) if tx is not None else None, 8),
    ]
    for name, lam_fn, torch_fn, bytes_per in cases:
        lam = _timed(lam_fn, lm.cuda.synchronize)
        tt = _timed(torch_fn, torch.cuda.synchronize) if torch_fn else None
        _row(name, lam, tt, n * bytes_per / 1e9, "GB/s")


def bench_reduce_softmax(lm, torch, which):
    rows, cols = 8192, 4096
    x_np = np.random.default_rng(2).standard_normal((rows, cols)).astype(np.float32)
    x = lm.tensor(x_np, device="cuda")
    tx = torch.from_numpy(x_np).cuda() if torch is not None else None
    gb = rows * cols * 4 / 1e9
    if which in ("all", "reduce"):
        _header("Reductions (float32, 8192 x 4096)", "GB/s")
        for name, lam_fn, torch_fn in [
            ("sum axis=-1", lambda: lm.sum(x, axis=-1), lambda: tx.sum(-1)),
            ("sum axis=0", lambda: lm.sum(x, axis=0), lambda: tx.sum(0)),
            ("sum all", lambda: lm.sum(x), lambda: tx.sum()),
        ]:
            lam = _timed(lam_fn, lm.cuda.synchronize)
            tt = _timed(torch_fn, torch.cuda.synchronize) if tx is not None else None
            _row(name, lam, tt, gb, "GB/s")
    if which in ("all", "softmax"):
        _header("Softmax (float32, 8192 x 4096, read + write)", "GB/s")
        for name, lam_fn, torch_fn in [
            ("softmax axis=-1", lambda: lm.softmax(x, -1), lambda: torch.softmax(tx, -1)),
            ("log_softmax axis=-1", lambda: lm.log_softmax(x, -1), lambda: torch.log_softmax(tx, -1)),
        ]:
            lam = _timed(lam_fn, lm.cuda.synchronize)
            tt = _timed(torch_fn, torch.cuda.synchronize) if tx is not None else None
            _row(name, lam, tt, 2 * gb, "GB/s")


def main(argv):
    which = argv[1] if len(argv) > 1 else "all"
    if which not in ("all", "gemm", "elementwise", "reduce", "softmax"):
        print(__doc__)
        return 2
    lm, torch = _gpu_or_exit()
    if torch is not None:
        print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    if which in ("all", "gemm"):
        bench_gemm(lm, torch)
    if which in ("all", "elementwise"):
        bench_elementwise(lm, torch)
    if which in ("all", "reduce", "softmax"):
        bench_reduce_softmax(lm, torch, which)
    stats = lm.cuda.memory_stats()
    print(f"\nallocator: {stats['device_mallocs']} cudaMalloc calls, {stats['cache_hits']} cache hits, "
          f"{stats['reserved_bytes'] / 2**20:.0f} MiB reserved")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
