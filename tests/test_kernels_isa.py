"""The float32 fast math (exp/tanh/sigmoid) against numpy float64 over the whole range,
and the AVX2 kernels against the baseline ones (LAMINA_CPU_ISA=generic in a subprocess)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lamina

REFS = {
    "exp": np.exp,
    "tanh": np.tanh,
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
}


def _grid():
    rng = np.random.default_rng(0)
    dense = np.linspace(-110.0, 88.7, 400_001)
    tiny = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-8, -1e-8, 0.2499, 0.2501, -0.25])
    return np.concatenate([dense, tiny, rng.standard_normal(100_000) * 4]).astype(np.float32)


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid"])
def test_fast_math_accuracy(name):
    x = _grid()
    got = getattr(lamina, name)(lamina.tensor(x)).numpy().astype(np.float64)
    want = REFS[name](x.astype(np.float64))
    normal = np.isfinite(want) & (np.abs(want) > np.finfo(np.float32).tiny) & (np.abs(want) < 3e38)
    rel = np.abs(got[normal] - want[normal]) / np.abs(want[normal])
    assert rel.max() < 1e-6, f"{name}: max relative error {rel.max():.3g}"


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid"])
def test_fast_math_special_values(name):
    x = np.array([np.nan, np.inf, -np.inf, 1000.0, -1000.0], np.float32)
    got = getattr(lamina, name)(lamina.tensor(x)).numpy()
    with np.errstate(over="ignore"):
        want = REFS[name](x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(got, want)


_PROGRAM = """
import json, numpy as np, lamina
rng = np.random.default_rng(1)
x = lamina.tensor((rng.standard_normal((37, 129)) * 5).astype(np.float32))
y = lamina.tensor(rng.standard_normal((129,)).astype(np.float32))
out = {
    "exp": lamina.exp(x), "tanh": lamina.tanh(x), "sigmoid": lamina.sigmoid(x),
    "gelu": lamina.gelu(x, "tanh"), "add": x + y, "div": x / y, "max": lamina.maximum(x, y),
    "softmax": lamina.softmax(x, axis=-1), "sum": x.sum(axis=0), "var": lamina.var(x, axis=1),
    "lse": lamina.logsumexp(x, axis=1),
}
print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}))
"""


def _run(env_isa):
    env = dict(os.environ)
    env.pop("LAMINA_CPU_ISA", None)
    if env_isa:
        env["LAMINA_CPU_ISA"] = env_isa
    res = subprocess.run([sys.executable, "-c", _PROGRAM], env=env, capture_output=True, text=True,
                         check=True)
    return {k: np.array(v, dtype=np.float64) for k, v in json.loads(res.stdout).items()}


def test_avx2_and_generic_kernels_agree():
    fast, base = _run(None), _run("generic")
    for key in fast:
        np.testing.assert_allclose(fast[key], base[key], rtol=2e-6, atol=1e-6, err_msg=key)
