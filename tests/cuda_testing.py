"""Shared pieces of the device tests (tests/test_cuda_emulated*.py): the skip marker for
builds without the CUDA backend, the device-vs-CPU comparison, and the runner that repeats a
test file's workload under a SIMT_SEED thread order in a fresh process."""

import os
import subprocess
import sys

import numpy as np
import pytest

import lamina as lm

HAVE_CUDA = lm.cuda.is_available()
needs_cuda = pytest.mark.skipif(
    not HAVE_CUDA and not os.environ.get("LAMINA_EXPECT_CUDA"),
    reason="this build of Lamina has no CUDA backend (scripts/test_cuda_emulated.sh builds one)",
)


def close(got, want, rtol=1e-5, what="", elementwise=True):
    """got within rtol of want, relative to the largest magnitude of want (summation orders
    differ between the devices); elementwise=False drops the per-element relative term."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-30)
    np.testing.assert_allclose(got, want, rtol=rtol if elementwise else 0, atol=rtol * scale, err_msg=what)


def uniform(shape, seed, low=-2.0, high=2.0, dtype=np.float32):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)


def run_seeded(module, function, seed):
    """stdout of `module.function()` run in a new process under SIMT_SEED=seed (the emulator
    reads it once per process); fails the test when the process fails."""
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(lm.__file__)))
    path = os.pathsep.join(filter(None, [package_root, tests_dir, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, SIMT_SEED=str(seed), PYTHONPATH=path)
    done = subprocess.run([sys.executable, "-c", f"import {module} as t; t.{function}()"], cwd=tests_dir, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def outputs_and_grads(fn, arrays, device, dtype="float32"):
    """fn's output and the gradients of sum(out * w) for a fixed w, as float64 numpy."""
    xs = []
    for a in arrays:
        t = lm.tensor(a, device=device).astype(dtype).detach()
        t.requires_grad = True
        xs.append(t)
    out = fn(*xs)
    weights = lm.tensor(np.linspace(-1, 1, out.size, dtype=np.float32).reshape(out.shape), device=device)
    lm.sum(out.astype("float32") * weights).backward()
    return [out.cpu().astype("float64").numpy()] + [x.grad.cpu().astype("float64").numpy() for x in xs]


def optimizer_case(kind):
    """fn(params, grads, states, step) running one fused optimizer update, and the number of state
    lists it takes: the cases the device optimizer tests share."""
    cases = {
        "sgd": (lambda p, g, s, t: lm.sgd_step(p, g, None, lr=0.1), 0),
        "sgd_momentum_l2": (lambda p, g, s, t: lm.sgd_step(p, g, s[0], lr=0.1, momentum=0.9, weight_decay=0.01,
                                                          decoupled=False), 1),
        "sgd_nesterov_decay": (lambda p, g, s, t: lm.sgd_step(p, g, s[0], lr=0.05, momentum=0.8, nesterov=True,
                                                             weight_decay=0.05), 1),
        "adam": (lambda p, g, s, t: lm.adam_step(p, g, s[0], s[1], t, lr=0.01), 2),
        "adamw_amsgrad": (lambda p, g, s, t: lm.adam_step(p, g, s[0], s[1], t, lr=0.01, weight_decay=0.01,
                                                         v_max=s[2]), 3),
        "adam_l2": (lambda p, g, s, t: lm.adam_step(p, g, s[0], s[1], t, lr=0.01, weight_decay=0.1,
                                                   decoupled=False), 2),
        "rmsprop": (lambda p, g, s, t: lm.rmsprop_step(p, g, s[0], lr=0.01), 1),
        "rmsprop_centered_momentum": (lambda p, g, s, t: lm.rmsprop_step(p, g, s[0], s[1], s[2], lr=0.01,
                                                                        momentum=0.9, weight_decay=0.01), 3),
        "rmsprop_momentum_l2": (lambda p, g, s, t: lm.rmsprop_step(p, g, s[0], None, s[1], lr=0.01, momentum=0.5,
                                                                  weight_decay=0.02, decoupled=False), 2),
        "adagrad": (lambda p, g, s, t: lm.adagrad_step(p, g, s[0], lr=0.1, weight_decay=0.01), 1),
        "adagrad_l2": (lambda p, g, s, t: lm.adagrad_step(p, g, s[0], lr=0.1, weight_decay=0.01,
                                                         decoupled=False), 1),
    }
    return cases[kind]


OPTIMIZER_CASES = ["sgd", "sgd_momentum_l2", "sgd_nesterov_decay", "adam", "adamw_amsgrad", "adam_l2", "rmsprop",
              "rmsprop_centered_momentum", "rmsprop_momentum_l2", "adagrad", "adagrad_l2"]
