"""Fused training ops vs their composite references (plain lamina ops) and PyTorch:
forward+backward of layer_norm, batch_norm, softmax_cross_entropy, BCE-with-logits, gelu and relu,
one Adam / SGD-momentum update over an MLP's parameters (fused: one native call), and the
gradients of views: q, k, v taken apart from one tensor, directly and as the transformer does
(a (B, S, 3 H D) projection reshaped and permuted to (3, B, H, S, D)).
Columns `x / fused` above 1: the fused op is faster.
Run: PYTHONPATH=python python bench/fused.py [--rounds N] [--cpu-time] [--only layer_norm,bce]
--rounds N times each framework N times, interleaved, and reports the medians (the machine's
load changes between rounds). --cpu-time measures process CPU time: steadier on a shared
machine, fair only with one thread (LAMINA_NUM_THREADS=1; PyTorch then gets one too).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import lamina as lm
from harness import optional_torch, print_table, time_call

RNG = np.random.default_rng(0)


def fwd_bwd(fn, *tensors):
    def run():
        for t in tensors:
            t.grad = None
        lm.sum(fn(*tensors)).backward()
    return run


def torch_fwd_bwd(fn, *tensors):
    def run():
        for t in tensors:
            t.grad = None
        fn(*tensors).sum().backward()
    return run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cpu-time", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated case name prefixes")
    args = parser.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    wanted = [w for w in args.only.split(",") if w]

    def timed(fn):
        return time_call(fn, clock=clock)

    torch = optional_torch()
    if torch is not None:
        torch.set_num_threads(lm.get_num_threads())
    F = torch.nn.functional if torch is not None else None
    rows = []

    def case(name, arrays, fused, ref, tfn, grad_mask=None):
        if wanted and not any(name.startswith(w) for w in wanted):
            return
        grad_mask = grad_mask or [True] * len(arrays)
        ts = [lm.tensor(a, requires_grad=g) for a, g in zip(arrays, grad_mask)]
        runs = {"fused": fwd_bwd(fused, *ts), "composite": fwd_bwd(ref, *ts)}
        if torch is not None:
            tt = [torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grad_mask)]
            runs["torch"] = torch_fwd_bwd(tfn, *tt)
        samples = {key: [] for key in runs}
        for _ in range(args.rounds):
            for key, run in runs.items():
                samples[key].append(timed(run))
        rows.append({"case": name, **{key: statistics.median(v) for key, v in samples.items()}})

    x = RNG.standard_normal((32 * 128, 128)).astype(np.float32)
    g, b = np.ones(128, np.float32), np.zeros(128, np.float32)
    case("layer_norm 4096x128", [x, g, b], lm.layer_norm, lm.layer_norm_reference,
         lambda x, g, b: F.layer_norm(x, (128,), g, b, 1e-5))
    xc = RNG.standard_normal((64, 32, 28, 28)).astype(np.float32)
    g32, b32 = np.ones(32, np.float32), np.zeros(32, np.float32)
    case("batch_norm 64x32x28x28", [xc, g32, b32], lambda x, g, b: lm.batch_norm(x, g, b, eps=1e-5),
         lambda x, g, b: lm.batch_norm_reference(x, g, b, eps=1e-5),
         lambda x, g, b: F.batch_norm(x, None, None, g, b, True, 0.1, 1e-5))
    logits = RNG.standard_normal((128, 1000)).astype(np.float32)
    labels = RNG.integers(0, 1000, size=128)
    lt_labels = lm.tensor(labels)
    case("softmax_xent 128x1000", [logits], lambda x: lm.softmax_cross_entropy(x, lt_labels),
         lambda x: lm.softmax_cross_entropy_reference(x, lt_labels),
         lambda x: F.cross_entropy(x, torch.from_numpy(labels)))
    t = RNG.random((256, 1024)).astype(np.float32)
    xb = RNG.standard_normal((256, 1024)).astype(np.float32)
    case("bce_logits 256x1024", [xb, t], lm.binary_cross_entropy_with_logits,
         lm.binary_cross_entropy_with_logits_reference, F.binary_cross_entropy_with_logits if F else None,
         grad_mask=[True, False])
    xg = RNG.standard_normal((4096, 512)).astype(np.float32)
    case("gelu 4096x512", [xg], lm.gelu, lambda x: 0.5 * x * (1.0 + lm.erf(x * (1.0 / np.sqrt(2.0)))),
         F.gelu if F else None)
    # relu's backward in one pass (g where x > 0) against the mask product it replaced.
    case("relu 4096x512", [xg], lm.relu, lambda x: x * (x > 0), F.relu if F else None)
    if rows:
        print_table("forward + backward (time per call)", rows, ["fused", "composite", "torch"], "fused")

    # Each view's gradient is added into its region of one buffer (fused); the composite
    # column takes the same parts as sums of one-hot-weighted copies (a full-size gradient per
    # part, then summed), the cost every view's backward had before.
    qkv = RNG.standard_normal((3, 32 * 4, 128 * 32)).astype(np.float32)
    pick = [lm.tensor(np.eye(3, dtype=np.float32)[i].reshape(3, 1, 1)) for i in range(3)]
    rows = []
    case("q, k, v = y[0], y[1], y[2]", [qkv], lambda y: y[0] * 1.0 + y[1] * 2.0 + y[2] * 3.0,
         lambda y: sum(lm.sum(y * pick[i], 0) * float(i + 1) for i in range(3)),
         lambda y: y[0] * 1.0 + y[1] * 2.0 + y[2] * 3.0)
    # The transformer's form: one (B, S, 3 H D) projection viewed as (3, B, H, S, D). Its
    # gradient buffer takes the projection's layout, so the reshape's backward copies nothing.
    proj = RNG.standard_normal((32, 128, 3 * 4 * 32)).astype(np.float32)
    pick5 = [lm.tensor(np.eye(3, dtype=np.float32)[i].reshape(3, 1, 1, 1, 1)) for i in range(3)]
    lm_split = lambda y: lm.permute(lm.reshape(y * 1.0, (32, 128, 3, 4, 32)), (2, 0, 3, 1, 4))
    weighted = lambda t: t[0] * 1.0 + t[1] * 2.0 + t[2] * 3.0
    case("q, k, v from a permuted projection", [proj], lambda y: weighted(lm_split(y)),
         lambda y: (lambda t: sum(lm.sum(t * pick5[i], 0) * float(i + 1) for i in range(3)))(lm_split(y)),
         lambda y: weighted((y * 1.0).reshape(32, 128, 3, 4, 32).permute(2, 0, 3, 1, 4)))
    if rows:
        print_table("gradients of views, forward + backward (time per call)", rows, ["fused", "composite", "torch"],
                    "fused")

    shapes = [(784, 512), (512,), (512, 256), (256,), (256, 10), (10,)]
    rows = []
    for kind in ("adam", "sgd momentum"):
        ps = [lm.tensor(RNG.standard_normal(s).astype(np.float32)) for s in shapes]
        gs = [lm.tensor(RNG.standard_normal(s).astype(np.float32)) for s in shapes]
        s1 = [lm.zeros(s) for s in shapes]
        s2 = [lm.zeros(s) for s in shapes]
        if kind == "adam":
            fused = lambda: lm.adam_step(ps, gs, s1, s2, 10, lr=1e-3)
            ref = lambda: lm.adam_step_reference(ps, gs, s1, s2, 10, lr=1e-3)
        else:
            fused = lambda: lm.sgd_step(ps, gs, s1, lr=1e-3, momentum=0.9)
            ref = lambda: lm.sgd_step_reference(ps, gs, s1, lr=1e-3, momentum=0.9)
        name = f"{kind} MLP 535k params"
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        row = {"case": name, "fused": timed(fused), "composite": timed(ref)}
        if torch is not None:
            tp = [torch.zeros(s, requires_grad=True) for s in shapes]
            for p in tp:
                p.grad = torch.randn(p.shape)
            opt = (torch.optim.Adam(tp, lr=1e-3, foreach=True) if kind == "adam"
                   else torch.optim.SGD(tp, lr=1e-3, momentum=0.9, foreach=True))
            row["torch"] = timed(opt.step)
        rows.append(row)
    if rows:
        print_table("optimizer update (time per step)", rows, ["fused", "composite", "torch"], "fused")


if __name__ == "__main__":
    main()
