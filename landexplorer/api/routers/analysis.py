"""``POST /analysis/compare``, ``/analysis/overlay``, ``/analysis/report``,
``/analysis/zonal`` and ``/analysis/save``.

Thin wrappers over ``landexplorer.analysis``: check that every named layer is visible to
the caller (a layer they may not see is a 404, as one that does not exist, and a report
only ever reads the layers they may see), run the work in the thread pool, and return
the JSON summary plus GeoJSON features. Areas and distances come back in the metric CRS
the analysis chose (named). Every answer has a ``licences`` block: each input's licence
and attribution and what the result obliges, in plain words.

``/analysis/save`` keeps a comparison's matches as a new layer of the caller's, private
to their group unless they say otherwise; sharing it with everyone is refused, with the
reason, when an input's licence does not allow it (``access.licences.combine``).

Every call runs with the server's limits (``Limits.from_settings``): request areas are
counted before they are built (413 when too big, 400 when a coordinate is not a
longitude/latitude) and the work is sized before it runs (422 with how to narrow it, or
the command line that runs it without a limit).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import shapely
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool

from landexplorer.access.licences import DERIVED_SOURCE, combine, derived_licence, publish_refusal
from landexplorer.access.model import VISIBILITIES
from landexplorer.access.policy import can_create_in
from landexplorer.analysis.limits import Limits
from landexplorer.api.auth import access_of
from landexplorer.api.deps import (
    Anyone,
    SignedInWriter,
    not_found,
    settings_of,
    store_of,
    visible,
)
from landexplorer.api.errors import ApiError
from landexplorer.api.refusals import answers
from landexplorer.api.responses import JSONResponse
from landexplorer.api.routers.landing import base_url
from landexplorer.catalog import LayerEntry, Store, check_layer_id
from landexplorer.errors import InputError, LayerExists, LayerNotFound, WorkTooLarge

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


class OverlayBody(_Body):
    left: str = Field(max_length=48, examples=["allotments"])
    right: str = Field(max_length=48, examples=["flood_risk"])
    by: str | None = Field(default=None, max_length=100, description="a column of right")
    left_by: str | None = Field(default=None, max_length=100, description="a column of left")
    bbox: BBox | None = None
    per_feature: StrictBool = False


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


_ANSWERS = (400, 404, 413, 422)


@router.post(
    "/compare",
    summary="Which features of one layer meet another",
    responses=answers("The comparison, its matches and the inputs' licences.", *_ANSWERS),
)
def compare_layers(request: Request, actor: Anyone, body: CompareBody) -> JSONResponse:
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


@router.post(
    "/report",
    summary="What every layer holds inside a drawn area",
    responses=answers("What each layer you may see holds in the area.", *_ANSWERS),
)
def report(request: Request, actor: Anyone, body: ReportBody) -> JSONResponse:
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


@router.post(
    "/overlay",
    summary="How much of one layer falls in each class of another",
    operation_id="overlayLayers",
    responses=answers("Amounts by class, in a metric CRS, and the inputs' licences.", *_ANSWERS),
)
def overlay(request: Request, actor: Anyone, body: OverlayBody) -> JSONResponse:
    """Area (polygons), length (lines) or count (points) of ``left`` in each ``by`` class
    of the polygons of ``right``, per feature when asked, with the layer totals."""
    from landexplorer.analysis import overlay_areas
    from landexplorer.catalog.base import Query

    left = _entry(request, body.left)
    right = _entry(request, body.right)
    for entry in (left, right):
        if entry.data_type != "vector":
            raise InputError(f"'{entry.id}' is a raster layer: overlay needs feature layers.")
    bbox = _check_bbox(body.bbox)
    store = store_of(request)
    most = settings_of(request).max_report_features
    if most is not None:
        left_count = store.count(left.id, Query(bbox=bbox)) if bbox else left.feature_count
        near = left.bbox if bbox is None else bbox
        right_count = store.count(right.id, Query(bbox=near)) if near else 0
        if left_count + right_count > most:
            raise WorkTooLarge(
                f"Overlaying '{left.id}' with '{right.id}' would measure about "
                f"{left_count + right_count:,} features; this server measures at most "
                f"{most:,} in one request. Narrow it with a bounding box (bbox), or run it "
                "with the landexplorer command line, which has no such limit: landexplorer "
                f"overlay {left.id} {right.id}",
                detail=f"features {left_count + right_count} > max_report_features {most}",
            )
    result = overlay_areas(
        left.id, right.id, store=store, by=body.by or None, left_by=body.left_by or None,
        bbox=bbox,
    )  # fmt: skip
    return JSONResponse(result.to_dict(with_features=body.per_feature))


@router.post(
    "/zonal",
    summary="Raster statistics under each polygon",
    responses=answers("Statistics per polygon and the inputs' licences.", *_ANSWERS),
)
def zonal(request: Request, actor: Anyone, body: ZonalBody) -> JSONResponse:
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


class SaveBody(_Body):
    compare: CompareBody = Field(description="The comparison whose matches become the layer")
    id: str = Field(max_length=48, examples=["allotments_in_flood"])
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    visibility: Literal["private", "group", "link", "public"] = "private"
    group: str | None = Field(
        default=None,
        max_length=40,
        description="The group the layer belongs to (default: yours, when you are a "
        "contributor of exactly one)",
    )


@router.post(
    "/save",
    status_code=201,
    summary="Keep a comparison's matches as a new layer",
    operation_id="saveAnalysis",
    responses=answers(
        "The new layer, with its licence and what it obliges.",
        400, 401, 403, 404, 409, 413, 422, code=201,
    ),
)  # fmt: skip
def save_result(request: Request, actor: SignedInWriter, body: SaveBody) -> JSONResponse:
    """Run the comparison and store its matches (the left layer's shapes with the right
    layer's details) as a new layer owned by you, in your group, private unless you choose
    otherwise. Its licence comes from its inputs' licences; making it public, or sharing it
    by link, is refused when one of them does not allow it (the answer says which and
    why), and then nothing is stored."""
    from landexplorer.api.routers.uploads import _upload_group

    store = store_of(request)
    left = _entry(request, body.compare.left)
    right = _entry(request, body.compare.right)
    if body.visibility not in VISIBILITIES:  # pragma: no cover - the model says so
        raise InputError(f"visibility must be one of {', '.join(VISIBILITIES)}.")
    group = _upload_group(actor, body.group or None)
    decision = can_create_in(actor, group)
    if not decision.allowed:
        raise ApiError(403, "forbidden", f"This layer cannot be added: {decision.reason}.")
    layer_id = check_layer_id(body.id)
    if store.exists(layer_id):
        raise LayerExists(f"There is a layer called '{layer_id}' already: choose another name.")
    combined = combine([left, right])
    refusal = publish_refusal(combined, body.visibility)
    if refusal is not None:
        raise ApiError(403, "licence-forbids", refusal)
    licence = derived_licence(combined)
    if body.visibility == "public" and not licence:  # pragma: no cover - refused above
        raise InputError("A layer made from unlicensed layers cannot be public.")
    limits = _limits(request)
    bbox = _check_bbox(body.compare.bbox)
    if body.compare.area is not None:
        geom = _area(body.compare.area, limits)
        bbox = tuple(float(v) for v in shapely.bounds(geom))  # type: ignore[assignment]
    from landexplorer.analysis import compare

    c = body.compare
    result = compare(
        left.id, right.id, store=store, predicate=c.predicate, distance=c.distance, k=c.k,
        by=c.by, bbox=bbox, limits=limits,
    )  # fmt: skip
    if len(result.matches) == 0:
        raise InputError("The comparison found no matches, so there is nothing to save.")
    entry = _store_derived(
        store,
        result.matches,
        layer_id=layer_id,
        title=body.title or f"{left.title or left.id} meeting {right.title or right.id}",
        description=body.description
        or f"Features of '{left.id}' that meet '{right.id}' ({c.predicate}).",
        licence=licence,
        attribution="; ".join(dict.fromkeys(x.attribution for x in (left, right) if x.attribution))[
            :500
        ],
        source=DERIVED_SOURCE + ", ".join(dict.fromkeys([left.id, right.id])),
        owner=actor.user,
        group=group,
        visibility=body.visibility,
        work=settings_of(request).data_dir,
    )
    access_of(request).audit(
        actor,
        "save-analysis",
        entry.id,
        entry.version,
        features=entry.feature_count,
        visibility=entry.visibility,
        group=entry.group,
        inputs=[left.id, right.id],
        licence=entry.licence,
    )
    return JSONResponse(
        {
            "id": entry.id,
            "title": entry.title,
            "version": entry.version,
            "visibility": entry.visibility,
            "group": entry.group,
            "owner": entry.owner,
            "licence": entry.licence,
            "attribution": entry.attribution,
            "features": entry.feature_count,
            "licences": combined.to_dict(),
        },
        status_code=201,
        headers={"Location": f"{base_url(request)}/collections/{entry.id}"},
    )


def _store_derived(
    store: Store,
    frame: Any,
    *,
    layer_id: str,
    work: Path,
    **details: Any,
) -> LayerEntry:
    """Write ``frame`` (EPSG:4326) as a new layer through the same ingest an upload uses
    (one version, written whole or not at all)."""
    import pyogrio

    from landexplorer.layers.ingest import IngestOptions, ingest

    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".derived-", dir=work) as folder:
        path = Path(folder) / f"{layer_id}.gpkg"
        frame = frame.rename(columns={c: f"{c}_" for c in frame.columns if c.lower() == "fid"})
        pyogrio.write_dataframe(frame, path, layer=layer_id, driver="GPKG")
        options = IngestOptions(id=layer_id, kind="community", **details)
        (entry, *_) = ingest(store, path, options)
    return entry
