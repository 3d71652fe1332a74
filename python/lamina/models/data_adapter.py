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
        return data.detach().numpy()
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
    """

    def __init__(self, source, steps, what):
        from lamina.data import Dataset

        self.source, self.what = source, what
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
            yield (batch_tensor(to_numpy(x, "x")), batch_tensor(to_numpy(y, "y")),
                   None if sw is None else to_numpy(sw, "sample_weight"))
            count += 1


def adapter(x, y, sample_weight, batch_size, shuffle, steps, what):
    if is_iterable_source(x):
        if y is not None:
            raise ValueError(f"{what}: y must not be given when x is a Dataset or generator (it yields (x, y))")
        return IterableAdapter(x, steps, what)
    return ArrayAdapter(x, y, sample_weight, batch_size, shuffle, steps)
