"""Shared test machinery: one table-driven op checker, an error checker and input layouts.

check_op(name, lamina_fn, numpy_fn, inputs) runs an op on numpy-made inputs (any layout:
transposed, step-sliced, broadcast, empty...) and checks
  * values (and result dtype) against numpy computed in float64,
  * gradients against float64 central finite differences of the lamina op itself,
  * values and gradients against PyTorch when it is installed and `torch_fn` is given.
"""

from __future__ import annotations

import numpy as np
import pytest

import lamina as lm

try:  # optional cross-check
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

FLOAT_DTYPES = ("float32", "float64")
# Relative tolerance on values, by result dtype and by kind of op. Elementwise float32
# results are within a few ulps; reductions and matmul accumulate rounding over many terms.
RTOL = {
    "elementwise": {"float32": 1e-5, "float64": 1e-12, "float16": 1e-3, "bfloat16": 8e-3},
    "reduction": {"float32": 1e-4, "float64": 1e-10, "float16": 1e-2, "bfloat16": 5e-2},
}
RTOL["matmul"] = RTOL["reduction"]
GRAD_EPS = 1e-6  # central-difference step (float64)
GRAD_RTOL, GRAD_ATOL = 1e-5, 1e-7


# ----------------------------------------------------------------------------- inputs
def make_input(shape, kind="contiguous", *, low=-2.0, high=2.0, dtype="float64", rng=None, avoid=None):
    """A numpy array of `shape` (logical) with the memory layout named by `kind`.

    kinds: "contiguous", "transposed" (a .T view of the reversed shape), "sliced"
    (every other element of a larger array along each axis: non-contiguous), "broadcast"
    (a stride-0 view of a smaller array), "empty" (a zero-size axis is prepended), "size1" (a
    size-1 axis is prepended). `avoid` is a list of points values keep 0.05 away from (kinks).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    shape = tuple(shape)

    def values(s):
        v = rng.uniform(low, high, size=s)
        for p in avoid or ():
            near = np.abs(v - p) < 0.05
            v[near] = p + np.where(v[near] >= p, 0.05, -0.05)
        return v.astype(dtype) if np.issubdtype(np.dtype(dtype), np.floating) else np.round(v).astype(dtype)

    if kind == "contiguous":
        return values(shape)
    if kind == "transposed":
        out = values(shape[::-1]).T
    elif kind == "sliced":
        out = values(tuple(2 * n for n in shape))[tuple(slice(None, None, 2) for _ in shape)]
    elif kind == "broadcast":
        small = values(shape[1:] if shape else ())
        out = np.broadcast_to(small, shape)
    elif kind == "empty":
        return values((0,) + shape)
    elif kind == "size1":
        return values((1,) + shape)
    else:
        raise ValueError(f"make_input: unknown kind {kind!r}")
    return np.asarray(out)


LAYOUTS = ("contiguous", "transposed", "sliced", "broadcast", "empty", "size1")


def cast_keep_layout(arr, dtype):
    """`arr` converted to `dtype` with the same element strides (so a view stays a view)."""
    arr = np.asarray(arr)
    dtype = np.dtype(dtype)
    if arr.dtype == dtype:
        return arr
    if arr.size == 0 or arr.ndim == 0 or arr.flags.c_contiguous:
        return arr.astype(dtype)
    estrides = [s // arr.itemsize for s in arr.strides]
    lo = sum((n - 1) * s for n, s in zip(arr.shape, estrides) if s < 0)
    hi = sum((n - 1) * s for n, s in zip(arr.shape, estrides) if s > 0)
    buf = np.zeros(hi - lo + 1, dtype)
    view = np.lib.stride_tricks.as_strided(buf[-lo:], arr.shape, [s * dtype.itemsize for s in estrides])
    view[...] = arr  # aliased (stride-0) elements receive equal values
    return view


def to_lamina(arr, dtype=None):
    """A lamina tensor viewing a numpy array (same strides), converted to `dtype` first."""
    if not isinstance(arr, np.ndarray):
        return arr  # Python scalars and other objects pass through
    if dtype is not None and dtype not in ("bfloat16",) and arr.dtype.kind == "f":
        arr = cast_keep_layout(arr, dtype)
    t = lm.asarray(arr)
    if dtype == "bfloat16" and arr.dtype.kind == "f":
        t = t.astype("bfloat16")
    return t


def to_numpy64(t):
    """A lamina tensor's values as a float64 (or bool/int) numpy array."""
    a = np.array(t.numpy())
    return a.astype(np.float64) if a.dtype.kind == "f" else a


# ----------------------------------------------------------------------------- check_op
def _is_float_array(x):
    return isinstance(x, np.ndarray) and x.dtype.kind == "f"


def check_values(name, got, ref, dtype, kind="elementwise", rtol=None, atol=None, out_dtype=None):
    """One output against a float64 numpy reference, with NaN/Inf required in the same places."""
    ref = np.asarray(ref)
    if out_dtype is None:
        out_dtype = "bool" if ref.dtype == np.bool_ else dtype if ref.dtype.kind == "f" else None
    if out_dtype is not None:
        assert got.dtype == out_dtype, f"{name}[{dtype}]: result dtype {got.dtype}, expected {out_dtype}"
    assert tuple(got.shape) == ref.shape, f"{name}[{dtype}]: shape {tuple(got.shape)}, expected {ref.shape}"
    rtol = RTOL[kind].get(got.dtype, 1e-12) if rtol is None else rtol
    atol = rtol / 10 if atol is None else atol
    np.testing.assert_allclose(to_numpy64(got), ref, rtol=rtol, atol=atol, equal_nan=True,
                               err_msg=f"{name}[{dtype}] values differ from numpy")


def check_op(name, lamina_fn, numpy_fn, inputs, *, torch_fn=None, grad=True, rtol=None, atol=None,
             kind="elementwise", dtypes=FLOAT_DTYPES, out_dtype=None, grad_argnums=None, seed=0):
    """Checks `lamina_fn(*tensors)` against `numpy_fn(*arrays)` for every dtype in `dtypes`.

    inputs: numpy arrays (any layout; float arrays are converted to each dtype with their
    layout kept, others are passed as they are) or Python scalars. kind: "elementwise",
    "reduction" or "matmul" (chooses the default tolerance). grad: also check gradients of
    the float inputs (or of `grad_argnums`) against central differences in float64.
    """
    for dtype in dtypes:
        tensors = [to_lamina(x, dtype) for x in inputs]
        got = lamina_fn(*tensors)
        # The reference sees exactly the (rounded) values lamina saw, in float64.
        ref = numpy_fn(*[to_numpy64(t) if isinstance(t, lm.Tensor) else t for t in tensors])
        check_values(name, got, ref, dtype, kind, rtol, atol, out_dtype)
    if grad and (grad_argnums or any(_is_float_array(x) for x in inputs)):  # int/bool ops: values only
        check_grad(name, lamina_fn, inputs, argnums=grad_argnums, seed=seed)
    if torch_fn is not None:
        check_torch(name, lamina_fn, torch_fn, inputs, grad=grad, argnums=grad_argnums, seed=seed)


def _single_output(lamina_fn):
    """lamina_fn with a list/tuple of outputs flattened into one vector (split, chunk...)."""
    def fn(*args):
        out = lamina_fn(*args)
        if isinstance(out, (list, tuple)):
            return lm.concatenate([o.reshape(-1) for o in out])
        return out
    return fn


def _grad_setup(lamina_fn, inputs, argnums, seed):
    argnums = [i for i, x in enumerate(inputs) if _is_float_array(x)] if argnums is None else list(argnums)
    xs = [to_lamina(x, "float64") for x in inputs]
    for i in argnums:
        xs[i].requires_grad = True
    out = lamina_fn(*xs)
    weights = np.random.default_rng(seed).standard_normal(tuple(out.shape))
    return argnums, xs, out, weights


def numeric_grad(lamina_fn, inputs, i, weights, eps=GRAD_EPS):
    """d sum(lamina_fn(*inputs) * weights) / d inputs[i] by float64 central differences."""
    base = np.array(inputs[i], dtype=np.float64)  # contiguous copy: each element moves alone
    num = np.zeros_like(base)
    w = lm.tensor(weights, dtype="float64")
    with lm.no_grad():
        for j in np.ndindex(base.shape):
            total = 0.0
            for sign in (1.0, -1.0):
                pert = base.copy()
                pert[j] += sign * eps
                args = [to_lamina(x, "float64") for x in inputs]
                args[i] = lm.tensor(pert, dtype="float64")
                total += sign * float(lm.sum(lamina_fn(*args) * w).item())
            num[j] = total / (2 * eps)
    return num


def check_grad(name, lamina_fn, inputs, *, argnums=None, seed=0, rtol=GRAD_RTOL, atol=GRAD_ATOL):
    """Autograd gradients (float64) of sum(out * random weights) vs central differences.

    `lamina_fn` may return a tensor or a list of tensors."""
    lamina_fn = _single_output(lamina_fn)
    argnums, xs, out, weights = _grad_setup(lamina_fn, inputs, argnums, seed)
    assert out.dtype == "float64", f"{name}: float64 inputs gave {out.dtype}"
    scalar = lm.sum(out * lm.tensor(weights, dtype="float64"))
    grads = lm.grad(scalar, [xs[i] for i in argnums], allow_unused=True)
    for i, g in zip(argnums, grads):
        expected = numeric_grad(lamina_fn, inputs, i, weights)
        got = np.zeros(expected.shape) if g is None else to_numpy64(g)
        assert got.shape == expected.shape, f"{name}: gradient of input {i} has shape {got.shape}, expected {expected.shape}"
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol,
                                   err_msg=f"{name}: gradient of input {i} differs from finite differences")
    return grads


def check_torch(name, lamina_fn, torch_fn, inputs, *, grad=True, argnums=None, seed=0):
    """Values and gradients (float64) against PyTorch; skipped when torch is missing."""
    if torch is None:
        pytest.skip("PyTorch not installed")
    argnums, xs, out, weights = _grad_setup(lamina_fn, inputs, argnums if grad else [], seed)
    targs = [torch.tensor(np.array(x), requires_grad=i in argnums) if isinstance(x, np.ndarray) else x
             for i, x in enumerate(inputs)]
    tout = torch_fn(*targs)
    np.testing.assert_allclose(to_numpy64(out), tout.detach().numpy(), rtol=1e-10, atol=1e-12, equal_nan=True,
                               err_msg=f"{name}: values differ from PyTorch")
    if not grad or not argnums:
        return
    scalar = lm.sum(out * lm.tensor(weights, dtype="float64"))
    grads = lm.grad(scalar, [xs[i] for i in argnums], allow_unused=True)
    tgrads = torch.autograd.grad((tout * torch.tensor(weights)).sum(), [targs[i] for i in argnums],
                                 allow_unused=True)
    for i, g, tg in zip(argnums, grads, tgrads):
        got = np.zeros(np.shape(inputs[i])) if g is None else to_numpy64(g)
        exp = np.zeros(np.shape(inputs[i])) if tg is None else tg.numpy()
        np.testing.assert_allclose(got, exp, rtol=1e-9, atol=1e-12,
                                   err_msg=f"{name}: gradient of input {i} differs from PyTorch")


# ----------------------------------------------------------------------------- errors
def check_errors(fn, cases):
    """Each case is (args, ExceptionType, substring): fn(*args) must raise that type with a
    message containing the substring. `args` may be a tuple or a single non-tuple value."""
    for args, exc, text in cases:
        args = args if isinstance(args, tuple) else (args,)
        with pytest.raises(exc) as info:
            fn(*args)
        assert text in str(info.value), f"{fn!r}{args!r}: message {str(info.value)!r} lacks {text!r}"
