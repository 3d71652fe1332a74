"""Elementwise ops: values vs numpy, gradients vs finite differences, PyTorch cross-check,
layouts, broadcasting, operators, dtype promotion, NaN/Inf and half-precision storage."""

import math

import numpy as np
import pytest

import lamina as lm
from helpers import LAYOUTS, check_errors, check_op, make_input, to_lamina

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = F = None

_erf = np.vectorize(math.erf, otypes=[np.float64])
SELU_SCALE, SELU_ALPHA = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717
INTS = [float(k) for k in range(-3, 4)]
HALVES = [k + 0.5 for k in range(-3, 3)]


def _np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _t(name):  # a torch function by dotted name, resolved lazily (None without torch)
    return None if torch is None else eval(name, {"torch": torch, "F": F})


# name: (lamina fn, numpy fn, torch fn name, (low, high), points to keep away from)
UNARY = {
    "exp": (lm.exp, np.exp, "torch.exp", (-3, 3), ()),
    "log": (lm.log, np.log, "torch.log", (0.1, 4), ()),
    "log1p": (lm.log1p, np.log1p, "torch.log1p", (-0.9, 3), ()),
    "expm1": (lm.expm1, np.expm1, "torch.expm1", (-3, 3), ()),
    "sqrt": (lm.sqrt, np.sqrt, "torch.sqrt", (0.1, 4), ()),
    "rsqrt": (lm.rsqrt, lambda x: 1 / np.sqrt(x), "torch.rsqrt", (0.1, 4), ()),
    "sin": (lm.sin, np.sin, "torch.sin", (-4, 4), ()),
    "cos": (lm.cos, np.cos, "torch.cos", (-4, 4), ()),
    "tanh": (lm.tanh, np.tanh, "torch.tanh", (-3, 3), ()),
    "sigmoid": (lm.sigmoid, lambda x: 1 / (1 + np.exp(-x)), "torch.sigmoid", (-6, 6), ()),
    "relu": (lm.relu, lambda x: np.maximum(x, 0), "torch.relu", (-2, 2), (0,)),
    "leaky_relu": (lambda x: lm.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x),
                   "lambda x: F.leaky_relu(x, 0.1)", (-2, 2), (0,)),
    "elu": (lambda x: lm.elu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)),
            "lambda x: F.elu(x, 0.7)", (-3, 3), (0,)),
    "selu": (lm.selu, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)), "F.selu", (-3, 3), (0,)),
    "gelu": (lm.gelu, lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))), "F.gelu", (-4, 4), ()),
    "gelu_tanh": (lambda x: lm.gelu(x, approximate="tanh"), _np_gelu_tanh,
                  "lambda x: F.gelu(x, approximate='tanh')", (-4, 4), ()),
    "silu": (lm.silu, lambda x: x / (1 + np.exp(-x)), "F.silu", (-5, 5), ()),
    "softplus": (lm.softplus, lambda x: np.logaddexp(0, x), "F.softplus", (-10, 10), ()),
    "erf": (lm.erf, _erf, "torch.erf", (-3, 3), ()),
    "square": (lm.square, np.square, "torch.square", (-3, 3), ()),
    "reciprocal": (lm.reciprocal, np.reciprocal, "torch.reciprocal", (-2, 2), (0,)),
    "abs": (lm.abs, np.abs, "torch.abs", (-2, 2), (0,)),
    "sign": (lm.sign, np.sign, "torch.sign", (-2, 2), (0,)),
    "negative": (lm.negative, np.negative, "torch.neg", (-2, 2), ()),
    "floor": (lm.floor, np.floor, "torch.floor", (-3, 3), INTS),
    "ceil": (lm.ceil, np.ceil, "torch.ceil", (-3, 3), INTS),
    "round": (lm.round, np.round, "torch.round", (-3, 3), HALVES),
    "clip": (lambda x: lm.clip(x, -0.5, 1.0), lambda x: np.clip(x, -0.5, 1.0),
             "lambda x: torch.clamp(x, -0.5, 1.0)", (-2, 2), (-0.5, 1.0)),
    "clip_min": (lambda x: lm.clip(x, min=0.3), lambda x: np.maximum(x, 0.3),
                 "lambda x: torch.clamp(x, min=0.3)", (-2, 2), (0.3,)),
    "clip_max": (lambda x: lm.clip(x, max=0.3), lambda x: np.minimum(x, 0.3),
                 "lambda x: torch.clamp(x, max=0.3)", (-2, 2), (0.3,)),
}


def _unary_input(name, shape=(3, 4), kind="contiguous"):
    low, high = UNARY[name][3]
    return make_input(shape, kind, low=low, high=high, avoid=UNARY[name][4])


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("name", UNARY)
def test_unary(name, kind):
    fn, ref, _, _, _ = UNARY[name]
    check_op(name, fn, ref, [_unary_input(name, kind=kind)])


@pytest.mark.parametrize("name", UNARY)
def test_unary_torch(name):
    pytest.importorskip("torch")
    fn, ref, tname, _, _ = UNARY[name]
    check_op(name, fn, ref, [_unary_input(name, (2, 3, 2))], torch_fn=_t(tname), dtypes=())


@pytest.mark.parametrize("name", UNARY)
def test_unary_scalar_and_method(name):
    fn, ref, _, _, _ = UNARY[name]
    check_op(name, fn, ref, [_unary_input(name, ())])  # 0-d tensors
    check_op(name, fn, ref, [_unary_input(name, (257,))], grad=False)  # odd size: vector tail


def test_round_half_to_even():
    check_op("round", lm.round, np.round, [np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5])], grad=False)


def test_gelu_approximate_forms():
    x = lm.tensor([-1.0, 0.5, 2.0])
    np.testing.assert_allclose(lm.gelu(x, approximate=True).numpy(), lm.gelu(x, approximate="tanh").numpy())
    np.testing.assert_allclose(lm.gelu(x, approximate=False).numpy(), lm.gelu(x).numpy())
    check_errors(lm.gelu, [((x, "fast"), ValueError, "gelu: approximate must be 'none' or 'tanh'")])


def test_relu_gradient_in_one_pass():
    """relu's backward (its own, and Dense's relu epilogue) passes the gradient where the input
    is positive and gives exactly 0 elsewhere: at 0 and -0, at NaN inputs and where the
    incoming gradient is inf or NaN (a product with the 0/1 mask would give NaN there), like
    PyTorch's threshold_backward; broadcast and strided gradients; float64 and float32; and the
    composite when differentiating again."""
    x = np.array([-2.0, -0.0, 0.0, 1e-30, 3.0, np.nan, -np.inf, np.inf, -1.0, 2.0])
    g = np.array([1.5, 2.0, -3.0, 4.0, -5.0, 6.0, 7.0, 8.0, np.inf, np.nan])
    want = np.where(x > 0, g, 0.0)
    for dtype in ("float64", "float32"):
        xt = lm.tensor(x, dtype=dtype, requires_grad=True)
        (got,) = lm.grad(lm.relu(xt), [xt], grad_outputs=[lm.tensor(g, dtype=dtype)])
        np.testing.assert_array_equal(got.numpy(), want.astype(dtype))
    rng = np.random.default_rng(3)
    x2 = rng.standard_normal((7, 33))
    xt = lm.tensor(x2, requires_grad=True)
    g_row = rng.standard_normal(33)
    (got,) = lm.grad(lm.sum(lm.relu(xt) * lm.tensor(g_row)), [xt])
    np.testing.assert_array_equal(got.numpy(), np.where(x2 > 0, g_row, 0.0))
    xs = lm.tensor(rng.standard_normal((8, 40)), requires_grad=True)
    gs = rng.standard_normal((40, 8))
    (got,) = lm.grad(lm.relu(xs[:, ::2]), [xs], grad_outputs=[lm.tensor(gs)[::2].T])
    want_s = np.zeros((8, 40))
    want_s[:, ::2] = np.where(xs.numpy()[:, ::2] > 0, gs[::2].T, 0.0)
    np.testing.assert_array_equal(got.numpy(), want_s)
    w, b = rng.standard_normal((33, 5)), rng.standard_normal(5)
    wt, bt = lm.tensor(w, requires_grad=True), lm.tensor(b, requires_grad=True)
    gd = rng.standard_normal((7, 5))
    dx, dw, db = lm.grad(lm.linear(xt, wt, bt, "relu"), [xt, wt, bt], grad_outputs=[lm.tensor(gd)])
    dz = np.where(x2 @ w + b > 0, gd, 0.0)
    np.testing.assert_allclose(dx.numpy(), dz @ w.T, rtol=1e-12)
    np.testing.assert_allclose(dw.numpy(), x2.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(db.numpy(), dz.sum(0), rtol=1e-12)
    # Second order: d/dx sum(relu'(x) * x) = relu'(x) (the mask's own derivative is 0).
    xt = lm.tensor(x2, requires_grad=True)
    (first,) = lm.grad(lm.sum(lm.relu(xt) * xt), [xt], create_graph=True)
    (second,) = lm.grad(lm.sum(first), [xt])
    np.testing.assert_array_equal(second.numpy(), (x2 > 0) * 2.0)


def test_tanh_and_sigmoid_float32_over_the_whole_range():
    """float32 tanh and sigmoid (the recurrent gates' math too) against float64 from the
    smallest normals to saturation: a few ulp wherever the result is a normal float, exact
    +-1 / 0 / 1 where they saturate, signed zeros kept, NaN propagated; contiguous and strided
    inputs give the same bits."""
    mags = np.geomspace(1e-37, 200, 400_001)
    x = np.concatenate([mags, -mags, np.linspace(-100, 100, 400_001)]).astype(np.float32)
    x64 = x.astype(np.float64)
    for fn, ref in ((lm.tanh, np.tanh), (lm.sigmoid, lambda v: 1 / (1 + np.exp(-v)))):
        got = fn(lm.tensor(x)).numpy().astype(np.float64)
        want = ref(x64)
        normal = np.abs(want) >= np.finfo(np.float32).tiny
        ulp = np.spacing(np.abs(want[normal]).astype(np.float32)).astype(np.float64)
        assert np.max(np.abs(got[normal] - want[normal]) / ulp) <= 8, fn.__name__
        assert np.max(np.abs(got[~normal] - want[~normal])) <= np.finfo(np.float32).tiny
        # A strided view takes the generic loops; contiguous float32 may take a wider copy.
        spaced = np.zeros(2 * x.size, np.float32)
        spaced[::2] = x
        np.testing.assert_array_equal(fn(lm.tensor(spaced)[::2]).numpy(), got.astype(np.float32))
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 50.0, -50.0, 100.0, -100.0], np.float32)
    t = lm.tanh(lm.tensor(special)).numpy()
    np.testing.assert_array_equal(t, [1, -1, np.nan, 0, 0, 1, -1, 1, -1])
    assert np.signbit(t[4]) and not np.signbit(t[3])
    np.testing.assert_allclose(lm.sigmoid(lm.tensor(special)).numpy(),
                               [1, 0, np.nan, 0.5, 0.5, 1, 1 / (1 + math.exp(50)), 1, 0],  # e^-100: a denormal, flushed
                               rtol=1e-6, atol=0)


def test_gelu_float32_long_runs_against_float64():
    """Contiguous float32 runs long enough for several threads and an odd tail (the AVX-512
    copies of gelu and its backward where the CPU has them): values and gradients against
    float64 formulas, and bit-equal to the strided layout, which the elementwise loops take."""
    rng = np.random.default_rng(5)
    x64 = np.concatenate([rng.standard_normal(100_001) * 3, [0.0, -0.0, 8.0, -8.0, 40.0, -40.0]])
    g64 = rng.standard_normal(x64.shape)
    x32, g32 = x64.astype(np.float32), g64.astype(np.float32)
    xr, gr = x32.astype(np.float64), g32.astype(np.float64)
    erf = np.vectorize(math.erf)(xr / math.sqrt(2))
    want_y = 0.5 * xr * (1 + erf)
    want_dx = gr * (0.5 * (1 + erf) + xr * np.exp(-0.5 * xr * xr) / math.sqrt(2 * math.pi))
    results = []
    for stride in (1, 2):
        base_x, base_g = np.zeros(x32.size * stride, np.float32), np.zeros(x32.size * stride, np.float32)
        base_x[::stride], base_g[::stride] = x32, g32
        x = lm.tensor(base_x, requires_grad=True)
        y = lm.gelu(x[::stride])
        y.backward(lm.tensor(base_g)[::stride])
        results.append((y.numpy(), x.grad.numpy()[::stride]))
    y, dx = results[0]
    np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-5, atol=1e-6)
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- binary
def _pos(shape, kind="contiguous"):
    return make_input(shape, kind, low=0.5, high=2.0)


BINARY = {
    "add": (lm.add, np.add, "torch.add"),
    "subtract": (lm.subtract, np.subtract, "torch.sub"),
    "multiply": (lm.multiply, np.multiply, "torch.mul"),
    "divide": (lm.divide, np.divide, "torch.div"),
    "maximum": (lm.maximum, np.maximum, "torch.maximum"),
    "minimum": (lm.minimum, np.minimum, "torch.minimum"),
}
BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)), ((), (3, 4)),
                    ((4,), ()), ((0, 4), (4,)), ((1, 4), (0, 1)), ((1,), (1, 1, 1))]


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary_broadcast(name, shapes):
    fn, ref, tname = BINARY[name]
    rng = np.random.default_rng(1)
    a = make_input(shapes[0], low=0.5, high=2, rng=rng)
    b = make_input(shapes[1], low=-2, high=-0.5, rng=rng) if name != "divide" else _pos(shapes[1])
    check_op(name, fn, ref, [a, b], torch_fn=_t(tname))


@pytest.mark.parametrize("kinds", [("transposed", "sliced"), ("sliced", "broadcast"), ("broadcast", "transposed"),
                                   ("size1", "contiguous"), ("empty", "contiguous")], ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary_layouts(name, kinds):
    fn, ref, _ = BINARY[name]
    a = make_input((3, 4), kinds[0], low=0.5, high=2, rng=np.random.default_rng(2))
    b = make_input((3, 4), kinds[1], low=-2, high=-0.5, rng=np.random.default_rng(3))
    check_op(name, fn, ref, [a, -b if name == "divide" else b])


def test_power():
    base, expo = _pos((3, 4)), make_input((4,), low=-2, high=2)
    check_op("power", lm.power, np.power, [base, expo], torch_fn=_t("torch.pow"))
    check_op("power_scalar_exp", lambda x: x**3, lambda x: x**3, [make_input((2, 3))])
    check_op("power_int_exp_neg_base", lambda x: lm.power(x, 2.0), np.square, [make_input((5,))])
    check_op("rpow", lambda x: 2.0**x, lambda x: 2.0**x, [make_input((5,))])


def test_floor_divide_and_remainder_python_semantics():
    a = np.array([5.5, -5.5, 7.0, -7.0, 3.0, 0.0])
    b = np.array([2.0, 2.0, -3.0, -3.0, 0.75, 1.5])
    check_op("floor_divide", lm.floor_divide, np.floor_divide, [a, b], grad=False)
    check_op("remainder", lm.remainder, np.remainder, [a, b], grad=False)
    ia, ib = np.array([7, -7, 7, -7, 0]), np.array([3, 3, -3, -3, 5])
    check_op("floor_divide_int", lm.floor_divide, np.floor_divide, [ia, ib], dtypes=(None,), out_dtype="int64")
    check_op("remainder_int", lm.remainder, np.remainder, [ia, ib], dtypes=(None,), out_dtype="int64")


def test_remainder_gradient():
    a, b = make_input((3, 4), low=0.3, high=5), np.array([1.3, 1.7, 2.9, 0.9])
    # keep a/b away from integers, where remainder jumps
    a = np.where(np.abs(a / b - np.round(a / b)) < 0.05, a + 0.1, a)
    check_op("remainder", lm.remainder, np.remainder, [a, b], torch_fn=_t("torch.remainder"))


def test_integer_division_by_zero_does_not_crash():
    # numpy returns 0 (with a warning) for integer // 0 and % 0; a native SIGFPE would kill the run
    a, z = lm.tensor([5, -5, 0]), lm.tensor([0, 0, 0])
    assert lm.floor_divide(a, z).tolist() == [0, 0, 0]
    assert lm.remainder(a, z).tolist() == [0, 0, 0]


def test_integer_overflow_floor_divide_does_not_crash():
    a = lm.tensor([np.iinfo(np.int64).min], dtype="int64")
    assert lm.floor_divide(a, lm.tensor([-1])).dtype == "int64"  # wraps like numpy, no SIGFPE
    assert lm.remainder(a, lm.tensor([-1])).tolist() == [0]


COMPARE = {"equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
           "greater": np.greater, "greater_equal": np.greater_equal}


@pytest.mark.parametrize("name", COMPARE)
def test_comparisons(name):
    a = np.array([[1.0, 2.0, np.nan, 4.0], [-np.inf, 0.0, 3.0, np.inf]])
    b = np.array([1.0, 3.0, np.nan, 2.0])
    check_op(name, getattr(lm, name), COMPARE[name], [a, b], grad=False)
    check_op(name, getattr(lm, name), COMPARE[name], [a.T.copy()[::2], 2.0], grad=False)
    check_op(name, getattr(lm, name), COMPARE[name], [np.array([1, 5, 3]), np.array([[3], [1]])], grad=False,
             dtypes=(None,))


LOGICAL = {"logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor}


@pytest.mark.parametrize("name", LOGICAL)
def test_logical(name):
    a = np.array([[True, False, True, False]])
    b = np.array([[True], [False]])
    check_op(name, getattr(lm, name), LOGICAL[name], [a, b], grad=False, dtypes=(None,))
    check_op(name, getattr(lm, name), LOGICAL[name], [np.array([0.0, 2.0, -1.0]), np.array([1.0, 0.0, 0.0])],
             grad=False)
    check_op("logical_not", lm.logical_not, np.logical_not, [a], grad=False, dtypes=(None,))


def test_isnan_isinf_isfinite():
    x = np.array([0.0, np.nan, np.inf, -np.inf, -1.5])
    for name in ("isnan", "isinf", "isfinite"):
        check_op(name, getattr(lm, name), getattr(np, name), [x], grad=False)


def test_where():
    cond = make_input((3, 4), low=-1, high=1) > 0
    x, y = make_input((3, 4)), make_input((4,), rng=np.random.default_rng(5))
    check_op("where", lm.where, np.where, [cond, x, y], torch_fn=_t("torch.where"))
    check_op("where_scalar", lm.where, np.where, [cond, x, 0.5], grad_argnums=[1])
    check_op("where_cond_broadcast", lm.where, np.where, [np.array([True, False, True, False]), x.T.T, y])


# ----------------------------------------------------------------------------- operators
OPERATORS = [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("truediv", lambda a, b: a / b), ("pow", lambda a, b: a ** b),
]


@pytest.mark.parametrize("name,op", OPERATORS, ids=[n for n, _ in OPERATORS])
def test_operators_and_reflected(name, op):
    a, b = _pos((2, 3)), _pos((3,))
    check_op(name, op, op, [a, b])
    check_op("r" + name, lambda x: op(1.5, x), lambda x: op(1.5, x), [a])  # reflected, scalar left
    check_op(name + "_scalar", lambda x: op(x, 1.5), lambda x: op(x, 1.5), [a])
    # a float64 numpy array is not a weak scalar: float32 op float64 array -> float64, as in numpy
    check_op(name + "_ndarray", lambda x: op(x, b), lambda x: op(x, b), [a], grad=False, dtypes=("float32",),
             out_dtype="float64")


def test_other_operators():
    a, b = make_input((2, 3), low=0.5, high=3), np.array([1.25, 0.75, 2.0])
    check_op("floordiv", lambda x, y: x // y, lambda x, y: x // y, [a, b], grad=False)
    check_op("mod", lambda x, y: x % y, lambda x, y: x % y, [a, b], grad=False)
    check_op("rfloordiv", lambda x: 7.0 // x, lambda x: 7.0 // x, [a], grad=False)
    check_op("rmod", lambda x: 7.0 % x, lambda x: 7.0 % x, [a], grad=False)
    check_op("neg", lambda x: -x, np.negative, [a])
    check_op("pos", lambda x: +x, lambda x: x, [a])
    check_op("abs", abs, np.abs, [a - 1.6])
    m = np.array([True, False, True])
    check_op("and", lambda x, y: x & y, np.logical_and, [m, ~m[::-1]], grad=False, dtypes=(None,))
    check_op("or", lambda x, y: x | y, np.logical_or, [m, ~m[::-1]], grad=False, dtypes=(None,))
    check_op("xor", lambda x, y: x ^ y, np.logical_xor, [m, True], grad=False, dtypes=(None,))
    check_op("invert", lambda x: ~x, np.logical_not, [m], grad=False, dtypes=(None,))
    check_op("lt", lambda x, y: x < y, np.less, [a, b], grad=False)
    check_op("eq", lambda x: x == 1.25, lambda x: x == 1.25, [b], grad=False)
    check_op("rlt", lambda x: 1.0 < x, lambda x: 1.0 < x, [b], grad=False)  # reflected comparison
    check_errors(lambda x: ~x, [(lm.tensor([1.0]), TypeError, "~ is only supported on bool tensors, got float32")])


@pytest.mark.parametrize("op,expected", [
    ("+=", [3.0, 4.0, 5.0]), ("-=", [-1.0, 0.0, 1.0]), ("*=", [2.0, 4.0, 6.0]), ("/=", [0.5, 1.0, 1.5]),
    ("**=", [1.0, 4.0, 9.0]), ("//=", [0.0, 1.0, 1.0]), ("%=", [1.0, 0.0, 1.0]),
])
def test_inplace_operators_bump_version(op, expected):
    t = lm.tensor([1.0, 2.0, 3.0])
    alias, v0, view = t, t._version, t[1:]
    exec(f"t {op} 2.0", {}, ns := {"t": t})
    assert ns["t"] is alias, "in-place operator must return the same tensor object"
    assert t.tolist() == expected and t.dtype == "float32"
    assert t._version > v0
    assert view.tolist() == expected[1:], "views of the tensor see the in-place update"


def test_inplace_dtype_rules():
    t = lm.tensor([1, 2, 3])
    t += 2
    assert t.tolist() == [3, 4, 5] and t.dtype == "int64"
    check_errors(lambda: exec("t /= 2", {}, {"t": lm.tensor([1, 2])}),
                 [((), TypeError, "__itruediv__: result dtype float32 cannot be cast to int64 in place")])
    f = lm.tensor([1.0, 2.0])
    f *= lm.tensor([2, 3])  # int operand into a float tensor is fine
    assert f.tolist() == [2.0, 6.0] and f.dtype == "float32"


def test_inplace_broadcast_shape_mismatch():
    t = lm.tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="3"):
        t += lm.ones((2, 3))  # the result would not fit t's shape


# ----------------------------------------------------------------------------- promotion
SAME_KIND = [("float32", "float64"), ("float16", "float32"), ("float16", "float64"), ("bfloat16", "float32"),
             ("int32", "int64"), ("uint8", "int32"), ("uint8", "int64"), ("bool", "uint8"), ("bool", "int32"),
             ("int32", "int32")]


@pytest.mark.parametrize("da,db", SAME_KIND)
def test_promotion_same_kind_follows_numpy(da, db):
    a, b = lm.ones((2,), dtype=da), lm.ones((2,), dtype=db)
    expected = "float32" if "bfloat16" in (da, db) else str(np.result_type(da, db))
    assert (a + b).dtype == expected and (b * a).dtype == expected


def test_promotion_special_cases():
    assert (lm.ones(2, dtype="float16") + lm.ones(2, dtype="bfloat16")).dtype == "float32"
    # Across kinds the float operand's dtype wins (int tensors never widen a float32 to float64).
    assert (lm.ones(2, dtype="int64") + lm.ones(2, dtype="float32")).dtype == "float32"
    assert (lm.ones(2, dtype="int32") * lm.ones(2, dtype="float16")).dtype == "float16"
    assert (lm.ones(2, dtype="bool") + lm.ones(2, dtype="bool")).dtype == "bool"


@pytest.mark.parametrize("dtype,scalar,expected", [
    ("float32", 2.0, "float32"), ("float32", 2, "float32"), ("float16", 2.0, "float16"),
    ("bfloat16", 0.5, "bfloat16"), ("float64", 2, "float64"), ("int32", 2, "int32"), ("int32", 2.5, "float32"),
    ("uint8", 3, "uint8"), ("int64", 2.0, "float32"), ("bool", 1, "int64"), ("bool", True, "bool"),
])
def test_weak_python_scalars(dtype, scalar, expected):
    t = lm.ones((3,), dtype=dtype)
    assert (t * scalar).dtype == expected
    assert (scalar * t).dtype == expected
    assert lm.multiply(t, scalar).dtype == expected and lm.multiply(scalar, t).dtype == expected


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool"])
def test_true_division_of_integers_gives_float32(dtype):
    t = lm.tensor(np.array([1, 0, 1]).astype(dtype))
    assert (t / 2).dtype == "float32" and (2 / (t + 1)).dtype == "float32"
    check_op("int_div", lambda x: x / 4, lambda x: x / 4, [np.array([1, 2, 7], dtype=np.int64)],
             dtypes=(None,), out_dtype="float32", grad=False)


def test_int_ops_stay_int_and_exact():
    big = np.array([2**40 + 1, -(2**40) - 3], dtype=np.int64)
    check_op("int_add", lambda x: x + 1, lambda x: x + 1, [big], dtypes=(None,), out_dtype="int64", grad=False,
             rtol=0, atol=0)
    check_op("int_mul", lm.multiply, np.multiply, [big, np.array([3, 5])], dtypes=(None,), out_dtype="int64",
             grad=False, rtol=0, atol=0)


# ----------------------------------------------------------------------------- NaN / Inf
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0])


@pytest.mark.parametrize("name", ["exp", "log", "log1p", "expm1", "sqrt", "sin", "tanh", "sigmoid", "relu",
                                  "softplus", "erf", "square", "reciprocal", "abs", "sign", "negative", "floor",
                                  "ceil", "round", "clip", "elu", "leaky_relu"])
def test_unary_nan_inf_like_numpy(name):
    fn, ref, _, _, _ = UNARY[name]
    with np.errstate(all="ignore"):
        check_op(name, fn, ref, [SPECIAL], grad=False)


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide", "maximum", "minimum", "floor_divide",
                                  "remainder", "power"])
def test_binary_nan_inf_like_numpy(name):
    a, b = np.meshgrid(np.append(SPECIAL, [5.5, -2.0]), np.append(SPECIAL, [5.5, -2.0]))
    with np.errstate(all="ignore"):
        check_op(name, getattr(lm, name), getattr(np, name), [a, b], grad=False)


def test_floor_divide_is_consistent_with_remainder():
    # Python/numpy: -1 // inf == -1 because -1 % inf == inf (a == b * (a // b) + a % b)
    a, b = lm.tensor([-1.0, 1.0, -0.5, 7.0]), lm.tensor([np.inf, -np.inf, 3.0, -2.0])
    assert lm.floor_divide(a, b).tolist() == [-1.0, -1.0, -1.0, -4.0]
    assert lm.remainder(a, b).tolist() == [np.inf, -np.inf, 2.5, -1.0]


def test_signed_zero_and_nan_in_maximum_gradient():
    x = lm.tensor([1.0, 2.0], requires_grad=True)
    y = lm.tensor([1.0, 3.0], requires_grad=True)
    lm.sum(lm.maximum(x, y)).backward()
    assert x.grad.tolist() == [0.5, 0.0] and y.grad.tolist() == [0.5, 1.0]  # ties split the gradient


# ----------------------------------------------------------------------------- half types
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_storage_round_trip(dtype):
    exact = np.array([0.0, -0.0, 1.0, -2.5, 0.375, 1024.0, np.inf, -np.inf], dtype=np.float32)
    t = lm.tensor(exact, dtype=dtype)
    assert t.dtype == dtype and t.itemsize == 2
    np.testing.assert_array_equal(t.astype("float32").numpy(), exact)
    np.testing.assert_array_equal(np.signbit(t.astype("float32").numpy()), np.signbit(exact))
    assert np.isnan(lm.tensor([np.nan], dtype=dtype).astype("float64").item())
    assert lm.tensor(t.astype("float64"), dtype=dtype).astype("float32").tolist() == exact.tolist()


def test_float16_matches_numpy_rounding():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 100
    np.testing.assert_array_equal(lm.tensor(x, dtype="float16").numpy(), x.astype(np.float16))
    np.testing.assert_array_equal(lm.tensor(x.astype(np.float16)).numpy(), x.astype(np.float16))
    assert lm.tensor(np.array([70000.0], np.float32), dtype="float16").numpy()[0] == np.inf  # overflow -> inf


def test_bfloat16_rounds_to_nearest_even():
    # bfloat16 keeps 8 significand bits: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 -> even (1.0)
    vals = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-12, 3.0e38, -1e-40], np.float32)
    got = lm.tensor(vals, dtype="bfloat16").astype("float32").numpy()
    np.testing.assert_array_equal(got[:3], np.array([1.0, 1 + 2**-6, 1 + 2**-7], np.float32))
    assert np.isfinite(got[3]) and abs(got[3] - 3.0e38) / 3.0e38 < 2**-8
    assert torch is None or got.tolist() == torch.tensor(vals).bfloat16().float().tolist()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "gelu", "sqrt", "square"])
def test_half_compute(dtype, name):
    fn, ref, _, _, _ = UNARY[name]
    check_op(name, fn, ref, [_unary_input(name, (4, 5))], dtypes=(dtype,), grad=False)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_binary_and_grad(dtype):
    a = lm.tensor([1.0, 2.0, 3.0], dtype=dtype, requires_grad=True)
    b = lm.tensor([0.5, 0.25, 2.0], dtype=dtype)
    out = a * b + a
    assert out.dtype == dtype
    assert out.astype("float32").tolist() == [1.5, 2.5, 9.0]
    lm.sum(out).backward()
    assert a.grad.dtype == dtype and a.grad.astype("float32").tolist() == [1.5, 1.25, 3.0]


# ----------------------------------------------------------------------------- errors
def test_elementwise_errors():
    check_errors(lm.add, [((lm.ones((2, 3)), lm.ones((4,))), ValueError, "(2, 3)"),
                          ((lm.ones((2, 3)), "abc"), TypeError, "str"),
                          ((lm.ones(2), object()), TypeError, "object")])
    check_errors(lm.exp, [(("x",), TypeError, "str"), ((None,), TypeError, "NoneType")])
    check_errors(lm.where, [((lm.ones(2), lm.ones(3), lm.ones(2)), ValueError, "where")])
    check_errors(lambda: lm.leaky_relu(lm.ones(2), "a"), [((), TypeError, "leaky_relu")])


def test_integer_overflow_wraps_like_numpy():
    a = np.array([2**62, 2**40, -2**63, 7], dtype=np.int64)
    b = np.array([2**62, 2**40, -1, 3], dtype=np.int64)
    t, u = lm.tensor(a), lm.tensor(b)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal((t + u).numpy(), a + b)
        np.testing.assert_array_equal((t - u).numpy(), a - b)
        np.testing.assert_array_equal((t * u).numpy(), a * b)
        np.testing.assert_array_equal(lm.square(t).numpy(), np.square(a))
        assert lm.sum(t).item() == int(a.sum())
        assert lm.prod(t).item() == int(a.prod())
        np.testing.assert_array_equal(lm.cumsum(t, 0).numpy(), np.cumsum(a))
