"""Lamina: a native tensor and autograd engine under a Keras-like Python layer."""

from lamina import _core
from lamina._core import *  # noqa: F401,F403  (the tensor API is the native module's)
from lamina._core import Tensor
from lamina import random
from lamina._methods import attach as _attach_methods
from lamina.autograd import Function, enable_grad, grad, gradcheck, no_grad, value_and_grad

__version__ = "0.1.0"

_attach_methods(Tensor)

float32 = "float32"
float64 = "float64"
float16 = "float16"
bfloat16 = "bfloat16"
int32 = "int32"
int64 = "int64"
uint8 = "uint8"
bool_ = "bool"

__all__ = [name for name in dir(_core) if not name.startswith("_")] + [
    "Function", "enable_grad", "grad", "gradcheck", "no_grad", "value_and_grad", "random",
]
