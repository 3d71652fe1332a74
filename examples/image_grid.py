"""Saves a grid of grayscale images as a PNG: with matplotlib when installed, else with a
tiny zlib-based PNG writer (so the examples need nothing beyond numpy)."""

import struct
import zlib

import numpy as np


def tile(images, columns=8, pad=2):
    """(n, h, w) images in [0, 1] -> one (rows * (h + pad), columns * (w + pad)) array."""
    images = np.clip(np.asarray(images, dtype=np.float64), 0.0, 1.0)
    n, h, w = images.shape
    rows = -(-n // columns)
    grid = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad))
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = img
    return grid


def write_png(path, gray):
    """Writes a 2-D array in [0, 1] as an 8-bit grayscale PNG."""
    pixels = (np.clip(gray, 0.0, 1.0) * 255).round().astype(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)  # filter type 0 per scanline

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", pixels.shape[1], pixels.shape[0], 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
                + chunk(b"IEND", b""))


def save_grid(images, path, columns=8):
    """Saves (n, h, w) images in [0, 1] as one PNG grid."""
    grid = tile(images, columns)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        write_png(path, grid)
        return
    plt.imsave(path, grid, cmap="gray", vmin=0.0, vmax=1.0)
