"""Raster PNG tiles from a stored COG.

Stored rasters keep their own CRS (the demo DEM is British National Grid), and
reprojecting a window for every tile costs ~30 ms. Instead each raster version is warped
once to web mercator (EPSG:3857) at about its native resolution, on first use, kept as a
GeoTIFF in the tile cache folder (so other workers and restarts reuse it) and held in
memory with a pyramid of halved levels. A tile is then a nearest-neighbour lookup into
the right level, a palette classification and a paletted PNG: about a millisecond.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landexplorer.errors import InputError
from landexplorer.tiles import colormap, grid, png

#: Rasters larger than this (cells, after warping) are refused for tiling rather than
#: loaded into memory; the demo DEM is ~0.2 M cells, the 128 km benchmark DEM ~7 M.
MAX_CELLS = 64_000_000
TILE_PX = 256


@dataclass
class _Level:
    data: np.ndarray  # float32, NaN where no data
    res: float  # metres per cell (EPSG:3857)


class MercatorRaster:
    """One band of a raster in EPSG:3857, with halved levels for low zooms."""

    def __init__(self, data: np.ndarray, left: float, top: float, res: float) -> None:
        self.left, self.top = left, top
        self.levels = [_Level(data, res)]
        while min(self.levels[-1].data.shape) > TILE_PX:
            self.levels.append(_halve(self.levels[-1]))
        self.width = data.shape[1] * res
        self.height = data.shape[0] * res

    @classmethod
    def from_file(cls, path: Path, band: int = 1) -> MercatorRaster:
        import rasterio

        with rasterio.open(path) as src:
            data = src.read(band).astype(np.float32)
            if src.nodata is not None and not math.isnan(src.nodata):
                data[data == src.nodata] = np.nan
            t = src.transform
            return cls(data, t.c, t.f, t.a)

    def sample(self, z: int, x: int, y: int) -> np.ndarray | None:
        """256 x 256 values for a tile (NaN outside), or None when the tile misses the raster."""
        minx, miny, maxx, maxy = grid.tile_bounds_3857(z, x, y)
        if maxx <= self.left or minx >= self.left + self.width:
            return None
        if miny >= self.top or maxy <= self.top - self.height:
            return None
        px = (maxx - minx) / TILE_PX
        level = self.levels[0]
        for candidate in self.levels[1:]:
            if candidate.res <= px:
                level = candidate
        centres = (np.arange(TILE_PX) + 0.5) * px
        cols = np.floor((minx + centres - self.left) / level.res).astype(np.int64)
        rows = np.floor((self.top - (maxy - centres)) / level.res).astype(np.int64)
        h, w = level.data.shape
        col_ok = (cols >= 0) & (cols < w)
        row_ok = (rows >= 0) & (rows < h)
        values = level.data[np.clip(rows, 0, h - 1)[:, None], np.clip(cols, 0, w - 1)[None, :]]
        if not (col_ok.all() and row_ok.all()):
            values = np.where(row_ok[:, None] & col_ok[None, :], values, np.nan)
        return values


def _halve(level: _Level) -> _Level:
    """Average 2 x 2 blocks, ignoring no-data cells."""
    d = level.data
    h, w = (d.shape[0] // 2) * 2, (d.shape[1] // 2) * 2
    blocks = d[:h, :w].reshape(h // 2, 2, w // 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN blocks stay NaN
        out = np.nanmean(blocks, axis=(1, 3)).astype(np.float32)
    return _Level(out, level.res * 2)


def warp_to_mercator(source: Path, target: Path) -> Path:
    """Write ``source`` warped to EPSG:3857 (bilinear, ~native resolution) at ``target``.

    Written to a temporary name and renamed, so a reader never sees half a file.
    """
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(source) as src:
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:3857", src.width, src.height, *src.bounds
        )
        if width * height > MAX_CELLS:
            raise InputError(
                "This raster is too large to draw as map tiles here "
                f"({width:,} x {height:,} cells in web mercator)."
            )
        # square cells: the tile lookup uses one resolution for both axes
        res = min(abs(transform.a), abs(transform.e))
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:3857", src.width, src.height, *src.bounds, resolution=res
        )
        nodata = src.nodata if src.nodata is not None else np.float32(-3.4e38)
        data = np.full((height, width), nodata, dtype=np.float32)
        reproject(
            source=rasterio.band(src, 1),
            destination=data,
            src_transform=src.transform,
            src_crs=src.crs,
            src_nodata=src.nodata,
            dst_transform=transform,
            dst_crs="EPSG:3857",
            dst_nodata=nodata,
            resampling=Resampling.bilinear,
        )
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": 1,
            "dtype": "float32",
            "crs": "EPSG:3857",
            "transform": transform,
            "nodata": nodata,
            "compress": "deflate",
            "tiled": True,
        }
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".warp-", suffix=".tif", dir=target.parent)
    os.close(handle)
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data, 1)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


class RasterSources:
    """Warped, in-memory rasters keyed by (layer id, generation); built once per process."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._items: dict[tuple[str, str], MercatorRaster] = {}
        self._lock = threading.Lock()

    def get(self, layer_id: str, generation: str, cog: Path) -> MercatorRaster:
        """The raster of one layer generation in web mercator (warped on first use)."""
        key = (layer_id, generation)
        item = self._items.get(key)
        if item is not None:
            return item
        with self._lock:
            item = self._items.get(key)
            if item is None:
                warped = self.cache_dir / layer_id / str(generation) / "mercator.tif"
                if not warped.exists():
                    warp_to_mercator(cog, warped)
                item = MercatorRaster.from_file(warped)
                # older versions of the same layer are never asked for again
                for old in [k for k in self._items if k[0] == layer_id]:
                    del self._items[old]
                self._items[key] = item
        return item


def render_png(
    raster: MercatorRaster,
    z: int,
    x: int,
    y: int,
    low: float,
    high: float,
    ramp: str = colormap.DEFAULT_RAMP,
) -> bytes:
    """A 256 px PNG of one tile: values rescaled from [low, high] through a colour ramp."""
    grid.check_tile(z, x, y)
    pal, alpha = colormap.palette(ramp)
    values = raster.sample(z, x, y)
    if values is None:
        indices = np.zeros((TILE_PX, TILE_PX), dtype=np.uint8)
    else:
        indices = colormap.classify(values, low, high)
    return png.encode_indexed(indices, pal, alpha)
