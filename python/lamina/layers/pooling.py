"""Pooling and resizing layers over the native NCHW ops, channels-last by default (Keras).

'same' padding follows TensorFlow: the output has ceil(input / stride) positions and the
padding (extra after) is ignored: max pooling never picks it, average pooling divides by the
number of real inputs in each window.
"""

import math

import numpy as np

import lamina
from lamina.layers.base import Layer
from lamina.layers.conv import (
    from_channels_first,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    to_channels_first,
)


def _same_pads(sizes, kernel, strides):
    pads = []
    for size, k, s in zip(sizes, kernel, strides):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return pads


class _Pooling(Layer):
    """Shared arguments of the pooling layers.

    Args:
        pool_size: Window size, an int or one int per spatial axis.
        strides: Step, an int or one per spatial axis (default: pool_size).
        padding: 'valid' or 'same'.
        data_format: 'channels_last' (default) or 'channels_first'.
    """

    rank = 2
    mode = "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        what = type(self).__name__
        self.pool_size = normalize_tuple(pool_size, self.rank, f"{what}: pool_size")
        self.strides = normalize_tuple(strides if strides is not None else self.pool_size, self.rank,
                                       f"{what}: strides")
        self.padding = normalize_padding(padding, what)
        self.data_format = normalize_data_format(data_format, what)

    def build(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"{type(self).__name__} '{self.name}' takes inputs of rank {self.rank + 2}, got shape "
                             f"{tuple(input_shape)}")

    def _check_input_shape(self, shape):
        if len(shape) != self.rank + 2:
            raise ValueError(f"Input of layer '{self.name}' has shape {tuple(shape)}; expected rank {self.rank + 2}")

    def call(self, x, training=False):
        x = to_channels_first(x, self.data_format)
        if self.rank == 1:
            x = lamina.unsqueeze(x, 2)  # (N, C, 1, L): one 2-D code path for both ranks
        kernel, strides = (1,) * (2 - self.rank) + self.pool_size, (1,) * (2 - self.rank) + self.strides
        pads = _same_pads(x.shape[2:], kernel, strides) if self.padding == "same" else [(0, 0), (0, 0)]
        if self.mode == "max":
            if any(a or b for a, b in pads):
                x = lamina.pad(x, ((0, 0), (0, 0)) + tuple(pads), value=float("-inf"))
            y = lamina.max_pool2d(x, kernel, strides)
        else:
            y = lamina.avg_pool2d(lamina.pad(x, ((0, 0), (0, 0)) + tuple(pads)) if any(map(any, pads)) else x,
                                  kernel, strides)
            if any(map(any, pads)):  # divide by the real inputs per window, not the window size
                ones = np.pad(np.ones(x.shape[2:]), pads)[None, None]
                counts = lamina.avg_pool2d(lamina.tensor(ones, dtype=y.dtype), kernel, strides)
                y = y / counts
        if self.rank == 1:
            y = lamina.squeeze(y, 2)
        return from_channels_first(y, self.data_format)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling1D(_Pooling):
    """Max over windows of `pool_size` steps of (batch, steps, channels)."""

    rank, mode = 1, "max"


class AveragePooling1D(_Pooling):
    """Mean over windows of `pool_size` steps of (batch, steps, channels)."""

    rank, mode = 1, "avg"


class MaxPooling2D(_Pooling):
    """Max over pool_size windows of images (batch, height, width, channels)."""

    rank, mode = 2, "max"


class AveragePooling2D(_Pooling):
    """Mean over pool_size windows of images (batch, height, width, channels)."""

    rank, mode = 2, "avg"


class GlobalAveragePooling2D(Layer):
    """Mean over height and width: (batch, h, w, channels) -> (batch, channels).

    Args:
        data_format: 'channels_last' (default) or 'channels_first'.
        keepdims: Keep the spatial axes with size 1.
    """

    def __init__(self, data_format="channels_last", keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format, "GlobalAveragePooling2D")
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"GlobalAveragePooling2D '{self.name}' takes 4-D inputs, got {tuple(input_shape)}")

    _check_input_shape = Layer._check_rank

    def call(self, x, training=False):
        if self.data_format == "channels_first":
            return lamina.global_avg_pool2d(x, self.keepdims)
        return lamina.mean(x, (1, 2), self.keepdims)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling1D(Layer):
    """Mean over steps: (batch, steps, features) -> (batch, features), skipping masked steps.

    Args:
        data_format: 'channels_last' (default) or 'channels_first'.
        keepdims: Keep the steps axis with size 1.
    """

    supports_masking = True

    def __init__(self, data_format="channels_last", keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format, "GlobalAveragePooling1D")
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"GlobalAveragePooling1D '{self.name}' takes 3-D inputs, got {tuple(input_shape)}")

    _check_input_shape = Layer._check_rank

    def call(self, x, training=False, mask=None):
        axis = 1 if self.data_format == "channels_last" else 2
        if mask is None:
            return lamina.mean(x, axis, self.keepdims)
        weights = lamina.unsqueeze(mask.astype(x.dtype), 2 if axis == 1 else 1)
        total = lamina.sum(x * weights, axis, self.keepdims)
        return total / lamina.maximum(lamina.sum(weights, axis, self.keepdims), lamina.ones((), dtype=x.dtype))

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class UpSampling2D(Layer):
    """Repeats rows and columns: (batch, h, w, c) -> (batch, h * size[0], w * size[1], c).

    Args:
        size: Integer factors, an int or (rows, cols).
        data_format: 'channels_last' (default) or 'channels_first'.
        interpolation: 'nearest' (the only mode).
    """

    def __init__(self, size=(2, 2), data_format="channels_last", interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = normalize_tuple(size, 2, "UpSampling2D: size")
        self.data_format = normalize_data_format(data_format, "UpSampling2D")
        if interpolation != "nearest":
            raise ValueError(f"UpSampling2D: only interpolation='nearest' is supported, got {interpolation!r}")
        self.interpolation = interpolation

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"UpSampling2D '{self.name}' takes 4-D inputs, got {tuple(input_shape)}")

    _check_input_shape = Layer._check_rank

    def call(self, x, training=False):
        y = lamina.upsample_nearest2d(to_channels_first(x, self.data_format), self.size)
        return from_channels_first(y, self.data_format)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "data_format": self.data_format,
                "interpolation": self.interpolation}
