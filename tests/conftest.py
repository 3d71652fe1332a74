"""Fixed seeds: every test starts from the same lamina and numpy random state."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # `import helpers` from any test file

import lamina as lm  # noqa: E402


@pytest.fixture(autouse=True)
def _fixed_seeds():
    lm.random.seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)
