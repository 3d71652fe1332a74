"""Temporary composite forms of ops that are still being added to the native core.

Each name resolves to the native op when the core provides it (``getattr(_core, name,
fallback)``), so this module disappears in effect once the ops land. Only existing
differentiable ops are used; the shift by the maximum (for numerical stability) is taken
from detached data, which leaves the gradient unchanged.
"""

import numpy as np

from lamina import _core


def _axis_tuple(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    return tuple(a % ndim for a in axes)


def _detached_max(x, axis, keepdims=True):
    data = np.asarray(x.detach().numpy())
    return _core.tensor(np.max(data, axis=_axis_tuple(axis, x.ndim), keepdims=keepdims), dtype=x.dtype)


def _argmax(x, axis=None, keepdims=False):
    """Index of the largest value (not differentiable). axis=None indexes the flat array."""
    data = np.asarray(x.detach().numpy())
    out = np.argmax(data, axis=axis, keepdims=keepdims) if axis is not None else np.argmax(data)
    return _core.tensor(np.asarray(out, dtype=np.int64))


def _max(x, axis=None, keepdims=False):
    """Largest value along axis; the gradient flows to the (first) arg-max element."""
    if axis is None:
        flat = _core.reshape(x, (-1,))
        out = _core.take(flat, _argmax(flat, 0, keepdims=True), 0)
        return _core.reshape(out, (1,) * x.ndim) if keepdims else _core.reshape(out, ())
    if isinstance(axis, (tuple, list)):
        raise NotImplementedError("max: the composite fallback takes one axis at a time")
    axis = axis % x.ndim
    out = _core.gather(x, axis, _argmax(x, axis, keepdims=True))
    return out if keepdims else _core.squeeze(out, axis)


def _logsumexp(x, axis=None, keepdims=False):
    shift = _detached_max(x, axis)
    out = _core.log(_core.sum(_core.exp(x - shift), axis, True)) + shift
    return out if keepdims else _core.squeeze(out, _axis_tuple(axis, x.ndim))


def _log_softmax(x, axis=-1):
    return x - _logsumexp(x, axis, keepdims=True)


def _softmax(x, axis=-1):
    e = _core.exp(x - _detached_max(x, axis))
    return e / _core.sum(e, axis, True)


def _var(x, axis=None, keepdims=False, ddof=0):
    centered = x - _core.mean(x, axis, True)
    count = int(np.prod([x.shape[a] for a in _axis_tuple(axis, x.ndim)]))
    return _core.sum(centered * centered, axis, keepdims) / max(count - ddof, 1)


softmax = getattr(_core, "softmax", _softmax)
log_softmax = getattr(_core, "log_softmax", _log_softmax)
logsumexp = getattr(_core, "logsumexp", _logsumexp)
max = getattr(_core, "max", _max)  # noqa: A001 (mirrors the core's name)
argmax = getattr(_core, "argmax", _argmax)
var = getattr(_core, "var", _var)

NAMES = ("softmax", "log_softmax", "logsumexp", "max", "argmax", "var")
