"""Weight initializers, by name as in Keras (``kernel_initializer="he_normal"``).

An initializer is called as ``init(shape, dtype)`` and returns a new tensor. Random draws
use the global generator, so ``lamina.random.seed(n)`` makes them reproducible.
"""

import math

import numpy as np

import lamina


def _fans(shape):
    """(fan_in, fan_out) following Keras: the last two axes, times the receptive field."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: subclasses implement ``__call__(shape, dtype)``."""

    def __call__(self, shape, dtype="float32"):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Constant(Initializer):
    """Every element equals `value`."""

    def __init__(self, value=0.0):
        self.value = float(value)

    def __call__(self, shape, dtype="float32"):
        return lamina.full(tuple(shape), self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


class Zeros(Constant):
    """All zeros."""

    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {}


class Ones(Constant):
    """All ones."""

    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {}


class RandomNormal(Initializer):
    """Normal draws with the given mean and standard deviation."""

    def __init__(self, mean=0.0, stddev=0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype="float32"):
        return lamina.normal(self.mean, self.stddev, tuple(shape), dtype=dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


class RandomUniform(Initializer):
    """Uniform draws in [minval, maxval)."""

    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype="float32"):
        return lamina.uniform(self.minval, self.maxval, tuple(shape), dtype=dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval}


def _truncated_normal(shape, stddev, dtype):
    """Normal draws redrawn until within two standard deviations (as Keras does)."""
    values = lamina.normal(0.0, 1.0, tuple(shape), dtype="float64").numpy().copy()
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = lamina.normal(0.0, 1.0, (int(outside.sum()),), dtype="float64").numpy()
        outside = np.abs(values) > 2.0
    return lamina.tensor(values * stddev, dtype=dtype)


class VarianceScaling(Initializer):
    """Draws scaled by the layer's fan: the family behind Glorot, He and LeCun.

    Args:
        scale: Variance scale.
        mode: 'fan_in', 'fan_out' or 'fan_avg'.
        distribution: 'truncated_normal', 'untruncated_normal' or 'uniform'.
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal"):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling: mode must be fan_in, fan_out or fan_avg, got '{mode}'")
        if distribution not in ("truncated_normal", "untruncated_normal", "normal", "uniform"):
            raise ValueError(f"VarianceScaling: unknown distribution '{distribution}'")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape, dtype="float32"):
        fan_in, fan_out = _fans(tuple(shape))
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return lamina.uniform(-limit, limit, tuple(shape), dtype=dtype)
        if self.distribution in ("untruncated_normal", "normal"):
            return lamina.normal(0.0, math.sqrt(variance), tuple(shape), dtype=dtype)
        # 0.8796... is the standard deviation of a unit normal truncated to [-2, 2].
        return _truncated_normal(shape, math.sqrt(variance) / 0.87962566103423978, dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}


class GlorotUniform(VarianceScaling):
    """Uniform in +-sqrt(6 / (fan_in + fan_out))."""

    def __init__(self):
        super().__init__(1.0, "fan_avg", "uniform")

    def get_config(self):
        return {}


class GlorotNormal(VarianceScaling):
    """Truncated normal with stddev sqrt(2 / (fan_in + fan_out))."""

    def __init__(self):
        super().__init__(1.0, "fan_avg", "truncated_normal")

    def get_config(self):
        return {}


class HeNormal(VarianceScaling):
    """Truncated normal with stddev sqrt(2 / fan_in)."""

    def __init__(self):
        super().__init__(2.0, "fan_in", "truncated_normal")

    def get_config(self):
        return {}


class HeUniform(VarianceScaling):
    """Uniform in +-sqrt(6 / fan_in)."""

    def __init__(self):
        super().__init__(2.0, "fan_in", "uniform")

    def get_config(self):
        return {}


class LecunNormal(VarianceScaling):
    """Truncated normal with stddev sqrt(1 / fan_in)."""

    def __init__(self):
        super().__init__(1.0, "fan_in", "truncated_normal")

    def get_config(self):
        return {}


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times `gain`, from the QR decomposition of normal draws.

    Shapes of rank > 2 are flattened to (prod(shape[:-1]), shape[-1]).
    """

    def __init__(self, gain=1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype="float32"):
        rows, cols = (math.prod(shape[:-1]), shape[-1]) if len(shape) >= 2 else (1, shape[0] if shape else 1)
        draws = lamina.normal(0.0, 1.0, (max(rows, cols), min(rows, cols)), dtype="float64").numpy()
        q, r = np.linalg.qr(draws)
        q *= np.sign(np.diag(r))  # a uniform distribution over orthogonal matrices
        q = q if rows >= cols else q.T
        return lamina.tensor((self.gain * q).reshape(tuple(shape)), dtype=dtype)

    def get_config(self):
        return {"gain": self.gain}


_BY_NAME = {
    "orthogonal": Orthogonal,
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "random_uniform": RandomUniform, "uniform": RandomUniform, "normal": RandomNormal,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_normal": HeNormal,
    "he_uniform": HeUniform, "lecun_normal": LecunNormal, "variance_scaling": VarianceScaling,
}


def get(identifier):
    """An initializer from a name, an instance, a class or a callable ``(shape, dtype)``.

    Raises:
        ValueError: for an unknown name; the message lists the known names.
    """
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown initializer '{identifier}'. Known initializers: {', '.join(sorted(_BY_NAME))}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(f"initializer must be a name or a callable, got {type(identifier).__name__}")


def serialize(init):
    """A name for built-in initializers with default settings, else a config dict."""
    for name, cls in _BY_NAME.items():
        if type(init) is cls and isinstance(init, Initializer) and init.get_config() == cls().get_config():
            return name
    if isinstance(init, Initializer):
        return {"class_name": type(init).__name__, "config": init.get_config()}
    return init


def deserialize(config, custom_objects=None):
    """The inverse of serialize; registered classes (lamina.saving) are found by name."""
    from lamina import saving

    if isinstance(config, dict):
        known = {n: c for n, c in globals().items() if isinstance(c, type) and issubclass(c, Initializer)}
        cls = saving.lookup_class(config["class_name"], known, custom_objects, "initializer")
        return cls.from_config(config.get("config", {}))
    if isinstance(config, str) and config.lower() not in _BY_NAME:
        obj = saving.lookup_class(config, {}, custom_objects, "initializer")
        return obj() if isinstance(obj, type) else obj
    return get(config)
