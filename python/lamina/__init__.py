"""Lamina: a native tensor and autograd engine under a Keras-like Python layer."""

from lamina import _core
from lamina._core import *  # noqa: F401,F403  (the tensor API is the native module's)
from lamina._core import Tensor
import lamina.cuda  # noqa: E402  (the Python module, not _core.cuda, which the star import bound)
from lamina import random
from lamina._methods import attach as _attach_methods
from lamina.autograd import Function, enable_grad, grad, gradcheck, no_grad, value_and_grad
from lamina import debug
from lamina.debug import are_deterministic_algorithms_enabled, use_deterministic_algorithms

__version__ = "0.1.0"

_attach_methods(Tensor)

# The Keras-like layer is imported on first use so that `import lamina` stays light.
_LAZY_MODULES = ("layers", "losses", "optimizers", "metrics", "callbacks", "datasets", "models", "activations",
                 "initializers", "regularizers", "saving", "data", "mixed_precision")
_LAZY_NAMES = {"Sequential": "lamina.models", "Model": "lamina.models", "Input": "lamina.models"}


def __getattr__(name):
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f"lamina.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'lamina' has no attribute '{name}'")

float32 = "float32"
float64 = "float64"
float16 = "float16"
bfloat16 = "bfloat16"
int32 = "int32"
int64 = "int64"
uint8 = "uint8"
bool_ = "bool"

__all__ = [name for name in dir(_core) if not name.startswith("_")] + [
    "Function", "enable_grad", "grad", "gradcheck", "no_grad", "value_and_grad", "random", "debug",
    "use_deterministic_algorithms", "are_deterministic_algorithms_enabled",
    *_LAZY_MODULES, *_LAZY_NAMES,
]
