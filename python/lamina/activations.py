"""Activation functions, looked up by name as in Keras (``Dense(10, activation="relu")``)."""

import lamina


def linear(x):
    """Identity."""
    return x


def relu(x):
    """max(x, 0)."""
    return lamina.relu(x)


def sigmoid(x):
    """1 / (1 + exp(-x))."""
    return lamina.sigmoid(x)


def tanh(x):
    """Hyperbolic tangent."""
    return lamina.tanh(x)


def softmax(x, axis=-1):
    """exp(x) normalised to sum to one along `axis`."""
    return lamina.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    """log(softmax(x)), computed stably."""
    return lamina.log_softmax(x, axis=axis)


def gelu(x, approximate=False):
    """Gaussian error linear unit (tanh form when `approximate`)."""
    return lamina.gelu(x, approximate)


def leaky_relu(x, negative_slope=0.2):
    """x if x > 0 else negative_slope * x (Keras default slope 0.2)."""
    return lamina.leaky_relu(x, negative_slope)


def elu(x, alpha=1.0):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return lamina.elu(x, alpha)


def selu(x):
    """Scaled exponential linear unit."""
    return lamina.selu(x)


def silu(x):
    """x * sigmoid(x)."""
    return lamina.silu(x)


swish = silu


def softplus(x):
    """log(1 + exp(x))."""
    return lamina.softplus(x)


def exponential(x):
    """exp(x)."""
    return lamina.exp(x)


_BY_NAME = {
    "linear": linear, "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax,
    "log_softmax": log_softmax, "gelu": gelu, "leaky_relu": leaky_relu, "elu": elu, "selu": selu,
    "silu": silu, "swish": swish, "softplus": softplus, "exponential": exponential,
}


def get(identifier):
    """Returns the activation function for a name, a callable, or None (linear).

    Raises:
        ValueError: for an unknown name; the message lists the known names.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = _BY_NAME.get(identifier.lower())
        if fn is None:
            from lamina import saving

            fn = saving.get_registered_object(identifier)
        if fn is None:
            raise ValueError(f"Unknown activation '{identifier}'. Known activations: {', '.join(sorted(_BY_NAME))}")
        return fn
    if callable(identifier):
        return identifier
    raise TypeError(f"activation must be a name, a callable or None, got {type(identifier).__name__}")


def serialize(fn):
    """The name of a built-in activation, else the callable itself."""
    for name, known in _BY_NAME.items():
        if known is fn:
            return name
    from lamina import saving

    registered = saving.get_registered_name(fn)
    return registered or getattr(fn, "__name__", fn)
