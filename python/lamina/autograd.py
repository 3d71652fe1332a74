"""Autograd API on top of the native engine: grad modes, functional gradients,
custom Python functions and finite-difference gradient checking."""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from lamina import _core
from lamina._core import Tensor


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled: bool):
        self._enabled = enabled

    def __enter__(self):
        self._prev = _core.is_grad_enabled()
        _core.set_grad_enabled(self._enabled)
        return self

    def __exit__(self, *exc):
        _core.set_grad_enabled(self._prev)
        return False


def no_grad():
    """Context manager / decorator: ops inside record no gradient history."""
    return _GradMode(False)


def enable_grad():
    """Context manager / decorator: turns gradient recording back on inside no_grad."""
    return _GradMode(True)


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def value_and_grad(fn, argnums=0):
    """Returns f(*args) -> (fn(*args), gradient of fn w.r.t. args[argnums]).

    fn must return a one-element tensor. argnums may be an int or a tuple of ints.
    """
    many = isinstance(argnums, (tuple, list))
    nums = list(argnums) if many else [argnums]

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        args = list(args)
        for i in nums:
            if not isinstance(args[i], Tensor):
                raise TypeError(f"value_and_grad: argument {i} must be a Tensor, got {type(args[i]).__name__}")
            args[i] = args[i].detach()
            args[i].requires_grad = True
        with enable_grad():
            out = fn(*args, **kwargs)
        if not isinstance(out, Tensor) or out.size != 1:
            raise ValueError("value_and_grad: fn must return a one-element tensor")
        # A function that does not depend on its inputs has zero gradient (not an error).
        grads = (_core.grad([out], [args[i] for i in nums], [], False, False, True) if out.requires_grad
                 else [None] * len(nums))
        grads = [g if g is not None else _core.zeros_like(args[i]) for g, i in zip(grads, nums)]
        return out.detach(), (tuple(grads) if many else grads[0])

    return wrapped


def grad(fn_or_outputs, inputs=None, grad_outputs=None, retain_graph=False, create_graph=False,
         allow_unused=False, argnums=0):
    """Two forms.

    grad(fn, argnums=0) -> a function returning the gradient of fn (JAX style).
    grad(outputs, inputs, grad_outputs=None, ...) -> gradients (torch.autograd.grad style).
    """
    if callable(fn_or_outputs) and not isinstance(fn_or_outputs, Tensor):
        vg = value_and_grad(fn_or_outputs, argnums)

        @functools.wraps(fn_or_outputs)
        def g(*args, **kwargs):
            return vg(*args, **kwargs)[1]

        return g
    outputs = _as_list(fn_or_outputs)
    inputs_list = _as_list(inputs)
    grads = [] if grad_outputs is None else _as_list(grad_outputs)
    res = _core.grad(outputs, inputs_list, grads, retain_graph, create_graph, allow_unused)
    return tuple(res)


class _Context:
    """What a Function's forward can stash for its backward."""

    def __init__(self):
        self.saved_tensors = ()

    def save_for_backward(self, *tensors):
        self.saved_tensors = tuple(t.detach() if isinstance(t, Tensor) else t for t in tensors)


class Function:
    """An op defined in Python with its own backward.

    Subclass with static ``forward(ctx, *args)`` and ``backward(ctx, grad)`` (returning one
    gradient per forward argument, None for non-tensors), then call ``MyFn.apply(*args)``.
    """

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        ctx = _Context()
        with no_grad():
            out = cls.forward(ctx, *args)
        if not isinstance(out, Tensor):
            raise TypeError(f"{cls.__name__}.forward must return a Tensor, got {type(out).__name__}")
        tensor_positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        inputs = [args[i] for i in tensor_positions]

        def backward(g):
            grads = cls.backward(ctx, g)
            grads = grads if isinstance(grads, tuple) else (grads,)
            if len(grads) != len(args):
                raise RuntimeError(f"{cls.__name__}.backward returned {len(grads)} gradients for {len(args)} inputs")
            return tuple(grads[i] for i in tensor_positions)

        _core._record_function(cls.__name__, inputs, out, backward)
        return out


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Compares autograd gradients of sum(fn(*inputs) * r) with float64 central differences.

    `inputs` are tensors; those with requires_grad are checked. Returns True, or raises
    (or returns False) describing the first mismatch.
    """
    inputs = [x.astype("float64").detach() if isinstance(x, Tensor) and x.requires_grad else x for x in inputs]
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.dtype == "float64"]
    for i in checked:
        inputs[i].requires_grad = True
    out = fn(*inputs)
    rng = np.random.default_rng(0)
    weights = _core.tensor(rng.standard_normal(out.shape), dtype="float64")
    analytic = _core.grad([_core.sum(out * weights)], [inputs[i] for i in checked], [], False, False, True)
    with no_grad():
        for slot, i in enumerate(checked):
            x = inputs[i]
            base = x.numpy().copy()
            numeric = np.zeros_like(base)
            flat = numeric.reshape(-1)
            for j in range(base.size):
                for sign in (1, -1):
                    pert = base.copy().reshape(-1)
                    pert[j] += sign * eps
                    args = list(inputs)
                    args[i] = _core.tensor(pert.reshape(base.shape), dtype="float64")
                    val = float(_core.sum(fn(*args) * weights).item())
                    flat[j] += sign * val / (2 * eps)
            got = np.zeros_like(base) if analytic[slot] is None else analytic[slot].numpy()
            if not np.allclose(got, numeric, atol=atol, rtol=rtol):
                msg = (f"gradcheck: gradient of input {i} differs from finite differences\n"
                       f"analytic:\n{got}\nnumeric:\n{numeric}")
                if raise_exception:
                    raise AssertionError(msg)
                return False
    return True
