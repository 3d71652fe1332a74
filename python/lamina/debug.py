"""Debugging aids: NaN/Inf detection and the determinism switch.

``detect_anomaly()`` checks the output of every op (module functions such as
``lamina.matmul`` and the method forms ``x.exp()``, and the Tensor operators ``+ - * / @
** -x`` and indexing) while it is active, and raises a RuntimeError at the first op whose
floating-point result holds NaN or Inf, naming the op and giving min / max / has-NaN /
has-Inf of each tensor input. It costs nothing when off; when on, each op pays a few extra
reductions. The backward pass is not checked (its ops run inside the engine).

Example:
    >>> with lamina.debug.detect_anomaly():
    ...     loss = model(x)   # RuntimeError: log produced NaN/Inf ...
"""

from __future__ import annotations

import contextlib
import threading

from lamina import _core

_FLOATS = ("float32", "float64", "float16", "bfloat16")
_OPERATORS = {"__add__": "add", "__radd__": "add", "__sub__": "subtract", "__rsub__": "subtract",
              "__mul__": "multiply", "__rmul__": "multiply", "__truediv__": "divide", "__rtruediv__": "divide",
              "__matmul__": "matmul", "__rmatmul__": "matmul", "__pow__": "power", "__rpow__": "power",
              "__neg__": "negative", "__getitem__": "getitem"}
_lock = threading.Lock()
_depth = 0
_saved_methods: dict = {}


def _bad(t):
    return isinstance(t, _core.Tensor) and t.dtype in _FLOATS and t.size > 0 and \
        not bool(_core.isfinite(t.detach()).numpy().all())


def _stats(t):
    if not isinstance(t, _core.Tensor):
        return repr(t)[:40]
    desc = f"Tensor(shape={tuple(t.shape)}, dtype={t.dtype}"
    if t.size and t.dtype != "bool":
        a = t.detach().astype("float64").numpy()
        desc += f", min={a.min():.6g}, max={a.max():.6g}, has_nan={bool((a != a).any())}, " \
                f"has_inf={bool(abs(a).max() == float('inf'))}"
    return desc + ")"


def _check(name, inputs, result):
    outs = result if isinstance(result, (list, tuple)) else (result,)
    for i, out in enumerate(outs):
        if _bad(out):
            where = f" (output {i})" if len(outs) > 1 else ""
            details = "; ".join(f"input {k}: {_stats(a)}" for k, a in enumerate(inputs))
            raise RuntimeError(f"detect_anomaly: {name}{where} produced NaN/Inf in a result of shape "
                               f"{tuple(out.shape)}; {details or 'no inputs'}")


def _operator(method, name):
    def checked(self, *args):
        out = method(self, *args)
        _check(name, (self,) + args, out)
        return out

    checked.__name__ = method.__name__
    return checked


@contextlib.contextmanager
def detect_anomaly(enabled: bool = True):
    """Within the block, the first op producing NaN/Inf raises a RuntimeError (see module doc).

    Nested blocks are fine; the checks stay on until the outermost block ends. The switch
    is process-wide (ops on other threads are checked too while a block is open).
    """
    global _depth
    if not enabled:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            for dunder, name in _OPERATORS.items():
                original = getattr(_core.Tensor, dunder)
                _saved_methods[dunder] = original
                setattr(_core.Tensor, dunder, _operator(original, name))
            _core._set_anomaly_hook(_check)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _core._set_anomaly_hook(None)
                for dunder, original in _saved_methods.items():
                    setattr(_core.Tensor, dunder, original)
                _saved_methods.clear()


def is_anomaly_enabled() -> bool:
    return _depth > 0


# ----- determinism -----------------------------------------------------------------------------
_deterministic = False

NONDETERMINISTIC_OPS: tuple = ()
"""Ops whose CPU results can differ from run to run: none. Every CPU kernel splits its
work by fixed block sizes (not by the thread count) and combines partial results in a fixed
order, so results are bitwise identical across runs and across ``set_num_threads`` values;
dropout and the random ops draw from the counter-based generator. CUDA kernels that use
atomics (when the CUDA backend lands) are listed here and refused in deterministic mode."""


def use_deterministic_algorithms(mode: bool) -> None:
    """With True, ops that have no deterministic implementation raise instead of running.

    On the CPU every op is deterministic (see ``NONDETERMINISTIC_OPS``), so this only
    records the choice (checked by backends that have nondeterministic kernels).
    """
    global _deterministic
    if not isinstance(mode, bool):
        raise TypeError(f"use_deterministic_algorithms: mode must be a bool, got {mode!r}")
    _deterministic = mode


def are_deterministic_algorithms_enabled() -> bool:
    return _deterministic
