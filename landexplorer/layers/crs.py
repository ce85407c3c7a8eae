"""Coordinate reference systems of input files: checking that coordinates fit the CRS
they are said to be in (parsing and naming live in ``landexplorer.crs``)."""

from __future__ import annotations

import math

from pyproj import CRS

from landexplorer.crs import crs_name, transformer_to_wgs84
from landexplorer.errors import CRSError


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
