"""Models: Model (functional and subclassed), Sequential."""

from lamina.models.functional import Functional, Input, KerasTensor
from lamina.models.model import Model
from lamina.models.sequential import Sequential

__all__ = ["Model", "Sequential", "Functional", "Input", "KerasTensor"]
