"""Autograd engine: accumulation, broadcasting, graph lifetime, higher order, grad modes,
functional API, custom Functions, gradcheck, deep graphs and in-place safety."""

import math

import numpy as np
import pytest

import lamina as lm
from helpers import check_errors, check_grad, check_op, make_input


def f64(values, requires_grad=True):
    return lm.tensor(values, dtype="float64", requires_grad=requires_grad)


def test_accumulates_into_leaf_grad():
    x = f64([1.0, 2.0, 3.0])
    lm.sum(x * x).backward()
    assert x.grad.tolist() == [2.0, 4.0, 6.0] and x.grad.dtype == "float64"
    lm.sum(x * 3.0).backward()  # accumulates
    assert x.grad.tolist() == [5.0, 7.0, 9.0]
    x.grad = None
    lm.sum(x).backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]
    y = x * 2  # a non-leaf keeps no .grad unless asked
    y.retain_grad()
    lm.sum(y * y).backward()
    assert y.grad.tolist() == [4.0, 8.0, 12.0] and x.grad.tolist() == [9.0, 17.0, 25.0]
    x.grad = None
    lm.sum(x).backward()
    held = x.grad  # a gradient someone holds is not summed into in place
    lm.sum(x).backward()
    assert held.tolist() == [1.0, 1.0, 1.0] and x.grad.tolist() == [2.0, 2.0, 2.0]
    del held
    lm.sum(x).backward()  # the leaf alone holds it now: summed in place
    assert x.grad.tolist() == [3.0, 3.0, 3.0]


def test_used_twice_in_graph_sums_both_paths():
    x = f64([3.0])
    (x * x + x).backward(lm.tensor([1.0], dtype="float64"))
    assert x.grad.tolist() == [7.0]


def test_grads_summed_over_broadcast_axes():
    x = f64(np.ones((3, 1)))
    b = f64(np.arange(4.0))
    s = f64(2.0)
    lm.sum((x + b) * s).backward()
    assert x.grad.shape == (3, 1) and x.grad.tolist() == [[8.0]] * 3
    assert b.grad.shape == (4,) and b.grad.tolist() == [6.0] * 4
    assert s.shape == () and s.grad.item() == 3 * 4 + 3 * sum(range(4))


def view_sum_loss(x):
    """Selections and slices of one non-leaf tensor, overlapping and repeated, plus a direct
    use of it: the engine adds each view's gradient into its region of y's gradient."""
    y = x * 2.0
    if y.requires_grad:
        y.retain_grad()
    loss = lm.sum(y[0] * 3.0) + lm.sum(y[1:3] * y[1:3]) + lm.sum(y[:, 1]) + lm.sum(y[0:2, ::2] * 5.0) + lm.sum(y[:])
    return y, loss


def view_sum_reference(x):
    y = 2.0 * x
    dy = np.ones_like(y)  # y[:]
    dy[0] += 3.0
    dy[1:3] += 2.0 * y[1:3]
    dy[:, 1] += 1.0
    dy[0:2, ::2] += 5.0
    return dy


def test_gradients_of_views_of_one_tensor_sum_into_its_regions():
    values = np.random.default_rng(0).standard_normal((4, 5))
    x = f64(values)
    y, loss = view_sum_loss(x)
    loss.backward()
    dy = view_sum_reference(values)
    np.testing.assert_allclose(y.grad.numpy(), dy, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), 2.0 * dy, rtol=1e-12)
    # The same sums with the views' gradients kept differentiable (the embedding path).
    x2 = f64(values)
    _, loss2 = view_sum_loss(x2)
    (gx,) = lm.grad(loss2, [x2], create_graph=True)
    np.testing.assert_allclose(gx.numpy(), 2.0 * dy, rtol=1e-12)
    lm.sum(gx).backward()  # d/dx of sum(2 dy): only the y[1:3]**2 term has curvature
    expected = np.zeros_like(values)
    expected[1:3] = 2.0 * 2.0 * 2.0
    np.testing.assert_allclose(x2.grad.numpy(), expected, rtol=1e-12)
    check_grad("views of one tensor", lambda t: view_sum_loss(t)[1], [values])


def test_view_gradient_does_not_write_into_a_gradient_held_elsewhere():
    x = f64([[1.0, 2.0], [3.0, 4.0]])
    y = x * 1.0
    y.retain_grad()
    z = y * 1.0
    z.retain_grad()
    # z's gradient (ones, then a view's share) is both z.grad and the start of y's sum.
    lm.sum(lm.sum(z) + lm.sum(z[0] * 10.0)).backward()
    np.testing.assert_array_equal(z.grad.numpy(), [[11.0, 11.0], [1.0, 1.0]])
    np.testing.assert_array_equal(y.grad.numpy(), [[11.0, 11.0], [1.0, 1.0]])
    np.testing.assert_array_equal(x.grad.numpy(), [[11.0, 11.0], [1.0, 1.0]])


PICKS = {  # parts of the (3, B, H, S, D) view picked by each case, as index expressions
    "q, k and v": [0, 1, 2],
    "two of three (the rest stays zero)": [2, 0],
    "overlapping slices": [slice(0, 2), slice(1, 3)],
    "one part twice": [1, 1],
    "a strided slice and a select": [slice(None, None, 2), 1],
    "a select and the whole view": [0, slice(None)],
    # Unweighted sums of the whole tensor hand the buffer an expanded (stride 0) gradient,
    # which must be copied before a view's gradient is added into it, or added after a settle.
    "the whole tensor's sum, then a select": [Ellipsis, 1],
    "a select, then the whole tensor's sum": [1, Ellipsis],
}


@pytest.mark.parametrize("case", PICKS)
def test_gradients_of_parts_picked_from_a_permuted_projection(case):
    # The attention pattern: one projection reshaped to (B, S, 3, H, D), permuted to
    # (3, B, H, S, D) and split. The engine writes each part's gradient into a buffer laid
    # out like the projection, zeros only what no part covers, and adds where parts overlap.
    rng = np.random.default_rng(1)
    b, s, h, d = 2, 5, 2, 3
    values = rng.standard_normal((b, s, 3 * h * d))
    weights = [None if pick is Ellipsis else rng.standard_normal(np.empty((3, b, h, s, d))[pick].shape)
               for pick in PICKS[case]]

    def term(part, w):
        return lm.sum(part) if w is None else lm.sum(part * lm.tensor(w, dtype="float64"))

    def loss_of(x):
        t = lm.permute(lm.reshape(x * 1.0, (b, s, 3, h, d)), (2, 0, 3, 1, 4))
        return sum(term(t[pick], w) for pick, w in zip(PICKS[case], weights))

    x = f64(values)
    loss = loss_of(x)
    for _ in range(4):  # freed memory full of NaN: a buffer's unset values would show
        lm.full(values.shape, float("nan"), dtype="float64")
    loss.backward()
    dt = np.zeros((3, b, h, s, d))
    for pick, w in zip(PICKS[case], weights):
        dt[pick] += 1.0 if w is None else w
    np.testing.assert_allclose(x.grad.numpy(), dt.transpose(1, 3, 0, 2, 4).reshape(values.shape), rtol=1e-12)
    check_grad(case, loss_of, [values])


def test_backward_needs_gradient_for_non_scalars():
    x = f64([1.0, 2.0])
    check_errors(lambda: (x * 2).backward(), [((), RuntimeError, "only for scalar outputs, got shape (2,)")])
    (x * 2).backward(lm.tensor([1.0, 10.0], dtype="float64"))
    assert x.grad.tolist() == [2.0, 20.0]


def test_retain_graph():
    x = f64([2.0])
    y = x * x * x
    y.backward(retain_graph=True)
    y.backward()  # allowed once more because the graph was retained
    assert x.grad.tolist() == [24.0]
    z = x * x
    z.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        z.backward()


def test_grad_does_not_touch_dot_grad():
    x = f64([1.0, 2.0])
    (g,) = lm.grad(lm.sum(x * x), [x])
    assert g.tolist() == [2.0, 4.0] and x.grad is None
    y = f64([1.0])
    check_errors(lambda: lm.grad(lm.sum(x * 2), [x, y]), [((), RuntimeError, "")])
    assert lm.grad(lm.sum(x * 2), [x, y], allow_unused=True)[1] is None


def _normal_cdf(x):
    return 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _normal_pdf(x):
    return np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


@pytest.mark.parametrize("name,fn,d1,d2", [
    ("cube", lambda x: x**3, lambda x: 3 * x**2, lambda x: 6 * x),
    ("tanh", lm.tanh, lambda x: 1 - np.tanh(x) ** 2, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    ("sigmoid", lm.sigmoid, lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s),
     lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s) * (1 - 2 * s)),
    ("exp", lm.exp, np.exp, np.exp),
    ("sin", lm.sin, np.cos, lambda x: -np.sin(x)),
    ("log", lm.log, lambda x: 1 / x, lambda x: -1 / x**2),
])
def test_second_derivatives(name, fn, d1, d2):
    v = np.array([0.3, 1.2, 2.0])
    x = f64(v)
    (g1,) = lm.grad(lm.sum(fn(x)), [x], create_graph=True)
    np.testing.assert_allclose(g1.numpy(), d1(v), rtol=1e-12)
    assert g1.requires_grad, f"{name}: create_graph must make the gradient differentiable"
    (g2,) = lm.grad(lm.sum(g1), [x])
    np.testing.assert_allclose(g2.numpy(), d2(v), rtol=1e-10)
    # third order through the same machinery, compared with finite differences of d2
    (g1,) = lm.grad(lm.sum(fn(x)), [x], create_graph=True)
    (g2,) = lm.grad(lm.sum(g1), [x], create_graph=True)
    (g3,) = lm.grad(lm.sum(g2), [x])
    np.testing.assert_allclose(g3.numpy(), (d2(v + 1e-6) - d2(v - 1e-6)) / 2e-6, rtol=1e-5)


def test_gelu_second_derivative():
    # gelu's backward is one fused pass; differentiated again it rebuilds the composite. (Not
    # in the table above: gelu's third derivative is exactly 0 at its x = 2.)
    v = np.array([0.3, 1.2, -1.7])
    x = f64(v)
    (g1,) = lm.grad(lm.sum(lm.gelu(x)), [x], create_graph=True)
    np.testing.assert_allclose(g1.numpy(), _normal_cdf(v) + v * _normal_pdf(v), rtol=1e-12)
    (g2,) = lm.grad(lm.sum(g1), [x])
    np.testing.assert_allclose(g2.numpy(), _normal_pdf(v) * (2 - v**2), rtol=1e-10)


def test_create_graph_via_backward():
    x = f64([1.5])
    y = x**3
    y.backward(create_graph=True)
    g = x.grad
    x.grad = None
    g.backward()
    assert x.grad.tolist() == pytest.approx([9.0])


def test_no_grad_and_enable_grad():
    x = f64([1.0])
    with lm.no_grad():
        y = x * 2
        assert not lm.is_grad_enabled()
        with lm.enable_grad():
            z = x * 2
            assert lm.is_grad_enabled()
    assert lm.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn == "mul"

    @lm.no_grad()
    def frozen(t):
        return t * 3

    @lm.enable_grad()
    def thawed(t):
        return t * 3

    assert not frozen(x).requires_grad
    with lm.no_grad():
        assert thawed(x).requires_grad
    with pytest.raises(KeyError):
        with lm.no_grad():
            raise KeyError("restores the mode on errors")
    assert lm.is_grad_enabled()


def test_detach_and_requires_grad_flags():
    x = f64([1.0, 2.0])
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and np.shares_memory(d.numpy(), x.numpy())
    y = x * d
    lm.sum(y).backward()
    assert x.grad.tolist() == [1.0, 2.0]
    w = lm.ones(2).requires_grad_()
    assert w.requires_grad
    assert not (lm.ones(2) * 2).requires_grad


def test_grad_and_value_and_grad():
    def loss(w, x):
        return lm.sum((w * x - 1.0) ** 2)

    w, x = lm.tensor([1.0, 2.0], dtype="float64"), lm.tensor([3.0, -1.0], dtype="float64")
    g = lm.grad(loss)(w, x)
    np.testing.assert_allclose(g.numpy(), 2 * (w.numpy() * x.numpy() - 1) * x.numpy())
    value, gw = lm.value_and_grad(loss)(w, x)
    assert value.item() == pytest.approx(4.0 + 9.0) and not value.requires_grad
    np.testing.assert_allclose(gw.numpy(), g.numpy())
    gw2, gx = lm.grad(loss, argnums=(0, 1))(w, x)
    np.testing.assert_allclose(gx.numpy(), 2 * (w.numpy() * x.numpy() - 1) * w.numpy())
    assert w.grad is None and not w.requires_grad, "the functional API must not touch its inputs"
    assert lm.grad(lambda a, b: lm.sum(b * 2.0), argnums=0)(w, x).tolist() == [0.0, 0.0]  # unused input
    check_errors(lm.grad(loss), [(([1.0], x), TypeError, "argument 0 must be a Tensor")])
    check_errors(lm.value_and_grad(lambda a: a * 2), [(w, ValueError, "one-element tensor")])


class Cube(lm.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3.0 * x * x


class WrongCube(Cube):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2.0 * x * x  # deliberately wrong


class ScaleBy(lm.Function):  # a non-tensor argument gets None
    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x * k

    @staticmethod
    def backward(ctx, g):
        return g * ctx.k, None


def test_custom_function():
    x = f64([1.0, -2.0])
    y = Cube.apply(x)
    assert y.grad_fn == "Cube" and y.tolist() == [1.0, -8.0]
    lm.sum(y).backward()
    assert x.grad.tolist() == [3.0, 12.0]
    check_grad("Cube", Cube.apply, [make_input((2, 3))])
    check_grad("ScaleBy", lambda t: ScaleBy.apply(t, 2.5), [make_input((4,))])
    with lm.no_grad():
        assert not Cube.apply(x).requires_grad
    assert not Cube.apply(lm.ones(2)).requires_grad  # nothing to differentiate: no node


def test_grad_runs_only_the_part_of_the_graph_that_reaches_its_inputs():
    calls = []

    class Counted(Cube):
        @staticmethod
        def backward(ctx, g):
            calls.append(1)
            return Cube.backward(ctx, g)

    x = f64([1.0, -2.0])
    mid = Counted.apply(x) * 2.0  # Counted lies behind mid: grad w.r.t. mid never needs it
    out = lm.sum(mid * mid) + lm.sum(Counted.apply(mid))
    (g,) = lm.grad(out, [mid], retain_graph=True)
    m = mid.numpy()
    np.testing.assert_allclose(g.numpy(), 2.0 * m + 3.0 * m * m)
    assert len(calls) == 1  # only the Counted node between out and mid
    lm.sum(out).backward()  # and a full backward afterwards runs through every node
    np.testing.assert_allclose(x.grad.numpy(), (2.0 * m + 3.0 * m * m) * 2.0 * 3.0 * x.numpy() ** 2)


def test_custom_function_errors():
    class Bad(lm.Function):
        @staticmethod
        def forward(ctx, x):
            return x.numpy()

    class TooMany(Cube):
        @staticmethod
        def backward(ctx, g):
            return g, g

    check_errors(Bad.apply, [(lm.ones(1), TypeError, "Bad.forward must return a Tensor")])
    y = TooMany.apply(f64([1.0]))
    check_errors(y.backward, [((), RuntimeError, "TooMany.backward returned 2 gradients for 1 inputs")])


def test_gradcheck_public_api():
    x = make_input((3,))
    assert lm.gradcheck(Cube.apply, [lm.tensor(x, requires_grad=True)])
    assert lm.gradcheck(lambda a, b: lm.tanh(a) * b, [lm.tensor(x, requires_grad=True), lm.tensor(x + 1.0)])
    assert lm.gradcheck(WrongCube.apply, [lm.tensor(x, requires_grad=True)], raise_exception=False) is False
    with pytest.raises(AssertionError, match="differs from finite differences"):
        lm.gradcheck(WrongCube.apply, [lm.tensor(x, requires_grad=True)])


def test_helpers_catch_wrong_values_and_gradients():
    """The shared checker must be able to fail (otherwise every op test is vacuous)."""
    x = make_input((2, 3))
    with pytest.raises(AssertionError, match="values differ"):
        check_op("exp_vs_sin", lm.exp, np.sin, [x], grad=False)
    with pytest.raises(AssertionError, match="gradient of input 0 differs"):
        check_grad("WrongCube", WrongCube.apply, [x])
    with pytest.raises(AssertionError, match="result dtype"):
        check_op("dtype", lambda t: t.astype("float64"), lambda a: a, [x], grad=False, dtypes=("float32",))
    with pytest.raises(AssertionError, match="values differ"):  # 1 ulp-level tolerance really is tight
        check_op("almost", lambda t: t * 1.001, lambda a: a, [x], grad=False)


def test_deep_chain_does_not_overflow_the_stack():
    x = f64([1.0])
    y = x
    for _ in range(100_000):
        y = y * 1.00001 + 0.0
    lm.sum(y).backward()
    assert x.grad.item() == pytest.approx(1.00001**100_000, rel=1e-9)
    del y  # freeing a 200,000-node graph must not recurse either


def test_deep_chain_freed_without_backward():
    y = f64([1.0])
    for _ in range(100_000):
        y = lm.sin(y)
    del y


def test_inplace_on_saved_tensor_raises_at_backward():
    x = f64([1.0, 2.0])
    y = x * 2.0
    z = lm.exp(y)  # exp saves its output z
    w = z * 1.0
    z += 1.0
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        lm.sum(w).backward()
    a = x * 1.0
    b = a * a  # mul saves a
    a[0] = 5.0
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        lm.sum(b).backward()


def test_inplace_on_unsaved_tensor_is_fine_and_differentiable():
    x = f64([1.0, 2.0])
    y = x * 3.0  # saves only the constant
    y += x  # y = 4x, recorded
    y *= 2.0  # y = 8x
    lm.sum(y * y).backward()
    assert x.grad.tolist() == [128.0, 256.0]


def test_leaf_requiring_grad_modified_in_place_raises():
    x = f64([1.0, 2.0])
    for op in (lambda t: t.__iadd__(1.0), lambda t: t.__setitem__(0, 3.0), lambda t: t.fill_(0.0),
               lambda t: t.zero_(), lambda t: t.copy_(lm.ones(2))):
        with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
            op(x)
    assert x.tolist() == [1.0, 2.0]
    with lm.no_grad():  # the optimizer's way
        x -= 0.5
    assert x.tolist() == [0.5, 1.5] and x.requires_grad and x.is_leaf


def test_view_of_leaf_modified_in_place_raises():
    x = f64([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError):
        x[1:] += 1.0
    assert x.tolist() == [1.0, 2.0, 3.0]


def test_grad_assignment_checks_shape():
    x = f64([1.0, 2.0])
    check_errors(lambda g: setattr(x, "grad", g), [(lm.ones(3), ValueError, "(3,)")])


def test_view_of_leaf_through_a_chain_of_views_raises():
    x = f64(np.arange(6.0).reshape(2, 3))
    with pytest.raises(RuntimeError, match="view of a leaf tensor"):
        x.T[1:][0] *= 2.0
    assert x.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_inplace_on_view_of_graph_tensor_updates_base_gradient():
    x = f64([1.0, 1.0, 1.0])
    y = x * 2.0
    v = y[1:]
    v *= 3.0  # y is now [2x0, 6x1, 6x2]
    lm.sum(y).backward()
    assert x.grad.tolist() == [2.0, 6.0, 6.0]


def _inplace_through_views(x):
    """y = x * x, then writes through a column of a transposed view, a view of a view and a
    reshape (ops that save nothing they later see modified); the result depends on x
    inside and outside the written regions."""
    y = x * x
    col = y.T[1]  # column 1 of y
    col += lm.exp(x[:, 0])
    inner = y[1:][:, ::2]
    inner *= 2.0
    flat = y.reshape((-1,))
    flat[:2] = flat[:2] + x[0, 1:]
    return lm.sum(lm.sin(y))


def test_inplace_writes_through_views_match_finite_differences():
    check_grad("inplace_through_views", _inplace_through_views, [np.random.default_rng(3).standard_normal((3, 3))])


def test_constant_write_cuts_the_written_part_of_the_history():
    x = f64([1.0, 2.0])
    y = x * 2.0
    y.copy_(lm.ones(2))  # y no longer depends on x
    assert not y.requires_grad
    y = x * 2.0
    y.T.fill_(0.0)  # through a view: the root's history now has zeros there
    lm.sum(y * x).backward()
    assert x.grad.tolist() == [0.0, 0.0]
    z = lm.zeros((2, 3))
    c = z[:, 1]
    c += x  # a view of a tensor that did not require grad
    x.grad = None
    lm.sum(z * z).backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_double_backward_through_an_inplace_view_write_raises():
    x = f64([1.0, 2.0])
    y = x * x
    v = y[:1]
    v *= 3.0
    with pytest.raises(RuntimeError, match="double backward through an in-place write into a view"):
        lm.grad(lm.sum(y), [x], create_graph=True)
