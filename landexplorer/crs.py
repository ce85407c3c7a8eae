"""Coordinate reference systems at the bottom floor: parsing what people type and naming
what files carry, for every package (``layers`` checks input coordinates with them,
``analysis`` chooses its metric CRS with them)."""

from __future__ import annotations

from functools import lru_cache

from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as ProjCRSError

from landexplorer.errors import CRSError

WGS84 = "EPSG:4326"


@lru_cache(maxsize=64)
def parse_crs(text: str) -> CRS:
    """Parse ``EPSG:27700``, ``27700``, a WKT or a PROJ string; plain words on failure."""
    value = text.strip()
    if value.isdigit():
        value = f"EPSG:{value}"
    try:
        return CRS.from_user_input(value)
    except ProjCRSError as exc:
        raise CRSError(
            f"'{text}' is not a coordinate system landexplorer knows. Give an EPSG code such "
            "as EPSG:4326 (longitude/latitude) or EPSG:27700 (British National Grid).",
            detail=str(exc),
        ) from exc


def crs_name(crs: CRS) -> str:
    """A short stable name: ``EPSG:NNNN`` when the CRS matches one, else its name."""
    code = epsg_code(crs)
    return f"EPSG:{code}" if code else crs.name


@lru_cache(maxsize=64)
def _epsg_from_wkt(wkt: str) -> int | None:
    crs = CRS.from_wkt(wkt)
    code = crs.to_epsg(min_confidence=70)
    if code is None and "british_national_grid" in crs.name.lower().replace(" ", "_"):
        # ESRI .prj files of OS data name the grid but carry no datum shift.
        return 27700
    return code


def epsg_code(crs: CRS) -> int | None:
    return _epsg_from_wkt(crs.to_wkt())


def is_wgs84(crs: CRS) -> bool:
    return epsg_code(crs) in (4326, 4258) or crs.to_string() in ("OGC:CRS84",)


@lru_cache(maxsize=64)
def transformer_to_wgs84(wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(wkt), WGS84, always_xy=True)
