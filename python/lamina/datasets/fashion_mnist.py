"""Fashion-MNIST (Zalando): 28x28 grayscale images of 10 kinds of clothing, IDX gzip files.

Files are looked for in ``$LAMINA_DATA_DIR`` (directly or in a ``fashion_mnist`` or
``fashion-mnist`` subfolder), then ``~/.lamina/datasets/fashion_mnist``, then where the
Debian/Ubuntu package ``dataset-fashion-mnist`` installs them
(``/usr/share/datasets/fashion-mnist``); if they are in none of these, ``load_data`` tries
the usual public mirrors once and otherwise says where to get them.

Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt,
7 Sneaker, 8 Bag, 9 Ankle boot (``CLASS_NAMES``).
"""

from pathlib import Path

from lamina.datasets import idx

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")
SYSTEM_DIRS = (Path("/usr/share/datasets/fashion-mnist"), Path("/usr/share/dataset-fashion-mnist"))


def _candidate_dirs():
    return (idx.env_dirs("fashion_mnist", "fashion-mnist") + [Path.home() / ".lamina" / "datasets" / "fashion_mnist"]
            + list(SYSTEM_DIRS))


def find_dir():
    """The first folder holding all four Fashion-MNIST files, or None."""
    return idx.find_dir(_candidate_dirs())


MIRRORS = ("https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
           "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")


def load_data(download=True):
    """Loads Fashion-MNIST as ``keras.datasets.fashion_mnist.load_data`` does.

    Args:
        download: When the files are not on disk, try fetching them from the usual public
            mirrors into ~/.lamina/datasets/fashion_mnist first (tests pass False).

    Returns:
        ((x_train, y_train), (x_test, y_test)): uint8 arrays of shapes (60000, 28, 28),
        (60000,), (10000, 28, 28) and (10000,).

    Raises:
        FileNotFoundError: when the files are not found; the message says where to get them.
        ValueError: when a file is corrupt or has unexpected dimensions.
    """
    return idx.load("fashion_mnist", _candidate_dirs(), MIRRORS,
                    "Install the Debian package (apt-get install dataset-fashion-mnist).", download)
