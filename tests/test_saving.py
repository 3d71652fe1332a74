"""Saving: config round trips, identical predictions after load, damaged files rejected."""

import json
import os

import lamina
import numpy as np
import pytest
from lamina import layers, saving
from lamina.models import load_model

RNG = np.random.default_rng(0)
X = RNG.standard_normal((16, 6)).astype(np.float32)
Y = RNG.integers(0, 3, 16)


def _sequential():
    model = lamina.Sequential([
        layers.Dense(8, activation="relu", input_shape=(6,), kernel_regularizer="l2"),
        layers.BatchNormalization(),
        layers.Dropout(0.2),
        layers.LayerNormalization(),
        layers.Dense(3),
    ])
    model.compile(lamina.optimizers.Adam(0.01), lamina.losses.SparseCategoricalCrossentropy(from_logits=True),
                  ["accuracy"])
    model.fit(X, Y, epochs=2, batch_size=8, verbose=0)
    return model


def _functional():
    inp = lamina.Input((6,))
    shared = layers.Dense(5, activation="tanh")
    h = shared(inp)
    a = layers.Dense(2)(h)
    b = layers.Dense(3, activation="softmax")(shared(inp))
    return lamina.Model(inp, [a, b])


def _rnn():
    inp = lamina.Input((4, 6))
    seq, state = layers.SimpleRNN(5, return_sequences=True, return_state=True)(inp)
    return lamina.Model(inp, [layers.SimpleRNN(3)(seq), state])


def _predict_all(model, x):
    out = model.predict(x)
    return out if isinstance(out, list) else [out]


@pytest.mark.parametrize("make, x", [(_sequential, X), (_functional, X), (_rnn, RNG.standard_normal((3, 4, 6)))])
def test_save_load_identical_predictions(tmp_path, make, x):
    model = make()
    path = tmp_path / "m.lamina"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded) is type(model)
    for a, b in zip(_predict_all(model, x), _predict_all(loaded, x)):
        np.testing.assert_array_equal(a, b)


def test_config_round_trip_of_every_layer():
    for layer in [layers.Dense(3, activation="relu", kernel_initializer="he_normal", bias_regularizer="l1"),
                  layers.Embedding(10, 4), layers.Reshape((2, -1)), layers.Activation("gelu"),
                  layers.Dropout(0.3), layers.Flatten(), layers.BatchNormalization(axis=1, momentum=0.9),
                  layers.LayerNormalization(axis=[-2, -1]), layers.RandomFlip("horizontal", seed=3),
                  layers.RandomTranslation(0.1, (-0.2, 0.3), fill_mode="nearest"), layers.GaussianNoise(0.5),
                  layers.SimpleRNN(4, return_sequences=True, go_backwards=True)]:
        config = layer.get_config()
        json.dumps(config)
        clone = type(layer).from_config(json.loads(json.dumps(config)))
        assert clone.get_config() == config


def test_sequential_and_functional_configs_round_trip():
    for model in (_sequential(), _functional()):
        config = json.loads(json.dumps(model.get_config()))
        clone = type(model).from_config(config)
        clone.set_weights(model.get_weights())
        for a, b in zip(_predict_all(model, X), _predict_all(clone, X)):
            np.testing.assert_array_equal(a, b)


def test_compile_config_is_restored(tmp_path):
    model = _sequential()
    model.save(tmp_path / "m.lamina")
    loaded = load_model(tmp_path / "m.lamina")
    assert type(loaded.optimizer).__name__ == "Adam" and loaded.optimizer.lr == pytest.approx(0.01)
    assert loaded.loss.kwargs == {"from_logits": True}
    assert [m.name for m in loaded.compiled_metrics] == ["accuracy"]
    loaded.fit(X, Y, epochs=1, verbose=0)
    assert np.isfinite(loaded.evaluate(X, Y, verbose=0)[0])
    # BatchNorm moving statistics are saved with the other weights
    bn = next(l for l in loaded.layers if isinstance(l, layers.BatchNormalization))
    assert bn.moving_mean.numpy().any()


def test_weights_are_named_by_layer_path_and_readable_elsewhere(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    model = _sequential()
    model.save_weights(tmp_path / "w.safetensors")
    tensors = safetensors_numpy.load_file(str(tmp_path / "w.safetensors"))
    first = model.layers[0].name
    assert f"{first}/kernel" in tensors
    np.testing.assert_array_equal(tensors[f"{first}/kernel"], model.layers[0].kernel.numpy())
    fresh = lamina.Sequential.from_config(model.get_config())
    fresh.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(fresh.predict(X), model.predict(X))


def test_load_weights_matches_by_order_when_names_differ(tmp_path):
    model = _functional()
    model.save_weights(tmp_path / "w.safetensors")
    other = _functional()  # new layers, new names
    other.load_weights(tmp_path / "w.safetensors")
    for a, b in zip(_predict_all(model, X), _predict_all(other, X)):
        np.testing.assert_array_equal(a, b)
    wrong = lamina.Sequential([layers.Dense(4, input_shape=(6,))])
    with pytest.raises(ValueError, match="do not match"):
        wrong.load_weights(tmp_path / "w.safetensors")


class Scale(layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x, training=False):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def test_unknown_classes_need_registration(tmp_path):
    model = lamina.Sequential([layers.Dense(2, input_shape=(6,)), Scale(3.0)])
    model.save(tmp_path / "m.lamina")
    with pytest.raises(ValueError, match="Unknown layer class 'Scale'"):
        load_model(tmp_path / "m.lamina")
    loaded = load_model(tmp_path / "m.lamina", custom_objects={"Scale": Scale})
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    saving.register_serializable(package="tests")(Scale)
    try:
        model2 = lamina.Sequential([layers.Dense(2, input_shape=(6,)), Scale(4.0)])
        model2.save(tmp_path / "m2.lamina")
        np.testing.assert_array_equal(load_model(tmp_path / "m2.lamina").predict(X), model2.predict(X))
    finally:
        saving._REGISTERED.pop("tests>Scale")


def test_subclassed_model_without_config_says_how(tmp_path):
    class Net(lamina.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(2)

        def call(self, x, training=False):
            return self.d(x)

    net = Net()
    net(X)
    with pytest.raises(NotImplementedError, match="get_config"):
        net.save(tmp_path / "n.lamina")
    net.save_weights(tmp_path / "n.safetensors")
    other = Net()
    other(X)
    other.load_weights(tmp_path / "n.safetensors")
    np.testing.assert_array_equal(other.predict(X), net.predict(X))


# ----- damaged files ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "m.lamina"
    lamina.Sequential([layers.Dense(3, input_shape=(4,)), layers.Dense(2)]).save(path)
    return path.read_bytes()


def _load_bytes(tmp_path, data):
    path = tmp_path / "bad.lamina"
    path.write_bytes(data)
    return load_model(path)


def test_truncated_files_are_rejected(tmp_path, saved_bytes):
    for cut in sorted({0, 3, 8, 9, 20, len(saved_bytes) // 2, len(saved_bytes) - 1}):
        with pytest.raises(ValueError):
            _load_bytes(tmp_path, saved_bytes[:cut])
    with pytest.raises(ValueError, match="trailing|cover"):
        _load_bytes(tmp_path, saved_bytes + b"\0" * 4)


def test_every_sampled_bit_flip_is_rejected(tmp_path, saved_bytes):
    positions = list(range(16)) + list(range(16, len(saved_bytes), max(1, len(saved_bytes) // 300)))
    for i, pos in enumerate(positions):
        data = bytearray(saved_bytes)
        data[pos] ^= 1 << (i % 8)
        with pytest.raises(ValueError):
            _load_bytes(tmp_path, bytes(data))


def _craft(header, data=b""):
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize("header, data, message", [
    ({"w": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "dtype"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "shape"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "offsets"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "fill"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, "overlap"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, "gap"),
    ({"__metadata__": {"format": 1}}, b"", "strings"),
    ([1, 2], b"", "object"),
])
def test_structural_checks(tmp_path, header, data, message):
    path = tmp_path / "x.safetensors"
    path.write_bytes(_craft(header, data))
    with pytest.raises(ValueError, match=message):
        saving.read_safetensors(path)


def test_header_length_cap_and_bad_json(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="limit"):
        saving.read_safetensors(path)
    path.write_bytes((5).to_bytes(8, "little") + b"{not}")
    with pytest.raises(ValueError, match="JSON"):
        saving.read_safetensors(path)
    path.write_bytes(_craft({"__metadata__": {"format": "lamina.weights"}}))
    with pytest.raises(ValueError, match="checksum"):
        saving.read_safetensors(path)


def test_model_file_never_runs_code_from_the_config(tmp_path):
    tensors = {}
    config = {"class_name": "os.system", "config": {"command": "echo pwned"}}
    saving.write_safetensors(tmp_path / "evil.lamina", tensors, {"format": "lamina.model", "format_version": "1",
                                                                 "model_config": json.dumps(config)})
    with pytest.raises(ValueError, match="Unknown layer class"):
        load_model(tmp_path / "evil.lamina")


def test_atomic_write_keeps_the_old_file_when_saving_fails(tmp_path, monkeypatch):
    model = lamina.Sequential([layers.Dense(3, input_shape=(4,))])
    path = tmp_path / "m.lamina"
    model.save(path)
    before = path.read_bytes()
    model.set_weights([w + 1 for w in model.get_weights()])

    def failing_fsync(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.lamina"]  # the temporary file is gone

    def failing_writer(f):
        f.write(b"partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        saving.atomic_write(path, failing_writer)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.lamina"]
