"""CRS handling for OGC API - Features Part 2: URIs, axis order and reprojection.

Stored data is CRS84 (lon/lat). Output in another CRS follows that CRS's own axis
order, as Part 2 requires (EPSG:4326 is lat/lon); CRS84 stays lon/lat.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import shapely
from pyproj import CRS, Transformer

from landexplorer.errors import CRSError

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_EPSG = "http://www.opengis.net/def/crs/EPSG/0/"

#: The CRSs offered for output, bbox-crs and filter-crs.
SUPPORTED = [CRS84, _EPSG + "4326", _EPSG + "3857", _EPSG + "27700"]


def normalize(uri: str | None) -> str:
    """The canonical URI for a CRS given as a URI, a CURIE ``[EPSG:27700]`` or ``EPSG:27700``."""
    if not uri:
        return CRS84
    text = uri.strip().strip("[]")
    upper = text.upper()
    if upper in ("CRS84", "OGC:CRS84") or text == CRS84:
        return CRS84
    if upper.startswith("EPSG:"):
        text = _EPSG + text.split(":", 1)[1]
    text = text.replace("https://", "http://")
    if text not in SUPPORTED:
        raise CRSError(
            f"The coordinate reference system '{uri}' is not offered here. "
            f"Use one of: {', '.join(SUPPORTED)}."
        )
    return text


@lru_cache(maxsize=16)
def _crs(uri: str) -> CRS:
    if uri == CRS84:
        return CRS.from_user_input("OGC:CRS84")
    return CRS.from_epsg(int(uri.rsplit("/", 1)[1]))


@lru_cache(maxsize=16)
def _to(uri: str) -> Transformer:
    return Transformer.from_crs(_crs(CRS84), _crs(uri))


@lru_cache(maxsize=16)
def _from(uri: str) -> Transformer:
    return Transformer.from_crs(_crs(uri), _crs(CRS84))


def from_crs84(geoms: Any, uri: str) -> Any:
    """Reproject shapely geometries (array or one) from CRS84 into ``uri`` (its axis order)."""
    if uri == CRS84:
        return geoms
    tr = _to(uri)
    return shapely.transform(geoms, lambda xy: _stack(tr.transform(xy[:, 0], xy[:, 1])))


def to_crs84(geoms: Any, uri: str) -> Any:
    """Reproject shapely geometries given in ``uri`` (its axis order) into CRS84."""
    if uri == CRS84:
        return geoms
    tr = _from(uri)
    return shapely.transform(geoms, lambda xy: _stack(tr.transform(xy[:, 0], xy[:, 1])))


def bbox_to_crs84(bbox: tuple[float, float, float, float], uri: str) -> tuple[float, ...]:
    """A bbox given in ``uri`` (its axis order) as a CRS84 west, south, east, north."""
    if uri == CRS84:
        return bbox
    x0, y0, x1, y1 = _from(uri).transform_bounds(*bbox, densify_pts=21)
    return (x0, y0, x1, y1)


def _stack(xy: tuple[Any, Any]) -> Any:
    import numpy as np

    return np.column_stack(xy)
