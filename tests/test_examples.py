"""Quick runs of the examples, each asserting that the model learned what the example says."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from lamina.datasets import fashion_mnist, mnist

ROOT = Path(__file__).resolve().parents[1]
MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not all((MNIST / f).is_file() for f in mnist.FILES.values()),
                                 reason=f"MNIST files not found in {MNIST}")


def _example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def mnist_dir(monkeypatch):
    monkeypatch.setenv("LAMINA_DATA_DIR", str(MNIST))


def test_cnn_fashion_mnist_quick(monkeypatch):
    monkeypatch.delenv("LAMINA_DATA_DIR", raising=False)
    if fashion_mnist.find_dir() is None:
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    accuracy, _ = _example("cnn_fashion_mnist").run(epochs=2, train_samples=8000, test_samples=2000, verbose=0)
    assert accuracy >= 0.80, f"test accuracy {accuracy:.4f}"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_lstm_sequence_quick(cell):
    accuracy = _example("lstm_sequence").run(cell, samples=3000, epochs=4, verbose=0)
    assert accuracy >= 0.93, f"{cell} held-out accuracy {accuracy:.4f}"


def test_transformer_classifier_quick():
    accuracy = _example("transformer_classifier").run(samples=4000, epochs=6, verbose=0)
    assert accuracy >= 0.90, f"held-out accuracy {accuracy:.4f}"


@needs_mnist
def test_gan_quick(mnist_dir):
    gan = _example("gan_mnist").run(epochs=1, samples=9600, verbose=0)
    log = gan.step_log
    assert len(log) == 300
    assert all(np.isfinite(s["d_loss"]) and np.isfinite(s["g_loss"]) for s in log)
    accuracy = np.array([s["d_acc_fake"] for s in log])
    windows = accuracy.reshape(-1, 25).mean(1)
    # The discriminator first separates generated images almost perfectly; the generator
    # then catches up and the discriminator's accuracy on its samples falls.
    assert windows[:6].max() >= 0.9, windows
    assert accuracy[-50:].mean() <= 0.75, windows


@needs_mnist
def test_vae_quick(mnist_dir):
    before, after = _example("vae_mnist").run(epochs=2, samples=10000, verbose=0)
    assert before - after >= 300 and after <= 180, f"negative ELBO {before:.1f} -> {after:.1f}"


@needs_mnist
def test_transfer_learning_quick(mnist_dir):
    source, transferred, _ = _example("transfer_learning").run(source_samples=6000, target_samples=1000,
                                                                source_epochs=2, verbose=0, compare_random=False)
    assert source >= 0.95, f"digits 0-4: {source:.4f}"
    assert transferred >= 0.92, f"digits 5-9 on the frozen base: {transferred:.4f}"


def test_examples_have_a_quick_flag():
    for name in ("cnn_fashion_mnist", "lstm_sequence", "transformer_classifier", "gan_mnist", "vae_mnist",
                 "transfer_learning"):
        assert '"--quick"' in (ROOT / "examples" / f"{name}.py").read_text(), name
