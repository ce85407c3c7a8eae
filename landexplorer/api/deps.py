"""Typed dependencies: the store and settings, who is asking, and ``{collectionId}`` -> entry.

Ids become catalogue entries here, at the edge: a route never handles a raw layer name.
An id that is not a valid layer id, unknown, or not visible to the caller is a 404
(hidden and unlicensed layers are not revealed to anonymous callers).
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated

from fastapi import Depends, Path, Request

from landexplorer.api.errors import ApiError
from landexplorer.catalog import LayerEntry, Store
from landexplorer.errors import LayerNotFound, PermissionDenied
from landexplorer.settings import Settings

_ID = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


def settings_of(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def store_of(request: Request) -> Store:
    """The app's store (built once by ``create_app``)."""
    store: Store = request.app.state.store
    return store


# Dependencies are async on purpose: FastAPI runs sync dependencies in the thread pool,
# one hop each, which costs more than these lookups themselves.
async def get_settings(request: Request) -> Settings:
    """The app's settings (dependency)."""
    return settings_of(request)


async def get_store(request: Request) -> Store:
    """The app's store (dependency)."""
    return store_of(request)


def is_writer(request: Request) -> bool:
    """Does the request carry the write token from the settings?"""
    token = settings_of(request).write_token
    header = request.headers.get("authorization", "")
    if not token or not header.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def require_writer(request: Request) -> None:
    """Refuse a write without the bearer token."""
    if not settings_of(request).write_token:
        raise PermissionDenied(
            "Changing layers over the web is switched off on this server "
            "(no write token is configured)."
        )
    if not is_writer(request):
        raise PermissionDenied(
            "Changing layers needs the access token: send it as 'Authorization: Bearer <token>'."
        )


def visible(entry: LayerEntry, request: Request) -> bool:
    """Anonymous callers see public, licensed layers; the token holder sees everything."""
    return entry.is_public or is_writer(request)


def not_found(collection_id: str) -> ApiError:
    shown = collection_id if _ID.match(collection_id) else "that name"
    return ApiError(404, "not-found", f"There is no collection called '{shown}'.")


async def get_collection(
    request: Request,
    collection_id: Annotated[str, Path(alias="collectionId", max_length=200)],
) -> LayerEntry:
    """The catalogue entry of ``{collectionId}`` or a 404."""
    if not _ID.match(collection_id):
        raise not_found(collection_id)
    try:
        entry = store_of(request).get(collection_id)
    except LayerNotFound:
        raise not_found(collection_id) from None
    if not visible(entry, request):
        raise not_found(collection_id)
    return entry


async def get_vector_collection(
    entry: Annotated[LayerEntry, Depends(get_collection)],
) -> LayerEntry:
    """A collection that has features (raster layers have tiles only)."""
    if entry.data_type != "vector":
        raise ApiError(
            404, "not-found", f"'{entry.id}' is a raster layer: it has tiles but no features."
        )
    return entry


Collection = Annotated[LayerEntry, Depends(get_collection)]
VectorCollection = Annotated[LayerEntry, Depends(get_vector_collection)]
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
