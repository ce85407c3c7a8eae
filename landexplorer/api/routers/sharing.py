"""Sharing one's layers: ``/me/layers``, ``/collections/{id}/access``, share links and grants.

* ``GET /me/layers``: the layers the caller owns or stewards (every layer, for admins),
  each with its visibility, what the caller may do with it and how many can see it.
* ``GET /collections/{id}/access``: who can see the layer and why (the policy's own
  reasons), its live share links and its grants.
* ``POST``/``GET /collections/{id}/links``, ``DELETE .../links/{linkId}``: share links.
  The secret is in the answer that makes it, once; the store keeps its digest only.
* ``GET``/``POST /collections/{id}/grants``, ``DELETE .../grants/{user}``: one person let
  into a group or link layer (what granting an access request does).

All of them need ``manage`` on the layer (its owner, its group's stewards, admins), except
``/me/layers``; every change goes to the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from landexplorer.access.model import ACTIONS, Actor
from landexplorer.access.policy import decide, effective_visibility, managed
from landexplorer.access.store import AccessStore
from landexplorer.api.auth import access_of, actor_of
from landexplorer.api.deps import ManageCollection, SignedIn, store_of
from landexplorer.api.errors import ApiError
from landexplorer.api.refusals import answers
from landexplorer.api.responses import JSONResponse
from landexplorer.api.routers.landing import base_url
from landexplorer.catalog import LayerEntry

router = APIRouter(tags=["Sharing"])

PRIVATE = {"Cache-Control": "private, no-store"}
LinkId = Annotated[str, PathParam(alias="linkId", max_length=40)]
GrantUser = Annotated[str, PathParam(alias="user", max_length=40)]
_MANAGE = (401, 403, 404)


class NewLink(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewGrant(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    user: str = Field(max_length=40, examples=["cai"])


def who_can_see(access: AccessStore, entry: LayerEntry) -> list[dict[str, str]]:
    """Everyone who may see ``entry`` and the policy's reason for each. A public layer is
    "everyone"; a link layer also "anyone holding a live share link"."""
    visibility = effective_visibility(entry)
    if visibility == "public":
        return [{"who": "everyone", "why": f"public layer, licence {entry.licence}"}]
    live = sum(1 for link in access.list_links(entry.id) if not link.revoked)
    rows = []
    for person in access.actors():
        decision = decide(person, "view", entry)
        if decision.allowed:
            rows.append({"who": person.user, "why": decision.reason})
    if visibility == "link" and live:
        plural = "link" if live == 1 else "links"
        rows.append({"who": "anyone holding a share link", "why": f"{live} live {plural}"})
    return rows


def _viewers(people: list[Actor], entry: LayerEntry) -> int:
    return sum(1 for person in people if decide(person, "view", entry).allowed)


@router.get(
    "/me/layers",
    summary="My layers",
    operation_id="listMyLayers",
    responses=answers("The layers you own or steward, with who sees them.", 401),
)
def my_layers(request: Request, actor: SignedIn) -> JSONResponse:
    """The layers the caller owns or stewards (admins: every layer): visibility, group,
    licence, what the caller may do, how many accounts can see each and its live links."""
    access = access_of(request)
    people = access.actors()
    out = []
    for entry in managed(actor, store_of(request).list_layers()):
        live = sum(1 for link in access.list_links(entry.id) if not link.revoked)
        about = _about(entry)
        out.append(
            about
            | {
                "may": [a for a in ACTIONS if decide(actor, a, entry).allowed],
                "viewers": None if about["public"] else _viewers(people, entry),
                "live_links": live,
            }
        )
    return JSONResponse({"layers": out}, headers=PRIVATE)


def _about(entry: LayerEntry) -> dict[str, Any]:
    """What both "my layers" and "who can see it" say of a layer first."""
    shown = effective_visibility(entry)
    return {
        "id": entry.id,
        "title": entry.title,
        "owner": entry.owner or None,
        "group": entry.group or None,
        "visibility": entry.visibility,
        "effective_visibility": shown,
        "licence": entry.licence,
        "public": shown == "public",
    }


@router.get(
    "/collections/{collectionId}/access",
    summary="Who can see a layer, and why",
    operation_id="getCollectionAccess",
    responses=answers("Who can see the layer and why, its links and grants.", *_MANAGE),
)
def layer_access(request: Request, entry: ManageCollection) -> JSONResponse:
    """The layer's owner, group and visibility; everyone who can see it with the reason;
    its group's members by role; its share links (never their secrets) and grants."""
    access = access_of(request)
    links = [link.public() for link in access.list_links(entry.id)]
    roles: dict[str, list[str]] = {}
    if entry.group:
        for member in access.members_of(entry.group):
            roles.setdefault(member["role"], []).append(member["user"])
    doc = _about(entry) | {
        "who": who_can_see(access, entry),
        "group_roles": roles,
        "links": links,
        "live_links": sum(1 for link in links if not link["revoked"]),
        "grants": _grants(access, entry.id),
    }
    return JSONResponse(doc, headers=PRIVATE)


# ---------------------------------------------------------------- share links
@router.post(
    "/collections/{collectionId}/links",
    status_code=201,
    summary="Make a share link",
    operation_id="createShareLink",
    responses=answers("The new link: its secret is shown in this answer only.", *_MANAGE,
                      400, code=201),
)  # fmt: skip
def make_link(
    request: Request,
    entry: ManageCollection,
    body: Annotated[NewLink | None, Body()] = None,
) -> JSONResponse:
    """A new share link of the layer. Whoever opens it sees the layer while its visibility
    is ``link`` and until the link is revoked. Copy ``url`` now: it is not shown again."""
    access = access_of(request)
    secret, info = access.create_link(entry.id, actor_of(request).label())
    access.audit(actor_of(request), "link made", entry.id, entry.version, link=info.id)
    url = f"{base_url(request)}/?link={secret}&layers={entry.id}"
    doc = info.public() | {"layer": entry.id, "link": secret, "url": url}
    if entry.visibility != "link":
        doc["note"] = (
            f"'{entry.id}' is {entry.visibility}: the link shows it only while its "
            "visibility is 'link'."
        )
    return JSONResponse(doc, status_code=201, headers={"Cache-Control": "no-store"})


@router.get(
    "/collections/{collectionId}/links",
    summary="A layer's share links",
    operation_id="listShareLinks",
    responses=answers("The layer's share links (never their secrets).", *_MANAGE),
)
def list_links(request: Request, entry: ManageCollection) -> JSONResponse:
    """Every share link made for the layer, live and revoked (who made it, when)."""
    links = [link.public() for link in access_of(request).list_links(entry.id)]
    return JSONResponse({"links": links}, headers=PRIVATE)


@router.delete(
    "/collections/{collectionId}/links/{linkId}",
    status_code=204,
    summary="Revoke a share link",
    operation_id="revokeShareLink",
    response_class=Response,
    responses=answers("The link no longer shows the layer to anyone.", *_MANAGE, code=204),
)
def revoke_link(request: Request, entry: ManageCollection, link_id: LinkId) -> Response:
    """Revoke one share link: it stops working at once."""
    access = access_of(request)
    live = [link.id for link in access.list_links(entry.id) if not link.revoked]
    if link_id not in live:
        raise ApiError(404, "not-found", f"'{entry.id}' has no live share link with that id.")
    access.revoke_link(entry.id, link_id)
    access.audit(actor_of(request), "link revoked", entry.id, entry.version, link=link_id)
    return Response(status_code=204)


# ---------------------------------------------------------------- grants
def _grants(access: AccessStore, layer: str) -> list[dict[str, str]]:
    return [
        {"user": user, "granted_by": by, "created": when}
        for user, by, when in access.grants_for(layer)
    ]


@router.get(
    "/collections/{collectionId}/grants",
    summary="Who was let into a layer",
    operation_id="listGrants",
    responses=answers("The people let into the layer one by one.", *_MANAGE),
)
def list_grants(request: Request, entry: ManageCollection) -> JSONResponse:
    """The people let into the layer one by one (by a steward, or a granted request)."""
    return JSONResponse({"grants": _grants(access_of(request), entry.id)}, headers=PRIVATE)


@router.post(
    "/collections/{collectionId}/grants",
    status_code=201,
    summary="Let one person see a layer",
    operation_id="createGrant",
    responses=answers("They may see the layer now.", *_MANAGE, 400, 409, code=201),
)
def add_grant(
    request: Request, entry: ManageCollection, body: Annotated[NewGrant, Body()]
) -> JSONResponse:
    """Let one account see a ``group`` or ``link`` layer without joining its group."""
    access = access_of(request)
    if access.get_user(body.user) is None:
        raise ApiError(404, "not-found", f"There is no account called '{body.user}'.")
    if effective_visibility(entry) == "private":
        raise ApiError(
            409,
            "conflict",
            f"'{entry.id}' is private, so a grant would not let anyone in: make it visible "
            "to its group (or to people with a link) first.",
        )
    already = any(user == body.user for user, _, _ in access.grants_for(entry.id))
    if not already:
        access.grant(entry.id, body.user, actor_of(request).label())
        access.audit(actor_of(request), "access granted", entry.id, entry.version,
                     user=body.user)  # fmt: skip
    grant = next(g for g in _grants(access, entry.id) if g["user"] == body.user)
    return JSONResponse(grant, status_code=200 if already else 201, headers=PRIVATE)


@router.delete(
    "/collections/{collectionId}/grants/{user}",
    status_code=204,
    summary="Take back a grant",
    operation_id="revokeGrant",
    response_class=Response,
    responses=answers("They no longer see the layer (unless their group does).", *_MANAGE,
                      code=204),
)  # fmt: skip
def revoke_grant(request: Request, entry: ManageCollection, user: GrantUser) -> Response:
    """Take back one person's grant: they stop seeing the layer at once (unless they are
    in its group, or hold a share link)."""
    access = access_of(request)
    if not access.revoke_grant(entry.id, user):
        raise ApiError(404, "not-found", f"{user[:40]} has no grant on '{entry.id}'.")
    access.audit(actor_of(request), "grant revoked", entry.id, entry.version, user=user)
    return Response(status_code=204)
