"""Model: a Layer that trains. compile -> fit (train_step) / evaluate (test_step) / predict."""

import math

import numpy as np

import lamina
from lamina import callbacks as callbacks_module
from lamina import losses as losses_module
from lamina import metrics as metrics_module
from lamina import optimizers as optimizers_module
from lamina.layers.base import Layer
from lamina.models.progbar import Progbar


def _to_numpy(data, what):
    """numpy data from an array, a tensor or nested lists; a list of arrays/tensors stays a list
    (one entry per model input)."""
    if data is None:
        return None
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, (np.ndarray, lamina.Tensor)) for d in data):
        return [_to_numpy(d, what) for d in data]
    if isinstance(data, lamina.Tensor):
        return data.detach().numpy()
    arr = np.asarray(data)
    if arr.dtype == object:
        raise TypeError(f"{what} must be an array or tensor, got ragged or object data")
    return arr


def _length(data):
    return len(data[0]) if isinstance(data, list) else len(data)


def _slice(data, idx):
    return [d[idx] for d in data] if isinstance(data, list) else data[idx]


def _batch_tensor(arr):
    """A batch as a tensor: floats and bools become float32, integers int64."""
    if isinstance(arr, list):
        return [_batch_tensor(a) for a in arr]
    if arr.dtype.kind in "fb":
        arr = arr.astype(np.float32, copy=False)
    elif arr.dtype.kind in "iu":
        arr = arr.astype(np.int64, copy=False)
    return lamina.tensor(np.ascontiguousarray(arr))


class Model(Layer):
    """A layer with a training loop.

    Use it three ways: ``Sequential([...])``; functional, ``Model(inputs, outputs)`` from
    ``lamina.Input``; or subclassed, defining layers as attributes in ``__init__`` and the
    forward pass in ``call(self, x, training=False)``.

    Override ``train_step`` / ``test_step`` to change what one batch does while keeping
    ``fit`` / ``evaluate`` (batching, callbacks, progress, history).
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs):
            from lamina.models.functional import Functional

            return super().__new__(Functional)  # Python then runs Functional.__init__
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        super().__init__(**kwargs)
        self.optimizer, self.loss, self.compiled_metrics = None, None, []
        self.stop_training = False
        self.history = None

    def _check_input_shape(self, shape):
        """Subclassed models leave input checks to their layers."""

    @property
    def layers(self):
        return list(self._layers)

    @layers.setter
    def layers(self, value):
        object.__setattr__(self, "_layers", [])
        for layer in value:
            self._layers.append(layer)

    # ----- compile -------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None):
        """Configures training.

        Args:
            optimizer: Name ('adam', 'sgd', ...) or Optimizer instance.
            loss: Name, Loss instance or callable ``(y_true, y_pred) -> per-sample losses``.
            metrics: List of metric names ('accuracy', 'mae', ...), Metrics or callables.
        """
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss) if loss is not None else None
        loss_name = getattr(self.loss, "name", None)
        if isinstance(metrics, (str, metrics_module.Metric)) or callable(metrics):
            metrics = [metrics]
        self.compiled_metrics = [metrics_module.get(m, loss_name) for m in (metrics or [])]
        self._loss_tracker = metrics_module.Mean("loss")
        self.compiled = True

    def _require_compiled(self, what):
        if self.optimizer is None and what == "fit" or getattr(self, "_loss_tracker", None) is None:
            raise RuntimeError(f"{what}: the model must be compiled first; call model.compile(optimizer, loss, metrics)")

    @property
    def metrics(self):
        """The loss tracker followed by the compiled metrics."""
        return [self._loss_tracker] + self.compiled_metrics if getattr(self, "_loss_tracker", None) else []

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    # ----- one batch -----------------------------------------------------------------------
    def compute_loss(self, x, y, y_pred, sample_weight=None):
        """The compiled loss plus the layers' regularization penalties (a scalar tensor)."""
        if self.loss is None:
            raise RuntimeError("compute_loss: no loss was given to compile()")
        total = self.loss(y, y_pred, sample_weight)
        for penalty in self.losses:
            total = total + penalty
        return total

    def _update_metrics(self, loss, y, y_pred, sample_weight=None):
        self._loss_tracker.update_state(float(loss.item()))
        for m in self.compiled_metrics:
            m.update_state(y, y_pred, sample_weight)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, x, y, sample_weight=None):
        """One optimization step on a batch; returns the running metric values.

        Override it to customise training (GANs, custom losses) and keep fit's loop.
        """
        y_pred = self(x, training=True)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        variables = self.trainable_weights
        for v in variables:
            v.grad = None
        loss.backward()
        self.optimizer.apply([(v.grad, v) for v in variables])
        return self._update_metrics(loss.detach(), y, y_pred.detach(), sample_weight)

    def test_step(self, x, y, sample_weight=None):
        """Loss and metrics on a batch, without updating weights."""
        with lamina.no_grad():
            y_pred = self(x, training=False)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        return self._update_metrics(loss, y, y_pred, sample_weight)

    def predict_step(self, x):
        with lamina.no_grad():
            return self(x, training=False)

    # ----- loops ---------------------------------------------------------------------------
    @staticmethod
    def _check_data(x, y, what):
        if x is None:
            raise ValueError(f"{what}: x is required")
        if y is not None and _length(x) != _length(y):
            raise ValueError(f"{what}: x and y have different numbers of samples ({_length(x)} and {_length(y)})")
        if _length(x) == 0:
            raise ValueError(f"{what}: x is empty")

    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose=1, callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, initial_epoch=0, sample_weight=None):
        """Trains for `epochs` passes over (x, y) and returns a History.

        Args:
            x: Inputs (numpy array, tensor, or a list of them for several inputs).
            y: Targets.
            batch_size: Samples per gradient step.
            epochs: Index of the last epoch (training starts at `initial_epoch`).
            verbose: 0 silent, 1 progress bar, 2 one line per epoch.
            callbacks: List of Callback instances.
            validation_split: Fraction of the data (taken from the end, before shuffling)
                held out for validation.
            validation_data: (x_val, y_val) evaluated at the end of each epoch.
            shuffle: Reshuffle the training samples every epoch.
        """
        if self.optimizer is None:
            raise RuntimeError("fit: the model must be compiled first; call model.compile(optimizer, loss, metrics)")
        x, y = _to_numpy(x, "x"), _to_numpy(y, "y")
        self._check_data(x, y, "fit")
        if y is None:
            raise ValueError("fit: y is required")
        sw = None if sample_weight is None else np.asarray(sample_weight)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
        if validation_split and validation_data is None:
            split = int(_length(x) * (1.0 - validation_split))
            if split == 0 or split == _length(x):
                raise ValueError(f"fit: validation_split={validation_split} leaves no training or validation samples")
            validation_data = (_slice(x, slice(split, None)), y[split:])
            x, y = _slice(x, slice(0, split)), y[:split]
            sw = None if sw is None else sw[:split]
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val)")
            val_x, val_y = _to_numpy(validation_data[0], "x_val"), _to_numpy(validation_data[1], "y_val")
            self._check_data(val_x, val_y, "fit (validation_data)")
        n = _length(x)
        steps = math.ceil(n / batch_size)
        self.history = callbacks_module.History()
        cbs = callbacks_module.CallbackList(list(callbacks or []) + [self.history], self,
                                            {"epochs": epochs, "steps": steps, "verbose": verbose})
        self.stop_training = False
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            bar = Progbar(steps, verbose)
            order = np.random.permutation(n) if shuffle else np.arange(n)
            logs = {}
            for step in range(steps):
                idx = order[step * batch_size:(step + 1) * batch_size]
                cbs.on_train_batch_begin(step)
                logs = self.train_step(_batch_tensor(_slice(x, idx)), _batch_tensor(y[idx]),
                                       None if sw is None else sw[idx])
                cbs.on_train_batch_end(step, logs)
                bar.update(step + 1, logs)
                if self.stop_training:
                    break
            logs = dict(logs)
            if validation_data is not None:
                val_logs = self.evaluate(val_x, val_y, batch_size=batch_size, verbose=0, return_dict=True)
                logs.update({"val_" + k: v for k, v in val_logs.items()})
            bar.finish(logs)
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbs.on_train_end()
        return self.history

    def evaluate(self, x=None, y=None, batch_size=32, verbose=1, return_dict=False, callbacks=None):
        """Loss and metrics over (x, y), batch by batch.

        Returns:
            The loss alone when there are no metrics, else [loss, metric...] (or a dict
            with `return_dict`).
        """
        self._require_compiled("evaluate")
        x, y = _to_numpy(x, "x"), _to_numpy(y, "y")
        self._check_data(x, y, "evaluate")
        steps = math.ceil(_length(x) / batch_size)
        self.reset_metrics()
        bar = Progbar(steps, verbose)
        logs = {}
        for step in range(steps):
            idx = slice(step * batch_size, (step + 1) * batch_size)
            logs = self.test_step(_batch_tensor(_slice(x, idx)), _batch_tensor(y[idx]))
            bar.update(step + 1, logs)
        bar.finish(logs)
        logs = {m.name: m.result() for m in self.metrics}
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=32, verbose=0):
        """Model outputs for x as a numpy array, computed in batches."""
        x = _to_numpy(x, "x")
        self._check_data(x, None, "predict")
        steps = math.ceil(_length(x) / batch_size)
        bar = Progbar(steps, verbose)
        outputs = []
        for step in range(steps):
            out = self.predict_step(_batch_tensor(_slice(x, slice(step * batch_size, (step + 1) * batch_size))))
            outputs.append([o.numpy() for o in out] if isinstance(out, list) else out.numpy())
            bar.update(step + 1)
        bar.finish()
        if isinstance(outputs[0], list):
            return [np.concatenate(parts) for parts in zip(*outputs)]
        return np.concatenate(outputs)

    def train_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """One training step on exactly this batch; returns loss (and metrics)."""
        if self.optimizer is None:
            raise RuntimeError("train_on_batch: the model must be compiled first")
        x, y = _to_numpy(x, "x"), _to_numpy(y, "y")
        self._check_data(x, y, "train_on_batch")
        self.reset_metrics()
        logs = self.train_step(_batch_tensor(x), _batch_tensor(y), sample_weight)
        return logs if return_dict else (list(logs.values()) if len(logs) > 1 else logs["loss"])

    def test_on_batch(self, x, y, return_dict=False):
        """Loss (and metrics) on exactly this batch."""
        self._require_compiled("test_on_batch")
        self.reset_metrics()
        logs = self.test_step(_batch_tensor(_to_numpy(x, "x")), _batch_tensor(_to_numpy(y, "y")))
        return logs if return_dict else (list(logs.values()) if len(logs) > 1 else logs["loss"])

    def predict_on_batch(self, x):
        return self.predict_step(_batch_tensor(_to_numpy(x, "x"))).numpy()

    # ----- inspection ----------------------------------------------------------------------
    def summary(self, print_fn=print):
        """Prints each layer's name, type, output shape and parameter count, then totals."""
        if not self.built and not any(l.built for l in self.layers):
            raise ValueError(f"summary: model '{self.name}' is not built yet; call it on data, fit it, or give the "
                             f"first layer an input_shape")
        rows = [(f"{l.name} ({type(l).__name__})", str(l.output_shape if l.output_shape is not None else "?"),
                 f"{l.count_params():,}") for l in self.layers]
        header = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(r[i]) for r in rows + [header]) + 3 for i in range(3)]
        line = lambda r: "".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
        total = sum(widths)
        trainable = sum(w.size for w in self.trainable_weights)
        non_trainable = sum(w.size for w in self.non_trainable_weights)
        print_fn(f'Model: "{self.name}"')
        print_fn("_" * total)
        print_fn(line(header))
        print_fn("=" * total)
        for r in rows:
            print_fn(line(r))
        print_fn("=" * total)
        print_fn(f"Total params: {trainable + non_trainable:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {non_trainable:,}")
        print_fn("_" * total)
