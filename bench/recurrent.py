"""LSTM / GRU over a whole sequence: lamina's fused op vs torch.nn.LSTM/GRU (CPU), forward
and forward+backward (gradients of the input and all weights).

Ratios above 1 in the `torch / lamina` column mean lamina is faster.
Run: python bench/recurrent.py
"""

import numpy as np

import lamina
from harness import optional_torch, print_table, time_calls

CASES = [("lstm", 64, 128, 128, 256), ("lstm", 16, 32, 64, 128), ("gru", 64, 128, 128, 256)]


def lamina_step(kind, arrays, backward):
    ts = [lamina.tensor(a, requires_grad=backward) for a in arrays]
    x, h0, *rest = ts

    def step():
        if kind == "lstm":
            out, h, c = lamina.lstm(x, h0, h0, *rest)
        else:
            out, h = lamina.gru(x, h0, *rest)
        if backward:
            lamina.sum(out).backward()

    return step


def torch_step(torch, kind, arrays, backward):
    _, _, I = arrays[0].shape
    H = arrays[1].shape[1]
    mod = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(I, H, batch_first=True)
    x = torch.tensor(arrays[0], requires_grad=backward)
    h0 = torch.tensor(arrays[1])[None]
    state = (h0, h0) if kind == "lstm" else h0

    def step():
        if backward:
            out, _ = mod(x, state)
            out.sum().backward()
        else:
            with torch.no_grad():
                mod(x, state)

    return step


def main() -> None:
    torch = optional_torch()
    if torch is not None:
        torch.set_num_threads(lamina.get_num_threads())
    rng = np.random.default_rng(0)
    rows = []
    for kind, B, T, I, H in CASES:
        g = 4 if kind == "lstm" else 3
        arrays = [rng.standard_normal(s).astype(np.float32) * 0.1 for s in
                  [(B, T, I), (B, H), (g * H, I), (g * H, H)]]
        arrays += [np.zeros(g * H, np.float32)] * (1 if kind == "lstm" else 2)
        for backward in (False, True):
            fns = {"lamina": lamina_step(kind, arrays, backward)}
            if torch is not None:
                fns["torch"] = torch_step(torch, kind, arrays, backward)
            rows.append({"case": f"{kind} {B}x{T}x{I}->{H} {'fwd+bwd' if backward else 'fwd'}", **time_calls(fns)})
    print_table(f"recurrent, float32, {lamina.get_num_threads()} threads", rows, ["lamina", "torch"],
                anchor="lamina", unit="ms", scale=1e3)


if __name__ == "__main__":
    main()
