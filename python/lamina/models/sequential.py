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

    def call(self, x, training=False, mask=None):
        for layer in self._layers:
            y = layer(x, training=training, mask=mask)
            mask = layer.compute_mask(x, mask)
            x = y
        return x

    def pop(self):
        """Removes the last layer."""
        if not self._layers:
            raise IndexError("Sequential.pop: the model has no layers")
        layer = self._layers.pop()
        self.built = False
        return layer

    def get_config(self):
        from lamina import saving

        config = {"name": self.name, "trainable": self.trainable,
                  "layers": [saving.serialize_layer(l) for l in self._layers]}
        if self._input_spec is not None:
            config["input"] = {"shape": list(self._input_spec.shape[1:]), "dtype": self._input_spec.dtype}
        if self.built and self.input_shape is not None:
            config["build_input_shape"] = list(self.input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        from lamina import saving
        from lamina.models.functional import Input

        built = [saving.deserialize_layer(spec) for spec in config["layers"]]
        if "input" in config:
            built.insert(0, Input(tuple(config["input"]["shape"]), dtype=config["input"].get("dtype", "float32")))
        model = cls(built, name=config.get("name"), trainable=config.get("trainable", True))
        if not model.built and config.get("build_input_shape"):
            model.build(tuple(config["build_input_shape"]))
        return model
