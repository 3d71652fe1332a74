"""Pooling: max/avg pool (1-D, 2-D), global average pool, nearest upsampling. Values
against numpy loops in float64, gradients against central finite differences (and through
the backward ops, for double backward), PyTorch cross-check when importable, errors."""

import numpy as np
import pytest

import lamina as lm
from helpers import check_grad

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape)


def t64(a, grad=False):
    return lm.tensor(a, dtype="float64", requires_grad=grad)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def ref_pool2d(x, kernel_size, stride=None, padding=0, mode="max", count_include_pad=True):
    k = pair(kernel_size)
    s = k if stride is None else pair(stride)
    p = pair(padding)
    N, C, H, W = x.shape
    OH, OW = (H + 2 * p[0] - k[0]) // s[0] + 1, (W + 2 * p[1] - k[1]) // s[1] + 1
    out = np.zeros((N, C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            win = x[:, :, max(h0, 0):h0 + k[0], max(w0, 0):w0 + k[1]]
            if mode == "max":
                out[:, :, i, j] = win.max(axis=(2, 3))
            else:
                div = k[0] * k[1] if count_include_pad else win.shape[2] * win.shape[3]
                out[:, :, i, j] = win.sum(axis=(2, 3)) / div
    return out


POOL_CASES = [
    ((2, 3, 6, 6), dict(kernel_size=2)),
    ((2, 2, 7, 5), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 9, 8), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))),
    ((1, 1, 5, 5), dict(kernel_size=5)),
]


@pytest.mark.parametrize("xs,kw", POOL_CASES)
@pytest.mark.parametrize("mode", ["max", "avg", "avg_nopad"])
def test_pool2d(xs, kw, mode):
    x = rand(*xs)
    if mode == "max":
        fn = lambda t: lm.max_pool2d(t, **kw)  # noqa: E731
        expected = ref_pool2d(x, **kw)
    else:
        inc = mode == "avg"
        fn = lambda t: lm.avg_pool2d(t, **kw, count_include_pad=inc)  # noqa: E731
        expected = ref_pool2d(x, **kw, mode="avg", count_include_pad=inc)
    np.testing.assert_allclose(fn(t64(x)).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(fn(lm.tensor(x, dtype="float32")).numpy(), expected, atol=1e-5)
    check_grad("pool", fn, [x])


def test_pool1d_global_and_upsample():
    x = rand(2, 3, 9)
    np.testing.assert_allclose(lm.max_pool1d(t64(x), 3, stride=2, padding=1).numpy(),
                               ref_pool2d(x[:, :, None], (1, 3), (1, 2), (0, 1))[:, :, 0])
    np.testing.assert_allclose(lm.avg_pool1d(t64(x), 2).numpy(),
                               ref_pool2d(x[:, :, None], (1, 2), mode="avg")[:, :, 0])
    check_grad("pool", lambda t: lm.max_pool1d(t, 2), [x])
    x4 = rand(2, 3, 4, 5)
    np.testing.assert_allclose(lm.global_avg_pool2d(t64(x4)).numpy(), x4.mean(axis=(2, 3)))
    assert lm.global_avg_pool2d(t64(x4), keepdims=True).shape == (2, 3, 1, 1)
    up = lm.upsample_nearest2d(t64(x4), 2).numpy()
    np.testing.assert_array_equal(up, x4.repeat(2, axis=2).repeat(2, axis=3))
    assert lm.upsample_nearest2d(t64(x4), (1, 3)).shape == (2, 3, 4, 15)
    check_grad("pool", lambda t: lm.upsample_nearest2d(t, 2), [rand(1, 2, 2, 3)])


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pool_double_backward(pool):
    fwd = (lambda t: lm.max_pool2d(t, 2)) if pool == "max" else (lambda t: lm.avg_pool2d(t, 3, 2, 1))
    v = rand(1, 2, 2, 2) if pool == "max" else rand(1, 2, 3, 3)

    def f(x):
        with lm.enable_grad():
            if not x.requires_grad:
                x = t64(x.numpy(), grad=True)
            (gx,) = lm.grad([lm.sum(fwd(x) * t64(v))], [x], create_graph=True)
            return lm.reshape(lm.sum(gx * lm.sin(x)), (1,))

    check_grad("pool", f, [rand(1, 2, 5, 5)], atol=1e-6)


def test_max_pool_nan_and_padding():
    x = np.arange(16.0).reshape(1, 1, 4, 4) - 100
    out = lm.max_pool2d(t64(x), 3, stride=1, padding=1).numpy()
    np.testing.assert_allclose(out, ref_pool2d(x, 3, 1, 1))  # -inf padding never wins
    x[0, 0, 1, 1] = np.nan
    assert np.isnan(lm.max_pool2d(t64(x), 2).numpy()[0, 0, 0, 0])


@pytest.mark.parametrize("hw", [(2, 2), (3, 15), (6, 16), (5, 17), (4, 19), (28, 28), (14, 14), (7, 33)])
def test_max_pool_2x2_stride_2_float32(hw):
    """float32 2 x 2 / stride 2 has a vectorized path (8 outputs a step, masked tails, odd
    widths): values against numpy, and which element wins (ties: the first in window order;
    NaN: the first NaN) through the gradient, against the float64 window loop."""
    h, w = hw
    x = RNG.integers(-3, 3, size=(2, 3, h, w)).astype(np.float64)  # many ties
    x[0, 0, 0, 0] = np.nan
    x[1, 2, -2:, -2:] = np.nan
    x[1, 1, 0, 1] = -np.inf
    weights = RNG.standard_normal((2, 3, h // 2, w // 2))
    out32, grads = {}, {}
    for dtype in ("float32", "float64"):
        xt = lm.tensor(x, dtype=dtype, requires_grad=True)
        y = lm.max_pool2d(xt, 2)
        out32[dtype] = y.numpy().astype(np.float64)
        grads[dtype] = lm.grad(lm.sum(y * lm.tensor(weights, dtype=dtype)), [xt])[0].numpy().astype(np.float64)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(out32["float32"], ref_pool2d(x, 2))
    np.testing.assert_array_equal(out32["float32"], out32["float64"])
    np.testing.assert_allclose(grads["float32"], grads["float64"], rtol=1e-6, atol=0)


@pytest.mark.parametrize("fn,match", [
    (lambda: lm.max_pool2d(lm.zeros((1, 1, 2, 2)), 3), r"max_pool2d: kernel .*larger.*\(1, 1, 2, 2\)"),
    (lambda: lm.max_pool2d(lm.zeros((1, 2, 2)), 2), r"max_pool2d: .*\(1, 2, 2\)"),
    (lambda: lm.avg_pool2d(lm.zeros((1, 1, 4, 4)), 2, padding=2), r"avg_pool2d: padding"),
    (lambda: lm.max_pool2d(lm.zeros((1, 1, 4, 4)), 2, stride=0), r"max_pool2d: stride"),
    (lambda: lm.max_pool1d(lm.zeros((1, 1, 4, 4)), 2), r"max_pool1d: .*\(1, 1, 4, 4\)"),
    (lambda: lm.upsample_nearest2d(lm.zeros((1, 1, 4, 4)), 0), r"upsample_nearest2d: scale"),
])
def test_errors(fn, match):
    with pytest.raises(ValueError, match=match):
        fn()


@pytest.mark.skipif(torch is None, reason="torch not importable")
@pytest.mark.parametrize("xs,kw", [((3, 4, 13, 11), dict(kernel_size=3, stride=2, padding=1)),
                                   ((2, 5, 9, 10), dict(kernel_size=(2, 3), stride=(1, 2)))])
def test_pool_vs_torch(xs, kw):
    x = rand(*xs).astype(np.float32)
    g = None
    for lfn, tfn in ((lm.max_pool2d, torch.nn.functional.max_pool2d),
                     (lm.avg_pool2d, torch.nn.functional.avg_pool2d)):
        lx, tx = lm.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = lfn(lx, **kw), tfn(tx, **kw)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=1e-6)
        g = rand(*ty.shape).astype(np.float32) if g is None else g
        lm.sum(y * lm.tensor(g)).backward()
        (ty * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), atol=1e-5)
