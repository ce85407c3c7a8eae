"""The history of a layer's features: one feature's changes, the layer's change list a
page at a time, and the layer as it was at a time (``items?asOf=``).

Who may read it: whoever may see the layer. Who made each change is named to those who
may change the layer (its owner, its group's stewards and contributors who own it,
admins); everyone else reads "someone".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from landexplorer.access.policy import decide
from landexplorer.api import geojson
from landexplorer.api.auth import actor_of
from landexplorer.api.deps import StoreDep, VectorCollection, private_unless_public
from landexplorer.api.errors import ApiError
from landexplorer.api.metadata import JSON, licence_links, licence_members
from landexplorer.api.params import ItemsRequest
from landexplorer.api.refusals import refusals
from landexplorer.api.routers.edit import FeatureId, feature_id
from landexplorer.api.routers.landing import base_url, self_url
from landexplorer.api.routing import get_and_head
from landexplorer.catalog import LayerEntry, Store
from landexplorer.catalog import Query as StoreQuery
from landexplorer.catalog import history as hist
from landexplorer.catalog.editing import states_of
from landexplorer.errors import InputError

router = APIRouter(tags=["Editing features"])

#: The items parameter that reads a layer as it was at a time.
AS_OF = "asOf"
#: How far into a layer an ``asOf`` read pages (it merges the history with the layer).
MAX_AS_OF_OFFSET = 10_000

_CHANGES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["changes", "links"],
    "properties": {"changes": {"type": "array"}, "links": {"type": "array"}},
}


def born(entry: LayerEntry) -> str | None:
    """When the layer was first made: older rows of its id are of a layer deleted before."""
    return hist.parse_time(entry.created) if entry.created else None


def _shows_names(request: Request, entry: LayerEntry) -> bool:
    return decide(actor_of(request), "edit", entry).allowed


def _json(doc: dict[str, Any], entry: LayerEntry) -> Response:
    headers = {"Cache-Control": "no-cache", **private_unless_public(entry)}
    return Response(orjson.dumps(doc), media_type=JSON, headers=headers)


@get_and_head(
    router,
    "/collections/{collectionId}/items/{featureId}/history",
    summary="A feature's history",
    operation_id="getFeatureHistory",
    response_class=Response,
    responses={200: {"content": {JSON: {"schema": _CHANGES_SCHEMA}}}, **refusals(400, 404)},
)
def feature_history(
    request: Request,
    entry: VectorCollection,
    store: StoreDep,
    raw: FeatureId,
    limit: Annotated[int, Query(ge=1, le=hist.MAX_PAGE)] = 100,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Response:
    """Every change of one feature, oldest first (who, when, what it was before and
    after), with the layer's replaces from a file among them. A feature deleted since
    still has its history."""
    fid = feature_id(entry, raw)
    changes = store.history(
        entry.id, feature_id=fid, after=after, limit=limit + 1, since=born(entry)
    )
    exists = store.count(entry.id, StoreQuery(fids=[fid])) > 0
    if not exists and not any(c.feature_id == fid for c in changes) and after == 0:
        raise ApiError(404, "not-found", f"There is no feature {fid} in '{entry.id}'.")
    return _json(_page(request, entry, changes, limit, {"featureId": fid}), entry)


@get_and_head(
    router,
    "/collections/{collectionId}/changes",
    summary="A layer's changes",
    operation_id="getChanges",
    response_class=Response,
    responses={200: {"content": {JSON: {"schema": _CHANGES_SCHEMA}}}, **refusals(400, 404)},
)
def layer_changes(
    request: Request,
    entry: VectorCollection,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=hist.MAX_PAGE, description="Changes per page")] = 100,
    after: Annotated[
        int, Query(ge=0, le=2**62, description="Only changes after this change id (paging)")
    ] = 0,
) -> Response:
    """Every change to the layer's features, oldest first, a page at a time: follow the
    ``next`` link (or pass the last id seen as ``after``)."""
    changes = store.history(entry.id, after=after, limit=limit + 1, since=born(entry))
    return _json(_page(request, entry, changes, limit, {"layer": entry.id}), entry)


def _page(
    request: Request,
    entry: LayerEntry,
    changes: list[hist.Change],
    limit: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    names = _shows_names(request, entry)
    shown = changes[:limit]
    links = [{"rel": "self", "type": JSON, "href": self_url(request)}]
    if len(changes) > limit:
        params = dict(request.query_params)
        params.update(after=str(shown[-1].id), limit=str(limit))
        href = f"{base_url(request)}{request.url.path}?{urlencode(params)}"
        links.append({"rel": "next", "type": JSON, "href": href})
    return {**extra, "changes": [c.to_doc(names) for c in shown], "links": links}


# ----- the layer as it was at a time ----------------------------------------------------------
def items_as_of(
    request: Request, entry: LayerEntry, store: Store, p: ItemsRequest, media: str, text: str
) -> Response:
    """``/items?asOf=<time>``: the layer's features as they were at that time (the current
    features with every change made since undone), filtered by ``bbox`` and paged."""
    when = _when(entry, text)
    if p.query.filters:
        raise InputError(
            f"{AS_OF} reads the layer as it was; it cannot be combined with a filter or "
            "property values yet. Ask with bbox and paging only."
        )
    if p.offset > MAX_AS_OF_OFFSET:
        raise InputError(f"With {AS_OF}, pages reach {MAX_AS_OF_OFFSET:,} features in at most.")
    since = store.history(entry.id, limit=1_000_000, since=when)
    _not_past_a_replace(entry, since)
    then = hist.states_then(since)
    bbox = p.query.bbox
    window = p.offset + p.limit + len(then)
    current = states_of(store.read_arrow(entry.id, StoreQuery(bbox=bbox, limit=window)))
    merged = {fid: s for fid, s in current.items() if fid not in then}
    merged.update({fid: s for fid, s in then.items() if s is not None and hist.in_bbox(s, bbox)})
    matched = (
        store.count(entry.id, StoreQuery(bbox=bbox))
        - sum(1 for fid in then if fid in _matching(store, entry, then, bbox))
        + sum(1 for s in then.values() if s is not None and hist.in_bbox(s, bbox))
    )
    page = dict(sorted(merged.items())[p.offset : p.offset + p.limit])
    table = hist.table_of(entry, page)
    links = [{"rel": "self", "type": media, "href": self_url(request)}, *licence_links(entry)]
    body = geojson.feature_collection(
        table,
        crs_uri=p.crs,
        extra={
            "numberMatched": matched,
            "numberReturned": table.num_rows,
            "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            AS_OF: when,
            **licence_members(entry),
        },
        links=links,
    )
    headers = {"Cache-Control": "no-cache", "Content-Crs": f"<{p.crs}>"}
    headers.update(private_unless_public(entry))
    return Response(body, media_type=media, headers=headers)


def feature_as_of(
    request: Request, entry: LayerEntry, store: Store, fid: int, crs_uri: str, media: str, text: str
) -> Response:
    """``/items/{featureId}?asOf=<time>``: one feature as it was at that time."""
    when = _when(entry, text)
    since = store.history(entry.id, feature_id=fid, limit=1_000_000, since=when)
    _not_past_a_replace(entry, since)
    then = hist.states_then(since)
    if fid in then:
        state = then[fid]
    else:
        state = states_of(store.read_arrow(entry.id, StoreQuery(fids=[fid]))).get(fid)
    if state is None:
        raise ApiError(404, "not-found", f"Feature {fid} of '{entry.id}' was not there then.")
    root = base_url(request)
    links = [
        {"rel": "self", "type": media, "href": self_url(request)},
        {"rel": "version-history", "type": JSON,
         "href": f"{root}/collections/{entry.id}/items/{fid}/history"},
        *licence_links(entry),
    ]  # fmt: skip
    body = geojson.feature(
        hist.table_of(entry, {fid: state}),
        crs_uri=crs_uri,
        extra={"links": links, AS_OF: when, **licence_members(entry)},
    )
    headers = {"Cache-Control": "no-cache", "Content-Crs": f"<{crs_uri}>"}
    headers.update(private_unless_public(entry))
    return Response(body, media_type=media, headers=headers)


def _when(entry: LayerEntry, text: str) -> str:
    """An ``asOf`` time, refused before the layer was made."""
    when = hist.parse_time(text)
    if entry.created and when < hist.parse_time(entry.created):
        raise InputError(f"'{entry.id}' did not exist yet at {text[:40]}.")
    return when


def _not_past_a_replace(entry: LayerEntry, since: list[hist.Change]) -> None:
    replaced = hist.last_replace(since)
    if replaced is not None:
        raise InputError(
            f"'{entry.id}' was replaced from a file at {replaced.at}: {AS_OF} reaches back "
            "to then, not before."
        )


def _matching(store: Store, entry: LayerEntry, then: dict[int, Any], bbox: Any) -> set[int]:
    """Which of the touched features are in the layer now and meet ``bbox``."""
    if not then:
        return set()
    found = store.read_arrow(entry.id, StoreQuery(bbox=bbox, fids=list(then), columns=[]))
    return {int(f) for f in found.column("fid").to_pylist()}


async def as_of_response(
    request: Request, entry: LayerEntry, store: Store, p: ItemsRequest, media: str, text: str
) -> Response:
    """``items_as_of`` in the worker pool."""
    return await run_in_threadpool(items_as_of, request, entry, store, p, media, text)
