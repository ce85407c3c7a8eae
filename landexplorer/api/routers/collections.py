"""``/collections``, ``/collections/{id}``, its queryables and its schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from landexplorer.access.model import Actor
from landexplorer.access.policy import can
from landexplorer.api.auth import actor_of
from landexplorer.api.deps import (
    Anyone,
    Collection,
    StoreDep,
    VectorCollection,
    private_unless_public,
)
from landexplorer.api.metadata import JSON, SCHEMA_JSON, collection_doc, json_schema
from landexplorer.api.responses import JSONResponse
from landexplorer.api.routers.landing import base_url
from landexplorer.api.routing import get_and_head
from landexplorer.catalog import LayerEntry

router = APIRouter(tags=["Collections"])


@get_and_head(router, "/collections", summary="The collections")
def list_collections(request: Request, store: StoreDep, actor: Anyone) -> JSONResponse:
    """Every layer the caller may see (anonymous callers: public, licensed layers)."""
    root = base_url(request)
    seen = [e for e in store.list_layers() if can(actor, "view", e)]
    docs = [_with_may_change(collection_doc(e, root), actor, e) for e in seen]
    return JSONResponse(
        {
            "links": [{"rel": "self", "type": JSON, "href": f"{root}/collections"}],
            "collections": docs,
        },
        headers=_headers(seen, docs),
    )


def _with_may_change(doc: dict[str, Any], actor: Actor, entry: LayerEntry) -> dict[str, Any]:
    """``mayChange``: whether the caller may edit the layer's features (the policy's
    ``edit``), so the web page offers its editing tools only where a save would be
    accepted. The edit routes still ask the policy themselves."""
    doc["mayChange"] = entry.data_type == "vector" and can(actor, "edit", entry)
    return doc


def _headers(entries: list[LayerEntry], docs: list[dict[str, Any]]) -> dict[str, str]:
    """An answer that says this caller may change a layer is theirs alone: never kept by a
    shared cache for the next visitor, even when every layer in it is public."""
    if any(d.get("mayChange") for d in docs):
        return {"Cache-Control": "private, no-cache"}
    return private_unless_public(*entries)


@get_and_head(router, "/collections/{collectionId}", summary="One collection")
def get_collection(request: Request, entry: Collection) -> JSONResponse:
    """A collection's description: extent, CRS, links to items, queryables and licence."""
    doc = _with_may_change(collection_doc(entry, base_url(request)), actor_of(request), entry)
    return JSONResponse(doc, headers=_headers([entry], [doc]))


@get_and_head(
    router,
    "/collections/{collectionId}/queryables",
    summary="Properties usable in filters",
)
def queryables(request: Request, entry: VectorCollection) -> JSONResponse:
    """The collection's queryables as JSON Schema (OGC API - Features Part 3)."""
    body = json_schema(entry, base_url(request), queryables=True)
    return JSONResponse(body, media_type=SCHEMA_JSON, headers=private_unless_public(entry))


@get_and_head(router, "/collections/{collectionId}/schema", summary="Feature schema")
def schema(request: Request, entry: VectorCollection) -> JSONResponse:
    """The schema of the collection's features as JSON Schema."""
    body = json_schema(entry, base_url(request), queryables=False)
    return JSONResponse(body, media_type=SCHEMA_JSON, headers=private_unless_public(entry))
