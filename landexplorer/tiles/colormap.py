"""Colour ramps for raster tiles: named ramps as control points, expanded to palettes.

Palette index 0 is transparent (no data or outside the raster); indices 1..255 carry
values rescaled linearly from ``[low, high]``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from landexplorer.errors import InputError

#: Control points (position 0..1, RGB) per ramp.
RAMPS: dict[str, list[tuple[float, tuple[int, int, int]]]] = {
    # low ground green through yellow and brown to pale high ground
    "terrain": [
        (0.0, (0, 97, 71)),
        (0.25, (84, 166, 83)),
        (0.5, (232, 214, 125)),
        (0.75, (163, 113, 64)),
        (1.0, (245, 240, 235)),
    ],
    "viridis": [
        (0.0, (68, 1, 84)),
        (0.25, (59, 82, 139)),
        (0.5, (33, 145, 140)),
        (0.75, (94, 201, 98)),
        (1.0, (253, 231, 37)),
    ],
    "greys": [(0.0, (0, 0, 0)), (1.0, (255, 255, 255))],
    "blues": [(0.0, (247, 251, 255)), (0.5, (107, 174, 214)), (1.0, (8, 48, 107))],
}
DEFAULT_RAMP = "terrain"
#: Number of value classes (palette entries 1..255).
LEVELS = 255


@lru_cache(maxsize=32)
def palette(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(256 x 3 RGB palette, 256 alpha) for a ramp; entry 0 is transparent."""
    if name not in RAMPS:
        raise InputError(
            f"There is no colour ramp called '{name}'. Choose one of: {', '.join(sorted(RAMPS))}."
        )
    stops = RAMPS[name]
    pos = np.array([p for p, _ in stops])
    colours = np.array([c for _, c in stops], dtype=float)
    t = np.linspace(0.0, 1.0, LEVELS)
    rgb = np.stack([np.interp(t, pos, colours[:, i]) for i in range(3)], axis=1)
    pal = np.zeros((256, 3), dtype=np.uint8)
    pal[1:] = np.rint(rgb).astype(np.uint8)
    alpha = np.full(256, 255, dtype=np.uint8)
    alpha[0] = 0
    pal.setflags(write=False)
    alpha.setflags(write=False)
    return pal, alpha


def classify(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Palette indices (1..255) for values rescaled from [low, high]; NaN -> 0."""
    span = high - low if high > low else 1.0
    scaled = (values - low) * ((LEVELS - 1) / span)
    idx = np.clip(np.rint(np.nan_to_num(scaled, nan=-1.0)), 0, LEVELS - 1).astype(np.uint8) + 1
    idx[np.isnan(values)] = 0
    return idx


def colour_of(value: float, low: float, high: float, name: str = DEFAULT_RAMP) -> tuple[int, ...]:
    """The RGB a single value is drawn with (for legends and tests)."""
    pal, _ = palette(name)
    i = int(classify(np.array([value], dtype=float), low, high)[0])
    return tuple(int(c) for c in pal[i])
