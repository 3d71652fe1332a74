"""Sequential: a plain stack of layers, each feeding the next."""

import lamina
from lamina.layers.base import Layer
from lamina.models.model import Model


class Sequential(Model):
    """A linear stack of layers.

    Args:
        layers: Layers in order. Give the first one ``input_shape=`` (or start with a
            ``lamina.Input``) to build the model, and print its summary, before fitting.
        name: Model name.
    """

    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self._input_spec = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        """Appends a layer (or, first, a ``lamina.Input`` giving the input shape)."""
        from lamina.models.functional import KerasTensor

        if isinstance(layer, KerasTensor):
            if self._layers:
                raise ValueError("Sequential: an Input can only come first")
            self._input_spec = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add takes a Layer, got {type(layer).__name__}")
        self._layers.append(layer)
        self.built = False
        shape = None
        if self._input_spec is not None:
            shape = self._input_spec.shape
        elif self._layers[0]._input_shape_arg is not None:
            shape = (None,) + tuple(self._layers[0]._input_shape_arg)
        if shape is not None:
            self.build(shape)

    def build(self, input_shape):
        """Builds every layer by running zeros of `input_shape` (batch of one) through the stack."""
        dtype = self._input_spec.dtype if self._input_spec is not None else "float32"
        with lamina.no_grad():
            x = lamina.zeros(tuple(1 if d is None else d for d in input_shape), dtype=dtype)
            for layer in self._layers:
                x = layer(x, training=False)
        self.input_shape = (None,) + tuple(input_shape[1:])
        self.output_shape = (None,) + tuple(x.shape[1:])
        self.built = True

    _check_input_shape = Layer._check_input_shape

    def call(self, x, training=False):
        for layer in self._layers:
            x = layer(x, training=training)
        return x

    def pop(self):
        """Removes the last layer."""
        if not self._layers:
            raise IndexError("Sequential.pop: the model has no layers")
        layer = self._layers.pop()
        self.built = False
        return layer

    def get_config(self):
        return {"name": self.name, "layers": [{"class_name": type(l).__name__, "config": l.get_config()}
                                              for l in self._layers]}

    @classmethod
    def from_config(cls, config):
        from lamina import layers as layers_module

        built = [getattr(layers_module, spec["class_name"]).from_config(spec["config"]) for spec in config["layers"]]
        return cls(built, name=config.get("name"))
