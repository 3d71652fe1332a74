"""Training callbacks: hooks that fit/evaluate/predict call at batch and epoch boundaries."""

import math
import warnings

import numpy as np


class Callback:
    """Base class. ``self.model`` is set before training; override the hooks you need."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass


class CallbackList:
    """Calls each hook on every callback in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances, got {type(cb).__name__}")
            cb.set_model(model)
            cb.set_params(params)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call_all(*args, **kwargs):
            for cb in self.callbacks:
                getattr(cb, hook)(*args, **kwargs)

        return call_all


class History(Callback):
    """Records the logs of every epoch: ``history.history['loss']`` is a list per epoch."""

    def __init__(self):
        super().__init__()
        self.history, self.epoch = {}, []

    def on_train_begin(self, logs=None):
        self.history, self.epoch = {}, []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def plot(self, path, keys=None, title=None):
        """Saves loss/metric curves as a PNG at `path` (needs matplotlib; see plot_history)."""
        plot_history(self, path, keys, title)


class EarlyStopping(Callback):
    """Stops training when a monitored value stops improving.

    Args:
        monitor: Log key to watch (default 'val_loss').
        min_delta: Smallest change that counts as an improvement.
        patience: Epochs without improvement before stopping.
        mode: 'min', 'max' or 'auto' (max for accuracy-like names).
        baseline: Value the monitor must beat.
        restore_best_weights: Put back the weights of the best epoch when stopping.
        start_from_epoch: Epochs to wait before monitoring.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got '{mode}'")
        if mode == "auto":
            mode = "max" if any(k in monitor for k in ("acc", "precision", "recall", "auc")) else "min"
        self.monitor, self.min_delta, self.patience, self.verbose = monitor, abs(min_delta), patience, verbose
        self.mode, self.baseline, self.restore_best_weights = mode, baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch

    def _better(self, value, reference):
        if reference is None:
            return True
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            available = ", ".join(sorted(logs or {}))
            raise ValueError(f"EarlyStopping: monitor '{self.monitor}' is not in the logs (available: {available})")
        if epoch < self.start_from_epoch:
            return
        if self._better(value, self.best) and (self.baseline is None or self._better(value, self.baseline)):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if not name.startswith("on_"):
                raise TypeError(f"LambdaCallback: unknown hook '{name}'")
            if fn is not None:
                setattr(self, name, fn)


class TerminateOnNaN(Callback):
    """Stops training as soon as a batch loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss, terminating training")
            self.model.stop_training = True


class LearningRateScheduler(Callback):
    """Sets the optimizer's learning rate at each epoch from ``schedule(epoch, lr)``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = float(self.schedule(epoch, optimizer.lr))
        if not np.isfinite(lr):
            raise ValueError(f"LearningRateScheduler: schedule returned {lr}")
        optimizer.learning_rate = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr:g}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.lr


def _auto_mode(mode, monitor, who):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got '{mode}'")
    if mode == "auto":
        return "max" if any(k in monitor for k in ("acc", "precision", "recall", "auc")) else "min"
    return mode


class ModelCheckpoint(Callback):
    """Saves the model (or its weights) after epochs, atomically, optionally only when it improves.

    Args:
        filepath: Destination; may hold ``{epoch}`` and log keys, e.g.
            ``"ckpt-{epoch:02d}-{val_loss:.3f}.lamina"`` (epochs counted from 1).
        monitor: Log key compared when `save_best_only`.
        save_best_only: Save only when `monitor` improves on the best value so far.
        save_weights_only: Write ``save_weights`` files instead of whole models.
        mode: 'min', 'max' or 'auto'.
        save_freq: 'epoch' (the only frequency supported).
        initial_value_threshold: A value the monitor must beat for the first save.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        if save_freq != "epoch":
            raise ValueError("ModelCheckpoint: only save_freq='epoch' is supported")
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = _auto_mode(mode, monitor, "ModelCheckpoint")
        self.best = initial_value_threshold

    def _improved(self, value):
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                warnings.warn(f"ModelCheckpoint: monitor '{self.monitor}' is not in the logs "
                              f"(available: {', '.join(sorted(logs))}); skipping", stacklevel=2)
                return
            if not self._improved(value):
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best} to {value:.5f}")
            self.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by `factor` when `monitor` stops improving for `patience` epochs.

    Args:
        monitor: Log key to watch.
        factor: Multiplier (< 1) of the learning rate.
        patience: Epochs without improvement before reducing.
        mode: 'min', 'max' or 'auto'.
        min_delta: Smallest change that counts as an improvement.
        cooldown: Epochs to wait after a reduction before counting again.
        min_lr: Lower bound of the learning rate.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__()
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), patience, verbose
        self.mode = _auto_mode(mode, monitor, "ReduceLROnPlateau")
        self.min_delta, self.cooldown, self.min_lr = abs(min_delta), cooldown, float(min_lr)

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def _better(self, value):
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = optimizer.lr
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"ReduceLROnPlateau: monitor '{self.monitor}' is not in the logs "
                          f"(available: {', '.join(sorted(logs))})", stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(value):
            self.best, self.wait = value, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            if callable(optimizer.learning_rate):
                raise ValueError("ReduceLROnPlateau cannot change a learning rate schedule; use a float rate")
            old = float(optimizer.learning_rate)
            new = max(old * self.factor, self.min_lr)
            if new < old:
                optimizer.learning_rate = new
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new:g}.")
            self.cooldown_counter, self.wait = self.cooldown, 0


class CSVLogger(Callback):
    """Appends one CSV row of logs per epoch; each row is flushed and fsynced as it is written.

    Args:
        filename: The CSV file.
        separator: Field separator.
        append: Continue an existing file (its header is kept) instead of replacing it.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = str(filename), separator, append
        self.keys, self._file = None, None

    def on_train_begin(self, logs=None):
        import os

        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self.keys = None
        if exists:
            with open(self.filename, encoding="utf-8") as f:
                self.keys = f.readline().rstrip("\n").split(self.sep)[1:] or None
        self._file = open(self.filename, "a" if self.append else "w", encoding="utf-8", newline="")

    def on_epoch_end(self, epoch, logs=None):
        import csv
        import os

        logs = logs or {}
        writer = csv.writer(self._file, delimiter=self.sep, lineterminator="\n")
        if self.keys is None:
            self.keys = sorted(logs)
            writer.writerow(["epoch"] + self.keys)
        writer.writerow([epoch] + [logs.get(k, "NA") for k in self.keys])
        self._file.flush()
        os.fsync(self._file.fileno())

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


def plot_history(history, path, keys=None, title=None):
    """Draws loss and metric curves per epoch (validation dashed) and saves them as a PNG.

    matplotlib is imported only here; the figure is drawn without pyplot, so no GUI backend
    or global state is touched.

    Args:
        history: A History or its ``.history`` dict.
        path: PNG destination (written atomically).
        keys: Metric names to draw (default: every non-validation key).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("History.plot needs matplotlib: pip install matplotlib") from e
    from lamina import saving

    data = history.history if isinstance(history, History) else dict(history)
    keys = keys or [k for k in data if not k.startswith("val_") and k != "learning_rate"]
    if not keys:
        raise ValueError("History.plot: there is nothing to plot (train first)")
    fig = Figure(figsize=(5 * len(keys), 4))
    FigureCanvasAgg(fig)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        for name, style in ((key, "-"), ("val_" + key, "--")):
            if name in data:
                ax.plot(range(1, len(data[name]) + 1), data[name], style, marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    saving.atomic_write(path, lambda f: fig.savefig(f, format="png"))

