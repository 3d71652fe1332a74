"""Loss functions, by name or callable, as in Keras (``compile(loss="mse")``).

The functions return one loss per sample (the last axis is reduced); the ``Loss`` classes
average them over the batch to a scalar tensor.
"""

import numpy as np

import lamina

EPSILON = 1e-7


def _as_tensor(y, like=None):
    if isinstance(y, lamina.Tensor):
        return y
    arr = np.asarray(y)
    if like is not None and arr.dtype.kind in "fb":
        return lamina.tensor(arr, dtype=like.dtype)
    return lamina.tensor(arr)


def _float_like(y, like):
    return y if y.dtype == like.dtype else y.astype(like.dtype)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    """Cross-entropy between integer labels and class probabilities (or logits).

    Args:
        y_true: Integer class indices of shape y_pred.shape without `axis` (a trailing
            axis of size 1 is accepted).
        y_pred: Probabilities, or logits when `from_logits`.
        from_logits: Whether y_pred are unnormalised scores (more stable).
    """
    y_pred = _as_tensor(y_pred)
    y_true = _as_tensor(y_true)
    if axis not in (-1, y_pred.ndim - 1):
        raise ValueError("sparse_categorical_crossentropy: only the last axis holds classes")
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = lamina.squeeze(y_true, -1)
    if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(f"sparse_categorical_crossentropy: labels of shape {y_true.shape} do not match "
                         f"predictions of shape {y_pred.shape}")
    if y_true.dtype not in ("int64", "int32"):
        y_true = y_true.astype("int64")
    if from_logits:  # fused: stable log-sum-exp, backward softmax - onehot
        return lamina.softmax_cross_entropy(y_pred, y_true, reduction="none")
    else:
        probs = y_pred / lamina.sum(y_pred, -1, True)
        log_probs = lamina.log(lamina.clip(probs, EPSILON, 1.0 - EPSILON))
    picked = lamina.gather(log_probs, -1, lamina.unsqueeze(y_true, -1))
    return -lamina.squeeze(picked, -1)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Cross-entropy between one-hot (or soft) targets and probabilities (or logits)."""
    y_pred = _as_tensor(y_pred)
    y_true = _float_like(_as_tensor(y_true, y_pred), y_pred)
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(f"categorical_crossentropy: targets of shape {y_true.shape} do not match predictions of "
                         f"shape {y_pred.shape} (integer labels need sparse_categorical_crossentropy)")
    if label_smoothing:
        classes = y_pred.shape[axis]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / classes
    if from_logits and axis in (-1, y_pred.ndim - 1):
        return lamina.softmax_cross_entropy(y_pred, y_true, reduction="none")
    if from_logits:
        log_probs = lamina.log_softmax(y_pred, axis=axis)
    else:
        probs = y_pred / lamina.sum(y_pred, axis, True)
        log_probs = lamina.log(lamina.clip(probs, EPSILON, 1.0 - EPSILON))
    return -lamina.sum(y_true * log_probs, axis)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Cross-entropy of independent yes/no targets, averaged over the last axis.

    With `from_logits` it uses max(x, 0) - x*y + log(1 + exp(-|x|)), which never overflows.
    """
    y_pred = _as_tensor(y_pred)
    y_true = _float_like(_as_tensor(y_true, y_pred), y_pred)
    if y_true.ndim == y_pred.ndim - 1:
        y_true = lamina.unsqueeze(y_true, -1)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits and tuple(y_true.shape) == tuple(y_pred.shape):
        per_element = lamina.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    elif from_logits:
        per_element = lamina.relu(y_pred) - y_pred * y_true + lamina.softplus(-lamina.abs(y_pred))
    else:
        p = lamina.clip(y_pred, EPSILON, 1.0 - EPSILON)
        per_element = -(y_true * lamina.log(p) + (1.0 - y_true) * lamina.log(1.0 - p))
    return lamina.mean(per_element, axis)


def _check_same_shape(name, y_true, y_pred):
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = lamina.unsqueeze(y_true, -1)
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(f"{name}: targets of shape {y_true.shape} do not match predictions of shape {y_pred.shape}")
    return y_true


def mean_squared_error(y_true, y_pred):
    """mean((y_true - y_pred)**2) over the last axis."""
    y_pred = _as_tensor(y_pred)
    y_true = _check_same_shape("mean_squared_error", _float_like(_as_tensor(y_true, y_pred), y_pred), y_pred)
    diff = y_pred - y_true
    return lamina.mean(diff * diff, -1)


def mean_absolute_error(y_true, y_pred):
    """mean(|y_true - y_pred|) over the last axis."""
    y_pred = _as_tensor(y_pred)
    y_true = _check_same_shape("mean_absolute_error", _float_like(_as_tensor(y_true, y_pred), y_pred), y_pred)
    return lamina.mean(lamina.abs(y_pred - y_true), -1)


def huber(y_true, y_pred, delta=1.0):
    """Quadratic for errors below `delta`, linear above; averaged over the last axis."""
    y_pred = _as_tensor(y_pred)
    y_true = _check_same_shape("huber", _float_like(_as_tensor(y_true, y_pred), y_pred), y_pred)
    err = lamina.abs(y_pred - y_true)
    quadratic = 0.5 * err * err
    linear = delta * err - 0.5 * delta * delta
    return lamina.mean(lamina.where(err <= delta, quadratic, linear), -1)


def kl_divergence(y_true, y_pred):
    """sum(y_true * log(y_true / y_pred)) over the last axis, both clipped to [eps, 1]."""
    y_pred = _as_tensor(y_pred)
    y_true = _check_same_shape("kl_divergence", _float_like(_as_tensor(y_true, y_pred), y_pred), y_pred)
    t = lamina.clip(y_true, EPSILON, 1.0)
    p = lamina.clip(y_pred, EPSILON, 1.0)
    return lamina.sum(t * (lamina.log(t) - lamina.log(p)), -1)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
kld = KLD = kl_divergence


class Loss:
    """A loss function averaged over the batch: ``loss(y_true, y_pred) -> scalar tensor``.

    Args:
        fn: Per-sample loss function.
        name: Name shown in logs.
        **kwargs: Extra arguments passed to `fn` (from_logits, delta, ...).
    """

    def __init__(self, fn, name=None, **kwargs):
        self.fn = fn
        self.name = name or fn.__name__
        self.kwargs = kwargs

    def __call__(self, y_true, y_pred, sample_weight=None):
        per_sample = self.fn(y_true, y_pred, **self.kwargs)
        if sample_weight is not None:
            weights = _as_tensor(np.asarray(sample_weight), per_sample)
            return lamina.sum(per_sample * weights) / per_sample.size
        return lamina.mean(per_sample)

    def get_config(self):
        return {"name": self.name, **self.kwargs}

    def __repr__(self):
        return f"<Loss {self.name} {self.kwargs}>"


def _loss_class(fn, class_name):
    def __init__(self, name=None, **kwargs):
        Loss.__init__(self, fn, name=name or fn.__name__, **kwargs)

    return type(class_name, (Loss,), {"__init__": __init__, "__doc__": fn.__doc__})


SparseCategoricalCrossentropy = _loss_class(sparse_categorical_crossentropy, "SparseCategoricalCrossentropy")
CategoricalCrossentropy = _loss_class(categorical_crossentropy, "CategoricalCrossentropy")
BinaryCrossentropy = _loss_class(binary_crossentropy, "BinaryCrossentropy")
MeanSquaredError = _loss_class(mean_squared_error, "MeanSquaredError")
MeanAbsoluteError = _loss_class(mean_absolute_error, "MeanAbsoluteError")
Huber = _loss_class(huber, "Huber")
KLDivergence = _loss_class(kl_divergence, "KLDivergence")

_BY_NAME = {
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "mean_squared_error": mean_squared_error, "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error, "mae": mean_absolute_error,
    "huber": huber, "huber_loss": huber,
    "kl_divergence": kl_divergence, "kld": kl_divergence, "kullback_leibler_divergence": kl_divergence,
}


def get(identifier):
    """A batch-averaging Loss from a name, a Loss instance or a per-sample callable.

    Raises:
        ValueError: for an unknown name; the message lists the known names.
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        fn = _BY_NAME.get(identifier.lower())
        if fn is None:
            raise ValueError(f"Unknown loss '{identifier}'. Known losses: {', '.join(sorted(_BY_NAME))}")
        return Loss(fn, name=fn.__name__)
    if callable(identifier):
        return Loss(identifier)
    raise TypeError(f"loss must be a name, a Loss or a callable, got {type(identifier).__name__}")
