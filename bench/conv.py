"""conv2d and max_pool2d, forward and forward+backward: lamina vs PyTorch CPU, same inputs,
same thread count. Run: PYTHONPATH=python python bench/conv.py"""

from __future__ import annotations

import numpy as np

import lamina as lm
from harness import optional_torch, print_table, time_calls

# (name, input shape, weight shape, kwargs)
CASES = [
    ("mnist 1->32 3x3", (64, 1, 28, 28), (32, 1, 3, 3), dict(padding=1)),
    ("32->64 3x3 @14", (64, 32, 14, 14), (64, 32, 3, 3), dict(padding=1)),
    ("64->64 3x3 @32", (32, 64, 32, 32), (64, 64, 3, 3), dict(padding=1)),
    ("depthwise 64 3x3 @32", (32, 64, 32, 32), (64, 1, 3, 3), dict(padding=1, groups=64)),
    ("64->128 3x3 s2 @32", (32, 64, 32, 32), (128, 64, 3, 3), dict(padding=1, stride=2)),
]


def gflops(xs, ws, kw):
    n, _, h, w = xs
    s = kw.get("stride", 1)
    oh, ow = (h + 2 * kw.get("padding", 0) - ws[2]) // s + 1, (w + 2 * kw.get("padding", 0) - ws[3]) // s + 1
    return 2 * n * ws[0] * ws[1] * ws[2] * ws[3] * oh * ow / 1e9


def main():
    torch = optional_torch()
    threads = lm.get_num_threads()
    if torch is not None:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    fwd_rows, train_rows = [], []
    for name, xs, ws, kw in CASES:
        x = rng.standard_normal(xs).astype(np.float32)
        w = (rng.standard_normal(ws) * 0.1).astype(np.float32)
        b = rng.standard_normal(ws[0]).astype(np.float32)
        lx, lw, lb = lm.tensor(x), lm.tensor(w, requires_grad=True), lm.tensor(b, requires_grad=True)
        lxg = lm.tensor(x, requires_grad=True)

        def lm_fwd():
            with lm.no_grad():
                return lm.conv2d(lx, lw, lb, **kw)

        def lm_train():
            y = lm.conv2d(lxg, lw, lb, **kw)
            lm.sum(y).backward()
            lxg.grad = lw.grad = lb.grad = None

        fwd_fns, train_fns = {"lamina": lm_fwd}, {"lamina": lm_train}
        if torch is not None:
            tx, tw, tb = torch.tensor(x), torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
            txg = torch.tensor(x, requires_grad=True)
            F = torch.nn.functional

            def t_fwd():
                with torch.no_grad():
                    return F.conv2d(tx, tw, tb, **kw)

            def t_train():
                F.conv2d(txg, tw, tb, **kw).sum().backward()
                txg.grad = tw.grad = tb.grad = None

            fwd_fns["torch"], train_fns["torch"] = t_fwd, t_train
        fwd = {"case": name, **time_calls(fwd_fns)}
        train = {"case": name, **time_calls(train_fns)}
        flops = gflops(xs, ws, kw)
        fwd["case"] += f" ({flops / fwd['lamina']:.0f} GF/s)"
        train["case"] += f" ({3 * flops / train['lamina']:.0f} GF/s)"
        fwd_rows.append(fwd)
        train_rows.append(train)
    cols = ["lamina", "torch"] if torch is not None else ["lamina"]
    print_table(f"conv2d forward, {threads} threads", fwd_rows, cols, anchor="lamina", unit="ms", scale=1e3)
    print_table(f"conv2d forward+backward, {threads} threads", train_rows, cols, anchor="lamina", unit="ms",
                scale=1e3)
    pool_rows = pooling_rows(torch)
    print_table(f"max_pool2d 2x2, {threads} threads", pool_rows, cols, anchor="lamina", unit="ms", scale=1e3)


def pooling_rows(torch):
    """max_pool2d 2x2 / stride 2 on the CNN benchmark's two pooled activations."""
    rng = np.random.default_rng(1)
    rows = []
    for shape in [(64, 32, 28, 28), (64, 64, 14, 14)]:
        x = rng.standard_normal(shape).astype(np.float32)
        lx = lm.tensor(x, requires_grad=True)
        fwd = {"lamina": lambda: lm.max_pool2d(lx, 2)}
        train = {"lamina": lambda: lm.grad(lm.sum(lm.max_pool2d(lx, 2)), [lx])}
        if torch is not None:
            tx = torch.tensor(x, requires_grad=True)
            F = torch.nn.functional
            fwd["torch"] = lambda: F.max_pool2d(tx.detach(), 2)
            train["torch"] = lambda: torch.autograd.grad(F.max_pool2d(tx, 2).sum(), [tx])
        rows += [{"case": f"fwd {shape}", **time_calls(fwd)}, {"case": f"fwd+bwd {shape}", **time_calls(train)}]
    return rows


if __name__ == "__main__":
    main()
