"""Per-op dispatch overhead from Python: a 1-element add and a 1x1 matmul, lamina vs
numpy vs PyTorch (when installed), plus a small MLP-sized matmul for scale.

Ratios above 1 in the `x / lamina` columns mean lamina is faster than x.
Run: python bench/overhead.py
"""

import numpy as np

import lamina
from harness import optional_torch, print_table, time_call


def main() -> None:
    torch = optional_torch()
    if torch is not None:
        torch.set_num_threads(lamina.get_num_threads())
    rows = []
    cases = [
        ("add 1 element", lambda m, a, b: m.add(a, b), (1,), (1,)),
        ("matmul 1x1", lambda m, a, b: m.matmul(a, b), (1, 1), (1, 1)),
        ("add 1000 elements", lambda m, a, b: m.add(a, b), (1000,), (1000,)),
        ("mul+sum backward 1 element", None, (1,), (1,)),
    ]
    rng = np.random.default_rng(0)
    for name, fn, sa, sb in cases:
        a_np = rng.standard_normal(sa).astype(np.float32)
        b_np = rng.standard_normal(sb).astype(np.float32)
        row = {"case": name}
        if fn is None:
            a_l = lamina.tensor(a_np, requires_grad=True)
            b_l = lamina.tensor(b_np)

            def lam_step():
                (a_l * b_l).sum().backward()

            row["lamina"] = time_call(lam_step)
            if torch is not None:
                a_t = torch.tensor(a_np, requires_grad=True)
                b_t = torch.tensor(b_np)

                def torch_step():
                    (a_t * b_t).sum().backward()

                row["torch"] = time_call(torch_step)
        else:
            a_l, b_l = lamina.tensor(a_np), lamina.tensor(b_np)
            row["lamina"] = time_call(lambda: fn(lamina, a_l, b_l))
            row["numpy"] = time_call(lambda: fn(np, a_np, b_np))
            if torch is not None:
                a_t, b_t = torch.from_numpy(a_np), torch.from_numpy(b_np)
                row["torch"] = time_call(lambda: fn(torch, a_t, b_t))
        rows.append(row)
    print_table("Per-op dispatch overhead (median per call)", rows, ["lamina", "numpy", "torch"], "lamina")


if __name__ == "__main__":
    main()
