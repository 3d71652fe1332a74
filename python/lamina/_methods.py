"""Method forms of functional ops (x.sum(), x.exp(), ...), attached to Tensor once at import.

Each method forwards to the function of the same name in the native module, so the op
lives in one place and the method is one line here.
"""

from lamina import _core

_SAME_NAME = [
    "sum", "mean", "var", "std", "max", "min", "argmax", "argmin", "prod", "logsumexp", "cumsum",
    "softmax", "log_softmax", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh",
    "sigmoid", "relu", "abs", "sign", "square", "reciprocal", "floor", "ceil", "round", "clip",
    "flatten", "squeeze", "unsqueeze", "take", "gather", "isnan", "isinf", "isfinite", "matmul",
    "maximum", "minimum", "where", "erf", "gelu", "silu", "softplus", "leaky_relu", "elu", "selu",
    "split", "chunk", "swapaxes",
]
_RENAMED = {"neg": "negative", "add": "add", "sub": "subtract", "mul": "multiply", "div": "divide",
            "pow": "power", "clamp": "clip"}


def _forward(fn_name):
    def method(self, *args, **kwargs):
        return getattr(_core, fn_name)(self, *args, **kwargs)

    method.__name__ = fn_name
    method.__doc__ = f"Same as lamina.{fn_name}(self, ...)."
    return method


def attach(cls) -> None:
    for name in _SAME_NAME:
        if hasattr(_core, name) and not hasattr(cls, name):
            setattr(cls, name, _forward(name))
    for name, target in _RENAMED.items():
        if hasattr(_core, target) and not hasattr(cls, name):
            setattr(cls, name, _forward(target))
