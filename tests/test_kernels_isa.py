"""The float32 fast math (exp/tanh/sigmoid/log/log1p/softplus) against numpy float64 over
the whole range, the AVX2 kernels against the baseline ones (LAMINA_CPU_ISA=generic in a
subprocess), and the AVX-512 matrix kernels (and GELU's AVX-512 row copies) against the AVX2
ones (LAMINA_CPU_ISA=avx2)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lamina

REFS = {
    "exp": np.exp,
    "tanh": np.tanh,
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
}


def _grid():
    rng = np.random.default_rng(0)
    dense = np.linspace(-110.0, 88.7, 400_001)
    tiny = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-8, -1e-8, 0.2499, 0.2501, -0.25])
    return np.concatenate([dense, tiny, rng.standard_normal(100_000) * 4]).astype(np.float32)


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid"])
def test_fast_math_accuracy(name):
    x = _grid()
    got = getattr(lamina, name)(lamina.tensor(x)).numpy().astype(np.float64)
    want = REFS[name](x.astype(np.float64))
    normal = np.isfinite(want) & (np.abs(want) > np.finfo(np.float32).tiny) & (np.abs(want) < 3e38)
    rel = np.abs(got[normal] - want[normal]) / np.abs(want[normal])
    assert rel.max() < 1e-6, f"{name}: max relative error {rel.max():.3g}"


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid"])
def test_fast_math_special_values(name):
    x = np.array([np.nan, np.inf, -np.inf, 1000.0, -1000.0], np.float32)
    got = getattr(lamina, name)(lamina.tensor(x)).numpy()
    with np.errstate(over="ignore"):
        want = REFS[name](x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(got, want)


def _positive_grid():
    """Denormals to the float32 maximum, log-spaced, plus a dense band around 1."""
    rng = np.random.default_rng(2)
    wide = np.geomspace(1e-45, 3.4e38, 400_001)
    near_one = 1.0 + np.linspace(-0.5, 0.5, 100_001)
    tiny = np.array([1.4e-45, 1.1754942e-38, 1.1754944e-38, 0.70710677, 0.7071068, 1.4142135, 1.4142137,
                     np.nextafter(np.float32(1), np.float32(0)), np.nextafter(np.float32(1), np.float32(2))])
    return np.concatenate([wide, near_one, tiny, rng.random(100_000) * 10]).astype(np.float32)


def _log1p_grid():
    """From just above -1 to the float32 maximum, dense near 0 on both sides."""
    neg = -np.geomspace(1e-30, 1 - 6e-8, 200_001)
    pos = np.geomspace(1e-30, 3.4e38, 300_001)
    return np.concatenate([neg, pos, np.linspace(-0.6, 1.5, 100_001)]).astype(np.float32)


LOG_CASES = {
    "log": (_positive_grid, np.log),
    "log1p": (_log1p_grid, np.log1p),
    # softplus(x) = max(x, 0) + log1p(e^-|x|): the log1p of a value in (0, 1].
    "softplus": (_grid, lambda v: np.logaddexp(0.0, v)),
}


@pytest.mark.parametrize("name", list(LOG_CASES))
def test_fast_log_accuracy(name):
    grid, ref = LOG_CASES[name]
    x = grid()
    got = getattr(lamina, name)(lamina.tensor(x)).numpy().astype(np.float64)
    want = ref(x.astype(np.float64))
    normal = np.isfinite(want) & (np.abs(want) > np.finfo(np.float32).tiny)
    rel = np.abs(got[normal] - want[normal]) / np.abs(want[normal])
    assert rel.max() < 1e-6, f"{name}: max relative error {rel.max():.3g} at x = {x[normal][rel.argmax()]!r}"
    assert np.array_equal(got[want == 0], want[want == 0]), name


@pytest.mark.parametrize("name,x,want", [
    ("log", [np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1.0, 1e-45],
     [np.nan, np.inf, np.nan, -np.inf, -np.inf, np.nan, 0.0, np.log(np.float32(1e-45).astype(np.float64))]),
    ("log1p", [np.nan, np.inf, -np.inf, -1.0, -2.0, 0.0, -0.0, 1e-30],
     [np.nan, np.inf, np.nan, -np.inf, np.nan, 0.0, -0.0, 1e-30]),
    ("softplus", [np.nan, np.inf, -np.inf, 1000.0, -1000.0], [np.nan, np.inf, 0.0, 1000.0, 0.0]),
])
def test_fast_log_special_values(name, x, want):
    got = getattr(lamina, name)(lamina.tensor(np.array(x, np.float32))).numpy()
    np.testing.assert_array_equal(got, np.array(want, np.float32))
    zero = np.array(want) == 0
    assert np.array_equal(np.signbit(got[zero]), np.signbit(np.array(want, np.float32)[zero])), name


_PROGRAM = """
import json, numpy as np, lamina
rng = np.random.default_rng(1)
x = lamina.tensor((rng.standard_normal((37, 129)) * 5).astype(np.float32))
y = lamina.tensor(rng.standard_normal((129,)).astype(np.float32))
out = {
    "exp": lamina.exp(x), "tanh": lamina.tanh(x), "sigmoid": lamina.sigmoid(x),
    "gelu": lamina.gelu(x, "tanh"), "add": x + y, "div": x / y, "max": lamina.maximum(x, y),
    "softmax": lamina.softmax(x, axis=-1), "sum": x.sum(axis=0), "var": lamina.var(x, axis=1),
    "lse": lamina.logsumexp(x, axis=1),
    "log": lamina.log(lamina.abs(x)), "log1p": lamina.log1p(lamina.abs(x)), "softplus": lamina.softplus(x),
}
# The fused norm and loss kernels, forward and backward (rows longer than one summation block).
xl = lamina.tensor((rng.standard_normal((6, 1100)) * 3 + 2).astype(np.float32), requires_grad=True)
gl = lamina.tensor(rng.standard_normal(1100).astype(np.float32), requires_grad=True)
bl = lamina.tensor(rng.standard_normal(1100).astype(np.float32), requires_grad=True)
dy = lamina.tensor(rng.standard_normal((6, 1100)).astype(np.float32))
labels = lamina.tensor(rng.integers(0, 1100, size=6))
targets = lamina.tensor(rng.random((6, 1100)).astype(np.float32))
fused = {
    "layer_norm": lambda: lamina.layer_norm(xl, gl, bl),
    "batch_norm": lambda: lamina.batch_norm(lamina.reshape(xl, (3, 2, 1100)), gl[:2], bl[:2]),
    "sce": lambda: lamina.softmax_cross_entropy(xl, labels, reduction="none"),
    "sce_dense": lambda: lamina.softmax_cross_entropy(xl, targets, reduction="none"),
    "bce": lambda: lamina.binary_cross_entropy_with_logits(xl, targets, "none"),
}
for name, fn in fused.items():
    y = fn()
    w = lamina.reshape(dy, tuple(y.shape)) if int(np.prod(y.shape)) == 6600 else dy[:, 0]
    grads = lamina.grad(lamina.sum(y * w), [xl, gl, bl], allow_unused=True)
    out[name] = y
    for i, gr in enumerate(grads):
        if gr is not None:
            out[f"{name}_grad{i}"] = gr
print(json.dumps({k: v.detach().numpy().tolist() for k, v in out.items()}))
"""


def _run(env_isa):
    env = dict(os.environ)
    env.pop("LAMINA_CPU_ISA", None)
    if env_isa:
        env["LAMINA_CPU_ISA"] = env_isa
    res = subprocess.run([sys.executable, "-c", _PROGRAM], env=env, capture_output=True, text=True,
                         check=True)
    return {k: np.array(v, dtype=np.float64) for k, v in json.loads(res.stdout).items()}


def test_avx2_and_generic_kernels_agree():
    fast, base = _run(None), _run("generic")
    for key in fast:
        np.testing.assert_allclose(fast[key], base[key], rtol=2e-6, atol=1e-6, err_msg=key)


_MATRIX_PROGRAM = """
import json, numpy as np, lamina
rng = np.random.default_rng(3)
t = lambda *shape: lamina.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
a, b, bias = t(131, 300), t(300, 77), t(77)
x, w_ih, w_hh, b_lstm = t(5, 9, 20), t(4 * 33, 20), t(4 * 33, 33), t(4 * 33)
q, k, v = t(2, 3, 45, 16), t(2, 3, 70, 16), t(2, 3, 70, 16)
xc, wc, bc = t(8, 64, 7, 9), t(70, 64, 3, 3), t(70)  # 8 images: AVX-512 runs the padded-image forward
outs = {
    "matmul": lamina.matmul(a, b), "matmul_tt": lamina.matmul(lamina.transpose(b), lamina.transpose(a)),
    "linear_relu": lamina.linear(a, b, bias, "relu"),
    "linear_gelu": lamina.linear(a, b, bias, "gelu_tanh"),
    "gelu_erf": lamina.gelu(a),  # AVX-512 row copies of the forward and backward
    "lstm": lamina.lstm(x, None, None, w_ih, w_hh, b_lstm)[0],
    "attention": lamina.scaled_dot_product_attention(q, k, v, causal=True),
    "conv": lamina.conv2d(xc, wc, bc, padding=1),
    "conv_strided": lamina.conv2d(xc[:, :5], wc[:30, :5], bc[:30], stride=2),
}
leaves = [a, b, bias, x, w_ih, w_hh, b_lstm, q, k, v, xc, wc, bc]
res = {"isa": lamina.cpu_isa()}
for name, y in outs.items():
    res[name] = y.detach().numpy().tobytes().hex()
    grads = lamina.grad(lamina.sum(y * y), leaves, allow_unused=True)
    res[name + "_grads"] = [g.numpy().tobytes().hex() for g in grads if g is not None]
print(json.dumps(res))
"""


def _run_matrix_program(env_isa):
    env = {k: v for k, v in os.environ.items() if k != "LAMINA_CPU_ISA"}
    if env_isa:
        env["LAMINA_CPU_ISA"] = env_isa
    res = subprocess.run([sys.executable, "-c", _MATRIX_PROGRAM], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(res.stdout)


def test_cpu_isa_reports_the_cap():
    assert lamina.cpu_isa() in ("avx512", "avx2", "generic")
    assert _run_matrix_program("generic")["isa"] == "generic"
    assert _run_matrix_program("avx2")["isa"] in ("avx2", "generic")


def test_avx512_and_avx2_matrix_kernels_are_bit_identical():
    """The AVX-512 GEMM rounds the same ordered sums as the AVX2 one (same K blocks, same
    epilogue operations), so every op built on it gives the same bits on both."""
    wide = _run_matrix_program(None)
    if wide["isa"] != "avx512":
        pytest.skip("the CPU has no AVX-512")
    narrow = _run_matrix_program("avx2")
    assert narrow["isa"] == "avx2"
    for key in wide:
        if key != "isa":
            assert wide[key] == narrow[key], key
