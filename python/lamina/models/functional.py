"""The functional API: ``Input`` -> layer calls record a graph -> ``Model(inputs, outputs)``."""

import numpy as np

import lamina
from lamina.layers.base import unique_name
from lamina.models.model import Model


class KerasTensor:
    """A symbolic tensor: a shape (batch axis None), a dtype and the layer call that made it."""

    def __init__(self, shape, dtype="float32", layer=None, inputs=None, name=None):
        self.shape, self.dtype = tuple(shape), dtype
        self.layer, self.inputs = layer, inputs
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        origin = self.layer.name if self.layer is not None else self.name
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, from={origin}>"


def Input(shape, dtype="float32", name=None, batch_size=None):  # noqa: N802 (Keras spelling)
    """A symbolic model input for samples of `shape` (no batch axis)."""
    if isinstance(shape, int):
        shape = (shape,)
    return KerasTensor((batch_size,) + tuple(shape), dtype, name=name or unique_name("input_layer"))


def _dummy(kt):
    shape = tuple(1 if d is None else d for d in kt.shape)
    return lamina.zeros(shape, dtype=kt.dtype)


def symbolic_call(layer, inputs, **kwargs):
    """Builds `layer` from symbolic inputs and returns the symbolic output.

    The output shape comes from running the layer once on zeros with a batch of one.
    """
    many = isinstance(inputs, (list, tuple))
    with lamina.no_grad():
        concrete = [_dummy(t) for t in inputs] if many else _dummy(inputs)
        out = layer(concrete, training=False, **kwargs)
    shape = (None,) + tuple(out.shape[1:])
    return KerasTensor(shape, out.dtype, layer=layer, inputs=list(inputs) if many else inputs)


def _parents(kt):
    if kt.inputs is None:
        return []
    return kt.inputs if isinstance(kt.inputs, list) else [kt.inputs]


class Functional(Model):
    """A model defined by a graph of layer calls from ``Input`` tensors to outputs."""

    def __init__(self, inputs, outputs, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._multi_input = isinstance(inputs, (list, tuple))
        self._multi_output = isinstance(outputs, (list, tuple))
        self._inputs = list(inputs) if self._multi_input else [inputs]
        self._outputs = list(outputs) if self._multi_output else [outputs]
        for t in self._inputs + self._outputs:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"Model(inputs, outputs) takes symbolic tensors from lamina.Input, got {type(t).__name__}")
        self._order = self._topological_order()
        layers = []
        for node in self._order:
            if node.layer is not None and all(node.layer is not l for l in layers):
                layers.append(node.layer)
        self.layers = layers
        self.input_shape = self._inputs[0].shape if not self._multi_input else [t.shape for t in self._inputs]
        self.output_shape = self._outputs[0].shape if not self._multi_output else [t.shape for t in self._outputs]
        self.built = True

    def _topological_order(self):
        order, seen, input_ids = [], set(), {id(t) for t in self._inputs}

        def visit(node):
            if id(node) in seen:
                return
            seen.add(id(node))
            if node.layer is None and id(node) not in input_ids:
                raise ValueError(f"Model: output depends on {node!r}, which is not among the model's inputs")
            for parent in _parents(node):
                visit(parent)
            order.append(node)

        for out in self._outputs:
            visit(out)
        return order

    def _check_input_shape(self, shape):
        shapes = shape if self._multi_input else [shape]
        if len(shapes) != len(self._inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self._inputs)} inputs, got {len(shapes)}")
        for got, spec in zip(shapes, self._inputs):
            if len(got) != len(spec.shape) or any(e is not None and e != g for e, g in zip(spec.shape[1:], got[1:])):
                raise ValueError(f"Input of model '{self.name}' has shape {tuple(got)}, but the model expects "
                                 f"{spec.shape}")

    def call(self, inputs, training=False):
        values = {}
        given = inputs if self._multi_input else [inputs]
        for spec, value in zip(self._inputs, given):
            values[id(spec)] = value
        for node in self._order:
            if id(node) in values:
                continue
            parents = _parents(node)
            args = [values[id(p)] for p in parents] if isinstance(node.inputs, list) else values[id(parents[0])]
            values[id(node)] = node.layer(args, training=training)
        outs = [values[id(t)] for t in self._outputs]
        return outs if self._multi_output else outs[0]

    def get_config(self):
        return {"name": self.name, "layers": [l.get_config() for l in self.layers]}
