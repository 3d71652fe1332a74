"""Dataset pipelines, fit on datasets and generators, gradient accumulation, datasets on disk."""

import lamina
import numpy as np
import pytest
from lamina import layers
from lamina.data import Dataset
from lamina.datasets import digits, fashion_mnist

X = np.arange(20, dtype=np.float32).reshape(10, 2)
Y = np.arange(10)


def _epochs(ds, n=2):
    return [[tuple(np.asarray(p).tolist() for p in b) if isinstance(b, tuple) else np.asarray(b).tolist()
             for b in ds] for _ in range(n)]


def test_batching_and_length():
    ds = Dataset.from_tensor_slices((X, Y)).batch(4)
    assert len(ds) == 3
    batches = list(ds)
    assert [b[0].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), Y)
    assert len(Dataset.from_tensor_slices(X).batch(4, drop_remainder=True)) == 2
    assert [b.shape for b in Dataset.from_tensor_slices(X).batch(4, drop_remainder=True)] == [(4, 2), (4, 2)]


@pytest.mark.parametrize("buffer", [3, 100])
def test_seeded_shuffle_is_deterministic_and_a_permutation(buffer):
    make = lambda: Dataset.from_tensor_slices((X, Y)).shuffle(buffer, seed=7).batch(3).map(  # noqa: E731
        lambda x, y: (x * 2, y)).prefetch(2)
    a, b = _epochs(make()), _epochs(make())
    assert a == b
    labels = [sum((batch[1] for batch in epoch), []) for epoch in a]
    assert sorted(labels[0]) == list(range(10)) and labels[0] != labels[1]  # reshuffled each pass
    assert labels[0] != list(range(10))


def test_map_filter_take_repeat_and_unknown_length():
    ds = Dataset.from_tensor_slices(Y).map(lambda v: v * 10).filter(lambda v: v % 20 == 0)
    assert [int(v) for v in ds] == [0, 20, 40, 60, 80]
    with pytest.raises(TypeError):
        len(ds)
    assert len(Dataset.from_tensor_slices(Y).take(3).repeat(2)) == 6
    assert [int(v) for v in Dataset.from_tensor_slices(Y).take(3).repeat(2)] == [0, 1, 2, 0, 1, 2]


def test_prefetch_passes_errors_through():
    def boom(v):
        if v == 3:
            raise RuntimeError("bad element")
        return v

    with pytest.raises(RuntimeError, match="bad element"):
        list(Dataset.from_tensor_slices(Y).map(boom).prefetch(2))


def _model(seed=0):
    lamina.random.seed(seed)
    model = lamina.Sequential([layers.Dense(8, activation="tanh", input_shape=(4,)), layers.Dense(1)])
    model.compile(lamina.optimizers.SGD(0.1), "mse")
    return model


def test_fit_accepts_a_dataset_and_a_generator():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = x.sum(1, keepdims=True)
    ds = Dataset.from_tensor_slices((x, y)).shuffle(64, seed=1).batch(16).prefetch(2)
    history = _model().fit(ds, epochs=3, verbose=0, validation_data=ds)
    assert len(history.history["loss"]) == 3 and "val_loss" in history.history

    def generator():
        while True:
            idx = rng.integers(0, 64, 16)
            yield x[idx], y[idx]

    model = _model()
    history = model.fit(generator(), steps_per_epoch=4, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
    assert model.evaluate(ds, verbose=0) < history.history["loss"][0]
    assert model.predict(Dataset.from_tensor_slices(x).batch(10)).shape == (64, 1)
    with pytest.raises(ValueError, match="y must not be given"):
        model.fit(ds, y, verbose=0)


def test_finite_generator_without_steps_serves_one_epoch(capsys):
    x = np.ones((8, 4), np.float32)
    history = _model().fit(((x, x[:, :1]) for _ in range(3)), epochs=5, verbose=0)
    assert len(history.history["loss"]) == 1
    assert "ran out of data" in capsys.readouterr().out


def test_gradient_accumulation_equals_a_larger_batch():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = rng.standard_normal((64, 1)).astype(np.float32)
    big, small = _model(), _model()
    small.set_weights(big.get_weights())
    h_big = big.fit(x, y, batch_size=32, epochs=4, shuffle=False, verbose=0)
    h_small = small.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0, gradient_accumulation_steps=4)
    np.testing.assert_allclose(h_small.history["loss"], h_big.history["loss"], rtol=1e-5)
    for a, b in zip(small.get_weights(), big.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert big.optimizer.iterations == small.optimizer.iterations == 8


def test_fashion_mnist_missing_files_error(monkeypatch, tmp_path):
    monkeypatch.setenv("LAMINA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", ())
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        fashion_mnist.load_data(download=False)


@pytest.mark.skipif(fashion_mnist.find_dir() is None, reason="Fashion-MNIST files are not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_loads_and_a_small_model_learns():
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28) and x_train.dtype == np.uint8
    assert sorted(np.unique(y_test)) == list(range(10))
    lamina.random.seed(0)
    model = lamina.Sequential([layers.Flatten(input_shape=(28, 28)), layers.Dense(64, activation="relu"),
                               layers.Dense(10)])
    model.compile(lamina.optimizers.Adam(2e-3),
                  lamina.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    train = Dataset.from_tensor_slices((x_train[:30000] / 255.0, y_train[:30000])).shuffle(30000, seed=0).batch(128)
    model.fit(train, epochs=2, verbose=0)
    _, accuracy = model.evaluate(x_test[:2000] / 255.0, y_test[:2000], batch_size=500, verbose=0)
    assert accuracy > 0.8


def test_digits_needs_scikit_learn_or_loads():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="scikit-learn"):
            digits.load_data()
        return
    (x_train, y_train), (x_test, _) = digits.load_data(test_split=0.25)
    assert x_train.shape[1:] == (8, 8) and len(x_train) + len(x_test) == 1797 and y_train.max() == 9
