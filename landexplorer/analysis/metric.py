"""Metric coordinates for areas and distances: never square degrees.

The CRS comes from ``metric_crs_for`` (British National Grid in
Great Britain, else a UTM zone or an equal-area projection) for the joint extent of the
inputs, and every result names it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer

from landexplorer.catalog.base import BBox
from landexplorer.crs import crs_name, parse_crs

BNG = "EPSG:27700"
#: Where British National Grid is the right metric CRS (lon/lat box around Great Britain).
_GB_BOUNDS = (-9.0, 49.75, 2.1, 61.0)


def union_bounds(*bounds: BBox | None) -> BBox | None:
    """The bbox covering all the given ones (None entries are skipped)."""
    got = [b for b in bounds if b is not None]
    if not got:
        return None
    arr = np.asarray(got, dtype=float)
    return (
        float(arr[:, 0].min()),
        float(arr[:, 1].min()),
        float(arr[:, 2].max()),
        float(arr[:, 3].max()),
    )


def choose_metric_crs(*bounds: BBox | None) -> CRS:
    """The metric CRS for data spread over these lon/lat bounds."""
    extent = union_bounds(*bounds)
    if extent is None:
        extent = (-2.0, 51.0, -1.0, 52.0)  # nothing to measure; any GB box gives BNG
    return metric_crs_for(extent)


@lru_cache(maxsize=32)
def _transformer(src_wkt: str, dst_wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(src_wkt), CRS.from_wkt(dst_wkt), always_xy=True)


_WGS84_WKT = CRS.from_epsg(4326).to_wkt()
#: CRS object -> WKT; ``CRS.to_wkt`` costs about a millisecond and a report calls it often.
_WKT: dict[int, tuple[CRS, str]] = {}


def wkt_of(crs: CRS) -> str:
    """The WKT of a CRS, remembered per CRS object (they are immutable)."""
    hit = _WKT.get(id(crs))
    if hit is not None and hit[0] is crs:
        return hit[1]
    text = crs.to_wkt()
    if len(_WKT) > 256:
        _WKT.clear()
    _WKT[id(crs)] = (crs, text)  # keeps the object alive, so its id is not reused
    return text


def project(geoms: np.ndarray, crs: CRS, src: CRS | None = None) -> np.ndarray:
    """Reproject shapely geometries (EPSG:4326 unless ``src``) to ``crs``, vectorised."""
    if len(geoms) == 0:
        return np.asarray(geoms, dtype=object)
    src_wkt = wkt_of(src) if src is not None else _WGS84_WKT
    transformer = _transformer(src_wkt, wkt_of(crs))

    def fn(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return transformer.transform(x, y)  # type: ignore[no-any-return]

    return np.asarray(
        shapely.transform(geoms, fn, interleaved=False),  # type: ignore[arg-type]
        dtype=object,
    )


def project_features(feats: Any, crs: CRS) -> np.ndarray:
    """A ``Features``' geometries in ``crs``: the ones it was given in when that is ``crs``
    (no round trip through EPSG:4326), else projected from EPSG:4326."""
    if feats.native is not None and CRS.from_user_input(feats.native[1]) == crs:
        return np.asarray(feats.native[0], dtype=object)
    if getattr(feats, "flat", None) is not None:
        # the same coordinates through the same transformer as ``project``, without
        # parsing the EPSG:4326 geometries first and copying their coordinates in and out
        return project_flat(feats.flat, crs)
    return project(feats.geoms, crs)


def project_flat(flat: Any, crs: CRS) -> np.ndarray:
    """Geometries in ``crs`` from ``FlatPolygons`` in EPSG:4326: one pyproj call on all
    the coordinates, then each geometry built once."""
    if not len(flat.x):
        return flat.geometries()  # type: ignore[no-any-return]
    transformer = _transformer(_WGS84_WKT, wkt_of(crs))
    # every ring ends on its first vertex again: transform that vertex once (a tenth of
    # the vertices of small polygons) and copy the result, which is exactly the same
    last, first = flat.ring_closers()
    todo = np.ones(len(flat.x), dtype=bool)
    todo[last] = False
    x, y = flat.x[todo], flat.y[todo]
    transformer.transform(x, y, inplace=True)
    out_x = np.empty_like(flat.x)
    out_y = np.empty_like(flat.y)
    out_x[todo], out_y[todo] = x, y
    out_x[last], out_y[last] = out_x[first], out_y[first]
    return flat.geometries(out_x, out_y)  # type: ignore[no-any-return]


def name(crs: CRS) -> str:
    """``EPSG:27700``-style name of a CRS, for results."""
    return crs_name(crs)


def wgs84() -> CRS:
    """EPSG:4326, the storage CRS."""
    return _WGS84


_WGS84 = CRS.from_epsg(4326)


def parse_wgs84() -> CRS:
    """EPSG:4326, for projecting results back to the storage CRS."""
    return CRS.from_epsg(4326)


def metric_crs_for(bounds: tuple[float, float, float, float]) -> CRS:
    """A CRS in metres suited to data within ``bounds`` (lon/lat).

    British National Grid inside Great Britain; otherwise the UTM zone of the centre when
    the data spans less than about one zone; otherwise a world equal-area projection.
    """
    x0, y0, x1, y1 = bounds
    gx0, gy0, gx1, gy1 = _GB_BOUNDS
    if gx0 <= x0 and x1 <= gx1 and gy0 <= y0 and y1 <= gy1:
        return parse_crs(BNG)
    if (x1 - x0) <= 12 and (y1 - y0) <= 30 and y0 >= -80 and y1 <= 84:
        lon = (x0 + x1) / 2
        lat = (y0 + y1) / 2
        zone = int((lon + 180) // 6) + 1
        return parse_crs(f"EPSG:{(32600 if lat >= 0 else 32700) + min(zone, 60)}")
    return parse_crs("EPSG:6933")  # WGS 84 / NSIDC EASE-Grid 2.0 Global (equal area)
