"""Fused lstm / gru against a composite reference made of plain ops (values and gradients in
float64), central finite differences on tiny shapes, masking, float32, torch.nn.LSTM/GRU,
and the documented errors."""

import numpy as np
import pytest

import lamina as lm
from helpers import check_grad

RNG = np.random.default_rng(0)


def t64(a, grad=False):
    return lm.tensor(np.asarray(a, dtype=np.float64), dtype="float64", requires_grad=grad)


def lstm_params(batch, steps, inp, hidden, rng=RNG):
    return [rng.standard_normal(s) * 0.5 for s in
            [(batch, steps, inp), (batch, hidden), (batch, hidden), (4 * hidden, inp), (4 * hidden, hidden),
             (4 * hidden,)]]


def gru_params(batch, steps, inp, hidden, rng=RNG):
    return [rng.standard_normal(s) * 0.5 for s in
            [(batch, steps, inp), (batch, hidden), (3 * hidden, inp), (3 * hidden, hidden), (3 * hidden,),
             (3 * hidden,)]]


def lstm_reference(x, h, c, w_ih, w_hh, b, mask=None):
    """The oracle: lstm_cell (matmul / sigmoid / tanh / slicing) stepped in Python."""
    outs = []
    for t in range(x.shape[1]):
        h2, c2 = lm.lstm_cell(x[:, t], h, c, w_ih, w_hh, b)
        if mask is not None:
            m = lm.tensor(mask[:, t:t + 1].astype(np.float64), dtype=x.dtype)
            h2, c2 = h2 * m + h * (1 - m), c2 * m + c * (1 - m)
            outs.append(h2 * m)
        else:
            outs.append(h2)
        h, c = h2, c2
    return [lm.stack(outs, 1), h, c]


def gru_reference(x, h, w_ih, w_hh, b_ih, b_hh, mask=None):
    outs = []
    for t in range(x.shape[1]):
        h2 = lm.gru_cell(x[:, t], h, w_ih, w_hh, b_ih, b_hh)
        if mask is not None:
            m = lm.tensor(mask[:, t:t + 1].astype(np.float64), dtype=x.dtype)
            h2 = h2 * m + h * (1 - m)
            outs.append(h2 * m)
        else:
            outs.append(h2)
        h = h2
    return [lm.stack(outs, 1), h]


def fused_lstm(*args, mask=None):
    return list(lm.lstm(*args, mask=mask))


def fused_gru(*args, mask=None):
    return list(lm.gru(*args, mask=mask))


def values_and_grads(fn, arrays, weights, mask, dtype="float64"):
    leaves = [lm.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    outs = fn(*leaves, mask=mask)
    loss = sum(lm.sum(o * lm.tensor(w, dtype=dtype)) for o, w in zip(outs, weights))
    loss.backward()
    return [o.numpy() for o in outs], [leaf.grad.numpy() for leaf in leaves]


def compare_to_reference(fused, reference, arrays, mask=None):
    with lm.no_grad():
        shapes = [o.shape for o in fused(*[t64(a) for a in arrays], mask=mask)]
    weights = [RNG.standard_normal(s) for s in shapes]
    got_v, got_g = values_and_grads(fused, arrays, weights, mask)
    want_v, want_g = values_and_grads(reference, arrays, weights, mask)
    for i, (g, w) in enumerate(zip(got_v, want_v)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=f"output {i}")
    for i, (g, w) in enumerate(zip(got_g, want_g)):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-11, err_msg=f"gradient of input {i}")


def random_mask(batch, steps):
    mask = RNG.random((batch, steps)) > 0.35
    mask[0, :] = True
    mask[-1, -1] = False  # a masked final step: h_T and c_T come from earlier steps
    return mask


SHAPES = [(2, 3, 4, 5), (3, 7, 2, 8), (1, 1, 3, 2)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masked", [False, True])
def test_lstm_matches_composite(shape, masked):
    mask = random_mask(shape[0], shape[1]) if masked else None
    compare_to_reference(fused_lstm, lstm_reference, lstm_params(*shape), mask)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masked", [False, True])
def test_gru_matches_composite(shape, masked):
    mask = random_mask(shape[0], shape[1]) if masked else None
    compare_to_reference(fused_gru, gru_reference, gru_params(*shape), mask)


# (batch, steps, inputs, hidden) with steps large enough (at least 64^3 multiply-adds) for
# the time loop to be split over a team of threads. Each member owns a slice of the hidden
# units cut at multiples of 8 (with 3 threads, 32, 32 and 36 of 100 units) and, in the
# LSTM's backward, a slice of the inputs: the second shape gives the members empty and
# non-empty input slices (0, 8 and 12 of 20) and the GRU one member. The LSTM's backward
# adds up its weight gradients over windows of ceil(256 / batch) steps: the third shape's
# 7 steps make windows of 1, 3 and 3.
TEAM_SHAPES = [(9, 4, 3, 100), (16, 3, 20, 56), (100, 7, 3, 40)]


@pytest.mark.parametrize("shape", TEAM_SHAPES)
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_time_loop_split_over_threads(kind, threads, shape):
    fused, reference, params = {"lstm": (fused_lstm, lstm_reference, lstm_params),
                                "gru": (fused_gru, gru_reference, gru_params)}[kind]
    arrays = [a * 0.3 for a in params(*shape)]
    mask = random_mask(*shape[:2])
    previous = lm.get_num_threads()
    lm.set_num_threads(threads)
    try:
        compare_to_reference(fused, reference, arrays, mask)
        with lm.no_grad():
            shapes = [o.shape for o in fused(*[t64(a) for a in arrays], mask=mask)]
        weights = [RNG.standard_normal(s) for s in shapes]
        want_v, want_g = values_and_grads(fused, arrays, weights, mask)
        got_v, got_g = values_and_grads(fused, arrays, weights, mask, dtype="float32")
    finally:
        lm.set_num_threads(previous)
    for i, (g, w) in enumerate(zip(got_v + got_g, want_v + want_g)):
        scale = np.max(np.abs(w))
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * scale, err_msg=f"float32 result {i}")


@pytest.mark.parametrize("forward_threads,backward_threads", [(3, 1), (1, 2), (2, 3)])
def test_lstm_backward_on_a_team_of_another_size(forward_threads, backward_threads):
    # The forward saves gates and cells cut into its members' unit slices; a backward run by
    # a different number of threads (here 100 units in slices of 32/32/36, 48/52 or one)
    # reads them across those cuts.
    arrays = [a * 0.3 for a in lstm_params(*TEAM_SHAPES[0])]
    mask = random_mask(*TEAM_SHAPES[0][:2])
    leaves = [lm.tensor(a, dtype="float64", requires_grad=True) for a in arrays]
    previous = lm.get_num_threads()
    try:
        lm.set_num_threads(forward_threads)
        outs = fused_lstm(*leaves, mask=mask)
        weights = [RNG.standard_normal(o.shape) for o in outs]
        loss = sum(lm.sum(o * lm.tensor(w, dtype="float64")) for o, w in zip(outs, weights))
        lm.set_num_threads(backward_threads)
        loss.backward()
    finally:
        lm.set_num_threads(previous)
    want_v, want_g = values_and_grads(lstm_reference, arrays, weights, mask)
    for i, (g, w) in enumerate(zip([o.numpy() for o in outs], want_v)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=f"output {i}")
    for i, (leaf, w) in enumerate(zip(leaves, want_g)):
        np.testing.assert_allclose(leaf.grad.numpy(), w, rtol=1e-9, atol=1e-11, err_msg=f"gradient of input {i}")


@pytest.mark.parametrize("fn,params", [(fused_lstm, lstm_params), (fused_gru, gru_params)])
def test_finite_differences(fn, params):
    mask = np.array([[True, False, True], [True, True, True]])
    check_grad(fn.__name__, lambda *xs: fn(*xs, mask=mask), params(2, 3, 2, 3))


def test_masked_steps_carry_state_and_output_zeros():
    arrays = lstm_params(2, 4, 3, 2)
    mask = np.array([[True, True, False, False], [True, True, True, True]])
    out, h, c = lm.lstm(*[t64(a) for a in arrays], mask=mask)
    out = out.numpy()
    assert np.all(out[0, 2:] == 0)
    np.testing.assert_array_equal(h.numpy()[0], out[0, 1])


def test_float32_and_optional_state():
    arrays = lstm_params(3, 5, 4, 6)
    arrays[1] = arrays[2] = None
    f32 = lm.lstm(*[None if a is None else lm.tensor(a, dtype="float32") for a in arrays])
    f64 = lm.lstm(*[None if a is None else t64(a) for a in arrays])
    assert f32[0].dtype == "float32"
    for a, b in zip(f32, f64):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_only_outputs_used_and_partial_requires_grad():
    arrays = gru_params(2, 3, 2, 4)
    leaves = [t64(a, grad=(i == 3)) for i, a in enumerate(arrays)]
    out, _ = lm.gru(*leaves)
    lm.sum(out).backward()
    assert leaves[3].grad is not None and leaves[0].grad is None




def _torch():
    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed")
    return torch


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_matches_torch(kind):
    torch = _torch()
    B, T, I, H = 3, 6, 5, 7
    g = 4 if kind == "lstm" else 3
    rng = np.random.default_rng(3)
    x, h0, c0 = rng.standard_normal((B, T, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    w_ih, w_hh = rng.standard_normal((g * H, I)) * 0.4, rng.standard_normal((g * H, H)) * 0.4
    b_ih, b_hh = rng.standard_normal(g * H) * 0.4, rng.standard_normal(g * H) * 0.4
    mod = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(I, H, batch_first=True).double()
    with torch.no_grad():
        for name, val in [("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh), ("bias_ih_l0", b_ih),
                          ("bias_hh_l0", b_hh)]:
            getattr(mod, name).copy_(torch.from_numpy(val))
    tx = torch.from_numpy(x).requires_grad_()
    if kind == "lstm":
        t_out, (t_h, t_c) = mod(tx, (torch.from_numpy(h0)[None], torch.from_numpy(c0)[None]))
        lx = t64(x, grad=True)
        out, h, c = lm.lstm(lx, t64(h0), t64(c0), t64(w_ih), t64(w_hh), t64(b_ih + b_hh))
        np.testing.assert_allclose(c.numpy(), t_c[0].detach().numpy(), rtol=1e-10, atol=1e-12)
    else:
        t_out, t_h = mod(tx, torch.from_numpy(h0)[None])
        lx = t64(x, grad=True)
        out, h = lm.gru(lx, t64(h0), t64(w_ih), t64(w_hh), t64(b_ih), t64(b_hh))
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h.numpy(), t_h[0].detach().numpy(), rtol=1e-10, atol=1e-12)
    w = rng.standard_normal((B, T, H))
    (t_out * torch.from_numpy(w)).sum().backward()
    lm.sum(out * t64(w)).backward()
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-11)


BAD = [
    ("lstm", lambda: lm.lstm(np.zeros((2, 3)), None, None, np.zeros((8, 3)), np.zeros((8, 2)), np.zeros(8)),
     r"lstm: x must be \(batch, steps, features\)"),
    ("lstm", lambda: lm.lstm(np.zeros((2, 3, 4)), None, None, np.zeros((8, 5)), np.zeros((8, 2)), np.zeros(8)),
     r"lstm: expected w_ih of shape \(8, 4\), got \(8, 5\)"),
    ("lstm", lambda: lm.lstm(np.zeros((2, 3, 4)), np.zeros((3, 2)), None, np.zeros((8, 4)), np.zeros((8, 2)),
                             np.zeros(8)), r"lstm: expected h0 of shape \(2, 2\)"),
    ("lstm", lambda: lm.lstm(np.zeros((2, 3, 4)), None, None, np.zeros((8, 4)), np.zeros((6, 2)), np.zeros(8)),
     r"lstm: w_hh must be"),
    ("lstm", lambda: lm.lstm(np.zeros((2, 3, 4)), None, None, np.zeros((8, 4)), np.zeros((8, 2)), np.zeros(8),
                             mask=np.ones((2, 4), bool)), r"lstm: expected mask of shape \(2, 3\)"),
    ("gru", lambda: lm.gru(np.zeros((2, 3, 4)), None, np.zeros((6, 4)), np.zeros((6, 2)), np.zeros(6),
                           np.zeros(5)), r"gru: expected b_hh of shape \(6,\), got \(5,\)"),
    ("gru", lambda: lm.gru(np.zeros((2, 0, 4)), None, np.zeros((6, 4)), np.zeros((6, 2)), np.zeros(6),
                           np.zeros(6)), r"gru: x must have at least one step"),
]


@pytest.mark.parametrize("name,call,message", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_errors(name, call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_double_backward_through_the_fused_op(kind):
    """With create_graph=True the gradient is the cell loop's, differentiated again: a gradient
    penalty matches the Python-stepped reference, and the first-order gradient's own
    gradient matches its central differences."""
    make, fused, reference = ((lstm_params, fused_lstm, lstm_reference) if kind == "lstm" else
                              (gru_params, fused_gru, gru_reference))
    arrays = make(2, 3, 4, 5)
    mask = np.array([[True, True, False], [True, True, True]])

    def penalty(fn):
        xs = [lm.tensor(a, dtype="float64", requires_grad=True) for a in arrays]
        out = fn(*xs, mask=mask)[0]
        (gx,) = lm.grad(lm.sum(out * out), [xs[0]], create_graph=True)
        lm.sum(gx * gx).backward()
        return [gx.numpy()] + [t.grad.numpy() for t in xs]

    for got, want in zip(penalty(fused), penalty(reference)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)

    def first_gradient(*xs):
        # Central differences call this under no_grad with constants: the gradient is then taken
        # with respect to copies.
        xs = [x if x.requires_grad else lm.tensor(x.numpy(), dtype="float64", requires_grad=True) for x in xs]
        with lm.enable_grad():
            out = fused(*xs, mask=mask)[0]
            return lm.grad(lm.sum(out * out), list(xs), create_graph=True)

    check_grad(f"{kind} gradient", first_gradient, arrays)