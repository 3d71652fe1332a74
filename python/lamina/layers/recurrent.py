"""Recurrent layers as composites of core ops (a Python loop over time; fused kernels later)."""

import lamina
from lamina import activations, initializers, regularizers
from lamina.layers.base import Layer


class SimpleRNN(Layer):
    """A fully connected RNN: ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``.

    Inputs are (batch, timesteps, features); the state starts at zero.

    Args:
        units: Size of the state.
        activation: Activation of the state update (default tanh).
        use_bias: Whether to add a bias.
        return_sequences: Return every step's output (batch, timesteps, units) instead of
            the last (batch, units).
        return_state: Also return the final state: ``[output, state]``.
        go_backwards: Process the sequence in reverse (the output sequence is then
            reversed too, as in Keras).
    """

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, return_sequences=False, return_state=False,
                 go_backwards=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"SimpleRNN: units must be a positive int, got {units!r}")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.return_sequences, self.return_state, self.go_backwards = return_sequences, return_state, go_backwards

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"SimpleRNN '{self.name}' takes (batch, timesteps, features), got {input_shape}")
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, self.units),
                                                self.recurrent_initializer, regularizer=self.recurrent_regularizer)
        self.bias = (self.add_weight("bias", (self.units,), self.bias_initializer, regularizer=self.bias_regularizer)
                     if self.use_bias else None)

    def _check_input_shape(self, shape):
        if len(shape) != 3 or shape[-1] != self.input_shape[-1]:
            raise ValueError(f"Input of layer '{self.name}' has shape {tuple(shape)}, but the layer expects "
                             f"(batch, timesteps, {self.input_shape[-1]})")

    def call(self, x, training=False, initial_state=None):
        batch, steps = x.shape[0], x.shape[1]
        projected = x @ self.cast(self.kernel)  # every step's input projection in one matmul
        if self.bias is not None:
            projected = projected + self.cast(self.bias)
        recurrent = self.cast(self.recurrent_kernel)
        h = initial_state if initial_state is not None else lamina.zeros((batch, self.units), dtype=projected.dtype)
        outputs = []
        for t in (range(steps - 1, -1, -1) if self.go_backwards else range(steps)):
            h = self.activation(projected[:, t] + h @ recurrent)
            outputs.append(h)
        if steps == 0:
            raise ValueError(f"SimpleRNN '{self.name}': the input has no timesteps")
        out = lamina.stack(outputs, 1) if self.return_sequences else h
        return [out, h] if self.return_state else out

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias, "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards}
