"""A dependency-free progress display for fit/evaluate/predict."""

import sys
import time


def _fmt_time(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if seconds >= 60:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds}s"


def format_logs(logs):
    return " - ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in logs.items())


class Progbar:
    """verbose=1: a carriage-return bar with ETA; verbose=2: one line at the end; 0: silent.

    Args:
        target: Number of steps.
        verbose: 0, 1 or 2.
        width: Characters in the bar.
    """

    def __init__(self, target, verbose=1, width=30, stream=None):
        self.target, self.verbose, self.width = target, verbose, width
        self.stream = stream or sys.stdout
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_len = 0

    def update(self, step, logs=None, final=False):
        if self.verbose != 1:
            return
        now = time.perf_counter()
        if not final and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        elapsed = now - self.start
        filled = int(self.width * step / max(self.target, 1))
        bar = "=" * max(filled - 1, 0) + (">" if filled < self.width else "=") + "." * (self.width - filled)
        if final:
            timing = f"{_fmt_time(elapsed)} {elapsed / max(step, 1) * 1000:.0f}ms/step"
        else:
            timing = f"ETA: {_fmt_time(elapsed / max(step, 1) * (self.target - step))}"
        text = f"\r{step}/{self.target} [{bar}] - {timing}"
        if logs:
            text += " - " + format_logs(logs)
        padding = " " * max(self._last_len - len(text), 0)  # erase a longer previous line
        self._last_len = len(text)
        self.stream.write(text + padding + ("\n" if final else ""))
        self.stream.flush()

    def finish(self, logs=None):
        if self.verbose == 1:
            self.update(self.target, logs, final=True)
        elif self.verbose == 2:
            elapsed = time.perf_counter() - self.start
            text = f"{self.target}/{self.target} - {_fmt_time(elapsed)} - {elapsed / max(self.target, 1) * 1000:.0f}ms/step"
            print(text + (" - " + format_logs(logs) if logs else ""), file=self.stream, flush=True)
