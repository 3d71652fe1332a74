"""Multi-tensor optimizer updates on CUDA: every fusable parameter of one dtype in one launch.

The fused steps (sgd_step, adam_step, rmsprop_step, adagrad_step) gather their CUDA
parameters per (device, dtype) and update each group with one launch of
cuda/kernels/optim.cu's multi_tensor_update_kernel, which calls the same per-element
functions as the per-parameter kernels. So the results must equal the CPU kernel bit for
bit, over ragged sizes (1, 7, 33, 1000 elements, 2-D and 3-D, empty tensors), and a step must
add exactly one launch per dtype (lamina.cuda.kernel_launches()).

Runs when the extension has the CUDA backend, real or on the SIMT emulator
(``scripts/test_cuda_emulated.sh`` builds the emulated one); otherwise the file skips.
"""

import numpy as np
import pytest

import lamina as lm

from cuda_testing import needs_cuda, run_seeded
from cuda_testing import OPTIMIZER_CASES, optimizer_case
from cuda_testing import uniform as _data

SHAPES = [(1,), (7,), (33,), (1000,), (3, 11), (0,), (40, 25), (2, 3, 5), (4, 0)]


def _functional(kind, dtype, device, shapes=SHAPES, steps=3):
    """Params and states after `steps` fused updates, and the launches each step made."""
    fn, n_states = optimizer_case(kind)
    params = [lm.tensor(_data(s, i, dtype=dtype), device=device) for i, s in enumerate(shapes)]
    states = [[lm.zeros(s, dtype=str(np.dtype(dtype)), device=device) for s in shapes] for _ in range(n_states)]
    launches = []
    for t in range(1, steps + 1):
        grads = [lm.tensor(_data(s, 10 * t + i, dtype=dtype), device=device) for i, s in enumerate(shapes)]
        before = lm.cuda.kernel_launches() if device == "cuda" else 0
        fn(params, grads, states, t)
        launches.append(lm.cuda.kernel_launches() - before if device == "cuda" else 0)
    return [p.cpu().numpy() for p in params] + [x.cpu().numpy() for group in states for x in group], launches


def _assert_bit_equal(dev, cpu, what):
    assert len(dev) == len(cpu)
    for i, (d, c) in enumerate(zip(dev, cpu)):
        assert d.dtype == c.dtype and d.shape == c.shape, f"{what} tensor {i}"
        np.testing.assert_array_equal(d, c, err_msg=f"{what} tensor {i}")


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", OPTIMIZER_CASES)
def test_multi_tensor_step_is_bit_identical_to_cpu_in_one_launch(kind, dtype):
    cpu, _ = _functional(kind, dtype, "cpu")
    dev, launches = _functional(kind, dtype, "cuda")
    _assert_bit_equal(dev, cpu, kind)
    assert not np.array_equal(cpu[3], _data((1000,), 3, dtype=dtype)), "the update changed nothing"
    assert launches == [1, 1, 1]


@needs_cuda
@pytest.mark.parametrize("kind", ["sgd_momentum_l2", "adamw_amsgrad"])
def test_more_tensors_than_one_table_holds(kind):
    # 160 parameters exceed one launch's table (73 tensors for Adam, 106 for SGD in
    # float32): the step takes a launch per full table, still far fewer than 160.
    shapes = [(1 + (i * 7) % 13,) for i in range(160)]
    cpu, _ = _functional(kind, np.float32, "cpu", shapes, steps=2)
    dev, launches = _functional(kind, np.float32, "cuda", shapes, steps=2)
    _assert_bit_equal(dev, cpu, kind)
    expected = {"sgd_momentum_l2": 2, "adamw_amsgrad": 3}[kind]
    assert launches == [expected, expected]


@needs_cuda
def test_one_launch_per_dtype_and_the_rest_unchanged():
    # float32 and float64 parameters interleaved, plus a non-contiguous one (the composite
    # update, many launches of its own): compare everything with the CPU, and count the fused
    # launches on a list without the non-contiguous one.
    def run(device, with_view):
        rng = np.random.default_rng(3)
        arrays = [rng.uniform(-1, 1, s).astype(np.float32 if i % 2 else np.float64)
                  for i, s in enumerate([(5,), (33,), (3, 11), (7,), (1000,), (2, 9)])]
        params = [lm.tensor(a, device=device) for a in arrays]
        if with_view:
            params.append(lm.tensor(rng.uniform(-1, 1, (6, 4)).astype(np.float32), device=device).T)
        m = [lm.zeros(p.shape, dtype=p.dtype, device=device) for p in params]
        v = [lm.zeros(p.shape, dtype=p.dtype, device=device) for p in params]
        before = lm.cuda.kernel_launches()
        for t in (1, 2):
            grads = [lm.tensor(rng.uniform(-1, 1, p.shape), dtype=p.dtype, device=device) for p in params]
            if t == 2:
                before = lm.cuda.kernel_launches()
            lm.adam_step(params, grads, m, v, t, lr=0.01, weight_decay=0.01)
        launches = lm.cuda.kernel_launches() - before
        return [x.cpu().numpy() for x in params + m + v], launches

    for with_view in (False, True):
        cpu, _ = run("cpu", with_view)
        dev, launches = run("cuda", with_view)
        _assert_bit_equal(dev, cpu, f"mixed dtypes, view={with_view}")
        if not with_view:
            assert launches == 2


@needs_cuda
def test_a_parameter_listed_twice_is_updated_twice_in_order():
    def run(device):
        a = lm.tensor(_data((33,), 1), device=device)
        b = lm.tensor(_data((7,), 2), device=device)
        bufs = [lm.zeros(x.shape, device=device) for x in (a, b)]
        grads = [lm.tensor(_data(s, 5 + i), device=device) for i, s in enumerate([(33,), (7,), (33,)])]
        lm.sgd_step([a, b, a], grads, [bufs[0], bufs[1], bufs[0]], lr=0.1, momentum=0.9)
        return [x.cpu().numpy() for x in (a, b, *bufs)]

    _assert_bit_equal(run("cuda"), run("cpu"), "repeated parameter")


def _model_params(device):
    rng = np.random.default_rng(11)
    shapes = [(8, 16), (16,), (16, 16), (16,), (16, 12), (12,), (12, 12), (12,), (12, 4), (4,), (4,), (1,)]
    return [lm.tensor(rng.standard_normal(s).astype(np.float32), device=device) for s in shapes]


OPTIMIZER_CLASSES = {
    "SGD": lambda: lm.optimizers.SGD(learning_rate=0.05),
    "SGD momentum nesterov wd": lambda: lm.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True,
                                                          weight_decay=0.01),
    "Adam": lambda: lm.optimizers.Adam(learning_rate=0.01),
    "AdamW amsgrad": lambda: lm.optimizers.AdamW(learning_rate=0.01, amsgrad=True),
    "RMSprop centered momentum": lambda: lm.optimizers.RMSprop(learning_rate=0.01, momentum=0.9, centered=True),
    "Adagrad": lambda: lm.optimizers.Adagrad(learning_rate=0.1),
}


@needs_cuda
@pytest.mark.parametrize("name", list(OPTIMIZER_CLASSES))
def test_optimizer_step_on_twelve_parameters_is_one_launch(name):
    results = {}
    for device in ("cpu", "cuda"):
        params = _model_params(device)
        opt = OPTIMIZER_CLASSES[name]()
        launches = []
        for step in range(3):
            grads = [lm.tensor(_data(p.shape, 100 * step + i), device=device) for i, p in enumerate(params)]
            before = lm.cuda.kernel_launches()
            opt.apply(grads, params)
            launches.append(lm.cuda.kernel_launches() - before)
        results[device] = [p.cpu().numpy() for p in params]
    _assert_bit_equal(results["cuda"], results["cpu"], name)
    # The first step also creates the optimizer's state tensors (fills); after it, one launch.
    assert launches[1:] == [1, 1], launches


@needs_cuda
def test_keras_model_step_updates_all_weights_in_one_launch():
    layers = [lm.layers.Dense(16, activation="relu", input_shape=(8,))]
    layers += [lm.layers.Dense(16, activation="relu") for _ in range(4)] + [lm.layers.Dense(3)]
    model = lm.Sequential(layers)
    model.to("cuda")
    opt = lm.optimizers.Adam(learning_rate=0.01)
    x = lm.tensor(_data((5, 8), 1), device="cuda")
    variables = model.trainable_weights
    assert len(variables) == 12
    counts = []
    for _ in range(2):
        for w in variables:
            w.grad = None
        lm.sum(model(x) ** 2).backward()
        before = lm.cuda.kernel_launches()
        opt.apply([w.grad for w in variables], variables)
        counts.append(lm.cuda.kernel_launches() - before)
    assert counts[1] == 1, counts


def seed_workload():
    """A few multi-tensor steps on ragged shapes; prints how many tensors differ from the CPU."""
    mismatches = 0
    for kind in ("sgd_nesterov_decay", "adamw_amsgrad", "rmsprop_centered_momentum", "adagrad_l2"):
        for dtype in (np.float32, np.float64):
            cpu, _ = _functional(kind, dtype, "cpu", steps=2)
            dev, _ = _functional(kind, dtype, "cuda", steps=2)
            mismatches += sum(not np.array_equal(d, c) for d, c in zip(dev, cpu))
    print(f"mismatches {mismatches}")


@needs_cuda
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_multi_tensor_updates_under_thread_order_seeds(seed):
    stdout = run_seeded("test_cuda_emulated_optim_multi", "seed_workload", seed)
    assert stdout.split("mismatches")[-1].strip() == "0", stdout


@pytest.mark.skipif(lm.cuda.built, reason="the backend is built")
def test_kernel_launches_without_backend_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no CUDA support"):
        lm.cuda.kernel_launches()
