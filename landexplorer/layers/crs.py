"""Coordinate reference systems: parsing what people type, naming what files carry,
checking that coordinates fit, and choosing a metric CRS for areas and distances."""

from __future__ import annotations

import math
from functools import lru_cache

from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as ProjCRSError

from landexplorer.errors import CRSError

WGS84 = "EPSG:4326"
BNG = "EPSG:27700"
#: Where British National Grid is the right metric CRS (lon/lat box around Great Britain).
_GB_BOUNDS = (-9.0, 49.75, 2.1, 61.0)


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


def looks_geographic(bounds: tuple[float, float, float, float]) -> bool:
    """Could these numbers be longitudes and latitudes?"""
    x0, y0, x1, y1 = bounds
    return -180.0 <= x0 <= x1 <= 180.0 and -90.0 <= y0 <= y1 <= 90.0


def check_source_bounds(crs: CRS, bounds: tuple[float, float, float, float], where: str) -> None:
    """Refuse coordinates that cannot be right for ``crs`` (eastings read as longitudes, ...)."""
    x0, y0, x1, y1 = bounds
    if not all(math.isfinite(v) for v in bounds):
        return
    if crs.is_geographic:
        if not looks_geographic(bounds):
            hint = (
                " They look like British National Grid eastings and northings:"
                " try --crs EPSG:27700."
                if x0 >= 0 and x1 <= 800_000 and y0 >= 0 and y1 <= 1_400_000
                else " Tell landexplorer which coordinate system they are in with --crs."
            )
            raise CRSError(
                f"The coordinates in {where} go from ({x0:,.1f}, {y0:,.1f}) to ({x1:,.1f}, "
                f"{y1:,.1f}), which cannot be longitudes and latitudes "
                f"({crs_name(crs)})." + hint
            )
        return
    # A projected CRS: numbers that all fit in +-180/+-90 are degrees, not metres.
    if looks_geographic(bounds) and (x1 - x0) < 50 and (y1 - y0) < 50:
        raise CRSError(
            f"The coordinates in {where} go from ({x0:.4f}, {y0:.4f}) to ({x1:.4f}, {y1:.4f}). "
            f"They look like longitudes and latitudes, not {crs.name} metres: "
            "try --crs EPSG:4326."
        )
    area = crs.area_of_use
    if area is not None:
        try:
            fwd = transformer_to_wgs84(crs.to_wkt())
            lon0, lat0, lon1, lat1 = fwd.transform_bounds(x0, y0, x1, y1)
        except Exception:
            lon0 = lat0 = lon1 = lat1 = float("nan")
        margin = 2.0
        inside = (
            math.isfinite(lon0)
            and lon0 >= area.west - margin
            and lon1 <= area.east + margin
            and lat0 >= area.south - margin
            and lat1 <= area.north + margin
        )
        if not inside:
            raise CRSError(
                f"The coordinates in {where} ({x0:,.0f}, {y0:,.0f} to {x1:,.0f}, {y1:,.0f}) "
                f"fall outside the area {crs.name} is made for ({area.name}). Check the "
                "columns and the --crs given."
            )


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
