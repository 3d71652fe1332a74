"""The Layer base class: weights, lazy build from the first input, config, sub-layer tracking."""

from __future__ import annotations

import inspect
import re
from collections import defaultdict

import numpy as np

import lamina
from lamina import initializers, mixed_precision, regularizers

_NAME_COUNTS: dict = defaultdict(int)


def _snake_case(name: str) -> str:
    """Keras' layer names: Dense -> dense, LSTM -> lstm, Conv2DTranspose -> conv2d_transpose."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    """'dense', 'dense_1', 'dense_2', ... as Keras numbers layers."""
    count = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if count == 0 else f"{base}_{count}"


def _shape_str(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


class Layer:
    """A callable block of computation that owns its weights.

    Subclasses override ``build(input_shape)`` to create weights with ``add_weight`` and
    ``call(x, training=False)`` to compute the output. The first ``__call__`` builds the
    layer from the input's shape; later calls check that the input shape still fits.

    Args:
        name: Unique name; numbered automatically from the class name when omitted.
        trainable: Whether the optimizer updates this layer's weights.
        dtype: A dtype or a mixed precision policy name ('mixed_bfloat16'); defaults to the
            global policy (see ``lamina.mixed_precision``).
        input_shape: Shape of one sample (no batch axis); lets a Sequential model build
            before it sees data.
    """

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None, **kwargs):
        if "input_dim" in kwargs:
            input_shape = (kwargs.pop("input_dim"),)
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword arguments {sorted(kwargs)}")
        object.__setattr__(self, "_layers", [])
        self.name = name or unique_name(_snake_case(type(self).__name__))
        self.trainable = trainable
        self.dtype_policy = mixed_precision.Policy(dtype) if dtype is not None else mixed_precision.global_policy()
        self.dtype = self.dtype_policy.variable_dtype
        self.built = False
        self._weights = []  # [(name, tensor, trainable, regularizer)]
        self._input_shape_arg = tuple(input_shape) if input_shape is not None else None
        self.input_shape = None
        self.output_shape = None

    # ----- attribute tracking -------------------------------------------------------------
    def __setattr__(self, key, value):
        layers = self.__dict__.get("_layers")
        if layers is not None and not key.startswith("_"):
            candidates = value if isinstance(value, (list, tuple)) else [value]
            for item in candidates:
                if isinstance(item, Layer) and item is not self and all(item is not l for l in layers):
                    layers.append(item)
        object.__setattr__(self, key, value)

    # ----- weights -------------------------------------------------------------------------
    def add_weight(self, name, shape, initializer="glorot_uniform", trainable=True, regularizer=None, dtype=None):
        """Creates, records and returns a weight tensor.

        Args:
            name: Name of the weight within the layer ('kernel', 'bias', ...).
            shape: Shape of the weight.
            initializer: Initializer name, instance or callable ``(shape, dtype)``.
            trainable: Whether gradients update it.
            regularizer: Optional penalty added to the model's loss.
            dtype: Defaults to the layer's dtype.
        """
        init = initializers.get(initializer)
        value = init(tuple(int(d) for d in shape), dtype or self.dtype)
        if not isinstance(value, lamina.Tensor):
            value = lamina.tensor(np.asarray(value), dtype=dtype or self.dtype)
        value = value.detach().contiguous() if not value.is_contiguous() else value.detach()
        value.requires_grad = bool(trainable)
        self._weights.append((name, value, bool(trainable), regularizers.get(regularizer)))
        return value

    def _own_weights(self, trainable):
        if trainable and not self.trainable:
            return []
        if trainable:
            return [w for _, w, t, _ in self._weights if t]
        frozen = [w for _, w, t, _ in self._weights if not t or not self.trainable]
        return frozen

    @property
    def trainable_weights(self):
        """Weights the optimizer updates (this layer's and its sub-layers')."""
        out = self._own_weights(True)
        if self.trainable:
            for layer in self._layers:
                out += layer.trainable_weights
        return out

    @property
    def non_trainable_weights(self):
        """Weights kept fixed during training."""
        out = self._own_weights(False)
        for layer in self._layers:
            out += layer.weights if not self.trainable else layer.non_trainable_weights
        return out

    @property
    def weights(self):
        """All weights: trainable first, then non-trainable."""
        return self.trainable_weights + self.non_trainable_weights

    trainable_variables = trainable_weights
    variables = weights

    @property
    def weight_names(self):
        """'layer/weight' names in the order of ``get_weights``."""
        return [f"{self.name}/{n}" for n, *_ in self._weights] + [n for l in self._layers for n in l.weight_names]

    def _all_weights_in_order(self):
        return [w for _, w, *_ in self._weights] + [w for l in self._layers for w in l._all_weights_in_order()]

    def get_weights(self):
        """Copies of all weights as numpy arrays (creation order)."""
        return [np.array(w.cpu().numpy(), copy=True) for w in self._all_weights_in_order()]

    def set_weights(self, values):
        """Overwrites the weights in place from arrays in ``get_weights`` order."""
        targets = self._all_weights_in_order()
        if len(values) != len(targets):
            raise ValueError(f"{self.name}: set_weights expected {len(targets)} arrays, got {len(values)}")
        with lamina.no_grad():
            for w, v in zip(targets, values):
                v = np.asarray(v)
                if tuple(v.shape) != tuple(w.shape):
                    raise ValueError(f"{self.name}: weight of shape {w.shape} cannot take a value of shape {v.shape}")
                w.copy_(lamina.tensor(v, dtype=w.dtype, device=w.device))

    def to(self, device):
        """Moves the weights of this layer and its sub-layers to `device` ('cpu', 'cuda', 'cuda:1').

        Each moved weight is a new tensor (same trainability), so build the optimizer's state
        after moving; inputs must be on the same device. Returns the layer.
        """
        for i, (name, w, trainable, regularizer) in enumerate(self._weights):
            moved = w.detach().to(device)
            if moved.device == w.device:
                continue
            moved.requires_grad = w.requires_grad
            self._weights[i] = (name, moved, trainable, regularizer)
            for key, value in list(vars(self).items()):
                if value is w:
                    object.__setattr__(self, key, moved)
        for layer in self._layers:
            layer.to(device)
        return self

    @property
    def losses(self):
        """Regularization penalties of this layer and its sub-layers (scalar tensors)."""
        out = [reg(w) for _, w, _, reg in self._weights if reg is not None]
        for layer in self._layers:
            out += layer.losses
        return out

    def count_params(self):
        """Number of scalars in all weights."""
        return int(sum(w.size for w in self._all_weights_in_order()))

    # ----- building and calling ------------------------------------------------------------
    def build(self, input_shape):
        """Creates the weights for inputs of `input_shape` (batch axis included)."""
        self.built = True

    def call(self, x, training=False):
        """The layer's computation; subclasses override it."""
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def _check_input_shape(self, shape):
        """Raises ValueError when `shape` does not fit the shape the layer was built for."""
        expected = self.input_shape
        if expected is None:
            return
        if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], shape[1:])):
            raise ValueError(f"Input of layer '{self.name}' has shape {_shape_str(shape)}, but the layer was built "
                             f"for inputs of shape {_shape_str(expected)}")

    @classmethod
    def _call_signature(cls):
        """(parameter names of ``call``, whether it takes **kwargs), cached per class."""
        cached = cls.__dict__.get("_call_params")
        if cached is None:
            params = inspect.signature(cls.call).parameters
            cached = (frozenset(params), any(p.kind == p.VAR_KEYWORD for p in params.values()))
            cls._call_params = cached
        return cached

    def _accepts(self, name):
        names, var_kw = self._call_signature()
        return name in names or var_kw

    def _check_rank(self, shape):
        """A check for layers that take any sizes: only the rank must stay the same."""
        if len(shape) != len(self.input_shape):
            raise ValueError(f"Input of layer '{self.name}' has shape {_shape_str(shape)}, but the layer was built "
                             f"for inputs of rank {len(self.input_shape)}")

    def build_sublayer(self, layer, input_shape):
        """Builds a sub-layer now for `input_shape` (None for sizes that may vary between calls)."""
        shape = [tuple(s) for s in input_shape] if isinstance(input_shape, list) else tuple(input_shape)
        layer.input_shape = _batchless(shape)
        layer.build(shape)
        layer.built = True

    def _accepts_training(self):
        return self._accepts("training")

    # ----- masking -------------------------------------------------------------------------
    supports_masking = False  # whether the layer passes a timestep mask through unchanged

    def compute_mask(self, inputs, mask=None):
        """The mask of this layer's output for `inputs` carrying `mask` (a bool tensor or None).

        Sequential and functional models call it after each layer to pass masks (from
        ``Embedding(mask_zero=True)`` or ``Masking``) on to the layers whose ``call`` takes
        a `mask` argument (LSTM, GRU, MultiHeadAttention, ...). By default a layer passes
        the mask on when ``supports_masking`` is set and drops it otherwise.
        """
        return mask if self.supports_masking else None

    def __call__(self, x, training=False, **kwargs):
        from lamina.models.functional import KerasTensor, symbolic_call

        if isinstance(x, KerasTensor) or (isinstance(x, (list, tuple)) and x and isinstance(x[0], KerasTensor)):
            return symbolic_call(self, x, **kwargs)
        if not isinstance(x, (lamina.Tensor, list, tuple)):
            x = _to_tensor(x)
        shape = _shape_of(x)
        if not self.built:
            self.input_shape = _batchless(shape)
            self.build(shape)
            self.built = True
        else:
            self._check_input_shape(shape)
        if self._accepts_training():
            kwargs["training"] = training
        if "mask" in kwargs and not self._accepts("mask"):
            del kwargs["mask"]
        if self.dtype_policy.is_mixed:
            x = _cast_floats(x, self.compute_dtype)
        out = self.call(x, **kwargs)
        if isinstance(out, lamina.Tensor):
            self.output_shape = _batchless(tuple(out.shape))
        elif isinstance(out, (list, tuple)) and all(isinstance(o, lamina.Tensor) for o in out):
            self.output_shape = [_batchless(tuple(o.shape)) for o in out]
        return out

    @property
    def compute_dtype(self):
        """Dtype the layer computes in (the policy's; its weights stay ``self.dtype``)."""
        return self.dtype_policy.compute_dtype

    def cast(self, w):
        """`w` in the compute dtype: how ``call`` reads weights under a mixed policy."""
        return w.astype(self.compute_dtype) if w.dtype != self.compute_dtype else w

    # ----- config --------------------------------------------------------------------------
    # Initializer/regularizer attributes that get_config serializes; layers list theirs.
    # Constructors accept the serialized forms, so from_config needs no special case.
    _config_weight_settings = ()

    def get_config(self):
        """The constructor arguments that recreate this layer (without its weights)."""
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype_policy.name}
        if self._input_shape_arg is not None:
            config["input_shape"] = list(self._input_shape_arg)
        for key in self._config_weight_settings:
            module = initializers if key.endswith("_initializer") else regularizers
            config[key] = module.serialize(getattr(self, key))
        return config

    @classmethod
    def from_config(cls, config):
        """A new layer from ``get_config()`` output."""
        return cls(**config)

    def __repr__(self):
        state = "built" if self.built else "not built"
        return f"<{type(self).__name__} name={self.name}, {state}, params={self.count_params()}>"


def _to_tensor(x):
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32, copy=False)
    return lamina.tensor(arr)


def _cast_floats(x, dtype):
    if isinstance(x, (list, tuple)):
        return [_cast_floats(t, dtype) for t in x]
    return x.astype(dtype) if x.dtype in mixed_precision._FLOATS and x.dtype != dtype else x


def _shape_of(x):
    if isinstance(x, (list, tuple)):
        return [tuple(t.shape) for t in x]
    return tuple(x.shape)


def _batchless(shape):
    if isinstance(shape, list):
        return [_batchless(s) for s in shape]
    return (None,) + tuple(shape[1:]) if len(shape) else tuple(shape)
