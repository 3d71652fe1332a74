"""Layers, activations, initializers, losses and optimizers of the Keras-like layer."""

import numpy as np
import pytest

import lamina
from lamina import layers, losses, optimizers


@pytest.fixture(autouse=True)
def _seed():
    lamina.random.seed(0)
    np.random.seed(0)


def test_dense_shapes_and_weight_counts():
    d = layers.Dense(5, activation="relu")
    y = d(np.zeros((3, 4), np.float32))
    assert y.shape == (3, 5)
    assert d.kernel.shape == (4, 5) and d.bias.shape == (5,)
    assert d.count_params() == 25 and len(d.trainable_weights) == 2
    assert layers.Dense(5, use_bias=False)(np.zeros((2, 4), np.float32)).shape == (2, 5)
    assert d(np.zeros((2, 7, 4), np.float32)).shape == (2, 7, 5)


def test_trainable_flag_moves_weights():
    d = layers.Dense(3)
    d(np.zeros((1, 2), np.float32))
    d.trainable = False
    assert d.trainable_weights == [] and len(d.non_trainable_weights) == 2


def test_other_layer_shapes():
    x = lamina.randn(2, 3, 4)
    assert layers.Flatten()(x).shape == (2, 12)
    assert layers.Reshape((4, 3))(x).shape == (2, 4, 3)
    assert layers.Reshape((-1,))(x).shape == (2, 12)
    assert layers.Activation("tanh")(x).shape == (2, 3, 4)
    emb = layers.Embedding(10, 6)
    assert emb(np.array([[1, 2, 3], [4, 5, 9]])).shape == (2, 3, 6)
    assert emb.count_params() == 60


def test_dropout_only_when_training():
    x = lamina.ones((200, 50))
    drop = layers.Dropout(0.5)
    assert np.array_equal(drop(x).numpy(), x.numpy())
    out = drop(x, training=True).numpy()
    assert set(np.unique(out)) <= {0.0, 2.0}
    assert 0.4 < (out == 0).mean() < 0.6


def test_names_are_numbered():
    a, b = layers.Dense(1), layers.Dense(1)
    assert a.name != b.name and b.name.startswith("dense")
    assert "Dense" in repr(a)


def test_dense_gradient_matches_finite_differences():
    d = layers.Dense(3, activation="tanh", dtype="float64")
    x = lamina.tensor(np.random.randn(4, 5), dtype="float64")
    d(x)

    def f(kernel, bias):
        return lamina.tanh(x @ kernel + bias)

    k = d.kernel.detach().astype("float64")
    b = d.bias.detach().astype("float64") + 0.1
    k.requires_grad = True
    b.requires_grad = True
    assert lamina.gradcheck(f, [k, b])
    # And through the layer itself: autograd gradient of the kernel vs central differences.
    loss = lamina.sum(d(x) ** 2)
    loss.backward()
    analytic = d.kernel.grad.numpy()
    base = d.kernel.numpy().copy()
    eps, numeric = 1e-6, np.zeros_like(base)
    for i in range(base.size):
        for sign in (1, -1):
            pert = base.copy().reshape(-1)
            pert[i] += sign * eps
            d.set_weights([pert.reshape(base.shape), d.bias.numpy()])
            with lamina.no_grad():
                numeric.reshape(-1)[i] += sign * float(lamina.sum(d(x) ** 2).item()) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_get_config_round_trip():
    d = layers.Dense(7, activation="relu", use_bias=False, kernel_initializer="he_normal", name="my_dense")
    clone = layers.Dense.from_config(d.get_config())
    assert clone.get_config() == d.get_config()
    for layer in (layers.Dropout(0.3), layers.Reshape((2, 2)), layers.Activation("sigmoid"), layers.Embedding(5, 2)):
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax", "gelu", "leaky_relu", "elu", "selu",
                                  "swish", "silu", "linear"])
def test_activations_by_name(name):
    x = lamina.tensor(np.linspace(-3, 3, 12).reshape(2, 6).astype(np.float32))
    y = lamina.activations.get(name)(x)
    assert y.shape == x.shape and np.isfinite(y.numpy()).all()


def test_softmax_rows_sum_to_one_and_are_stable():
    x = lamina.tensor(np.array([[1000.0, 1001.0, 1002.0], [-5.0, 0.0, 5.0]], np.float32))
    p = lamina.activations.softmax(x).numpy()
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    assert np.isfinite(p).all()


def test_unknown_names_raise_clear_errors():
    with pytest.raises(ValueError, match="Unknown activation 'relux'.*relu"):
        layers.Dense(2, activation="relux")
    with pytest.raises(ValueError, match="Unknown initializer"):
        layers.Dense(2, kernel_initializer="nope")
    with pytest.raises(ValueError, match="Unknown loss 'msee'"):
        losses.get("msee")
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'.*adam"):
        optimizers.get("adamm")


@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "random_normal"])
def test_initializer_scales(name):
    w = lamina.initializers.get(name)((400, 300)).numpy()
    expected = {"glorot_uniform": np.sqrt(2 / 700), "glorot_normal": np.sqrt(2 / 700), "he_normal": np.sqrt(2 / 400),
                "he_uniform": np.sqrt(2 / 400), "random_normal": 0.05}[name]
    assert abs(w.std() / expected - 1) < 0.05
    assert lamina.initializers.get("zeros")((2, 2)).numpy().sum() == 0


def test_losses_match_numpy():
    logits = np.random.randn(6, 4).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 1, 0])
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    want = -np.log(probs[np.arange(6), labels]).mean()
    got_logits = losses.get(losses.SparseCategoricalCrossentropy(from_logits=True))(labels, logits)
    np.testing.assert_allclose(float(got_logits.item()), want, rtol=1e-5)
    got_probs = losses.get("sparse_categorical_crossentropy")(labels, probs)
    np.testing.assert_allclose(float(got_probs.item()), want, rtol=1e-5)
    onehot = np.eye(4, dtype=np.float32)[labels]
    np.testing.assert_allclose(float(losses.get("categorical_crossentropy")(onehot, probs).item()), want, rtol=1e-5)
    y = np.random.rand(6, 4).astype(np.float32)
    np.testing.assert_allclose(float(losses.get("mse")(y, logits).item()), ((y - logits) ** 2).mean(), rtol=1e-5)
    np.testing.assert_allclose(float(losses.get("mae")(y, logits).item()), np.abs(y - logits).mean(), rtol=1e-5)
    err = np.abs(y - logits)
    huber = np.where(err <= 1, 0.5 * err ** 2, err - 0.5).mean()
    np.testing.assert_allclose(float(losses.get("huber")(y, logits).item()), huber, rtol=1e-5)
    np.testing.assert_allclose(float(losses.get("kl_divergence")(onehot, probs).item()), want, rtol=1e-4)


def test_binary_crossentropy_from_logits_is_stable():
    logits = np.array([[100.0], [-100.0], [0.0]], np.float32)
    y = np.array([[1.0], [0.0], [1.0]], np.float32)
    got = float(losses.BinaryCrossentropy(from_logits=True)(y, logits).item())
    np.testing.assert_allclose(got, np.log(2) / 3, rtol=1e-5)
    probs = 1 / (1 + np.exp(-np.array([[2.0], [-1.0], [0.5]], np.float32)))
    want = -(y * np.log(probs) + (1 - y) * np.log(1 - probs)).mean()
    np.testing.assert_allclose(float(losses.get("binary_crossentropy")(y, probs).item()), want, rtol=1e-5)


@pytest.mark.parametrize("make", [
    lambda p: optimizers.SGD(p, 0.1),
    lambda p: optimizers.SGD(p, 0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    lambda p: optimizers.Adam(p, 0.1),
    lambda p: optimizers.AdamW(p, learning_rate=0.1),
    lambda p: optimizers.RMSprop(p, 0.05, clipnorm=1.0),
    lambda p: optimizers.Adagrad(p, 0.5, global_clipnorm=5.0),
    lambda p: optimizers.Adam(p, optimizers.schedules.ExponentialDecay(0.1, 10, 0.9), clipvalue=1.0),
])
def test_optimizers_minimise_a_quadratic_pytorch_style(make):
    w = lamina.tensor(np.array([3.0, -2.0], np.float32), requires_grad=True)
    opt = make([w])
    for _ in range(100):
        opt.zero_grad()
        loss = lamina.sum((w - 1.0) ** 2)
        loss.backward()
        opt.step()
    np.testing.assert_allclose(w.numpy(), [1.0, 1.0], atol=0.15)
    assert w.is_leaf and w.requires_grad


def test_sgd_step_matches_formula():
    w = lamina.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    opt = optimizers.SGD(learning_rate=0.1, momentum=0.5)
    g = lamina.tensor(np.array([1.0, -1.0], np.float32))
    opt.apply([(g, w)])
    opt.apply([g], [w])
    # v1 = -0.1 g, v2 = 0.5 v1 - 0.1 g = -0.15 g; w = w0 - 0.25 g
    np.testing.assert_allclose(w.numpy(), [0.75, 2.25], rtol=1e-6)
    assert opt.iterations == 2


def test_learning_rate_schedules():
    s = optimizers.schedules
    assert s.ExponentialDecay(1.0, 10, 0.5)(10) == pytest.approx(0.5)
    assert s.ExponentialDecay(1.0, 10, 0.5, staircase=True)(15) == pytest.approx(0.5)
    cosine = s.CosineDecay(0.0, 100, warmup_target=1.0, warmup_steps=10)
    assert cosine(5) == pytest.approx(0.5) and cosine(10) == pytest.approx(1.0) and cosine(110) == pytest.approx(0.0)
    assert s.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])(15) == 0.5
    assert s.StepDecay(1.0, 10, 0.1)(25) == pytest.approx(0.01)
    warm = s.LinearWarmup(0.1, 10)
    assert warm(0) == pytest.approx(0.01) and warm(50) == pytest.approx(0.1)


def test_regularizer_adds_to_losses():
    d = layers.Dense(2, kernel_regularizer=lamina.regularizers.L2(0.5))
    d(np.ones((1, 3), np.float32))
    (penalty,) = d.losses
    np.testing.assert_allclose(float(penalty.item()), 0.5 * (d.kernel.numpy() ** 2).sum(), rtol=1e-5)


def test_metrics_state():
    m = lamina.metrics.get("accuracy", "sparse_categorical_crossentropy")
    m.update_state(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]]))
    assert m.result() == 0.5
    m.reset_state()
    assert m.result() == 0.0
    p, r = lamina.metrics.Precision(), lamina.metrics.Recall()
    y, pred = np.array([1, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.7])
    p.update_state(y, pred)
    r.update_state(y, pred)
    assert p.result() == pytest.approx(2 / 3) and r.result() == pytest.approx(2 / 3)
