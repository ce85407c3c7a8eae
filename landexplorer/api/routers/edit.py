"""Editing features (OGC API - Features Part 4): create, replace, update, delete, revert.

``POST /collections/{id}/items`` adds a feature (201, ``Location``); ``PUT``, ``PATCH``
(a JSON merge patch of ``properties`` and/or ``geometry``) and ``DELETE`` on
``/collections/{id}/items/{featureId}`` change one; ``POST .../{featureId}/revert``
puts it back as it was after an earlier change. Who may: the policy's ``edit``
(``EditCollection``). Each is one transaction in the store (``catalog.editing``),
recorded in the layer's history and in the audit log.

Nobody overwrites a change they never saw: a change of an existing feature needs the
``ETag`` it was read with as ``If-Match`` (428 without it); a stale one is refused with
412 and the feature as it is now. Bodies are sized before they are parsed and checked
against the layer's columns and geometry type; a refused request changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from landexplorer.api.auth import access_of, actor_of
from landexplorer.api.deps import EditCollection, settings_of, store_of
from landexplorer.api.errors import ApiError, error_body
from landexplorer.api.feeds import edited
from landexplorer.api.metadata import GEOJSON, JSON
from landexplorer.api.refusals import refusals
from landexplorer.api.routers.landing import base_url
from landexplorer.catalog import LayerEntry, Store
from landexplorer.catalog import history as hist
from landexplorer.catalog.editing import (
    Edit,
    EditResult,
    FeatureChanged,
    FeatureState,
    check_geometry,
    check_properties,
    full_properties,
)
from landexplorer.errors import InputError, TooLarge

router = APIRouter(tags=["Editing features"])

FEATURE_PATH = "/collections/{collectionId}/items/{featureId}"
_MERGE_PATCH = "application/merge-patch+json"
_FEATURE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A GeoJSON Feature: its geometry (of the layer's geometry type) and its "
    "properties (the layer's columns, each of its type).",
    "required": ["type", "geometry"],
    "properties": {
        "type": {"const": "Feature"},
        "geometry": {"type": "object"},
        "properties": {"type": ["object", "null"]},
    },
}
_PATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A JSON merge patch (RFC 7396) of the feature: the properties to change "
    "(null empties one) and/or a new geometry.",
    "properties": {"properties": {"type": "object"}, "geometry": {"type": "object"}},
}


def _body(schema: dict[str, Any], *media: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {m: {"schema": schema} for m in media}}}


_FEATURE_ANSWER = {"content": {GEOJSON: {"schema": {"$ref": "#/components/schemas/Feature"}}}}
_ETAG_HEADER = {
    "ETag": {"description": "The feature's version.", "schema": {"type": "string"}},
    "Landexplorer-Change-Id": {
        "description": "The change this edit made: its id in the layer's /changes and live feed.",
        "schema": {"type": "string"},
    },
}
#: What an edit can answer besides its success (statuses the document's rules add too).
_REFUSED = refusals(400, 403, 404, 412, 428)
_REFUSED[412]["description"] = (
    "The feature changed since you read it: the body holds it as it is now ('feature'), "
    "the ETag header its version."
)
_REFUSED[428]["description"] = "Changing a feature needs the ETag you read it with, as If-Match."

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=400,
        description="The ETag of the feature as you read it (required to change or delete "
        "an existing feature).",
    ),
]
FeatureId = Annotated[str, Path(alias="featureId", max_length=200)]


# ----- reading the request ----------------------------------------------------------------
async def read_json(request: Request) -> Any:
    """The request's JSON body, refused (413) past ``max_json_kb`` before it is all read."""
    limit = settings_of(request).max_json_kb * 1024
    too_large = TooLarge(
        f"The feature is larger than this server accepts in one request "
        f"({limit // 1024:,} KB). Simplify its outline, or split it into several features."
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    if not size:
        raise InputError("The request has no body: send the feature as GeoJSON.")
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise InputError("The body is not JSON: send the feature as GeoJSON.") from None


def feature_id(entry: LayerEntry, raw: str) -> int:
    """A path's feature id as a number, or 404 (ids are whole numbers here)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ApiError(404, "not-found", f"There is no feature {raw[:40]} in '{entry.id}'.")
    return int(raw)


def _vector(entry: LayerEntry) -> LayerEntry:
    if entry.data_type != "vector":
        raise ApiError(
            404, "not-found", f"'{entry.id}' is a raster layer: it has no features to edit."
        )
    return entry


def _geometry(request: Request, entry: LayerEntry, given: Any) -> bytes:
    settings = settings_of(request)
    return check_geometry(entry, given, settings.max_geojson_vertices, settings.max_geojson_parts)


def _feature_body(entry: LayerEntry, body: Any, fid: int | None = None) -> dict[str, Any]:
    """A GeoJSON Feature from the body: its properties checked (its geometry by the caller)."""
    if not isinstance(body, dict) or body.get("type") != "Feature":
        raise InputError(
            'Send one GeoJSON Feature: an object with "type": "Feature", a "geometry" '
            'and its "properties".'
        )
    given_id = body.get("id")
    if fid is not None and given_id is not None and str(given_id) != str(fid):
        raise InputError(
            f"The body is feature {str(given_id)[:40]} but the address is feature {fid}: "
            "a feature's id cannot be changed."
        )
    return check_properties(entry, body.get("properties"))


def require_if_match(entry: LayerEntry, fid: int, if_match: str | None) -> str:
    if if_match is None or not if_match.strip():
        raise ApiError(
            428,
            "if-match-required",
            f"To change feature {fid} of '{entry.id}', send the ETag you read it with as "
            "the If-Match header (GET the feature first), so that no change made meanwhile "
            "by someone else is overwritten.",
        )
    return if_match


# ----- answering -----------------------------------------------------------------------------
#: The header an accepted edit's answer names its change in: the same number as the
#: ``id:`` of its event in the layer's live feed, and its row in ``/changes``.
CHANGE_HEADER = "Landexplorer-Change-Id"


def feature_response(
    request: Request,
    entry: LayerEntry,
    fid: int,
    state: FeatureState,
    etag: str,
    status: int,
    change_id: int | None = None,
) -> Response:
    root = base_url(request)
    doc = state.geojson(fid)
    doc["links"] = [
        {"rel": "self", "type": GEOJSON, "href": f"{root}/collections/{entry.id}/items/{fid}"},
        {"rel": "collection", "type": JSON, "href": f"{root}/collections/{entry.id}"},
        {
            "rel": "version-history",
            "type": JSON,
            "href": f"{root}/collections/{entry.id}/items/{fid}/history",
        },
    ]
    headers = {"ETag": etag, "Cache-Control": "no-store"}
    if change_id:
        headers[CHANGE_HEADER] = str(change_id)
    if status == 201:
        headers["Location"] = f"{root}/collections/{entry.id}/items/{fid}"
    return Response(orjson.dumps(doc), status_code=status, media_type=GEOJSON, headers=headers)


def changed_response(entry: LayerEntry, exc: FeatureChanged) -> Response:
    """412: the feature as it is now, so the client can show both versions."""
    body: dict[str, Any]
    if exc.current is None:
        body = dict(
            error_body(
                "changed",
                f"Feature {exc.fid} of '{entry.id}' was deleted since you read it: nothing "
                "was changed.",
            )
        )
        body["feature"] = None
        return Response(orjson.dumps(body), status_code=412, media_type=JSON)
    body = dict(
        error_body(
            "changed",
            f"Feature {exc.fid} of '{entry.id}' was changed by someone else since you read it, "
            "so your change was not made. Its current version is in 'feature' (and its ETag "
            "in the ETag header): look at it, then send your change again with that ETag.",
        )
    )
    body["feature"] = exc.current.geojson(exc.fid)
    headers = {"ETag": exc.etag or "", "Cache-Control": "no-store"}
    return Response(orjson.dumps(body), status_code=412, media_type=JSON, headers=headers)


async def run_edit(request: Request, entry: LayerEntry, edit: Edit) -> EditResult | Response:
    """Apply ``edit`` in the worker pool; a stale If-Match is the 412 answer."""
    actor = actor_of(request)
    edit.actor = actor.label()
    edit.storage = entry.storage  # the version its body was checked against
    store: Store = store_of(request)
    try:
        result: EditResult = await run_in_threadpool(store.edit_feature, entry.id, edit)
    except FeatureChanged as exc:
        return changed_response(entry, exc)
    edited(request.app)  # live feeds of this process read the history now
    # a layer with low-zoom tiles made ahead gets them made again when the edits pause
    request.app.state.jobs.refresh_pyramid(store, entry.id)
    await run_in_threadpool(
        access_of(request).audit,
        actor,
        f"feature {edit.operation}",
        entry.id,
        result.entry.version,
        feature=result.fid,
        change=result.change_id,
        **edit.detail,
    )
    return result


def _answer(
    request: Request, entry: LayerEntry, result: EditResult | Response, status: int = 200
) -> Response:
    if isinstance(result, Response):
        return result
    if result.state is None or result.etag is None:
        headers = {"Cache-Control": "no-store", CHANGE_HEADER: str(result.change_id)}
        return Response(status_code=204, headers=headers)
    return feature_response(
        request, result.entry, result.fid, result.state, result.etag, status, result.change_id
    )


# ----- the routes ----------------------------------------------------------------------------
@router.post(
    "/collections/{collectionId}/items",
    status_code=201,
    summary="Add a feature",
    operation_id="createFeature",
    response_class=Response,
    responses={201: {**_FEATURE_ANSWER, "headers": _ETAG_HEADER}, **refusals(400, 403, 404)},
    openapi_extra=_body(_FEATURE_SCHEMA, GEOJSON, JSON),
)
async def create_feature(request: Request, entry: EditCollection) -> Response:
    """Add one feature (a GeoJSON Feature) to a layer you may change. The answer is the
    stored feature, its address in ``Location`` and its ``ETag``."""
    _vector(entry)
    body = await read_json(request)
    properties = _feature_body(entry, body)
    wkb = _geometry(request, entry, body.get("geometry"))

    def make(current: FeatureState | None) -> FeatureState:
        return FeatureState(full_properties(entry, properties, current), wkb)

    result = await run_edit(request, entry, Edit("create", make, must_exist=False))
    return _answer(request, entry, result, 201)


@router.put(
    FEATURE_PATH,
    summary="Replace a feature",
    operation_id="replaceFeature",
    response_class=Response,
    responses={200: {**_FEATURE_ANSWER, "headers": _ETAG_HEADER}, **_REFUSED},
    openapi_extra=_body(_FEATURE_SCHEMA, GEOJSON, JSON),
)
async def replace_feature(
    request: Request, entry: EditCollection, raw: FeatureId, if_match: IfMatch = None
) -> Response:
    """Replace a feature whole: its geometry and every property (a column left out
    becomes empty). Needs ``If-Match``."""
    _vector(entry)
    fid = feature_id(entry, raw)
    tag = require_if_match(entry, fid, if_match)
    body = await read_json(request)
    properties = _feature_body(entry, body, fid)
    wkb = _geometry(request, entry, body.get("geometry"))

    def make(current: FeatureState | None) -> FeatureState:
        return FeatureState(full_properties(entry, properties, current), wkb)

    result = await run_edit(request, entry, Edit("replace", make, fid=fid, if_match=tag))
    return _answer(request, entry, result)


@router.patch(
    FEATURE_PATH,
    summary="Change some of a feature",
    operation_id="updateFeature",
    response_class=Response,
    responses={200: {**_FEATURE_ANSWER, "headers": _ETAG_HEADER}, **_REFUSED},
    openapi_extra=_body(_PATCH_SCHEMA, _MERGE_PATCH, JSON),
)
async def update_feature(
    request: Request, entry: EditCollection, raw: FeatureId, if_match: IfMatch = None
) -> Response:
    """A JSON merge patch (RFC 7396): the properties given are changed (null empties
    one), the others kept; a geometry given replaces the old one. Needs ``If-Match``."""
    _vector(entry)
    fid = feature_id(entry, raw)
    tag = require_if_match(entry, fid, if_match)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InputError("Send a JSON object: the 'properties' to change and/or a 'geometry'.")
    unknown = sorted(set(body) - {"type", "id", "properties", "geometry", "links", "bbox"})
    if unknown:
        raise InputError(
            f"A feature has no member '{unknown[0][:40]}': change its 'properties' or its "
            "'geometry'."
        )
    if body.get("id") is not None and str(body["id"]) != str(fid):
        raise InputError("A feature's id cannot be changed.")
    if "properties" in body and body["properties"] is None:
        raise InputError("'properties' must be an object of the columns to change.")
    changes = check_properties(entry, body.get("properties"))
    wkb = _geometry(request, entry, body["geometry"]) if "geometry" in body else None
    if not changes and wkb is None:
        raise InputError("The patch changes nothing: give 'properties' to change or a 'geometry'.")

    def make(current: FeatureState | None) -> FeatureState:
        assert current is not None  # must_exist
        return FeatureState({**current.properties, **changes}, wkb or current.wkb)

    result = await run_edit(request, entry, Edit("update", make, fid=fid, if_match=tag))
    return _answer(request, entry, result)


@router.delete(
    FEATURE_PATH,
    status_code=204,
    summary="Delete a feature",
    operation_id="deleteFeature",
    response_class=Response,
    responses={204: {"description": "Deleted."}, **_REFUSED},
)
async def delete_feature(
    request: Request, entry: EditCollection, raw: FeatureId, if_match: IfMatch = None
) -> Response:
    """Delete a feature (its history stays, and a revert can bring it back). Needs
    ``If-Match``."""
    _vector(entry)
    fid = feature_id(entry, raw)
    tag = require_if_match(entry, fid, if_match)
    result = await run_edit(request, entry, Edit("delete", lambda _: None, fid=fid, if_match=tag))
    return _answer(request, entry, result)


@router.post(
    FEATURE_PATH + "/revert",
    summary="Put a feature back as it was",
    operation_id="revertFeature",
    response_class=Response,
    responses={
        200: {**_FEATURE_ANSWER, "headers": _ETAG_HEADER},
        204: {"description": "Reverted to deleted."},
        **_REFUSED,
    },
    openapi_extra=_body(
        {
            "type": "object",
            "required": ["change"],
            "properties": {"change": {"type": "integer", "minimum": 1}},
            "description": "The id of the change (from the feature's history) whose result "
            "to go back to.",
        },
        JSON,
    ),
)
async def revert_feature(
    request: Request, entry: EditCollection, raw: FeatureId, if_match: IfMatch = None
) -> Response:
    """Put the feature back as it was right after one of its earlier changes (``change``,
    an id from its history); itself a recorded change. Needs ``If-Match`` unless the
    feature is deleted now."""
    _vector(entry)
    fid = feature_id(entry, raw)
    body = await read_json(request)
    change_id = body.get("change") if isinstance(body, dict) else None
    if isinstance(change_id, bool) or not isinstance(change_id, int) or change_id < 1:
        raise InputError('Send {"change": <id>}: the id of a change in the feature\'s history.')
    store: Store = store_of(request)
    born = hist.parse_time(entry.created) if entry.created else None
    found = await run_in_threadpool(
        lambda: store.history(entry.id, feature_id=fid, after=change_id - 1, limit=1, since=born)
    )
    if not found or found[0].id != change_id or found[0].feature_id != fid:
        raise ApiError(
            404, "not-found", f"Feature {fid} of '{entry.id}' has no change {change_id}."
        )
    target = found[0].after
    later_replace = await run_in_threadpool(
        store.history, entry.id, feature_id=fid, after=change_id, limit=1_000_000
    )
    if any(c.feature_id is None for c in later_replace):
        raise InputError(
            f"'{entry.id}' was replaced from a file after change {change_id}, so feature "
            f"{fid} is now another feature: a revert cannot reach past the replace."
        )

    def make(current: FeatureState | None) -> FeatureState | None:
        if target is None:
            return None
        return FeatureState(full_properties(entry, target.properties, current), target.wkb)

    tag = if_match.strip() if if_match and if_match.strip() else None
    edit = Edit(
        "revert", make, fid=fid, if_match=tag, must_exist=False,
        detail={"revertedTo": change_id},
    )  # fmt: skip
    current = await run_in_threadpool(_current_state, store, entry, fid)
    if current is not None and tag is None:
        require_if_match(entry, fid, None)
    result = await run_edit(request, entry, edit)
    return _answer(request, entry, result)


def _current_state(store: Store, entry: LayerEntry, fid: int) -> FeatureState | None:
    from landexplorer.catalog import Query
    from landexplorer.catalog.editing import states_of

    return states_of(store.read_arrow(entry.id, Query(fids=[fid]))).get(fid)
