"""Normalization layers: BatchNormalization and LayerNormalization on the fused native ops
(``lamina.batch_norm`` / ``lamina.layer_norm``), with a composite path for axis layouts the
fused ops do not cover (several batch-norm axes, non-trailing layer-norm axes).

Statistics are computed in float32 (or float64 for float64 layers) whatever the dtype
policy, and the result is cast back to the compute dtype.
"""

import lamina
from lamina import initializers, regularizers
from lamina.layers.base import Layer


def _stat_dtype(x):
    return "float64" if x.dtype == "float64" else "float32"


def _axes(axis, ndim, what):
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    out = sorted(a % ndim for a in axes)
    if any(not -ndim <= a < ndim for a in axes) or len(set(out)) != len(out):
        raise ValueError(f"{what}: invalid axis {axis} for inputs of rank {ndim}")
    return out



def _normalize(x, mean, var, layer, dt, out_dtype):
    """(x - mean) / sqrt(var + eps), then the layer's scale and offset (composite path)."""
    y = (x - mean) * lamina.rsqrt(var + layer.epsilon)
    if layer.gamma is not None:
        y = y * lamina.reshape(layer.gamma.astype(dt), layer._bshape)
    if layer.beta is not None:
        y = y + lamina.reshape(layer.beta.astype(dt), layer._bshape)
    return y.astype(out_dtype) if y.dtype != out_dtype else y

class BatchNormalization(Layer):
    """Normalizes each feature with batch statistics in training and moving averages otherwise.

    Training: ``y = gamma * (x - mean_b) / sqrt(var_b + epsilon) + beta`` with the batch's
    mean and (biased) variance over every axis but `axis`, and the moving averages are
    updated as ``moving = momentum * moving + (1 - momentum) * batch_stat``. Inference (and a
    frozen layer, ``trainable=False``) uses the moving averages.

    Args:
        axis: Feature axis: -1 for channels-last data, 1 for NCHW.
        momentum: Decay of the moving averages.
        epsilon: Added to the variance.
        center: Learn an offset `beta`.
        scale: Learn a factor `gamma`.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = center, scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def build(self, input_shape):
        ndim = len(input_shape)
        self._feature_axis = _axes(self.axis, ndim, f"BatchNormalization '{self.name}'")[0]
        features = input_shape[self._feature_axis]
        if features is None:
            raise ValueError(f"BatchNormalization '{self.name}': the feature axis {self.axis} must have a known size")
        self._reduce = [a for a in range(ndim) if a != self._feature_axis]
        self._bshape = tuple(features if a == self._feature_axis else 1 for a in range(ndim))
        self.gamma = (self.add_weight("gamma", (features,), self.gamma_initializer, regularizer=self.gamma_regularizer)
                      if self.scale else None)
        self.beta = (self.add_weight("beta", (features,), self.beta_initializer, regularizer=self.beta_regularizer)
                     if self.center else None)
        self.moving_mean = self.add_weight("moving_mean", (features,), self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (features,), self.moving_variance_initializer,
                                               trainable=False)

    def _check_input_shape(self, shape):
        if len(shape) != len(self.input_shape) or shape[self._feature_axis] != self.input_shape[self._feature_axis]:
            raise ValueError(f"Input of layer '{self.name}' has shape {tuple(shape)}, but the layer was built for "
                             f"{self.input_shape}")

    def call(self, x, training=False):
        out_dtype, dt = x.dtype, _stat_dtype(x)
        x = x.astype(dt) if x.dtype != dt else x
        if x.ndim >= 2:
            y = lamina.batch_norm(x, self.gamma.astype(dt) if self.gamma is not None else None,
                                  self.beta.astype(dt) if self.beta is not None else None, self.moving_mean,
                                  self.moving_variance, training=bool(training and self.trainable),
                                  momentum=self.momentum, eps=self.epsilon, axis=self._feature_axis)
            return y.astype(out_dtype) if y.dtype != out_dtype else y
        if training and self.trainable:
            mean = lamina.mean(x, self._reduce, True)
            var = lamina.var(x, self._reduce, True)
            with lamina.no_grad():
                m = self.momentum
                batch_mean = lamina.reshape(mean.detach(), (-1,)).astype(self.dtype)
                batch_var = lamina.reshape(var.detach(), (-1,)).astype(self.dtype)
                self.moving_mean.copy_(self.moving_mean * m + batch_mean * (1.0 - m))
                self.moving_variance.copy_(self.moving_variance * m + batch_var * (1.0 - m))
        else:
            mean = lamina.reshape(self.moving_mean.astype(dt), self._bshape)
            var = lamina.reshape(self.moving_variance.astype(dt), self._bshape)
        return _normalize(x, mean, var, self, dt, out_dtype)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer)}


class LayerNormalization(Layer):
    """Normalizes each sample over `axis` (the features): ``gamma * (x - mean) / sqrt(var + eps) + beta``.

    Args:
        axis: Axis or list of axes to normalize over (default the last).
        epsilon: Added to the variance.
        center: Learn an offset `beta` (shaped like the normalized axes).
        scale: Learn a factor `gamma`.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)
        self.epsilon, self.center, self.scale = float(epsilon), center, scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def build(self, input_shape):
        ndim = len(input_shape)
        self._axes = _axes(self.axis, ndim, f"LayerNormalization '{self.name}'")
        if any(input_shape[a] is None for a in self._axes):
            raise ValueError(f"LayerNormalization '{self.name}': normalized axes need known sizes")
        self._bshape = tuple(input_shape[a] if a in self._axes else 1 for a in range(ndim))
        pshape = tuple(input_shape[a] for a in self._axes)
        self.gamma = (self.add_weight("gamma", pshape, self.gamma_initializer, regularizer=self.gamma_regularizer)
                      if self.scale else None)
        self.beta = (self.add_weight("beta", pshape, self.beta_initializer, regularizer=self.beta_regularizer)
                     if self.center else None)

    def call(self, x, training=False):
        out_dtype, dt = x.dtype, _stat_dtype(x)
        x = x.astype(dt) if x.dtype != dt else x
        if self._axes == list(range(self._axes[0], x.ndim)):  # trailing axes: the fused op
            y = lamina.layer_norm(x, self.gamma.astype(dt) if self.gamma is not None else None,
                                  self.beta.astype(dt) if self.beta is not None else None, axis=self._axes[0],
                                  eps=self.epsilon)
            return y.astype(out_dtype) if y.dtype != out_dtype else y
        mean = lamina.mean(x, self._axes, True)
        var = lamina.var(x, self._axes, True)
        return _normalize(x, mean, var, self, dt, out_dtype)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer)}
