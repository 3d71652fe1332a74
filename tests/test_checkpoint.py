"""Checkpoints: atomic under SIGKILL, and resuming continues training bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import lamina
from lamina import layers, saving

# Child processes import the same lamina this process imported (installed or a dev tree).
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(lamina.__file__)))
ENV = {**os.environ, "PYTHONPATH": PACKAGE_PARENT + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _model(seed):
    lamina.random.seed(seed)
    m = lamina.Sequential([layers.Dense(16, activation="relu", input_shape=(5,)), layers.Dropout(0.3),
                           layers.Dense(1)])
    m.compile(optimizer=lamina.optimizers.Adam(learning_rate=0.01), loss="mse")
    m(lamina.zeros((1, 5)))
    return m


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    return x, (x @ rng.normal(size=(5, 1))).astype(np.float32)


def _epoch(model, x, y):
    return [float(model.train_on_batch(x[i:i + 16], y[i:i + 16])) for i in range(0, len(x), 16)]


def test_resume_continues_bit_for_bit(tmp_path):
    x, y = _data()
    full = _model(1)
    lamina.random.seed(123)
    expected = [_epoch(full, x, y) for _ in range(6)]

    first = _model(1)
    lamina.random.seed(123)
    got = [_epoch(first, x, y) for _ in range(3)]
    first.save_checkpoint(tmp_path / "ckpt", epoch=2, extra={"note": "mid-run"})
    del first
    lamina.random.seed(999)  # the resumed process starts from another RNG state and init
    resumed = _model(7)
    info = resumed.load_checkpoint(tmp_path / "ckpt")
    assert info == {"epoch": 2, "extra": {"note": "mid-run"}}
    assert resumed.optimizer.iterations == 12
    got += [_epoch(resumed, x, y) for _ in range(info["epoch"] + 1, 6)]
    assert got == expected  # exact float equality, every batch


def test_checkpoint_without_optimizer_state_differs():
    """The optimizer state matters: resuming with fresh Adam moments changes the losses."""
    x, y = _data()
    a = _model(1)
    lamina.random.seed(5)
    _epoch(a, x, y)
    arrays, scalars = lamina.optimizers.optimizer.optimizer_state(a.optimizer, a.trainable_weights)
    assert set(k.split("/")[1] for k in arrays) == {"m", "v"} and scalars == {"iterations": "4"}


def test_checkpoint_rejects_other_files(tmp_path):
    m = _model(1)
    m.save_weights(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="not a Lamina checkpoint"):
        m.load_checkpoint(tmp_path / "w.safetensors")


WRITER = textwrap.dedent("""
    import sys
    import lamina
    from lamina import layers
    path = sys.argv[1]
    lamina.random.seed(0)
    m = lamina.Sequential([layers.Dense(256, input_shape=(256,)), layers.Dense(256)])
    m.compile(optimizer="adam", loss="mse")
    m(lamina.zeros((1, 256)))
    print("ready", flush=True)
    i = int(sys.argv[2])
    while True:
        i += 1
        with lamina.no_grad():
            for w in m.weights:
                w.fill_(float(i))
        m.save_checkpoint(path, epoch=i)
""")


def test_sigkill_while_checkpointing_leaves_the_previous_one_intact(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    path = tmp_path / "ckpt.lamina"
    rng = np.random.default_rng(0)
    start, kills, last_epoch = time.monotonic(), 0, 0
    probe = lamina.Sequential([layers.Dense(256, input_shape=(256,)), layers.Dense(256)])
    probe.compile(optimizer="adam", loss="mse")
    probe(lamina.zeros((1, 256)))
    while kills < 50:
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(last_epoch * 1000)], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(float(rng.uniform(0.0, 0.25)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if not path.exists():
            continue
        info = probe.load_checkpoint(path)  # must never raise: the file is old or new, not half
        epoch = info["epoch"]
        assert all(np.all(w.numpy() == float(epoch)) for w in probe.weights), f"kill {kills}: mixed weights"
        last_epoch = epoch
        assert time.monotonic() - start < 120
    assert last_epoch > 0
    for leftover in tmp_path.glob(".ckpt.lamina.*.tmp"):  # a killed writer may leave its temporary file
        leftover.unlink()
