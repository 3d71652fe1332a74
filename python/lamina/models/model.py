"""Model: a Layer that trains. compile -> fit (train_step) / evaluate (test_step) / predict."""


import numpy as np

import lamina
from lamina import callbacks as callbacks_module
from lamina import losses as losses_module
from lamina import metrics as metrics_module
from lamina import mixed_precision
from lamina import optimizers as optimizers_module
from lamina.layers.base import Layer
from lamina.models import data_adapter as da
from lamina.models.progbar import Progbar

_to_numpy, _length, _slice, _batch_tensor = da.to_numpy, da.length, da.take, da.batch_tensor


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
        # A model casts nothing itself: its layers apply their own policies.
        self.dtype_policy = mixed_precision.Policy(self.dtype_policy.variable_dtype)
        self.optimizer, self.loss, self.compiled_metrics = None, None, []
        self.stop_training = False
        self.history = None
        self._accumulation_steps, self._accumulated = 1, 0

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

        When the model computes in float16 ('mixed_float16' policy) the optimizer is wrapped
        in a ``LossScaleOptimizer`` (dynamic loss scaling), as in Keras.
        """
        self.optimizer = optimizers_module.get(optimizer)
        if self._computes_in_float16() and not isinstance(self.optimizer, optimizers_module.LossScaleOptimizer):
            self.optimizer = optimizers_module.LossScaleOptimizer(self.optimizer)
        self.loss = losses_module.get(loss) if loss is not None else None
        loss_name = getattr(self.loss, "name", None)
        if isinstance(metrics, (str, metrics_module.Metric)) or callable(metrics):
            metrics = [metrics]
        self.compiled_metrics = [metrics_module.get(m, loss_name) for m in (metrics or [])]
        self._compile_metric_names = [m if isinstance(m, str) else m.name for m in (metrics or [])
                                      if isinstance(m, (str, metrics_module.Metric))]
        self._loss_tracker = metrics_module.Mean("loss")
        self.compiled = True

    def _to_model_device(self, *batch):
        """The batch's tensors on the device of the model's weights (after ``model.to``)."""
        weights = self.weights
        device = weights[0].device if weights else None
        if device is None or device == "cpu":
            return batch

        def move(t):
            if isinstance(t, list):
                return [move(e) for e in t]
            return t.to(device) if isinstance(t, lamina.Tensor) and t.device != device else t

        return tuple(move(t) for t in batch)

    def _computes_in_float16(self):
        """Whether a layer computes in float16 (then compile adds dynamic loss scaling)."""
        policies = [self.dtype_policy] + [getattr(layer, "dtype_policy", None) for layer in self.layers]
        return any(p is not None and p.compute_dtype == "float16" for p in policies)

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
        if isinstance(y_pred, lamina.Tensor) and y_pred.dtype in ("float16", "bfloat16"):
            y_pred = y_pred.astype("float32")  # losses in full precision under mixed policies
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
        self.apply_loss_gradients(loss)
        return self._update_metrics(loss.detach(), y, y_pred.detach(), sample_weight)

    def apply_loss_gradients(self, loss):
        """Backpropagates `loss` and updates the weights, accumulating when asked.

        With ``fit(gradient_accumulation_steps=k)`` the gradients of k micro-batches are
        summed (each loss scaled by 1/k, so the sum is their mean) and the optimizer steps
        once per k batches: equal micro-batches then give exactly the step of one k-times
        larger batch.
        """
        k = self._accumulation_steps
        variables = self.trainable_weights
        if self._accumulated == 0:
            for v in variables:
                v.grad = None
        if isinstance(self.optimizer, optimizers_module.LossScaleOptimizer):
            loss = self.optimizer.scale_loss(loss)
        (loss * (1.0 / k) if k > 1 else loss).backward()
        self._accumulated += 1
        if self._accumulated >= k:
            self._step_optimizer(variables, 1.0)

    def _step_optimizer(self, variables, scale):
        grads = [(v.grad if scale == 1.0 or v.grad is None else v.grad * scale, v) for v in variables]
        self.optimizer.apply(grads)
        self._accumulated = 0
        for v in variables:
            v.grad = None

    def _flush_accumulated(self):
        """Applies a partial accumulation at the end of an epoch, as the mean of what it holds."""
        if self._accumulated:
            self._step_optimizer(self.trainable_weights, self._accumulation_steps / self._accumulated)

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
            validation_data=None, shuffle=True, initial_epoch=0, sample_weight=None, steps_per_epoch=None,
            validation_steps=None, gradient_accumulation_steps=1, class_weight=None):
        """Trains for `epochs` passes over the data and returns a History.

        Args:
            x: Inputs (numpy array, tensor, or a list of them for several inputs), or a
                ``lamina.data.Dataset`` / Python generator yielding ``(x, y)`` or
                ``(x, y, sample_weight)`` batches (then `y` stays None).
            y: Targets.
            batch_size: Samples per gradient step (arrays only).
            epochs: Index of the last epoch (training starts at `initial_epoch`).
            verbose: 0 silent, 1 progress bar, 2 one line per epoch.
            callbacks: List of Callback instances.
            validation_split: Fraction of the data (taken from the end, before shuffling)
                held out for validation (arrays only).
            validation_data: (x_val, y_val), or a Dataset, evaluated after each epoch.
            shuffle: Reshuffle the training samples every epoch (arrays only).
            steps_per_epoch: Batches per epoch. Needed for an endless generator; a
                generator is consumed across epochs, a Dataset is iterated afresh each one.
            validation_steps: Batches of validation data per evaluation.
            gradient_accumulation_steps: Micro-batches whose gradients are averaged before
                each optimizer step (see ``apply_loss_gradients``); the loss and metrics
                still report every micro-batch.
            class_weight: Dict ``{class_index: weight}`` weighting each training sample's
                loss (and metrics) by its class, as Keras does: the argmax of one-hot
                targets, else the integer label (a 0/1 value for binary targets). Classes
                not in the dict weigh 1; it multiplies `sample_weight` when both are given,
                applies to each batch of a Dataset or generator, and not to validation.

        Raises:
            TypeError: When `class_weight` is not a dict.
            ValueError: For invalid arguments, among them `class_weight` keys that are not
                classes of the targets.
        """
        if self.optimizer is None:
            raise RuntimeError("fit: the model must be compiled first; call model.compile(optimizer, loss, metrics)")
        if not isinstance(gradient_accumulation_steps, int) or gradient_accumulation_steps < 1:
            raise ValueError(f"fit: gradient_accumulation_steps must be a positive int, got "
                             f"{gradient_accumulation_steps!r}")
        if class_weight is not None:
            class_weight = da.check_class_weight(class_weight, "fit")
        if da.is_iterable_source(x):
            if validation_split:
                raise ValueError("fit: validation_split needs arrays; pass validation_data with a Dataset")
            train = da.adapter(x, y, None, batch_size, shuffle, steps_per_epoch, "fit", class_weight)
        else:
            x, y = _to_numpy(x, "x"), _to_numpy(y, "y")
            self._check_data(x, y, "fit")
            if y is None and (type(self).train_step is Model.train_step or validation_split):
                # A custom train_step (a GAN, an autoencoder) may learn from x alone.
                raise ValueError("fit: y is required")
            sw = None if sample_weight is None else np.asarray(sample_weight)
            if not 0.0 <= validation_split < 1.0:
                raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
            if validation_split and validation_data is None:
                split = int(_length(x) * (1.0 - validation_split))
                if split == 0 or split == _length(x):
                    raise ValueError(f"fit: validation_split={validation_split} leaves no training or validation "
                                     f"samples")
                validation_data = (_slice(x, slice(split, None)), y[split:])
                x, y = _slice(x, slice(0, split)), y[:split]
                sw = None if sw is None else sw[:split]
            if class_weight is not None:
                if y is None:
                    raise ValueError("fit: class_weight needs targets y")
                sw = da.combine_weights(sw, da.class_weights(y, class_weight, "fit", all_labels=True))
            train = da.ArrayAdapter(x, y, sw, batch_size, shuffle, steps_per_epoch)
        val_args = None
        if validation_data is not None:
            if da.is_iterable_source(validation_data):
                val_args = (validation_data, None)
            elif len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or a Dataset")
            else:
                val_x, val_y = _to_numpy(validation_data[0], "x_val"), _to_numpy(validation_data[1], "y_val")
                self._check_data(val_x, val_y, "fit (validation_data)")
                val_args = (val_x, val_y)
        self._accumulation_steps, self._accumulated = gradient_accumulation_steps, 0
        self.history = callbacks_module.History()
        cbs = callbacks_module.CallbackList(list(callbacks or []) + [self.history], self,
                                            {"epochs": epochs, "steps": train.steps, "verbose": verbose})
        self.stop_training = False
        cbs.on_train_begin()
        try:
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                cbs.on_epoch_begin(epoch)
                if verbose:
                    print(f"Epoch {epoch + 1}/{epochs}", flush=True)
                bar = Progbar(train.steps, verbose)
                logs = {}
                for step, (xb, yb, swb) in enumerate(train.epoch()):
                    cbs.on_train_batch_begin(step)
                    logs = self.train_step(*self._to_model_device(xb, yb, swb))
                    cbs.on_train_batch_end(step, logs)
                    bar.update(step + 1, logs)
                    if self.stop_training:
                        break
                self._flush_accumulated()
                if getattr(train, "exhausted", False):
                    print("fit: the input ran out of data; stopping (give steps_per_epoch to match the generator, "
                          "or pass a re-iterable Dataset)")
                    self.stop_training = True
                    if not logs:
                        break
                logs = dict(logs)
                if val_args is not None:
                    val_logs = self.evaluate(*val_args, batch_size=batch_size, verbose=0, return_dict=True,
                                             steps=validation_steps)
                    logs.update({"val_" + k: v for k, v in val_logs.items()})
                bar.finish(logs)
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        finally:
            self._accumulation_steps, self._accumulated = 1, 0
        cbs.on_train_end()
        return self.history

    def evaluate(self, x=None, y=None, batch_size=32, verbose=1, return_dict=False, callbacks=None, steps=None):
        """Loss and metrics over (x, y) (or a Dataset / generator of batches), batch by batch.

        Returns:
            The loss alone when there are no metrics, else [loss, metric...] (or a dict
            with `return_dict`).
        """
        self._require_compiled("evaluate")
        if not da.is_iterable_source(x):
            x, y = _to_numpy(x, "x"), _to_numpy(y, "y")
            self._check_data(x, y, "evaluate")
        source = da.adapter(x, y, None, batch_size, False, steps, "evaluate")
        self.reset_metrics()
        bar = Progbar(source.steps, verbose)
        logs = {}
        for step, (xb, yb, _) in enumerate(source.epoch()):
            logs = self.test_step(*self._to_model_device(xb, yb))
            bar.update(step + 1, logs)
        bar.finish(logs)
        logs = {m.name: m.result() for m in self.metrics}
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=32, verbose=0, steps=None):
        """Model outputs for x (arrays, or a Dataset / generator of batches) as numpy arrays."""
        if not da.is_iterable_source(x):
            x = _to_numpy(x, "x")
            self._check_data(x, None, "predict")
        source = da.adapter(x, None, None, batch_size, False, steps, "predict")
        bar = Progbar(source.steps, verbose)
        outputs = []
        for step, (xb, _, _) in enumerate(source.epoch()):
            out = self.predict_step(*self._to_model_device(xb))
            outputs.append([o.cpu().numpy() for o in out] if isinstance(out, list) else out.cpu().numpy())
            bar.update(step + 1)
        bar.finish()
        if not outputs:
            raise ValueError("predict: the input yielded no batches")
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
        logs = self.train_step(*self._to_model_device(_batch_tensor(x), _batch_tensor(y), _batch_tensor(sample_weight)))
        return logs if return_dict else (list(logs.values()) if len(logs) > 1 else logs["loss"])

    def test_on_batch(self, x, y, return_dict=False):
        """Loss (and metrics) on exactly this batch."""
        self._require_compiled("test_on_batch")
        self.reset_metrics()
        logs = self.test_step(*self._to_model_device(_batch_tensor(_to_numpy(x, "x")), _batch_tensor(_to_numpy(y, "y"))))
        return logs if return_dict else (list(logs.values()) if len(logs) > 1 else logs["loss"])

    def predict_on_batch(self, x):
        return self.predict_step(*self._to_model_device(_batch_tensor(_to_numpy(x, "x")))).cpu().numpy()

    # ----- saving --------------------------------------------------------------------------
    def save(self, filepath):
        """Saves architecture, weights and compile settings to one file (see lamina.saving)."""
        from lamina import saving

        saving.save_model(self, filepath)

    def save_weights(self, filepath):
        """Saves the weights alone as a safetensors file, named by layer path."""
        from lamina import saving

        saving.save_weights(self, filepath)

    def load_weights(self, filepath):
        """Loads weights written by ``save_weights`` or ``save`` into this (built) model."""
        from lamina import saving

        saving.load_weights(self, filepath)

    def save_checkpoint(self, filepath, epoch=0, extra=None):
        """Saves weights, optimizer state, epoch and RNG state to resume training exactly."""
        from lamina import saving

        saving.save_checkpoint(self, filepath, epoch, extra)

    def load_checkpoint(self, filepath, restore_rng=True):
        """Restores ``save_checkpoint`` output; returns ``{"epoch", "extra"}``."""
        from lamina import saving

        return saving.load_checkpoint(self, filepath, restore_rng)

    def get_config(self):
        """Subclassed models define get_config (and from_config when __init__ differs) to be saved."""
        raise NotImplementedError(f"Model subclass {type(self).__name__} must implement get_config() to be saved "
                                  f"with save(); save_weights() works without it")

    # ----- inspection ----------------------------------------------------------------------
    def get_layer(self, name=None, index=None):
        """A layer of the model by name or by position in ``layers``, as in Keras.

        Args:
            name: The layer's name.
            index: Its index in ``layers`` (negative indices count from the end).

        Raises:
            ValueError: When both or neither are given, the index is out of range, or no
                layer has that name (the message lists the layers' names).
        """
        if (name is None) == (index is None):
            raise ValueError("get_layer: give either a layer name or an index, not both or neither")
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"get_layer: asked for layer at index {index} but model '{self.name}' has "
                                 f"{len(layers)} layers")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"get_layer: no layer named '{name}'. Existing layers: {[l.name for l in layers]}")

    def summary(self, print_fn=print):
        """Prints each layer's name, type, output shape and parameter count, then totals.

        Works for Sequential and functional models once built, and for subclassed models
        after their first call (a layer the call never used shows as unbuilt).
        """
        if not self.built and not any(l.built for l in self.layers):
            raise ValueError(f"summary: model '{self.name}' is not built yet; call it on data, fit it, or give the "
                             f"first layer an input_shape")
        rows = [(f"{t.name} (InputLayer)", str(t.shape), "0") for t in getattr(self, "_inputs", [])]
        for l in self.layers:
            # Sequential and functional layers know their shapes from building; a subclassed
            # model's layers record theirs during the model's first call.
            shape = str(l.output_shape) if l.output_shape is not None else ("?" if l.built else "(unbuilt)")
            rows.append((f"{l.name} ({type(l).__name__})", shape, f"{l.count_params():,}"))
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
