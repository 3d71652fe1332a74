"""Lamina's CUDA kernels against PyTorch (cuBLAS / its own kernels) on a real GPU.

    python bench/cuda/bench_cuda.py            # all families
    python bench/cuda/bench_cuda.py gemm       # one family: gemm, elementwise, reduce, softmax,
                                               # conv, lstm, attention

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


# Lamina path -> (operand dtype, allow TF32). "tf32" is float32 with
# lamina.cuda.set_float32_matmul_precision("high") and torch's allow_tf32 = True.
GEMM_PATHS = {"float32": ("float32", False), "tf32": ("float32", True), "bfloat16": ("bfloat16", False),
              "float16": ("float16", False)}


def _set_tf32(lm, torch, allow):
    lm.cuda.set_float32_matmul_precision("high" if allow else "highest")
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = allow


def bench_gemm(lm, torch):
    _header("GEMM (C = A @ B, row-major; 16-bit results rounded from fp32 on both sides)", "TFLOP/s")
    rng = np.random.default_rng(0)
    sizes = [(1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096), (8192, 8192, 8192), (4096, 1024, 4096),
             (127, 4099, 1001)]
    tdtypes = {} if torch is None else {"float32": torch.float32, "bfloat16": torch.bfloat16,
                                        "float16": torch.float16}
    try:
        for path, (dtype, tf32) in GEMM_PATHS.items():
            _set_tf32(lm, torch, tf32)
            for m, n, k in sizes:
                a_np = rng.standard_normal((m, k)).astype(np.float32)
                b_np = rng.standard_normal((k, n)).astype(np.float32)
                a = lm.tensor(a_np, device="cuda").astype(dtype)
                b = lm.tensor(b_np, device="cuda").astype(dtype)
                lam = _timed(lambda: a @ b, lm.cuda.synchronize)
                tt = None
                if torch is not None:
                    ta = torch.from_numpy(a_np).cuda().to(tdtypes[dtype])
                    tb = torch.from_numpy(b_np).cuda().to(tdtypes[dtype])
                    tt = _timed(lambda: ta @ tb, torch.cuda.synchronize)
                _row(f"{path} {m}x{n}x{k}", lam, tt, 2.0 * m * n * k / 1e12, "TFLOP/s")
        _set_tf32(lm, torch, False)
        # Batched (one launch over grid.z) and the fused bias + relu epilogue (lamina.linear vs
        # torch's addmm + relu).
        for batch, m, n, k in [(16, 512, 512, 512), (64, 256, 256, 128)]:
            a_np = rng.standard_normal((batch, m, k)).astype(np.float32)
            b_np = rng.standard_normal((batch, k, n)).astype(np.float32)
            a = lm.tensor(a_np, device="cuda").astype("bfloat16")
            b = lm.tensor(b_np, device="cuda").astype("bfloat16")
            lam = _timed(lambda: a @ b, lm.cuda.synchronize)
            tt = None
            if torch is not None:
                ta, tb = (torch.from_numpy(x).cuda().to(torch.bfloat16) for x in (a_np, b_np))
                tt = _timed(lambda: ta @ tb, torch.cuda.synchronize)
            _row(f"bfloat16 batched {batch}x{m}x{n}x{k}", lam, tt, 2.0 * batch * m * n * k / 1e12, "TFLOP/s")
        for m, n, k in [(4096, 4096, 4096), (8192, 1024, 1024)]:
            x_np = rng.standard_normal((m, k)).astype(np.float32)
            w_np = rng.standard_normal((k, n)).astype(np.float32)
            b_np = rng.standard_normal(n).astype(np.float32)
            x, w, bias = (lm.tensor(v, device="cuda").astype("bfloat16") for v in (x_np, w_np, b_np))
            lam = _timed(lambda: lm.linear(x, w, bias, "relu"), lm.cuda.synchronize)
            tt = None
            if torch is not None:
                tx, tw, tbias = (torch.from_numpy(v).cuda().to(torch.bfloat16) for v in (x_np, w_np, b_np))
                tt = _timed(lambda: torch.relu(torch.addmm(tbias, tx, tw)), torch.cuda.synchronize)
            _row(f"bfloat16 linear+relu {m}x{n}x{k}", lam, tt, 2.0 * m * n * k / 1e12, "TFLOP/s")
    finally:
        _set_tf32(lm, torch, False)


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


def _lamina_or_note(fn, sync, what):
    """Times fn, or prints why this build cannot run it (an op without a device kernel)."""
    try:
        return _timed(fn, sync)
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as e:
        print(f"{what}: not run ({e})")
        return None


def _row_or_skip(case, lam_s, torch_s, work, unit):
    if lam_s is not None:
        _row(case, lam_s, torch_s, work, unit)


def bench_conv(lm, torch):
    _header("conv2d 3x3, padding 1 (NCHW; torch: cuDNN)", "TFLOP/s")
    rng = np.random.default_rng(3)
    for dtype in ("float32", "bfloat16", "float16"):
        for n, c, hw, co in [(64, 64, 56, 64), (64, 128, 28, 128), (64, 256, 14, 256)]:
            x_np = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
            w_np = (rng.standard_normal((co, c, 3, 3)) * 0.05).astype(np.float32)
            x = lm.tensor(x_np, device="cuda").astype(dtype)
            w = lm.tensor(w_np, device="cuda").astype(dtype).detach()
            w.requires_grad = True
            flops = 2.0 * n * co * c * 9 * hw * hw / 1e12
            fwd = _lamina_or_note(lambda: lm.conv2d(x, w, padding=1), lm.cuda.synchronize, "conv2d")
            both = _lamina_or_note(lambda: lm.sum(lm.conv2d(x, w, padding=1)).backward(), lm.cuda.synchronize,
                                   "conv2d backward")
            xg = x.detach()
            xg.requires_grad = True
            full = _lamina_or_note(lambda: lm.sum(lm.conv2d(xg, w, padding=1)).backward(), lm.cuda.synchronize,
                                   "conv2d backward (x and w)")
            t_fwd = t_both = t_full = None
            if torch is not None:
                tdt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
                torch.backends.cudnn.allow_tf32 = False
                tx = torch.from_numpy(x_np).cuda().to(tdt)
                tw = torch.from_numpy(w_np).cuda().to(tdt).requires_grad_()
                txg = tx.detach().requires_grad_()
                conv = torch.nn.functional.conv2d
                t_fwd = _timed(lambda: conv(tx, tw, padding=1), torch.cuda.synchronize)
                t_both = _timed(lambda: conv(tx, tw, padding=1).sum().backward(), torch.cuda.synchronize)
                t_full = _timed(lambda: conv(txg, tw, padding=1).sum().backward(), torch.cuda.synchronize)
            _row_or_skip(f"{dtype} {n}x{c}x{hw}^2 -> {co} fwd", fwd, t_fwd, flops, "TFLOP/s")
            _row_or_skip(f"{dtype} {n}x{c}x{hw}^2 -> {co} fwd+bwd(w)", both, t_both, 2 * flops, "TFLOP/s")
            _row_or_skip(f"{dtype} {n}x{c}x{hw}^2 -> {co} fwd+bwd(x,w)", full, t_full, 3 * flops, "TFLOP/s")


def bench_lstm(lm, torch):
    _header("LSTM, batch 64, hidden 256, input 256: time per step (torch: cuDNN)", "steps/ms")
    rng = np.random.default_rng(4)
    b, steps, i, h = 64, 128, 256, 256
    x_np = rng.standard_normal((b, steps, i)).astype(np.float32)
    w_ih = (rng.standard_normal((4 * h, i)) * 0.05).astype(np.float32)
    w_hh = (rng.standard_normal((4 * h, h)) * 0.05).astype(np.float32)
    bias = np.zeros(4 * h, np.float32)
    args = [lm.tensor(a, device="cuda") for a in (x_np, w_ih, w_hh, bias)]
    lam = _lamina_or_note(lambda: lm.lstm(args[0], None, None, *args[1:]), lm.cuda.synchronize, "lstm")
    tt = None
    if torch is not None:
        mod = torch.nn.LSTM(i, h, batch_first=True).cuda()
        tx = torch.from_numpy(x_np).cuda()
        with torch.no_grad():
            tt = _timed(lambda: mod(tx), torch.cuda.synchronize)
    # work = steps, so the unit column reads steps per millisecond.
    _row_or_skip(f"forward, {steps} steps", lam, tt, steps / 1e3, "steps/ms")


def bench_attention(lm, torch):
    _header("Flash attention forward, batch 4 x 16 heads (torch: scaled_dot_product_attention)", "TFLOP/s")
    rng = np.random.default_rng(5)
    for d in (64, 128):
        for seq, causal in [(2048, False), (4096, False), (4096, True)]:
            shape = (4, 16, seq, d)
            q_np, k_np, v_np = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
            q, k, v = (lm.tensor(a, device="cuda").astype("bfloat16") for a in (q_np, k_np, v_np))
            flops = 4.0 * 4 * 16 * seq * seq * d / 1e12 / (2 if causal else 1)
            lam = _lamina_or_note(lambda: lm.scaled_dot_product_attention(q, k, v, causal=causal),
                                  lm.cuda.synchronize, "attention")
            tt = None
            if torch is not None:
                tq, tk, tv = (torch.from_numpy(a).cuda().to(torch.bfloat16) for a in (q_np, k_np, v_np))
                sdpa = torch.nn.functional.scaled_dot_product_attention
                tt = _timed(lambda: sdpa(tq, tk, tv, is_causal=causal), torch.cuda.synchronize)
            _row_or_skip(f"bf16 d={d} seq={seq}{' causal' if causal else ''}", lam, tt, flops, "TFLOP/s")


FAMILIES = ("all", "gemm", "elementwise", "reduce", "softmax", "conv", "lstm", "attention")


def main(argv):
    which = argv[1] if len(argv) > 1 else "all"
    if which not in FAMILIES:
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
    if which in ("all", "conv"):
        bench_conv(lm, torch)
    if which in ("all", "lstm"):
        bench_lstm(lm, torch)
    if which in ("all", "attention"):
        bench_attention(lm, torch)
    stats = lm.cuda.memory_stats()
    print(f"\nallocator: {stats['device_mallocs']} cudaMalloc calls, {stats['cache_hits']} cache hits, "
          f"{stats['reserved_bytes'] / 2**20:.0f} MiB reserved")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
