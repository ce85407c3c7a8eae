"""``/collections/{id}/items`` and ``/collections/{id}/items/{featureId}`` (OGC API - Features)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request
from fastapi import Query as QueryParam
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from landexplorer.api import geojson
from landexplorer.api.caching import cache_headers, etag_for, not_modified
from landexplorer.api.crs import normalize
from landexplorer.api.deps import StoreDep, VectorCollection
from landexplorer.api.errors import ApiError
from landexplorer.api.metadata import GEOJSON, JSON, licence_links, licence_members
from landexplorer.api.params import ItemsParams, ItemsRequest
from landexplorer.api.routers.history import as_of_response, feature_as_of
from landexplorer.api.routers.landing import base_url, self_url
from landexplorer.api.routing import get_and_head
from landexplorer.catalog import LayerEntry, Query, Store, VersionChanged
from landexplorer.catalog.editing import feature_etag, states_of
from landexplorer.errors import StoreBusy

router = APIRouter(tags=["Features"])


def media_type(request: Request) -> str:
    """``f=json`` / ``f=geojson`` or the Accept header; GeoJSON when nothing is asked."""
    f = request.query_params.get("f")
    if f in ("json", "application/json"):
        return JSON
    if f in ("geojson", "application/geo+json"):
        return GEOJSON
    if f is not None:
        raise ApiError(400, "bad-request", f"f='{f}' is not offered here; use f=geojson or f=json.")
    accept = request.headers.get("accept", "")
    if "application/geo+json" in accept or "application/json" not in accept:
        return GEOJSON
    return JSON


def _page_link(request: Request, rel: str, offset: int, media: str) -> dict[str, Any]:
    params = dict(request.query_params)
    params["offset"] = str(offset)
    href = f"{base_url(request)}{request.url.path}?{urlencode(params)}"
    return {"rel": rel, "type": media, "href": href}


@get_and_head(
    router,
    "/collections/{collectionId}/items",
    summary="Features of a collection",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}, JSON: {}}}},
)
async def items(
    request: Request,
    entry: VectorCollection,
    store: StoreDep,
    p: ItemsParams,
    as_of: Annotated[
        str | None,
        QueryParam(
            alias="asOf",
            max_length=40,
            description="Read the layer as it was at this time (ISO 8601, e.g. "
            "2026-12-01T09:30:00Z; UTC unless a zone is given), back to its last replace.",
        ),
    ] = None,
) -> Response:
    """Features filtered by bbox, CQL2 and property values, a page at a time."""
    media = media_type(request)
    if as_of is not None:  # edits undone back to that time (routers/history.py)
        return await as_of_response(request, entry, store, p, media, as_of)
    etag = etag_for(entry, request, media)
    cached = not_modified(request, etag)
    if cached is not None:
        cached.headers.update(cache_headers(entry, etag))  # private for a layer not public
        return cached
    # Even a small page can cost seconds (a complex filter over a big layer): every read
    # runs in the worker pool, never on the event loop.
    for _ in range(3):
        try:
            return await run_in_threadpool(_items_page, request, entry, store, p, media, etag)
        except VersionChanged:
            # replaced between the page and its count: read the new version whole
            entry = await run_in_threadpool(store.get, entry.id)
            etag = etag_for(entry, request, media)
    raise StoreBusy("This layer is being replaced right now. Please try again in a moment.")


def _items_page(
    request: Request, entry: LayerEntry, store: Store, p: ItemsRequest, media: str, etag: str
) -> Response:
    # page and count both read the version in ``entry``: never a mix of two versions
    table = store.read_arrow(entry, p.query)
    returned = table.num_rows
    if p.offset == 0 and returned < p.limit:
        matched = returned  # everything fitted in the first page: no count needed
    else:
        matched = store.count(entry, Query(bbox=p.query.bbox, filters=p.query.filters))
    self_link = {"rel": "self", "type": media, "href": self_url(request)}
    links = [self_link]
    if p.offset + returned < matched:
        links.append(_page_link(request, "next", p.offset + p.limit, media))
    if p.offset > 0:
        links.append(_page_link(request, "prev", max(0, p.offset - p.limit), media))
    links += licence_links(entry)
    body = geojson.feature_collection(
        table,
        crs_uri=p.crs,
        extra={
            "numberMatched": matched,
            "numberReturned": returned,
            "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **licence_members(entry),
        },
        links=links,
    )
    headers = cache_headers(entry, etag)
    headers["Content-Crs"] = f"<{p.crs}>"
    return Response(body, media_type=media, headers=headers)


@get_and_head(
    router,
    "/collections/{collectionId}/items/{featureId}",
    summary="One feature",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}, JSON: {}}}},
)
def item(
    request: Request,
    entry: VectorCollection,
    store: StoreDep,
    raw: Annotated[str, Path(alias="featureId", max_length=200)],
    crs: str | None = None,
    as_of: Annotated[
        str | None,
        QueryParam(alias="asOf", max_length=40, description="The feature as it was then."),
    ] = None,
) -> Response:
    """One feature by its id."""
    media = media_type(request)
    uri = normalize(crs)
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # '²' is a digit to Python
        raise ApiError(404, "not-found", f"There is no feature with that id in '{entry.id}'.")
    if as_of is not None:  # its edits since undone (routers/history.py)
        return feature_as_of(request, entry, store, int(raw), uri, media, as_of)
    table = store.read_arrow(entry.id, Query(fids=[int(raw)]))
    if table.num_rows == 0:
        raise ApiError(404, "not-found", f"There is no feature {raw} in '{entry.id}'.")
    # the feature's own version (what If-Match names to change it), per representation
    etag = feature_etag(entry, int(raw), states_of(table)[int(raw)], uri, media)
    cached = not_modified(request, etag)
    if cached is not None:
        cached.headers.update(cache_headers(entry, etag))  # private for a layer not public
        return cached
    root = base_url(request)
    links = [
        {"rel": "self", "type": media, "href": self_url(request)},
        {"rel": "collection", "type": JSON, "href": f"{root}/collections/{entry.id}"},
        {"rel": "version-history", "type": JSON, "href": f"{root}{request.url.path}/history"},
        *licence_links(entry),
    ]
    body = geojson.feature(table, crs_uri=uri, extra={"links": links, **licence_members(entry)})
    headers = cache_headers(entry, etag)
    headers["Content-Crs"] = f"<{uri}>"
    return Response(body, media_type=media, headers=headers)
