"""A small PNG writer for paletted (8-bit indexed) tiles.

A 256 x 256 palette image is 64 KiB before compression, a quarter of RGBA, and colours
come from the palette, so the colormap is applied once per palette rather than per
pixel. zlib does the compression; the rest of PNG is a few fixed chunks.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_indexed(
    indices: np.ndarray, palette: np.ndarray, alpha: np.ndarray | None = None, level: int = 6
) -> bytes:
    """PNG bytes of a 2-D uint8 array of palette indices.

    ``palette`` is (n, 3) uint8 RGB; ``alpha`` (n,) uint8 per entry, or None for opaque.
    """
    if indices.ndim != 2 or indices.dtype != np.uint8:
        raise ValueError("indices must be a 2-D uint8 array")
    height, width = indices.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # filter byte 0 (None) per row
    rows[:, 1:] = indices
    parts = [
        _SIGNATURE,
        _chunk(b"IHDR", header),
        _chunk(b"PLTE", palette.astype(np.uint8).tobytes()),
    ]
    if alpha is not None:
        parts.append(_chunk(b"tRNS", alpha.astype(np.uint8).tobytes()))
    parts.append(_chunk(b"IDAT", zlib.compress(rows.tobytes(), level)))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)
