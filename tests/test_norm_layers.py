"""Normalization, augmentation and recurrent layers against numpy references."""

import lamina
import numpy as np
import pytest
from lamina import layers

RNG = np.random.default_rng(1)


def test_batchnorm_training_statistics_and_moving_averages_match_numpy():
    bn = layers.BatchNormalization(momentum=0.8, epsilon=1e-3)
    moving_mean, moving_var = np.zeros(3), np.ones(3)
    for _ in range(3):
        x = RNG.standard_normal((16, 3)) * 3 + 2
        y = bn(lamina.tensor(x.astype(np.float32)), training=True).numpy()
        mean, var = x.mean(0), x.var(0)
        np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-4)
        moving_mean = 0.8 * moving_mean + 0.2 * mean
        moving_var = 0.8 * moving_var + 0.2 * var
    np.testing.assert_allclose(bn.moving_mean.numpy(), moving_mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), moving_var, rtol=1e-5)
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    inference = bn(lamina.tensor(x), training=False).numpy()
    np.testing.assert_allclose(inference, (x - moving_mean) / np.sqrt(moving_var + 1e-3), rtol=1e-4, atol=1e-5)
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2


def test_batchnorm_nchw_axis_1():
    bn = layers.BatchNormalization(axis=1, momentum=0.0)
    x = RNG.standard_normal((4, 2, 3, 3)).astype(np.float32)
    y = bn(lamina.tensor(x), training=True).numpy()
    mean, var = x.mean((0, 2, 3), keepdims=True), x.var((0, 2, 3), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean.ravel(), rtol=1e-5, atol=1e-6)
    assert bn.gamma.shape == (2,)


def test_frozen_batchnorm_uses_moving_statistics():
    bn = layers.BatchNormalization(trainable=False)
    x = RNG.standard_normal((8, 3)).astype(np.float32)
    np.testing.assert_allclose(bn(lamina.tensor(x), training=True).numpy(), x / np.sqrt(1 + 1e-3), rtol=1e-5)
    assert not bn.moving_mean.numpy().any()


def test_layernorm_values_and_gradients_in_float64():
    ln = layers.LayerNormalization(dtype="float64", epsilon=1e-5)
    x = RNG.standard_normal((3, 5))
    ln.build((3, 5))
    ln.built = True
    ln.set_weights([RNG.standard_normal(5), RNG.standard_normal(5)])
    gamma, beta = ln.get_weights()
    y = ln(lamina.tensor(x)).numpy()
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * gamma + beta
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)
    xt = lamina.tensor(x, requires_grad=True)
    assert lamina.gradcheck(lambda t: ln(t), [xt])
    # weight gradients against the analytic ones of the numpy reference
    out_w = RNG.standard_normal((3, 5))
    loss = lamina.sum(ln(lamina.tensor(x)) * lamina.tensor(out_w))
    ln.gamma.grad = None
    loss.backward()
    normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln.gamma.grad.numpy(), (normed * out_w).sum(0), rtol=1e-10)
    np.testing.assert_allclose(ln.beta.grad.numpy(), out_w.sum(0), rtol=1e-10)


def test_augmentation_is_identity_at_inference_and_random_in_training():
    images = RNG.random((6, 5, 5, 2)).astype(np.float32)
    for layer in (layers.RandomFlip(seed=0), layers.RandomTranslation(0.4, 0.4, seed=0), layers.GaussianNoise(0.1)):
        np.testing.assert_array_equal(layer(lamina.tensor(images)).numpy(), images)
        assert not np.array_equal(layer(lamina.tensor(images), training=True).numpy(), images)


def test_random_flip_flips_whole_images():
    images = RNG.random((8, 4, 4, 1)).astype(np.float32)
    out = layers.RandomFlip("horizontal", seed=2)(lamina.tensor(images), training=True).numpy()
    for got, img in zip(out, images):
        assert np.array_equal(got, img) or np.array_equal(got, img[:, ::-1])


def test_random_translation_shifts_and_fills():
    images = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1) + 1
    layer = layers.RandomTranslation((0.5, 0.5), 0.0, seed=0)  # always two rows down
    out = layer(lamina.tensor(images), training=True).numpy()
    np.testing.assert_array_equal(out[0, 2:], images[0, :2])
    assert not out[0, :2].any()


def test_simple_rnn_matches_numpy_loop():
    rnn = layers.SimpleRNN(4, return_sequences=True, return_state=True)
    x = RNG.standard_normal((2, 5, 3)).astype(np.float32)
    seq, state = rnn(lamina.tensor(x))
    w, u, b = rnn.get_weights()
    h = np.zeros((2, 4), np.float32)
    outs = []
    for t in range(5):
        h = np.tanh(x[:, t] @ w + h @ u + b)
        outs.append(h)
    np.testing.assert_allclose(seq.numpy(), np.stack(outs, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state.numpy(), h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(u @ u.T, np.eye(4), atol=1e-5)  # orthogonal recurrent init


def test_simple_rnn_learns_a_sum():
    lamina.random.seed(0)
    x = RNG.standard_normal((256, 6, 1)).astype(np.float32)
    y = x.sum(1)
    model = lamina.Sequential([layers.SimpleRNN(16, input_shape=(6, 1)), layers.Dense(1)])
    model.compile(lamina.optimizers.Adam(0.01), "mse")
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]


def test_mixed_bfloat16_policy_keeps_float32_variables():
    from lamina import mixed_precision

    mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        dense = layers.Dense(4)
        norm = layers.LayerNormalization()
        out = norm(dense(lamina.tensor(RNG.standard_normal((3, 5)).astype(np.float32))))
        assert dense.kernel.dtype == "float32" and dense.compute_dtype == "bfloat16"
        assert out.dtype == "bfloat16"
        model = lamina.Sequential([layers.Dense(8, activation="relu", input_shape=(5,)), layers.Dense(1)])
        model.compile(lamina.optimizers.SGD(0.05), "mse")
        x = RNG.standard_normal((64, 5)).astype(np.float32)
        history = model.fit(x, x[:, :1], epochs=5, verbose=0)
        assert all(w.dtype == "float32" for w in model.weights)
        assert history.history["loss"][-1] < history.history["loss"][0]
        assert model.get_config()["layers"][0]["config"]["dtype"] == "mixed_bfloat16"
    finally:
        mixed_precision.set_global_policy("float32")
    assert mixed_precision.Policy("mixed_float16").compute_dtype == "float16"
    with pytest.raises(ValueError, match="Unknown dtype policy"):
        mixed_precision.Policy("int8")
