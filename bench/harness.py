"""Shared benchmark harness: same inputs through each framework in one process, warm-up,
medians, and a table with ratios against the anchor."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def time_call(fn: Callable[[], object], *, min_time: float = 0.2, repeats: int = 7) -> float:
    """Median seconds per call of fn over `repeats` batches of calls (after warm-up)."""
    fn()
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time / repeats or number >= 1 << 20:
            break
        number *= 2
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def optional_torch():
    """torch if installed, else None (benchmarks then print lamina vs numpy only)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


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
