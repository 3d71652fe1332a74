"""float32 transcendental element-wise ops and whole-tensor sums: lamina vs numpy vs PyTorch
CPU, same inputs, same thread count (numpy's ufuncs and sums run on one thread).
Columns `x / lamina` are time ratios: above 1, lamina is faster.
Run: PYTHONPATH=python python bench/elementwise.py
"""

from __future__ import annotations

import numpy as np

import lamina as lm
from harness import optional_torch, print_table, time_call

RNG = np.random.default_rng(0)


def main():
    torch = optional_torch()
    threads = lm.get_num_threads()
    if torch is not None:
        torch.set_num_threads(threads)
    x = (RNG.standard_normal(4_000_000) * 3).astype(np.float32)
    lx = lm.tensor(x)
    tx = torch.from_numpy(x) if torch is not None else None
    unary = [("tanh", lm.tanh, np.tanh, "tanh"), ("sigmoid", lm.sigmoid, lambda v: 1 / (1 + np.exp(-v)), "sigmoid"),
             ("exp", lm.exp, np.exp, "exp")]
    rows = []
    for name, fn, np_fn, torch_name in unary:
        row = {"case": f"{name} 4M", "lamina": time_call(lambda: fn(lx)), "numpy": time_call(lambda: np_fn(x))}
        if torch is not None:
            tfn = getattr(torch, torch_name)
            row["torch"] = time_call(lambda: tfn(tx))
        rows.append(row)
    cols = ["lamina", "numpy"] + (["torch"] if torch is not None else [])
    print_table(f"float32 unary ops, {threads} threads", rows, cols, anchor="lamina", unit="ms", scale=1e3)

    rows = []
    for n in (100_000, 800_000, 8_000_000):
        a = RNG.standard_normal(n).astype(np.float32)
        la = lm.tensor(a)
        row = {"case": f"sum of {n:,} floats", "lamina": time_call(lambda: lm.sum(la)), "numpy": time_call(a.sum)}
        if torch is not None:
            ta = torch.from_numpy(a)
            row["torch"] = time_call(ta.sum)
        rows.append(row)
    print_table(f"whole-tensor float32 sum, {threads} threads", rows, cols, anchor="lamina", unit="ms", scale=1e3)


if __name__ == "__main__":
    main()
