"""Merge layers for functional models: Add, Subtract, Multiply, Average, Concatenate.

Each takes a list of tensors, ``layers.Add()([a, b])``. Masks (batch, timesteps) of the
inputs are combined with logical and.
"""

import lamina
from lamina.layers.base import Layer


class _Merge(Layer):
    supports_masking = True
    min_inputs = 2

    def build(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < self.min_inputs:
            raise ValueError(f"{type(self).__name__} '{self.name}' takes a list of at least {self.min_inputs} "
                             f"tensors, got {input_shape}")
        self._check_shapes(input_shape)

    def _check_shapes(self, shapes):
        first = tuple(shapes[0][1:])
        for s in shapes[1:]:
            if tuple(s[1:]) != first:
                raise ValueError(f"{type(self).__name__} '{self.name}': inputs must have equal shapes, got "
                                 f"{[tuple(s) for s in shapes]}")

    def _check_input_shape(self, shape):
        if not isinstance(shape, list) or len(shape) != len(self.input_shape):
            raise ValueError(f"{type(self).__name__} '{self.name}' was built for {len(self.input_shape)} inputs")
        self._check_shapes(shape)

    def call(self, inputs, training=False):
        out = inputs[0]
        for x in inputs[1:]:
            out = self._combine(out, x)
        return out

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        masks = [m for m in (mask if isinstance(mask, list) else [mask]) if m is not None]
        if not masks:
            return None
        out = masks[0]
        for m in masks[1:]:
            out = lamina.logical_and(out, m)
        return out


class Add(_Merge):
    """Elementwise sum of the inputs (equal shapes)."""

    def _combine(self, a, b):
        return a + b


class Subtract(_Merge):
    """The first input minus the second (exactly two inputs)."""

    def build(self, input_shape):
        super().build(input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"Subtract '{self.name}' takes exactly 2 inputs, got {len(input_shape)}")

    def _combine(self, a, b):
        return a - b


class Multiply(_Merge):
    """Elementwise product of the inputs (equal shapes)."""

    def _combine(self, a, b):
        return a * b


class Average(_Merge):
    """Elementwise mean of the inputs (equal shapes)."""

    def call(self, inputs, training=False):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out * (1.0 / len(inputs))


class Concatenate(_Merge):
    """Joins the inputs along `axis` (other axes equal).

    Args:
        axis: The axis to join along (default the last).
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _check_shapes(self, shapes):
        rank = len(shapes[0])
        axis = self.axis % rank
        if axis == 0:
            raise ValueError(f"Concatenate '{self.name}': cannot join along the batch axis")
        for s in shapes[1:]:
            if len(s) != rank or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i not in (0, axis)):
                raise ValueError(f"Concatenate '{self.name}': inputs must match except on axis {self.axis}, got "
                                 f"{[tuple(s) for s in shapes]}")

    def call(self, inputs, training=False):
        return lamina.concatenate(list(inputs), self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
