"""Fused scaled_dot_product_attention against the composite softmax(q k^T * scale + mask) v
(values and gradients, float64 and float32), finite differences, torch's
scaled_dot_product_attention, and the documented errors."""

import numpy as np
import pytest

import lamina as lm
from helpers import check_grad

RNG = np.random.default_rng(0)


def leaves(arrays, dtype):
    return [lm.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]


def run(fn, arrays, w, dtype, **kw):
    q, k, v = leaves(arrays, dtype)
    out = fn(q, k, v, **kw)
    lm.sum(out * lm.tensor(w, dtype=dtype)).backward()
    return out.numpy(), [t.grad.numpy() for t in (q, k, v)]


def qkv(lead, lq, lk, d, dv=None):
    dv = d if dv is None else dv
    return [RNG.standard_normal(s) for s in [(*lead, lq, d), (*lead, lk, d), (*lead, lk, dv)]]


CASES = [  # (lead, lq, lk, d, dv, mask kind, causal) -- sizes cross the 128 x 128 tile edges
    ((2, 2), 5, 7, 4, 4, None, False),
    ((1, 3), 70, 130, 8, 5, None, False),
    ((2, 1), 70, 70, 8, 8, None, True),
    ((1, 2), 130, 150, 4, 4, None, True),
    ((1, 2), 40, 200, 4, 4, None, True),  # causal: the second key block sees no query at all
    ((2, 2), 9, 140, 4, 4, "bool", False),
    ((2, 2), 66, 20, 4, 4, "bool-broadcast", True),
    ((2, 2), 33, 40, 4, 4, "float", False),
    ((3,), 8, 8, 16, 16, None, False),
]


def make_mask(kind, lead, lq, lk):
    if kind is None:
        return None
    if kind == "bool":
        m = RNG.random((*lead, lq, lk)) > 0.3
        m[..., 0] = True  # every row sees a key (the composite is NaN otherwise)
        return m
    if kind == "bool-broadcast":
        m = RNG.random((lq, lk)) > 0.5
        m[:, 0] = True
        return m
    return RNG.standard_normal((lead[0], 1, lq, lk))


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_composite(case, dtype):
    lead, lq, lk, d, dv, kind, causal = case
    arrays = qkv(lead, lq, lk, d, dv)
    mask = make_mask(kind, lead, lq, lk)
    kw = dict(mask=None if mask is None else lm.tensor(mask, dtype="bool" if kind.startswith("bool") else dtype),
              causal=causal)
    w = RNG.standard_normal((*lead, lq, dv))
    got_v, got_g = run(lm.scaled_dot_product_attention, arrays, w, dtype, **kw)
    want_v, want_g = run(lm.scaled_dot_product_attention_reference, arrays, w, dtype, **kw)
    tol = dict(rtol=1e-10, atol=1e-11) if dtype == "float64" else dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(got_v, want_v, **tol)
    for i in range(3):
        np.testing.assert_allclose(got_g[i], want_g[i], err_msg=f"gradient of {'qkv'[i]}", **tol)


def _view_operands(layout, y):
    """q, k, v as views of the leaf y, in the layouts the kernel reads in place or copies."""
    if layout == "split":  # one projection (b, s, 3, h, d) split into q, k, v (b, h, s, d)
        t = lm.permute(y, (2, 0, 3, 1, 4))
        return t[0], t[1], t[2]
    if layout == "broadcast-heads":  # k and v shared by the heads: lead stride 0
        b, h, _, s, d = y.shape
        return y[:, :, 0], lm.broadcast_to(y[:, :1, 1], (b, h, s, d)), lm.broadcast_to(y[:, :1, 2], (b, h, s, d))
    if layout == "broadcast-rows":  # one key repeated along the keys: row stride 0 (copied)
        return y[:, :, 0], lm.broadcast_to(y[:, :, 1, :1], y[:, :, 1].shape), y[:, :, 2]
    # the last axis strided (copied)
    t = lm.permute(y, (2, 0, 3, 4, 1))
    return t[0], t[1], t[2]


@pytest.mark.parametrize("layout", ["split", "broadcast-heads", "broadcast-rows", "last-axis"])
@pytest.mark.parametrize("causal", [False, True])
def test_views_read_in_place_match_the_composite(layout, causal):
    shape = {"split": (2, 130, 3, 2, 8), "broadcast-heads": (2, 3, 3, 70, 8), "broadcast-rows": (2, 3, 3, 70, 8),
             "last-axis": (2, 8, 3, 2, 70)}[layout]
    y_np, w_np = RNG.standard_normal(shape), None
    results = []
    for fn in (lm.scaled_dot_product_attention, lm.scaled_dot_product_attention_reference):
        y = lm.tensor(y_np, requires_grad=True)
        out = fn(*_view_operands(layout, y), causal=causal)
        if w_np is None:
            w_np = RNG.standard_normal(out.shape)
        lm.sum(out * lm.tensor(w_np)).backward()
        results.append((out.numpy(), y.grad.numpy()))
    (got, got_grad), (want, want_grad) = results
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-10, atol=1e-11)


def test_scale_and_finite_differences():
    arrays = qkv((1, 2), 3, 4, 2)
    mask = np.array([[1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 1]], bool)
    kw = dict(mask=lm.tensor(mask), scale=0.7)
    check_grad("scaled_dot_product_attention", lambda *xs: lm.scaled_dot_product_attention(*xs, **kw), arrays)


def test_fully_masked_row_outputs_zeros():
    q, k, v = [lm.tensor(a) for a in qkv((1,), 2, 3, 4)]
    mask = lm.tensor(np.array([[True, False, True], [False, False, False]]))
    out = lm.scaled_dot_product_attention(q, k, v, mask=mask).numpy()
    assert np.all(out[0, 1] == 0) and np.all(np.isfinite(out))


def test_dropout_uses_the_composite_path():
    q, k, v = leaves(qkv((1, 2), 6, 6, 4), "float64")
    out = lm.scaled_dot_product_attention(q, k, v, dropout=0.5)
    lm.sum(out).backward()
    assert out.shape == (1, 2, 6, 4) and q.grad is not None
    with lm.no_grad():
        p = lm.softmax(lm.matmul(q, lm.swapaxes(k, -1, -2)) * 0.5, -1)
    # with dropout some weights vanish, so the result differs from the undropped output
    assert not np.allclose(out.numpy(), (p @ v).numpy())


def test_float_mask_that_requires_grad_gets_a_gradient():
    arrays = qkv((1, 1), 4, 5, 3)
    m = lm.tensor(RNG.standard_normal((4, 5)), dtype="float64", requires_grad=True)
    q, k, v = leaves(arrays, "float64")
    lm.sum(lm.scaled_dot_product_attention(q, k, v, mask=m)).backward()
    assert m.grad is not None and m.grad.shape == (4, 5)


@pytest.mark.parametrize("causal,kind", [(False, None), (True, None), (False, "bool"), (False, "float")])
def test_matches_torch(causal, kind):
    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed")
    lead, lq, lk, d = (2, 3), 40, 40 if causal else 75, 16
    arrays = qkv(lead, lq, lk, d)
    mask = make_mask(kind, lead, lq, lk)
    w = RNG.standard_normal((*lead, lq, d))
    lm_mask = None if mask is None else lm.tensor(mask, dtype="bool" if kind == "bool" else "float64")
    got_v, got_g = run(lm.scaled_dot_product_attention, arrays, w, "float64", mask=lm_mask, causal=causal)
    tq, tk, tv = [torch.tensor(a, requires_grad=True) for a in arrays]
    t_mask = None if mask is None else torch.tensor(mask)
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=t_mask, is_causal=causal)
    (out * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(got_v, out.detach().numpy(), rtol=1e-9, atol=1e-11)
    for g, t in zip(got_g, (tq, tk, tv)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-8, atol=1e-10)


def z(*s):
    return np.zeros(s)


BAD = [
    (lambda: lm.scaled_dot_product_attention(z(2, 3, 4), z(2, 5, 3), z(2, 5, 4)), r"q and k must have the same last"),
    (lambda: lm.scaled_dot_product_attention(z(2, 3, 4), z(2, 5, 4), z(2, 6, 4)), r"k and v must have the same len"),
    (lambda: lm.scaled_dot_product_attention(z(2, 3, 4), z(3, 5, 4), z(3, 5, 4)), r"share their leading axes"),
    (lambda: lm.scaled_dot_product_attention(z(3, 4), z(1, 5, 4), z(1, 5, 4)), r"same rank"),
    (lambda: lm.scaled_dot_product_attention(z(2, 3, 4), z(2, 5, 4), z(2, 5, 4), mask=np.ones((3, 4), bool)),
     r"mask of shape \(3, 4\) does not broadcast to the scores' shape \(2, 3, 5\)"),
    (lambda: lm.scaled_dot_product_attention(z(2, 3, 4), z(2, 5, 4), z(2, 5, 4), dropout=1.0), r"dropout must be"),
]


@pytest.mark.parametrize("call,message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_errors(call, message):
    with pytest.raises(ValueError, match="scaled_dot_product_attention: .*" + message):
        call()


@pytest.mark.parametrize("causal", [False, True])
def test_double_backward_through_the_fused_op(causal):
    """With create_graph=True the gradient is the composite's, differentiated again."""
    arrays = [np.random.default_rng(i).standard_normal((1, 2, 5, 8)) for i in range(3)]
    mask = np.random.default_rng(3).random((5, 5)) > 0.3
    mask[:, 0] = True

    def first_gradient(fn, *xs):
        # Central differences call this under no_grad with constants: the gradient is then taken
        # with respect to copies.
        xs = [x if x.requires_grad else lm.tensor(x.numpy(), dtype="float64", requires_grad=True) for x in xs]
        with lm.enable_grad():
            out = fn(*xs, mask=lm.tensor(mask), causal=causal)
            return lm.grad(lm.sum(out * out), list(xs), create_graph=True)

    def penalty(fn):
        xs = [lm.tensor(a, requires_grad=True) for a in arrays]
        grads = first_gradient(fn, *xs)
        lm.sum(sum(lm.sum(g * g) for g in grads)).backward()
        return [g.numpy() for g in grads] + [x.grad.numpy() for x in xs]

    for got, want in zip(penalty(lm.scaled_dot_product_attention), penalty(lm.scaled_dot_product_attention_reference)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    check_grad("attention gradient", lambda *xs: first_gradient(lm.scaled_dot_product_attention, *xs), arrays)