"""The Keras quickstart on MNIST: a two-hidden-layer MLP trained with Adam.

Run from the repository root:  PYTHONPATH=python python examples/mnist_mlp.py [--epochs N] [--quick]
The MNIST files are read from $LAMINA_DATA_DIR or ~/.lamina/datasets/mnist.
"""

import argparse
import time

import numpy as np

import lamina
from lamina import layers


def build_model():
    """Flatten -> Dense 128 relu -> Dropout 0.2 -> Dense 64 relu -> Dense 10 softmax."""
    model = lamina.Sequential([
        layers.Flatten(input_shape=(28, 28)),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def run(epochs=5, train_samples=None, batch_size=32, verbose=1, seed=0):
    """Trains and evaluates; returns (test_accuracy, seconds_per_epoch)."""
    lamina.random.seed(seed)
    np.random.seed(seed)
    (x_train, y_train), (x_test, y_test) = lamina.datasets.mnist.load_data()
    x_train, x_test = x_train.astype("float32") / 255.0, x_test.astype("float32") / 255.0
    if train_samples:
        x_train, y_train = x_train[:train_samples], y_train[:train_samples]
    model = build_model()
    if verbose:
        model.summary()
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=verbose)
    per_epoch = (time.perf_counter() - start) / epochs
    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    return accuracy, per_epoch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 epoch (for a smoke test)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    epochs, samples = (1, None) if args.quick else (args.epochs, None)
    accuracy, per_epoch = run(epochs, samples, args.batch_size)
    print(f"test accuracy: {accuracy:.4f}  ({per_epoch:.1f} s per epoch)")


if __name__ == "__main__":
    main()
