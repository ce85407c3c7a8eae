"""The WebMercatorQuad tile grid (OGC TMS, EPSG:3857, 256 px tiles, top-left origin).

Spherical web mercator is a closed formula, so tiles are computed here with numpy instead
of a projection library; the tests check the bounds against ``morecantile``.
"""

from __future__ import annotations

import math

import numpy as np

#: Half the width of the web-mercator world in metres (EPSG:3857 on a sphere of 6378137 m).
HALF_WORLD = math.pi * 6378137.0
#: Latitude where the square web-mercator world ends.
MAX_LAT = 85.0511287798066
#: Deepest zoom served (OGC WebMercatorQuad defines 0..24).
MAX_ZOOM = 24


def check_tile(z: int, x: int, y: int) -> None:
    """Raise ``ValueError`` unless (z, x, y) is a tile of WebMercatorQuad."""
    if not 0 <= z <= MAX_ZOOM:
        raise ValueError(f"zoom {z} is outside 0..{MAX_ZOOM}")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise ValueError(f"tile {x}/{y} does not exist at zoom {z} (0..{n - 1})")


def tile_bounds_3857(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a tile in EPSG:3857 metres."""
    size = 2 * HALF_WORLD / (1 << z)
    minx = -HALF_WORLD + x * size
    maxy = HALF_WORLD - y * size
    return minx, maxy - size, minx + size, maxy


def tile_bounds_lonlat(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a tile in degrees (EPSG:4326 lon/lat)."""
    n = 1 << z
    west = x / n * 360.0 - 180.0
    east = (x + 1) / n * 360.0 - 180.0
    north = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))
    south = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 1) / n))))
    return west, south, east, north


def buffered_bounds_lonlat(
    z: int, x: int, y: int, buffer: int, extent: int
) -> tuple[float, float, float, float]:
    """Tile bounds in lon/lat widened by ``buffer`` tile units on each side (for the query)."""
    minx, miny, maxx, maxy = tile_bounds_3857(z, x, y)
    pad = (maxx - minx) * buffer / extent
    lon0, lat0 = mercator_to_lonlat(minx - pad, miny - pad)
    lon1, lat1 = mercator_to_lonlat(maxx + pad, maxy + pad)
    return lon0, lat0, lon1, lat1


def mercator_to_lonlat(mx: float, my: float) -> tuple[float, float]:
    lon = max(-180.0, min(180.0, math.degrees(mx / 6378137.0)))
    lat = math.degrees(2 * math.atan(math.exp(my / 6378137.0)) - math.pi / 2)
    return lon, max(-MAX_LAT, min(MAX_LAT, lat))


def lonlat_to_mercator(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised EPSG:4326 -> EPSG:3857 (latitudes clamped to the square world)."""
    lat = np.clip(lat, -MAX_LAT, MAX_LAT)
    mx = np.radians(lon) * 6378137.0
    my = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * 6378137.0
    return mx, my


def lonlat_to_tile_units(coords: np.ndarray, z: int, x: int, y: int, extent: int) -> np.ndarray:
    """Map an (n, 2) array of lon/lat to tile units (0..extent, y pointing down)."""
    mx, my = lonlat_to_mercator(coords[:, 0], coords[:, 1])
    minx, _, maxx, maxy = tile_bounds_3857(z, x, y)
    scale = extent / (maxx - minx)
    out = np.empty_like(coords)
    out[:, 0] = (mx - minx) * scale
    out[:, 1] = (maxy - my) * scale
    return out


def tiles_covering(bbox: tuple[float, float, float, float], z: int) -> tuple[int, int, int, int]:
    """(xmin, ymin, xmax, ymax) of the tiles at zoom ``z`` touching a lon/lat box."""
    west, south, east, north = bbox
    n = 1 << z

    def tx(lon: float) -> int:
        return min(n - 1, max(0, int((lon + 180.0) / 360.0 * n)))

    def ty(lat: float) -> int:
        lat = max(-MAX_LAT, min(MAX_LAT, lat))
        r = math.radians(lat)
        return min(n - 1, max(0, int((1 - math.asinh(math.tan(r)) / math.pi) / 2 * n)))

    return tx(west), ty(north), tx(east), ty(south)
