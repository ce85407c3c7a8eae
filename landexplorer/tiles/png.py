"""PNG encoding of paletted (8-bit indexed) tiles, by Pillow.

A 256 x 256 palette image is 64 KiB before compression, a quarter of RGBA, and colours
come from the palette, so the colormap is applied once per palette rather than per
pixel. Pillow writes the file (PLTE, tRNS for the transparent entries, zlib level 6);
``bench/bench_encoders.py`` measured it against the hand-written writer this replaced and
GDAL's PNG driver (docs/benchmarks.md, "Tile encoders").
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_indexed(
    indices: np.ndarray, palette: np.ndarray, alpha: np.ndarray | None = None, level: int = 6
) -> bytes:
    """PNG bytes of a 2-D uint8 array of palette indices.

    ``palette`` is (n, 3) uint8 RGB; ``alpha`` (n,) uint8 per entry, or None for opaque.
    """
    if indices.ndim != 2 or indices.dtype != np.uint8:
        raise ValueError("indices must be a 2-D uint8 array")
    image = Image.fromarray(np.ascontiguousarray(indices), mode="P")
    image.putpalette(palette.astype(np.uint8).tobytes())
    options: dict[str, object] = {"compress_level": level}
    if alpha is not None:
        options["transparency"] = alpha.astype(np.uint8).tobytes()
    out = io.BytesIO()
    image.save(out, format="PNG", **options)
    return out.getvalue()
