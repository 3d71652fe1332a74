"""The IDX file reader and folder search shared by the MNIST-layout datasets."""

import gzip
import os
from pathlib import Path

import numpy as np

_UBYTE = 0x08
_MAX_ELEMENTS = 1 << 31

FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
EXPECTED = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}


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


def find_dir(candidates, files=FILES):
    """The first folder in `candidates` holding all `files`, or None."""
    for d in candidates:
        if all((Path(d) / name).is_file() for name in files.values()):
            return Path(d)
    return None


def env_dirs(*subfolders):
    """$LAMINA_DATA_DIR itself and its `subfolders`, when the variable is set."""
    env = os.environ.get("LAMINA_DATA_DIR")
    if not env:
        return []
    return [Path(env)] + [Path(env) / s for s in subfolders]


def load_idx_dataset(folder, num_classes=10):
    """((x_train, y_train), (x_test, y_test)) from the four files in `folder`, shape-checked."""
    arrays = {}
    for key, name in FILES.items():
        arr = read_idx(folder / name)
        if arr.shape != EXPECTED[key]:
            raise ValueError(f"{folder / name}: expected shape {EXPECTED[key]}, got {arr.shape}")
        arrays[key] = arr
    if arrays["y_train"].max() >= num_classes or arrays["y_test"].max() >= num_classes:
        raise ValueError(f"{folder}: labels must be in 0..{num_classes - 1}")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def download(name, base_urls, timeout=15.0):
    """Fetches the four files of dataset `name` into ~/.lamina/datasets/<name>.

    Each file is validated by the IDX reader before it is moved into place (atomically), so
    a partial or corrupt download never looks like a dataset. Returns the folder, or None
    when no mirror could be reached (offline machines): the caller then explains where to
    put the files.
    """
    import tempfile
    import urllib.request

    target = Path.home() / ".lamina" / "datasets" / name
    for base in base_urls:
        try:
            target.mkdir(parents=True, exist_ok=True)
            for file in FILES.values():
                if (target / file).is_file():
                    continue
                with urllib.request.urlopen(base + file, timeout=timeout) as response:
                    payload = response.read()
                # Same extension as the real file, so the reader decompresses it the same way.
                fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{file}.", suffix=".tmp" + Path(file).suffix)
                try:
                    with os.fdopen(fd, "wb") as out:
                        out.write(payload)
                        out.flush()
                        os.fsync(out.fileno())
                    read_idx(Path(tmp))
                    os.replace(tmp, target / file)
                finally:
                    if os.path.exists(tmp):
                        os.remove(tmp)
            return target
        except (OSError, ValueError):
            continue
    return None


def load(name, candidates, base_urls, where_to_get, allow_download):
    """The dataset from the first folder holding its files; otherwise a download attempt
    (when allowed), then a FileNotFoundError saying where the files were looked for and
    where to put them."""
    folder = find_dir(candidates)
    if folder is None and allow_download:
        folder = download(name, base_urls)
    if folder is None:
        looked = ", ".join(str(d) for d in candidates)
        raise FileNotFoundError(
            f"{name} files not found (looked in: {looked}). {where_to_get} Put "
            f"{', '.join(FILES.values())} in ~/.lamina/datasets/{name} or in a folder named by "
            f"the LAMINA_DATA_DIR environment variable.")
    return load_idx_dataset(folder)
