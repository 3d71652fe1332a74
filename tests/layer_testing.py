"""One table-driven checker for layers, after Keras' ``run_layer_test``.

run_layer_test(layer_cls, init_kwargs, input_shape, expected_output_shape,
expected_num_trainable_weights, expected_num_non_trainable_weights, ...) checks that

* the output shape(s) and the numbers of trainable and non-trainable weights are as expected;
* ``get_config`` is JSON, ``from_config`` rebuilds the same config, and the class is found
  by name for saving (``lamina.saving.deserialize_layer``);
* one SGD step on a squared error lowers it (layers with trainable weights), and every
  trainable weight receives a gradient;
* a model holding the layer (Sequential, or functional for several inputs or call
  arguments), saved and loaded with ``lamina.models.load_model``, predicts identically;
* in float64, the gradient of a random projection of the output with respect to the input
  (float inputs) and to sampled weight entries matches central finite differences.

Stochastic layers are made repeatable by reseeding lamina before each forward pass.
"""

from __future__ import annotations

import json
import os
import tempfile

import lamina
import numpy as np
from lamina import layers, saving

GRAD_EPS = 1e-6
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-6


def _as_list(value):
    return list(value) if isinstance(value, list) else [value]


def _make_inputs(input_shape, input_dtype, input_data, int_high, rng):
    if input_data is not None:
        return [np.asarray(d) for d in _as_list(input_data)]
    out = []
    for shape, dtype in zip(_as_list(input_shape), _as_list(input_dtype) * len(_as_list(input_shape))):
        if np.dtype(dtype).kind in "iu":
            out.append(rng.integers(0, int_high, size=shape).astype(dtype))
        else:
            out.append(rng.normal(size=shape).astype(dtype))
    return out


def make_layer(layer_cls, init_kwargs, dtype=None):
    """A new layer; Layer arguments (a wrapped layer) are rebuilt from their configs, so that
    every instance gets its own, in `dtype` when given."""
    kwargs = {}
    for key, value in init_kwargs.items():
        if isinstance(value, lamina.layers.Layer):
            config = value.get_config()
            if dtype is not None:
                config["dtype"] = dtype
            value = type(value).from_config(config)
        kwargs[key] = value
    if dtype is not None:
        kwargs["dtype"] = dtype
    return layer_cls(**kwargs)


def _call(layer, arrays, call_kwargs, training, dtype=None, seed=1234):
    lamina.random.seed(seed)  # the same dropout / noise draws on every forward pass
    tensors = [lamina.tensor(a if dtype is None or a.dtype.kind in "iu" else a.astype(dtype)) for a in arrays]
    return _as_list(layer(tensors if len(tensors) > 1 else tensors[0], training=training, **call_kwargs))


def _squared_error(outputs, targets):
    total = None
    for o, t in zip(outputs, targets):
        err = lamina.mean(lamina.square(o - lamina.tensor(t, dtype=o.dtype)))
        total = err if total is None else total + err
    return total


def _check_training_step(layer_cls, init_kwargs, arrays, call_kwargs, learning_rate, rng):
    layer = make_layer(layer_cls, init_kwargs)
    with lamina.no_grad():
        _call(layer, arrays, call_kwargs, training=False)  # build first: building draws random numbers
    outputs = _call(layer, arrays, call_kwargs, training=True)
    targets = [rng.normal(size=o.shape) for o in outputs]
    loss = _squared_error(outputs, targets)
    variables = layer.trainable_weights
    for v in variables:
        v.grad = None
    loss.backward()
    missing = [n for n, v in zip(layer.weight_names, layer._all_weights_in_order()) if v.requires_grad
               and v.grad is None and any(v is t for t in variables)]
    assert not missing, f"{layer_cls.__name__}: no gradient reached {missing}"
    lamina.optimizers.SGD(learning_rate=learning_rate).apply([(v.grad, v) for v in variables])
    with lamina.no_grad():
        after = _squared_error(_call(layer, arrays, call_kwargs, training=True), targets)
    before, after = float(loss.item()), float(after.item())
    assert after < before, f"{layer_cls.__name__}: one SGD step did not lower the loss ({before} -> {after})"


def _check_config(layer, layer_cls):
    config = layer.get_config()
    json.dumps(config)
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config, f"{layer_cls.__name__}: from_config(get_config()) changed the config"
    by_name = saving.deserialize_layer(json.loads(json.dumps(saving.serialize_layer(layer))))
    assert type(by_name) is layer_cls and by_name.get_config() == config


def _model_around(layer, arrays, input_dtypes, call_kwargs, n_outputs):
    shapes = [a.shape[1:] for a in arrays]
    if len(arrays) == 1 and not call_kwargs and n_outputs == 1:
        return lamina.Sequential([lamina.Input(shapes[0], dtype=input_dtypes[0]), layer])
    inputs = [lamina.Input(s, dtype=d) for s, d in zip(shapes, input_dtypes)]
    outputs = layer(inputs if len(inputs) > 1 else inputs[0], **call_kwargs)
    return lamina.Model(inputs if len(inputs) > 1 else inputs[0], outputs)


def _check_save_load(layer_cls, init_kwargs, arrays, call_kwargs, n_outputs):
    model = _model_around(make_layer(layer_cls, init_kwargs), arrays, [str(a.dtype) for a in arrays], call_kwargs,
                          n_outputs)
    x = arrays if len(arrays) > 1 else arrays[0]
    expected = _as_list(model.predict(x, verbose=0))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.lamina")
        model.save(path)
        loaded = lamina.models.load_model(path)
    got = _as_list(loaded.predict(x, verbose=0))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e, err_msg=f"{layer_cls.__name__}: predictions changed after save/load")


def _numeric_grad(f, arr, coords):
    out = []
    for idx in coords:
        plus, minus = arr.copy(), arr.copy()
        plus[idx] += GRAD_EPS
        minus[idx] -= GRAD_EPS
        out.append((f(plus) - f(minus)) / (2 * GRAD_EPS))
    return np.array(out)


def _sample(shape, count, rng):
    size = int(np.prod(shape))
    flat = rng.choice(size, size=min(count, size), replace=False)
    return [np.unravel_index(i, shape) for i in flat]


def _check_gradients(layer_cls, init_kwargs, arrays, call_kwargs, max_coords, rng):
    layer = make_layer(layer_cls, init_kwargs, "float64")
    arrays = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
    projections = [rng.normal(size=o.shape) for o in _call(layer, arrays, call_kwargs, training=False)]

    def value(current):
        with lamina.no_grad():
            outs = _call(layer, current, call_kwargs, training=False)
        return sum(float((o.numpy() * p).sum()) for o, p in zip(outs, projections))

    tensors = [lamina.tensor(a) for a in arrays]
    for t, a in zip(tensors, arrays):
        t.requires_grad = a.dtype.kind == "f"
    lamina.random.seed(1234)
    outs = _as_list(layer(tensors if len(tensors) > 1 else tensors[0], training=False, **call_kwargs))
    total = None
    for o, p in zip(outs, projections):
        term = lamina.sum(o * lamina.tensor(p))
        total = term if total is None else total + term
    for w in layer.trainable_weights:
        w.grad = None
    total.backward()
    name = layer_cls.__name__
    for i, (t, a) in enumerate(zip(tensors, arrays)):
        if a.dtype.kind != "f":
            continue
        coords = _sample(a.shape, max_coords, rng)
        numeric = _numeric_grad(lambda v, i=i: value(arrays[:i] + [v] + arrays[i + 1:]), a, coords)
        analytic = np.array([t.grad.numpy()[c] for c in coords])
        np.testing.assert_allclose(analytic, numeric, rtol=GRAD_RTOL, atol=GRAD_ATOL,
                                   err_msg=f"{name}: gradient with respect to input {i}")
    for wname, w in zip(layer.weight_names, layer._all_weights_in_order()):
        if not any(w is t for t in layer.trainable_weights):
            continue
        base = w.numpy().copy()

        def with_weight(v, w=w):
            with lamina.no_grad():
                w.copy_(lamina.tensor(v))
            return value(arrays)

        coords = _sample(base.shape, max(max_coords // 4, 4), rng)
        numeric = _numeric_grad(with_weight, base, coords)
        with lamina.no_grad():
            w.copy_(lamina.tensor(base))
        analytic = np.array([w.grad.numpy()[c] for c in coords])
        np.testing.assert_allclose(analytic, numeric, rtol=GRAD_RTOL, atol=GRAD_ATOL,
                                   err_msg=f"{name}: gradient with respect to {wname}")


def run_layer_test(layer_cls, init_kwargs, input_shape, expected_output_shape, expected_num_trainable_weights,
                   expected_num_non_trainable_weights=0, *, input_dtype="float32", input_data=None, int_high=10,
                   call_kwargs=None, run_training_check=True, run_saving_check=True, run_gradient_check=True,
                   learning_rate=0.01, max_grad_coords=24, seed=0):
    """Runs every check in the module docstring on one layer configuration.

    Args:
        layer_cls: The layer class.
        init_kwargs: Constructor arguments.
        input_shape: Input shape with the batch axis, or a list of shapes (several inputs).
        expected_output_shape: Output shape with the batch axis, or a list (several outputs).
        expected_num_trainable_weights: Number of trainable weight tensors after the first call.
        expected_num_non_trainable_weights: Number of non-trainable weight tensors.
        input_dtype: dtype of the generated input(s) (integers are drawn in [0, int_high)).
        input_data: Explicit input array(s) instead of random ones.
        call_kwargs: Extra arguments for every call (e.g. ``use_causal_mask=True``).
        run_training_check, run_saving_check, run_gradient_check: Switch checks off.
        learning_rate: SGD step size of the training check.
        max_grad_coords: Input entries checked by finite differences (a quarter as many
            per weight).
    """
    rng = np.random.default_rng(seed)
    call_kwargs = dict(call_kwargs or {})
    arrays = _make_inputs(input_shape, input_dtype, input_data, int_high, rng)
    layer = make_layer(layer_cls, init_kwargs)
    outputs = _call(layer, arrays, call_kwargs, training=False)
    shapes = [tuple(o.shape) for o in outputs]
    expected = [tuple(s) for s in expected_output_shape] if isinstance(expected_output_shape, list) \
        else [tuple(expected_output_shape)]
    assert shapes == expected, f"{layer_cls.__name__}: output shapes {shapes}, expected {expected}"
    assert len(layer.trainable_weights) == expected_num_trainable_weights, \
        f"{layer_cls.__name__}: {len(layer.trainable_weights)} trainable weights"
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, \
        f"{layer_cls.__name__}: {len(layer.non_trainable_weights)} non-trainable weights"
    _check_config(layer, layer_cls)
    assert layer_cls.__name__ in layers.__all__, f"{layer_cls.__name__} is not exported from lamina.layers"
    if run_training_check and expected_num_trainable_weights:
        _check_training_step(layer_cls, init_kwargs, arrays, call_kwargs, learning_rate, rng)
    if run_saving_check:
        _check_save_load(layer_cls, init_kwargs, arrays, call_kwargs, len(outputs))
    if run_gradient_check:
        _check_gradients(layer_cls, init_kwargs, arrays, call_kwargs, max_grad_coords, rng)
