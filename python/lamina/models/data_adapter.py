"""What fit/evaluate/predict iterate over: arrays, a Dataset, or a generator of batches.

Each adapter yields ``(x, y, sample_weight)`` batches as tensors, epoch by epoch.
"""

import math
import types

import numpy as np

import lamina


def to_numpy(data, what):
    """numpy data from an array, a tensor or nested lists; a list of arrays/tensors stays a
    list (one entry per model input)."""
    if data is None:
        return None
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, (np.ndarray, lamina.Tensor)) for d in data):
        return [to_numpy(d, what) for d in data]
    if isinstance(data, lamina.Tensor):
        return data.detach().cpu().numpy()
    arr = np.asarray(data)
    if arr.dtype == object:
        raise TypeError(f"{what} must be an array or tensor, got ragged or object data")
    return arr


def length(data):
    return len(data[0]) if isinstance(data, list) else len(data)


def take(data, idx):
    return [d[idx] for d in data] if isinstance(data, list) else data[idx]


def batch_tensor(arr):
    """A batch as a tensor: floats and bools become float32, integers int64."""
    if arr is None:
        return None
    if isinstance(arr, list):
        return [batch_tensor(a) for a in arr]
    if isinstance(arr, lamina.Tensor):
        return arr
    arr = np.asarray(arr)
    if arr.dtype.kind in "fb":
        arr = arr.astype(np.float32, copy=False)
    elif arr.dtype.kind in "iu":
        arr = arr.astype(np.int64, copy=False)
    return lamina.tensor(np.ascontiguousarray(arr))


def is_iterable_source(x):
    """True for a Dataset, a generator or an iterator (data that yields whole batches)."""
    from lamina.data import Dataset

    return isinstance(x, (Dataset, types.GeneratorType)) or (hasattr(x, "__next__") and hasattr(x, "__iter__"))


def unpack(element, what):
    """(x, y, sample_weight) from a batch element: x, (x,), (x, y) or (x, y, sample_weight)."""
    if isinstance(element, tuple):
        if not 1 <= len(element) <= 3:
            raise ValueError(f"{what}: a batch must be x, (x, y) or (x, y, sample_weight); got a tuple of "
                             f"{len(element)}")
        element = element + (None,) * (3 - len(element))
        return element
    return element, None, None


def check_class_weight(class_weight, what):
    """Validates a ``{class_index: weight}`` dict; returns it with int keys and float weights.

    Raises:
        TypeError: When `class_weight` is not a dict.
        ValueError: For a key that is not a non-negative integer, or a weight that is not a
            finite, non-negative number.
    """
    if not isinstance(class_weight, dict):
        raise TypeError(f"{what}: class_weight must be a dict {{class_index: weight}}, got "
                        f"{type(class_weight).__name__}")
    checked = {}
    for key, weight in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
            raise ValueError(f"{what}: class_weight keys must be class indices (non-negative ints), got {key!r}")
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            weight = float("nan")
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"{what}: class_weight[{key}] must be a finite, non-negative number, "
                             f"got {class_weight[key]!r}")
        checked[int(key)] = weight
    return checked


def class_weights(y, class_weight, what, all_labels=False):
    """Per-sample weights from labels, as Keras computes them.

    The class of a sample is the argmax of one-hot (or soft) targets with several
    columns, else its label rounded to an int (sparse class indices, or 0/1 binary
    targets). Classes missing from `class_weight` get weight 1.

    Args:
        y: Targets, of shape (n,), (n, 1) or (n, classes).
        class_weight: A dict checked by ``check_class_weight``.
        what: Caller's name for error messages.
        all_labels: Whether `y` holds all the training targets (arrays, not one batch of
            a Dataset): then integer labels tell the number of classes too.

    Raises:
        ValueError: For several outputs, targets of rank above 2, or a key that is not
            one of the classes (beyond the one-hot width, or with `all_labels` above the
            largest label).
    """
    if isinstance(y, list):  # several outputs: a supported type, an unsupported combination
        raise ValueError(f"{what}: class_weight needs one output's targets, got {len(y)}")  # noqa: TRY004
    y = np.asarray(y)
    if y.ndim > 2:
        raise ValueError(f"{what}: class_weight supports targets of rank 1 or 2, got shape {y.shape}; "
                         f"pass a sample_weight instead")
    if y.ndim == 2 and y.shape[1] > 1:
        labels, num_classes = np.argmax(y, axis=-1), y.shape[1]
    else:
        labels = np.rint(y.reshape(len(y))).astype(np.int64)
        num_classes = int(labels.max(initial=1)) + 1 if all_labels else None
    if num_classes is not None:
        unknown = sorted(k for k in class_weight if k >= num_classes)
        if unknown:
            raise ValueError(f"{what}: class_weight has keys {unknown} but the targets only hold classes "
                             f"0..{num_classes - 1}")
    table = np.ones(max(max(class_weight, default=0), int(labels.max(initial=0))) + 1, dtype=np.float32)
    for key, weight in class_weight.items():
        table[key] = weight
    return np.where(labels >= 0, table[np.clip(labels, 0, None)], np.float32(1.0))


def combine_weights(sample_weight, extra):
    """`sample_weight` times `extra` (either may be None)."""
    if sample_weight is None or extra is None:
        return extra if sample_weight is None else sample_weight
    sample_weight = np.asarray(sample_weight, dtype=np.float32)
    return sample_weight * extra.reshape(extra.shape + (1,) * (sample_weight.ndim - 1))


class ArrayAdapter:
    """Batches of in-memory arrays, reshuffled each epoch when `shuffle`."""

    def __init__(self, x, y, sample_weight, batch_size, shuffle, steps=None):
        self.x, self.y, self.sw = x, y, sample_weight
        self.batch_size, self.shuffle = batch_size, shuffle
        self.size = length(x)
        full = math.ceil(self.size / batch_size)
        self.steps = full if steps is None else min(int(steps), full)

    def epoch(self):
        order = np.random.permutation(self.size) if self.shuffle else np.arange(self.size)
        for step in range(self.steps):
            idx = order[step * self.batch_size:(step + 1) * self.batch_size]
            yield (batch_tensor(take(self.x, idx)), batch_tensor(None if self.y is None else self.y[idx]),
                   None if self.sw is None else self.sw[idx])


class IterableAdapter:
    """Batches from a Dataset (iterated afresh each epoch) or a generator (consumed across epochs).

    Args:
        source: Dataset, generator or iterator yielding batches.
        steps: Batches per epoch; None runs until the source is exhausted (a generator can
            then serve one epoch only).
        class_weight: Checked ``{class_index: weight}`` dict applied to each batch's
            targets (multiplying any sample weights the batch carries).
    """

    def __init__(self, source, steps, what, class_weight=None):
        from lamina.data import Dataset

        self.source, self.what, self.class_weight = source, what, class_weight
        self.reiterable = isinstance(source, Dataset)
        self._iterator = None if self.reiterable else iter(source)
        if steps is None and self.reiterable:
            steps = source.cardinality()
        self.steps = None if steps is None else int(steps)
        self.exhausted = False

    def epoch(self):
        it = iter(self.source) if self.reiterable else self._iterator
        count = 0
        while self.steps is None or count < self.steps:
            try:
                element = next(it)
            except StopIteration:
                if not self.reiterable or self.steps is not None:
                    self.exhausted = self.steps is not None or count == 0
                return
            x, y, sw = unpack(element, self.what)
            y, sw = to_numpy(y, "y"), None if sw is None else to_numpy(sw, "sample_weight")
            if self.class_weight is not None:
                if y is None:
                    raise ValueError(f"{self.what}: class_weight needs batches with targets, (x, y)")
                sw = combine_weights(sw, class_weights(y, self.class_weight, self.what))
            yield batch_tensor(to_numpy(x, "x")), batch_tensor(y), sw
            count += 1


def adapter(x, y, sample_weight, batch_size, shuffle, steps, what, class_weight=None):
    if is_iterable_source(x):
        if y is not None:
            raise ValueError(f"{what}: y must not be given when x is a Dataset or generator (it yields (x, y))")
        return IterableAdapter(x, steps, what, class_weight)
    return ArrayAdapter(x, y, sample_weight, batch_size, shuffle, steps)
