"""MNIST handwritten digits, read from the four IDX gzip files on local disk.

Files are looked for in ``$LAMINA_DATA_DIR`` (directly or in an ``mnist`` subfolder),
then in ``~/.lamina/datasets/mnist``. Nothing is downloaded.
"""

from pathlib import Path

from lamina.datasets import idx
from lamina.datasets.idx import FILES, read_idx  # noqa: F401 (part of this module's API)


def _candidate_dirs():
    return idx.env_dirs("mnist") + [Path.home() / ".lamina" / "datasets" / "mnist"]


def find_dir():
    """The first folder holding all four MNIST files, or None."""
    return idx.find_dir(_candidate_dirs())


def load_data():
    """Loads MNIST as Keras does.

    Returns:
        ((x_train, y_train), (x_test, y_test)): uint8 arrays of shapes (60000, 28, 28),
        (60000,), (10000, 28, 28) and (10000,).

    Raises:
        FileNotFoundError: when the files are not found; the message says where to put them.
        ValueError: when a file is corrupt or has unexpected dimensions.
    """
    folder = find_dir()
    if folder is None:
        looked = ", ".join(str(d) for d in _candidate_dirs())
        raise FileNotFoundError(
            f"MNIST files not found (looked in: {looked}). Put {', '.join(FILES.values())} in "
            f"~/.lamina/datasets/mnist or in a folder named by the LAMINA_DATA_DIR environment variable.")
    return idx.load_idx_dataset(folder)
