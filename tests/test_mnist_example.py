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
        mnist.load_data(download=False)


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


class _FakeResponse:
    def __init__(self, payload):
        self._payload = payload

    def read(self):
        return self._payload

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _idx_bytes(dims):
    header = bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    n = int(np.prod(dims))
    return gzip.compress(header + (np.arange(n) % 10).astype(np.uint8).tobytes())


def test_download_is_validated_and_atomic(tmp_path, monkeypatch):
    """The download path, served from memory (no network): every file is checked by the
    IDX reader before it is moved into place, and an unreachable mirror ends in the
    FileNotFoundError that says where to put the files."""
    import urllib.request

    from lamina.datasets import idx

    monkeypatch.setenv("HOME", str(tmp_path))
    dims = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}
    served = {name: _idx_bytes(dims[key]) for key, name in idx.FILES.items()}
    served["t10k-labels-idx1-ubyte.gz"] = b"not an idx file"
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: _FakeResponse(served[url.rsplit("/", 1)[1]]))
    assert idx.download("mnist", ["https://mirror.invalid/"]) is None  # corrupt file rejected
    folder = tmp_path / ".lamina" / "datasets" / "mnist"
    assert not (folder / "t10k-labels-idx1-ubyte.gz").exists()
    assert not [p for p in folder.iterdir() if ".tmp" in p.name]

    served["t10k-labels-idx1-ubyte.gz"] = _idx_bytes((10000,))
    assert idx.download("mnist", ["https://mirror.invalid/"]) == folder
    (x_train, y_train), (x_test, y_test) = mnist.load_data(download=False)
    assert x_train.shape == (60000, 28, 28) and y_test.shape == (10000,)


def test_unreachable_mirror_explains_where_to_put_files(tmp_path, monkeypatch):
    import urllib.request

    def offline(url, timeout=None):
        raise OSError("network unreachable")

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LAMINA_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match="LAMINA_DATA_DIR"):
        mnist.load_data()
