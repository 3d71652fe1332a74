"""Keras-style layers. Every Layer class exported here can be rebuilt by ``load_model``."""

from lamina.layers.attention import MultiHeadAttention, PositionalEmbedding, TransformerEncoder
from lamina.layers.augmentation import GaussianNoise, RandomFlip, RandomNoise, RandomTranslation
from lamina.layers.base import Layer
from lamina.layers.conv import Conv1D, Conv2D, Conv2DTranspose
from lamina.layers.core import Activation, Dense, Dropout, Embedding, Flatten, Masking, Reshape
from lamina.layers.merge import Add, Average, Concatenate, Multiply, Subtract
from lamina.layers.normalization import BatchNormalization, LayerNormalization
from lamina.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    MaxPooling1D,
    MaxPooling2D,
    UpSampling2D,
)
from lamina.layers.recurrent import GRU, LSTM, Bidirectional, SimpleRNN


def Input(shape, dtype="float32", name=None):
    """A symbolic input for the functional API; same as ``lamina.Input``."""
    from lamina.models.functional import Input as _input

    return _input(shape, dtype=dtype, name=name)


__all__ = [
    "GRU",
    "LSTM",
    "Activation",
    "Add",
    "Average",
    "AveragePooling1D",
    "AveragePooling2D",
    "BatchNormalization",
    "Bidirectional",
    "Concatenate",
    "Conv1D",
    "Conv2D",
    "Conv2DTranspose",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GaussianNoise",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "Input",
    "Layer",
    "LayerNormalization",
    "Masking",
    "MaxPooling1D",
    "MaxPooling2D",
    "MultiHeadAttention",
    "Multiply",
    "PositionalEmbedding",
    "RandomFlip",
    "RandomNoise",
    "RandomTranslation",
    "Reshape",
    "SimpleRNN",
    "Subtract",
    "TransformerEncoder",
    "UpSampling2D",
]
