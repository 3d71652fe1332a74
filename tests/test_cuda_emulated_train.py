"""The CUDA training ops against the CPU: layer norm, batch norm, the cross-entropy losses,
random draws and the fused optimizer updates, and a small Keras model trained on both.

Runs when the extension has the CUDA backend, real or on the SIMT emulator
(``scripts/test_cuda_emulated.sh`` builds the emulated one); otherwise the file skips.
Shapes are small and ragged because the emulator runs each CUDA thread as a fiber.

Tolerances: values and gradients of the norm and loss kernels agree with the CPU within 1e-5
relative to the largest magnitude of the reference (the summation order differs). Random
draws and optimizer updates are compared bit for bit: both devices evaluate the same
expressions with the same roundings (cuda/kernels/random.cu, optim.cu).
"""

import numpy as np
import pytest

import lamina as lm

from cuda_testing import OPTIMIZER_CASES, close as _close, needs_cuda, optimizer_case, run_seeded
from cuda_testing import uniform as _data

RTOL = 1e-5


def _run(fn, arrays, device, grad_mask):
    """fn's output and the gradients of sum(out * w) for a fixed w, as float64 numpy arrays.

    grad_mask[i] says whether input i requires grad; integer inputs never do.
    """
    xs = [lm.tensor(a, requires_grad=bool(g), device=device) for a, g in zip(arrays, grad_mask)]
    out = fn(*xs)
    result = [out.cpu().astype("float64").numpy()]
    if any(grad_mask):
        w = lm.tensor(np.linspace(-1, 1, max(out.size, 1), dtype=np.float32)[: out.size].reshape(out.shape),
                      dtype=out.dtype, device=device)
        lm.sum(out * w).backward()
        result += [x.grad.cpu().astype("float64").numpy() for x in xs if x.requires_grad]
    return result


def _compare(name, fn, arrays, grad_mask):
    cpu = _run(fn, arrays, "cpu", grad_mask)
    dev = _run(fn, arrays, "cuda", grad_mask)
    assert len(cpu) == len(dev)
    worst = 0.0
    for i, (c, d) in enumerate(zip(cpu, dev)):
        _close(d, c, what=f"{name} {'output' if i == 0 else f'grad {i - 1}'}")
        worst = max(worst, float(np.max(np.abs(d - c), initial=0.0) / max(np.max(np.abs(c), initial=0.0), 1e-30)))
    return worst


def _labels(shape, classes, seed):
    return np.random.default_rng(seed).integers(0, classes, shape).astype(np.int64)


def _probs(shape, seed):
    p = np.random.default_rng(seed).uniform(0.0, 1.0, shape)
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


# name, fn, arrays, which inputs require grad
NORM_CASES = [
    ("ln_affine", lambda x, g, b: lm.layer_norm(x, g, b), [_data((5, 13), 1), _data((13,), 2), _data((13,), 3)],
     [1, 1, 1]),
    ("ln_long_rows", lambda x, g: lm.layer_norm(x, g), [_data((3, 150), 4), _data((150,), 5)], [1, 1]),
    ("ln_two_axes", lambda x, b: lm.layer_norm(x, None, b, axis=1), [_data((4, 3, 7), 6), _data((3, 7), 7)], [1, 1]),
    ("ln_plain_f64", lambda x: lm.layer_norm(x, eps=1e-3), [_data((6, 9), 8, dtype=np.float64)], [1]),
    ("bn_nc", lambda x, g, b: lm.batch_norm(x, g, b, training=True), [_data((9, 5), 9), _data((5,), 10),
                                                                        _data((5,), 11)], [1, 1, 1]),
    ("bn_nchw", lambda x, g, b: lm.batch_norm(x, g, b, training=True),
     [_data((4, 3, 2, 5), 12), _data((3,), 13), _data((3,), 14)], [1, 1, 1]),
    ("bn_channels_last", lambda x, g: lm.batch_norm(x, g, training=True, axis=-1),
     [_data((3, 50, 6), 15), _data((6,), 16)], [1, 1]),
    ("bn_eval", lambda x, g, b, m, v: lm.batch_norm(x, g, b, m, v, training=False),
     [_data((7, 4), 17), _data((4,), 18), _data((4,), 19), _data((4,), 20), _data((4,), 21, 0.5, 2.0)],
     [1, 1, 1, 0, 0]),
]

LOSS_CASES = [
    ("sce_sparse_mean", lambda x, y: lm.softmax_cross_entropy(x, y), [_data((6, 7), 1, -4, 4), _labels((6,), 7, 2)],
     [1, 0]),
    ("sce_sparse_weighted", lambda x, y, w: lm.softmax_cross_entropy(x, y, w),
     [_data((2, 3, 5), 3, -4, 4), _labels((2, 3), 5, 4), _data((5,), 5, 0.2, 2.0)], [1, 0, 0]),
    ("sce_sparse_none_long", lambda x, y: lm.softmax_cross_entropy(x, y, reduction="none"),
     [_data((3, 150), 6, -4, 4), _labels((3,), 150, 7)], [1, 0]),
    ("sce_dense_sum", lambda x, t: lm.softmax_cross_entropy(x, t, reduction="sum"),
     [_data((5, 9), 8, -4, 4), _probs((5, 9), 9)], [1, 1]),
    ("sce_dense_weighted", lambda x, t, w: lm.softmax_cross_entropy(x, t, w),
     [_data((4, 6), 10, -4, 4), _probs((4, 6), 11), _data((6,), 12, 0.2, 2.0)], [1, 0, 0]),
    ("sce_f64", lambda x, y: lm.softmax_cross_entropy(x, y, reduction="sum"),
     [_data((5, 33), 13, -4, 4, np.float64), _labels((5,), 33, 14)], [1, 0]),
    ("bce_mean", lambda x, t: lm.binary_cross_entropy_with_logits(x, t), [_data((5, 7), 15, -6, 6),
                                                                         _data((5, 7), 16, 0, 1)], [1, 1]),
    ("bce_none", lambda x, t: lm.binary_cross_entropy_with_logits(x, t, reduction="none"),
     [_data((300,), 17, -30, 30), _data((300,), 18, 0, 1)], [1, 0]),
]


@needs_cuda
@pytest.mark.parametrize("name,fn,arrays,grad_mask", NORM_CASES + LOSS_CASES,
                         ids=[c[0] for c in NORM_CASES + LOSS_CASES])
def test_training_op_matches_cpu(name, fn, arrays, grad_mask):
    _compare(name, fn, arrays, grad_mask)


SECOND_ORDER = [
    ("layer_norm", lambda x: lm.layer_norm(x, lm.full((5,), 1.5, device=x.device))),
    ("batch_norm", lambda x: lm.batch_norm(x, training=True)),
    ("sce_sparse", lambda x: lm.softmax_cross_entropy(x, lm.tensor([0, 4, 1, 2], device=x.device))),
    ("bce", lambda x: lm.binary_cross_entropy_with_logits(x, lm.full((4, 5), 0.25, device=x.device))),
]


@needs_cuda
@pytest.mark.parametrize("name,fn", SECOND_ORDER, ids=[c[0] for c in SECOND_ORDER])
def test_second_order_gradients_match_cpu(name, fn):
    # create_graph takes the composite backward made of ops, on the device too. The squares
    # are weighted: an unweighted sum of squares of a normalized row is constant up to eps,
    # so its gradient would be pure cancellation (values ~1e-4 of the terms' size, where
    # float32 rounding on either device is already 1e-6 of it).
    results = []
    w = _data((4, 5), 4)
    for dev in ("cpu", "cuda"):
        x = lm.tensor(_data((4, 5), 3), device=dev, requires_grad=True)
        lm.sum(fn(x) * fn(x) * lm.tensor(w, device=dev)).backward(create_graph=True)
        first = x.grad
        x.grad = None
        lm.sum(first * first).backward()
        results.append((first.detach().cpu().numpy(), x.grad.cpu().numpy()))
    for order, (c, d) in enumerate(zip(*results), start=1):
        _close(d, c, what=f"{name} order {order}")


@needs_cuda
@pytest.mark.parametrize("axis,shape", [(1, (6, 4, 3)), (-1, (5, 7))])
def test_batch_norm_running_stats_match_cpu(axis, shape):
    x = _data(shape, 3)
    channels = shape[axis]
    results = []
    for dev in ("cpu", "cuda"):
        rm = lm.tensor(_data((channels,), 4), device=dev)
        rv = lm.tensor(_data((channels,), 5, 0.5, 2.0), device=dev)
        xt = lm.tensor(x, device=dev)
        lm.batch_norm(xt, None, None, rm, rv, training=True, momentum=0.9, axis=axis)
        lm.batch_norm(xt * 2.0, None, None, rm, rv, training=True, momentum=0.9, axis=axis)
        results.append((rm.cpu().numpy(), rv.cpu().numpy()))
    for c, d, what in zip(results[0], results[1], ("running_mean", "running_var")):
        _close(d, c, what=what)


# Random draws: (name, fn(device)) drawn after the same seed on both devices.
DRAWS = [
    ("rand_f32", lambda dev: lm.rand(7, 3, device=dev)),
    ("randn_odd", lambda dev: lm.randn(13, device=dev)),
    ("uniform_f64", lambda dev: lm.uniform(-2.0, 3.0, (5, 5), dtype="float64", device=dev)),
    ("normal_f64", lambda dev: lm.normal(1.0, 0.5, (9,), dtype="float64", device=dev)),
    ("normal_bf16", lambda dev: lm.normal(0.0, 2.0, (11,), dtype="bfloat16", device=dev)),
    ("uniform_f16", lambda dev: lm.uniform(0.0, 4.0, (6,), dtype="float16", device=dev)),
    ("dropout_mask", lambda dev: lm.dropout_mask(lm.zeros((4, 9), device=dev), 0.3)),
]


def _bits(t):
    arr = t.cpu().astype("float64").numpy() if t.dtype == "bfloat16" else t.cpu().numpy()
    return arr.view(np.uint64 if arr.dtype == np.float64 else np.uint32 if arr.dtype == np.float32 else np.uint16)


@needs_cuda
@pytest.mark.parametrize("name,draw", DRAWS, ids=[d[0] for d in DRAWS])
def test_random_draws_are_bit_identical_to_cpu(name, draw):
    runs = []
    for dev in ("cpu", "cuda"):
        lm.random.seed(1234)
        first, second = draw(dev), draw(dev)  # the second checks that the generator advanced alike
        assert first.device.startswith(dev)
        runs.append([_bits(first), _bits(second)])
    for c, d in zip(*runs):
        np.testing.assert_array_equal(d, c, err_msg=name)
    assert not np.array_equal(runs[0][0], runs[0][1]), "two draws gave the same numbers"


@needs_cuda
def test_dropout_mask_statistics_on_device():
    lm.random.seed(7)
    mask = lm.dropout_mask(lm.zeros((40, 50), device="cuda"), 0.25).cpu().numpy()
    assert set(np.unique(mask)) <= {0.0, np.float32(1 / 0.75)}
    assert abs(float((mask == 0).mean()) - 0.25) < 0.03  # 2000 draws: ~3 standard deviations


def _optimize(kind, dtype, device, steps=3):
    fn, n_states = optimizer_case(kind)
    shapes = [(7, 5), (33,)]
    params = [lm.tensor(_data(s, i, dtype=dtype), device=device) for i, s in enumerate(shapes)]
    states = [[lm.zeros(s, dtype=str(np.dtype(dtype)), device=device) for s in shapes] for _ in range(n_states)]
    for t in range(1, steps + 1):
        grads = [lm.tensor(_data(s, 10 * t + i, dtype=dtype), device=device) for i, s in enumerate(shapes)]
        fn(params, grads, states, t)
    return [p.cpu().numpy() for p in params] + [x.cpu().numpy() for group in states for x in group]


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", OPTIMIZER_CASES)
def test_fused_optimizer_update_is_bit_identical_to_cpu(kind, dtype):
    cpu = _optimize(kind, dtype, "cpu")
    dev = _optimize(kind, dtype, "cuda")
    for i, (c, d) in enumerate(zip(cpu, dev)):
        np.testing.assert_array_equal(d, c, err_msg=f"{kind} tensor {i}")
    assert not np.array_equal(cpu[0], _data((7, 5), 0, dtype=dtype)), "the update changed nothing"


@needs_cuda
def test_training_ops_reject_mixed_devices():
    x = lm.tensor(_data((3, 4), 1), device="cuda")
    with pytest.raises(ValueError, match="gamma is on cpu"):
        lm.layer_norm(x, lm.ones(4))
    with pytest.raises(ValueError, match="running_mean is on cpu"):
        lm.batch_norm(x, None, None, lm.zeros(4), lm.ones(4, device="cuda"), training=False)
    with pytest.raises(ValueError, match="labels are on cpu"):
        lm.softmax_cross_entropy(x, lm.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="targets are on cpu"):
        lm.binary_cross_entropy_with_logits(x, lm.zeros((3, 4)))
    with pytest.raises(ValueError, match="gradient 0 is on cpu"):
        lm.sgd_step([x], [lm.zeros((3, 4))], lr=0.1)
    with pytest.raises(IndexError, match="label 4 is out of range"):
        lm.softmax_cross_entropy(x, lm.tensor([0, 4, 1], device="cuda"))


def _mlp(rate):
    # No weight whose true gradient is zero (a bias right before a batch norm, or a layer
    # norm's beta feeding one through a linear map): Adam would scale those gradients'
    # rounding noise up to full steps, and the two devices' noise differs.
    return lm.Sequential([
        lm.layers.Dense(16, use_bias=False, input_shape=(8,)),
        lm.layers.BatchNormalization(),
        lm.layers.Activation("relu"),
        lm.layers.Dense(12, activation="relu"),
        lm.layers.LayerNormalization(),
        lm.layers.Dropout(rate),
        lm.layers.Dense(4),
    ])


@needs_cuda
@pytest.mark.parametrize("rate", [0.0, 0.25])
def test_keras_mlp_trains_alike_on_cpu_and_cuda(rate):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 8)).astype(np.float32)
    y = rng.integers(0, 4, 24).astype(np.int64)
    lm.random.seed(5)
    weights = _mlp(rate).get_weights()
    histories, final = [], []
    for dev in ("cpu", "cuda"):
        model = _mlp(rate)
        model.set_weights(weights)
        model.to(dev)
        model.compile(optimizer=lm.optimizers.Adam(learning_rate=0.01),
                      loss=lm.losses.SparseCategoricalCrossentropy(from_logits=True))
        lm.random.seed(6)  # the same dropout masks on both devices
        losses = []
        for step in range(4):
            batch = slice(8 * (step % 3), 8 * (step % 3) + 8)
            xb, yb = lm.tensor(x[batch], device=dev), lm.tensor(y[batch], device=dev)
            model.reset_metrics()
            losses.append(model.train_step(xb, yb)["loss"])
        histories.append(losses)
        final.append(model.get_weights())
        assert all(w.device.startswith(dev) for w in model.weights)
    _close(histories[1], histories[0], what="losses")
    assert histories[0][-1] < histories[0][0]
    for c, d in zip(*final):
        _close(d, c, what="trained weights")


def test_layer_to_same_device_keeps_the_weights():
    model = _mlp(0.0)
    before = model.weights
    assert model.to("cpu") is model
    assert all(a is b for a, b in zip(model.weights, before))


@needs_cuda
def test_layer_to_moves_every_weight_and_attribute():
    layer = lm.layers.Dense(3)
    layer(lm.ones((1, 4)))  # builds on the host
    kernel = layer.kernel.numpy().copy()
    layer.to("cuda")
    assert layer.kernel.device.startswith("cuda") and layer.kernel.requires_grad
    assert layer.kernel is layer.weights[0]
    np.testing.assert_array_equal(layer.kernel.cpu().numpy(), kernel)
    assert layer(lm.ones((2, 4), device="cuda")).device.startswith("cuda")


def seed_workload():
    """A few training kernels; prints the largest relative error against the CPU and whether
    the draws and updates were bit-identical."""
    worst = 0.0
    for name, fn, arrays, grad_mask in [NORM_CASES[1], NORM_CASES[5], LOSS_CASES[2], LOSS_CASES[3]]:
        worst = max(worst, _compare(name, fn, arrays, grad_mask))
    exact = all(np.array_equal(c, d) for c, d in zip(_optimize("adamw_amsgrad", np.float32, "cpu"),
                                                     _optimize("adamw_amsgrad", np.float32, "cuda")))
    draws = []
    for dev in ("cpu", "cuda"):
        lm.random.seed(11)
        draws.append(lm.randn(301, device=dev).cpu().numpy())
    exact = exact and np.array_equal(draws[0], draws[1])
    print(f"exact {int(exact)} worst {worst:.3e}")


@needs_cuda
@pytest.mark.parametrize("seed", [1, 2])
def test_training_kernels_under_thread_order_seeds(seed):
    stdout = run_seeded("test_cuda_emulated_train", "seed_workload", seed)
    assert "exact 1" in stdout, stdout
    worst = float(stdout.split("worst")[-1])
    assert worst < RTOL, stdout
