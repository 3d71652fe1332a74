"""Recurrent layers: SimpleRNN (a Python loop of core ops), LSTM and GRU (one fused native op
over the whole sequence each), and the Bidirectional wrapper.

Weights are stored in Keras' layouts and gate orders, so weights exported from Keras load
unchanged: LSTM kernel (features, 4 * units) and recurrent_kernel (units, 4 * units) with
gates (i, f, c, o), bias (4 * units); GRU (reset_after=True) kernel (features, 3 * units),
recurrent_kernel (units, 3 * units) with gates (z, r, h), bias (2, 3 * units) (input and
recurrent biases). They are transposed (and the GRU gates reordered) to the native ops'
PyTorch layouts on each call.
"""

import numpy as np

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

    _config_weight_settings = ("kernel_initializer", "recurrent_initializer", "bias_initializer",
                               "kernel_regularizer", "recurrent_regularizer", "bias_regularizer")

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
                "use_bias": self.use_bias,
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards}


def _reverse_time(x):
    return lamina.take(x, lamina.tensor(np.arange(x.shape[1] - 1, -1, -1, dtype=np.int64)), 1)


class _FusedRNN(Layer):
    """Arguments, weights and masking shared by LSTM and GRU.

    Args:
        units: Size of the state.
        activation: Must be 'tanh' (the fused op's cell activation).
        recurrent_activation: Must be 'sigmoid' (the fused op's gate activation).
        use_bias: Whether to add biases.
        dropout: Fraction of the input features dropped during training (one mask per
            sequence, shared by all timesteps, as in Keras).
        return_sequences: Return every step's output (batch, timesteps, units) instead of
            the last (batch, units).
        return_state: Also return the final state(s): ``[output, h]`` (GRU) or
            ``[output, h, c]`` (LSTM).
        go_backwards: Process the sequence in reverse; the returned sequence is then in
            processing order (reversed), as in Keras.

    Masking: a (batch, timesteps) bool mask (from ``Embedding(mask_zero=True)``, a
    ``Masking`` layer, or the `mask` argument) skips steps: the state is carried over and
    the step's output is zero.
    """

    gates = 4
    supports_masking = True

    _config_weight_settings = ("kernel_initializer", "recurrent_initializer", "bias_initializer",
                               "kernel_regularizer", "recurrent_regularizer", "bias_regularizer")

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, dropout=0.0,
                 return_sequences=False, return_state=False, go_backwards=False, **kwargs):
        super().__init__(**kwargs)
        what = type(self).__name__
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"{what}: units must be a positive int, got {units!r}")
        if activations.serialize(activations.get(activation)) != "tanh" or \
                activations.serialize(activations.get(recurrent_activation)) != "sigmoid":
            raise ValueError(f"{what}: the fused op computes activation='tanh' and recurrent_activation='sigmoid' "
                             f"only, got {activation!r} and {recurrent_activation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{what}: dropout must be in [0, 1), got {dropout}")
        self.units, self.use_bias, self.dropout = units, use_bias, float(dropout)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.return_sequences, self.return_state, self.go_backwards = return_sequences, return_state, go_backwards

    def _bias_shape(self):
        return (self.gates * self.units,)

    def _bias_init(self, shape, dtype):
        return self.bias_initializer(shape, dtype)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} '{self.name}' takes (batch, timesteps, features) with known "
                             f"features, got {input_shape}")
        width = self.gates * self.units
        self.kernel = self.add_weight("kernel", (input_shape[-1], width), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, width), self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer)
        self.bias = (self.add_weight("bias", self._bias_shape(), self._bias_init, regularizer=self.bias_regularizer)
                     if self.use_bias else None)

    def _check_input_shape(self, shape):
        if len(shape) != 3 or shape[-1] != self.input_shape[-1]:
            raise ValueError(f"Input of layer '{self.name}' has shape {tuple(shape)}, but the layer expects "
                             f"(batch, timesteps, {self.input_shape[-1]})")

    def _prepare(self, x, mask, training):
        if x.shape[1] == 0:
            raise ValueError(f"{type(self).__name__} '{self.name}': the input has no timesteps")
        if training and self.dropout > 0.0:
            x = x * lamina.dropout_mask(lamina.zeros((x.shape[0], 1, x.shape[2]), dtype=x.dtype), self.dropout)
        if mask is not None:
            if tuple(mask.shape) != tuple(x.shape[:2]):
                raise ValueError(f"{type(self).__name__} '{self.name}': mask of shape {tuple(mask.shape)} does not "
                                 f"match inputs (batch, timesteps) = {tuple(x.shape[:2])}")
            mask = mask if mask.dtype == "bool" else mask.astype("bool")
        if self.go_backwards:
            x = _reverse_time(x)
            mask = _reverse_time(mask) if mask is not None else None
        return x, mask

    def _finish(self, outputs, states):
        out = outputs if self.return_sequences else states[0]
        return [out] + list(states) if self.return_state else out

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias, "dropout": self.dropout,
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards}


class LSTM(_FusedRNN):
    """Long short-term memory over (batch, timesteps, features), one fused op per call.

    ``unit_forget_bias=True`` (the default) starts the forget gate's bias at 1. Call with
    ``initial_state=[h0, c0]`` to start from a given state. See ``_FusedRNN`` for the other
    arguments and masking.
    """

    gates = 4
    _state_names = ("h", "c")

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_init(self, shape, dtype):
        b = self.bias_initializer(shape, dtype)
        if not self.unit_forget_bias:
            return b
        b = np.array(b.numpy() if isinstance(b, lamina.Tensor) else b, copy=True)
        b[self.units:2 * self.units] = 1.0
        return b

    def call(self, x, training=False, mask=None, initial_state=None):
        x, mask = self._prepare(x, mask, training)
        h0, c0 = (initial_state if initial_state is not None else (None, None))
        w_ih = lamina.transpose(self.cast(self.kernel))
        w_hh = lamina.transpose(self.cast(self.recurrent_kernel))
        b = self.cast(self.bias) if self.bias is not None else lamina.zeros((4 * self.units,), dtype=x.dtype)
        outputs, h, c = lamina.lstm(x, h0, c0, w_ih, w_hh, b, mask)
        return self._finish(outputs, [h, c])

    def compute_mask(self, inputs, mask=None):
        out = _reverse_time(mask) if mask is not None and self.go_backwards else mask
        out = out if self.return_sequences else None
        return [out, None, None] if self.return_state else out

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


class GRU(_FusedRNN):
    """Gated recurrent unit over (batch, timesteps, features), one fused op per call.

    The formulation is Keras' ``reset_after=True`` (its default, and cuDNN's and PyTorch's):
    the reset gate multiplies the recurrent product including its bias. Call with
    ``initial_state=h0`` (or ``[h0]``) to start from a given state. See ``_FusedRNN`` for
    the other arguments and masking.
    """

    gates = 3
    _state_names = ("h",)

    def __init__(self, units, reset_after=True, **kwargs):
        if not reset_after:
            raise ValueError("GRU: only reset_after=True is supported (the fused op's formulation)")
        super().__init__(units, **kwargs)
        self.reset_after = True

    def _bias_shape(self):
        return (2, 3 * self.units)

    def _torch_order(self, w, axis):
        """Keras gate blocks (z, r, h) -> PyTorch's (r, z, n) along `axis`."""
        z, r, n = lamina.split(w, 3, axis)
        return lamina.concatenate([r, z, n], axis)

    def call(self, x, training=False, mask=None, initial_state=None):
        x, mask = self._prepare(x, mask, training)
        if isinstance(initial_state, (list, tuple)):
            (initial_state,) = initial_state
        w_ih = lamina.transpose(self._torch_order(self.cast(self.kernel), 1))
        w_hh = lamina.transpose(self._torch_order(self.cast(self.recurrent_kernel), 1))
        if self.bias is not None:
            b_ih, b_hh = lamina.split(self._torch_order(self.cast(self.bias), 1), 2, 0)
            b_ih, b_hh = lamina.reshape(b_ih, (-1,)), lamina.reshape(b_hh, (-1,))
        else:
            b_ih = b_hh = lamina.zeros((3 * self.units,), dtype=x.dtype)
        outputs, h = lamina.gru(x, initial_state, w_ih, w_hh, b_ih, b_hh, mask)
        return self._finish(outputs, [h])

    def compute_mask(self, inputs, mask=None):
        out = _reverse_time(mask) if mask is not None and self.go_backwards else mask
        out = out if self.return_sequences else None
        return [out, None] if self.return_state else out

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy of it backwards, and merges the outputs.

    With ``return_sequences`` the backward outputs are put back in time order before
    merging, so step t of the result sees the whole sequence.

    Args:
        layer: An LSTM, GRU or SimpleRNN (the forward direction).
        merge_mode: 'concat' (default), 'sum', 'mul', 'ave', or None (a list of the two
            outputs).
        backward_layer: The backward layer (default: a copy of `layer`'s config with
            ``go_backwards`` flipped).

    With ``return_state`` the result is ``[merged, *forward_states, *backward_states]``.
    """

    supports_masking = True
    _MODES = ("concat", "sum", "mul", "ave", None)

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        if not isinstance(layer, Layer) or not hasattr(layer, "go_backwards"):
            raise ValueError(f"Bidirectional takes a recurrent layer, got {layer!r}")
        if merge_mode not in self._MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {self._MODES}, got {merge_mode!r}")
        super().__init__(**kwargs)
        if backward_layer is None:
            config = {**layer.get_config(), "name": f"backward_{layer.name}", "go_backwards": not layer.go_backwards}
            config.pop("input_shape", None)
            backward_layer = type(layer).from_config(config)
        if backward_layer.go_backwards == layer.go_backwards:
            raise ValueError("Bidirectional: backward_layer must have the opposite go_backwards of layer")
        self.forward_layer, self.backward_layer = layer, backward_layer
        self.merge_mode = merge_mode
        self.return_sequences, self.return_state = layer.return_sequences, layer.return_state

    def _check_input_shape(self, shape):
        self.forward_layer._check_input_shape(shape)

    def _merge(self, a, b):
        if self.merge_mode == "concat":
            return lamina.concatenate([a, b], -1)
        if self.merge_mode == "sum":
            return a + b
        if self.merge_mode == "mul":
            return a * b
        if self.merge_mode == "ave":
            return (a + b) * 0.5
        return [a, b]

    def call(self, x, training=False, mask=None, initial_state=None):
        fw_state = bw_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            fw_state, bw_state = initial_state[:half], initial_state[half:]
        kw = {"training": training}
        if mask is not None:
            kw["mask"] = mask
        fw = self.forward_layer(x, initial_state=fw_state, **kw)
        bw = self.backward_layer(x, initial_state=bw_state, **kw)
        fw_states = bw_states = []
        if self.return_state:
            fw, fw_states, bw, bw_states = fw[0], fw[1:], bw[0], bw[1:]
        if self.return_sequences:
            bw = _reverse_time(bw)
        out = self._merge(fw, bw)
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + list(fw_states) + list(bw_states)
        return out

    def compute_mask(self, inputs, mask=None):
        out = mask if self.return_sequences else None
        if self.return_state:
            states = len(self.forward_layer._state_names) if hasattr(self.forward_layer, "_state_names") else 1
            return [out] * (2 if self.merge_mode is None else 1) + [None] * (2 * states)
        return [out, out] if self.merge_mode is None else out

    def get_config(self):
        from lamina import saving

        return {**super().get_config(), "layer": saving.serialize_layer(self.forward_layer),
                "merge_mode": self.merge_mode, "backward_layer": saving.serialize_layer(self.backward_layer)}

    @classmethod
    def from_config(cls, config):
        from lamina import saving

        config = dict(config)
        layer = saving.deserialize_layer(config.pop("layer"))
        backward = config.pop("backward_layer", None)
        backward = saving.deserialize_layer(backward) if backward is not None else None
        return cls(layer, backward_layer=backward, **config)
