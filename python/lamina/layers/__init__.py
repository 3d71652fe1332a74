"""Keras-style layers."""

from lamina.layers.augmentation import GaussianNoise, RandomFlip, RandomNoise, RandomTranslation
from lamina.layers.base import Layer
from lamina.layers.core import Activation, Dense, Dropout, Embedding, Flatten, Reshape
from lamina.layers.normalization import BatchNormalization, LayerNormalization
from lamina.layers.recurrent import SimpleRNN


def Input(shape, dtype="float32", name=None):  # noqa: N802 (Keras spelling)
    """A symbolic input for the functional API; same as ``lamina.Input``."""
    from lamina.models.functional import Input as _input

    return _input(shape, dtype=dtype, name=name)


__all__ = ["Layer", "Dense", "Activation", "Dropout", "Flatten", "Reshape", "Embedding", "Input",
           "BatchNormalization", "LayerNormalization", "RandomFlip", "RandomTranslation", "GaussianNoise",
           "RandomNoise", "SimpleRNN"]
