"""An LSTM (or GRU) classifies variable-length noisy sequences by the sign of their sum.

Each sequence has 5 to 30 steps drawn from N(drift, 1) with a random drift per sequence; the
label is 1 when the sum of the steps is positive. Sequences are zero-padded at the end and a
Masking layer tells the recurrent layer to skip the padding, so the rule holds exactly for
the steps it sees. A model that merely averaged the visible steps would need the length;
the recurrence has to accumulate.

Run from the repository root:  PYTHONPATH=python python examples/lstm_sequence.py [--cell gru] [--quick]
Measured: the full run (10 epochs on 20,000 sequences) 96.8% held-out accuracy; --quick
(4 epochs on 3,000 sequences) 97% (LSTM) and 97.6% (GRU).
"""

import argparse

import lamina
import numpy as np
from lamina import layers

MAX_LEN = 30


def make_data(n, rng):
    """(x (n, MAX_LEN, 1) zero-padded, y (n,) in {0, 1}, lengths (n,))."""
    lengths = rng.integers(5, MAX_LEN + 1, size=n)
    drift = rng.normal(0.0, 0.3, size=(n, 1))
    steps = rng.normal(drift, 1.0, size=(n, MAX_LEN))
    steps[steps == 0.0] = 1e-3  # 0.0 is the padding value
    visible = np.arange(MAX_LEN)[None, :] < lengths[:, None]
    x = np.where(visible, steps, 0.0).astype("float32")[..., None]
    y = (x.sum(axis=(1, 2)) > 0).astype("float32")
    return x, y, lengths


def build_model(cell="lstm", units=32):
    rnn = {"lstm": layers.LSTM, "gru": layers.GRU}[cell]
    model = lamina.Sequential([
        lamina.Input((MAX_LEN, 1)),
        layers.Masking(0.0),
        rnn(units),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=lamina.optimizers.Adam(learning_rate=5e-3), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def run(cell="lstm", samples=20000, epochs=10, batch_size=64, verbose=1, seed=0):
    """Trains on `samples` sequences and returns the accuracy on 2,000 fresh ones."""
    lamina.random.seed(seed)
    np.random.seed(seed)
    rng = np.random.default_rng(seed)
    x, y, _ = make_data(samples, rng)
    x_test, y_test, _ = make_data(2000, rng)
    model = build_model(cell)
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose)
    _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    return accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    parser.add_argument("--quick", action="store_true", help="4 epochs on 3,000 sequences")
    args = parser.parse_args()
    accuracy = run(args.cell, 3000, 4) if args.quick else run(args.cell)
    print(f"{args.cell} held-out accuracy: {accuracy:.4f}")


if __name__ == "__main__":
    main()
