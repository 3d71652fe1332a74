"""The functional API: ``Input`` -> layer calls record a graph -> ``Model(inputs, outputs)``."""


import lamina
from lamina.layers.base import unique_name
from lamina.models.model import Model


class KerasTensor:
    """A symbolic tensor: a shape (batch axis None), a dtype and the layer call that made it."""

    def __init__(self, shape, dtype="float32", layer=None, inputs=None, name=None, call=None, index=None,
                 call_kwargs=None):
        self.shape, self.dtype = tuple(shape), dtype
        self.layer, self.inputs = layer, inputs
        self.call_kwargs = dict(call_kwargs or {})  # e.g. use_causal_mask=True, replayed on every call
        self.name = name
        # Outputs of one call of a multi-output layer share `call`; `index` picks theirs.
        self.call, self.index = call if call is not None else object(), index

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
    parents = list(inputs) if many else inputs
    if isinstance(out, (list, tuple)):
        call = object()
        return [KerasTensor((None,) + tuple(o.shape[1:]), o.dtype, layer=layer, inputs=parents, call=call, index=i,
                            call_kwargs=kwargs) for i, o in enumerate(out)]
    return KerasTensor((None,) + tuple(out.shape[1:]), out.dtype, layer=layer, inputs=parents, call_kwargs=kwargs)


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

    def call(self, inputs, training=False, mask=None):
        values, masks, calls = {}, {}, {}
        given = inputs if self._multi_input else [inputs]
        given_masks = mask if isinstance(mask, (list, tuple)) else [mask] * len(given)
        for spec, value, m in zip(self._inputs, given, given_masks):
            values[id(spec)], masks[id(spec)] = value, m
        for node in self._order:
            if id(node) in values:
                continue
            if id(node.call) not in calls:
                parents = _parents(node)
                if isinstance(node.inputs, list):
                    args, arg_mask = [values[id(p)] for p in parents], [masks[id(p)] for p in parents]
                    arg_mask = None if all(m is None for m in arg_mask) else arg_mask
                else:
                    args, arg_mask = values[id(parents[0])], masks[id(parents[0])]
                out = node.layer(args, training=training, mask=arg_mask, **node.call_kwargs)
                calls[id(node.call)] = (out, node.layer.compute_mask(args, arg_mask))
            out, out_mask = calls[id(node.call)]
            values[id(node)] = out if node.index is None else out[node.index]
            masks[id(node)] = out_mask[node.index] if node.index is not None and isinstance(out_mask, list) \
                else out_mask
        outs = [values[id(t)] for t in self._outputs]
        return outs if self._multi_output else outs[0]

    def get_config(self):
        """The graph: layer specs, inputs, and each node as (layer, parent ids, output index)."""
        from lamina import saving

        ids = {id(t): i for i, t in enumerate(self._inputs)}
        calls, nodes = {}, []
        for node in self._order:
            if id(node) in ids:
                continue
            ids[id(node)] = len(ids)
            nodes.append({"id": ids[id(node)], "layer": next(i for i, l in enumerate(self.layers) if l is node.layer),
                          "inputs": [ids[id(p)] for p in _parents(node)], "list": isinstance(node.inputs, list),
                          "call": calls.setdefault(id(node.call), len(calls)), "index": node.index,
                          **({"kwargs": node.call_kwargs} if node.call_kwargs else {})})
        return {"name": self.name, "trainable": self.trainable,
                "layers": [saving.serialize_layer(l) for l in self.layers],
                "inputs": [{"name": t.name, "shape": list(t.shape[1:]), "dtype": t.dtype} for t in self._inputs],
                "nodes": nodes, "outputs": [ids[id(t)] for t in self._outputs],
                "multi_input": self._multi_input, "multi_output": self._multi_output}

    @classmethod
    def from_config(cls, config):
        from lamina import saving

        layers = [saving.deserialize_layer(spec) for spec in config["layers"]]
        tensors = {i: Input(tuple(spec["shape"]), dtype=spec.get("dtype", "float32"), name=spec.get("name"))
                   for i, spec in enumerate(config["inputs"])}
        inputs = list(tensors.values())
        done = {}
        for node in config["nodes"]:
            if node["call"] not in done:
                parents = [tensors[i] for i in node["inputs"]]
                done[node["call"]] = layers[node["layer"]](parents if node["list"] else parents[0],
                                                           **node.get("kwargs", {}))
            out = done[node["call"]]
            tensors[node["id"]] = out if node["index"] is None else out[node["index"]]
        outputs = [tensors[i] for i in config["outputs"]]
        model = cls(inputs if config.get("multi_input") else inputs[0],
                    outputs if config.get("multi_output") else outputs[0], name=config.get("name"))
        model.trainable = config.get("trainable", True)
        return model
