"""``/collections``, ``/collections/{id}``, its queryables and its schema."""

from __future__ import annotations

from fastapi import APIRouter, Request

from landexplorer.access.policy import can
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

router = APIRouter(tags=["Collections"])


@get_and_head(router, "/collections", summary="The collections")
def list_collections(request: Request, store: StoreDep, actor: Anyone) -> JSONResponse:
    """Every layer the caller may see (anonymous callers: public, licensed layers)."""
    root = base_url(request)
    seen = [e for e in store.list_layers() if can(actor, "view", e)]
    return JSONResponse(
        {
            "links": [{"rel": "self", "type": JSON, "href": f"{root}/collections"}],
            "collections": [collection_doc(e, root) for e in seen],
        },
        headers=private_unless_public(*seen),
    )


@get_and_head(router, "/collections/{collectionId}", summary="One collection")
def get_collection(request: Request, entry: Collection) -> JSONResponse:
    """A collection's description: extent, CRS, links to items, queryables and licence."""
    return JSONResponse(
        collection_doc(entry, base_url(request)), headers=private_unless_public(entry)
    )


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
