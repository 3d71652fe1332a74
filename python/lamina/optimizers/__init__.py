"""Optimizers (Keras names and arguments; also usable on a plain list of parameters)."""

from lamina.optimizers import schedules
from lamina.optimizers.adam import Adam, AdamW
from lamina.optimizers.loss_scale import LossScaleOptimizer
from lamina.optimizers.optimizer import Optimizer
from lamina.optimizers.rmsprop import Adagrad, RMSprop
from lamina.optimizers.sgd import SGD

_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def get(identifier):
    """An optimizer from a name ('adam', 'sgd', ...) with default settings, or an instance.

    Raises:
        ValueError: for an unknown name; the message lists the known names.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer '{identifier}'. Known optimizers: {', '.join(sorted(_BY_NAME))}")
        return cls()
    raise TypeError(f"optimizer must be a name or an Optimizer, got {type(identifier).__name__}")


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "LossScaleOptimizer", "schedules", "get"]
