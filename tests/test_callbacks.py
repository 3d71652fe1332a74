"""ModelCheckpoint, ReduceLROnPlateau, CSVLogger, TerminateOnNaN, LearningRateScheduler, History.plot."""

import csv

import lamina
import numpy as np
import pytest
from lamina import callbacks, layers
from lamina.models import load_model

RNG = np.random.default_rng(0)
X = RNG.standard_normal((32, 3)).astype(np.float32)
Y = X.sum(1, keepdims=True)


def _model(lr=0.05):
    lamina.random.seed(0)
    model = lamina.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(1)])
    model.compile(lamina.optimizers.SGD(lr), "mse")
    return model


class ScriptedLogs(callbacks.Callback):
    """Overwrites val_loss with a scripted sequence (runs before the callback under test)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


def test_model_checkpoint_save_best_only(tmp_path):
    path = tmp_path / "best.lamina"
    saved = []
    model = _model()

    class Spy(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if path.exists():
                saved.append(path.stat().st_mtime_ns)

    ckpt = callbacks.ModelCheckpoint(str(path), monitor="val_loss", save_best_only=True)
    model.fit(X, Y, epochs=5, verbose=0, callbacks=[ScriptedLogs([3.0, 2.0, 2.5, 1.0, 4.0]), ckpt, Spy()])
    assert ckpt.best == 1.0
    assert len(set(saved)) == 3  # saved after epochs 1, 2 and 4 only
    assert isinstance(load_model(path), lamina.Sequential)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.lamina"]  # no temporary files left


def test_model_checkpoint_formats_names_and_saves_weights(tmp_path):
    model = _model()
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch:02d}-{loss:.2f}.safetensors"), save_weights_only=True)
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[ckpt])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].startswith("w-01-") and files[1].startswith("w-02-")
    other = _model()
    other.load_weights(tmp_path / files[1])
    np.testing.assert_array_equal(other.predict(X), model.predict(X))


def test_reduce_lr_on_plateau():
    model = _model(lr=0.1)
    plateau = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=0.02, cooldown=2)
    history = model.fit(X, Y, epochs=8, verbose=0,
                        callbacks=[ScriptedLogs([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]), plateau])
    # reductions at the ends of epochs 3 and 6: patience 2, and two cooldown epochs in between
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])
    assert model.optimizer.lr == pytest.approx(0.025)


def test_learning_rate_scheduler_and_terminate_on_nan():
    model = _model()
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 * (epoch + 1))
    history = model.fit(X, Y, epochs=3, verbose=0, callbacks=[sched])
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.02, 0.03])
    y_bad = Y.copy()
    y_bad[0] = np.nan
    history = model.fit(X, y_bad, epochs=5, batch_size=32, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    assert len(history.history["loss"]) == 1


def test_csv_logger_writes_and_appends(tmp_path):
    path = tmp_path / "log.csv"
    _model().fit(X, Y, epochs=2, verbose=0, validation_split=0.25, callbacks=[callbacks.CSVLogger(str(path))])
    _model().fit(X, Y, epochs=1, verbose=0, validation_split=0.25,
                 callbacks=[callbacks.CSVLogger(str(path), append=True)])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "loss", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "0"]
    assert all(float(r[1]) > 0 for r in rows[1:])


def test_history_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed")
    model = _model()
    model.compile(lamina.optimizers.SGD(0.05), "mse", metrics=["mae"])
    history = model.fit(X, Y, epochs=3, verbose=0, validation_split=0.25)
    history.plot(tmp_path / "curves.png")
    data = (tmp_path / "curves.png").read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_history_plot_without_data_says_so(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed")
    with pytest.raises(ValueError, match="nothing to plot"):
        callbacks.History().plot(tmp_path / "x.png")
