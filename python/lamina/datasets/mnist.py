"""MNIST handwritten digits, read from the four IDX gzip files on local disk.

Files are looked for in ``$LAMINA_DATA_DIR`` (directly or in an ``mnist`` subfolder),
then in ``~/.lamina/datasets/mnist``. Nothing is downloaded.
"""

import gzip
import os
from pathlib import Path

import numpy as np

FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
_EXPECTED = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}
_UBYTE = 0x08
_MAX_ELEMENTS = 1 << 31


def read_idx(path):
    """Reads an IDX file (gzip-compressed or raw) of unsigned bytes into a uint8 array.

    The header is checked before it is trusted: two zero bytes, the ubyte type code, a
    rank from 1 to 4, positive dimensions of sane total size, and a payload of exactly
    that many bytes.

    Raises:
        ValueError: if the file is corrupt, truncated or not an unsigned-byte IDX file.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # gzip raises these for damaged or cut-off streams
        raise ValueError(f"{path}: cannot decompress ({e})") from e
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(f"{path}: bad IDX magic {data[:4].hex()} (must start with two zero bytes)")
    if type_code != _UBYTE:
        raise ValueError(f"{path}: IDX type code 0x{type_code:02x} is not unsigned byte (0x08)")
    if not 1 <= ndim <= 4:
        raise ValueError(f"{path}: IDX rank {ndim} is outside 1..4")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    count = 1
    for d in dims:
        if d <= 0:
            raise ValueError(f"{path}: IDX dimension {d} in {dims} is not positive")
        count *= d
    if count > _MAX_ELEMENTS:
        raise ValueError(f"{path}: IDX dimensions {dims} are implausibly large")
    if len(data) - header != count:
        raise ValueError(f"{path}: IDX payload has {len(data) - header} bytes, dimensions {dims} need {count}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _candidate_dirs():
    dirs = []
    env = os.environ.get("LAMINA_DATA_DIR")
    if env:
        dirs += [Path(env), Path(env) / "mnist"]
    dirs.append(Path.home() / ".lamina" / "datasets" / "mnist")
    return dirs


def find_dir():
    """The first folder holding all four MNIST files, or None."""
    for d in _candidate_dirs():
        if all((d / name).is_file() for name in FILES.values()):
            return d
    return None


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
    arrays = {}
    for key, name in FILES.items():
        arr = read_idx(folder / name)
        if arr.shape != _EXPECTED[key]:
            raise ValueError(f"{folder / name}: expected shape {_EXPECTED[key]}, got {arr.shape}")
        arrays[key] = arr
    if arrays["y_train"].max() > 9 or arrays["y_test"].max() > 9:
        raise ValueError("MNIST labels must be digits 0..9")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
