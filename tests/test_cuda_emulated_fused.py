"""The fused CUDA ops against the CPU: flash attention, whole-sequence LSTM/GRU, conv2d, pooling.

Runs when the extension has the CUDA backend, real or on the SIMT emulator
(``scripts/test_cuda_emulated.sh``). Shapes are small and ragged (not multiples of the
kernels' tiles: 64 query rows and 64/32 keys for attention, 32 hidden units x 8 batch rows
for the recurrent steps, 64 x 64 output tiles for conv) because the emulator runs each CUDA
thread as a fiber.

Tolerances: float32 results and gradients agree with the CPU within 1e-5 relative to the
largest magnitude of the reference. The half flash attention kernel (bfloat16/float16, head
size 64/128; the float32 kernel is tested in test_cuda_emulated_attention.py) runs its two
GEMMs per tile on tensor cores; it rounds the probabilities P (forward) and
dS = P (dP - delta) (backward) to the input type before multiplying, where the CPU keeps
them in float32. With eps the type's unit roundoff (2^-8 bf16, 2^-11 fp16), each output is
a sum of terms with relative error <= eps/2, plus one final rounding on each side, so the
bound is 2 eps of the largest magnitude for outputs and dV; dQ and dK sum dS terms of both
signs, whose rounding errors do not shrink with the result: 4 eps of the largest magnitude.
"""

import numpy as np
import pytest

import lamina as lm

from cuda_testing import close, needs_cuda, run_seeded, uniform

RTOL = 1e-5
RTOL64 = 1e-10  # float64 paths: different summation orders only
EPS = {"bfloat16": 2.0**-8, "float16": 2.0**-11}


def _close(got, want, rtol=RTOL, what=""):
    close(got, want, rtol, what, elementwise=False)


def _data(shape, seed, low=-2.0, high=2.0):
    return uniform(shape, seed, low, high)


def _run(fn, arrays, device, dtype="float32", grad=True):
    """fn's output and the gradients of sum(out * w) for a fixed w, as float64 numpy."""
    xs = []
    for a in arrays:
        t = lm.tensor(a, device=device).astype(dtype).detach()
        t.requires_grad = grad and a.dtype.kind == "f"
        xs.append(t)
    out = fn(*xs)
    result = [out.cpu().astype("float64").numpy()]
    if grad:
        w = lm.tensor(np.linspace(-1, 1, out.size, dtype=np.float32).reshape(out.shape), device=device)
        lm.sum(out.astype("float32") * w).backward()
        result += [x.grad.cpu().astype("float64").numpy() for x in xs if x.requires_grad]
    return result


def _compare(fn, arrays, dtype="float32", rtols=None, what=""):
    cpu = _run(fn, arrays, "cpu", dtype)
    dev = _run(fn, arrays, "cuda", dtype)
    rtols = rtols or [RTOL] * len(cpu)
    for i, (c, d, r) in enumerate(zip(cpu, dev, rtols)):
        _close(d, c, r, f"{what} output {i}")


def _flat(*ts):
    return lm.concatenate([t.reshape(-1) for t in ts])


# ---- attention ---------------------------------------------------------------------------------

@needs_cuda
@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_attention_masks_on_device(kind):
    q, k, v = _data((2, 6, 4), 1), _data((2, 7, 4), 2), _data((2, 7, 4), 3)
    keep = np.random.default_rng(4).random((2, 6, 7)) < 0.7
    keep[1, 2, :] = False  # a query row that sees no key: zeros, and zero gradients
    mask = keep if kind == "bool" else np.where(keep, 0.0, -1e4).astype(np.float32)
    if kind == "additive":
        mask[1, 2, :] = -np.inf
    cpu = _run(lambda q, k, v: lm.scaled_dot_product_attention(q, k, v, mask=lm.tensor(mask)), [q, k, v], "cpu")
    dev = _run(lambda q, k, v: lm.scaled_dot_product_attention(q, k, v, mask=lm.tensor(mask, device="cuda")),
               [q, k, v], "cuda")
    for i, (c, d) in enumerate(zip(cpu, dev)):
        _close(d, c, what=f"{kind} mask, output {i}")


FLASH = [
    # name, lead axes, nq, nk, D, causal, dtype
    ("d64", (2,), 19, 23, 64, False, "bfloat16"),
    ("d64_causal_heads", (1, 2), 21, 21, 64, True, "float16"),
    ("d64_more_keys_causal", (1,), 9, 70, 64, True, "bfloat16"),
    ("d128", (1,), 11, 37, 128, False, "float16"),
    ("d128_causal", (1,), 35, 35, 128, True, "bfloat16"),
]


@needs_cuda
@pytest.mark.parametrize("name,lead,nq,nk,d,causal,dtype", FLASH, ids=[c[0] for c in FLASH])
def test_flash_attention_kernel_matches_cpu(name, lead, nq, nk, d, causal, dtype):
    arrays = [_data(lead + (n, d), i + 11, -1.0, 1.0) for i, n in enumerate((nq, nk, nk))]
    eps = EPS[dtype]
    _compare(lambda q, k, v: lm.scaled_dot_product_attention(q, k, v, causal=causal), arrays, dtype,
             rtols=[2 * eps, 4 * eps, 4 * eps, 2 * eps], what=name)


PADDED_FLASH = [
    # name, batch, heads, nq, nk, D, causal, dtype, key lengths per batch row (nk = no padding)
    ("d64", 3, 2, 19, 23, 64, False, "bfloat16", (23, 7, 16)),
    ("d64_causal", 2, 1, 21, 21, 64, True, "float16", (21, 5)),
    ("d128", 2, 1, 11, 37, 128, False, "float16", (37, 33)),
    ("d128_causal", 3, 1, 35, 35, 128, True, "bfloat16", (35, 34, 12)),
    ("empty_row", 3, 1, 9, 70, 64, False, "bfloat16", (70, 0, 66)),
]


def _prefix_mask(lengths, nk):
    return np.arange(nk)[None, :] < np.asarray(lengths)[:, None]


@needs_cuda
@pytest.mark.parametrize("name,batch,heads,nq,nk,d,causal,dtype,lengths", PADDED_FLASH,
                         ids=[c[0] for c in PADDED_FLASH])
def test_flash_attention_with_key_padding_matches_cpu(name, batch, heads, nq, nk, d, causal, dtype, lengths):
    arrays = [_data((batch, heads, n, d), i + 21, -1.0, 1.0) for i, n in enumerate((nq, nk, nk))]
    keep = _prefix_mask(lengths, nk)[:, None, None, :]  # (B, 1, 1, Lk): True = attend
    eps = EPS[dtype]

    def attend(q, k, v):
        return lm.scaled_dot_product_attention(q, k, v, mask=lm.tensor(keep, device=q.device), causal=causal)

    _compare(attend, arrays, dtype, rtols=[2 * eps, 4 * eps, 4 * eps, 2 * eps], what=name)
    if 0 in lengths:  # a batch row that sees no key: zeros and zero gradients, as on the CPU
        out, dq, dk, dv = _run(attend, arrays, "cuda", dtype)
        row = lengths.index(0)
        for got in (out, dq, dk, dv):
            assert not np.any(got[row]), name


@needs_cuda
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_flash_attention_non_prefix_masks_run_the_float32_kernel(dtype):
    batch, heads, nq, nk, d = 2, 2, 13, 17, 64
    arrays = [_data((batch, heads, n, d), i + 31, -1.0, 1.0) for i, n in enumerate((nq, nk, nk))]
    holes = _prefix_mask((17, 9), nk)
    holes[1, 3] = False  # a gap inside the kept keys: not key padding
    per_query = np.broadcast_to(_prefix_mask((17, 9), nk)[:, None, None, :], (batch, 1, nq, nk)).copy()
    per_query[0, 0, 4, 10:] = False  # one query row differs: the mask is not the same for every row
    for name, keep in (("gap", holes[:, None, None, :]), ("per_query", per_query)):
        # The float32 kernel computes in float32 as the CPU does; both round once to the half
        # type, so they differ by at most one step of it (2 eps of the largest magnitude).
        _compare(lambda q, k, v: lm.scaled_dot_product_attention(q, k, v, mask=lm.tensor(keep, device=q.device)),
                 arrays, dtype, rtols=[2 * EPS[dtype]] * 4, what=name)


def _flash_double_backward(q_np, device, mask=None):
    """The fused op's node name and, through create_graph (the fused node differentiates the
    composite), d/dq of sum(gq^2) with gq = d sum(out) / dq: float64 numpy."""
    q = lm.tensor(q_np, device=device).astype("bfloat16").detach()
    q.requires_grad = True
    out = lm.scaled_dot_product_attention(q, q, q, mask=None if mask is None else lm.tensor(mask, device=device))
    (gq,) = lm.autograd.grad(lm.sum(out.astype("float32") ** 2), [q], create_graph=True)
    lm.sum(gq.astype("float32") ** 2).backward()
    return str(out.grad_fn), out.dtype, q.grad.cpu().astype("float64").numpy()


@needs_cuda
@pytest.mark.parametrize("padded", [False, True])
def test_flash_attention_is_used_and_double_backward_runs(padded):
    q = _data((2, 1, 5, 64), 1)
    mask = _prefix_mask((5, 3), 5)[:, None, None, :] if padded else None
    name, dtype, dev = _flash_double_backward(q, "cuda", mask)
    assert name == "scaled_dot_product_attention" and dtype == "bfloat16"
    _, _, cpu = _flash_double_backward(q, "cpu", mask)
    # bfloat16 inputs: both sides compute the composite's second derivative in float32 from
    # the same rounded values; the gradients round to bfloat16 (8 bits) at the end.
    close(dev, cpu, 2.0**-6, "flash double backward", elementwise=False)


# ---- recurrent ---------------------------------------------------------------------------------

def _rnn_arrays(kind, batch, steps, inputs, hidden, seed):
    g = 4 if kind == "lstm" else 3
    arrays = [_data((batch, steps, inputs), seed), _data((batch, hidden), seed + 1, -0.5, 0.5)]
    if kind == "lstm":
        arrays.append(_data((batch, hidden), seed + 2, -0.5, 0.5))
    arrays += [_data((g * hidden, inputs), seed + 3, -0.4, 0.4), _data((g * hidden, hidden), seed + 4, -0.4, 0.4)]
    arrays += [_data((g * hidden,), seed + 5, -0.3, 0.3)] * (1 if kind == "lstm" else 2)
    return arrays


def _mask(batch, steps, seed):
    m = np.random.default_rng(seed).random((batch, steps)) < 0.6
    m[0, :] = True
    m[-1, -1] = False  # a padded last step: h_T comes from an earlier one
    m[-1, 0] = False   # and a padded first step
    return m


RNN = [
    # kind, batch, steps, input, hidden, masked, initial state given
    ("lstm", 3, 5, 4, 37, False, True),
    ("lstm", 9, 4, 3, 6, True, True),
    ("lstm", 2, 3, 5, 33, True, False),
    ("gru", 3, 5, 4, 37, False, True),
    ("gru", 9, 4, 3, 6, True, True),
    ("gru", 2, 3, 5, 33, True, False),
]


def _recurrent_fn(kind, mask, state):
    def fn(*ts):
        ts = list(ts)
        m = lm.tensor(mask, device=ts[0].device) if mask is not None else None
        if kind == "lstm":
            x, h0, c0, w_ih, w_hh, b = ts
            out, h, c = lm.lstm(x, h0 if state else None, c0 if state else None, w_ih, w_hh, b, mask=m)
            return _flat(out, h, c, h0 * 0 + c0 * 0)  # the states take part even when unused
        x, h0, w_ih, w_hh, b_ih, b_hh = ts
        out, h = lm.gru(x, h0 if state else None, w_ih, w_hh, b_ih, b_hh, mask=m)
        return _flat(out, h, h0 * 0)

    return fn


@needs_cuda
@pytest.mark.parametrize("kind,batch,steps,inputs,hidden,masked,state", RNN)
def test_recurrent_sequence_matches_cpu(kind, batch, steps, inputs, hidden, masked, state):
    arrays = _rnn_arrays(kind, batch, steps, inputs, hidden, 20)
    mask = _mask(batch, steps, 5) if masked else None
    _compare(_recurrent_fn(kind, mask, state), arrays, what=f"{kind} {batch}x{steps}x{inputs}->{hidden}")


@needs_cuda
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_float64_runs_the_device_cell_loop(kind):
    arrays = _rnn_arrays(kind, 4, 3, 2, 5, 30)
    _compare(_recurrent_fn(kind, _mask(4, 3, 6), True), arrays, "float64", [RTOL64] * 8, what=f"{kind} float64")


@needs_cuda
def test_recurrent_cells_run_on_device():
    x, h, c = _data((3, 4), 1), _data((3, 5), 2), _data((3, 5), 3)
    w4, u4, b4 = _data((20, 4), 4), _data((20, 5), 5), _data((20,), 6)
    w3, u3, b3, bh3 = _data((15, 4), 7), _data((15, 5), 8), _data((15,), 9), _data((15,), 10)
    _compare(lambda *t: _flat(*lm.lstm_cell(*t)), [x, h, c, w4, u4, b4], what="lstm_cell")
    _compare(lambda *t: lm.gru_cell(*t), [x, h, w3, u3, b3, bh3], what="gru_cell")


@needs_cuda
def test_recurrent_device_errors_are_clear():
    with pytest.raises(ValueError, match="different devices"):
        lm.lstm(lm.zeros((2, 3, 4), device="cuda"), lm.zeros((2, 3)), None, lm.zeros((12, 4), device="cuda"),
                lm.zeros((12, 3), device="cuda"), lm.zeros(12, device="cuda"))


# ---- conv --------------------------------------------------------------------------------------

CONV = [
    # name, x shape, w shape, kwargs
    ("plain", (2, 3, 9, 11), (5, 3, 3, 2), {}),
    ("stride_pad_dilation", (2, 3, 10, 9), (4, 3, 3, 3), {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2)}),
    ("same_stride2", (1, 4, 9, 8), (6, 4, 4, 3), {"stride": 2, "padding": "same"}),
    ("groups", (2, 6, 7, 7), (4, 3, 3, 3), {"groups": 2, "padding": 1}),
    ("depthwise", (1, 3, 6, 5), (3, 1, 3, 3), {"groups": 3}),
    ("wide", (1, 2, 5, 5), (70, 2, 1, 1), {}),
]


@needs_cuda
@pytest.mark.parametrize("name,xs,ws,kw", CONV, ids=[c[0] for c in CONV])
def test_conv2d_matches_cpu(name, xs, ws, kw):
    arrays = [_data(xs, 1), _data(ws, 2), _data((ws[0],), 3)]
    _compare(lambda x, w, b: lm.conv2d(x, w, b, **kw), arrays, what=name)
    _compare(lambda x, w, b: lm.conv2d(x, w, b, **kw), arrays, "float64", [RTOL64] * 4, what=f"{name} float64")


@needs_cuda
def test_conv_family_on_device():
    _compare(lambda x, w: lm.conv1d(x, w, stride=2, padding=1), [_data((2, 3, 13), 1), _data((4, 3, 3), 2)],
             what="conv1d")
    _compare(lambda x, w: lm.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
             [_data((1, 3, 4, 5), 3), _data((3, 2, 3, 3), 4)], what="conv_transpose2d")
    _compare(lambda x, w: lm.conv2d(x, w, padding=1), [_data((1, 3, 6, 7), 5), _data((4, 3, 3, 3), 6)],
             dtype="bfloat16", rtols=[2.0**-8] * 3, what="bfloat16 conv2d")


# bfloat16 or float16 x and w (one dtype) run the forward on the tensor-core kernels (mma.sync,
# fp32 accumulation; with C % 8 == 0 per group their tiles arrive by 16-byte cp.async,
# otherwise element by element), all groups in one launch; with the output in that dtype too
# (no float32 bias) both gradients do as well (cp.async also needs K % 8 == 0 per group; the
# weight gradient splits its reduction over the 480 pixels of tensor_cores_split_k in 3 parts).
# Tolerance: x, w and grad_out hold 16-bit values on both devices (grad_out because the output,
# whose gradient it is, has that dtype), so every product is exact in fp32 and both devices sum
# the same exact products in fp32, in different orders (a relative difference of a few 2^-24
# over these short sums), then round once to the 16-bit output or gradient dtype. The results
# are equal or one rounding step apart, and one step (an ulp) is at most 2 eps of the largest
# magnitude.
CONV_HALF = [
    # name, x shape, w shape, kwargs, dtype, rtol
    ("tensor_cores_cp_async", (2, 8, 7, 9), (5, 8, 3, 3), {"padding": 1}, "bfloat16", 2 * EPS["bfloat16"]),
    ("tensor_cores_cp_async_grads", (2, 8, 7, 9), (16, 8, 3, 3), {"padding": 1, "stride": (1, 2)}, "bfloat16",
     2 * EPS["bfloat16"]),
    ("tensor_cores_split_k", (2, 8, 16, 15), (8, 8, 3, 3), {"padding": 1}, "bfloat16", 2 * EPS["bfloat16"]),
    ("tensor_cores_two_channel_tiles", (1, 16, 6, 5), (70, 16, 3, 3), {"stride": (2, 1), "padding": "same"},
     "bfloat16", 2 * EPS["bfloat16"]),
    ("tensor_cores_gathered", (2, 3, 9, 8), (4, 3, 3, 2), {"stride": 2, "dilation": (1, 2), "padding": (1, 0)},
     "bfloat16", 2 * EPS["bfloat16"]),
    ("tensor_cores_groups", (1, 16, 5, 6), (16, 8, 3, 3), {"groups": 2, "padding": 1}, "bfloat16",
     2 * EPS["bfloat16"]),
    ("tensor_cores_float16", (2, 8, 5, 7), (8, 8, 3, 3), {"padding": 1}, "float16", 2 * EPS["float16"]),
    ("tensor_cores_float16_gathered", (2, 8, 5, 7), (5, 8, 2, 3), {"padding": (1, 0), "dilation": 2}, "float16",
     2 * EPS["float16"]),
    ("tensor_cores_float16_depthwise", (2, 6, 6, 5), (6, 1, 3, 3), {"groups": 6, "padding": 1}, "float16",
     2 * EPS["float16"]),
]


@needs_cuda
@pytest.mark.parametrize("name,xs,ws,kw,dtype,rtol", CONV_HALF, ids=[c[0] for c in CONV_HALF])
def test_half_conv2d_matches_cpu(name, xs, ws, kw, dtype, rtol):
    arrays = [_data(xs, 1), _data(ws, 2), _data((ws[0],), 3)]
    _compare(lambda x, w, b: lm.conv2d(x, w, b, **kw), arrays, dtype, [rtol] * 4, what=name)


@needs_cuda
def test_bfloat16_conv2d_output_dtype_and_mixed_fallback():
    x, w = _data((1, 8, 5, 6), 1), _data((3, 8, 3, 3), 2)
    for bias_dtype, want in [(None, "bfloat16"), ("bfloat16", "bfloat16"), ("float32", "float32")]:
        for device in ["cpu", "cuda"]:
            b = None if bias_dtype is None else lm.tensor(_data((3,), 3), device=device).astype(bias_dtype)
            out = lm.conv2d(lm.tensor(x, device=device).astype("bfloat16"),
                            lm.tensor(w, device=device).astype("bfloat16"), b, padding=1)
            assert out.dtype == want, (bias_dtype, device, out.dtype)
    # bfloat16 x with a float32 w promotes to float32 and takes the FMA kernel.
    _compare(lambda x, w: lm.conv2d(x.astype("bfloat16"), w, padding=1), [x, w], what="bfloat16 x, float32 w")
    # A float32 bias makes the output float32: the forward still runs on tensor cores (exact
    # products, fp32 sums: 1e-5), but grad_out is a genuine float32, so the gradients run on the
    # FMA kernels; x.grad and w.grad are then rounded to bfloat16 (one step: 2 eps).
    b = _data((3,), 3)
    _compare(lambda x, w, b: lm.conv2d(x.astype("bfloat16"), w.astype("bfloat16"), b, padding=1), [x, w, b],
             rtols=[RTOL, 2 * EPS["bfloat16"], 2 * EPS["bfloat16"], RTOL], what="bfloat16 x and w, float32 bias")


@needs_cuda
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_conv_gradient_ops_on_tensor_cores(dtype):
    # conv2d_input_grad, conv2d_weight_grad and conv_transpose2d with both operands in one 16-bit
    # dtype run the tensor-core dgrad / wgrad kernels; tolerance as for CONV_HALF.
    x, w, gy = _data((2, 8, 7, 6), 1), _data((16, 8, 3, 3), 2), _data((2, 16, 4, 6), 3)
    kw = {"padding": 1, "stride": (2, 1)}
    rtol = 2 * EPS[dtype]
    _compare(lambda gy, w: lm.conv2d_input_grad(gy, w, (2, 8, 7, 6), **kw), [gy, w], dtype, [rtol] * 3,
             what=f"{dtype} conv2d_input_grad")
    _compare(lambda x, gy: lm.conv2d_weight_grad(x, gy, (16, 8, 3, 3), **kw), [x, gy], dtype, [rtol] * 3,
             what=f"{dtype} conv2d_weight_grad")
    _compare(lambda x, w: lm.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
             [_data((1, 8, 4, 5), 4), _data((8, 8, 3, 3), 5)], dtype, [rtol] * 3, what=f"{dtype} conv_transpose2d")


@needs_cuda
def test_conv_double_backward_on_device():
    def fn(x, w):
        y = lm.conv2d(x, w, padding=1)
        (gx,) = lm.autograd.grad(lm.sum(y * y), [x], create_graph=True)
        return gx

    _compare(fn, [_data((1, 2, 5, 6), 1), _data((3, 2, 3, 3), 2)], what="conv2d double backward")


@needs_cuda
def test_conv_device_errors_are_clear():
    with pytest.raises(ValueError, match="different devices"):
        lm.conv2d(lm.zeros((1, 2, 5, 5), device="cuda"), lm.zeros((3, 2, 3, 3)))
    # Channel tiles go on grid.y (at most 65535): beyond that a ValueError, not a failed launch.
    c = 65535 * 64 + 1
    with pytest.raises(ValueError, match="more than 65535 tiles"):
        lm.conv2d_input_grad(lm.zeros((1, 1, 1, 1), device="cuda"), lm.zeros((1, c, 1, 1), device="cuda"),
                             (1, c, 1, 1))


# ---- pooling -----------------------------------------------------------------------------------

POOL = [
    # name, fn, x shape
    ("max", lambda x: lm.max_pool2d(x, 3, stride=2, padding=1), (2, 3, 9, 8)),
    ("max_overlap", lambda x: lm.max_pool2d(x, (2, 3), stride=1), (1, 2, 5, 7)),
    ("avg_pad", lambda x: lm.avg_pool2d(x, 3, stride=2, padding=1), (2, 3, 9, 8)),
    ("avg_exclude_pad", lambda x: lm.avg_pool2d(x, (3, 2), stride=(1, 2), padding=1, count_include_pad=False),
     (1, 2, 6, 7)),
    ("max_1d", lambda x: lm.max_pool1d(x, 3, stride=2), (2, 3, 11)),
    ("avg_1d", lambda x: lm.avg_pool1d(x, 2), (2, 3, 11)),
    ("global_avg", lambda x: lm.global_avg_pool2d(x), (2, 3, 5, 4)),
]


@needs_cuda
@pytest.mark.parametrize("name,fn,shape", POOL, ids=[c[0] for c in POOL])
def test_pooling_matches_cpu(name, fn, shape):
    _compare(fn, [_data(shape, 1)], what=name)
    _compare(fn, [_data(shape, 2)], "float64", [RTOL64] * 2, what=f"{name} float64")


@needs_cuda
def test_max_pool_nan_wins_on_device():
    x = _data((1, 1, 4, 4), 1)
    x[0, 0, 1, 1] = np.nan
    got = lm.max_pool2d(lm.tensor(x, device="cuda"), 2).cpu().numpy()
    np.testing.assert_array_equal(np.isnan(got), [[[[True, False], [False, False]]]])


# ---- a Keras model moved to the device -------------------------------------------------------

def _model_loss_and_grads(device):
    lm.random.seed(7)
    inputs = lm.Input((6, 6, 2))
    x = lm.layers.Conv2D(3, 3, padding="same", activation="relu")(inputs)
    x = lm.layers.Reshape((6, 18))(x)
    x = lm.layers.LSTM(8, return_sequences=True)(x)
    x = lm.layers.MultiHeadAttention(num_heads=2, key_dim=4)([x, x])
    outputs = lm.layers.Dense(1)(lm.layers.Flatten()(x))
    model = lm.Model(inputs, outputs)
    model.to(device)
    xb = lm.tensor(_data((3, 6, 6, 2), 1), device=device)
    yb = lm.tensor(_data((3, 1), 2), device=device)
    weights = model.trainable_weights
    assert all(w.device.startswith(device) for w in weights)

    def loss_of():
        return lm.mean(lm.square(model(xb, training=True) - yb))

    loss = loss_of()
    loss.backward()
    grads = [w.grad.cpu().numpy() for w in weights]
    with lm.no_grad():
        for w in weights:
            w -= 0.1 * w.grad
    return loss.item(), loss_of().item(), grads


@needs_cuda
def test_keras_model_to_cuda_matches_cpu_for_a_training_step():
    cpu = _model_loss_and_grads("cpu")
    dev = _model_loss_and_grads("cuda")
    _close(dev[0], cpu[0], what="loss")
    _close(dev[1], cpu[1], what="loss after one SGD step")
    # The key projection's bias cancels in the softmax: its exact gradient is 0 and both sides
    # hold rounding noise (~1e-10), so every gradient is measured against the largest one.
    scale = max(float(np.max(np.abs(c))) for c in cpu[2])
    for i, (d, c) in enumerate(zip(dev[2], cpu[2])):
        np.testing.assert_allclose(d, c, rtol=0, atol=RTOL * scale, err_msg=f"gradient {i}")


# ---- thread order ------------------------------------------------------------------------------

def seed_workload():
    """One case of each fused family; prints the largest error relative to each tolerance."""
    worst = 0.0
    cases = [
        (lambda q, k, v: lm.scaled_dot_product_attention(q, k, v, causal=True),
         [_data((1, 21, 64), 1, -1, 1), _data((1, 21, 64), 2, -1, 1), _data((1, 21, 64), 3, -1, 1)],
         "bfloat16", 4 * EPS["bfloat16"]),
        (lambda q, k, v: lm.scaled_dot_product_attention(
            q, k, v, mask=lm.tensor(_prefix_mask((21, 6), 21)[:, None, None, :], device=q.device)),
         [_data((2, 1, 21, 64), 4, -1, 1), _data((2, 1, 21, 64), 5, -1, 1), _data((2, 1, 21, 64), 6, -1, 1)],
         "float16", 4 * EPS["float16"]),
        (lambda x, h, c, w, u, b: _flat(*lm.lstm(x, h, c, w, u, b, mask=lm.tensor(_mask(9, 3, 5), device=x.device))),
         _rnn_arrays("lstm", 9, 3, 3, 35, 1), "float32", RTOL),
        (lambda x, h, w, u, b, bh: _flat(*lm.gru(x, h, w, u, b, bh)), _rnn_arrays("gru", 3, 3, 3, 35, 1), "float32",
         RTOL),
        (lambda x, w: lm.conv2d(x, w, stride=2, padding=1), [_data((2, 3, 9, 7), 1), _data((4, 3, 3, 3), 2)],
         "float32", RTOL),
        (lambda x, w: lm.conv2d(x, w, padding=1), [_data((2, 8, 6, 5), 3), _data((5, 8, 3, 3), 4)], "bfloat16",
         2 * EPS["bfloat16"]),
        (lambda x, w: lm.conv2d(x, w, padding=1, groups=2), [_data((1, 16, 6, 5), 5), _data((16, 8, 3, 3), 6)],
         "float16", 2 * EPS["float16"]),
    ]
    for fn, arrays, dtype, tol in cases:
        cpu = _run(fn, arrays, "cpu", dtype)
        dev = _run(fn, arrays, "cuda", dtype)
        for c, d in zip(cpu, dev):
            worst = max(worst, float(np.max(np.abs(d - c)) / max(np.max(np.abs(c)), 1e-30)) / tol)
    print(f"worst {worst:.3e}")


@needs_cuda
@pytest.mark.parametrize("seed", [1, 2])
def test_fused_kernels_under_thread_order_seeds(seed):
    stdout = run_seeded("test_cuda_emulated_fused", "seed_workload", seed)
    assert float(stdout.split("worst")[-1]) <= 1.0, stdout  # every case within its tolerance
