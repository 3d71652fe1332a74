"""Models: Model (functional and subclassed), Sequential."""

from lamina.models.functional import Functional, Input, KerasTensor
from lamina.models.model import Model
from lamina.models.sequential import Sequential


def load_model(filepath, custom_objects=None, compile=True):  # noqa: A002 (Keras spelling)
    """Rebuilds a model saved with ``model.save`` (see ``lamina.saving.load_model``)."""
    from lamina import saving

    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile)


__all__ = ["Model", "Sequential", "Functional", "Input", "KerasTensor", "load_model"]
