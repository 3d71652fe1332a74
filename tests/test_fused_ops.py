"""Fused norms, losses and optimizer updates: values vs numpy (float64), gradients vs finite
differences, PyTorch cross-checks, the composite references (second order included) and
bad inputs. The optimizer kernels must equal their composites bit for bit."""

import numpy as np
import pytest

import lamina as lm
from helpers import check_errors, check_op, torch

RNG = np.random.default_rng(7)
F = torch.nn.functional if torch is not None else None


def u(*shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, size=shape)


# ----------------------------------------------------------------------------- numpy references
def np_layer_norm(x, g, b, axis, eps):
    axes = tuple(range(axis % x.ndim, x.ndim))
    y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    return y * g + b


def np_batch_norm(x, g, b, axis, eps):
    axes = tuple(a for a in range(x.ndim) if a != axis % x.ndim)
    shape = [1] * x.ndim
    shape[axis % x.ndim] = -1
    y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    return y * g.reshape(shape) + b.reshape(shape)


def np_log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def np_sce(x, labels, w, reduction):
    lsm = np_log_softmax(x)
    w = np.ones(x.shape[-1]) if w is None else w
    if labels.dtype.kind in "iu":
        per = -np.take_along_axis(lsm, labels[..., None], -1)[..., 0] * w[labels]
        denom = w[labels].sum()
    else:
        per = -(labels * w * lsm).sum(-1)
        denom = per.size
    return {"none": per, "sum": per.sum(), "mean": per.sum() / denom}[reduction]


def np_bce(x, t, reduction):
    per = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    return {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]


# ----------------------------------------------------------------------------- norms
@pytest.mark.parametrize("shape,axis", [((4, 6), -1), ((2, 3, 5), -1), ((2, 3, 4), 1), ((3, 70), -1)])
def test_layer_norm(shape, axis):
    p = shape[axis % len(shape):]
    check_op("layer_norm", lambda x, g, b: lm.layer_norm(x, g, b, axis=axis, eps=1e-5),
             lambda x, g, b: np_layer_norm(x, g, b, axis, 1e-5), [u(*shape), u(*p), u(*p)], kind="reduction",
             torch_fn=lambda x, g, b: F.layer_norm(x, p, g, b, 1e-5))


def test_layer_norm_without_affine_and_on_views():
    x = u(5, 8)[:, ::2]
    check_op("layer_norm", lambda x: lm.layer_norm(x), lambda x: np_layer_norm(x, 1.0, 0.0, -1, 1e-5), [x],
             kind="reduction")


@pytest.mark.parametrize("shape,axis", [((6, 3), -1), ((4, 3, 2, 5), 1), ((3, 4, 2), -1)])
def test_batch_norm_training(shape, axis):
    c = shape[axis]
    check_op("batch_norm", lambda x, g, b: lm.batch_norm(x, g, b, training=True, eps=1e-3, axis=axis),
             lambda x, g, b: np_batch_norm(x, g, b, axis, 1e-3), [u(*shape), u(c), u(c)], kind="reduction")


def test_batch_norm_inference_gradients():
    rm, rv = lm.tensor(u(3)), lm.tensor(u(3, low=0.5, high=2.0))
    check_op("batch_norm_eval", lambda x, g, b: lm.batch_norm(x, g, b, rm, rv, training=False, eps=1e-3),
             lambda x, g, b: (x - rm.numpy()[:, None]) / np.sqrt(rv.numpy()[:, None] + 1e-3) * g[:, None]
             + b[:, None], [u(4, 3, 5), u(3), u(3)], kind="reduction", dtypes=("float64",))


def test_batch_norm_running_stats_match_torch():
    if torch is None:
        pytest.skip("PyTorch not installed")
    x, g, b = u(8, 3, 4, 4), u(3), u(3)
    rm, rv = lm.zeros((3,), dtype="float64"), lm.ones((3,), dtype="float64")
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for _ in range(2):
        y = lm.batch_norm(lm.tensor(x), lm.tensor(g), lm.tensor(b), rm, rv, training=True, momentum=0.9, eps=1e-3)
        ty = F.batch_norm(torch.tensor(x), trm, trv, torch.tensor(g), torch.tensor(b), True, 0.1, 1e-3)
        np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-12)
    n = 8 * 16  # PyTorch keeps the unbiased variance; Lamina the biased one (Keras)
    var = x.var((0, 2, 3))
    np.testing.assert_allclose(rv.numpy(), 0.81 + 0.09 * var + 0.1 * var, rtol=1e-12)
    np.testing.assert_allclose(trv.numpy(), 0.81 + 0.19 * var * n / (n - 1), rtol=1e-12)
    y = lm.batch_norm(lm.tensor(x), lm.tensor(g), lm.tensor(b), rm, rv, training=False, eps=1e-3)
    np.testing.assert_allclose(y.numpy(), (x - rm.numpy()[:, None, None]) / np.sqrt(rv.numpy()[:, None, None] + 1e-3)
                               * g[:, None, None] + b[:, None, None], rtol=1e-10)


def test_batch_norm_torch_cross_check():
    if torch is None:
        pytest.skip("PyTorch not installed")
    check_op("batch_norm", lambda x, g, b: lm.batch_norm(x, g, b, training=True, eps=1e-5),
             lambda x, g, b: np_batch_norm(x, g, b, 1, 1e-5), [u(4, 3, 5), u(3), u(3)], kind="reduction",
             dtypes=("float64",), torch_fn=lambda x, g, b: F.batch_norm(x, None, None, g, b, True, 0.1, 1e-5))


# ----------------------------------------------------------------------------- losses
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_cross_entropy_sparse(reduction, weighted):
    labels = RNG.integers(0, 5, size=(3, 4))
    w = u(5, low=0.2, high=2.0) if weighted else None
    wt = lm.tensor(w) if weighted else None
    check_op("softmax_cross_entropy", lambda x: lm.softmax_cross_entropy(x, labels, wt, reduction),
             lambda x: np_sce(x, labels, w, reduction), [u(3, 4, 5)], kind="reduction",
             torch_fn=lambda x: F.cross_entropy(x.permute(0, 2, 1), torch.tensor(labels),
                                                weight=torch.tensor(w) if weighted else None, reduction=reduction))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_softmax_cross_entropy_dense(reduction):
    t = u(6, 7, low=0.0, high=1.0)
    t /= t.sum(-1, keepdims=True)
    check_op("softmax_cross_entropy", lambda x, t: lm.softmax_cross_entropy(x, t, reduction=reduction),
             lambda x, t: np_sce(x, t, None, reduction), [u(6, 7), t], kind="reduction",
             torch_fn=lambda x, t: F.cross_entropy(x, t, reduction=reduction))


def test_softmax_cross_entropy_is_stable_for_large_logits():
    x = np.array([[1000.0, 0.0, -1000.0], [-5e4, 5e4, 0.0]], np.float32)
    got = lm.softmax_cross_entropy(lm.tensor(x), np.array([0, 0]), reduction="none").numpy()
    np.testing.assert_allclose(got, [0.0, 1e5], rtol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_with_logits(reduction):
    check_op("binary_cross_entropy_with_logits",
             lambda x, t: lm.binary_cross_entropy_with_logits(x, t, reduction),
             lambda x, t: np_bce(x, t, reduction), [u(4, 5, low=-30, high=30), u(4, 5, low=0, high=1)],
             kind="reduction",
             torch_fn=lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction))


# ----------------------------------------------------------------------------- fused vs composite
FUSED_VS_REFERENCE = [
    ("layer_norm", lambda x, g, b: lm.layer_norm(x, g, b), lambda x, g, b: lm.layer_norm_reference(x, g, b),
     [u(4, 6), u(6), u(6)]),
    ("batch_norm", lambda x, g, b: lm.batch_norm(x, g, b), lambda x, g, b: lm.batch_norm_reference(x, g, b),
     [u(4, 3, 2), u(3), u(3)]),
    ("sce_sparse", lambda x: lm.softmax_cross_entropy(x, np.array([1, 0, 3])),
     lambda x: lm.softmax_cross_entropy_reference(x, np.array([1, 0, 3])), [u(3, 4)]),
    ("sce_dense", lambda x, t: lm.softmax_cross_entropy(x, t, reduction="none"),
     lambda x, t: lm.softmax_cross_entropy_reference(x, t, reduction="none"), [u(3, 4), u(3, 4, low=0, high=1)]),
    ("bce", lambda x, t: lm.binary_cross_entropy_with_logits(x, t, "none"),
     lambda x, t: lm.binary_cross_entropy_with_logits_reference(x, t, "none"), [u(3, 4), u(3, 4, low=0, high=1)]),
]


@pytest.mark.parametrize("name,fused,ref,inputs", FUSED_VS_REFERENCE, ids=[c[0] for c in FUSED_VS_REFERENCE])
def test_fused_matches_reference_to_second_order(name, fused, ref, inputs):
    results = []
    for fn in (fused, ref):
        xs = [lm.tensor(x, requires_grad=True) for x in inputs]
        out = fn(*xs)
        w = lm.tensor(np.random.default_rng(1).standard_normal(tuple(out.shape)))
        grads = lm.grad(lm.sum(out * w), xs, create_graph=True)
        # A second derivative: d/dxs of sum(grad_0 * w2).
        w2 = lm.tensor(np.random.default_rng(2).standard_normal(tuple(grads[0].shape)))
        second = lm.grad(lm.sum(grads[0] * w2), xs, allow_unused=True)
        results.append([out] + list(grads) + list(second))
    for a, b in zip(*results):
        if a is None or b is None:
            assert a is None or not np.any(a.numpy()), name
            continue
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


def test_float32_fused_close_to_reference():
    x = RNG.standard_normal((64, 300)).astype(np.float32) * 3 + 1
    np.testing.assert_allclose(lm.layer_norm(x).numpy(), lm.layer_norm_reference(x).numpy(), atol=2e-5)
    labels = RNG.integers(0, 300, size=64)
    np.testing.assert_allclose(lm.softmax_cross_entropy(x, labels).item(),
                               lm.softmax_cross_entropy_reference(x, labels).item(), rtol=1e-5)


def _close_to_float64(name, got, want, rtol=1e-4):
    """float32 result within rtol of the largest reference magnitude (the suite's float32
    tolerance for reductions)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)
    assert err < rtol, f"{name}: error {err:.3g} relative to the largest value"


def _np_layer_norm_grads(x, g, dy, eps):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    rs = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * rs
    gy = dy * g
    dx = rs * (gy - gy.mean(-1, keepdims=True) - xhat * (gy * xhat).mean(-1, keepdims=True))
    return xhat, dx, (dy * xhat).sum(0), dy.sum(0)


@pytest.mark.parametrize("rows,cols,offset", [(4, 20000, 1000.0), (3000, 64, -50.0), (7, 129, 0.0)])
def test_float32_layer_norm_long_rows_far_from_zero(rows, cols, offset):
    """Rows far from zero and long: the float32 kernel's sums (blocked lanes, two-pass
    variance) must stay within float32 accuracy of float64 on the same inputs; a single
    float32 accumulator or E[x^2] - E[x]^2 in float32 would not."""
    rng = np.random.default_rng(11)
    x = (offset + rng.standard_normal((rows, cols))).astype(np.float32)
    g, b = rng.standard_normal(cols).astype(np.float32), rng.standard_normal(cols).astype(np.float32)
    dy = rng.standard_normal((rows, cols)).astype(np.float32)
    xt, gt, bt = (lm.tensor(v, requires_grad=True) for v in (x, g, b))
    y = lm.layer_norm(xt, gt, bt)
    lm.sum(y * lm.tensor(dy)).backward()
    x64, g64, b64, dy64 = (v.astype(np.float64) for v in (x, g, b, dy))
    xhat, dx, dg, db = _np_layer_norm_grads(x64, g64, dy64, 1e-5)
    _close_to_float64("y", y.numpy(), xhat * g64 + b64)
    _close_to_float64("dx", xt.grad.numpy(), dx)
    _close_to_float64("dgamma", gt.grad.numpy(), dg)
    _close_to_float64("dbeta", bt.grad.numpy(), db)


@pytest.mark.parametrize("shape,offset", [((50, 3, 40, 40), 100.0), ((2000, 5), -20.0), ((4, 2, 3000), 7.0)])
def test_float32_batch_norm_large_planes_far_from_zero(shape, offset):
    rng = np.random.default_rng(12)
    c = shape[1]
    x = (offset + rng.standard_normal(shape) * 2).astype(np.float32)
    g, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    xt, gt, bt = (lm.tensor(v, requires_grad=True) for v in (x, g, b))
    y = lm.batch_norm(xt, gt, bt, eps=1e-5)
    lm.sum(y * lm.tensor(dy)).backward()
    # Channels last, flattened: batch norm is then layer norm's column-wise twin.
    perm = (0,) + tuple(range(2, len(shape))) + (1,)
    flat = lambda v: v.astype(np.float64).transpose(perm).reshape(-1, c).T
    xhat, dx, dg, db = _np_layer_norm_grads(flat(x), 1.0, flat(dy), 1e-5)
    g64, b64 = g.astype(np.float64)[:, None], b.astype(np.float64)[:, None]
    _close_to_float64("y", flat(y.numpy()), xhat * g64 + b64)
    _close_to_float64("dx", flat(xt.grad.numpy()), dx * g64)
    _close_to_float64("dgamma", gt.grad.numpy(), (flat(dy) * xhat).sum(1))
    _close_to_float64("dbeta", bt.grad.numpy(), flat(dy).sum(1))


def test_float32_losses_on_wide_rows():
    rng = np.random.default_rng(13)
    x = (rng.standard_normal((64, 5000)) * 4).astype(np.float32)
    labels = rng.integers(0, 5000, size=64)
    t = rng.random((64, 5000)).astype(np.float32)
    x64, t64 = x.astype(np.float64), t.astype(np.float64)
    lsm = np_log_softmax(x64)
    for dense in (False, True):
        xt = lm.tensor(x, requires_grad=True)
        loss = lm.softmax_cross_entropy(xt, lm.tensor(t) if dense else labels, reduction="none")
        lm.sum(loss).backward()
        onehot = t64 if dense else np.eye(5000)[labels]
        _close_to_float64(f"sce loss dense={dense}", loss.numpy(), -(onehot * lsm).sum(-1))
        _close_to_float64(f"sce grad dense={dense}", xt.grad.numpy(),
                          np.exp(lsm) * onehot.sum(-1, keepdims=True) - onehot)
    xb = (rng.standard_normal((1000, 100)) * 10).astype(np.float32)
    xt = lm.tensor(xb, requires_grad=True)
    tb = rng.random((1000, 100)).astype(np.float32)
    loss = lm.binary_cross_entropy_with_logits(xt, lm.tensor(tb), "none")
    lm.sum(loss).backward()
    xb64, tb64 = xb.astype(np.float64), tb.astype(np.float64)
    _close_to_float64("bce loss", loss.numpy(), np_bce(xb64, tb64, "none"))
    _close_to_float64("bce grad", xt.grad.numpy(), 1.0 / (1.0 + np.exp(-xb64)) - tb64)


def test_bad_inputs():
    x = lm.tensor(u(3, 4))
    check_errors(lm.softmax_cross_entropy, [
        ((x, np.array([0, 4, 1])), IndexError, "softmax_cross_entropy: label 4 is out of range"),
        ((x, np.array([0, -1, 1])), IndexError, "softmax_cross_entropy"),
        ((x, np.array([0, 1])), ValueError, "do not match"),
        ((x, lm.tensor(u(3, 5))), ValueError, "do not match"),
        ((x, np.array([0, 1, 2]), lm.tensor(u(3))), ValueError, "weight"),
        ((x, np.array([0, 1, 2]), None, "avg"), ValueError, "reduction"),
    ])
    check_errors(lm.binary_cross_entropy_with_logits, [((x, lm.tensor(u(4, 3))), ValueError, "do not match")])
    check_errors(lm.layer_norm, [((x, lm.tensor(u(3))), ValueError, "gamma"),
                                 ((lm.tensor([1, 2]),), TypeError, "floating")])
    check_errors(lm.batch_norm, [((x, lm.tensor(u(3))), ValueError, "gamma"),
                                 ((x, None, None, None, None, False), ValueError, "running_mean")])


# ----------------------------------------------------------------------------- optimizers
def _run_steps(kind, reference, dtype, steps=3):
    rng = np.random.default_rng(3)
    shapes = [(7, 5), (130, 129), (3,)]
    params = [lm.tensor(rng.standard_normal(s).astype(dtype)) for s in shapes]
    states = [[lm.tensor(np.full(s, 0.1 if kind == "adagrad" else 0.0, dtype)) for s in shapes] for _ in range(3)]
    sfx = "_reference" if reference else ""
    for t in range(1, steps + 1):
        grads = [lm.tensor(rng.standard_normal(s).astype(dtype)) for s in shapes]
        s0, s1, s2 = states
        if kind == "sgd":
            lm.__dict__["sgd_step" + sfx](params, grads, None, lr=0.1, weight_decay=0.01)
        elif kind == "sgd_nesterov":
            lm.__dict__["sgd_step" + sfx](params, grads, s0, lr=0.1, momentum=0.9, nesterov=True)
        elif kind == "sgd_l2":
            lm.__dict__["sgd_step" + sfx](params, grads, s0, lr=0.1, momentum=0.5, weight_decay=0.1, decoupled=False)
        elif kind == "adamw":
            lm.__dict__["adam_step" + sfx](params, grads, s0, s1, t, lr=0.01, weight_decay=0.004)
        elif kind == "amsgrad":
            lm.__dict__["adam_step" + sfx](params, grads, s0, s1, t, lr=0.01, v_max=s2)
        elif kind == "adam_l2":
            lm.__dict__["adam_step" + sfx](params, grads, s0, s1, t, weight_decay=0.1, decoupled=False)
        elif kind == "rmsprop_centered":
            lm.__dict__["rmsprop_step" + sfx](params, grads, s0, s1, s2, lr=0.01, momentum=0.9)
        elif kind == "rmsprop":
            lm.__dict__["rmsprop_step" + sfx](params, grads, s0, lr=0.01)
        elif kind == "adagrad":
            lm.__dict__["adagrad_step" + sfx](params, grads, s0, lr=0.1)
    return [p.numpy().copy() for p in params] + [s.numpy().copy() for group in states for s in group]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["sgd", "sgd_nesterov", "sgd_l2", "adamw", "amsgrad", "adam_l2", "rmsprop",
                                  "rmsprop_centered", "adagrad"])
def test_fused_optimizer_step_is_bit_exact(kind, dtype):
    for a, b in zip(_run_steps(kind, False, dtype), _run_steps(kind, True, dtype)):
        assert np.array_equal(a, b), f"{kind}/{dtype}: fused update differs from the composite"


def test_fused_step_bumps_versions_and_checks_lists():
    p, g, m, v = (lm.tensor(u(4).astype(np.float32)) for _ in range(4))
    w = lm.tensor(u(4).astype(np.float32), requires_grad=True)
    y = w * p  # saves p for backward
    lm.adam_step([p], [g], [m], [v], 1)
    with pytest.raises(RuntimeError, match="modified"):
        lm.sum(y).backward()
    check_errors(lm.adam_step, [(([p], [g, g], [m], [v], 1), ValueError, "gradients"),
                                (([p], [lm.tensor(u(3))], [m], [v], 1), ValueError, "does not match")])
    check_errors(lm.sgd_step, [(([p], [g], None, 0.1, 0.9), ValueError, "momentum buffers")])


class _CompositeAdam(lm.optimizers.Adam):
    """The unfused update written with lamina ops: the override point, and the oracle."""

    def update_step(self, grad, var, lr):
        import math
        m, v = self.add_slot(var, "m"), self.add_slot(var, "v")
        t = self.iterations
        m *= self.beta_1
        m += (1.0 - self.beta_1) * grad
        v *= self.beta_2
        v += (1.0 - self.beta_2) * (grad * grad)
        step = lr * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)
        var -= step * m / (lm.sqrt(v) + self.epsilon)


class _CompositeSGD(lm.optimizers.SGD):
    def update_step(self, grad, var, lr):
        velocity = self.add_slot(var, "momentum")
        velocity *= self.momentum
        velocity -= lr * grad
        var += self.momentum * velocity - lr * grad


@pytest.mark.parametrize("fused,composite,kwargs", [
    (lm.optimizers.Adam, _CompositeAdam, dict(learning_rate=0.01)),
    (lm.optimizers.AdamW, _CompositeAdam, dict(learning_rate=0.01, weight_decay=0.01)),
    (lm.optimizers.SGD, _CompositeSGD, dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
])
def test_optimizer_classes_use_fused_path_bit_exactly(fused, composite, kwargs):
    rng = np.random.default_rng(5)
    init = [rng.standard_normal(s).astype(np.float32) for s in [(6, 4), (4,)]]
    grads = [[rng.standard_normal(x.shape).astype(np.float32) for x in init] for _ in range(4)]
    finals = []
    for cls in (fused, composite):
        params = [lm.tensor(x.copy(), requires_grad=True) for x in init]
        opt = cls(params, **kwargs)
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad = lm.tensor(g)
            opt.step()
        finals.append([p.numpy().copy() for p in params])
    assert fused()._uses_fused_update() and not composite()._uses_fused_update()
    for a, b in zip(*finals):
        assert np.array_equal(a, b)
