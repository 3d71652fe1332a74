"""scaled_dot_product_attention on the device's FMA flash kernels against the CPU op.

Runs when the extension has the CUDA backend, real or on the SIMT emulator
(``scripts/test_cuda_emulated.sh``). float32 q, k, v (and half types outside the half flash
kernel's shapes, which compute in float32 as on the CPU) run ``attention_forward_fma_kernel``
and the two backward passes: any head sizes 1..128 (dv may differ from d), causal, and bool or
additive masks of any broadcast shape, read through their strides. float64 runs the same
kernels (instantiated for double) for head sizes up to 64. Shapes are ragged: not
multiples of the kernels' 16-row blocks and 32-column tiles.

Tolerances: float32 values and gradients agree with the CPU within 1e-5 relative to the largest
magnitude of the reference (both compute in float32 with different summation orders), float64
within 1e-10 (likewise, with 53-bit sums). Half
types: both sides compute in float32 and round once to the half type (outputs) or from the
float32 gradients, so a result can differ by one step of the type where the float32 values sit
either side of a rounding boundary: 2 eps of the largest magnitude (eps the unit roundoff).
"""

import numpy as np
import pytest

import lamina as lm

from cuda_testing import close, needs_cuda, outputs_and_grads, run_seeded, uniform

RTOL = 1e-5
RTOL64 = 1e-10
EPS = {"bfloat16": 2.0**-8, "float16": 2.0**-11}


def _close(got, want, rtol=RTOL, what=""):
    close(got, want, rtol, what, elementwise=False)


def _compare(fn, arrays, dtype="float32", rtol=RTOL, what=""):
    cpu = outputs_and_grads(fn, arrays, "cpu", dtype)
    dev = outputs_and_grads(fn, arrays, "cuda", dtype)
    for i, (c, d) in enumerate(zip(cpu, dev)):
        _close(d, c, rtol, f"{what} output {i}")
    return dev


def _qkv(lead, nq, nk, d, dv, seed):
    return [uniform(lead + (n, e), seed + i) for i, (n, e) in enumerate(((nq, d), (nk, d), (nk, dv)))]


SHAPES = [
    # name, lead axes, nq, nk, d, dv, kwargs
    ("plain", (2,), 7, 9, 5, 3, {}),
    ("causal_heads", (1, 2), 6, 6, 4, 4, {"causal": True}),
    ("scale", (3,), 5, 4, 8, 8, {"scale": 0.3}),
    ("d24_ragged", (2,), 37, 45, 24, 24, {}),
    ("d1_dv5_causal", (1,), 19, 40, 1, 5, {"causal": True}),
    ("d64_causal_more_queries", (1, 2), 40, 33, 64, 64, {"causal": True}),
    ("d80_dv40", (1,), 17, 50, 80, 40, {}),
    ("d128_dv96_causal", (1,), 20, 37, 128, 96, {"causal": True}),
]


@needs_cuda
@pytest.mark.parametrize("name,lead,nq,nk,d,dv,kw", SHAPES, ids=[c[0] for c in SHAPES])
def test_float32_flash_attention_matches_cpu(name, lead, nq, nk, d, dv, kw):
    _compare(lambda q, k, v: lm.scaled_dot_product_attention(q, k, v, **kw), _qkv(lead, nq, nk, d, dv, 1), what=name)


def _masks(kind):
    """Masks of shape-broadcast forms for (B, H, Lq, Lk) = (2, 2, 13, 35): bool keep-masks or
    additive float32 ones, with some query rows (and one whole batch row) seeing no key."""
    rng = np.random.default_rng(7)
    full = rng.random((2, 2, 13, 35)) < 0.7
    full[1, 0, 4, :] = False
    full[0, 1, 12, :] = False
    shared = rng.random((13, 35)) < 0.6
    shared[5, :] = False
    padding = (np.arange(35)[None, :] < np.array([30, 0])[:, None])[:, None, None, :]  # batch row 1: no key
    per_key = rng.random((35, 13)) < 0.6  # stored transposed: the op gets a (13, 35) strided view
    forms = {"full": full, "shared": shared, "padding": padding, "transposed": per_key}
    if kind == "bool":
        return forms
    values = {n: np.where(m, rng.uniform(-2, 1, m.shape), -np.inf).astype(np.float32) for n, m in forms.items()}
    values["finite"] = rng.uniform(-3, 3, (2, 1, 13, 35)).astype(np.float32)
    return values


@needs_cuda
@pytest.mark.parametrize("kind", ["bool", "additive"])
@pytest.mark.parametrize("causal", [False, True])
def test_float32_flash_attention_general_masks(kind, causal):
    arrays = _qkv((2, 2), 13, 35, 24, 20, 3)
    for form, m in _masks(kind).items():
        def attend(q, k, v):
            mask = lm.tensor(m, device=q.device)
            return lm.scaled_dot_product_attention(q, k, v, mask=mask.mT if form == "transposed" else mask,
                                                   causal=causal)

        out, dq, dk, dv = _compare(attend, arrays, what=f"{kind} {form} mask")
        if form == "padding":  # batch row 1 sees no key: zeros and zero gradients, as on the CPU
            for got in (out, dq, dk, dv):
                assert not np.any(got[1]), form


@needs_cuda
def test_float32_flash_attention_empty_row_and_nan_scores():
    q, k, v = _qkv((1,), 6, 9, 4, 4, 5)
    keep = np.ones((6, 9), bool)
    keep[2] = False
    q[0, 4, 1] = np.nan  # a row of NaN scores: the CPU outputs zeros there (lse = +inf)
    for mask in (keep, None):
        def attend(q, k, v):
            return lm.scaled_dot_product_attention(q, k, v, mask=None if mask is None else
                                                   lm.tensor(mask, device=q.device), causal=True)

        cpu, dev = outputs_and_grads(attend, [q, k, v], "cpu"), outputs_and_grads(attend, [q, k, v], "cuda")
        assert not np.any(dev[0][0, 4]) and (mask is None or not np.any(dev[0][0, 2]))
        for i, (c, d) in enumerate(zip(cpu, dev)):
            np.testing.assert_array_equal(np.isnan(d), np.isnan(c), err_msg=f"NaN pattern of output {i}")
            _close(np.nan_to_num(d), np.nan_to_num(c), what=f"output {i}")


HALF = [
    # name, lead, nq, nk, d, dv, dtype, mask kind: outside the half flash kernel's shapes / masks
    ("bf16_d24", (2,), 11, 19, 24, 24, "bfloat16", None),
    ("f16_dv_differs", (1,), 9, 21, 64, 32, "float16", None),
    ("bf16_general_mask", (2, 1), 13, 17, 64, 64, "bfloat16", "bool"),
    ("f16_additive_mask", (2, 1), 13, 17, 64, 64, "float16", "additive"),
]


@needs_cuda
@pytest.mark.parametrize("name,lead,nq,nk,d,dv,dtype,kind", HALF, ids=[c[0] for c in HALF])
def test_half_types_outside_the_half_kernel_run_the_float32_kernel(name, lead, nq, nk, d, dv, dtype, kind):
    mask = None
    if kind is not None:
        keep = np.random.default_rng(9).random(lead[:1] + (1, nq, nk)) < 0.7
        keep[0, 0, 3] = False
        mask = keep if kind == "bool" else np.where(keep, 0.5, -np.inf).astype(np.float32)

    def attend(q, k, v):
        m = None if mask is None else lm.tensor(mask, device=q.device)
        if m is not None and kind == "additive":
            m = m.astype(dtype)
        return lm.scaled_dot_product_attention(q, k, v, mask=m)

    _compare(attend, _qkv(lead, nq, nk, d, dv, 11), dtype, 2 * EPS[dtype], what=name)


def _double_backward(q_np, device, dtype, mask=None, **kw):
    """The fused op's node name, and d/dq of sum(gq * gq) where gq = d sum(out * out) / dq
    (create_graph: the fused node differentiates the composite), as float64 numpy."""
    q = lm.tensor(q_np, device=device).astype(dtype).detach()
    q.requires_grad = True
    if mask is not None:
        kw["mask"] = lm.tensor(mask, device=device)
    out = lm.scaled_dot_product_attention(q, q, q, **kw)
    (gq,) = lm.autograd.grad(lm.sum((out * out).astype("float32")), [q], create_graph=True)
    lm.sum((gq * gq).astype("float32")).backward()
    return str(out.grad_fn), [t.cpu().astype("float64").numpy() for t in (gq, q.grad)]


# A second derivative through softmax in float32 is only good to ~1e-5 of its largest value:
# the CPU's own float32 result is 1.0-1.3e-5 off the float64 one here. So float32 is held to
# the float64 truth within 1e-4, and float64 to the CPU's float64 within RTOL64.
DOUBLE_BACKWARD_RTOL32 = 1e-4


@needs_cuda
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_kernel_is_used_and_double_backward_matches_cpu(dtype):
    q = uniform((2, 5, 24), 1)
    keep = np.random.default_rng(2).random((5, 5)) < 0.7
    keep[:, 0] = True
    for kw in ({}, {"mask": keep, "causal": True}):
        name, dev = _double_backward(q, "cuda", dtype, **kw)
        assert name == "scaled_dot_product_attention"  # the fused node, not the composite's matmul
        _, truth = _double_backward(q, "cpu", "float64", **kw)
        rtol = DOUBLE_BACKWARD_RTOL32 if dtype == "float32" else RTOL64
        for i, (d, c) in enumerate(zip(dev, truth)):
            _close(d, c, rtol, f"{dtype} double backward {kw and 'masked'} {i}")


FLOAT64 = [
    # name, lead axes, nq, nk, d, dv, kwargs
    ("d24_causal", (2,), 21, 37, 24, 24, {"causal": True}),
    ("d64_dv5", (1, 2), 13, 19, 64, 5, {}),
]


@needs_cuda
@pytest.mark.parametrize("name,lead,nq,nk,d,dv,kw", FLOAT64, ids=[c[0] for c in FLOAT64])
def test_float64_flash_attention_matches_cpu(name, lead, nq, nk, d, dv, kw):
    keep = np.random.default_rng(5).random((nq, nk)) < 0.7
    keep[1] = False

    def attend(q, k, v):
        return lm.scaled_dot_product_attention(q, k, v, mask=lm.tensor(keep, device=q.device), **kw)

    arrays = _qkv(lead, nq, nk, d, dv, 23)
    _compare(attend, arrays, "float64", RTOL64, what=name)


@needs_cuda
@pytest.mark.parametrize("dtype,d", [("float64", 65), ("float32", 129)])
def test_outside_the_fma_kernels_runs_the_device_composite(dtype, d):
    arrays = _qkv((1,), 5, 6, d, 3, 13)
    rtol = RTOL64 if dtype == "float64" else RTOL
    _compare(lambda q, k, v: lm.scaled_dot_product_attention(q, k, v, causal=True), arrays, dtype, rtol, what=dtype)
    q = lm.tensor(arrays[0], device="cuda").astype(dtype).detach()
    q.requires_grad = True
    (gq,) = lm.autograd.grad(lm.sum(lm.scaled_dot_product_attention(q, q, q)), [q], create_graph=True)
    lm.sum(gq).backward()  # the composite differentiates twice
    assert q.grad is not None


@needs_cuda
def test_float32_gradients_are_deterministic():
    arrays = _qkv((2,), 33, 47, 16, 16, 17)
    keep = np.random.default_rng(3).random((33, 47)) < 0.8
    def attend(q, k, v):
        return lm.scaled_dot_product_attention(q, k, v, mask=lm.tensor(keep, device=q.device))

    runs = [outputs_and_grads(attend, arrays, "cuda") for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def peak_memory_workload():
    """Prints the device's peak allocation for one forward and backward at nq = nk = 256; one
    float32 score matrix is 256 KiB, the inputs, outputs and gradients 48 KiB."""
    arrays = _qkv((1,), 256, 256, 8, 8, 19)
    outputs_and_grads(lambda q, k, v: lm.scaled_dot_product_attention(q, k, v, causal=True), arrays, "cuda")
    print(f"peak {lm.cuda.memory_stats()['peak_allocated_bytes']}")


@needs_cuda
def test_float32_attention_never_stores_the_score_matrix():
    peak = int(run_seeded("test_cuda_emulated_attention", "peak_memory_workload", 0).split("peak")[-1])
    assert 0 < peak < 256 * 256 * 4, peak


def seed_workload():
    """A few float32 cases under one thread order; prints the largest error relative to RTOL."""
    worst = 0.0
    keep = _masks("bool")["full"]
    cases = [
        (lambda q, k, v: lm.scaled_dot_product_attention(q, k, v, causal=True), _qkv((1,), 21, 37, 24, 16, 1)),
        (lambda q, k, v: lm.scaled_dot_product_attention(q, k, v, mask=lm.tensor(keep, device=q.device)),
         _qkv((2, 2), 13, 35, 8, 12, 2)),
    ]
    for fn, arrays in cases:
        cpu = outputs_and_grads(fn, arrays, "cpu")
        dev = outputs_and_grads(fn, arrays, "cuda")
        for c, d in zip(cpu, dev):
            worst = max(worst, float(np.max(np.abs(d - c)) / max(np.max(np.abs(c)), 1e-30)) / RTOL)
    print(f"worst {worst:.3e}")


@needs_cuda
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_float32_attention_under_thread_order_seeds(seed):
    stdout = run_seeded("test_cuda_emulated_attention", "seed_workload", seed)
    assert float(stdout.split("worst")[-1]) <= 1.0, stdout
