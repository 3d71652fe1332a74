"""Shared benchmark harness: same inputs through each framework in one process, warm-up,
medians, and a table with ratios against the anchor.

The target machine has AVX2 + FMA and no AVX-512, but a development box may have AVX-512,
which numpy's OpenBLAS, PyTorch (ATen, MKL, oneDNN) and Lamina's matrix kernels pick at run
time (Lamina's other kernels stop at AVX2). `LAMINA_BENCH_ANCHORS=avx2 python
bench/<name>.py` holds every framework to its AVX2 code paths, i.e. measures them as they
run on the target machine; the process re-executes itself with the libraries' own switches
set, because they read them when they load. Every benchmark prints the code paths used.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Callable

AVX2_ANCHOR_ENV = {
    "OPENBLAS_CORETYPE": "Haswell",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "LAMINA_CPU_ISA": "avx2",
}


def _hold_anchors_to_avx2() -> None:
    wanted = os.environ.get("LAMINA_BENCH_ANCHORS", "native")
    if wanted not in ("native", "avx2"):
        raise SystemExit(f"LAMINA_BENCH_ANCHORS must be 'native' or 'avx2', got {wanted!r}")
    if wanted == "avx2" and any(os.environ.get(k) != v for k, v in AVX2_ANCHOR_ENV.items()):
        os.execve(sys.executable, sys.orig_argv, {**os.environ, **AVX2_ANCHOR_ENV})


_hold_anchors_to_avx2()


def time_call(fn: Callable[[], object], *, min_time: float = 0.2, repeats: int = 7,
              clock: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds per call of fn over `repeats` batches of calls (after warm-up).
    clock=time.process_time counts the CPU time of the whole process instead of wall time:
    on a machine shared with other jobs it is much steadier, and it is a fair comparison only
    with one thread per framework (spinning workers would count against it)."""
    return time_calls({"fn": fn}, min_time=min_time, repeats=repeats, clock=clock)["fn"]


# How long a framework's idle workers keep spinning after its last call: numpy's OpenBLAS
# about 2^28 cycles (~0.1 s), PyTorch's OpenMP workers a few ms, Lamina's pool tens of us.
SPIN_TAIL_SECONDS = {"numpy": 0.15, "torch": 0.05}
DEFAULT_SPIN_TAIL_SECONDS = 0.02


def wait_out_workers(previous: str, fn: Callable[[], object]) -> None:
    """Calls fn untimed, at least once, for as long as the idle workers of the framework timed
    before (`previous`) may still spin, so that fn is not timed while they share the cores."""
    until = time.perf_counter() + SPIN_TAIL_SECONDS.get(previous, DEFAULT_SPIN_TAIL_SECONDS)
    fn()
    while time.perf_counter() < until:
        fn()


def time_calls(fns: dict[str, Callable[[], object]], *, min_time: float = 0.2, repeats: int = 7,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """time_call for several functions at once, in rounds (a batch of each, then the next
    round), so that every framework is timed through the same spells of a shared machine's
    speed: timed one after the other, a drift of 20% within a minute (seen on the development
    machines) moved a ratio by as much. Before each batch the function runs untimed for as
    long as the previous one's workers keep spinning, so that it is not timed while they
    share the cores (PyTorch's 128^3 product fell from ~250 to 1-20 GFLOP/s right after
    numpy's; Lamina's by 10% right after PyTorch's). Returns name -> median seconds."""
    numbers = {}
    for name, fn in fns.items():
        fn()
        number = 1
        while True:
            start = clock()
            for _ in range(number):
                fn()
            if clock() - start >= min_time / repeats or number >= 1 << 20:
                break
            number *= 2
        numbers[name] = number
    samples = {name: [] for name in fns}
    previous = list(fns)[-1]  # its calibration ran last
    for _ in range(repeats):
        for name, fn in fns.items():
            if previous != name:
                wait_out_workers(previous, fn)
            start = clock()
            for _ in range(numbers[name]):
                fn()
            samples[name].append((clock() - start) / numbers[name])
            previous = name
    return {name: statistics.median(s) for name, s in samples.items()}


def optional_torch():
    """torch if installed, else None (benchmarks then print lamina vs numpy only)."""
    try:
        import torch
    except ImportError:
        torch = None
    _print_anchor_code_paths(torch)
    return torch


def _print_anchor_code_paths(torch) -> None:
    blas = "unknown"
    try:
        import threadpoolctl

        blas = ", ".join(f"{i['internal_api']} {i.get('architecture')}"
                         for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")
    except ImportError:
        pass
    import lamina

    line = f"lamina matrix kernels {lamina.cpu_isa()}; anchors: numpy BLAS {blas}"
    if torch is not None:
        line += f"; torch {torch.__version__} CPU capability {torch.backends.cpu.get_cpu_capability()}"
        line += f", MKL/oneDNN limit {os.environ.get('MKL_ENABLE_INSTRUCTIONS', 'native')}"
    print(line + f" (LAMINA_BENCH_ANCHORS={os.environ.get('LAMINA_BENCH_ANCHORS', 'native')})")


def print_table(title: str, rows: list[dict], columns: list[str], anchor: str, unit: str = "us",
                scale: float = 1e6) -> None:
    """Rows map column name -> seconds (or None); prints times, then each column's time
    divided by the anchor's (above 1: the anchor is faster)."""
    print(f"\n{title}")
    header = f"{'case':<28}" + "".join(f"{c:>14}" for c in columns)
    header += "".join(f"{c + ' / ' + anchor:>18}" for c in columns if c != anchor)
    print(header)
    for row in rows:
        line = f"{row['case']:<28}"
        for c in columns:
            v = row.get(c)
            line += f"{'-' if v is None else f'{v * scale:.2f} {unit}':>14}"
        for c in columns:
            if c == anchor:
                continue
            a, v = row.get(anchor), row.get(c)
            line += f"{'-' if a is None or v is None else f'{v / a:.2f}x':>18}"
        print(line)
