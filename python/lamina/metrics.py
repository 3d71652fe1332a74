"""Stateful metrics (``update_state`` / ``result`` / ``reset_state``), computed on numpy data.

Metrics never need gradients, so predictions are detached and read as numpy arrays.
"""

import functools

import numpy as np


def _np(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
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


def _dense_truth(y_true, y_pred):
    """Targets as a 0/1 array shaped like y_pred: integer labels are one-hot encoded when
    y_pred has one column per class."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    classes = y_pred.shape[-1] if y_pred.ndim else 1
    if classes > 1 and y_true.shape != y_pred.shape:
        labels = y_true[..., 0] if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1 else y_true
        labels = np.rint(labels).astype(np.int64)
        if labels.shape != y_pred.shape[:-1] or labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(f"labels of shape {y_true.shape} do not match predictions of shape {y_pred.shape}")
        return np.eye(classes, dtype=bool)[labels]
    return y_true.reshape(y_pred.shape) > 0.5


def _broadcast_weights(sample_weight, shape):
    """Per-sample weights broadcast over the trailing axes of `shape` (ones when None)."""
    if sample_weight is None:
        return np.ones(shape)
    w = _np(sample_weight).astype(np.float64)
    return np.broadcast_to(w.reshape(w.shape + (1,) * (len(shape) - w.ndim)), shape)


class F1Score(Metric):
    """F1 score, 2 * precision * recall / (precision + recall), from accumulated counts.

    With one output column (binary) a prediction is positive when ``y_pred > threshold``
    (0.5 by default), like ``Precision`` and ``Recall``. With one column per class, targets
    may be one-hot or integer labels; the predicted class is the argmax unless a threshold
    is given (then every column above it counts as predicted).

    Args:
        threshold: Decision threshold; None means 0.5 for binary outputs and argmax for
            multi-class ones.
        average: How to reduce per-class scores of multi-class outputs: None (an array
            with one score per class, as Keras), 'micro' (from counts summed over
            classes), 'macro' (unweighted mean) or 'weighted' (mean weighted by each
            class's number of true samples). Binary outputs always give one float.
        name: Name shown in logs.

    Raises:
        ValueError: For an unknown `average`.
    """

    def __init__(self, threshold=None, average=None, name="f1_score"):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(f"F1Score: average must be None, 'micro', 'macro' or 'weighted', got {average!r}")
        self.threshold, self.average = threshold, average
        super().__init__(name)

    def reset_state(self):
        self.tp = self.fp = self.fn = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _np(y_pred).astype(np.float64)
        if y_pred.ndim <= 1:
            y_pred = y_pred.reshape(-1, 1)  # binary predictions given without a class axis
        truth = _dense_truth(y_true, y_pred)
        classes = y_pred.shape[-1]
        if self.threshold is None and classes > 1:
            predicted = y_pred == y_pred.max(axis=-1, keepdims=True)
            predicted &= np.cumsum(predicted, axis=-1) == 1  # ties: the first maximum, as argmax
        else:
            predicted = y_pred > (0.5 if self.threshold is None else self.threshold)
        w = _broadcast_weights(sample_weight, y_pred.shape[:-1] + (1,))
        axes = tuple(range(y_pred.ndim - 1))
        counts = [np.sum(w * mask, axis=axes) for mask in (truth & predicted, ~truth & predicted, truth & ~predicted)]
        if self.tp is None:
            self.tp, self.fp, self.fn = counts
        else:
            self.tp, self.fp, self.fn = self.tp + counts[0], self.fp + counts[1], self.fn + counts[2]

    @staticmethod
    def _f1(tp, fp, fn):
        denominator = 2 * tp + fp + fn
        return np.divide(2 * tp, denominator, out=np.zeros_like(denominator, dtype=np.float64),
                         where=denominator > 0)

    def result(self):
        if self.tp is None:
            return 0.0
        if self.tp.size == 1:
            return float(self._f1(self.tp, self.fp, self.fn).sum())
        if self.average == "micro":
            return float(self._f1(self.tp.sum(), self.fp.sum(), self.fn.sum()))
        per_class = self._f1(self.tp, self.fp, self.fn)
        if self.average == "macro":
            return float(per_class.mean())
        if self.average == "weighted":
            support = self.tp + self.fn
            return float(np.sum(per_class * support) / support.sum()) if support.sum() else 0.0
        return per_class

    def __repr__(self):
        value = self.result()
        return f"<F1Score {self.name}={value if isinstance(value, np.ndarray) else format(value, '.4g')}>"


class AUC(Metric):
    """Area under the ROC curve, approximated with fixed thresholds as Keras does.

    Predictions are compared against `num_thresholds` thresholds evenly spaced over [0, 1]
    (the end ones nudged just outside it), true and false positive rates are accumulated at
    each, and the area is summed with the trapezoidal rule. It is not the exact, rank-based
    AUC: with the default 200 thresholds the two usually differ by well under 0.01, less
    with more thresholds. Every element counts as one binary decision, so one-hot (or
    integer) multi-class targets give the micro-averaged AUC.

    Args:
        num_thresholds: Number of thresholds, at least 2.
        from_logits: Apply a sigmoid to the predictions first.
        name: Name shown in logs.
    """

    def __init__(self, num_thresholds=200, from_logits=False, name="auc"):
        if int(num_thresholds) < 2:
            raise ValueError(f"AUC: num_thresholds must be at least 2, got {num_thresholds}")
        self.num_thresholds, self.from_logits = int(num_thresholds), from_logits
        inner = np.arange(1, self.num_thresholds - 1) / (self.num_thresholds - 1)
        self.thresholds = np.concatenate([[-1e-7], inner, [1.0 + 1e-7]])
        super().__init__(name)

    def reset_state(self):
        self.tp, self.fp, self.tn, self.fn = (np.zeros(self.num_thresholds) for _ in range(4))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _np(y_pred).astype(np.float64)
        if self.from_logits:
            y_pred = 1.0 / (1.0 + np.exp(-y_pred))
        truth = _dense_truth(y_true, y_pred).ravel()
        w = _broadcast_weights(sample_weight, y_pred.shape).ravel()
        # bucket[i] thresholds lie below prediction i, so it is positive at thresholds < bucket[i].
        bucket = np.searchsorted(self.thresholds, y_pred.ravel(), side="left")
        for label, above, below in ((True, "tp", "fn"), (False, "fp", "tn")):
            hist = np.bincount(bucket, weights=w * (truth == label), minlength=self.num_thresholds + 1)
            at_or_above = np.cumsum(hist[::-1])[::-1]  # weight of predictions in buckets >= k
            setattr(self, above, getattr(self, above) + at_or_above[1:])
            setattr(self, below, getattr(self, below) + hist.sum() - at_or_above[1:])

    def result(self):
        positives, negatives = self.tp + self.fn, self.fp + self.tn
        tpr = np.divide(self.tp, positives, out=np.zeros_like(self.tp), where=positives > 0)
        fpr = np.divide(self.fp, negatives, out=np.zeros_like(self.fp), where=negatives > 0)
        return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2))


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
    "f1": functools.partial(F1Score, average="macro"), "f1_score": functools.partial(F1Score, average="macro"),
    "auc": AUC,
}
_ACCURACY_FOR_LOSS = {
    "sparse_categorical_crossentropy": SparseCategoricalAccuracy,
    "categorical_crossentropy": CategoricalAccuracy,
    "binary_crossentropy": BinaryAccuracy,
}


def get(identifier, loss_name=None):
    """A metric from a name, an instance or a per-sample function.

    'accuracy' (or 'acc') picks sparse, categorical or binary accuracy from the loss name
    as Keras does, and from the data's shapes when the loss does not tell. 'f1' and
    'f1_score' give a macro-averaged ``F1Score`` (one float per epoch in the History); 'auc'
    gives ``AUC``.

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
