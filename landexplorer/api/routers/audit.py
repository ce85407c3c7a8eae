"""The audit log, read: ``GET /audit``.

Admins read every event. A group's stewards read the events of the group's layers and of
its members (members set and removed); a layer's owner reads the events of their layers.
Newest first, a page at a time (``before`` is the last id of the page before), filtered by
``layer`` and by ``user`` (who did it). Reading is looking, not changing: a read-only
token reads what its account may manage.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request

from landexplorer.access.model import Actor
from landexplorer.access.policy import can_manage_group, decide, managed
from landexplorer.api.auth import access_of
from landexplorer.api.deps import SignedIn, not_found, store_of
from landexplorer.api.errors import ApiError
from landexplorer.api.refusals import answers
from landexplorer.api.responses import JSONResponse

router = APIRouter(tags=["Accounts"])

_NOBODY = (
    "The audit log is read by the site's admins, and by stewards and owners for their own "
    "groups and layers; you have none yet."
)


@router.get(
    "/audit",
    summary="The audit log",
    operation_id="readAudit",
    responses=answers("Events, newest first, with a link to the page before.", 400, 401, 403,
                      404),
)  # fmt: skip
def read_audit(
    request: Request,
    actor: SignedIn,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, description="Events older than this id")] = None,
    layer: Annotated[str | None, Query(max_length=48, description="One layer's events")] = None,
    user: Annotated[str | None, Query(max_length=40, description="Who did it")] = None,
) -> JSONResponse:
    """Who did what, to which layer and version, and when (never a secret)."""
    access = access_of(request)
    layers: list[str] | None = None
    groups: list[str] | None = None
    if not actor.admin:
        # what this account may manage (a read-only token reads it too: reading changes nothing)
        entries = store_of(request).list_layers()
        layers = [e.id for e in managed(actor, entries)]
        looking = dataclasses.replace(actor, scope="write")
        groups = [g for g in actor.roles if can_manage_group(looking, g).allowed]
        if not layers and not groups:
            raise ApiError(403, "forbidden", _NOBODY)
        if layer is not None and layer not in layers:
            seen = [e for e in entries if e.id == layer and decide(actor, "view", e).allowed]
            if not seen:
                raise not_found(layer)
            raise ApiError(
                403, "forbidden", f"You may read the log of the layers you manage, not '{layer}'."
            )
        if layer is not None:
            layers, groups = [layer], []
    events = access.read_audit(
        limit=limit, before=before, layer=layer, actor=user, layers=layers, groups=groups
    )
    following = None
    if len(events) == limit:
        query = {"limit": limit, "before": events[-1].id, "layer": layer, "user": user}
        following = "/audit?" + urlencode({k: v for k, v in query.items() if v is not None})
    return JSONResponse(
        {"events": [e.public() for e in events], "next": following, "scope": _scope(actor)},
        headers={"Cache-Control": "private, no-store"},
    )


def _scope(actor: Actor) -> str:
    return "everything" if actor.admin else "your groups and layers"
