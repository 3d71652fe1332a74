"""linear(x, w, b, activation): the dense-layer op. float32 on the CPU runs one GEMM with a
fused bias/relu epilogue and its own backward; other dtypes compose matmul / add / relu.
Checked against numpy float64, finite differences, the composite, and PyTorch."""

import numpy as np
import pytest

import lamina as lm
from helpers import check_errors, check_grad

RNG = np.random.default_rng(7)

# (x shape, out features): ragged sizes across the GEMM's 6 x 16 tiles, 1-D and 3-D inputs.
SHAPES = [((5, 3), 4), ((1, 7), 1), ((33, 17), 40), ((2, 3, 9), 7), ((9,), 5), ((4, 0), 3), ((0, 6), 2)]


def reference(x, w, b, activation):
    y = x.astype(np.float64) @ w.astype(np.float64)
    if b is not None:
        y = y + b
    return np.maximum(y, 0) if activation == "relu" else y


@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("shape,out", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_values_match_numpy(shape, out, activation, dtype):
    x, w, b = RNG.standard_normal(shape), RNG.standard_normal((shape[-1], out)), RNG.standard_normal(out)
    got = lm.linear(lm.tensor(x, dtype=dtype), lm.tensor(w, dtype=dtype), lm.tensor(b, dtype=dtype), activation)
    assert got.dtype == dtype and got.shape == (*shape[:-1], out)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    want = reference(x.astype(dtype), w.astype(dtype), b.astype(dtype), activation)
    np.testing.assert_allclose(got.numpy(), want, **tol)


def test_without_bias_and_with_strided_operands():
    x = RNG.standard_normal((8, 6)).astype(np.float32)
    w = RNG.standard_normal((5, 6)).astype(np.float32)  # used transposed: a column-major view
    lx = lm.tensor(x)[::2]
    got = lm.linear(lx, lm.tensor(w).T, None, "relu")
    np.testing.assert_allclose(got.numpy(), reference(x[::2], w.T, None, "relu"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_finite_differences(activation):
    # float64: the composite path.
    x, w, b = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 5)), RNG.standard_normal(5)
    check_grad("linear", lambda x, w, b: lm.linear(x, w, b, activation), [x, w, b])


@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("shape", [(6, 7), (2, 3, 7)])
def test_fused_gradients_match_float64_composite(shape, activation):
    x, w, b = RNG.standard_normal(shape), RNG.standard_normal((7, 9)), RNG.standard_normal(9)
    weight = RNG.standard_normal((*shape[:-1], 9))
    grads = {}
    for dtype in ("float32", "float64"):
        leaves = [lm.tensor(a, dtype=dtype, requires_grad=True) for a in (x, w, b)]
        lm.sum(lm.linear(*leaves, activation) * lm.tensor(weight, dtype=dtype)).backward()
        grads[dtype] = [t.grad.numpy() for t in leaves]
    for name, got, want in zip("xwb", grads["float32"], grads["float64"]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"gradient of {name}")


def test_double_backward_through_the_fused_path():
    x = lm.tensor(RNG.standard_normal((4, 3)), dtype="float32", requires_grad=True)
    w = lm.tensor(RNG.standard_normal((3, 2)), dtype="float32", requires_grad=True)
    b = lm.tensor(RNG.standard_normal(2), dtype="float32", requires_grad=True)
    (gx,) = lm.grad(lm.sum(lm.linear(x, w, b, "relu") ** 2), [x], create_graph=True)
    (gw,) = lm.grad(lm.sum(gx), [w])
    # d/dw of sum_i,k (2 relu(z) 1[z>0] w^T)_ik: computed in float64 by the composite.
    x64, w64, b64 = (lm.tensor(t.numpy().astype(np.float64), requires_grad=True) for t in (x, w, b))
    (gx64,) = lm.grad(lm.sum(lm.relu(x64 @ w64 + b64) ** 2), [x64], create_graph=True)
    (gw64,) = lm.grad(lm.sum(gx64), [w64])
    np.testing.assert_allclose(gw.numpy(), gw64.numpy(), rtol=1e-4, atol=1e-4)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    x, w, b = (RNG.standard_normal(s).astype(np.float32) for s in [(10, 12), (12, 20), (20,)])
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    torch.relu(tx @ tw + tb).square().sum().backward()
    lx, lw, lb = (lm.tensor(a, requires_grad=True) for a in (x, w, b))
    y = lm.linear(lx, lw, lb, "relu")
    lm.sum(y * y).backward()
    np.testing.assert_allclose(y.numpy(), torch.relu(tx @ tw + tb).detach().numpy(), rtol=1e-5, atol=1e-5)
    for ours, theirs in [(lx, tx), (lw, tw), (lb, tb)]:
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_errors():
    x, w = lm.ones((2, 3)), lm.ones((3, 4))
    check_errors(lambda *a: lm.linear(*a), [
        ((x, lm.ones((2, 4))), ValueError, "3 features but w of shape (2, 4) expects 2"),
        ((x, lm.ones(3)), ValueError, "w must be (in_features, out_features)"),
        ((x, w, lm.ones(3)), ValueError, "expected b of shape (4,), got (3,)"),
        ((x, w, None, "gelu"), ValueError, "activation must be 'linear', 'relu' or 'gelu_tanh'"),
        ((lm.ones(()), w), ValueError, "at least 1-D"),
    ])


def gelu_tanh(z):
    return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))


@pytest.mark.parametrize("shape,out", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_tanh_epilogue_matches_numpy(shape, out, dtype):
    x, w, b = RNG.standard_normal(shape), RNG.standard_normal((shape[-1], out)), RNG.standard_normal(out)
    got = lm.linear(lm.tensor(x, dtype=dtype), lm.tensor(w, dtype=dtype), lm.tensor(b, dtype=dtype), "gelu_tanh")
    want = gelu_tanh(reference(x.astype(dtype), w.astype(dtype), b.astype(dtype), "linear"))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.numpy(), want, **tol)


def test_gelu_tanh_gradients():
    x, w, b = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 5)), RNG.standard_normal(5)
    check_grad("linear gelu_tanh", lambda x, w, b: lm.linear(x, w, b, "gelu_tanh"), [x, w, b])
    check_grad("linear gelu_tanh without bias", lambda x, w: lm.linear(x, w, None, "gelu_tanh"), [x, w])
    leaves = [lm.tensor(v, dtype="float32", requires_grad=True) for v in (x, w, b)]
    lm.sum(lm.linear(*leaves, "gelu_tanh") ** 2).backward()
    composite = [lm.tensor(v, dtype="float32", requires_grad=True) for v in (x, w, b)]
    lm.sum(lm.gelu(composite[0] @ composite[1] + composite[2], True) ** 2).backward()
    for fused, plain in zip(leaves, composite):
        np.testing.assert_allclose(fused.grad.numpy(), plain.grad.numpy(), rtol=1e-5, atol=1e-5)
