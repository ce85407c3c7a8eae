"""Raster values at a point: ``GET /collections/{collectionId}/value?lon=..&lat=..``.

What the map's popup asks when someone clicks the elevation grid (or any raster layer).
The collection is looked up (and hidden from those who may not see it) as for tiles; the
cell is read in ``landexplorer.analysis.pointvalue``. A place outside the grid or on an
empty cell is a fine question with no value: ``200`` with ``"value": null`` and why.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Query

from landexplorer.analysis.pointvalue import raster_value
from landexplorer.api.deps import Collection, StoreDep
from landexplorer.api.errors import ApiError
from landexplorer.api.responses import JSONResponse

router = APIRouter(tags=["Analysis"])

_WHY = {
    "outside": "This place is outside the area the grid covers.",
    "nodata": "The grid holds no value for this place.",
}


def _coordinate(text: str | None, name: str, limit: float, example: str) -> float:
    if text is None or not text.strip():
        raise ApiError(400, "bad-request", f"Say where: add {name}=<number>, e.g. {example}.")
    try:
        value = float(text)
    except ValueError:
        raise ApiError(
            400, "bad-request", f"{name} must be a number in degrees, e.g. {example}."
        ) from None
    if not math.isfinite(value) or abs(value) > limit:
        raise ApiError(
            400, "bad-request", f"{name} must be between -{limit:g} and {limit:g} degrees."
        )
    return value


@router.get(
    "/collections/{collectionId}/value",
    operation_id="getRasterValue",
    summary="The value of a raster layer at a longitude/latitude",
)
def raster_value_at(
    entry: Collection,
    store: StoreDep,
    lon: Annotated[
        str | None, Query(max_length=40, description="Longitude (WGS84), e.g. -2.35.")
    ] = None,
    lat: Annotated[
        str | None, Query(max_length=40, description="Latitude (WGS84), e.g. 53.42.")
    ] = None,
    band: Annotated[
        str | None, Query(max_length=4, description="Band to read (default 1).")
    ] = None,
) -> JSONResponse:
    """The cell value under a point, with the layer's licence and attribution."""
    if entry.data_type != "raster":
        raise ApiError(
            404,
            "not-found",
            f"'{entry.id}' is a layer of features, not a grid of values: ask "
            f"/collections/{entry.id}/items?bbox=... for what is at a place.",
        )
    x = _coordinate(lon, "lon", 180, "lon=-2.35")
    y = _coordinate(lat, "lat", 90, "lat=53.42")
    if band is not None and not (band.isascii() and band.isdigit()):
        raise ApiError(400, "bad-request", "band must be a whole number, e.g. band=1.")
    found = raster_value(store, entry, x, y, band=int(band) if band else 1)
    body: dict[str, object] = {
        "collection": entry.id,
        "title": entry.title,
        "lon": found.lon,
        "lat": found.lat,
        "band": found.band,
        "value": found.value,
        "status": found.status,
        "unit": found.unit,
        "crs": found.crs,
        "cell": None if found.row is None else {"row": found.row, "col": found.col},
        "license": entry.licence,
        "attribution": entry.attribution,
    }
    if found.value is None:
        body["description"] = _WHY[found.status]
    shared = "public" if entry.is_public else "private"
    return JSONResponse(body, headers={"Cache-Control": f"{shared}, max-age=300"})
