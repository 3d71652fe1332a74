"""Scaled-dot-product attention: lamina's tiled fused op vs the composite (which stores the
N x N weights) vs torch.nn.functional.scaled_dot_product_attention, forward and
forward+backward; then peak resident memory of one forward+backward, each measured in a
fresh process (the kernel's resident high-water mark, reset just before the step, minus the
resident size then; Linux only).

Ratios above 1 in the `x / lamina` columns mean lamina is faster (or smaller).
Run: python bench/attention.py
"""

import subprocess
import sys

import numpy as np

import lamina
from harness import optional_torch, print_table, time_calls

B, H, L, D = 8, 8, 512, 64


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, H, L, D)).astype(np.float32) for _ in range(3)]


def lamina_step(fn, arrays, backward):
    q, k, v = [lamina.tensor(a, requires_grad=backward) for a in arrays]

    def step():
        out = fn(q, k, v, causal=False)
        if backward:
            lamina.sum(out).backward()

    return step


def torch_step(torch, arrays, backward):
    q, k, v = [torch.tensor(a, requires_grad=backward) for a in arrays]
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def step():
        if backward:
            sdpa(q, k, v).sum().backward()
        else:
            with torch.no_grad():
                sdpa(q, k, v)

    return step


def peak_mib(which: str) -> float:
    """Run one forward+backward in a fresh process; the extra peak RSS in MiB."""
    code = f"""
import sys
sys.path.insert(0, {repr(sys.path[0])})
import attention as a
a.peak_child({which!r})
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def peak_child(which: str) -> None:
    arrays = inputs()
    torch = optional_torch() if which == "torch" else None
    if which == "torch":
        step = torch_step(torch, arrays, True)
    else:
        fn = lamina.scaled_dot_product_attention if which == "lamina" else \
            lamina.scaled_dot_product_attention_reference
        step = lamina_step(fn, arrays, True)
    with open("/proc/self/clear_refs", "w") as f:  # restart the high-water mark (VmHWM) here
        f.write("5")
    base_kib = proc_status_kib("VmRSS")
    step()
    print((proc_status_kib("VmHWM") - base_kib) / 1024)


def proc_status_kib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    torch = optional_torch()
    if torch is not None:
        torch.set_num_threads(lamina.get_num_threads())
    arrays = inputs()
    rows = []
    for backward in (False, True):
        fns = {"lamina": lamina_step(lamina.scaled_dot_product_attention, arrays, backward),
               "composite": lamina_step(lamina.scaled_dot_product_attention_reference, arrays, backward)}
        if torch is not None:
            fns["torch"] = torch_step(torch, arrays, backward)
        rows.append({"case": f"{B}x{H}x{L}x{D} {'fwd+bwd' if backward else 'fwd'}", **time_calls(fns)})
    cols = ["lamina", "composite"] + (["torch"] if torch is not None else [])
    print_table(f"attention, float32, {lamina.get_num_threads()} threads", rows, cols, anchor="lamina",
                unit="ms", scale=1e3)
    nxn = B * H * L * L * 4 / 2**20
    mem = {"case": "fwd+bwd peak RSS (MiB)"}
    for c in cols:
        mem[c] = peak_mib(c) / 1e3  # print_table scales by 1e3 below
    print_table(f"peak memory; one N x N float32 score tensor is {nxn:.0f} MiB", [mem], cols, anchor="lamina",
                unit="MiB", scale=1e3)


if __name__ == "__main__":
    main()
