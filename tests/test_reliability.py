"""Memory, threads, determinism and NaN detection."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import threading
import weakref

import numpy as np
import pytest

import lamina as lm
from lamina import layers

# Child processes import the same lamina this process imported (installed or a dev tree).
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(lm.__file__)))
ENV = {**os.environ, "PYTHONPATH": PACKAGE_PARENT + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _small_model():
    m = lm.Sequential([layers.Dense(32, activation="relu", input_shape=(8,)), layers.Dropout(0.1), layers.Dense(1)])
    m.compile(optimizer="adam", loss="mse")
    return m


# ----------------------------------------------------------------------------- memory
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_training_loop_rss_is_flat():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8)).astype(np.float32)
    y = rng.normal(size=(32, 1)).astype(np.float32)
    m = _small_model()
    xt, yt = lm.tensor(x), lm.tensor(y)
    for _ in range(200):  # warm-up: allocator pools, lazily created slots, caches
        m.train_step(xt, yt)
    gc.collect()
    before = _rss_bytes()
    for _ in range(2000):
        m.train_step(xt, yt)
    gc.collect()
    growth = (_rss_bytes() - before) / before
    assert growth < 0.01, f"RSS grew by {growth:.2%} over 2,000 steps"


def test_tensors_and_graphs_are_freed_when_unreachable():
    x = lm.ones((100,), requires_grad=True)
    y = lm.sum(lm.exp(x * 2.0))
    refs = [weakref.ref(x), weakref.ref(y)]
    y.backward()
    del x, y
    assert all(r() is None for r in refs)  # freed by refcounting alone, no gc needed
    a = lm.ones((3,), requires_grad=True)
    b = (a * a).sum()
    wb = weakref.ref(b)
    del b
    assert wb() is None  # an unreachable graph goes with its root


def test_models_do_not_leak_through_cycles():
    def make_and_train():
        m = _small_model()
        m.fit(np.zeros((8, 8), np.float32), np.zeros((8, 1), np.float32), epochs=1, verbose=0)
        return weakref.ref(m), [weakref.ref(w) for w in m.weights]

    ref, weights = make_and_train()
    gc.collect()
    assert ref() is None, "model still alive after gc"
    assert all(w() is None for w in weights), "weights still alive after the model is gone"


# ----------------------------------------------------------------------------- threads
def test_concurrent_ops_on_four_threads():
    errors, results = [], {}

    def work(k):
        try:
            rng = np.random.default_rng(k)
            a_np = rng.normal(size=(64, 64)).astype(np.float32)
            big_np = rng.normal(size=(200_000,)).astype(np.float32)  # large: the GIL is released
            a, big = lm.tensor(a_np), lm.tensor(big_np)
            for i in range(1000):
                if i % 4 == 0:
                    out = (a @ a).numpy()
                    np.testing.assert_allclose(out, a_np @ a_np, rtol=1e-4, atol=1e-3)
                elif i % 4 == 1:
                    s = float(lm.sum(big * 2.0))
                    assert abs(s - 2.0 * float(big_np.astype(np.float64).sum())) < 1.0
                elif i % 4 == 2:
                    x = lm.tensor(a_np, requires_grad=True)
                    lm.sum(lm.tanh(x)).backward()
                    np.testing.assert_allclose(x.grad.numpy(), 1 - np.tanh(a_np) ** 2, rtol=1e-4, atol=1e-5)
                else:
                    np.testing.assert_allclose(lm.softmax(a).numpy().sum(axis=-1), 1.0, rtol=1e-5)
            results[k] = True
        except Exception as e:  # noqa: BLE001
            errors.append(f"thread {k}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 4


# ----------------------------------------------------------------------------- determinism
def _conv_weight_grad():
    out = []
    for n in (3, 12):  # fewer images than the fixed chunk count, and more
        lm.random.seed(1)
        x = lm.randn((n, 8, 33, 33))
        w = lm.randn((16, 8, 3, 3), dtype="float32").requires_grad_()
        lm.sum(lm.conv2d(x, w, padding=1) ** 2).backward()
        out.append(w.grad.numpy())
    return out


def _attention_grads():
    lm.random.seed(2)
    q = lm.randn((2, 4, 70, 32)).requires_grad_()
    k = lm.randn((2, 4, 90, 32)).requires_grad_()
    v = lm.randn((2, 4, 90, 32)).requires_grad_()
    out = lm.scaled_dot_product_attention(q, k, v, causal=False)
    lm.sum(out * out).backward()
    return [out.detach().numpy(), q.grad.numpy(), k.grad.numpy(), v.grad.numpy()]


def _big_reductions():
    lm.random.seed(3)
    x = lm.randn((1000, 1000))
    return [lm.sum(x).numpy(), lm.mean(x, axis=0).numpy(), (x @ x).numpy()]


@pytest.mark.parametrize("compute", [_conv_weight_grad, _attention_grads, _big_reductions])
def test_bitwise_identical_across_thread_counts(compute):
    before = lm.get_num_threads()
    try:
        lm.use_deterministic_algorithms(True)
        results = []
        for n in (1, 2, 3, 4):
            lm.set_num_threads(n)
            results.append(compute())
    finally:
        lm.set_num_threads(before)
        lm.use_deterministic_algorithms(False)
    for r in results[1:]:
        for a, b in zip(np.atleast_1d(results[0]) if not isinstance(results[0], list) else results[0],
                        r if isinstance(r, list) else np.atleast_1d(r)):
            assert np.array_equal(a, b), "results differ between thread counts"


def test_deterministic_switch():
    assert lm.are_deterministic_algorithms_enabled() is False
    lm.use_deterministic_algorithms(True)
    assert lm.are_deterministic_algorithms_enabled() is True
    lm.use_deterministic_algorithms(False)
    with pytest.raises(TypeError, match="use_deterministic_algorithms"):
        lm.use_deterministic_algorithms("yes")
    assert lm.debug.NONDETERMINISTIC_OPS == ()


RUN = textwrap.dedent("""
    import json, numpy as np, lamina as lm
    from lamina import layers
    lm.random.seed(42)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 10)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    m = lm.Sequential([layers.Dense(32, activation="relu", input_shape=(10,)), layers.Dropout(0.2),
                       layers.Dense(1, activation="sigmoid")])
    m.compile(optimizer="adam", loss="binary_crossentropy")
    losses = [float(m.train_on_batch(x[i:i + 32], y[i:i + 32])) for _ in range(3) for i in range(0, 256, 32)]
    print(json.dumps([l.hex() for l in losses]))
""")


def test_seeded_training_is_bitwise_reproducible_across_processes():
    outs = [subprocess.run([sys.executable, "-c", RUN], env=ENV, capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    a, b = (json.loads(o) for o in outs)
    assert len(a) == 24 and a == b


FORK_RUN = textwrap.dedent("""
    import os, sys, threading, numpy as np, lamina as lm
    lm.set_num_threads(2)
    rng = np.random.default_rng(0)
    x = lm.tensor(rng.standard_normal((64, 6, 32)).astype(np.float32))
    w_ih, w_hh = (lm.tensor(rng.standard_normal(s).astype(np.float32) * 0.1) for s in [(512, 32), (512, 128)])
    b = lm.tensor(np.zeros(512, np.float32))
    a = lm.tensor(rng.standard_normal((384, 384)).astype(np.float32))
    want = lm.lstm(x, None, None, w_ih, w_hh, b)[0].numpy()
    stop = False

    def busy():  # parallel jobs, some allocating inside their workers, while we fork
        while not stop:
            lm.sum(lm.exp(lm.matmul(a, a) * 1e-3))
            lm.lstm(x, None, None, w_ih, w_hh, b)

    worker = threading.Thread(target=busy)
    worker.start()
    codes = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:  # the child: the pool's workers were not copied
            ok = np.array_equal(lm.lstm(x, None, None, w_ih, w_hh, b)[0].numpy(), want)
            lm.matmul(a, a)
            os._exit(0 if ok and lm.get_num_threads() == 2 else 3)
        codes.append(os.waitpid(pid, 0)[1])
    stop = True
    worker.join()
    print(codes)
""")


def test_forked_child_runs_parallel_ops():
    # Before the fork handlers, the child's LSTM waited forever at its team's barrier.
    done = subprocess.run([sys.executable, "-c", FORK_RUN], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 0, 0, 0]"


# ----------------------------------------------------------------------------- NaN detection
def test_detect_anomaly_names_the_first_bad_op():
    x = lm.tensor([1.0, -1.0, 4.0])
    with lm.debug.detect_anomaly():
        y = lm.sqrt(x * x)  # fine
        with pytest.raises(RuntimeError, match=r"detect_anomaly: log produced NaN/Inf.*min=-2.*has_nan=False"):
            lm.log(x - 2.0 + y * 0.0 + 1.0)
        with pytest.raises(RuntimeError, match="detect_anomaly: divide"):
            x / 0.0
        with pytest.raises(RuntimeError, match="detect_anomaly: matmul"):
            lm.tensor([[1e30, 1e30]]) @ lm.tensor([[1e30], [1e30]])
        assert lm.debug.is_anomaly_enabled()
    assert not lm.debug.is_anomaly_enabled()
    assert np.isnan(lm.log(x).numpy()[1])  # off again: NaN is returned, not raised


def test_detect_anomaly_in_a_model_forward():
    m = lm.Sequential([layers.Dense(2, input_shape=(2,))])
    m(lm.ones((1, 2)))
    with lm.no_grad():
        m.weights[0].fill_(float("inf"))
    with lm.debug.detect_anomaly(), pytest.raises(RuntimeError, match="detect_anomaly"):
        m(lm.tensor([[1.0, -1.0]]))


def test_terminate_on_nan_stops_fit():
    x = np.ones((64, 2), np.float32)
    y = np.ones((64, 1), np.float32)
    m = lm.Sequential([layers.Dense(1, input_shape=(2,))])
    m.compile(optimizer=lm.optimizers.SGD(learning_rate=1e30), loss="mse")
    seen = []
    cb = lm.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(logs["loss"]))
    history = m.fit(x, y, batch_size=8, epochs=20, verbose=0, callbacks=[lm.callbacks.TerminateOnNaN(), cb])
    assert not np.isfinite(seen[-1])
    assert len(seen) < 8 * 20 and len(history.history["loss"]) == 1
