"""Convolution layers: Conv1D, Conv2D and Conv2DTranspose over the native NCHW conv ops.

Data is channels-last by default, as in Keras ((batch, steps, channels) and (batch, height,
width, channels)); ``data_format='channels_first'`` takes (batch, channels, ...) and skips
the transposes around the native op. Kernels are stored in Keras' layouts, so weights
exported from Keras load unchanged:

* Conv1D: (kernel_size, in_channels / groups, filters)
* Conv2D: (kernel_h, kernel_w, in_channels / groups, filters)
* Conv2DTranspose: (kernel_h, kernel_w, filters, in_channels)

and are permuted to PyTorch's layout (which the native ops take) on each call.
"""

import lamina
from lamina import activations, initializers, regularizers
from lamina.layers.base import Layer


def normalize_tuple(value, n, what):
    """`value` (an int or n ints) as a tuple of n positive ints."""
    values = (value,) * n if isinstance(value, int) else tuple(int(v) for v in value)
    if len(values) != n or any(v <= 0 for v in values):
        raise ValueError(f"{what} must be a positive int or a tuple of {n} positive ints, got {value!r}")
    return values


def normalize_data_format(value, what):
    if value not in ("channels_last", "channels_first"):
        raise ValueError(f"{what}: data_format must be 'channels_last' or 'channels_first', got {value!r}")
    return value


def normalize_padding(value, what, allowed=("valid", "same")):
    padding = value.lower() if isinstance(value, str) else value
    if padding not in allowed:
        raise ValueError(f"{what}: padding must be one of {allowed}, got {value!r}")
    return padding


def to_channels_first(x, data_format):
    """(N, *spatial, C) -> (N, C, *spatial) when channels-last; unchanged otherwise."""
    if data_format == "channels_first":
        return x
    return lamina.permute(x, (0, x.ndim - 1) + tuple(range(1, x.ndim - 1)))


def from_channels_first(x, data_format):
    """(N, C, *spatial) -> (N, *spatial, C) when channels-last; unchanged otherwise."""
    if data_format == "channels_first":
        return x
    return lamina.permute(x, (0,) + tuple(range(2, x.ndim)) + (1,))


class _Conv(Layer):
    """Shared arguments, weights and config of the convolution layers.

    Args:
        filters: Number of output channels.
        kernel_size: An int or one int per spatial axis.
        strides: An int or one int per spatial axis.
        padding: 'valid' (no padding) or 'same' (output size ceil(input / stride), the extra
            padding after, as in TensorFlow); Conv1D also takes 'causal'.
        data_format: 'channels_last' (default) or 'channels_first'.
        dilation_rate: An int or one int per spatial axis.
        groups: Input channels and filters are split into this many groups, each
            convolved separately (in_channels and filters must divide by it).
        activation: Activation name or callable (None: linear).
        use_bias: Whether to add a bias per filter.
    """

    rank = 2
    _paddings = ("valid", "same")

    _config_weight_settings = ("kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format="channels_last",
                 dilation_rate=1, groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        what = type(self).__name__
        if not isinstance(filters, int) or filters <= 0:
            raise ValueError(f"{what}: filters must be a positive int, got {filters!r}")
        if not isinstance(groups, int) or groups <= 0 or filters % groups:
            raise ValueError(f"{what}: groups must be a positive int dividing filters={filters}, got {groups!r}")
        self.filters, self.groups = filters, groups
        self.kernel_size = normalize_tuple(kernel_size, self.rank, f"{what}: kernel_size")
        self.strides = normalize_tuple(strides, self.rank, f"{what}: strides")
        self.dilation_rate = normalize_tuple(dilation_rate, self.rank, f"{what}: dilation_rate")
        self.padding = normalize_padding(padding, what, self._paddings)
        self.data_format = normalize_data_format(data_format, what)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{what}: strides > 1 together with dilation_rate > 1 is not supported")
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def _channels(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"{type(self).__name__} '{self.name}' takes inputs of rank {self.rank + 2} "
                             f"(batch, {'spatial, ' * self.rank}channels), got shape {tuple(input_shape)}")
        channels = input_shape[1] if self.data_format == "channels_first" else input_shape[-1]
        if channels is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': the channel axis must have a known size")
        return channels

    def _kernel_shape(self, channels):
        if channels % self.groups:
            raise ValueError(f"{type(self).__name__} '{self.name}': {channels} input channels do not divide into "
                             f"groups={self.groups}")
        return self.kernel_size + (channels // self.groups, self.filters)

    def build(self, input_shape):
        channels = self._channels(input_shape)
        self.kernel = self.add_weight("kernel", self._kernel_shape(channels), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer, regularizer=self.bias_regularizer)
                     if self.use_bias else None)

    def _check_input_shape(self, shape):
        if len(shape) != self.rank + 2 or self._channels(shape) != self._channels(self.input_shape):
            raise ValueError(f"Input of layer '{self.name}' has shape {tuple(shape)}, but the layer was built for "
                             f"{self.input_shape}")

    def _torch_kernel(self):
        """The kernel in PyTorch's (C_out, C_in / groups, *kernel) layout."""
        k = self.cast(self.kernel)
        return lamina.permute(k, (self.rank + 1, self.rank) + tuple(range(self.rank)))

    def call(self, x, training=False):
        bias = self.cast(self.bias) if self.bias is not None else None
        y = self._convolve(to_channels_first(x, self.data_format), self._torch_kernel(), bias)
        return self.activation(from_channels_first(y, self.data_format))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate), "groups": self.groups,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias}


class Conv1D(_Conv):
    """1-D convolution over (batch, steps, channels) (or (batch, channels, steps)).

    padding='causal' pads (kernel_size - 1) * dilation_rate steps on the left only, so
    output step t sees input steps <= t. See ``_Conv`` for the other arguments.
    """

    rank = 1
    _paddings = ("valid", "same", "causal")

    def _convolve(self, x, w, b):
        padding = self.padding
        if padding == "causal":
            left = (self.kernel_size[0] - 1) * self.dilation_rate[0]
            x = lamina.pad(x, ((0, 0), (0, 0), (left, 0)))
            padding = "valid"
        return lamina.conv1d(x, w, b, self.strides[0], padding, self.dilation_rate[0], self.groups)


class Conv2D(_Conv):
    """2-D convolution over images (batch, height, width, channels) (or channels-first).

    See ``_Conv`` for the arguments. The kernel is (kernel_h, kernel_w, in_channels / groups,
    filters), as in Keras.
    """

    rank = 2

    def _convolve(self, x, w, b):
        return lamina.conv2d(x, w, b, self.strides, self.padding, self.dilation_rate, self.groups)


class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution (the gradient of Conv2D with respect to its input).

    Output sizes follow Keras: 'same' gives ``input * stride``; 'valid' gives
    ``input * stride + max(kernel - stride, 0)`` (with the dilated kernel size). The kernel
    is (kernel_h, kernel_w, filters, in_channels), as in Keras. No groups.
    """

    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format="channels_last",
                 dilation_rate=1, activation=None, use_bias=True, **kwargs):
        kwargs.pop("groups", None)
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, 1, activation,
                         use_bias, **kwargs)

    def _kernel_shape(self, channels):
        return self.kernel_size + (self.filters, channels)

    def _torch_kernel(self):
        # Keras (kH, kW, C_out, C_in) -> PyTorch's transposed layout (C_in, C_out, kH, kW).
        return lamina.permute(self.cast(self.kernel), (3, 2, 0, 1))

    def _convolve(self, x, w, b):
        crops, extra = [], []
        for size, k, s, d in zip(x.shape[2:], self.kernel_size, self.strides, self.dilation_rate):
            k_eff = (k - 1) * d + 1
            full = (size - 1) * s + k_eff  # the uncropped transposed output
            if self.padding == "valid":
                out, before = size * s + max(k_eff - s, 0), 0
            else:
                out, before = size * s, max(k_eff - s, 0) // 2
            extra.append(max(out - full, 0))  # only when the kernel is shorter than the stride
            crops.append((before, full + extra[-1] - before - out))
        # Symmetric crops go to the native op; the rest (one row or column) is sliced off.
        pad = tuple(min(c) for c in crops)
        y = lamina.conv_transpose2d(x, w, b, self.strides, pad, tuple(extra), 1, self.dilation_rate)
        if any(a != c for a, c in crops):
            rows = slice(crops[0][0] - pad[0], y.shape[2] - (crops[0][1] - pad[0]))
            cols = slice(crops[1][0] - pad[1], y.shape[3] - (crops[1][1] - pad[1]))
            y = y[:, :, rows, cols]
        return y

    def get_config(self):
        config = super().get_config()
        config.pop("groups")
        return config
