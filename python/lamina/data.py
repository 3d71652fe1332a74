"""Input pipelines: ``Dataset.from_tensor_slices((x, y)).shuffle(n, seed).batch(b).map(fn).prefetch(k)``.

A Dataset is a re-iterable description: each ``iter()`` runs the pipeline again (for
``fit``, one pass per epoch). Elements are numpy arrays, or tuples / lists / dicts of them.
With a seed, ``shuffle`` is deterministic: pass ``i`` over the data uses the seed and ``i``,
so two datasets built the same way yield the same sequence of epochs.

``from_tensor_slices`` followed directly by a full-buffer ``shuffle`` and ``batch`` is
vectorised (one fancy index per batch) instead of moving element by element.
"""

from __future__ import annotations

import itertools
import queue
import threading

import numpy as np

import lamina

UNKNOWN = -2  # cardinality when it cannot be known without iterating


def _numpy(x):
    if isinstance(x, lamina.Tensor):
        return x.detach().numpy()
    return np.asarray(x)


def _map_structure(fn, structure):
    if isinstance(structure, tuple):
        return tuple(_map_structure(fn, s) for s in structure)
    if isinstance(structure, list):
        return [_map_structure(fn, s) for s in structure]
    if isinstance(structure, dict):
        return {k: _map_structure(fn, v) for k, v in structure.items()}
    return fn(structure)


def _leaves(structure):
    if isinstance(structure, (tuple, list)):
        return [leaf for s in structure for leaf in _leaves(s)]
    if isinstance(structure, dict):
        return [leaf for v in structure.values() for leaf in _leaves(v)]
    return [structure]


def _stack(elements):
    first = elements[0]
    if isinstance(first, tuple):
        return tuple(_stack([e[i] for e in elements]) for i in range(len(first)))
    if isinstance(first, list):
        return [_stack([e[i] for e in elements]) for i in range(len(first))]
    if isinstance(first, dict):
        return {k: _stack([e[k] for e in elements]) for k in first}
    return np.stack([np.asarray(e) for e in elements])


class Dataset:
    """A re-iterable pipeline of elements. Build one with ``from_tensor_slices``."""

    def __init__(self, make_iter, cardinality, slices=None, order=None):
        self._make_iter = make_iter  # epoch index -> iterator
        self._cardinality = cardinality
        self._slices = slices  # the source arrays, while the pipeline is still index-based
        self._order = order  # epoch -> index order (full shuffle), on top of _slices
        self._epoch = 0

    # ----- sources ---------------------------------------------------------------------------
    @staticmethod
    def from_tensor_slices(data):
        """One element per index of the leading axis of every array in `data`.

        Args:
            data: An array/tensor, or a tuple / list / dict of them with equal first axes.
        """
        arrays = _map_structure(_numpy, data)
        leaves = _leaves(arrays)
        if not leaves or any(a.ndim == 0 for a in leaves):
            raise ValueError("from_tensor_slices: every array needs a leading axis to slice")
        n = len(leaves[0])
        if any(len(a) != n for a in leaves):
            raise ValueError(f"from_tensor_slices: arrays have different lengths {[len(a) for a in leaves]}")

        def make_iter(epoch):
            return (_map_structure(lambda a: a[i], arrays) for i in range(n))

        return Dataset(make_iter, n, slices=arrays, order=lambda epoch: np.arange(n))

    @staticmethod
    def from_generator(generator_fn, cardinality=UNKNOWN):
        """Elements from calling ``generator_fn()`` afresh on each iteration."""
        return Dataset(lambda epoch: iter(generator_fn()), cardinality)

    # ----- transformations -------------------------------------------------------------------
    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True):
        """Randomly reorders elements through a buffer of `buffer_size` (>= length: uniform).

        Args:
            buffer_size: Elements held at once; smaller buffers shuffle only locally.
            seed: Makes the order reproducible.
            reshuffle_each_iteration: A different order on each pass (still seeded).
        """
        if buffer_size < 1:
            raise ValueError(f"shuffle: buffer_size must be >= 1, got {buffer_size}")
        parent = self

        def rng(epoch):
            e = epoch if reshuffle_each_iteration else 0
            return np.random.default_rng(None if seed is None else [seed, e])

        if self._slices is not None and 0 <= self._cardinality <= buffer_size:
            parent_order = self._order
            order = lambda epoch: parent_order(epoch)[rng(epoch).permutation(self._cardinality)]  # noqa: E731
            slices = self._slices
            return Dataset(lambda epoch: (_map_structure(lambda a: a[i], slices) for i in order(epoch)),
                           self._cardinality, slices=slices, order=order)

        def make_iter(epoch):
            r, buffer = rng(epoch), []
            for element in parent._iter_epoch(epoch):
                if len(buffer) < buffer_size:
                    buffer.append(element)
                    continue
                k = int(r.integers(len(buffer)))
                yield buffer[k]
                buffer[k] = element
            while buffer:
                yield buffer.pop(int(r.integers(len(buffer))))

        return Dataset(make_iter, self._cardinality)

    def batch(self, batch_size, drop_remainder=False):
        """Stacks consecutive elements into batches of `batch_size` (the last may be smaller)."""
        if batch_size < 1:
            raise ValueError(f"batch: batch_size must be >= 1, got {batch_size}")
        n = self._cardinality
        count = UNKNOWN if n < 0 else (n // batch_size if drop_remainder else -(-n // batch_size))
        if self._slices is not None:
            slices, order = self._slices, self._order

            def make_iter(epoch):
                idx = order(epoch)
                for start in range(0, len(idx), batch_size):
                    part = idx[start:start + batch_size]
                    if drop_remainder and len(part) < batch_size:
                        return
                    yield _map_structure(lambda a: a[part], slices)

            return Dataset(make_iter, count)
        parent = self

        def make_iter(epoch):
            it = parent._iter_epoch(epoch)
            while True:
                chunk = list(itertools.islice(it, batch_size))
                if not chunk or (drop_remainder and len(chunk) < batch_size):
                    return
                yield _stack(chunk)

        return Dataset(make_iter, count)

    def map(self, fn):
        """Applies ``fn(element)`` (tuples are unpacked: ``fn(x, y)``) to every element."""
        parent = self

        def make_iter(epoch):
            for element in parent._iter_epoch(epoch):
                yield fn(*element) if isinstance(element, tuple) else fn(element)

        return Dataset(make_iter, self._cardinality)

    def filter(self, predicate):
        """Keeps elements for which ``predicate(element)`` is true (length becomes unknown)."""
        parent = self

        def make_iter(epoch):
            for element in parent._iter_epoch(epoch):
                if predicate(*element) if isinstance(element, tuple) else predicate(element):
                    yield element

        return Dataset(make_iter, UNKNOWN)

    def take(self, count):
        """The first `count` elements."""
        parent = self
        n = self._cardinality
        return Dataset(lambda epoch: itertools.islice(parent._iter_epoch(epoch), count),
                       count if n < 0 else min(n, count))

    def repeat(self, count=None):
        """The data `count` times (forever when None); each repetition is a new pass."""
        parent = self

        def make_iter(epoch):
            passes = itertools.count() if count is None else range(count)
            for p in passes:
                yield from parent._iter_epoch(epoch * (count or 1) + p)

        n = self._cardinality
        return Dataset(make_iter, UNKNOWN if count is None or n < 0 else n * count)

    def prefetch(self, buffer_size=1):
        """Produces up to `buffer_size` elements ahead on a background thread."""
        if buffer_size < 1:
            raise ValueError(f"prefetch: buffer_size must be >= 1, got {buffer_size}")
        parent = self
        return Dataset(lambda epoch: _Prefetcher(parent._iter_epoch(epoch), buffer_size), self._cardinality)

    # ----- iteration -------------------------------------------------------------------------
    def _iter_epoch(self, epoch):
        return iter(self._make_iter(epoch))

    def __iter__(self):
        epoch, self._epoch = self._epoch, self._epoch + 1
        return self._iter_epoch(epoch)

    def cardinality(self):
        """Number of elements, or None when unknown or infinite."""
        return self._cardinality if self._cardinality >= 0 else None

    def __len__(self):
        if self._cardinality < 0:
            raise TypeError("The length of this dataset is unknown (filter, repeat or a generator)")
        return self._cardinality

    def as_numpy_iterator(self):
        return iter(self)

    def __repr__(self):
        n = self.cardinality()
        return f"<Dataset length={'unknown' if n is None else n}>"


class _Prefetcher:
    """Iterator filled by a daemon thread; errors in the pipeline resurface in the consumer."""

    _DONE = object()

    def __init__(self, source, buffer_size):
        self._queue = queue.Queue(maxsize=buffer_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), daemon=True)
        self._thread.start()

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source):
        try:
            for element in source:
                if not self._put((True, element)):
                    return
            self._put((True, self._DONE))
        except BaseException as e:  # handed to the consumer, which re-raises it
            self._put((False, e))

    def __iter__(self):
        return self

    def __next__(self):
        ok, item = self._queue.get()
        if not ok:
            self._stop.set()
            raise item
        if item is self._DONE:
            self._stop.set()
            raise StopIteration
        return item

    def __del__(self):
        self._stop.set()


__all__ = ["Dataset"]
