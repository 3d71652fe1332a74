"""The direct depthwise conv kernels (cuda/kernels/conv.cu) against the CPU op.

A conv whose groups each have one input channel (groups == C_in, K = C_out / groups filters per
group) runs conv2d_depthwise_{forward,input,weight}_kernel instead of the implicit GEMMs, in
float32, float64, bfloat16 and float16. Every case compares the output and the gradients of x,
w and the bias with the CPU op, and checks through lamina.cuda.conv_path_counts() which path
the device took. Shapes are tiny and ragged (the emulator runs each CUDA thread as a fiber).

Tolerances: float32 within 1e-5 relative to the largest reference magnitude (summation orders
differ); float64 within 1e-10 (orders only). bfloat16/float16: x, w and grad_out hold 16-bit
values on both devices, so every product is exact in fp32 and both devices sum the same
products in fp32 in different orders, then round once to the 16-bit dtype: at most one
rounding step apart, i.e. 2 eps of the largest magnitude (as for the tensor-core conv tests).
"""

import hashlib

import numpy as np
import pytest

import lamina as lm

from cuda_testing import close, needs_cuda, outputs_and_grads, run_seeded, uniform

RTOL = 1e-5
RTOL64 = 1e-10
EPS = {"bfloat16": 2.0**-8, "float16": 2.0**-11}

# name, x shape, w shape, kwargs; every one depthwise (w's second axis is 1, groups = C_in > 1).
DEPTHWISE = [
    ("k1_3x3", (2, 5, 7, 9), (5, 1, 3, 3), {"groups": 5, "padding": 1}),
    ("k2_5x3", (2, 5, 7, 9), (10, 1, 5, 3), {"groups": 5, "padding": (2, 1)}),
    ("k1_stride2", (2, 5, 7, 9), (5, 1, 3, 3), {"groups": 5, "stride": 2, "padding": 1}),
    ("k2_stride_2x1_valid", (2, 3, 8, 7), (6, 1, 3, 3), {"groups": 3, "stride": (2, 1)}),
    ("k1_dilation2", (2, 5, 9, 8), (5, 1, 3, 3), {"groups": 5, "dilation": 2, "padding": 2}),
    ("k2_dilation_stride", (1, 4, 9, 10), (8, 1, 3, 2), {"groups": 4, "dilation": (2, 3), "stride": 2, "padding": 1}),
    ("k1_asymmetric_padding", (2, 5, 7, 9), (5, 1, 3, 3), {"groups": 5, "padding": ((0, 2), (1, 0))}),
    ("k2_same_even_kernel", (2, 3, 7, 6), (6, 1, 4, 2), {"groups": 3, "padding": "same"}),
    ("k1_same_stride2", (1, 5, 9, 7), (5, 1, 5, 3), {"groups": 5, "stride": 2, "padding": "same"}),
    ("k1_1x1", (2, 6, 4, 5), (6, 1, 1, 1), {"groups": 6}),
    # More than 9 taps: the weight gradient takes its taps in chunks of 9 (here 2 chunks).
    ("k1_7x2_taps_in_two_chunks", (1, 3, 9, 6), (3, 1, 7, 2), {"groups": 3, "padding": (3, 1)}),
    # 40 channels: two 32-lane channel tiles in the weight gradient.
    ("k1_two_channel_tiles", (1, 40, 4, 5), (40, 1, 3, 3), {"groups": 40, "padding": 1}),
    # 2 x 13 x 13 = 338 output pixels: the weight gradient splits them in 2 slices (at least
    # 128 each) and adds the slices' workspace in order.
    ("k1_weight_grad_split", (2, 3, 13, 13), (3, 1, 3, 3), {"groups": 3, "padding": 1}),
    ("k2_weight_grad_split_3", (2, 2, 14, 15), (4, 1, 3, 3), {"groups": 2, "padding": 1}),
]


def _compare(fn, arrays, dtype="float32", rtol=RTOL, what=""):
    cpu = outputs_and_grads(fn, arrays, "cpu", dtype)
    dev = outputs_and_grads(fn, arrays, "cuda", dtype)
    for i, (c, d) in enumerate(zip(cpu, dev)):
        close(d, c, rtol, f"{what} {dtype} {'output' if i == 0 else f'grad {i - 1}'}", elementwise=False)


def _paths_taken(fn):
    """How many conv passes fn ran on each device path."""
    before = lm.cuda.conv_path_counts()
    fn()
    after = lm.cuda.conv_path_counts()
    return {k: after[k] - before[k] for k in after}


def _data(shape, seed):
    return uniform(shape, seed)


@needs_cuda
@pytest.mark.parametrize("name,xs,ws,kw", DEPTHWISE, ids=[c[0] for c in DEPTHWISE])
def test_depthwise_conv2d_matches_cpu(name, xs, ws, kw):
    arrays = [_data(xs, 1), _data(ws, 2), _data((ws[0],), 3)]

    def both():
        _compare(lambda x, w, b: lm.conv2d(x, w, b, **kw), arrays, what=name)
        _compare(lambda x, w, b: lm.conv2d(x, w, b, **kw), arrays, "float64", RTOL64, what=name)

    # Per dtype one forward and one backward pass (for dx and dw together), all depthwise.
    assert _paths_taken(both) == {"depthwise": 4, "implicit_gemm": 0}


@needs_cuda
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_depthwise_conv2d_matches_cpu(dtype):
    # No bias: the output keeps the 16-bit dtype, so the gradients run on 16-bit operands too.
    for name, xs, ws, kw in [DEPTHWISE[1], DEPTHWISE[5], DEPTHWISE[13]]:
        arrays = [_data(xs, 1), _data(ws, 2)]
        taken = _paths_taken(lambda: _compare(lambda x, w: lm.conv2d(x, w, **kw), arrays, dtype, 2 * EPS[dtype],
                                              what=name))
        assert taken == {"depthwise": 2, "implicit_gemm": 0}, (name, taken)


@needs_cuda
def test_depthwise_conv1d_and_gradient_ops():
    def ops():
        _compare(lambda x, w, b: lm.conv1d(x, w, b, stride=2, padding=2, dilation=2, groups=4),
                 [_data((2, 4, 13), 1), _data((8, 1, 3), 2), _data((8,), 3)], what="conv1d")
        gy, w = _data((2, 6, 4, 5), 4), _data((6, 1, 3, 3), 5)
        _compare(lambda gy, w: lm.conv2d_input_grad(gy, w, (2, 3, 7, 9), stride=2, padding=1, groups=3), [gy, w],
                 what="conv2d_input_grad")
        _compare(lambda x, gy: lm.conv2d_weight_grad(x, gy, (6, 1, 3, 3), stride=2, padding=1, groups=3),
                 [_data((2, 3, 7, 9), 6), gy], what="conv2d_weight_grad")
        # Transposed: its forward is conv2d's input gradient with groups == C_out, one channel each.
        _compare(lambda x, w: lm.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1, groups=3),
                 [_data((1, 3, 4, 5), 7), _data((3, 1, 3, 3), 8)], what="conv_transpose2d")

    taken = _paths_taken(ops)
    assert taken["implicit_gemm"] == 0 and taken["depthwise"] > 0, taken


@needs_cuda
@pytest.mark.parametrize("name,xs,ws,kw", [
    # Two input channels per group is not depthwise.
    ("groups_of_two_channels", (2, 6, 7, 9), (6, 2, 3, 3), {"groups": 3, "padding": 1}),
    # One input channel but one group: the CPU op takes its GEMM path too (padding taps are
    # multiplied as zeros there, so a non-finite weight gives NaN), and the device follows it.
    ("one_channel_one_group", (2, 1, 6, 5), (3, 1, 3, 3), {"padding": 1}),
])
def test_other_convs_keep_the_implicit_gemm(name, xs, ws, kw):
    arrays = [_data(xs, 1), _data(ws, 2), _data((ws[0],), 3)]
    taken = _paths_taken(lambda: _compare(lambda x, w, b: lm.conv2d(x, w, b, **kw), arrays, what=name))
    assert taken == {"depthwise": 0, "implicit_gemm": 2}


@needs_cuda
def test_depthwise_padding_taps_are_skipped_like_the_cpu():
    # An infinite weight whose tap reads only padding for the first output row: the CPU's
    # depthwise loops skip that tap there (finite outputs, inf below), and so must the device.
    x, w = _data((1, 3, 5, 6), 1), _data((3, 1, 3, 3), 2)
    w[1, 0, 0, 0] = np.inf
    cpu = lm.conv2d(lm.tensor(x), lm.tensor(w), groups=3, padding=1).numpy()
    dev = lm.conv2d(lm.tensor(x, device="cuda"), lm.tensor(w, device="cuda"), groups=3, padding=1).cpu().numpy()
    assert np.isfinite(cpu[0, 1, 0]).all() and not np.isfinite(cpu[0, 1, 1:, 1:]).any()
    np.testing.assert_array_equal(np.isfinite(dev), np.isfinite(cpu))
    finite = np.isfinite(cpu)
    close(dev[finite], cpu[finite], RTOL, "finite outputs", elementwise=False)


@needs_cuda
def test_depthwise_device_errors_are_clear():
    x = lm.zeros((1, 4, 5, 5), device="cuda")
    with pytest.raises(ValueError, match="groups"):
        lm.conv2d(x, lm.zeros((4, 1, 3, 3), device="cuda"), groups=3)
    with pytest.raises(ValueError, match="channels"):
        lm.conv2d(x, lm.zeros((4, 1, 3, 3), device="cuda"), groups=2)
    with pytest.raises(TypeError):
        lm.conv2d(x.astype("int32"), lm.zeros((4, 1, 3, 3), device="cuda").astype("int32"), groups=4)


def seed_workload():
    """A depthwise forward and backward (stride, dilation, K = 2; the weight gradient splits its
    3 x 13 x 7 = 273 output pixels in 2 slices); prints the largest relative error against the
    CPU and a digest of the device results."""
    arrays = [_data((3, 4, 14, 13), 11), _data((8, 1, 3, 3), 12), _data((8,), 13)]
    fn = lambda x, w, b: lm.conv2d(x, w, b, groups=4, stride=(1, 2), dilation=(2, 1), padding=((2, 1), 1))  # noqa: E731
    cpu = outputs_and_grads(fn, arrays, "cpu")
    dev = outputs_and_grads(fn, arrays, "cuda")
    worst = max(float(np.max(np.abs(d - c)) / np.max(np.abs(c))) for c, d in zip(cpu, dev))
    digest = hashlib.sha256(b"".join(d.tobytes() for d in dev)).hexdigest()
    print(f"digest {digest} worst {worst:.3e}")


@needs_cuda
def test_depthwise_under_thread_order_seeds_is_deterministic():
    digests = set()
    for seed in (1, 2, 3):
        stdout = run_seeded("test_cuda_emulated_depthwise", "seed_workload", seed)
        assert float(stdout.split("worst")[-1]) < RTOL, stdout
        digests.add(stdout.split("digest")[-1].split()[0])
    # No atomics and fixed reduction orders: bit-identical results whatever the thread order.
    assert len(digests) == 1, digests
