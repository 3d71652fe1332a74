"""Keras API gaps: fit(class_weight=...), Model.get_layer, and the F1Score and AUC metrics."""

import numpy as np
import pytest

import lamina
from lamina import layers, metrics


def classifier(classes=2, activation="softmax"):
    return lamina.Sequential([layers.Dense(8, activation="relu", input_shape=(3,)),
                              layers.Dense(classes, activation=activation)])


def noise_problem(n=256):
    """Nearly identical inputs with random labels: nothing to learn but the (weighted) class prior."""
    rng = np.random.default_rng(3)
    return (1.0 + 0.01 * rng.normal(size=(n, 3))).astype(np.float32), rng.integers(0, 2, n)


def exact_auc(y, scores, weights=None):
    """Exact ROC AUC: the (weighted) probability that a positive outscores a negative, ties half."""
    weights = np.ones(len(y)) if weights is None else weights
    pos, neg = y > 0.5, y <= 0.5
    diff = scores[pos][:, None] - scores[neg][None, :]
    pair_weights = weights[pos][:, None] * weights[neg][None, :]
    return float(np.sum(pair_weights * ((diff > 0) + 0.5 * (diff == 0))) / pair_weights.sum())


def f1_by_class(truth, predicted):
    """Per-class F1 from boolean (n, classes) arrays, counted one class at a time."""
    scores = []
    for c in range(truth.shape[1]):
        tp = np.sum(truth[:, c] & predicted[:, c])
        fp = np.sum(~truth[:, c] & predicted[:, c])
        fn = np.sum(truth[:, c] & ~predicted[:, c])
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return np.array(scores)


# ----- class_weight ------------------------------------------------------------------------
@pytest.mark.parametrize("heavy", [0, 1])
def test_class_weight_heavy_class_dominates_an_ambiguous_problem(heavy):
    x, y = noise_problem()
    model = classifier()
    model.compile(optimizer=lamina.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=10, verbose=0, class_weight={heavy: 10.0, 1 - heavy: 1.0})
    probabilities = model.predict(x)
    assert np.mean(np.argmax(probabilities, axis=-1) == heavy) > 0.9
    # The weighted optimum on balanced labels is 10 / (10 + 1) for the heavy class.
    assert probabilities[:, heavy].mean() > 0.75


def _first_batch_loss(model, x, y, **fit_kwargs):
    """The loss fit reports for one full batch: computed before the weights change."""
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False, **fit_kwargs)
    return history.history["loss"][0]


@pytest.mark.parametrize("kind", ["sparse", "onehot", "binary"])
def test_class_weighted_loss_is_the_keras_weighted_mean_of_one_batch(kind):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    labels = rng.integers(0, 3 if kind != "binary" else 2, 20)
    class_weight = {0: 0.5, 1: 3.0} if kind == "binary" else {0: 0.5, 1: 3.0, 2: 1.5}
    sample_weight = rng.uniform(0.5, 2.0, 20)
    if kind == "binary":
        model, loss, y = classifier(1, "sigmoid"), "binary_crossentropy", labels[:, None].astype(np.float32)
    else:
        model = classifier(3)
        loss = "sparse_categorical_crossentropy" if kind == "sparse" else "categorical_crossentropy"
        y = labels if kind == "sparse" else np.eye(3, dtype=np.float32)[labels]
    model.compile(optimizer="sgd", loss=loss)
    p = model.predict(x).astype(np.float64)
    if kind == "binary":
        p = np.clip(p[:, 0], 1e-7, 1 - 1e-7)
        per_sample = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    else:
        per_sample = -np.log(np.clip(p[np.arange(20), labels], 1e-7, 1.0))
    weights = np.array([class_weight[c] for c in labels]) * sample_weight
    expected = np.sum(weights * per_sample) / len(x)  # Keras: sum over the batch size

    weights_before = model.get_weights()
    got = _first_batch_loss(model, x, y, class_weight=class_weight, sample_weight=sample_weight)
    assert got == pytest.approx(expected, rel=1e-4)

    # A Dataset yielding (x, y, sample_weight) batches is weighted the same way, per batch.
    model.set_weights(weights_before)
    dataset = lamina.data.Dataset.from_tensor_slices((x, y, sample_weight.astype(np.float32))).batch(20)
    history = model.fit(dataset, epochs=1, verbose=0, class_weight=class_weight)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-4)


def test_class_weight_missing_classes_weigh_one_and_generators_are_weighted():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(12, 3)).astype(np.float32), rng.integers(0, 3, 12)
    model = classifier(3)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    p = model.predict(x).astype(np.float64)
    per_sample = -np.log(p[np.arange(12), y])
    expected = np.sum(np.where(y == 2, 4.0, 1.0) * per_sample) / 12
    weights_before = model.get_weights()
    assert _first_batch_loss(model, x, y, class_weight={2: 4.0}) == pytest.approx(expected, rel=1e-4)
    model.set_weights(weights_before)
    history = model.fit((b for b in [(x, y)]), steps_per_epoch=1, epochs=1, verbose=0, class_weight={2: 4.0})
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-4)


def test_class_weight_errors():
    x, y = noise_problem(16)
    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="class_weight must be a dict"):
        model.fit(x, y, verbose=0, class_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"keys \[5\]"):
        model.fit(x, y, verbose=0, class_weight={0: 1.0, 5: 2.0})
    with pytest.raises(ValueError, match="non-negative ints"):
        model.fit(x, y, verbose=0, class_weight={"cat": 1.0})
    with pytest.raises(ValueError, match="non-negative ints"):
        model.fit(x, y, verbose=0, class_weight={-1: 1.0})
    with pytest.raises(ValueError, match="finite, non-negative"):
        model.fit(x, y, verbose=0, class_weight={0: -2.0})
    onehot = np.eye(2, dtype=np.float32)[y]
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    dataset = lamina.data.Dataset.from_tensor_slices((x, onehot)).batch(8)
    with pytest.raises(ValueError, match=r"keys \[2\].*classes 0\.\.1"):
        model.fit(dataset, verbose=0, class_weight={0: 1.0, 2: 2.0})


# ----- get_layer ---------------------------------------------------------------------------
def test_get_layer_by_name_and_index():
    hidden, out = layers.Dense(4, name="hidden", input_shape=(3,)), layers.Dense(2, name="out")
    model = lamina.Sequential([hidden, out])
    assert model.get_layer("hidden") is hidden
    assert model.get_layer(name="out") is out
    assert model.get_layer(index=0) is hidden
    assert model.get_layer(index=-1) is out

    inputs = lamina.Input((3,))
    dense = layers.Dense(2, name="functional_dense")
    functional = lamina.Model(inputs, dense(inputs))
    assert functional.get_layer("functional_dense") is dense


def test_get_layer_errors_list_the_names():
    model = lamina.Sequential([layers.Dense(4, name="first", input_shape=(3,)), layers.Dense(2, name="second")])
    with pytest.raises(ValueError, match=r"no layer named 'third'.*\['first', 'second'\]"):
        model.get_layer("third")
    with pytest.raises(ValueError, match="index 2 but model .* has 2 layers"):
        model.get_layer(index=2)
    with pytest.raises(ValueError, match="either a layer name or an index"):
        model.get_layer()
    with pytest.raises(ValueError, match="either a layer name or an index"):
        model.get_layer("first", index=0)


# ----- F1Score -----------------------------------------------------------------------------
def test_f1_binary_matches_numpy_and_accumulates():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 300), 0, 1).astype(np.float32)[:, None]
    w = rng.uniform(0.1, 2.0, 300)
    predicted = p[:, 0] > 0.5
    positive = y.astype(bool)
    tp, fp, fn = (np.sum(w * mask) for mask in (positive & predicted, ~positive & predicted, positive & ~predicted))
    expected = 2 * tp / (2 * tp + fp + fn)

    m = metrics.F1Score()
    for part in np.array_split(np.arange(300), 4):
        m.update_state(y[part], p[part], sample_weight=w[part])
    assert isinstance(m.result(), float)
    assert m.result() == pytest.approx(expected, rel=1e-9)
    # F1 agrees with the existing Precision and Recall (unweighted).
    precision, recall, f1 = metrics.Precision(0.6), metrics.Recall(0.6), metrics.F1Score(threshold=0.6)
    for metric in (precision, recall, f1):
        metric.update_state(y, p)
    assert f1.result() == pytest.approx(2 * precision.result() * recall.result()
                                        / (precision.result() + recall.result()))
    m.reset_state()
    assert m.result() == 0.0


@pytest.mark.parametrize("labels_as", ["sparse", "onehot"])
def test_f1_multiclass_averages_match_numpy(labels_as):
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 4, 200)
    scores = rng.uniform(size=(200, 4)) + 0.8 * np.eye(4)[labels]
    truth, predicted = np.eye(4, dtype=bool)[labels], np.eye(4, dtype=bool)[np.argmax(scores, axis=-1)]
    per_class = f1_by_class(truth, predicted)
    support = truth.sum(axis=0)
    tp = np.sum(truth & predicted)
    micro = 2 * tp / (2 * tp + np.sum(~truth & predicted) + np.sum(truth & ~predicted))
    y = labels if labels_as == "sparse" else truth.astype(np.float32)

    expected = {None: per_class, "macro": per_class.mean(), "micro": micro,
                "weighted": np.sum(per_class * support) / support.sum()}
    for average, value in expected.items():
        m = metrics.F1Score(average=average)
        m.update_state(y[:120], scores[:120])
        m.update_state(y[120:], scores[120:])
        np.testing.assert_allclose(m.result(), value, rtol=1e-9)
    with pytest.raises(ValueError, match="average"):
        metrics.F1Score(average="samples")


# ----- AUC ---------------------------------------------------------------------------------
def test_auc_is_close_to_the_exact_rank_auc():
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 2000)
    scores = 1 / (1 + np.exp(-(1.2 * y + rng.normal(size=2000))))
    m = metrics.AUC()
    for part in np.array_split(np.arange(2000), 5):
        m.update_state(y[part], scores[part])
    exact = exact_auc(y, scores)
    assert 0.7 < exact < 0.9
    assert abs(m.result() - exact) < 1e-2
    fine = metrics.AUC(num_thresholds=5000)
    fine.update_state(y, scores)
    assert abs(fine.result() - exact) < 1e-3

    weights = rng.uniform(0.1, 3.0, 2000)
    weighted = metrics.AUC()
    weighted.update_state(y[:, None], scores[:, None], sample_weight=weights)
    assert abs(weighted.result() - exact_auc(y, scores, weights)) < 1e-2

    logits = metrics.AUC(from_logits=True)
    logits.update_state(y, np.log(scores / (1 - scores)))
    assert logits.result() == pytest.approx(m.result(), abs=1e-9)


def test_auc_extremes_and_reset():
    y = np.array([0, 0, 1, 1])
    m = metrics.AUC()
    m.update_state(y, np.array([0.1, 0.2, 0.8, 0.9]))
    assert m.result() == pytest.approx(1.0)
    m.reset_state()
    m.update_state(y, np.array([0.9, 0.8, 0.2, 0.1]))
    assert m.result() == pytest.approx(0.0)
    m.reset_state()
    assert m.result() == 0.0
    with pytest.raises(ValueError, match="num_thresholds"):
        metrics.AUC(num_thresholds=1)


# ----- names and compile/fit ---------------------------------------------------------------
def test_metric_names_resolve():
    assert isinstance(metrics.get("auc"), metrics.AUC)
    for name in ("f1", "f1_score", "F1"):
        m = metrics.get(name)
        assert isinstance(m, metrics.F1Score) and m.average == "macro" and m.name == name
    with pytest.raises(ValueError, match="auc.*f1"):
        metrics.get("f2")


@pytest.mark.parametrize("kind", ["binary", "sparse"])
def test_fit_reports_accuracy_f1_and_auc(kind):
    rng = np.random.default_rng(10)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    if kind == "binary":
        model, loss, y = classifier(1, "sigmoid"), "binary_crossentropy", y[:, None].astype(np.float32)
    else:
        model, loss = classifier(2), "sparse_categorical_crossentropy"
    model.compile(optimizer=lamina.optimizers.Adam(0.01), loss=loss, metrics=["accuracy", "f1", "auc"])
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0, validation_split=0.2)
    names = ["loss", "accuracy", "f1", "auc", "val_loss", "val_accuracy", "val_f1", "val_auc"]
    assert sorted(history.history) == sorted(names)
    for name in names[1:]:
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in history.history[name])
    assert history.history["auc"][-1] > 0.9 and history.history["f1"][-1] > 0.8

    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    predictions = model.predict(x)
    scores = predictions[:, 0] if kind == "binary" else predictions[:, 1]
    truth = y.ravel()
    assert abs(logs["auc"] - (exact_auc(truth, scores) if kind == "binary" else
                              # one-hot micro-average: both columns scored as binary decisions
                              exact_auc(np.eye(2)[truth].ravel(), predictions.ravel()))) < 1e-2
