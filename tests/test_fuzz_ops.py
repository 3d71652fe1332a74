"""Argument fuzzing of every public op (module functions, indexing, Tensor methods).

Each op has a generator of mostly-valid arguments (so the kernels and their backward run
on random shapes: empty axes, size-1 axes, non-contiguous views, NaN/Inf, every dtype),
then one argument in three is mutated into something wrong: a tensor of another shape or
dtype, a negative or huge number, an axis out of range, junk of a wrong Python type.

Contract checked for every call:
  * the call returns a well-formed result, or raises ValueError / TypeError / IndexError /
    MemoryError with a non-empty message that names the op (its Python or C++ name);
  * when the result requires grad, backward runs through it without any exception;
  * no other exception, and no native crash (a crash kills the test process).

The normal suite runs a fixed number of calls per op (about 4,000 in total); set
LAMINA_FUZZ_LONG=1 for the long mode (>= 12,000 calls, several seeds). LAMINA_FUZZ_SEED
picks another seed; a failure message prints the op, the seed and the call index.
"""

from __future__ import annotations

import operator
import os
import sys

import numpy as np
import pytest

import lamina as lm
import lamina._core as core

LONG = os.environ.get("LAMINA_FUZZ_LONG") == "1"
SEED = int(os.environ.get("LAMINA_FUZZ_SEED", "1234"))
CALLS_PER_OP = 300 if LONG else 60
ALLOWED = (ValueError, TypeError, IndexError, MemoryError)

DTYPES = ["float32", "float64", "float16", "bfloat16", "int32", "int64", "uint8", "bool"]
FLOAT_DTYPES = ["float32", "float64"]
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e-30, 65504.0, 1e-45]
HUGE = [2**40, 2**48, 2**62, 2**63 - 1, -(2**63)]
JUNK = [None, "abc", object(), [1, "a"], {"a": 1}, 1.5j, [[1, 2], [3]], b"xy", 2**70, -(2**70), float("nan"),
        (), [], lm.Tensor]

# C++ / alternative spellings used in messages, by bound name.
ALIASES = {
    "subtract": ["sub"], "multiply": ["mul"], "divide": ["div"], "power": ["pow"], "equal": ["eq"],
    "not_equal": ["ne"], "less": ["lt"], "less_equal": ["le"], "greater": ["gt"], "greater_equal": ["ge"],
    "negative": ["neg"], "expand_dims": ["unsqueeze"], "broadcast_to": ["expand"], "transpose": ["permute"],
    "swapaxes": ["transpose"], "clip": ["clamp"], "setitem": ["setitem"],
    "getitem": ["index", "indices", "slice", "ellipsis", "mask", "getitem"],  # numpy-style index messages
    "__bool__": ["truth value"], "__len__": ["len()"], "__index__": ["index"], "item": ["Python scalar"],
    "requires_grad_": ["require gradients", "requires_grad"], "max": ["amax"], "min": ["amin"], "std": ["std_dev", "var"],
    "concat": ["concatenate"], "asarray": ["tensor"], "scaled_dot_product_attention_reference":
    ["scaled_dot_product_attention"], "randn": ["normal"], "rand": ["uniform"], "chunk": ["split"],
    "lstm_cell": ["lstm"], "gru_cell": ["gru"], "logsumexp": ["amax"], "full_like": ["full"],
    "zeros_like": ["zeros", "full"], "ones_like": ["ones", "full"], "empty_like": ["empty"], "conv1d": ["conv2d"],
    "avg_pool1d": ["avg_pool2d"], "max_pool1d": ["max_pool2d"], "global_avg_pool2d": ["mean"],
    "flatten": ["reshape"], "T": ["permute"], "mT": ["transpose"], "view": ["reshape"], "expand": ["expand"],
}
# RuntimeError is allowed only for these documented misuses of autograd.
AUTOGRAD_MISUSE = {
    "backward": ["does not require grad", "implicitly created only for scalar outputs", "second time"],
    "grad": ["does not require grad", "was not used in the graph", "implicitly created only for scalar outputs"],
    "retain_grad": ["does not require grad"],
    "setitem": ["leaf tensor that requires grad"], "copy_": ["leaf tensor that requires grad"],
    "fill_": ["leaf tensor that requires grad"],
}
# Functions that are not ops on user data: fuzzed separately below or not at all.
NOT_FUZZED = {
    "_record_function": "internal hook of autograd.Function (covered by test_autograd)",
    "_seed": "internal; lamina.random.seed validates its argument",
    "_get_rng_state": "internal; lamina.random.get_state",
    "_set_rng_state": "internal; lamina.random.set_state",
    "set_num_threads": "global setting; fuzzed with restoring in test_set_num_threads_args",
    "set_grad_enabled": "global setting; fuzzed with restoring in test_grad_mode_args",
    "_set_anomaly_hook": "internal hook of lamina.debug.detect_anomaly (covered by test_reliability)",
}


# ----------------------------------------------------------------------------- generation
class Gen:
    def __init__(self, seed):
        self.r = np.random.default_rng(seed)

    def coin(self, p=0.5):
        return bool(self.r.random() < p)

    def pick(self, seq):
        return seq[int(self.r.integers(len(seq)))]

    def int(self, lo, hi):
        return int(self.r.integers(lo, hi + 1))

    def shape(self, ndim=None, lo=0, hi=4):
        ndim = self.int(0, 4) if ndim is None else ndim
        return tuple(self.int(lo, hi) if self.coin(0.9) else self.pick([0, 1]) for _ in range(ndim))

    def dtype(self, float_bias=0.6):
        return self.pick(FLOAT_DTYPES) if self.coin(float_bias) else self.pick(DTYPES)

    def values(self, shape, dtype):
        if dtype == "bool":
            return self.r.random(shape) < 0.5
        if dtype in ("int32", "int64", "uint8"):
            hi = 255 if dtype == "uint8" else 9
            return self.r.integers(0 if dtype == "uint8" else -9, hi + 1, size=shape).astype(dtype)
        v = self.r.uniform(-3, 3, size=shape)
        if v.size and self.coin(0.25):
            flat = v.reshape(-1)
            for _ in range(self.int(1, 3)):
                flat[self.int(0, flat.size - 1)] = self.pick(SPECIAL)
        return v

    def tensor(self, shape=None, dtype=None, grad=None, layout=None):
        """A tensor with the given logical shape; maybe a non-contiguous view."""
        shape = self.shape() if shape is None else tuple(shape)
        dtype = self.dtype() if dtype is None else dtype
        layout = layout or self.pick(["contiguous", "contiguous", "transposed", "strided", "broadcast"])
        if layout == "transposed" and len(shape) >= 2:
            base = lm.tensor(self.values(shape[::-1], dtype), dtype=dtype)
            t = lm.transpose(base)
        elif layout == "strided" and len(shape) >= 1:
            big = tuple(2 * n for n in shape)
            base = lm.tensor(self.values(big, dtype), dtype=dtype)
            t = base[tuple(slice(None, None, 2) for _ in shape)]
        elif layout == "broadcast" and len(shape) >= 1:
            base = lm.tensor(self.values((1,) + shape[1:], dtype), dtype=dtype)
            t = lm.broadcast_to(base, shape)
        else:
            t = lm.tensor(self.values(shape, dtype), dtype=dtype)
        assert tuple(t.shape) == shape
        grad = self.coin(0.3) if grad is None else grad
        if grad and dtype in ("float32", "float64") and layout != "broadcast":
            t = t.detach().requires_grad_()
        return t

    def ftensor(self, shape, grad=None):
        return self.tensor(shape, self.pick(FLOAT_DTYPES) if self.coin(0.9) else self.dtype(), grad)

    def axis(self, ndim):
        if self.coin(0.85):
            return self.int(-max(ndim, 1), max(ndim, 1) - 1)
        return self.pick([ndim, -ndim - 1, 7, -7] + HUGE)

    def axes(self, ndim):
        c = self.int(0, 3)
        if c == 0:
            return None
        if c == 1:
            return self.axis(ndim)
        return tuple(self.axis(ndim) for _ in range(self.int(0, max(ndim, 1))))

    def junk(self):
        return self.pick(JUNK)

    def wrong(self, like=None):
        """Something that is probably a wrong argument."""
        c = self.int(0, 6)
        if c == 0:
            return self.tensor()
        if c == 1:
            return self.pick(HUGE)
        if c == 2:
            return self.int(-3, 0)
        if c == 3:
            return self.pick([float("nan"), float("inf"), -1.5, 0.5])
        if c == 4 and isinstance(like, lm.Tensor):
            return self.tensor(self.shape(like.ndim), self.dtype())
        if c == 5:
            return self.pick(["same", "valid", "bad", "", "float32", "none"])
        return self.junk()


# ----------------------------------------------------------------------------- op table
def _unary(g):
    return (g.tensor(),), {}


def _binary(g):
    a = g.tensor()
    c = g.int(0, 4)
    if c == 0:
        b = g.tensor(a.shape, grad=None)
    elif c == 1:  # broadcastable
        b = g.tensor(tuple(d if g.coin() else 1 for d in a.shape)[g.int(0, a.ndim):])
    elif c == 2:
        b = g.pick([2, -1.5, float("nan"), True, 0])
    elif c == 3 and a.ndim >= 1:  # matmul-compatible
        b = g.tensor((a.shape[-1], g.int(0, 3)))
    else:
        b = g.tensor()
    return ((a, b) if g.coin() else (b, a)), {}


def _reduction(g):
    x = g.tensor()
    return (x, g.axes(x.ndim), g.coin()), {}


def _moment(g):
    x = g.tensor()
    return (x, g.axes(x.ndim), g.coin(), g.pick([0, 1, 0.5, 5, -1])), {}


def _argred(g):
    x = g.tensor()
    return (x, g.pick([None, g.axis(x.ndim)]), g.coin()), {}


def _axis_op(g):
    x = g.tensor()
    return (x, g.axis(x.ndim)), {}


def _shape_for(g, x):
    """A target shape: the same size permuted, with -1, or something wrong."""
    c = g.int(0, 4)
    if c == 0:
        return tuple(reversed(x.shape))
    if c == 1:
        return (-1,)
    if c == 2 and x.ndim:
        return (x.shape[0], -1)
    if c == 3:
        return g.pick([(2**31, 2**31, 4), (2**40, 2**40), (2**62,), (-1, -1), (-2,), (1.5,), "x", None, (2**48,)])
    return g.shape()


def _create_shape(g):
    c = g.int(0, 5)
    if c == 0:
        return g.pick([(2**62,), (2**40, 2**40), (2**31, 2**31, 8), (2**48,), (2**63 - 1,), (-1,), (3, -2), (1.5,),
                       "ab", None, [[2]], (2**64,)])
    return g.shape()


def _ctor(g):
    return (_create_shape(g), g.pick([None] + DTYPES + ["complex64", 3])), {}


def _like(g):
    return (g.tensor(), g.pick([None] + DTYPES)), {}


def _index_tensor(g, n, shape=None):
    shape = g.shape(g.int(0, 2)) if shape is None else shape
    hi = max(n, 1)
    arr = g.r.integers(-hi - 1 if g.coin(0.2) else -hi, hi + (1 if g.coin(0.2) else 0), size=shape)
    t = lm.tensor(arr, dtype=g.pick(["int64", "int64", "int32", "uint8", "float32", "bool"]) if g.coin(0.2)
                  else "int64")
    return t


def _take(g):
    x = g.tensor(g.shape(g.int(1, 3)))
    ax = g.axis(x.ndim)
    n = x.shape[ax] if -x.ndim <= ax < x.ndim else 3
    return (x, _index_tensor(g, n), ax), {}


def _gather(g):
    x = g.tensor(g.shape(g.int(1, 3), lo=1))
    ax = g.axis(x.ndim)
    n = x.shape[ax] if -x.ndim <= ax < x.ndim else 3
    ishape = tuple(g.int(0, d) for d in x.shape) if g.coin(0.8) else g.shape()
    return (x, ax, _index_tensor(g, n, ishape)), {}


def _scatter_add(g):
    (x, ax, idx), _ = _gather(g)
    src = g.tensor(idx.shape, x.dtype if g.coin(0.8) else None) if g.coin(0.8) else g.tensor()
    return (x, ax, idx, src), {}


def _one_hot(g):
    n = g.int(-1, 5) if g.coin(0.9) else g.pick(HUGE)
    return (_index_tensor(g, max(n, 1)), n, g.pick([None] + DTYPES)), {}


def _tensor_list(g):
    shape = g.shape(g.int(0, 3))
    ts = []
    for _ in range(g.int(0, 3)):
        s = list(shape)
        if s and g.coin(0.4):
            s[g.int(0, len(s) - 1)] = g.int(0, 3)
        ts.append(g.tensor(tuple(s)) if g.coin(0.9) else g.pick([1.5, [1, 2], g.tensor()]))
    return ts, len(shape)


def _join(g):
    ts, nd = _tensor_list(g)
    return (ts, g.axis(nd + 1)), {}


def _split(g):
    x = g.tensor(g.shape(g.int(1, 3)))
    ios = g.pick([g.int(-1, 4), [1, 2], [2, 1], [0, 5, 3], [], g.pick(HUGE), [-1], (1,)])
    return (x, ios, g.axis(x.ndim)), {}


def _chunk(g):
    x = g.tensor(g.shape(g.int(1, 3)))
    return (x, g.int(-1, 5), g.axis(x.ndim)), {}


def _pad(g):
    x = g.tensor(g.shape(g.int(1, 3), lo=0))
    c = g.int(0, 3)
    if c == 0:
        pw = g.int(0, 3)
    elif c == 1:
        pw = (g.int(0, 3), g.int(0, 3))
    elif c == 2:
        pw = [(g.int(-1, 4), g.int(0, 4)) for _ in range(x.ndim)]
    else:
        pw = g.pick([(2**62, 1), [(1, 1)] * 9, (-3,), "x", [(1, 2, 3)]])
    return (x, pw, g.pick(["constant", "edge", "reflect", "wrap", "bad"]), g.pick([0.0, 1.5, float("nan")])), {}


def _einsum(g):
    specs = [("ij,jk->ik", [(2, 3), (3, 4)]), ("ii->i", [(3, 3)]), ("ij->", [(2, 3)]), ("...i,i->...", [(2, 3), (3,)]),
             ("bij,bjk->bik", [(2, 2, 3), (2, 3, 1)]), ("i,i", [(0,), (0,)]), ("ij,kl->ijkl", [(1, 2), (2, 1)]),
             ("ij->ji", [(0, 3)]), ("i,j->ij", [(3,), (4,)]), ("ab,bc,cd->ad", [(2, 3), (3, 2), (2, 2)])]
    sub, shapes = g.pick(specs)
    ops = [g.ftensor(s) for s in shapes]
    if g.coin(0.3):
        sub = g.pick(["ij,jk", "ij->ik", "i->ii", "ab,bc->a", "->", "", "i..j,...->", "ij,jk->kk", "aA->a",
                      "ij,ij,ij->", "a" * 60, "i->j", "..->", "ij->i,j", "ijk", "i,i->i->i"])
    if g.coin(0.2):
        ops = ops[:-1] if g.coin() else ops + [g.tensor()]
    return (sub, *ops), {}


def _conv2d(g):
    groups = g.pick([1, 1, 2])
    n, cg, cout_g = g.int(0, 2), g.int(1, 2), g.int(1, 2)
    kh, kw = g.int(1, 3), g.int(1, 3)
    x = g.ftensor((n, cg * groups, g.int(0, 6), g.int(0, 6)))
    w = g.ftensor((cout_g * groups, cg, kh, kw))
    b = g.pick([None, g.ftensor((cout_g * groups,))])
    stride = g.pick([1, 2, (1, 2), 3])
    padding = g.pick([0, 1, "same", "valid", (1, 0), ((0, 1), (1, 0)), "SAME"])
    dilation = g.pick([1, 2, (2, 1)])
    return (x, w, b, stride, padding, dilation, groups), {}


def _linear(g):
    x = g.ftensor(tuple(g.int(0, 4) for _ in range(g.int(1, 3))))
    fan_in = x.shape[-1] if x.ndim and g.int(0, 5) else g.int(0, 3)  # sometimes mismatched
    w = g.pick([g.ftensor((fan_in, g.int(0, 4))), g.ftensor((fan_in,)), g.tensor()])
    b = g.pick([None, g.ftensor((w.shape[-1],)) if w.ndim else None, g.ftensor((g.int(0, 3),))])
    return (x, w, b, g.pick(["linear", "relu", "gelu_tanh", "gelu"])), {}


def _conv1d(g):
    groups = g.pick([1, 1, 2])
    n, cg, cout_g = g.int(0, 2), g.int(1, 2), g.int(1, 2)
    x = g.ftensor((n, cg * groups, g.int(0, 7)))
    w = g.ftensor((cout_g * groups, cg, g.int(1, 3)))
    b = g.pick([None, g.ftensor((cout_g * groups,))])
    return (x, w, b, g.pick([1, 2]), g.pick([0, 1, "same", "valid", (0, 2)]), g.pick([1, 2]), groups), {}


def _conv_t(g):
    groups = g.pick([1, 1, 2])
    n, cg, cout_g = g.int(0, 2), g.int(1, 2), g.int(1, 2)
    x = g.ftensor((n, cg * groups, g.int(0, 5), g.int(0, 5)))
    w = g.ftensor((cg * groups, cout_g, g.int(1, 3), g.int(1, 3)))
    b = g.pick([None, g.ftensor((cout_g * groups,))])
    return (x, w, b, g.pick([1, 2]), g.pick([0, 1]), g.pick([0, 1]), groups, g.pick([1, 2])), {}


def _conv_grad_input(g):
    (x, w, _, stride, padding, dilation, groups), _ = _conv2d(g)
    try:
        out = lm.conv2d(x.detach(), w.detach(), None, stride, padding, dilation, groups)
        gshape = out.shape
    except ALLOWED:
        gshape = g.shape(4)
    return (g.ftensor(gshape), w, tuple(x.shape) if g.coin(0.9) else _shape_for(g, x), stride, padding, dilation,
            groups), {}


def _conv_grad_weight(g):
    (x, w, _, stride, padding, dilation, groups), _ = _conv2d(g)
    try:
        out = lm.conv2d(x.detach(), w.detach(), None, stride, padding, dilation, groups)
        gshape = out.shape
    except ALLOWED:
        gshape = g.shape(4)
    return (x, g.ftensor(gshape), tuple(w.shape) if g.coin(0.9) else _shape_for(g, w), stride, padding, dilation,
            groups), {}


def _pool2d(g):
    x = g.ftensor((g.int(0, 2), g.int(1, 2), g.int(0, 6), g.int(0, 6)))
    k = g.pick([1, 2, 3, (2, 1), 0, -1])
    return (x, k, g.pick([None, 1, 2, (1, 2), 0]), g.pick([0, 1, (1, 0), 2])), {}


def _avg_pool2d(g):
    a, _ = _pool2d(g)
    return a + (g.coin(),), {}


def _pool1d(g):
    x = g.ftensor((g.int(0, 2), g.int(0, 2), g.int(0, 7)))
    return (x, g.pick([1, 2, 3, 0, -1]), g.pick([None, 1, 2, 0]), g.pick([0, 1, 2])), {}


def _avg_pool1d(g):
    a, _ = _pool1d(g)
    return a + (g.coin(),), {}


def _rnn_dims(g):
    return g.int(0, 2), g.int(0, 4), g.int(1, 3), g.int(1, 3)  # batch, T, I, H


def _lstm(g):
    b, t, i, h = _rnn_dims(g)
    mask = g.pick([None, lm.tensor(g.r.random((b, t)) < 0.7)])
    return (g.ftensor((b, t, i)), g.pick([None, g.ftensor((b, h))]), g.pick([None, g.ftensor((b, h))]),
            g.ftensor((4 * h, i)), g.ftensor((4 * h, h)), g.ftensor((4 * h,)), mask), {}


def _gru(g):
    b, t, i, h = _rnn_dims(g)
    mask = g.pick([None, lm.tensor(g.r.random((b, t)) < 0.7)])
    return (g.ftensor((b, t, i)), g.pick([None, g.ftensor((b, h))]), g.ftensor((3 * h, i)), g.ftensor((3 * h, h)),
            g.ftensor((3 * h,)), g.ftensor((3 * h,)), mask), {}


def _lstm_cell(g):
    b, _, i, h = _rnn_dims(g)
    return (g.ftensor((b, i)), g.ftensor((b, h)), g.ftensor((b, h)), g.ftensor((4 * h, i)), g.ftensor((4 * h, h)),
            g.ftensor((4 * h,))), {}


def _gru_cell(g):
    b, _, i, h = _rnn_dims(g)
    return (g.ftensor((b, i)), g.ftensor((b, h)), g.ftensor((3 * h, i)), g.ftensor((3 * h, h)), g.ftensor((3 * h,)),
            g.ftensor((3 * h,))), {}


def _attention(g):
    batch = g.shape(g.int(0, 2), lo=0, hi=2)
    lq, lk, d, dv = g.int(0, 5), g.int(0, 5), g.int(1, 4), g.int(1, 4)
    q, k, v = g.ftensor(batch + (lq, d)), g.ftensor(batch + (lk, d)), g.ftensor(batch + (lk, dv))
    mask = g.pick([None, lm.tensor(g.r.random((lq, lk)) < 0.7), g.ftensor((lq, lk), grad=False),
                   g.ftensor((1, lk), grad=False)])
    return (q, k, v, mask, g.coin(), g.pick([0.0, 0.0, 0.5, 1.0, -0.1]), g.pick([None, 0.5, 0.0, float("nan")])), {}


def _clip(g):
    return (g.tensor(), g.pick([None, -1.0, 0.5, float("nan")]), g.pick([None, 1.0, -2.0, float("inf")])), {}


def _where(g):
    x = g.tensor()
    return (g.tensor(x.shape, "bool") if g.coin(0.7) else g.tensor(), x, g.pick([g.tensor(x.shape), 1.5, g.tensor()])), {}


def _arange(g):
    return (g.pick([0, 3, -2.5, 1e18, float("nan")]), g.pick([None, 5, 0, 1e300, float("inf")]),
            g.pick([1, 0.5, -1, 0, 1e-300]), g.pick([None, "float32", "int64", "int32", "bool", "uint8"])), {}


def _linspace(g):
    return (g.pick([0.0, float("nan"), -1e308]), g.pick([1.0, 1e308, float("inf")]), g.pick([0, 1, 5, -1, 2**40]),
            g.coin(), g.pick([None, "float64", "int32", "bool"])), {}


def _eye(g):
    return (g.pick([0, 1, 3, -1, 2**40]), g.pick([None, 2, 0, -2]), g.pick([0, 1, -4, 2**62]),
            g.pick([None] + DTYPES)), {}


def _full(g):
    return (_create_shape(g), g.pick([0.0, float("nan"), 1e300, -1.0]), g.pick([None] + DTYPES)), {}


def _rand(g):
    shape = _create_shape(g) if g.coin() else (g.int(0, 3), g.int(0, 3))
    args = tuple(shape) if isinstance(shape, tuple) else (shape,)
    return args, {"dtype": g.pick([None] + DTYPES)}


def _randint(g):
    return (g.pick([0, -5, 10, 2**62, -(2**63)]), g.pick([None, 5, -5, 2**63 - 1]), _create_shape(g),
            g.pick([None] + DTYPES)), {}


def _distribution(g):
    return (g.pick([0.0, float("nan"), -1e308]), g.pick([1.0, float("inf"), -1.0, 0.0]), _create_shape(g),
            g.pick([None] + DTYPES)), {}


def _tensor_ctor(g):
    data = g.pick([[1, 2, 3], [[1.0, float("nan")], [2.0, 3.0]], [], [[]], 1.5, True, 2**63, -(2**63) - 1,
                   np.arange(6).reshape(2, 3)[:, ::2], np.zeros((2, 0)), np.array([1 + 2j]), np.array(["a"]),
                   np.zeros(3, dtype=">f4"), [[1, 2], [3]], [lm.ones((2,)), lm.zeros((2,))], g.tensor(),
                   np.float16(3.0), [True, 2, 3.5], "abc", None, {1: 2}, [[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]])
    return (data, g.pick([None] + DTYPES + ["complex64", 7])), {}


def _dlpack(g):
    return (g.pick([g.tensor(), np.arange(4.0), np.arange(6.0).reshape(2, 3)[:, ::2], np.zeros((0, 3)), None, 3,
                    "abc"]),), {}


def _randperm(g):
    return (g.pick([0, 1, 5, -1, 2**62]),), {}


def _dropout_mask(g):
    return (g.tensor(), g.pick([0.0, 0.5, 1.0, -0.1, 1.5, float("nan")])), {}


def _upsample(g):
    return (g.ftensor(g.shape(4, hi=3)), g.pick([1, 2, (2, 1), 0, -1, 2**40])), {}


def _gap(g):
    return (g.ftensor(g.shape(4)), g.coin()), {}


def _flatten(g):
    x = g.tensor()
    return (x, g.axis(x.ndim), g.axis(x.ndim)), {}


def _permute(g):
    x = g.tensor()
    perm = list(g.r.permutation(x.ndim))
    if g.coin(0.3):
        perm = g.pick([perm[:-1], perm + [0], [0] * x.ndim, [2**62] * x.ndim])
    return (x, tuple(int(p) for p in perm)), {}


def _transpose(g):
    x = g.tensor()
    if g.coin():
        return (x, None), {}
    return _permute(g)


def _swapaxes(g):
    x = g.tensor()
    return (x, g.axis(x.ndim), g.axis(x.ndim)), {}


def _squeeze(g):
    x = g.tensor()
    return (x, g.axes(x.ndim)), {}


def _unsqueeze(g):
    x = g.tensor()
    return (x, g.axis(x.ndim + 1)), {}


def _reshape(g):
    x = g.tensor()
    return (x, _shape_for(g, x)), {}


def _broadcast_to(g):
    x = g.tensor(g.shape(g.int(0, 2), hi=2))
    c = g.int(0, 3)
    if c == 0:
        shape = (g.int(0, 3),) + tuple(x.shape)
    elif c == 1:
        shape = tuple(d if d != 1 else g.int(0, 3) for d in x.shape)
    else:
        shape = _shape_for(g, x)
    return (x, shape), {}


def _astype(g):
    return (g.tensor(), g.pick(DTYPES + ["complex64", "float128", "int8", None, 3])), {}


def _cumsum(g):
    x = g.tensor()
    return (x, g.pick([None, g.axis(x.ndim)])), {}


def _leaky(g):
    return (g.tensor(), g.pick([0.01, -1.0, float("nan"), 1e30])), {}


def _gelu(g):
    return (g.tensor(), g.pick([None, True, False, "tanh", "none", "bad", 3])), {}


def _backward_fn(g):
    x = g.ftensor(g.shape(), grad=True)
    y = lm.sum(lm.tanh(x)) if g.coin() else lm.tanh(x)
    grads = [g.pick([g.ftensor(y.shape, grad=False), lm.ones(()), g.tensor()])] if g.coin(0.5) else []
    return ([y] if g.coin(0.9) else [x.detach()], grads, g.coin(), g.coin()), {}


def _grad_fn(g):
    x = g.ftensor(g.shape(), grad=True)
    y = lm.sum(lm.square(x))
    other = g.ftensor((2,), grad=True)
    return ([y], [x] if g.coin(0.8) else [x, other], [], g.coin(), g.coin(), g.coin()), {}


def _retain_grad(g):
    x = g.ftensor(g.shape(), grad=None)
    return (lm.exp(x) if g.coin() else x,), {}


def _no_arguments(g):
    return (), {}


def _norm_params(g, x, axis):
    n = x.shape[axis] if x.ndim and -x.ndim <= axis < x.ndim else g.int(0, 3)
    vec = lambda: g.pick([None, g.ftensor((n,), grad=g.coin()), g.ftensor((g.int(0, 3),)), g.tensor()])
    return vec(), vec()


def _layer_norm(g):
    x = g.ftensor(g.shape(g.int(0, 3)), grad=g.coin())
    axis = g.pick([-1, 0, 1, 5, -7])
    gamma, beta = _norm_params(g, x, axis)
    return (x, gamma, beta, axis, g.pick([1e-5, 0.0, -1.0, float("nan")])), {}


def _batch_norm(g):
    x = g.ftensor(g.shape(g.int(1, 4)), grad=g.coin())
    axis = g.pick([1, -1, 0, 9])
    gamma, beta = _norm_params(g, x, axis)
    n = x.shape[axis] if -x.ndim <= axis < x.ndim else 1
    stats = [g.pick([None, g.ftensor((n,), grad=False), g.tensor()]) for _ in range(2)]
    return (x, gamma, beta, stats[0], stats[1], g.coin(), g.pick([0.99, 2.0, float("nan")]),
            g.pick([1e-3, 0.0, -1.0]), axis), {}


def _cross_entropy(g):
    logits = g.ftensor(g.shape(g.int(0, 3)), grad=g.coin())
    classes = logits.shape[-1] if logits.ndim else 1
    lead = tuple(logits.shape[:-1])
    labels = g.pick([g.tensor(lead, dtype="int64"), g.ftensor(tuple(logits.shape)), g.tensor(),
                     lm.full(lead, classes + g.int(0, 3), dtype="int64")])
    weight = g.pick([None, g.ftensor((classes,)), g.tensor()])
    return (logits, labels, weight, g.pick(["mean", "sum", "none", "bad"])), {}


def _bce(g):
    logits = g.ftensor(g.shape(), grad=g.coin())
    targets = g.pick([g.ftensor(tuple(logits.shape)), g.tensor(), g.ftensor(g.shape())])
    return (logits, targets, g.pick(["mean", "sum", "none", "bad"])), {}


def _param_lists(g, slots):
    shapes = [g.shape(g.int(0, 2)) for _ in range(g.int(0, 3))]
    params = [g.ftensor(s, grad=g.coin(0.2)) for s in shapes]
    others = [[g.pick([g.ftensor(s), g.tensor()]) for s in shapes] for _ in range(slots)]
    if g.coin(0.2) and others:
        others[0] = others[0][:-1]
    return params, others


def _sgd_step(g):
    params, (grads, bufs) = _param_lists(g, 2)
    return (params, grads, g.pick([None, bufs]), g.pick([0.01, -1.0, float("nan")]), g.pick([0.0, 0.9]), g.coin(),
            g.pick([0.0, 1e-4]), g.coin()), {}


def _adam_step(g):
    params, (grads, m, v) = _param_lists(g, 3)
    return (params, grads, m, v, g.pick([1, 0, -3, 2**40]), g.pick([1e-3, float("inf")])), {}


def _rmsprop_step(g):
    params, (grads, sq) = _param_lists(g, 2)
    return (params, grads, sq), {"momentum": g.pick([0.0, 0.9]), "rho": g.pick([0.9, 1.5])}


def _adagrad_step(g):
    params, (grads, acc) = _param_lists(g, 2)
    return (params, grads, acc), {"eps": g.pick([1e-7, 0.0])}


OPS = {}
for _n in ["exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu", "selu", "silu",
           "softplus", "erf", "square", "reciprocal", "abs", "sign", "negative", "floor", "ceil", "round", "isnan",
           "isinf", "isfinite", "logical_not", "contiguous"]:
    OPS[_n] = _unary
for _n in ["add", "subtract", "multiply", "divide", "floor_divide", "remainder", "power", "maximum", "minimum",
           "equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or",
           "logical_xor", "matmul"]:
    OPS[_n] = _binary
for _n in ["sum", "mean", "prod", "max", "min", "logsumexp"]:
    OPS[_n] = _reduction
OPS.update({
    "var": _moment, "std": _moment, "argmax": _argred, "argmin": _argred, "softmax": _axis_op,
    "log_softmax": _axis_op, "cumsum": _cumsum, "leaky_relu": _leaky, "elu": _leaky, "gelu": _gelu, "clip": _clip,
    "where": _where, "reshape": _reshape, "flatten": _flatten, "permute": _permute, "transpose": _transpose,
    "swapaxes": _swapaxes, "squeeze": _squeeze, "expand_dims": _unsqueeze, "unsqueeze": _unsqueeze,
    "broadcast_to": _broadcast_to, "astype": _astype, "take": _take, "gather": _gather, "scatter_add": _scatter_add,
    "one_hot": _one_hot, "concatenate": _join, "concat": _join, "stack": _join, "split": _split, "chunk": _chunk,
    "pad": _pad, "einsum": _einsum, "linear": _linear, "conv2d": _conv2d, "conv1d": _conv1d, "conv_transpose2d": _conv_t,
    "conv2d_input_grad": _conv_grad_input, "conv2d_weight_grad": _conv_grad_weight, "max_pool2d": _pool2d,
    "avg_pool2d": _avg_pool2d, "max_pool1d": _pool1d, "avg_pool1d": _avg_pool1d, "global_avg_pool2d": _gap,
    "upsample_nearest2d": _upsample, "lstm": _lstm, "gru": _gru, "lstm_cell": _lstm_cell, "gru_cell": _gru_cell,
    "scaled_dot_product_attention": _attention, "scaled_dot_product_attention_reference": _attention,
    "zeros": _ctor, "ones": _ctor, "empty": _ctor, "full": _full, "zeros_like": _like, "ones_like": _like,
    "empty_like": _like, "full_like": lambda g: ((g.tensor(), g.pick([0.0, float("nan")]), g.pick([None] + DTYPES)),
                                                 {}),
    "rand": _rand, "randn": _rand, "randint": _randint, "uniform": _distribution, "normal": _distribution,
    "randperm": _randperm, "dropout_mask": _dropout_mask, "arange": _arange, "linspace": _linspace, "eye": _eye,
    "tensor": _tensor_ctor, "asarray": _tensor_ctor, "from_dlpack": _dlpack, "backward": _backward_fn,
    "grad": _grad_fn, "retain_grad": _retain_grad, "is_grad_enabled": _no_arguments,
    "get_num_threads": _no_arguments, "cpu_isa": _no_arguments, "cpu_memory_stats": _no_arguments,
    "cpu_empty_cache": _no_arguments,
})
for _name, _gen in [("layer_norm", _layer_norm), ("batch_norm", _batch_norm), ("softmax_cross_entropy", _cross_entropy),
                    ("binary_cross_entropy_with_logits", _bce), ("sgd_step", _sgd_step), ("adam_step", _adam_step),
                    ("rmsprop_step", _rmsprop_step), ("adagrad_step", _adagrad_step)]:
    OPS[_name] = OPS[_name + "_reference"] = _gen


# Indexing and Tensor methods, as pseudo-ops taking the tensor first.
def _key(g, x):
    def item():
        c = g.int(0, 8)
        if c == 0:
            return g.int(-5, 5)
        if c == 1:
            return slice(g.pick([None, -7, 0, 1, 2**62]), g.pick([None, 3, -1, 2**63 - 1]), g.pick([None, 1, 2, -1, 0]))
        if c == 2:
            return None
        if c == 3:
            return Ellipsis
        if c == 4:
            return [g.int(-4, 4) for _ in range(g.int(0, 3))]
        if c == 5:
            return _index_tensor(g, 3)
        if c == 6:
            return lm.tensor(g.r.random(x.shape[:1]) < 0.5) if x.ndim else True
        if c == 7:
            return g.pick(HUGE)
        return g.junk()

    n = g.int(0, 3)
    return item() if n == 0 else tuple(item() for _ in range(n))


def _getitem(g):
    x = g.tensor()
    return (x, _key(g, x)), {}


def _setitem(g):
    x = g.tensor(grad=False)
    if g.coin(0.2):
        x = x.detach().astype("float32").requires_grad_()  # a leaf that requires grad: setitem must refuse
    return (x, _key(g, x), g.pick([g.tensor(), 1.5, float("nan"), g.tensor(()), [1, 2], "x", None])), {}


def _method(name, gen):
    return lambda g: ((g.tensor(),) + gen(g), {})


PSEUDO = {
    "getitem": (_getitem, lambda x, k: x[k]),
    "setitem": (_setitem, lambda x, k, v: x.__setitem__(k, v)),
    "view": (lambda g: _reshape(g), lambda x, s: x.view(s)),
    "expand": (lambda g: _broadcast_to(g), lambda x, s: x.expand(s)),
    "copy_": (lambda g: ((g.tensor(grad=False), g.pick([g.tensor(), 1.0, [1, 2], "x"])), {}), lambda x, s: x.copy_(s)),
    "fill_": (lambda g: ((g.tensor(grad=False), g.pick([1.0, float("nan"), 2**70])), {}), lambda x, v: x.fill_(v)),
    "item": (lambda g: ((g.tensor(g.pick([(), (1,), (2,), (0,)])),), {}), lambda x: x.item()),
    "tolist": (lambda g: ((g.tensor(),), {}), lambda x: x.tolist()),
    "numpy": (lambda g: ((g.tensor(grad=False),), {}), lambda x: x.numpy()),
    "T": (lambda g: ((g.tensor(),), {}), lambda x: x.T),
    "mT": (lambda g: ((g.tensor(),), {}), lambda x: x.mT),
    "requires_grad_": (lambda g: ((g.tensor(grad=False), g.coin()), {}), lambda x, v: x.requires_grad_(v)),
    "__bool__": (lambda g: ((g.tensor(g.pick([(), (1,), (2,)])),), {}), lambda x: bool(x)),
    "__index__": (lambda g: ((g.tensor(g.pick([(), (1,)])),), {}), lambda x: operator.index(x)),
    "__len__": (lambda g: ((g.tensor(),), {}), lambda x: len(x)),
    "__repr__": (lambda g: ((g.tensor(),), {}), lambda x: repr(x)),
    "__dlpack__": (lambda g: ((g.tensor(grad=False),), {}), lambda x: lm.from_dlpack(x)),
    "__array__": (lambda g: ((g.tensor(grad=False),), {}), lambda x: np.asarray(x)),
}


def _names(name):
    return [name] + ALIASES.get(name, [])


def _mentions_op(msg, name):
    return any(w in msg for w in _names(name))


def _check_result(out, name):
    if isinstance(out, lm.Tensor):
        shape = tuple(out.shape)
        assert all(isinstance(d, int) and d >= 0 for d in shape), f"{name}: bad shape {shape}"
        assert out.dtype in DTYPES, f"{name}: bad dtype {out.dtype}"
        n = int(np.prod([max(d, 1) for d in shape], dtype=object))  # (2**40, 0) has no elements, 2**40 rows
        if n < 20_000:
            out.tolist()
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _check_result(o, name)]
    return []


def _run_backward(outs, name):
    roots = [o for o in outs if o.requires_grad and o.dtype in ("float32", "float64") and 0 < o.size < 20_000]
    if not roots:
        return
    total = None
    for o in roots:
        s = lm.sum(o.astype("float64"))
        total = s if total is None else total + s
    try:
        total.backward()
    except RuntimeError as e:  # only the documented misuse: an input modified in place
        assert "modified by an in-place operation" in str(e), f"backward of {name}: RuntimeError {e}"


def _describe(args, kwargs):
    def short(a):
        if isinstance(a, lm.Tensor):
            return f"Tensor(shape={tuple(a.shape)}, dtype={a.dtype}, contiguous={a.is_contiguous()}, " \
                   f"requires_grad={a.requires_grad})"
        if isinstance(a, (list, tuple)):
            return type(a)([short(x) for x in a]) if len(a) < 10 else f"{type(a).__name__} of {len(a)}"
        return repr(a)[:80]

    return f"args={[short(a) for a in args]} kwargs={ {k: short(v) for k, v in kwargs.items()} }"


def _fuzz_one(g, name, gen, fn, mutate):
    args, kwargs = gen(g)
    args = list(args)
    first = 1 if name in PSEUDO else 0  # a method's self is always a tensor
    if mutate and len(args) > first:
        i = g.int(first, len(args) - 1)
        args[i] = g.wrong(args[i])
    try:
        out = fn(*args, **kwargs)
    except RuntimeError as e:  # documented autograd misuse (as in PyTorch), and nothing else
        if name in AUTOGRAD_MISUSE and any(w in str(e) for w in AUTOGRAD_MISUSE[name]):
            return "error"
        raise AssertionError(f"{name} raised RuntimeError: {e}; {_describe(args, kwargs)}") from e
    except ALLOWED as e:
        msg = str(e)
        assert msg, f"{name}: {type(e).__name__} with an empty message; {_describe(args, kwargs)}"
        assert _mentions_op(msg, name), f"{name}: message {msg!r} does not name the op; {_describe(args, kwargs)}"
        return "error"
    except Exception as e:  # noqa: BLE001 - anything else is a bug
        raise AssertionError(f"{name} raised {type(e).__name__}: {e}; {_describe(args, kwargs)}") from e
    try:
        outs = _check_result(out, name)
        _run_backward(outs, name)
    except AssertionError:
        raise
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"{name}: using its result raised {type(e).__name__}: {e}; "
                             f"{_describe(args, kwargs)}") from e
    return "ok"


def _all_cases():
    cases = [(n, gen, getattr(lm, n)) for n, gen in OPS.items()]
    cases += [(n, gen, fn) for n, (gen, fn) in PSEUDO.items()]
    return cases


def test_every_bound_function_is_fuzzed():
    bound = {n for n in dir(core) if not n.startswith("__") and callable(getattr(core, n)) and n != "Tensor"}
    missing = sorted(bound - set(OPS) - set(NOT_FUZZED))
    assert not missing, f"bound functions without a fuzz generator: {missing}"
    stale = sorted(set(OPS) - bound)
    assert not stale, f"fuzz generators for functions that are not bound: {stale}"


@pytest.mark.parametrize("seed", [SEED] if not LONG else [SEED, SEED + 1, SEED + 2])
def test_fuzz_all_ops(seed):
    g = Gen(seed)
    counts = {"ok": 0, "error": 0}
    for r in range(CALLS_PER_OP):
        for name, gen, fn in _all_cases():
            mutate = r % 3 == 2
            try:
                counts[_fuzz_one(g, name, gen, fn, mutate)] += 1
            except AssertionError as e:
                raise AssertionError(f"[seed {seed}, round {r}] {e}") from None
    total = counts["ok"] + counts["error"]
    print(f"fuzz seed {seed}: {total} calls, {counts['ok']} returned, {counts['error']} raised", file=sys.stderr)
    assert counts["ok"] > total // 4  # the generators mostly produce valid calls
    if LONG:
        assert total >= 10_000


def test_set_num_threads_args():
    before = lm.get_num_threads()
    try:
        for v in [0, -1, 2**62, 1, 3, "x", None, 1.5]:
            try:
                lm.set_num_threads(v)
            except ALLOWED as e:
                assert "set_num_threads" in str(e)
            assert lm.get_num_threads() >= 1
        lm.set_num_threads(2)
        assert lm.get_num_threads() == 2
        assert float(lm.sum(lm.ones((10_000,)))) == 10_000
    finally:
        lm.set_num_threads(before)


def test_grad_mode_args():
    before = lm.is_grad_enabled()
    try:
        for v in ["x", None, 2]:
            with pytest.raises(TypeError, match="set_grad_enabled"):
                lm.set_grad_enabled(v)
        lm.set_grad_enabled(False)
        assert not lm.is_grad_enabled()
    finally:
        lm.set_grad_enabled(before)


# ----------------------------------------------------------------------------- huge shapes
def test_huge_broadcast_is_a_view():
    v = lm.broadcast_to(lm.ones((1,)), (2**40,))
    assert v.shape == (2**40,) and v.strides[0] == 0
    assert float(v[2**40 - 1]) == 1.0 and v[5:10].shape == (5,)
    w = lm.broadcast_to(lm.ones((1, 1)), (2**31, 2**31))  # 2**62 elements, still a view
    assert w.shape == (2**31, 2**31)
    with pytest.raises(MemoryError):
        lm.broadcast_to(lm.ones((1, 1, 1)), (2**31, 2**31, 2**31))  # element count overflows 64 bits


@pytest.mark.parametrize("make", [
    lambda: lm.zeros((2**62,)), lambda: lm.ones((2**40, 2**40)), lambda: lm.empty((2**31, 2**31, 8)),
    lambda: lm.full((2**48,), 1.0), lambda: lm.zeros((2**63 - 1,), dtype="float64"), lambda: lm.rand(2**62),
    lambda: lm.randn((2**48,)), lambda: lm.eye(2**40), lambda: lm.zeros((2**62,), dtype="bool"),
    lambda: lm.broadcast_to(lm.ones((1,)), (2**48,)) + 1, lambda: lm.contiguous(lm.broadcast_to(lm.ones((1,)), (2**48,))),
    lambda: lm.broadcast_to(lm.ones((1, 1)), (2**31, 2**31)).clone(), lambda: lm.one_hot(lm.tensor([0]), 2**62),
    lambda: lm.arange(0, 2**62), lambda: lm.linspace(0, 1, 2**62), lambda: lm.randperm(2**62),
    lambda: lm.pad(lm.ones((1,)), (2**61, 2**61)), lambda: lm.ones((2**24,)).reshape(2**12, 2**12)[None].expand(
        2**40, 2**12, 2**12).contiguous(),
])
def test_huge_allocations_raise_memory_error(make):
    with pytest.raises((MemoryError, ValueError)) as info:
        make()
    assert str(info.value)


def test_zeros_2_62_is_memory_error():
    with pytest.raises(MemoryError, match="zeros|empty"):
        lm.zeros((2**62,))


# ----------------------------------------------------------------------------- regressions
# Each of these crashed the process (segfault, endless loop or out-of-memory kill) or raised
# a C++ cast error before the fix; found by the fuzzer above.
@pytest.mark.parametrize("call, expected", [
    (lambda: lm.cumsum(lm.tensor(3), 0).tolist(), [3]),                      # 0-d with an axis read past the end
    (lambda: lm.argmax(lm.tensor(3.0), -1).item(), 0),
    (lambda: lm.argmin(lm.tensor(3.0), 0, True).item(), 0),
    (lambda: [t.shape for t in lm.chunk(lm.ones((3, 2)), 2**63 - 1)], [(1, 2)] * 3),  # ceil overflowed
    (lambda: lm.ones((2, 3))[None].shape, (1, 2, 3)),                        # None key was a TypeError
])
def test_fuzz_regressions_values(call, expected):
    assert call() == expected


@pytest.mark.parametrize("call, error, words", [
    (lambda: lm.split(lm.ones((0,)), 2**40), ValueError, "split"),             # looped building 2**40 views
    (lambda: lm.chunk(lm.ones((0,)), 2**62), ValueError, "chunk"),
    (lambda: lm.ones((2,))[2**70], IndexError, "index"),                     # RuntimeError: std::bad_cast
    (lambda: lm.ones((2,))[: -(2**70)], IndexError, "index"),
    (lambda: lm.ones((2,)).__setitem__((2**70, Ellipsis), 1.0), IndexError, "setitem"),
    (lambda: lm.zeros(2**70), MemoryError, "zeros"),
    (lambda: lm.squeeze(lm.ones((3,)), -(2**70)), MemoryError, "squeeze"),
    (lambda: lm.pad(lm.ones((3,)), 2**70), MemoryError, "pad"),
    (lambda: lm.randn(0, 2**62), MemoryError, "randn"),                        # (2**62, 0): byte strides overflow
    (lambda: lm.upsample_nearest2d(lm.ones((0, 2, 1, 1)), 2**40), MemoryError, "upsample_nearest2d"),
    (lambda: lm.max_pool2d(lm.ones((1, 2, 0, 6)), 2, 2, 1), ValueError, "max_pool2d"),  # windows of padding only
    (lambda: lm.avg_pool2d(lm.ones((1, 1, 0, 1)), 2, 2, 1), ValueError, "avg_pool2d"),
    (lambda: lm.conv_transpose2d(lm.ones((1, 2, 4, 4)), lm.ones((2, 2, 2, 2)), None, 2, 2**63 - 1),
     ValueError, "conv_transpose2d"),                                      # size arithmetic overflowed
    (lambda: lm.conv1d(lm.ones((2, 2, 7)), lm.ones((2, 2, 2)), None, 2, 2**63 - 1), ValueError, "conv1d"),
    (lambda: lm.conv2d(lm.ones((1, 1, 3, 3)), lm.ones((1, 1, 1, 1)), None, 1, 0, 2**62), ValueError, "conv2d"),
    (lambda: lm.exp("abc"), TypeError, "exp"),                                # conversion errors name the op
    (lambda: lm.zeros((2,), "complex64"), TypeError, "zeros"),
])
def test_fuzz_regressions_errors(call, error, words):
    with pytest.raises(error, match=words):
        call()
