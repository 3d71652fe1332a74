"""The device GEMM paths against independent references: exact fp32/fp64 (SIMT), bf16 and
fp16 (mma.sync m16n8k16), TF32 (mma.sync m16n8k8, opt-in), the bias/relu/gelu epilogue of
lamina.linear (and Dense), batched and broadcast-batched products, every tile shape (128x256 for 16-bit
operands when M >= 128 and N >= 256, 128x128 when M and N are at least 128, else 64x64), ragged
sizes, and a few thread-order seeds.

Tolerances (relative to the largest reference magnitude unless stated):
- float32 exact: 1e-5 against the CPU (summation order differs).
- bf16 / fp16: both sides multiply the same 16-bit values exactly and accumulate in fp32 or
  better, then round once to the 16-bit dtype: one rounding step, 2^-8 (bf16) or 2^-11 (fp16),
  relative to each element, plus 1e-5 of the scale for the accumulation order.
- TF32: operands are rounded to a 10-bit mantissa (cvt.rna: error <= 2^-11 relative each),
  so each product is within 2^-10 of exact: |got - exact| <= 2^-10 (|A| @ |B|) + 1e-5 scale.
  Against a numpy model that rounds the operands the same way, only the accumulation order
  remains: 1e-5.
"""

import numpy as np
import pytest

import lamina as lm

from cuda_testing import close, needs_cuda, run_seeded

SQRT_2_OVER_PI = np.sqrt(2 / np.pi)


def _data(shape, seed, dtype=np.float32):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(dtype)


def _close(got, want, rtol, what):
    close(got, want, rtol, what)


def _tf32(a):
    """cvt.rna.tf32.f32 in numpy: the significand rounded to 11 bits, ties away from zero."""
    a = np.asarray(a, np.float64)
    mantissa, exponent = np.frexp(a)  # a = mantissa * 2^exponent, 0.5 <= |mantissa| < 1
    scaled = np.ldexp(mantissa, 11)
    return np.ldexp(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5), exponent - 11)


def _reference(x, w, b, activation):
    z = x @ w + (0 if b is None else b)
    if activation == "relu":
        return np.maximum(z, 0)
    if activation == "gelu_tanh":
        return 0.5 * z * (1 + np.tanh(SQRT_2_OVER_PI * (z + 0.044715 * z**3)))
    return z


@pytest.fixture
def tf32():
    before = lm.cuda.get_float32_matmul_precision()
    lm.cuda.set_float32_matmul_precision("high")
    yield
    lm.cuda.set_float32_matmul_precision(before)


# (M, K, N): small tile, ragged; large tile (M, N >= 128), ragged; K not a multiple of 8;
# the 16-bit wide tile (M >= 128, N >= 256), ragged; ten row tiles, so the blocks' grouped
# order (8 row tiles a group) ends on a partial group.
SHAPES = [(37, 29, 41), (130, 40, 136), (5, 3, 9), (128, 64, 128), (136, 72, 264), (581, 16, 70)]


@needs_cuda
@pytest.mark.parametrize("dtype,step", [("float16", 2.0**-11), ("bfloat16", 2.0**-8)])
@pytest.mark.parametrize("shape", SHAPES)
def test_16bit_gemm(dtype, step, shape):
    m, k, n = shape
    a = lm.tensor(_data((m, k), 1)).astype(dtype)
    b = lm.tensor(_data((k, n), 2)).astype(dtype)
    got = (a.cuda() @ b.cuda()).cpu()
    assert got.dtype == dtype  # as the CPU: fp32 accumulation, rounded to the input dtype
    exact = a.astype("float64").numpy() @ b.astype("float64").numpy()
    tol = step * np.abs(exact) + 1e-5 * np.abs(exact).max()
    assert np.all(np.abs(got.astype("float64").numpy() - exact) <= tol), f"{dtype} {shape}"
    _close(got.astype("float32").numpy(), (a @ b).astype("float32").numpy(), 2 * step, f"{dtype} vs CPU {shape}")


@needs_cuda
@pytest.mark.parametrize("shape", SHAPES)
def test_tf32_gemm(tf32, shape):
    m, k, n = shape
    a, b = _data((m, k), 3), _data((k, n), 4)
    got = (lm.tensor(a, device="cuda") @ lm.tensor(b, device="cuda")).cpu().numpy()
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = 2.0**-10 * (np.abs(a).astype(np.float64) @ np.abs(b)) + 1e-5 * np.abs(exact).max()
    assert np.all(np.abs(got - exact) <= bound), f"tf32 {shape}: outside the TF32 error bound"
    _close(got, _tf32(a) @ _tf32(b), 1e-5, f"tf32 vs the rounded-operand model {shape}")
    if k >= 16:  # the switch really selects TF32: exact fp32 would be ~1e-7 from `exact`
        assert np.max(np.abs(got - exact)) > 1e-5 * np.abs(exact).max()


@needs_cuda
def test_float32_default_is_exact():
    assert lm.cuda.get_float32_matmul_precision() == "highest"
    a, b = _data((130, 40), 5), _data((40, 136), 6)
    got = (lm.tensor(a, device="cuda") @ lm.tensor(b, device="cuda")).cpu().numpy()
    _close(got, a.astype(np.float64) @ b, 1e-6, "exact fp32")


def test_precision_switch_arguments():
    before = lm.cuda.get_float32_matmul_precision()
    try:
        lm.cuda.set_float32_matmul_precision("high")
        assert lm.cuda.get_float32_matmul_precision() == "high"
        with pytest.raises(ValueError, match="set_float32_matmul_precision"):
            lm.cuda.set_float32_matmul_precision("medium")
        with pytest.raises(TypeError):
            lm.cuda.set_float32_matmul_precision(3)
        assert lm.cuda.get_float32_matmul_precision() == "high"
    finally:
        lm.cuda.set_float32_matmul_precision(before)


# a shape, b shape: full batch, broadcast batch axes, a shared matrix on either side.
BATCHES = [((3, 37, 20), (3, 20, 45)), ((2, 1, 9, 17), (3, 17, 11)), ((9, 17), (4, 17, 11)),
           ((4, 9, 17), (17, 11)), ((2, 3, 130, 8), (8, 129))]


@needs_cuda
@pytest.mark.parametrize("shapes", BATCHES)
@pytest.mark.parametrize("path", ["float32", "float64", "tf32", "bfloat16", "float16"])
def test_batched(shapes, path):
    a, b = _data(shapes[0], 7), _data(shapes[1], 8)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    before = lm.cuda.get_float32_matmul_precision()
    lm.cuda.set_float32_matmul_precision("high" if path == "tf32" else "highest")
    try:
        dtype = "float32" if path == "tf32" else path
        ta, tb = lm.tensor(a).astype(dtype), lm.tensor(b).astype(dtype)
        got = (ta.cuda() @ tb.cuda()).cpu()
    finally:
        lm.cuda.set_float32_matmul_precision(before)
    assert tuple(got.shape) == exact.shape
    if path in ("float32", "float64"):
        _close(got.numpy(), exact, 1e-5 if path == "float32" else 1e-12, f"{path} {shapes}")
    elif path == "tf32":
        _close(got.numpy(), _tf32(a) @ _tf32(b), 1e-5, f"tf32 {shapes}")
    else:
        rounded = ta.astype("float64").numpy() @ tb.astype("float64").numpy()
        _close(got.astype("float64").numpy(), rounded, 2.0**-8 if path == "bfloat16" else 2.0**-10,
               f"{path} {shapes}")


@needs_cuda
@pytest.mark.parametrize("activation", ["linear", "relu", "gelu_tanh"])
@pytest.mark.parametrize("path", ["float32", "float64", "tf32", "bfloat16", "float16"])
@pytest.mark.parametrize("x_shape,n", [((2, 19, 23), 37), ((130, 24), 129)])
def test_linear_epilogue(activation, path, x_shape, n):
    x, w, b = _data(x_shape, 9), _data((x_shape[-1], n), 10), _data(n, 11)
    dtype = "float32" if path == "tf32" else path
    ts = [lm.tensor(v).astype(dtype) for v in (x, w, b)]
    before = lm.cuda.get_float32_matmul_precision()
    lm.cuda.set_float32_matmul_precision("high" if path == "tf32" else "highest")
    try:
        got = lm.linear(*(t.cuda() for t in ts), activation).cpu()
    finally:
        lm.cuda.set_float32_matmul_precision(before)
    assert got.dtype == dtype
    x64, w64, b64 = (t.astype("float64").numpy() for t in ts)
    if path == "tf32":
        x64, w64 = _tf32(x64), _tf32(w64)
    want = _reference(x64, w64, b64, activation)
    rtol = {"float32": 1e-5, "float64": 1e-12, "tf32": 1e-5, "bfloat16": 2.0**-8, "float16": 2.0**-10}[path]
    _close(got.astype("float64").numpy(), want, rtol, f"linear {activation} {path}")
    if path in ("float32", "float64"):
        cpu = lm.linear(*ts, activation)
        _close(got.numpy(), cpu.numpy(), rtol, f"linear {activation} {path} vs CPU")


@needs_cuda
@pytest.mark.parametrize("activation", ["linear", "relu", "gelu_tanh"])
def test_linear_gradients_match_cpu(activation):
    x, w, b = _data((3, 7, 11), 12), _data((11, 13), 13), _data(13, 14)
    seed = _data((3, 7, 13), 15)
    results = []
    for device in ("cpu", "cuda"):
        ts = [lm.tensor(v, device=device, requires_grad=True) for v in (x, w, b)]
        y = lm.linear(*ts, activation)
        lm.sum(y * lm.tensor(seed, device=device)).backward()
        results.append([y.cpu().numpy()] + [t.grad.cpu().numpy() for t in ts])
    for name, c, d in zip(["y", "dx", "dw", "db"], *results):
        _close(d, c, 1e-5, f"linear {activation} {name}")


@needs_cuda
@pytest.mark.parametrize("activation", ["relu", None, "tanh"])
def test_dense_layer_on_device_matches_cpu(activation):
    x = _data((6, 10), 16)
    layer = lm.layers.Dense(7, activation=activation)
    y_cpu = layer(lm.tensor(x)).numpy()
    # The same layer with its weights moved to the device.
    layer.kernel, layer.bias = layer.kernel.cuda(), layer.bias.cuda()
    y_dev = layer(lm.tensor(x, device="cuda"))
    assert y_dev.is_cuda
    _close(y_dev.cpu().numpy(), y_cpu, 1e-5, f"Dense {activation} on the device")


def seed_workload():
    """Every tile shape on the tensor-core paths, plus the epilogue; prints the worst error."""
    worst = 0.0
    lm.cuda.set_float32_matmul_precision("high")
    for (m, k, n), dtype in [((130, 40, 136), "float16"), ((37, 29, 41), "float32"), ((129, 24, 260), "bfloat16")]:
        x, w, b = _data((m, k), 17), _data((k, n), 18), _data(n, 19)
        ts = [lm.tensor(v).astype(dtype) for v in (x, w, b)]
        got = lm.linear(*(t.cuda() for t in ts), "gelu_tanh").cpu().astype("float64").numpy()
        x64, w64, b64 = (t.astype("float64").numpy() for t in ts)
        if dtype == "float32":
            x64, w64 = _tf32(x64), _tf32(w64)
        want = _reference(x64, w64, b64, "gelu_tanh")
        worst = max(worst, float(np.max(np.abs(got - want)) / np.max(np.abs(want))))
    print(f"worst {worst:.3e}")


@needs_cuda
@pytest.mark.parametrize("seed", [1, 2])
def test_gemm_under_thread_order_seeds(seed):
    stdout = run_seeded("test_cuda_emulated_gemm", "seed_workload", seed)
    worst = float(stdout.split("worst")[-1])
    assert worst < 2.0**-8, stdout  # bf16's rounding step bounds all three paths
