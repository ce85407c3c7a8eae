"""Typed dependencies: the store and settings, who is asking, and ``{collectionId}`` -> entry.

Ids become catalogue entries here, at the edge: a route never handles a raw layer name.
Every access decision is ``landexplorer.access.policy``'s: the dependencies below ask it
and turn its answer into HTTP. A layer the caller may not see is a 404, whether it exists
or not (private layers are not revealed); one they may see but not change is a 403.

Every route declares its access rule by depending on exactly one of the rule
dependencies (``RULES``): anyone, signed in, admin, or an action on the path's layer.
``rule_of(route)`` reads it back, and the permission matrix test fails for a route
without one.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from landexplorer.access.model import Actor
from landexplorer.access.policy import decide
from landexplorer.api.auth import actor_of
from landexplorer.api.errors import ApiError
from landexplorer.catalog import LayerEntry, Store
from landexplorer.errors import LayerNotFound
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


def sign_in_first(what: str = "This") -> ApiError:
    return ApiError(
        401,
        "not-signed-in",
        f"{what} needs signing in: sign in on the web page, or send a personal access "
        "token as 'Authorization: Bearer <token>'.",
        {"WWW-Authenticate": "Bearer"},
    )


def visible(entry: LayerEntry, request: Request) -> bool:
    """May the caller see this layer? (the policy's ``view``)."""
    return decide(actor_of(request), "view", entry).allowed


def not_found(collection_id: str) -> ApiError:
    shown = collection_id if _ID.match(collection_id) else "that name"
    return ApiError(404, "not-found", f"There is no collection called '{shown}'.")


def _lookup(request: Request, collection_id: str) -> LayerEntry:
    if not _ID.match(collection_id):
        raise not_found(collection_id)
    try:
        return store_of(request).get(collection_id)
    except LayerNotFound:
        raise not_found(collection_id) from None


_WORDS = {
    "download": "download",
    "edit": "edit",
    "change": "change",
    "manage": "manage who sees",
}


def allowed(request: Request, action: str, entry: LayerEntry) -> LayerEntry:
    """``entry`` when the caller may ``action`` it; else 404 (may not even see it), 401
    (not signed in, or a read-only token) or 403 (may see it but not do this)."""
    actor = actor_of(request)
    if action != "view" and not decide(actor, "view", entry).allowed:
        raise not_found(entry.id)
    decision = decide(actor, action, entry)
    if decision.allowed:
        return entry
    if action == "view":
        raise not_found(entry.id)
    if not actor.signed_in:
        raise sign_in_first(f"To {_WORDS.get(action, action)} '{entry.id}'")
    raise ApiError(
        403,
        "forbidden",
        f"You can see '{entry.id}' but not {_WORDS.get(action, action)} it: {decision.reason}. "
        "Ask the owner or a steward of its group.",
    )


def private_unless_public(*entries: LayerEntry) -> dict[str, str]:
    """Headers of an answer about ``entries``: none when every one is public; otherwise
    ``Cache-Control: private, no-cache``, so that no shared cache hands it to someone who
    may not see the layer (a request with a session cookie may be cached by a proxy)."""
    if all(entry.is_public for entry in entries):
        return {}
    return {"Cache-Control": "private, no-cache"}


# ---------------------------------------------------------------- rule dependencies
async def anyone(request: Request) -> Actor:
    """Rule: anyone may call this route (what it shows is still filtered by the policy)."""
    return actor_of(request)


async def signed_in(request: Request) -> Actor:
    """Rule: the caller must be signed in (a session or a token)."""
    actor = actor_of(request)
    if not actor.signed_in:
        raise sign_in_first()
    return actor


async def signed_in_writer(request: Request) -> Actor:
    """Rule: signed in with the right to change things (not a read-only token)."""
    actor = actor_of(request)
    if not actor.signed_in:
        raise sign_in_first()
    if not actor.may_write:
        raise ApiError(403, "forbidden", "A read-only token cannot change anything.")
    return actor


async def admin_only(request: Request) -> Actor:
    """Rule: site admins only."""
    actor = actor_of(request)
    if not actor.signed_in:
        raise sign_in_first()
    if not actor.admin:
        raise ApiError(403, "forbidden", "Only the site's admins may do this.")
    return actor


CollectionId = Annotated[str, Path(alias="collectionId", max_length=200)]


async def get_collection(request: Request, collection_id: CollectionId) -> LayerEntry:
    """Rule: view the path's layer. Its catalogue entry, or a 404."""
    return allowed(request, "view", _lookup(request, collection_id))


async def get_download_collection(request: Request, collection_id: CollectionId) -> LayerEntry:
    """Rule: download the path's layer (exports)."""
    return allowed(request, "download", _lookup(request, collection_id))


async def get_edit_collection(request: Request, collection_id: CollectionId) -> LayerEntry:
    """Rule: edit the path's layer's features (add, change, delete, revert one feature)."""
    return allowed(request, "edit", _lookup(request, collection_id))


async def get_change_collection(request: Request, collection_id: CollectionId) -> LayerEntry:
    """Rule: change the path's layer (a new version, its details)."""
    return allowed(request, "change", _lookup(request, collection_id))


async def get_manage_collection(request: Request, collection_id: CollectionId) -> LayerEntry:
    """Rule: manage the path's layer (visibility, links, grants, delete)."""
    return allowed(request, "manage", _lookup(request, collection_id))


def _features_of(entry: LayerEntry) -> LayerEntry:
    if entry.data_type != "vector":
        raise ApiError(
            404, "not-found", f"'{entry.id}' is a raster layer: it has tiles but no features."
        )
    return entry


async def get_vector_collection(
    entry: Annotated[LayerEntry, Depends(get_collection)],
) -> LayerEntry:
    """A collection that has features (raster layers have tiles only)."""
    return _features_of(entry)


async def get_vector_download_collection(
    entry: Annotated[LayerEntry, Depends(get_download_collection)],
) -> LayerEntry:
    """A collection with features that the caller may download (exports)."""
    return _features_of(entry)


#: The rule each dependency stands for (read by ``rule_of``).
RULES: dict[Any, str] = {
    anyone: "anyone",
    signed_in: "signed-in",
    signed_in_writer: "signed-in-writer",
    admin_only: "admin",
    get_collection: "layer:view",
    get_download_collection: "layer:download",
    get_edit_collection: "layer:edit",
    get_change_collection: "layer:change",
    get_manage_collection: "layer:manage",
}


def rule_of(route: Any) -> str | None:
    """The access rule a route declared (the first rule dependency found), or None."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    pending = list(dependant.dependencies)
    while pending:
        dep = pending.pop(0)
        if dep.call in RULES:
            return RULES[dep.call]
        pending.extend(dep.dependencies)
    return None


Collection = Annotated[LayerEntry, Depends(get_collection)]
VectorCollection = Annotated[LayerEntry, Depends(get_vector_collection)]
DownloadCollection = Annotated[LayerEntry, Depends(get_download_collection)]
VectorDownloadCollection = Annotated[LayerEntry, Depends(get_vector_download_collection)]
EditCollection = Annotated[LayerEntry, Depends(get_edit_collection)]
ChangeCollection = Annotated[LayerEntry, Depends(get_change_collection)]
ManageCollection = Annotated[LayerEntry, Depends(get_manage_collection)]
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Anyone = Annotated[Actor, Depends(anyone)]
SignedIn = Annotated[Actor, Depends(signed_in)]
SignedInWriter = Annotated[Actor, Depends(signed_in_writer)]
AdminOnly = Annotated[Actor, Depends(admin_only)]
