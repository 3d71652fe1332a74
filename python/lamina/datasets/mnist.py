"""MNIST handwritten digits, read from the four IDX gzip files on local disk.

Files are looked for in ``$LAMINA_DATA_DIR`` (directly or in an ``mnist`` subfolder),
then in ``~/.lamina/datasets/mnist``; if they are in none of these, ``load_data`` tries the
usual public mirror once and otherwise says where to put them.
"""

from pathlib import Path

from lamina.datasets import idx
from lamina.datasets.idx import FILES, read_idx  # noqa: F401 (part of this module's API)


def _candidate_dirs():
    return idx.env_dirs("mnist") + [Path.home() / ".lamina" / "datasets" / "mnist"]


def find_dir():
    """The first folder holding all four MNIST files, or None."""
    return idx.find_dir(_candidate_dirs())


MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",)


def load_data(download=True):
    """Loads MNIST as Keras does.

    Args:
        download: When the files are not on disk, try fetching them from the usual public
            mirror into ~/.lamina/datasets/mnist first (tests pass False: they never use
            the network).

    Returns:
        ((x_train, y_train), (x_test, y_test)): uint8 arrays of shapes (60000, 28, 28),
        (60000,), (10000, 28, 28) and (10000,).

    Raises:
        FileNotFoundError: when the files are neither on disk nor downloadable; the message
            says where to put them.
        ValueError: when a file is corrupt or has unexpected dimensions.
    """
    return idx.load("mnist", _candidate_dirs(), MIRRORS, "", download)
