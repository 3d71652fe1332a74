"""conv1d / conv2d / conv_transpose2d: values against an independent float64 loop
reference, gradients against central finite differences (and again through the gradient
ops, for double backward), a PyTorch cross-check on ragged shapes when torch is
importable, and the documented errors."""

import warnings

import numpy as np
import pytest

import lamina as lm
from helpers import check_grad

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape)


def t64(a, grad=False):
    return lm.tensor(a, dtype="float64", requires_grad=grad)


# ---- the reference: explicit loops over groups and kernel taps, float64 -------------------

def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def resolve_padding(padding, in_hw, k_hw, stride, dil):
    """((top, bottom), (left, right)) for 'same' / 'valid' / int / per-axis ints."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        pads = []
        for n, k, s, d in zip(in_hw, k_hw, stride, dil):
            out = -(-n // s)
            total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    if not isinstance(padding, int) and not isinstance(padding[0], int):
        return tuple(tuple(q) for q in padding)
    p = pair(padding)
    return ((p[0], p[0]), (p[1], p[1]))


def ref_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    stride, dil = pair(stride), pair(dilation)
    N, C, H, W = x.shape
    Co, Cg, kh, kw = w.shape
    pads = resolve_padding(padding, (H, W), (kh, kw), stride, dil)
    xp = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    OH = (xp.shape[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    OW = (xp.shape[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((N, Co, OH, OW))
    Cog = Co // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                h0, w0 = i * dil[0], j * dil[1]
                patch = xp[:, g * Cg:(g + 1) * Cg,
                           h0:h0 + stride[0] * (OH - 1) + 1:stride[0],
                           w0:w0 + stride[1] * (OW - 1) + 1:stride[1]]
                out[:, g * Cog:(g + 1) * Cog] += np.einsum(
                    "nchw,oc->nohw", patch, w[g * Cog:(g + 1) * Cog, :, i, j])
    if b is not None:
        out += b[None, :, None, None]
    return out


def ref_conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    s, p, op, d = pair(stride), pair(padding), pair(output_padding), pair(dilation)
    N, Ci, H, W = x.shape
    _, Cog, kh, kw = w.shape
    Cig = Ci // groups
    OH = (H - 1) * s[0] - 2 * p[0] + d[0] * (kh - 1) + op[0] + 1
    OW = (W - 1) * s[1] - 2 * p[1] + d[1] * (kw - 1) + op[1] + 1
    full = np.zeros((N, Cog * groups, OH + 2 * p[0] + s[0], OW + 2 * p[1] + s[1]))
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                contrib = np.einsum("nchw,co->nohw", x[:, g * Cig:(g + 1) * Cig],
                                    w[g * Cig:(g + 1) * Cig, :, i, j])
                h0, w0 = i * d[0], j * d[1]
                full[:, g * Cog:(g + 1) * Cog,
                     h0:h0 + s[0] * (H - 1) + 1:s[0], w0:w0 + s[1] * (W - 1) + 1:s[1]] += contrib
    out = full[:, :, p[0]:p[0] + OH, p[1]:p[1] + OW]
    if b is not None:
        out = out + b[None, :, None, None]
    return out


# (input shape, weight shape, kwargs)
CONV2D_CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), {}),
    ((2, 3, 7, 6), (4, 3, 3, 3), dict(padding=1)),
    ((1, 2, 9, 8), (3, 2, 3, 2), dict(stride=2, padding=(1, 0))),
    ((1, 2, 9, 9), (2, 2, 3, 3), dict(dilation=2, padding=2)),
    ((2, 4, 6, 5), (6, 2, 3, 3), dict(groups=2, padding=1)),
    ((2, 3, 7, 7), (3, 1, 3, 3), dict(groups=3, padding=1)),  # depthwise
    ((1, 2, 8, 7), (4, 1, 3, 3), dict(groups=2, stride=2, padding="same")),  # depthwise x2
    ((1, 2, 9, 7), (4, 1, 5, 3), dict(groups=2, stride=(2, 1), dilation=(1, 2))),
    ((2, 3, 6, 6), (5, 3, 1, 1), {}),  # pointwise: no im2col
    ((1, 2, 6, 5), (3, 2, 4, 4), dict(padding="same")),  # asymmetric padding
    ((1, 2, 7, 8), (3, 2, 3, 3), dict(padding="same", stride=2)),
    ((1, 1, 5, 5), (2, 1, 5, 5), dict(padding="valid")),  # kernel fills the input
    ((2, 2, 3, 4), (3, 2, 2, 2), dict(padding=((1, 0), (0, 2)))),
]


def lm_conv2d(x, w, b=None, **kw):
    return lm.conv2d(x, w, b, **kw)


@pytest.mark.parametrize("xs,ws,kw", CONV2D_CASES)
def test_conv2d_values(xs, ws, kw):
    x, w, b = rand(*xs), rand(*ws), rand(ws[0])
    expected = ref_conv2d(x, w, b, **kw)
    np.testing.assert_allclose(lm_conv2d(t64(x), t64(w), t64(b), **kw).numpy(), expected, atol=1e-12, rtol=1e-10)
    got32 = lm_conv2d(lm.tensor(x, dtype="float32"), lm.tensor(w, dtype="float32"),
                      lm.tensor(b, dtype="float32"), **kw)
    assert got32.dtype == "float32"
    np.testing.assert_allclose(got32.numpy(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("xs,ws,kw", [c for c in CONV2D_CASES if np.prod(c[0]) <= 160])
def test_conv2d_grads(xs, ws, kw):
    check_grad("conv", lambda x, w, b: lm.conv2d(x, w, b, **kw), [rand(*xs), rand(*ws), rand(ws[0])])


def test_conv2d_double_backward():
    # Gradients of a function of the input gradient: every conv2d gradient op is differentiated.
    kw = dict(stride=2, padding=1, groups=2)
    v = rand(2, 4, 3, 3)

    def f(x, w):
        with lm.enable_grad():
            if not x.requires_grad:  # the finite-difference evaluations
                x, w = t64(x.numpy(), grad=True), t64(w.numpy(), grad=True)
            gx, gw = lm.grad([lm.sum(lm.conv2d(x, w, **kw) * t64(v))], [x, w], create_graph=True)
            return lm.sum(gx * gx) + lm.sum(gw * lm.tanh(gw))

    def scalar(x, w):
        out = f(x, w)
        return lm.reshape(out, (1,))

    check_grad("conv", scalar, [rand(2, 4, 5, 5), rand(4, 2, 3, 3)], atol=1e-6)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1, output_padding=1),
                                dict(groups=2, dilation=2, padding=2), dict(stride=(2, 1), padding=(0, 1))])
def test_conv_transpose2d(kw):
    x, w, b = rand(2, 4, 4, 5), rand(4, 3, 3, 3), rand(3 * kw.get("groups", 1))
    expected = ref_conv_transpose2d(x, w, b, **kw)
    got = lm.conv_transpose2d(t64(x), t64(w), t64(b), **kw).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12, rtol=1e-10)
    check_grad("conv", lambda x, w, b: lm.conv_transpose2d(x, w, b, **kw), [rand(1, 4, 3, 3), w, b])


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(padding="same", dilation=2),
                                dict(groups=3, padding=1)])
def test_conv1d(kw):
    x, w, b = rand(2, 3, 11), rand(6, 3 // kw.get("groups", 1), 3), rand(6)
    stride, dil = kw.get("stride", 1), kw.get("dilation", 1)
    pad = kw.get("padding", 0)
    pad2 = pad if isinstance(pad, str) else (0, pad)
    expected = ref_conv2d(x[:, :, None], w[:, :, None], b, stride=(1, stride), padding=pad2,
                          dilation=(1, dil), groups=kw.get("groups", 1))[:, :, 0]
    np.testing.assert_allclose(lm.conv1d(t64(x), t64(w), t64(b), **kw).numpy(), expected, atol=1e-12)
    check_grad("conv", lambda x, w, b: lm.conv1d(x, w, b, **kw), [rand(1, 3, 6), w, b])


def test_conv_gradient_ops_match_autograd():
    x, w = rand(2, 4, 6, 5), rand(6, 2, 3, 3)
    g = rand(2, 6, 3, 3)
    kw = dict(stride=2, padding=1, groups=2)
    tx, tw = t64(x, grad=True), t64(w, grad=True)
    lm.sum(lm.conv2d(tx, tw, **kw) * t64(g)).backward()
    np.testing.assert_allclose(lm.conv2d_input_grad(t64(g), t64(w), x.shape, **kw).numpy(), tx.grad.numpy())
    np.testing.assert_allclose(lm.conv2d_weight_grad(t64(x), t64(g), w.shape, **kw).numpy(), tw.grad.numpy())


def test_empty_batch_and_float16():
    x, w = lm.zeros((0, 2, 5, 5)), lm.tensor(rand(3, 2, 3, 3), dtype="float32", requires_grad=True)
    y = lm.conv2d(x, w)
    assert y.shape == (0, 3, 3, 3)
    lm.sum(y).backward()
    assert np.all(w.grad.numpy() == 0)
    xh = lm.tensor(rand(1, 2, 5, 5), dtype="float16")
    assert lm.conv2d(xh, lm.astype(w.detach(), "float16")).dtype == "float16"


@pytest.mark.parametrize("fn,match", [
    (lambda: lm.conv2d(lm.zeros((1, 3, 5, 5)), lm.zeros((4, 2, 3, 3))), r"conv2d: .*3 channels.*\(1, 3, 5, 5\)"),
    (lambda: lm.conv2d(lm.zeros((1, 2, 2, 5)), lm.zeros((4, 2, 3, 3))), r"conv2d: kernel .*larger"),
    (lambda: lm.conv2d(lm.zeros((1, 2, 5, 5)), lm.zeros((4, 2, 3, 3)), stride=0), r"conv2d: stride"),
    (lambda: lm.conv2d(lm.zeros((1, 4, 5, 5)), lm.zeros((4, 2, 3, 3)), groups=3), r"conv2d: groups"),
    (lambda: lm.conv2d(lm.zeros((1, 4, 5, 5)), lm.zeros((4, 2, 3, 3)), groups=0), r"conv2d: groups"),
    (lambda: lm.conv2d(lm.zeros((1, 2, 5, 5)), lm.zeros((4, 2, 3, 3)), padding="full"), r"conv2d: padding"),
    (lambda: lm.conv2d(lm.zeros((1, 2, 5, 5)), lm.zeros((4, 2, 3, 3)), padding=-1), r"conv2d: padding"),
    (lambda: lm.conv2d(lm.zeros((2, 5, 5)), lm.zeros((4, 2, 3, 3))), r"conv2d: .*\(2, 5, 5\)"),
    (lambda: lm.conv2d(lm.zeros((1, 2, 5, 5)), lm.zeros((4, 2, 3, 3)), lm.zeros(3)), r"conv2d: bias"),
    (lambda: lm.conv1d(lm.zeros((1, 2, 5)), lm.zeros((4, 3, 3))), r"conv1d: .*\(1, 2, 5\)"),
    (lambda: lm.conv1d(lm.zeros((1, 2, 2)), lm.zeros((4, 2, 3))), r"conv1d: kernel"),
    (lambda: lm.conv_transpose2d(lm.zeros((1, 2, 5, 5)), lm.zeros((3, 2, 3, 3))), r"conv_transpose2d: .*channels"),
    (lambda: lm.conv_transpose2d(lm.zeros((1, 2, 5, 5)), lm.zeros((2, 2, 3, 3)), output_padding=1),
     r"conv_transpose2d: output_padding"),
])
def test_errors(fn, match):
    with pytest.raises(ValueError, match=match):
        fn()


# ---- PyTorch cross-check: ragged shapes, values and gradients ------------------------------

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

TORCH_CASES = [
    ((3, 5, 13, 11), (7, 5, 3, 3), dict(stride=2, padding=1)),
    ((2, 4, 15, 9), (6, 4, 3, 5), dict(dilation=2, padding=(2, 1))),
    ((4, 6, 9, 10), (8, 3, 3, 3), dict(groups=2, padding="same")),
    ((3, 8, 11, 7), (8, 1, 3, 3), dict(groups=8, padding=1)),
    ((2, 8, 12, 9), (16, 1, 5, 5), dict(groups=8, stride=2, padding=2)),
    ((5, 3, 10, 12), (4, 3, 4, 2), dict(padding="same", dilation=(1, 2))),
    ((2, 16, 7, 7), (24, 16, 1, 1), dict(stride=2)),
]


@pytest.mark.skipif(torch is None, reason="torch not importable")
@pytest.mark.parametrize("xs,ws,kw", TORCH_CASES)
def test_conv2d_vs_torch(xs, ws, kw):
    x, w, b = [a.astype(np.float32) for a in (rand(*xs), rand(*ws), rand(ws[0]))]
    lx, lw, lb = (lm.tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = lm.conv2d(lx, lw, lb, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'same' with an even kernel: torch pads a copy
        ty = torch.nn.functional.conv2d(tx, tw, tb, **kw)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=2e-4, rtol=1e-4)
    g = rand(*ty.shape).astype(np.float32)
    lm.sum(y * lm.tensor(g)).backward()
    (ty * torch.tensor(g)).sum().backward()
    for a, t in ((lx, tx), (lw, tw), (lb, tb)):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), atol=1e-3, rtol=1e-4)


@pytest.mark.skipif(torch is None, reason="torch not importable")
def test_conv_transpose2d_and_conv1d_vs_torch():
    x, w = rand(3, 6, 7, 5).astype(np.float32), rand(6, 4, 3, 3).astype(np.float32)
    kw = dict(stride=2, padding=1, output_padding=1, groups=2)
    lx, lw = lm.tensor(x, requires_grad=True), lm.tensor(w, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y, ty = lm.conv_transpose2d(lx, lw, **kw), torch.nn.functional.conv_transpose2d(tx, tw, **kw)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=2e-4, rtol=1e-4)
    lm.sum(y * y).backward()
    (ty * ty).sum().backward()
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(lw.grad.numpy(), tw.grad.numpy(), rtol=1e-3, atol=1e-2)
    x1, w1 = rand(2, 4, 17).astype(np.float32), rand(6, 2, 4).astype(np.float32)
    y1 = lm.conv1d(x1, w1, stride=3, dilation=2, groups=2, padding=3).numpy()
    t1 = torch.nn.functional.conv1d(torch.tensor(x1), torch.tensor(w1), stride=3, dilation=2, groups=2, padding=3)
    np.testing.assert_allclose(y1, t1.numpy(), atol=2e-4, rtol=1e-4)


# ---- float32 fast paths (implicit GEMM with AVX2; the plain GEMM path otherwise) -----------

def ref_conv2d_grads(x, w, g, stride=1, padding=0, dilation=1, groups=1):
    """dx and dw of <conv2d(x, w), g> in float64, by the same patch slicing as ref_conv2d."""
    stride, dil = pair(stride), pair(dilation)
    N, C, H, W = x.shape
    Co, Cg, kh, kw = w.shape
    pads = resolve_padding(padding, (H, W), (kh, kw), stride, dil)
    xp = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    OH, OW = g.shape[2:]
    Cog = Co // groups
    for gi in range(groups):
        cs, os_ = slice(gi * Cg, (gi + 1) * Cg), slice(gi * Cog, (gi + 1) * Cog)
        for i in range(kh):
            for j in range(kw):
                h0, w0 = i * dil[0], j * dil[1]
                rows = slice(h0, h0 + stride[0] * (OH - 1) + 1, stride[0])
                cols = slice(w0, w0 + stride[1] * (OW - 1) + 1, stride[1])
                dw[os_, :, i, j] = np.einsum("nchw,nohw->oc", xp[:, cs, rows, cols], g[:, os_])
                dxp[:, cs, rows, cols] += np.einsum("nohw,oc->nchw", g[:, os_], w[os_, :, i, j])
    return dxp[:, :, pads[0][0]:pads[0][0] + H, pads[1][0]:pads[1][0] + W], dw


FLOAT32_CASES = [
    ((9, 3, 14, 14), (20, 3, 3, 3), dict(padding=1)),  # 14-wide rows: panels span 2-3 rows
    ((8, 32, 6, 5), (7, 32, 3, 3), dict(padding=1)),  # K = 288 + bias: two K blocks
    ((8, 64, 4, 4), (17, 64, 2, 2), {}),  # K = 256 + bias = 257
    ((10, 4, 11, 9), (6, 4, 3, 3), dict(stride=2, padding=(1, 0))),
    ((8, 3, 7, 41), (5, 3, 3, 3), dict(stride=2, padding=1)),  # stride 2 across 16 lanes
    ((8, 2, 17, 12), (5, 2, 3, 2), dict(dilation=(2, 3), padding="same")),
    ((8, 6, 9, 40), (8, 3, 3, 5), dict(groups=2, padding=2, stride=(1, 3))),
    ((12, 5, 10, 1), (3, 5, 3, 1), dict(padding=(1, 0))),  # one column: 16 segments a panel
    ((8, 3, 8, 7), (33, 3, 4, 4), dict(padding="same")),  # asymmetric padding
    ((8, 16, 5, 7), (24, 16, 1, 1), {}),  # pointwise
    ((1, 5, 9, 19), (6, 5, 3, 3), dict(padding=1)),  # one image: channel blocks, GEMM weight grad
    ((3, 7, 33, 33), (4, 7, 3, 3), dict(padding=1, stride=(2, 1))),
    # stride 2 over rows of 16+ floats: the phase split's vector copy and the two-phase col2im
    ((8, 3, 9, 37), (5, 3, 3, 3), dict(stride=2, dilation=(1, 2), padding=(1, 3))),
    ((8, 4, 6, 34), (6, 4, 2, 4), dict(stride=2)),
    ((8, 2, 5, 40), (3, 2, 3, 5), dict(stride=2, padding=(0, 4))),  # padding beyond the kernel's reach
    ((8, 1, 5, 5), (2, 1, 5, 5), {}),  # kernel fills the input: one output position
    # >= 64 channels a group at unit stride: the input gradient runs as a flipped-kernel conv
    ((8, 128, 5, 6), (12, 64, 3, 3), dict(groups=2, dilation=(2, 1), padding="same")),
    ((2, 64, 6, 7), (5, 64, 4, 3), dict(padding="same")),
    ((8, 64, 5, 5), (4, 64, 2, 2), dict(padding=2)),  # padding beyond the kernel's reach
    # AVX-512 with >= 4 images a thread: the forward reads a zero-padded copy of each image
    ((8, 8, 6, 20), (12, 4, 3, 3), dict(groups=2, padding=1)),
    ((9, 5, 3, 37), (17, 5, 3, 2), dict(padding=(2, 0), dilation=(1, 2))),
    ((8, 32, 5, 12), (6, 32, 3, 3), dict(padding=1)),  # 32 channels: input gradient as that forward
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs,ws,kw", FLOAT32_CASES)
def test_conv2d_float32_paths(xs, ws, kw, bias):
    x, w, b = rand(*xs), rand(*ws), rand(ws[0])
    lx = lm.tensor(x.astype(np.float32), requires_grad=True)
    lw = lm.tensor(w.astype(np.float32), requires_grad=True)
    lb = lm.tensor(b.astype(np.float32), requires_grad=True) if bias else None
    y = lm.conv2d(lx, lw, lb, **kw)
    ref = ref_conv2d(x, w, b if bias else None, **kw)
    assert y.shape == ref.shape and y.dtype == lm.float32
    g = rand(*ref.shape)
    lm.sum(y * lm.tensor(g.astype(np.float32))).backward()
    dx, dw = ref_conv2d_grads(x, w, g, **kw)
    for got, want in ((y.numpy(), ref), (lx.grad.numpy(), dx), (lw.grad.numpy(), dw)):
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)
    if bias:
        np.testing.assert_allclose(lb.grad.numpy(), g.sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-5)


def test_conv2d_float32_without_input_channels():
    """K = 0: the output is the bias, and the weight and input gradients are empty."""
    x = lm.tensor(np.zeros((8, 0, 5, 5), np.float32), requires_grad=True)
    w = lm.tensor(np.zeros((3, 0, 3, 3), np.float32), requires_grad=True)
    b = lm.tensor(np.array([1.0, -2.0, 3.0], np.float32), requires_grad=True)
    y = lm.conv2d(x, w, b, padding=1)
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(b.numpy()[None, :, None, None], (8, 3, 5, 5)))
    lm.sum(y).backward()
    assert x.grad.shape == (8, 0, 5, 5) and w.grad.shape == (3, 0, 3, 3)
    np.testing.assert_array_equal(b.grad.numpy(), np.full(3, 200.0, np.float32))
