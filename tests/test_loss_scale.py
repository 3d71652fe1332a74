"""Dynamic loss scaling (LossScaleOptimizer) for float16 training: the scale's dynamics,
skipped steps, the updates it gives against a float32 reference, Model.compile wrapping
it in under 'mixed_float16', and its state in saved checkpoints."""

import numpy as np
import pytest

import lamina as lm
from lamina import mixed_precision
from lamina.optimizers import SGD, Adam, LossScaleOptimizer


def test_scale_halves_on_overflow_and_skips_the_step():
    w = lm.tensor([1.0, 2.0], requires_grad=True)
    opt = LossScaleOptimizer(SGD(learning_rate=0.1), initial_scale=8.0, dynamic_growth_steps=3)
    opt.apply([(lm.tensor([float("inf"), 1.0]), w)])
    assert w.tolist() == [1.0, 2.0] and opt.scale == 4.0 and opt.iterations == 0
    opt.apply([(lm.tensor([float("nan"), 1.0]), w)])
    assert w.tolist() == [1.0, 2.0] and opt.scale == 2.0
    opt.apply([(lm.tensor([4.0, 8.0]), w)])  # unscaled: [2, 4]; SGD: w -= 0.1 * g
    np.testing.assert_allclose(w.numpy(), [0.8, 1.6], rtol=1e-6)
    assert opt.iterations == 1 and opt.inner_optimizer.iterations == 1


def test_scale_grows_after_finite_steps_and_never_drops_below_one():
    w = lm.tensor([1.0], requires_grad=True)
    opt = LossScaleOptimizer(SGD(learning_rate=0.0), initial_scale=2.0, dynamic_growth_steps=2)
    for expected in (2.0, 4.0, 4.0, 8.0):
        opt.apply([(lm.tensor([1.0]), w)])
        assert opt.scale == expected
    for _ in range(6):
        opt.apply([(lm.tensor([float("inf")]), w)])
    assert opt.scale == 1.0


class Recording(SGD):
    """Keeps the gradients it is asked to apply."""

    def apply(self, grads_and_vars, variables=None):
        self.seen = [g.numpy().astype(np.float64) for g, _ in grads_and_vars]


def test_small_float16_gradients_survive_with_scaling():
    # d(loss)/dw = 1e-8 * sum of x's column in float16: the float16 gradient flowing back
    # through the product is 1e-8 per element, below float16's smallest subnormal (~6e-8),
    # so without scaling it underflows to zero.
    x = np.full((4, 3), 0.5, np.float32)
    w0 = np.full((3, 1), 0.25, np.float32)

    def gradient(scaled):
        w = lm.tensor(w0, requires_grad=True)
        inner = Recording()
        opt = LossScaleOptimizer(inner, initial_scale=2.0**20) if scaled else inner
        loss = lm.sum(lm.tensor(x).astype("float16") @ w.astype("float16")).astype("float32") * 1e-8
        (opt.scale_loss(loss) if scaled else loss).backward()
        opt.apply([(w.grad, w)])
        return inner.seen[0]

    want = np.full((3, 1), 1e-8 * 4 * 0.5)  # float64 reference of d(loss)/dw
    assert np.all(gradient(scaled=False) == 0)
    # float16 rounds 1e-8 * 2^20 (0.0105) to 11 bits: relative error below 2^-11.
    np.testing.assert_allclose(gradient(scaled=True), want, rtol=2.0**-11)


def test_compile_wraps_the_optimizer_under_mixed_float16_and_fit_trains():
    mixed_precision.set_global_policy("mixed_float16")
    try:
        model = lm.Sequential([lm.layers.Dense(8, activation="relu", input_shape=(4,)), lm.layers.Dense(1)])
        model.compile(Adam(learning_rate=1e-2), loss="mse")
    finally:
        mixed_precision.set_global_policy("float32")
    assert isinstance(model.optimizer, LossScaleOptimizer)
    assert model.layers[0].kernel.dtype == "float32"  # master weights stay float32
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5], [1.5]], np.float32)
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    plain = lm.Sequential([lm.layers.Dense(1, input_shape=(4,))])
    plain.compile("adam", loss="mse")
    assert not isinstance(plain.optimizer, LossScaleOptimizer)


def test_saved_model_and_checkpoint_keep_the_scale(tmp_path):
    mixed_precision.set_global_policy("mixed_float16")
    try:
        model = lm.Sequential([lm.layers.Dense(2, input_shape=(3,))])
        model.compile(Adam(), loss="mse")
        model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), epochs=1, verbose=0)
        model.optimizer.scale = 512.0
        lm.saving.save_model(model, tmp_path / "m.lamina")
        lm.saving.save_checkpoint(model, tmp_path / "ckpt.safetensors", epoch=1)
        restored = lm.saving.load_model(tmp_path / "m.lamina")
    finally:
        mixed_precision.set_global_policy("float32")
    assert isinstance(restored.optimizer, LossScaleOptimizer) and restored.optimizer.scale == 512.0
    restored.optimizer.scale = 8.0
    lm.saving.load_checkpoint(restored, tmp_path / "ckpt.safetensors")
    assert restored.optimizer.scale == 512.0
    assert restored.optimizer.inner_optimizer.iterations == model.optimizer.inner_optimizer.iterations == 1


def test_argument_errors():
    with pytest.raises(TypeError, match="inner_optimizer must be an Optimizer"):
        LossScaleOptimizer("adam")
    with pytest.raises(ValueError, match="initial_scale"):
        LossScaleOptimizer(SGD(), initial_scale=0.5)
    with pytest.raises(ValueError, match="dynamic_growth_steps"):
        LossScaleOptimizer(SGD(), dynamic_growth_steps=0)
    with pytest.raises(TypeError, match="not already loss-scaled"):
        LossScaleOptimizer(LossScaleOptimizer(SGD()))
