"""``POST /analysis/compare``, ``/analysis/report`` and ``/analysis/zonal``.

Thin wrappers over ``landexplorer.analysis``: check that every named layer is visible to
the caller, run the work in the thread pool, and return the JSON summary plus GeoJSON
features. Areas and distances come back in the metric CRS the analysis chose (named).

Every call runs with the server's limits (``Limits.from_settings``): request areas are
counted before they are built (413 when too big, 400 when a coordinate is not a
longitude/latitude) and the work is sized before it runs (422 with how to narrow it, or
the command line that runs it without a limit).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
import shapely
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool

from landexplorer.analysis.limits import Limits
from landexplorer.api.deps import not_found, settings_of, store_of, visible
from landexplorer.api.responses import JSONResponse
from landexplorer.catalog import LayerEntry, Store, check_layer_id
from landexplorer.errors import InputError, LayerNotFound

router = APIRouter(prefix="/analysis", tags=["Analysis"])

#: The most match features returned inline; the summary always covers all of them.
MAX_MATCHES = 5_000

#: JSON numbers only (true/false or "1.5" are not taken for numbers), as the schema says.
Number = Annotated[float, Strict()]
BBox = tuple[Number, Number, Number, Number]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompareBody(_Body):
    left: str = Field(max_length=48, examples=["allotments"])
    right: str = Field(max_length=48, examples=["flood_risk"])
    predicate: Literal["intersects", "within", "contains", "within-distance", "nearest"] = (
        "intersects"
    )
    distance: Number | None = Field(default=None, ge=0, le=100_000, description="metres")
    k: Annotated[int, Strict()] | None = Field(default=None, ge=1, le=100)
    by: str | None = Field(default=None, max_length=100, description="a column of right")
    bbox: BBox | None = None
    area: dict[str, Any] | None = Field(
        default=None, description="GeoJSON polygon: only left features meeting it"
    )
    matches: StrictBool = True


class ReportBody(_Body):
    area: dict[str, Any] = Field(
        description="GeoJSON Polygon/MultiPolygon, Feature or FeatureCollection (lon/lat)",
        examples=[
            {
                "type": "Polygon",
                "coordinates": [
                    [[-2.36, 53.40], [-2.33, 53.40], [-2.33, 53.42], [-2.36, 53.42], [-2.36, 53.40]]
                ],
            }
        ],
    )
    layers: list[str] | None = Field(default=None, max_length=50)
    by: dict[str, str] | None = None


class ZonalBody(_Body):
    layer: str = Field(max_length=48, examples=["allotments"])
    raster: str = Field(max_length=48, examples=["elevation"])
    stats: list[str] = Field(default=["count", "mean", "min", "max"], max_length=20)
    method: Literal["coverage", "centre"] = "coverage"
    by: str | None = Field(default=None, max_length=100)
    bbox: BBox | None = None


def _entry(request: Request, layer_id: str) -> LayerEntry:
    """A layer the caller may use, or a 404 (unknown and hidden look the same)."""
    try:
        check_layer_id(layer_id)
        entry = store_of(request).get(layer_id)
    except (InputError, LayerNotFound):
        raise not_found(layer_id) from None
    if not visible(entry, request):
        raise not_found(layer_id)
    return entry


def _check_bbox(bbox: BBox | None) -> BBox | None:
    if bbox is None:
        return None
    x0, y0, x1, y1 = bbox
    if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise InputError("bbox must be west, south, east, north in longitude/latitude.")
    return bbox


def _limits(request: Request) -> Limits:
    return Limits.from_settings(settings_of(request))


def _area(area: dict[str, Any], limits: Limits) -> Any:
    """The drawn area as a shapely polygon, counted and checked before it is built;
    malformed GeoJSON is the caller's mistake."""
    from landexplorer.analysis.report import area_polygon

    try:
        geom, _ = area_polygon(area, limits=limits)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise InputError(
            "The area is not a GeoJSON polygon that can be read.", detail=repr(exc)
        ) from exc
    return geom


def _features(frame: Any, limit: int) -> dict[str, Any]:
    """A GeoDataFrame (EPSG:4326) as a GeoJSON FeatureCollection (at most ``limit``)."""
    from landexplorer.analysis.results import records

    part = frame.iloc[:limit]
    geoms = shapely.to_geojson(part.geometry.values)
    props = records(part.drop(columns=part.geometry.name))
    return {
        "type": "FeatureCollection",
        "numberMatched": len(frame),
        "numberReturned": len(part),
        "features": [
            {
                "type": "Feature",
                "geometry": orjson.Fragment(g) if g is not None else None,
                "properties": p,
            }
            for g, p in zip(geoms, props, strict=True)
        ],
    }


def _compare(store: Store, body: CompareBody, bbox: BBox | None, limits: Limits) -> dict[str, Any]:
    from landexplorer.analysis import compare

    result = compare(
        body.left, body.right, store=store, predicate=body.predicate, distance=body.distance,
        k=body.k, by=body.by, bbox=bbox, limits=limits,
    )  # fmt: skip
    out = result.to_dict(with_matches=False)
    if body.matches:
        out["matches"] = _features(result.matches, MAX_MATCHES)
    return out


@router.post("/compare", summary="Which features of one layer meet another")
def compare_layers(request: Request, body: CompareBody) -> JSONResponse:
    """Pairs of features of ``left`` and ``right`` meeting the predicate: a summary by class
    of ``right`` (``by``) and the matches as GeoJSON (left geometry)."""
    limits = _limits(request)
    _entry(request, body.left)
    _entry(request, body.right)
    bbox = _check_bbox(body.bbox)
    if body.area is not None:
        geom = _area(body.area, limits)
        x0, y0, x1, y1 = (float(v) for v in shapely.bounds(geom))
        bbox = (x0, y0, x1, y1)
    return JSONResponse(_compare(store_of(request), body, bbox, limits))


@router.post("/report", summary="What every layer holds inside a drawn area")
def report(request: Request, body: ReportBody) -> JSONResponse:
    """For a GeoJSON polygon: each visible layer's features, areas and classes inside it,
    measured in a metric CRS (named in the answer), with licences and attributions."""
    from landexplorer.analysis import area_report

    limits = _limits(request)
    geom = _area(body.area, limits)  # sized and checked before anything else is done
    store = store_of(request)
    if body.layers is None:
        layers = [e.id for e in store.list_layers() if visible(e, request)]
    else:
        layers = [_entry(request, layer_id).id for layer_id in body.layers]
    result = area_report(store, geom, layers=layers, by=body.by, limits=limits)
    out = result.to_dict()
    out["area"] = {
        "type": "Feature",
        "geometry": orjson.Fragment(shapely.to_geojson(geom)),
        "properties": {"area_m2": result.area_m2, "crs": result.crs},
    }
    return JSONResponse(out)


@router.post("/zonal", summary="Raster statistics under each polygon")
def zonal(request: Request, body: ZonalBody) -> JSONResponse:
    """Statistics of a raster layer under each polygon (or class) of a vector layer."""
    from landexplorer.analysis import zonal_stats

    _entry(request, body.layer)
    raster = _entry(request, body.raster)
    if raster.data_type != "raster":
        raise InputError(f"'{raster.id}' is not a raster layer.")
    result = zonal_stats(
        body.layer, raster.id, store=store_of(request), stats=body.stats, method=body.method,
        by=body.by, bbox=_check_bbox(body.bbox), limits=_limits(request),
    )  # fmt: skip
    return JSONResponse(result.to_dict())
