"""Asking for access: ``POST /collections/{id}/requests``, ``GET /requests`` and
``POST /requests/{id}/grant`` or ``/refuse``.

Anyone signed in may ask for a ``group`` or ``link`` layer they cannot see yet (someone
told them its name, or a shared map shows it as unavailable). Such a layer's existence is
not a secret from signed-in people: asking for it is answered honestly. A ``private``
layer stays unrevealed: asking for it is the same 404 as asking for a layer that does not
exist. Whoever may manage the layer (its owner, its group's stewards, admins) grants or
refuses; a grant lets that one person see the layer. Every step goes to the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from landexplorer.access.model import Actor
from landexplorer.access.policy import decide, effective_visibility
from landexplorer.access.store import AccessRequest
from landexplorer.api.auth import access_of
from landexplorer.api.deps import CollectionId, SignedIn, SignedInWriter, not_found, store_of
from landexplorer.api.errors import ApiError
from landexplorer.api.refusals import answers
from landexplorer.api.responses import JSONResponse
from landexplorer.catalog import LayerEntry
from landexplorer.errors import LayerNotFound

router = APIRouter(tags=["Sharing"])

PRIVATE = {"Cache-Control": "private, no-store"}
RequestId = Annotated[str, PathParam(alias="requestId", max_length=40)]
_NO_REQUEST = "There is no such access request (or it is not yours to answer)."


class Asking(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    message: str = Field(default="", max_length=1000, examples=["I lead the Tuesday walks"])


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _entry(request: Request, layer: str) -> LayerEntry | None:
    try:
        return store_of(request).get(layer)
    except LayerNotFound:
        return None


@router.post(
    "/collections/{collectionId}/requests",
    status_code=201,
    summary="Ask to see a layer",
    operation_id="requestAccess",
    responses=answers("The request, waiting for a steward's answer.", 400, 401, 403, 404, 409,
                      code=201),
)  # fmt: skip
def ask(
    request: Request,
    actor: SignedInWriter,
    collection_id: CollectionId,
    body: Annotated[Asking | None, Body()] = None,
) -> JSONResponse:
    """Ask the owner and the stewards of a ``group`` or ``link`` layer to let you see it.
    Asking again while a request waits answers that request (200)."""
    entry = _entry(request, collection_id)
    if entry is None:
        raise not_found(collection_id)
    if decide(actor, "view", entry).allowed:
        raise ApiError(409, "conflict", f"You can see '{entry.id}' already: nothing to ask.")
    if effective_visibility(entry) == "private":
        raise not_found(collection_id)  # not revealed: the same answer as no such layer
    access = access_of(request)
    waiting = access.list_requests([entry.id], user=actor.user, status="pending")
    made = access.request_access(entry.id, actor.user, body.message if body else "")
    if not waiting:
        access.audit(actor, "access requested", entry.id, entry.version, request=made.id)
    doc = made.public() | {"layer_title": entry.title or entry.id}
    return JSONResponse(doc, status_code=200 if waiting else 201, headers=PRIVATE)


def _doc(request: AccessRequest, entry: LayerEntry | None) -> dict[str, Any]:
    title = (entry.title if entry else "") or request.layer
    return request.public() | {"layer_title": title}


@router.get(
    "/requests",
    summary="Access requests to answer, and my own",
    operation_id="listAccessRequests",
    responses=answers("Requests on layers you manage, and the ones you made.", 400, 401),
)
def list_requests(
    request: Request,
    actor: SignedIn,
    status: Annotated[str, Query(pattern="^(pending|granted|refused|all)$")] = "pending",
) -> JSONResponse:
    """``requests``: those on the layers the caller may manage (their groups' layers, for a
    steward; every layer, for an admin); ``mine``: the ones the caller made."""
    entries = {e.id: e for e in store_of(request).list_layers()}
    managed = [i for i, e in entries.items() if decide(actor, "manage", e).allowed]
    wanted = "" if status == "all" else status
    access = access_of(request)
    to_answer = access.list_requests(managed, status=wanted) if managed else []
    mine = access.list_requests(user=actor.user, status=wanted) if actor.user else []
    return JSONResponse(
        {
            "requests": [_doc(r, entries.get(r.layer)) for r in to_answer],
            "mine": [_doc(r, entries.get(r.layer)) for r in mine],
        },
        headers=PRIVATE,
    )


def _answer(request: Request, actor: Actor, request_id: str, grant: bool) -> JSONResponse:
    access = access_of(request)
    asked = access.get_request(request_id)
    entry = _entry(request, asked.layer) if asked else None
    if asked is None or entry is None or not decide(actor, "view", entry).allowed:
        raise ApiError(404, "not-found", _NO_REQUEST)
    decision = decide(actor, "manage", entry)
    if not decision.allowed:
        raise ApiError(
            403,
            "forbidden",
            f"You cannot answer requests for '{entry.id}': {decision.reason}.",
        )
    if asked.status != "pending":
        raise ApiError(409, "conflict", f"That request was already {asked.status}.")
    done = access.decide_request(request_id, grant, actor.label())
    action = "access request granted" if grant else "access request refused"
    access.audit(actor, action, entry.id, entry.version, request=done.id, user=done.user)
    return JSONResponse(_doc(done, entry), headers=PRIVATE)


@router.post(
    "/requests/{requestId}/grant",
    summary="Grant an access request",
    operation_id="grantAccessRequest",
    responses=answers("Granted: they may see the layer now.", 400, 401, 403, 404, 409),
)
def grant_request(
    request: Request,
    actor: SignedInWriter,
    request_id: RequestId,
    body: Annotated[Answer | None, Body()] = None,
) -> JSONResponse:
    """Let the person who asked see the layer (the layer's owner, stewards, admins)."""
    return _answer(request, actor, request_id, True)


@router.post(
    "/requests/{requestId}/refuse",
    summary="Refuse an access request",
    operation_id="refuseAccessRequest",
    responses=answers("Refused: nothing changes for who sees the layer.", 400, 401, 403, 404,
                      409),
)  # fmt: skip
def refuse_request(
    request: Request,
    actor: SignedInWriter,
    request_id: RequestId,
    body: Annotated[Answer | None, Body()] = None,
) -> JSONResponse:
    """Say no to a request; the person who asked sees it refused in their requests."""
    return _answer(request, actor, request_id, False)
