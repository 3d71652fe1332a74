"""Weight penalties added to the training loss (``Dense(..., kernel_regularizer="l2")``)."""

import lamina


class Regularizer:
    """Base class: ``regularizer(weight)`` returns a scalar penalty tensor."""

    def __call__(self, weight):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class L1L2(Regularizer):
    """l1 * sum(|w|) + l2 * sum(w**2).

    Args:
        l1: L1 factor.
        l2: L2 factor.
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = float(l1)
        self.l2 = float(l2)

    def __call__(self, weight):
        penalty = lamina.zeros(())
        if self.l1:
            penalty = penalty + self.l1 * lamina.sum(lamina.abs(weight))
        if self.l2:
            penalty = penalty + self.l2 * lamina.sum(weight * weight)
        return penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """l1 * sum(|w|)."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """l2 * sum(w**2)."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1 = L1
l2 = L2
l1_l2 = L1L2
_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


def get(identifier):
    """A regularizer from None, a name ('l1', 'l2', 'l1_l2'), an instance or a callable."""
    if identifier is None or callable(identifier):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown regularizer '{identifier}'. Known: {', '.join(sorted(_BY_NAME))}")
        return cls()
    raise TypeError(f"regularizer must be a name, a callable or None, got {type(identifier).__name__}")


def serialize(reg):
    """A JSON-able form: None, or ``{"class_name", "config"}`` for a Regularizer instance.

    Raises:
        ValueError: for a plain callable, which has no config to save.
    """
    if reg is None:
        return None
    if isinstance(reg, Regularizer):
        return {"class_name": type(reg).__name__, "config": reg.get_config()}
    name = getattr(reg, "__name__", None)
    if name:
        return name
    raise ValueError(f"Cannot serialize regularizer {reg!r}; subclass lamina.regularizers.Regularizer")


def deserialize(config, custom_objects=None):
    """The inverse of serialize; registered classes (lamina.saving) are found by name."""
    if config is None:
        return None
    if isinstance(config, dict):
        from lamina import saving

        cls = saving.lookup_class(config["class_name"], {"L1L2": L1L2, "L1": L1, "L2": L2}, custom_objects,
                                  "regularizer")
        return cls.from_config(config.get("config", {}))
    if isinstance(config, str) and config.lower() not in _BY_NAME:
        from lamina import saving

        return saving.lookup_class(config, {}, custom_objects, "regularizer")
    return get(config)
