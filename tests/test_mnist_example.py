"""MNIST: the IDX reader's validation and a short run of the quickstart example."""

import gzip
import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

import lamina
from lamina.datasets import mnist

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_data = pytest.mark.skipif(not all((DATA / f).is_file() for f in mnist.FILES.values()),
                                reason=f"MNIST files not found in {DATA}")


def _write(path, payload):
    with gzip.open(path, "wb") as f:
        f.write(payload)
    return path


def test_idx_reader_validates(tmp_path):
    good = bytes([0, 0, 8, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(6))
    np.testing.assert_array_equal(mnist.read_idx(_write(tmp_path / "ok.gz", good)), np.arange(6).reshape(2, 3))
    cases = {
        "magic": bytes([1, 0, 8, 1]) + (1).to_bytes(4, "big") + b"\0",
        "type code": bytes([0, 0, 0x0D, 1]) + (1).to_bytes(4, "big") + b"\0\0\0\0",
        "rank": bytes([0, 0, 8, 9]),
        "payload": good[:-1],
        "not positive": bytes([0, 0, 8, 1]) + (0).to_bytes(4, "big"),
        "too short": b"\0\0",
    }
    for what, payload in cases.items():
        with pytest.raises(ValueError, match=what):
            mnist.read_idx(_write(tmp_path / "bad.gz", payload))
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-10])
    with pytest.raises(ValueError):
        mnist.read_idx(tmp_path / "cut.gz")


def test_missing_files_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMINA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="LAMINA_DATA_DIR"):
        mnist.load_data()


@needs_data
def test_load_data_shapes(monkeypatch):
    monkeypatch.setenv("LAMINA_DATA_DIR", str(DATA))
    (x_train, y_train), (x_test, y_test) = lamina.datasets.mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert set(np.unique(y_test)) == set(range(10))


@needs_data
def test_mnist_example_short_run(monkeypatch):
    monkeypatch.setenv("LAMINA_DATA_DIR", str(DATA))
    spec = importlib.util.spec_from_file_location("mnist_mlp", ROOT / "examples" / "mnist_mlp.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    start = time.perf_counter()
    accuracy, _ = example.run(epochs=1, train_samples=None, verbose=0)
    assert accuracy >= 0.95, f"test accuracy {accuracy:.4f} after one epoch"
    assert time.perf_counter() - start < 60
