"""Sequential, functional and subclassed models: training, callbacks, summary and errors."""

import numpy as np
import pytest

import lamina
from lamina import callbacks, layers


@pytest.fixture(autouse=True)
def _seed():
    lamina.random.seed(0)
    np.random.seed(0)


def blobs(n=600, classes=3, dims=4):
    """Gaussian clusters: an easy, separable classification problem."""
    rng = np.random.default_rng(1)
    centers = rng.normal(0, 3, (classes, dims))
    y = rng.integers(0, classes, n)
    x = (centers[y] + rng.normal(0, 0.7, (n, dims))).astype(np.float32)
    return x, y


def sequential_model():
    return lamina.Sequential([layers.Dense(16, activation="relu", input_shape=(4,)), layers.Dense(3, activation="softmax")])


def functional_model():
    inputs = lamina.Input((4,))
    h = layers.Dense(16, activation="relu")(inputs)
    h = layers.Dropout(0.1)(h)
    return lamina.Model(inputs, layers.Dense(3)(h))


class Subclassed(lamina.Model):
    def __init__(self):
        super().__init__()
        self.hidden = layers.Dense(16, activation="relu")
        self.out = layers.Dense(3)

    def call(self, x, training=False):
        return self.out(self.hidden(x))


@pytest.mark.parametrize("make,logits", [(sequential_model, False), (functional_model, True), (Subclassed, True)])
def test_fit_reaches_accuracy(make, logits):
    x, y = blobs()
    model = make()
    loss = lamina.losses.SparseCategoricalCrossentropy(from_logits=True) if logits else "sparse_categorical_crossentropy"
    model.compile(optimizer=lamina.optimizers.Adam(learning_rate=0.01), loss=loss, metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=15, verbose=0, validation_split=0.2)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] >= 0.95
    loss_value, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy >= 0.95 and loss_value < 0.3
    assert model.predict(x[:10]).shape == (10, 3)
    assert len(model.trainable_weights) == 4 and model.count_params() == 4 * 16 + 16 + 16 * 3 + 3


def test_one_training_step_lowers_the_loss():
    x, y = blobs(128)
    model = sequential_model()
    model.compile(lamina.optimizers.SGD(learning_rate=0.1), "sparse_categorical_crossentropy")
    before = model.evaluate(x, y, batch_size=128, verbose=0)
    model.train_on_batch(x, y)
    assert model.evaluate(x, y, batch_size=128, verbose=0) < before


def test_binary_and_regression_targets():
    x, y = blobs(400, classes=2)
    model = lamina.Sequential([layers.Dense(8, activation="tanh", input_shape=(4,)), layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy", "precision", "recall"])
    model.fit(x, y.astype(np.float32), epochs=20, verbose=0)
    logs = model.evaluate(x, y.astype(np.float32), verbose=0, return_dict=True)
    assert logs["accuracy"] >= 0.95 and logs["precision"] > 0.9 and logs["recall"] > 0.9
    reg = lamina.Sequential([layers.Dense(1, input_shape=(4,))])
    reg.compile(lamina.optimizers.SGD(learning_rate=0.05), "mse", metrics=["mae"])
    target = (x @ np.array([1.0, -2.0, 0.5, 0.0], np.float32))[:, None]
    reg.fit(x, target, epochs=30, verbose=0)
    assert reg.evaluate(x, target, verbose=0)[0] < 0.05


def test_summary_lists_layers_and_params(capsys):
    model = lamina.Sequential([layers.Flatten(input_shape=(2, 3)), layers.Dense(4), layers.Dense(2, trainable=False)])
    model.summary()
    text = capsys.readouterr().out
    assert "flatten" in text and "(None, 6)" in text and "(None, 4)" in text
    assert "Total params: 38" in text and "Trainable params: 28" in text and "Non-trainable params: 10" in text


def test_sequential_add_and_input_first():
    model = lamina.Sequential()
    model.add(lamina.Input((5,)))
    model.add(layers.Dense(3))
    assert model.built and model.output_shape == (None, 3)
    config = lamina.Sequential([layers.Dense(2, input_shape=(3,))]).get_config()
    assert lamina.Sequential.from_config(config).count_params() == 8


def test_early_stopping_stops_and_restores():
    x, y = blobs()
    model = sequential_model()
    model.compile(lamina.optimizers.SGD(learning_rate=0.0), "sparse_categorical_crossentropy")  # loss never improves
    stop = callbacks.EarlyStopping(monitor="loss", patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=20, verbose=0, shuffle=False, callbacks=[stop])
    assert len(history.history["loss"]) == 3 and stop.stopped_epoch == 2


def test_lambda_and_terminate_on_nan_callbacks():
    x, y = blobs(64)
    seen = []
    model = sequential_model()
    model.compile(lamina.optimizers.SGD(learning_rate=1e30), "mse")
    y_bad = np.full((64, 3), 1e30, np.float32)
    history = model.fit(x, y_bad, epochs=5, batch_size=8, verbose=0,
                        callbacks=[callbacks.TerminateOnNaN(), callbacks.LambdaCallback(on_epoch_end=lambda e, l: seen.append(e))])
    assert len(seen) == 1 and not np.isfinite(history.history["loss"][-1])


def test_verbose_progress_output(capsys):
    x, y = blobs(64)
    model = sequential_model()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out and "loss:" in out and "accuracy:" in out
    model.fit(x, y, epochs=1, verbose=1)
    assert "2/2 [" in capsys.readouterr().out


def test_bad_inputs_raise_clear_errors():
    x, y = blobs(50)
    model = sequential_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="shape"):
        model.predict(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="different numbers of samples"):
        model.fit(x, y[:40], verbose=0)
    with pytest.raises(ValueError, match="Unknown loss"):
        model.compile("adam", "crossentropy_please")
    with pytest.raises(ValueError, match="Unknown optimizer"):
        model.compile("adamax_plus", "mse")
    with pytest.raises(ValueError, match="Unknown metric"):
        model.compile("adam", "mse", metrics=["acuracy"])
    with pytest.raises(RuntimeError, match="compile"):
        sequential_model().fit(x, y, verbose=0)
    functional = functional_model()
    with pytest.raises(ValueError, match="expects"):
        functional(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="last axis"):
        d = layers.Dense(2)
        d(lamina.zeros((1, 3)))
        d(lamina.zeros((1, 4)))


def test_subclassed_model_tracks_layers_and_weights():
    model = Subclassed()
    model(np.zeros((2, 4), np.float32))
    assert [l.name for l in model.layers] == [model.hidden.name, model.out.name]
    weights = model.get_weights()
    model.set_weights([w * 0 for w in weights])
    assert all((w == 0).all() for w in model.get_weights())
