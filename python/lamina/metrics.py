"""Stateful metrics (``update_state`` / ``result`` / ``reset_state``), computed on numpy data.

Metrics never need gradients, so predictions are detached and read as numpy arrays.
"""

import numpy as np


def _np(x):
    if hasattr(x, "detach"):
        x = x.detach().numpy()
    return np.asarray(x)


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where argmax(y_pred) equals the integer label, per sample."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return (np.argmax(y_pred, axis=-1) == y_true.astype(np.int64)).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    """1.0 where argmax(y_pred) equals argmax(y_true), per sample."""
    return (np.argmax(_np(y_pred), axis=-1) == np.argmax(_np(y_true), axis=-1)).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Fraction of elements where (y_pred > threshold) matches y_true, per sample."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    if y_true.ndim == y_pred.ndim - 1:
        y_true = y_true[..., None]
    return np.mean((y_pred > threshold) == (y_true > 0.5), axis=-1).astype(np.float32)


def mean_absolute_error(y_true, y_pred):
    """mean(|y_true - y_pred|) over the last axis."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    return np.mean(np.abs(y_pred - y_true.reshape(y_pred.shape)), axis=-1)


def mean_squared_error(y_true, y_pred):
    """mean((y_true - y_pred)**2) over the last axis."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    return np.mean((y_pred - y_true.reshape(y_pred.shape)) ** 2, axis=-1)


class Metric:
    """Base class: accumulate with ``update_state``, read with ``result``, clear with ``reset_state``."""

    def __init__(self, name=None):
        self.name = name or type(self).__name__.lower()
        self.reset_state()

    def reset_state(self):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}={self.result():.4g}>"


class Mean(Metric):
    """The (weighted) mean of all values passed to ``update_state(values)``."""

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def update_state(self, values, sample_weight=None):
        values = _np(values).astype(np.float64)
        if sample_weight is None:
            self.total += float(values.sum())
            self.count += values.size
        else:
            weights = np.broadcast_to(_np(sample_weight).astype(np.float64), values.shape)
            self.total += float((values * weights).sum())
            self.count += float(weights.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """The running mean of a per-sample function ``fn(y_true, y_pred)``."""

    def __init__(self, fn, name=None, **kwargs):
        self.fn, self.kwargs = fn, kwargs
        super().__init__(name or fn.__name__)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self.fn(y_true, y_pred, **self.kwargs), sample_weight)


def _wrapper(fn, default_name):
    class _Metric(MeanMetricWrapper):
        def __init__(self, name=default_name, **kwargs):
            super().__init__(fn, name, **kwargs)

    _Metric.__doc__ = fn.__doc__
    return _Metric


SparseCategoricalAccuracy = _wrapper(sparse_categorical_accuracy, "sparse_categorical_accuracy")
CategoricalAccuracy = _wrapper(categorical_accuracy, "categorical_accuracy")
BinaryAccuracy = _wrapper(binary_accuracy, "binary_accuracy")
MeanAbsoluteError = _wrapper(mean_absolute_error, "mean_absolute_error")
MeanSquaredError = _wrapper(mean_squared_error, "mean_squared_error")


class _Confusion(Metric):
    """Counts true/false positives and false negatives of ``y_pred > threshold``."""

    def __init__(self, threshold=0.5, name=None):
        self.threshold = threshold
        super().__init__(name)

    def reset_state(self):
        self.tp = self.fp = self.fn = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _np(y_true), _np(y_pred)
        truth = y_true.reshape(y_pred.shape) > 0.5
        predicted = y_pred > self.threshold
        weights = 1.0 if sample_weight is None else np.broadcast_to(
            _np(sample_weight).reshape((-1,) + (1,) * (y_pred.ndim - 1)), y_pred.shape)
        self.tp += float(np.sum(weights * (truth & predicted)))
        self.fp += float(np.sum(weights * (~truth & predicted)))
        self.fn += float(np.sum(weights * (truth & ~predicted)))


class Precision(_Confusion):
    """tp / (tp + fp) of thresholded predictions."""

    def result(self):
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0


class Recall(_Confusion):
    """tp / (tp + fn) of thresholded predictions."""

    def result(self):
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0


class _InferredAccuracy(MeanMetricWrapper):
    """'accuracy' when the loss does not say which kind: decided from the first batch's shapes."""

    def __init__(self, name="accuracy"):
        super().__init__(self._pick, name)

    @staticmethod
    def _pick(y_true, y_pred):
        y_true, y_pred = _np(y_true), _np(y_pred)
        if y_pred.ndim >= 1 and y_pred.shape[-1] == 1:
            return binary_accuracy(y_true, y_pred)
        if y_true.shape == y_pred.shape:
            return categorical_accuracy(y_true, y_pred)
        return sparse_categorical_accuracy(y_true, y_pred)


_BY_NAME = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy, "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError, "precision": Precision, "recall": Recall,
}
_ACCURACY_FOR_LOSS = {
    "sparse_categorical_crossentropy": SparseCategoricalAccuracy,
    "categorical_crossentropy": CategoricalAccuracy,
    "binary_crossentropy": BinaryAccuracy,
}


def get(identifier, loss_name=None):
    """A metric from a name, an instance or a per-sample function.

    'accuracy' (or 'acc') picks sparse, categorical or binary accuracy from the loss name
    as Keras does, and from the data's shapes when the loss does not tell.

    Raises:
        ValueError: for an unknown name; the message lists the known names.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            cls = _ACCURACY_FOR_LOSS.get(loss_name)
            return cls(name=identifier) if cls else _InferredAccuracy(identifier)
        cls = _BY_NAME.get(key)
        if cls is None:
            known = sorted(set(_BY_NAME) | {"accuracy"})
            raise ValueError(f"Unknown metric '{identifier}'. Known metrics: {', '.join(known)}")
        return cls(name=identifier)
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(f"metric must be a name, a Metric or a callable, got {type(identifier).__name__}")
