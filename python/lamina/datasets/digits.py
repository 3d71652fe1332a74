"""The 8x8 handwritten digits bundled with scikit-learn (1797 images), split for training.

scikit-learn is an optional dependency used only here: ``pip install scikit-learn``.
"""

import numpy as np


def load_data(test_split=0.2, seed=0):
    """Loads the digits in the Keras ``load_data`` form.

    Args:
        test_split: Fraction of the samples held out as the test set.
        seed: Seed of the shuffle before the split.

    Returns:
        ((x_train, y_train), (x_test, y_test)): float32 images of shape (n, 8, 8) with
        values 0..16, and int64 labels 0..9.

    Raises:
        ImportError: when scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("lamina.datasets.digits needs scikit-learn, which bundles the data: "
                          "pip install scikit-learn") from e
    if not 0.0 <= test_split < 1.0:
        raise ValueError(f"digits.load_data: test_split must be in [0, 1), got {test_split}")
    bunch = load_digits()
    x = np.asarray(bunch.images, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    split = len(x) - int(round(len(x) * test_split))
    return (x[:split], y[:split]), (x[split:], y[split:])
