"""Core layers: Dense, Activation, Dropout, Flatten, Reshape, Embedding, Masking."""

import math

import lamina
from lamina import activations, initializers, regularizers
from lamina.layers.base import Layer


class Dense(Layer):
    """A fully connected layer: ``activation(x @ kernel + bias)`` on the last axis.

    Args:
        units: Size of the output's last axis.
        activation: Activation name or callable (None: linear).
        use_bias: Whether to add a bias vector.
        kernel_initializer: Initializer of the (in, units) kernel.
        bias_initializer: Initializer of the bias.
        kernel_regularizer: Optional penalty on the kernel.
        bias_regularizer: Optional penalty on the bias.
        **kwargs: Layer arguments (name, trainable, input_shape, ...).
    """

    supports_masking = True

    _config_weight_settings = ("kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer")

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"Dense: units must be a positive int, got {units!r}")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"Dense '{self.name}' needs inputs with a batch axis and a feature axis, "
                             f"got shape {input_shape}")
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.bias = (self.add_weight("bias", (self.units,), self.bias_initializer, regularizer=self.bias_regularizer)
                     if self.use_bias else None)

    def _check_input_shape(self, shape):
        if len(shape) < 2 or shape[-1] != self.input_shape[-1]:
            raise ValueError(f"Input of layer '{self.name}' has shape {tuple(shape)}, but the layer expects a last "
                             f"axis of size {self.input_shape[-1]}")

    def call(self, x, training=False):
        bias = None if self.bias is None else self.cast(self.bias)
        # relu runs inside the GEMM's epilogue (lamina.linear); other activations after it.
        if self.activation is activations.relu:
            return lamina.linear(x, self.cast(self.kernel), bias, activation="relu")
        return self.activation(lamina.linear(x, self.cast(self.kernel), bias))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias}


class Activation(Layer):
    """Applies an activation function by name or callable."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def _check_input_shape(self, shape):
        pass

    def call(self, x, training=False):
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Dropout(Layer):
    """Zeroes a fraction `rate` of inputs during training and scales the rest by 1/(1-rate).

    At inference (``training=False``) it is the identity.
    """

    supports_masking = True

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def _check_input_shape(self, shape):
        pass

    def call(self, x, training=False):
        if not training or self.rate == 0.0:
            return x
        return x * lamina.dropout_mask(x, self.rate)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class Flatten(Layer):
    """Flattens every axis but the batch axis: (batch, d1, d2, ...) -> (batch, d1*d2*...)."""

    def call(self, x, training=False):
        return lamina.reshape(x, (x.shape[0], -1) if x.ndim > 1 else (x.shape[0], 1))


class Reshape(Layer):
    """Reshapes each sample to `target_shape` (one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1:
            raise ValueError(f"Reshape: at most one -1 is allowed in target_shape, got {self.target_shape}")

    def build(self, input_shape):
        size = math.prod(input_shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        if (-1 in self.target_shape and size % known) or (-1 not in self.target_shape and size != known):
            raise ValueError(f"Reshape '{self.name}': cannot reshape samples of shape {tuple(input_shape[1:])} "
                             f"to {self.target_shape}")

    def call(self, x, training=False):
        return lamina.reshape(x, (x.shape[0],) + self.target_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Embedding(Layer):
    """Maps integer indices in [0, input_dim) to dense vectors of size `output_dim`.

    Args:
        input_dim: Vocabulary size.
        output_dim: Size of each vector.
        embeddings_initializer: Initializer of the (input_dim, output_dim) table.
        embeddings_regularizer: Optional penalty on the table.
        mask_zero: Index 0 is padding: the output carries a mask (``index != 0``) that
            Sequential and functional models pass to mask-aware layers (LSTM, GRU,
            attention). The table still has `input_dim` rows.
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.mask_zero = bool(mask_zero)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer, regularizer=self.embeddings_regularizer)

    def _check_input_shape(self, shape):
        pass

    def call(self, x, training=False):
        if x.dtype not in ("int64", "int32"):
            x = x.astype("int64")
        return lamina.take(self.cast(self.embeddings), x, 0)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return lamina.not_equal(inputs, lamina.zeros((), dtype=inputs.dtype))

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "mask_zero": self.mask_zero,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["embeddings_initializer"] = initializers.deserialize(config["embeddings_initializer"])
        return cls(**config)


class Masking(Layer):
    """Masks timesteps whose features all equal `mask_value` (and zeroes them).

    Input (batch, timesteps, features); the mask (batch, timesteps) goes to the following
    mask-aware layers (LSTM, GRU, attention, GlobalAveragePooling1D).
    """

    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def _check_input_shape(self, shape):
        pass

    def compute_mask(self, inputs, mask=None):
        keep = lamina.not_equal(inputs, lamina.full((), self.mask_value, dtype=inputs.dtype))
        return lamina.max(keep.astype("float32"), -1) > 0.5

    def call(self, x, training=False):
        keep = self.compute_mask(x)
        return x * lamina.unsqueeze(keep, -1).astype(x.dtype)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
