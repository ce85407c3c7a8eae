"""The value of a raster layer at one place (what a click on the elevation grid asks).

One cell is read through a one-pixel window, so a point costs the same on a small grid
and on a large Cloud-Optimised GeoTIFF. The place is given in longitude/latitude (WGS84)
and projected into the raster's own CRS; a place outside the grid, or on a cell that
holds no data, has no value (``None``) and says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pyproj import CRS, Transformer

from landexplorer.analysis.zonal import raster_of
from landexplorer.catalog.base import Store
from landexplorer.catalog.model import LayerEntry
from landexplorer.errors import InputError


@dataclass(frozen=True)
class PointValue:
    """A raster's value at a point: ``value`` is ``None`` outside the grid or on nodata."""

    layer: str
    lon: float
    lat: float
    band: int
    value: float | None
    #: "value", "outside" (the point is not on the grid) or "nodata" (an empty cell)
    status: str
    row: int | None
    col: int | None
    crs: str
    unit: str


def _name(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


@lru_cache(maxsize=32)
def _to_raster(wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_epsg(4326), CRS.from_wkt(wkt), always_xy=True)


def raster_value(
    store: Store, entry: LayerEntry, lon: float, lat: float, *, band: int = 1
) -> PointValue:
    """The value of ``band`` of raster layer ``entry`` at ``lon``/``lat`` (WGS84)."""
    import rasterio
    from rasterio.windows import Window

    if entry.data_type != "raster":
        raise InputError(f"'{entry.id}' is a layer of features, not a grid of values.")
    if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lon) > 180 or abs(lat) > 90:
        raise InputError(
            "The place must be a longitude from -180 to 180 and a latitude from -90 to 90."
        )
    info = raster_of(entry.id, store)
    units = entry.raster.get("units") or []
    with rasterio.open(info.path) as src:
        if not 1 <= band <= src.count:
            bands = "one band" if src.count == 1 else f"bands 1 to {src.count}"
            raise InputError(f"'{entry.id}' has {bands}; band {band} does not exist.")
        x, y = _to_raster(info.crs.to_wkt()).transform(lon, lat)
        row, col = (int(v) for v in rasterio.transform.rowcol(src.transform, x, y, op=math.floor))
        unit = str(units[band - 1] or "") if len(units) >= band else ""

        def answer(value: float | None, status: str, r: int | None, c: int | None) -> PointValue:
            return PointValue(entry.id, lon, lat, band, value, status, r, c, _name(info.crs), unit)

        if not (math.isfinite(x) and math.isfinite(y)):
            return answer(None, "outside", None, None)
        if not (0 <= row < src.height and 0 <= col < src.width):
            return answer(None, "outside", None, None)
        cell = src.read(band, window=Window(col, row, 1, 1), masked=True)
        nodata = src.nodatavals[band - 1]
        if cell.mask.any():
            return answer(None, "nodata", row, col)
        # the shortest decimal that is the cell's own value (22.6, not 22.600000381 for float32)
        value = float(np.format_float_positional(cell.data[0, 0], unique=True, trim="-"))
        if not math.isfinite(value) or (nodata is not None and value == nodata):
            return answer(None, "nodata", row, col)
        return answer(value, "value", row, col)
