"""Random data augmentation layers, active only when ``training=True`` (identity otherwise).

Images are channels-last, (batch, height, width, channels), as in Keras. Random draws come
from the layer's own generator when it has a `seed` (reproducible), else from Lamina's
global generator (so ``lamina.random.seed`` makes them reproducible too).
"""

import numpy as np

import lamina
from lamina.layers.base import Layer


class _RandomLayer(Layer):
    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def _check_input_shape(self, shape):
        pass

    def _uniform(self, shape, low=0.0, high=1.0):
        if self._rng is not None:
            return self._rng.uniform(low, high, size=shape)
        return lamina.uniform(low, high, tuple(shape), dtype="float64").numpy()

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def _check_images(layer, x):
    if x.ndim != 4:
        raise ValueError(f"{type(layer).__name__} '{layer.name}' takes images (batch, height, width, channels), got "
                         f"shape {tuple(x.shape)}")


class RandomFlip(_RandomLayer):
    """Flips each image, with probability 1/2, left-right and/or upside down.

    Args:
        mode: 'horizontal', 'vertical' or 'horizontal_and_vertical'.
        seed: Seed of the layer's own generator.
    """

    _MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        if mode not in self._MODES:
            raise ValueError(f"RandomFlip: mode must be one of {self._MODES}, got '{mode}'")
        self.mode = mode

    def _flip(self, x, axis):
        n = x.shape[0]
        size = x.shape[axis]
        flipped = lamina.take(x, lamina.tensor(np.arange(size - 1, -1, -1, dtype=np.int64)), axis)
        chosen = self._uniform((n,)) < 0.5
        mask = lamina.tensor(chosen.reshape((n,) + (1,) * (x.ndim - 1)))
        return lamina.where(mask, flipped, x)

    def call(self, x, training=False):
        if not training:
            return x
        _check_images(self, x)
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            x = self._flip(x, 2)
        if self.mode in ("vertical", "horizontal_and_vertical"):
            x = self._flip(x, 1)
        return x

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class RandomTranslation(_RandomLayer):
    """Shifts each image by a random whole number of pixels, filling the uncovered border.

    Args:
        height_factor: Largest vertical shift as a fraction of the height (a float f for
            [-f, f], or a (low, high) pair).
        width_factor: The same, horizontally.
        fill_mode: 'constant' (fill with `fill_value`) or 'nearest' (repeat the edge pixel).
        fill_value: Value of the border in 'constant' mode.
        seed: Seed of the layer's own generator.
    """

    def __init__(self, height_factor, width_factor, fill_mode="constant", fill_value=0.0, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.height_factor = self._range(height_factor, "height_factor")
        self.width_factor = self._range(width_factor, "width_factor")
        if fill_mode not in ("constant", "nearest"):
            raise ValueError(f"RandomTranslation: fill_mode must be 'constant' or 'nearest', got '{fill_mode}'")
        self.fill_mode, self.fill_value = fill_mode, float(fill_value)

    @staticmethod
    def _range(factor, what):
        low, high = (factor if isinstance(factor, (list, tuple)) else (-factor, factor))
        if not -1.0 <= low <= high <= 1.0:
            raise ValueError(f"RandomTranslation: {what} must lie in [-1, 1], got {factor}")
        return [float(low), float(high)]

    def _shift(self, x, axis, factor):
        n, size = x.shape[0], x.shape[axis]
        shifts = np.round(self._uniform((n,), factor[0] * size, factor[1] * size)).astype(np.int64)
        shape = [1] * x.ndim
        shape[0], shape[axis] = n, size
        source = np.arange(size).reshape([1] * axis + [size] + [1] * (x.ndim - axis - 1))
        source = source - shifts.reshape([n] + [1] * (x.ndim - 1))
        inside = (source >= 0) & (source < size)
        index = np.broadcast_to(np.clip(source, 0, size - 1), x.shape).astype(np.int64)
        out = lamina.gather(x, axis, lamina.tensor(np.ascontiguousarray(index)))
        if self.fill_mode == "constant" and not inside.all():
            fill = lamina.full((1,) * x.ndim, self.fill_value, dtype=x.dtype)
            out = lamina.where(lamina.tensor(np.broadcast_to(inside, x.shape).copy()), out, fill)
        return out

    def call(self, x, training=False):
        if not training:
            return x
        _check_images(self, x)
        if self.height_factor != [0.0, 0.0]:
            x = self._shift(x, 1, self.height_factor)
        if self.width_factor != [0.0, 0.0]:
            x = self._shift(x, 2, self.width_factor)
        return x

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor,
                "fill_mode": self.fill_mode, "fill_value": self.fill_value}


class GaussianNoise(_RandomLayer):
    """Adds zero-mean normal noise of standard deviation `stddev` during training.

    Args:
        stddev: Standard deviation of the noise.
        seed: Seed of the layer's own generator.
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        if stddev < 0:
            raise ValueError(f"GaussianNoise: stddev must be >= 0, got {stddev}")
        self.stddev = float(stddev)

    def call(self, x, training=False):
        if not training or self.stddev == 0.0:
            return x
        if self._rng is not None:
            noise = lamina.tensor(self._rng.normal(0.0, self.stddev, tuple(x.shape)), dtype=x.dtype)
        else:
            noise = lamina.normal(0.0, self.stddev, tuple(x.shape), dtype=x.dtype)
        return x + noise

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


RandomNoise = GaussianNoise
