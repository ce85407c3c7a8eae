"""Groups and their members: ``/groups``, ``/groups/{group}``, ``/groups/{group}/members/{user}``.

* ``GET /groups``: the caller's groups (every group, for admins) with their role.
* ``POST /groups``: a new group (admins).
* ``GET /groups/{group}``: its members and their roles, its layers the caller may see, and
  (for its stewards and admins) the access requests waiting for an answer.
* ``PUT``/``DELETE /groups/{group}/members/{user}``: give someone a role or take them out
  (the group's stewards and admins). A group always keeps a steward: only an admin may
  take away the last one.

Who may manage a group is the policy's (``can_manage_group``); every change goes to the
audit log. A group the caller is not in is a 404 to them, as a layer they may not see.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from landexplorer.access.model import Actor
from landexplorer.access.policy import can_manage_group, decide
from landexplorer.access.store import NAME, AccessStore, Group, check_name
from landexplorer.api.auth import access_of
from landexplorer.api.deps import AdminOnly, SignedIn, SignedInWriter, store_of
from landexplorer.api.errors import ApiError
from landexplorer.api.refusals import answers
from landexplorer.api.responses import JSONResponse

router = APIRouter(tags=["Groups"])

PRIVATE = {"Cache-Control": "private, no-store"}
GroupName = Annotated[str, PathParam(alias="group", max_length=40)]
UserName = Annotated[str, PathParam(alias="user", max_length=40)]


class NewGroup(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # the pattern is documented here and checked by ``check_name``, which says it in words
    name: str = Field(
        max_length=40,
        examples=["sale-orchards"],
        json_schema_extra={"pattern": NAME.pattern},
    )
    title: str = Field(default="", max_length=200, examples=["Sale orchards"])


class Membership(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    role: str = Field(pattern="^(viewer|contributor|steward)$", examples=["contributor"])


def no_such_group(name: str) -> ApiError:
    return ApiError(404, "not-found", f"There is no group called '{name[:40]}' that you are in.")


def group_for(request: Request, actor: Actor, name: str) -> Group:
    """The group, when the caller is in it or is an admin; else a 404."""
    group = access_of(request).get_group(name)
    if group is None or not (actor.admin or actor.role_in(name)):
        raise no_such_group(name)
    return group


def require_manage(actor: Actor, group: str) -> None:
    decision = can_manage_group(actor, group)
    if not decision.allowed:
        raise ApiError(403, "forbidden", f"You cannot change this group: {decision.reason}.")


def pending_for_group(request: Request, group: str) -> list[dict[str, Any]]:
    """The pending access requests on the layers of ``group``, with the layers' titles."""
    layers = {e.id: e for e in store_of(request).list_layers() if e.group == group}
    pending = access_of(request).list_requests(list(layers), status="pending")
    return [r.public() | {"layer_title": layers[r.layer].title or r.layer} for r in pending]


@router.get(
    "/groups",
    summary="My groups",
    operation_id="listGroups",
    responses=answers("The groups you are in (every group, for admins).", 401),
)
def list_groups(request: Request, actor: SignedIn) -> JSONResponse:
    """The caller's groups with their role in each; every group for a site admin."""
    access = access_of(request)
    groups = [g for g in access.list_groups() if actor.admin or actor.role_in(g.name)]
    body = [g.public() | {"role": actor.role_in(g.name)} for g in groups]
    return JSONResponse({"groups": body}, headers=PRIVATE)


@router.post(
    "/groups",
    status_code=201,
    summary="Make a group",
    operation_id="createGroup",
    responses=answers("The new group.", 400, 401, 403, 409, code=201),
)
def create_group(
    request: Request, actor: AdminOnly, body: Annotated[NewGroup, Body()]
) -> JSONResponse:
    """A new group with no members yet (admins only); then give it a steward."""
    access = access_of(request)
    check_name(body.name, "group")
    if access.get_group(body.name) is not None:
        raise ApiError(409, "conflict", f"There is already a group called '{body.name}'.")
    group = access.add_group(body.name, body.title.strip())
    access.audit(actor, "group added", group=group.name, title=group.title)
    return JSONResponse(
        group.public() | {"role": None},
        status_code=201,
        headers={"Location": f"/groups/{group.name}", **PRIVATE},
    )


@router.get(
    "/groups/{group}",
    summary="A group: members, roles and requests",
    operation_id="getGroup",
    responses=answers("The group's members, its layers and waiting requests.", 401, 404),
)
def get_group(request: Request, actor: SignedIn, name: GroupName) -> JSONResponse:
    """Members and their roles, the group's layers the caller may see, and for the
    group's stewards and admins the access requests waiting for an answer."""
    group = group_for(request, actor, name)
    access = access_of(request)
    manages = can_manage_group(actor, name).allowed
    layers = [
        {"id": e.id, "title": e.title, "visibility": e.visibility, "owner": e.owner}
        for e in store_of(request).list_layers()
        if e.group == name and decide(actor, "view", e).allowed
    ]
    doc: dict[str, Any] = group.public() | {
        "role": actor.role_in(name),
        "may_manage": manages,
        "members": access.members_of(name),
        "layers": layers,
    }
    if manages:
        doc["requests"] = pending_for_group(request, name)
    return JSONResponse(doc, headers=PRIVATE)


def _stewards(access: AccessStore, group: str) -> set[str]:
    return {m["user"] for m in access.members_of(group) if m["role"] == "steward"}


def _keeps_a_steward(actor: Actor, access: AccessStore, group: str, user: str) -> None:
    """Refuse (409) taking away the group's last steward, unless an admin does it."""
    if actor.admin:
        return
    if _stewards(access, group) == {user}:
        raise ApiError(
            409,
            "conflict",
            f"{user} is the only steward of '{group}': a group needs a steward to look "
            "after its members and layers. Make someone else steward first.",
        )


@router.put(
    "/groups/{group}/members/{user}",
    summary="Give someone a role in a group",
    operation_id="setGroupMember",
    responses=answers("The member's new role.", 400, 401, 403, 404, 409),
)
def set_member(
    request: Request,
    actor: SignedInWriter,
    name: GroupName,
    user: UserName,
    body: Annotated[Membership, Body()],
) -> JSONResponse:
    """Add ``user`` to the group or change their role (viewer, contributor, steward)."""
    group = group_for(request, actor, name)
    require_manage(actor, name)
    access = access_of(request)
    if access.get_user(user) is None:
        raise ApiError(404, "not-found", f"There is no account called '{user[:40]}'.")
    before = group.members.get(user)
    if before == "steward" and body.role != "steward":
        _keeps_a_steward(actor, access, name, user)
    access.set_member(name, user, body.role)
    if before != body.role:
        access.audit(actor, "member set", group=name, user=user, role=body.role, before=before)
    return JSONResponse(
        {"group": name, "user": user, "role": body.role, "before": before}, headers=PRIVATE
    )


@router.delete(
    "/groups/{group}/members/{user}",
    status_code=204,
    summary="Take someone out of a group",
    operation_id="removeGroupMember",
    response_class=Response,
    responses=answers("They are no longer in the group.", 401, 403, 404, 409, code=204),
)
def remove_member(
    request: Request, actor: SignedInWriter, name: GroupName, user: UserName
) -> Response:
    """Take ``user`` out of the group: they stop seeing its group layers at once."""
    group = group_for(request, actor, name)
    require_manage(actor, name)
    access = access_of(request)
    if user not in group.members:
        raise ApiError(404, "not-found", f"{user[:40]} is not a member of '{name}'.")
    if group.members[user] == "steward":
        _keeps_a_steward(actor, access, name, user)
    access.remove_member(name, user)
    access.audit(actor, "member removed", group=name, user=user, role=group.members[user])
    return Response(status_code=204)
