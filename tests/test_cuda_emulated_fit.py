"""Keras-style training of a model moved to the device: fit / evaluate / predict and the
*_on_batch calls move each batch to the weights' device, metrics included, and give the
CPU's results. Runs on the CUDA backend (real or the SIMT emulator, which
scripts/test_cuda_emulated.sh builds); skipped in a CPU-only build."""

import numpy as np

import lamina as lm
from cuda_testing import needs_cuda

pytestmark = needs_cuda


def _model(seed):
    lm.random.seed(seed)
    model = lm.Sequential([lm.layers.Dense(6, activation="relu", input_shape=(5,)), lm.layers.Dense(3)])
    model.compile(lm.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_fit_evaluate_predict_on_the_device_match_the_cpu():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 5)).astype(np.float32)
    y = rng.integers(0, 3, 24)
    cpu, dev = _model(1), _model(1).to("cuda")
    assert str(dev.layers[0].kernel.device).startswith("cuda")
    h_cpu = cpu.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0).history
    h_dev = dev.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h_dev["loss"], h_cpu["loss"], rtol=1e-5)
    assert h_dev["accuracy"] == h_cpu["accuracy"]
    np.testing.assert_allclose(dev.evaluate(x, y, verbose=0), cpu.evaluate(x, y, verbose=0), rtol=1e-5)
    p_dev = dev.predict(x)
    assert isinstance(p_dev, np.ndarray)
    np.testing.assert_allclose(p_dev, cpu.predict(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dev.train_on_batch(x[:8], y[:8]), cpu.train_on_batch(x[:8], y[:8]), rtol=1e-5)
    np.testing.assert_allclose(dev.test_on_batch(x, y), cpu.test_on_batch(x, y), rtol=1e-5)
    np.testing.assert_allclose(dev.predict_on_batch(x[:4]), cpu.predict_on_batch(x[:4]), rtol=1e-5, atol=1e-6)
