"""Reductions, softmax family and cumsum: values against numpy (float64), gradients
against central finite differences in float64, plus layouts, edge cases and errors."""

import math

import numpy as np
import pytest

import lamina as lm

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------- helpers (local)

def to_np(t):
    return np.asarray(t.numpy())


def numeric_grad(f, x, w, eps=1e-6):
    """d/dx sum(f(x) * w) by central differences; f maps a float64 tensor to a tensor."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        fp = np.sum(to_np(f(lm.tensor(xp))) * w)
        fm = np.sum(to_np(f(lm.tensor(xm))) * w)
        g[idx] = (fp - fm) / (2 * eps)
    return g


def analytic_grad(f, x, w):
    t = lm.tensor(x, requires_grad=True)
    (g,) = lm.grad([f(t)], [t], [lm.tensor(w)])
    return to_np(g)


def check_grad(f, x, atol=1e-6, rtol=1e-5):
    y = to_np(f(lm.tensor(x)))
    w = RNG.standard_normal(y.shape)
    np.testing.assert_allclose(analytic_grad(f, x, w), numeric_grad(f, x, w), atol=atol, rtol=rtol)


def check_second_order(f, x, atol=1e-5, rtol=1e-4):
    """Gradient of sum(grad(sum(f(x) * w)) * v): create_graph must build a complete graph."""
    y = to_np(f(lm.tensor(x)))
    w = RNG.standard_normal(y.shape)
    v = RNG.standard_normal(x.shape)

    def first(t):
        t = t.detach()
        t.requires_grad = True
        (g,) = lm.grad([f(t)], [t], [lm.tensor(w)], create_graph=True)
        return g

    t = lm.tensor(x, requires_grad=True)
    (g,) = lm.grad([f(t)], [t], [lm.tensor(w)], create_graph=True)
    (gg,) = lm.grad([g], [t], [lm.tensor(v)])
    np.testing.assert_allclose(to_np(gg), numeric_grad(lambda s: first(s), x, v), atol=atol, rtol=rtol)


def np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    r = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return r if keepdims else np.squeeze(r, axis=axis)


def np_softmax(x, axis=-1):
    return np.exp(x - np_logsumexp(x, axis, True))


def np_log_softmax(x, axis=-1):
    return x - np_logsumexp(x, axis, True)


# Layouts: (lamina view, numpy view) applied to a 2-D or 3-D base array.
LAYOUTS = {
    "contiguous": (lambda t: t, lambda a: a),
    "transposed": (lambda t: lm.transpose(t), lambda a: np.transpose(a)),
    "stepped": (lambda t: t[:, ::2], lambda a: a[:, ::2]),
}

# name -> (lamina fn(x, axis, keepdims), numpy fn(x, axis, keepdims))
REDUCTIONS = {
    "sum": (lm.sum, np.sum),
    "mean": (lm.mean, np.mean),
    "prod": (lm.prod, np.prod),
    "max": (lm.max, np.max),
    "min": (lm.min, np.min),
    "var": (lm.var, np.var),
    "std": (lm.std, np.std),
    "var_ddof1": (lambda x, axis=None, keepdims=False: lm.var(x, axis, keepdims, ddof=1),
                  lambda x, axis=None, keepdims=False: np.var(x, axis=axis, keepdims=keepdims, ddof=1)),
    "std_ddof1": (lambda x, axis=None, keepdims=False: lm.std(x, axis, keepdims, ddof=1),
                  lambda x, axis=None, keepdims=False: np.std(x, axis=axis, keepdims=keepdims, ddof=1)),
    "logsumexp": (lm.logsumexp, np_logsumexp),
}

AXES = [None, 0, -1, (0, 2), (-1, 0, 1), 1]


def _np_reduce(npf, a, axis, keepdims):
    return npf(a, axis=axis, keepdims=keepdims)


# ---------------------------------------------------------------- values

@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_values(name, axis, keepdims):
    lf, nf = REDUCTIONS[name]
    a = RNG.standard_normal((3, 4, 5)) * 0.8 + 0.3
    for dtype, tol in (("float64", 1e-12), ("float32", 2e-5)):
        out = lf(lm.tensor(a, dtype=dtype), axis, keepdims)
        assert out.dtype == dtype or str(out.dtype).endswith(dtype)
        np.testing.assert_allclose(to_np(out), _np_reduce(nf, a.astype(dtype).astype(np.float64), axis, keepdims),
                                   rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_reduction_layouts(name, layout):
    lf, nf = REDUCTIONS[name]
    lv, nv = LAYOUTS[layout]
    a = RNG.standard_normal((4, 6))
    for axis in (None, 0, 1, -1):
        np.testing.assert_allclose(to_np(lf(lv(lm.tensor(a)), axis)), nf(nv(a), axis=axis), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_size_one_axes(name):
    lf, nf = REDUCTIONS[name]
    a = RNG.standard_normal((1, 3, 1))
    for axis in (None, 0, 2, (0, 2), 1):
        for keepdims in (False, True):
            np.testing.assert_allclose(to_np(lf(lm.tensor(a), axis, keepdims)), nf(a, axis=axis, keepdims=keepdims),
                                       rtol=1e-12, atol=1e-12)


def test_var_is_stable_with_large_offset():
    a = 1e8 + RNG.standard_normal(1000)
    np.testing.assert_allclose(to_np(lm.var(lm.tensor(a))), np.var(a), rtol=1e-7)
    b = (1e4 + RNG.standard_normal(4096)).astype(np.float32)
    np.testing.assert_allclose(to_np(lm.var(lm.tensor(b))), np.var(b.astype(np.float64)), rtol=1e-4)


def test_logsumexp_is_stable():
    a = np.array([[1000.0, 1000.0, -1000.0], [-1e4, -1e4 + 1, -1e4 + 2]])
    np.testing.assert_allclose(to_np(lm.logsumexp(lm.tensor(a), 1)), np_logsumexp(a, 1), rtol=1e-12)
    assert to_np(lm.logsumexp(lm.tensor([-np.inf, -np.inf]))) == -np.inf
    assert to_np(lm.logsumexp(lm.tensor([1.0, np.inf]))) == np.inf


def test_argmax_argmin():
    a = RNG.standard_normal((3, 4, 5))
    t = lm.tensor(a)
    for f, nf in ((lm.argmax, np.argmax), (lm.argmin, np.argmin)):
        for axis in (None, 0, 1, 2, -1, -3):
            for keepdims in (False, True):
                out = f(t, axis, keepdims)
                assert str(out.dtype) == "int64"
                np.testing.assert_array_equal(to_np(out), nf(a, axis=axis, keepdims=keepdims))
        np.testing.assert_array_equal(to_np(f(lm.transpose(t), 1)), nf(a.T, axis=1))
        np.testing.assert_array_equal(to_np(f(t[:, ::2], 1)), nf(a[:, ::2], axis=1))


def test_argmax_first_occurrence_and_nan():
    a = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, np.nan, 5.0, np.nan]])
    np.testing.assert_array_equal(to_np(lm.argmax(lm.tensor(a), 1)), np.argmax(a, 1))
    np.testing.assert_array_equal(to_np(lm.argmin(lm.tensor(a), 1)), np.argmin(a, 1))
    assert lm.argmax(lm.tensor([[0, 7], [7, 1]])).item() == 1


def test_integer_inputs():
    a = np.arange(-6, 6, dtype=np.int64).reshape(3, 4)
    t = lm.tensor(a)
    assert str(lm.max(t).dtype) == "int64" and lm.max(t).item() == 5
    assert str(lm.min(lm.tensor(a.astype(np.int32)), 0).dtype) == "int32"
    assert str(lm.prod(lm.tensor(a.astype(np.int32)), 1).dtype) == "int64"
    np.testing.assert_array_equal(to_np(lm.prod(t + 7, 1)), np.prod(a + 7, 1))
    for f, nf in ((lm.var, np.var), (lm.std, np.std)):
        out = f(t, 1)
        assert str(out.dtype) == "float32"
        np.testing.assert_allclose(to_np(out), nf(a, 1), rtol=1e-6)
    for f, nf in ((lm.softmax, np_softmax), (lm.log_softmax, np_log_softmax)):
        out = f(t)
        assert str(out.dtype) == "float32"
        np.testing.assert_allclose(to_np(out), nf(a.astype(np.float64)), rtol=1e-5, atol=1e-6)
    out = lm.logsumexp(t, 0)
    assert str(out.dtype) == "float32"
    np.testing.assert_allclose(to_np(out), np_logsumexp(a.astype(np.float64), 0), rtol=1e-6)
    assert str(lm.cumsum(lm.tensor(a.astype(np.int32)), 1).dtype) == "int64"
    np.testing.assert_array_equal(to_np(lm.cumsum(lm.tensor([True, False, True]))), [1, 1, 2])


@pytest.mark.parametrize("n", [2 ** 15, 100_003, 1_000_000])
def test_whole_tensor_sums_in_chunks(n):
    """A whole contiguous tensor of 32K elements or more is summed in fixed chunks (every
    thread takes some), whose partial sums are added pairwise: float32 against float64 to a
    few units of rounding of the sum of |x|, integers exactly (with the chunk tail), and views
    and partial reductions take the other paths to the same values."""
    x = (RNG.standard_normal(n) + 0.5).astype(np.float32)
    lx = lm.tensor(x)
    got = float(lm.sum(lx).numpy())
    assert abs(got - x.astype(np.float64).sum()) <= 1e-7 * np.abs(x.astype(np.float64)).sum()
    assert float(lm.mean(lx).numpy()) == pytest.approx(x.astype(np.float64).mean(), rel=1e-6, abs=1e-7)
    m = lm.reshape(lx, (1, n))
    assert float(lm.sum(m, axis=1).numpy()[0]) == pytest.approx(got, rel=1e-6)
    assert float(lm.sum(lx[::2]).numpy()) == pytest.approx(x[::2].astype(np.float64).sum(), rel=1e-5, abs=1e-3)
    ints = RNG.integers(-2 ** 40, 2 ** 40, n)
    assert lm.sum(lm.tensor(ints)).item() == int(ints.sum())
    small = RNG.integers(-1000, 1000, n).astype(np.int32)
    assert lm.sum(lm.tensor(small)).item() == int(small.astype(np.int64).sum())


def test_float16_inputs():
    a = RNG.standard_normal((3, 4)).astype(np.float16)
    t = lm.tensor(a)
    for f, nf in ((lm.max, np.max), (lm.var, np.var), (lm.prod, np.prod), (lm.logsumexp, np_logsumexp)):
        out = f(t, 1)
        assert str(out.dtype) == "float16"
        np.testing.assert_allclose(to_np(out).astype(np.float64), nf(a.astype(np.float64), axis=1),
                                   rtol=5e-3, atol=5e-3)
    assert str(lm.softmax(t).dtype) == "float16"
    assert str(lm.cumsum(t, 0).dtype) == "float16"


def test_method_forms():
    a = RNG.standard_normal((3, 4))
    t = lm.tensor(a)
    np.testing.assert_allclose(to_np(t.max(axis=1)), a.max(1))
    np.testing.assert_allclose(to_np(t.std(ddof=1)), a.std(ddof=1))
    np.testing.assert_array_equal(to_np(t.argmin(axis=0)), a.argmin(0))
    np.testing.assert_allclose(to_np(t.softmax(0)), np_softmax(a, 0))
    np.testing.assert_allclose(to_np(t.cumsum(axis=1)), a.cumsum(1))


# ---------------------------------------------------------------- empty tensors, NaN

def test_empty_reductions():
    e = lm.zeros((0,), dtype="float64")
    assert lm.sum(e).item() == 0
    assert lm.prod(e).item() == 1
    assert math.isnan(lm.mean(e).item())
    assert math.isnan(lm.var(e).item())
    assert lm.logsumexp(e).item() == -math.inf
    e2 = lm.zeros((0, 3))
    np.testing.assert_array_equal(to_np(lm.prod(e2, 0)), np.ones(3))
    assert lm.max(e2, 1).shape == (0,)  # the reduced axis is not empty
    assert lm.argmax(e2, 1).shape == (0,)
    assert lm.softmax(e2, 0).shape == (0, 3)
    assert lm.cumsum(e2, 0).shape == (0, 3)
    assert lm.cumsum(e2).shape == (0,)


@pytest.mark.parametrize("fn", [lm.max, lm.min, lm.argmax, lm.argmin])
def test_empty_extremum_raises(fn):
    name = fn.__name__
    with pytest.raises(ValueError, match=name):
        fn(lm.zeros((0,)))
    with pytest.raises(ValueError, match=name):
        fn(lm.zeros((0, 3)), 0)


@pytest.mark.parametrize("name", ["sum", "mean", "prod", "max", "min", "var", "std", "logsumexp"])
def test_nan_propagates(name):
    lf, nf = REDUCTIONS[name]
    a = RNG.standard_normal((3, 4))
    a[1, 2] = np.nan
    out = to_np(lf(lm.tensor(a), 1))
    ref = nf(a, axis=1)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_allclose(out[~np.isnan(ref)], ref[~np.isnan(ref)], rtol=1e-12)
    assert math.isnan(lf(lm.tensor(a), None).item())


def test_nan_propagates_softmax_cumsum():
    a = np.array([[1.0, np.nan, 2.0], [0.0, 1.0, 2.0]])
    for f in (lm.softmax, lm.log_softmax):
        out = to_np(f(lm.tensor(a)))
        assert np.isnan(out[0]).all() and not np.isnan(out[1]).any()
    np.testing.assert_array_equal(np.isnan(to_np(lm.cumsum(lm.tensor(a), 1))), np.isnan(np.cumsum(a, 1)))


def test_max_nan_gradient_goes_to_nan():
    t = lm.tensor([1.0, np.nan, 3.0], requires_grad=True)
    (g,) = lm.grad([lm.max(t)], [t])
    np.testing.assert_array_equal(to_np(g), [0.0, 1.0, 0.0])


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("call", [
    lambda t: lm.sum(t, 3), lambda t: lm.max(t, -4), lambda t: lm.var(t, (0, 5)), lambda t: lm.argmax(t, 3),
    lambda t: lm.softmax(t, 3), lambda t: lm.log_softmax(t, -4), lambda t: lm.cumsum(t, 3),
    lambda t: lm.logsumexp(t, 7), lambda t: lm.prod(t, -5),
])
def test_axis_out_of_range(call):
    with pytest.raises(IndexError):
        call(lm.zeros((2, 3, 4)))


def test_bad_axis_type():
    with pytest.raises(TypeError):
        lm.max(lm.zeros((2, 3)), "0")
    with pytest.raises(TypeError):
        lm.argmax(lm.zeros((2, 3)), (0, 1))


# ---------------------------------------------------------------- softmax family, cumsum values

@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_values(layout, axis):
    lv, nv = LAYOUTS[layout]
    a = RNG.standard_normal((4, 6)) * 3
    t = lv(lm.tensor(a))
    np.testing.assert_allclose(to_np(lm.softmax(t, axis)), np_softmax(nv(a), axis), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(to_np(lm.log_softmax(t, axis)), np_log_softmax(nv(a), axis), rtol=1e-12)
    t32 = lv(lm.tensor(a, dtype="float32"))
    np.testing.assert_allclose(to_np(lm.softmax(t32, axis)), np_softmax(nv(a), axis), rtol=1e-5, atol=1e-7)


def test_float32_softmax_and_cross_entropy_over_wide_score_spreads():
    """float32 softmax, softmax cross-entropy and attention take exp(x - max) on a path for
    x - max <= 0 that flushes results under 2^-126 to 0. Against float64: probabilities that
    are normal floats are within a few ulp plus the float32 rounding of x - max (relative
    |x - max| 2^-24, the conditioning of exp), the flushed ones are below 2^-126, -inf scores
    give exactly 0, and rows spread over [-120, 0] still sum to 1."""
    tiny = np.finfo(np.float32).tiny
    a = np.concatenate([np.linspace(-120, 0, 97).reshape(1, -1),
                        RNG.uniform(-95, 5, (7, 97))]).astype(np.float32)
    a[3, ::5] = -np.inf
    a64 = a.astype(np.float64)
    want = np_softmax(a64)
    got = to_np(lm.softmax(lm.tensor(a), -1)).astype(np.float64)
    normal = want >= tiny
    shift = np.abs(a64 - a64.max(-1, keepdims=True))
    bound = (4e-7 + shift * 2.0**-24) * want
    assert np.all(np.abs(got - want)[normal] <= bound[normal])
    assert np.all(got[~normal] <= tiny) and np.all(got[3, ::5] == 0)
    np.testing.assert_allclose(got.sum(-1), 1, rtol=1e-6)
    labels = np.arange(8) * 11
    logits = lm.tensor(a, requires_grad=True)
    loss = lm.softmax_cross_entropy(logits, lm.tensor(labels), reduction="sum")
    want_loss = -np_log_softmax(a.astype(np.float64))[np.arange(8), labels].sum()
    assert float(loss.numpy()) == pytest.approx(want_loss, rel=1e-6)
    loss.backward()
    onehot = np.eye(97)[labels]
    grad = to_np(logits.grad).astype(np.float64)
    assert np.all(np.abs(grad - (want - onehot))[normal] <= bound[normal] + 1e-7)
    assert np.all(np.abs(grad - (want - onehot))[~normal] <= tiny)


def test_softmax_stable_and_3d():
    a = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1001.0, -1e4]])
    np.testing.assert_allclose(to_np(lm.softmax(lm.tensor(a))), np_softmax(a), rtol=1e-12)
    np.testing.assert_allclose(to_np(lm.log_softmax(lm.tensor(a))), np_log_softmax(a), rtol=1e-12)
    b = RNG.standard_normal((2, 3, 4))
    for axis in (0, 1, 2):
        np.testing.assert_allclose(to_np(lm.softmax(lm.tensor(b), axis)), np_softmax(b, axis), rtol=1e-12)
    assert lm.softmax(lm.tensor(2.0)).item() == 1.0
    assert lm.log_softmax(lm.tensor(2.0)).item() == 0.0


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_cumsum_values(layout):
    lv, nv = LAYOUTS[layout]
    a = RNG.standard_normal((4, 6))
    for axis in (None, 0, 1, -1, -2):
        np.testing.assert_allclose(to_np(lm.cumsum(lv(lm.tensor(a)), axis)), np.cumsum(nv(a), axis=axis), rtol=1e-12)
    b = RNG.standard_normal((2, 3, 4))
    np.testing.assert_allclose(to_np(lm.cumsum(lm.tensor(b), 1)), np.cumsum(b, 1), rtol=1e-12)


# ---------------------------------------------------------------- gradients

GRAD_AXES = [None, 0, -1, (0, 2)]


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("axis", GRAD_AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_grad(name, axis, keepdims):
    lf, _ = REDUCTIONS[name]
    a = RNG.standard_normal((2, 3, 4)) + (1.5 if name == "prod" else 0.0)
    check_grad(lambda t: lf(t, axis, keepdims), a)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("layout", ["transposed", "stepped"])
def test_reduction_grad_layouts(name, layout):
    lf, _ = REDUCTIONS[name]
    lv, _ = LAYOUTS[layout]
    a = RNG.standard_normal((3, 4)) + (1.5 if name == "prod" else 0.0)
    check_grad(lambda t: lf(lv(t), 1), a)


def test_prod_grad_with_zeros():
    for a in ([[0.0, 2.0, 3.0], [1.5, 2.0, -1.0]], [[0.0, 2.0, 0.0], [4.0, 0.0, 1.0]]):
        a = np.array(a)
        t = lm.tensor(a, requires_grad=True)
        (g,) = lm.grad([lm.prod(t, 1)], [t], [lm.ones((2,), dtype="float64")])
        ref = np.zeros_like(a)
        for i, j in np.ndindex(a.shape):
            ref[i, j] = np.prod(np.delete(a[i], j))
        np.testing.assert_allclose(to_np(g), ref)


def test_max_grad_splits_ties():
    t = lm.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    (g,) = lm.grad([lm.max(t, 1)], [t], [lm.ones((2,), dtype="float64")])
    np.testing.assert_allclose(to_np(g), [[0, 0.5, 0.5], [1, 0, 0]])
    (g,) = lm.grad([lm.min(t)], [t])
    np.testing.assert_allclose(to_np(g), [[0, 0, 0], [0, 1, 0]])


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_softmax_grad(fn, axis, layout):
    f = getattr(lm, fn)
    lv, _ = LAYOUTS[layout]
    check_grad(lambda t: f(lv(t), axis), RNG.standard_normal((3, 4)))


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_cumsum_grad(axis, layout):
    lv, _ = LAYOUTS[layout]
    check_grad(lambda t: lm.cumsum(lv(t), axis), RNG.standard_normal((3, 4)))


@pytest.mark.parametrize("f", [
    lambda t: lm.softmax(t, 1), lambda t: lm.log_softmax(t, 0), lambda t: lm.logsumexp(t, 1),
    lambda t: lm.logsumexp(t), lambda t: lm.var(t, 0, ddof=1), lambda t: lm.std(t, 1),
    lambda t: lm.prod(t, 1), lambda t: lm.max(t, 1) * lm.max(t, 1), lambda t: lm.cumsum(t, 1) ** 2,
])
def test_second_order(f):
    check_second_order(f, RNG.standard_normal((3, 4)) + 0.5)


def test_argmax_has_no_grad():
    t = lm.tensor([1.0, 2.0], requires_grad=True)
    assert not lm.argmax(t).requires_grad


def test_inplace_change_of_saved_output_is_detected():
    t = lm.tensor(RNG.standard_normal((3, 4)), requires_grad=True)
    y = lm.softmax(t * 1.0)
    with lm.no_grad():
        y[0, 0] = 5.0
    with pytest.raises(RuntimeError):
        lm.grad([y], [t], [lm.ones((3, 4), dtype="float64")])
