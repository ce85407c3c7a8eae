"""The one policy: may this actor do this with this layer, and why.

Every route asks :func:`can` (through the API's dependencies); nothing decides access by
hand. The rules, in order:

1. A site admin may do everything.
2. A ``read`` token may view and download but never change or manage.
3. The layer's owner may do everything with it.
4. A steward of the layer's group may do everything with it.
5. A contributor of the group may view and download the group's non-private layers and
   change the layers they own (rule 3).
6. View and download, by visibility: ``public`` (with a licence) for everybody; ``link``
   for anyone holding one of its share links and for group members; ``group`` for group
   members and people a steward granted it to; ``private`` for nobody else.
   A ``public`` layer without a licence is shown as ``group`` until it has one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from landexplorer.access.model import ACTIONS, Actor, normalise_visibility, role_rank


class Governed(Protocol):
    """What the policy needs to know about a layer (a catalogue entry has all of it)."""

    id: str
    owner: str
    group: str
    visibility: str
    licence: str


@dataclass(frozen=True)
class Decision:
    """A yes or no with the reason in plain words (shown to owners: "who can see this")."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def effective_visibility(layer: Governed) -> str:
    """The visibility the policy applies: public needs a licence."""
    visibility = normalise_visibility(layer.visibility)
    if visibility == "public" and not layer.licence:
        return "group"
    return visibility


def decide(actor: Actor, action: str, layer: Governed) -> Decision:
    """May ``actor`` ``action`` (view, download, edit, change, manage) ``layer``?

    Editing features is a contributor's work on the group's layers (a tree felled, a
    survey noted): contributors of the owning group edit its features, while replacing
    the layer from a file, its details and who sees it stay with the owner and stewards."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    writing = action in ("edit", "change", "manage")
    if writing and not actor.may_write:
        if actor.signed_in:
            return Decision(False, "a read-only token cannot change anything")
        return Decision(False, "changing a layer needs signing in")
    if actor.admin:
        return Decision(True, "site admin")
    if actor.user and layer.owner == actor.user:
        return Decision(True, "owner")
    rank = role_rank(actor.role_in(layer.group))
    if rank >= 3:
        return Decision(True, f"steward of group '{layer.group}'")
    if writing:
        if rank == 2 and action == "edit" and effective_visibility(layer) != "private":
            return Decision(True, f"contributor of group '{layer.group}'")
        if rank == 2 and action == "change":
            return Decision(False, "contributors change only the layers they own")
        if action == "edit":
            return Decision(
                False, "only the owner, the group's contributors and stewards, and admins edit it"
            )
        return Decision(False, "only the owner, the group's stewards and admins change it")
    visibility = effective_visibility(layer)
    if visibility == "public":
        return Decision(True, "public layer")
    if visibility in ("group", "link") and rank >= 1:
        return Decision(True, f"member of group '{layer.group}'")
    if visibility in ("group", "link") and layer.id in actor.grants:
        return Decision(True, "granted by a steward")
    if visibility == "link" and layer.id in actor.links:
        return Decision(True, "holds a share link")
    return Decision(False, f"the layer is {visibility}")


def can(actor: Actor, action: str, layer: Governed) -> bool:
    """Shorthand for ``decide(...).allowed``."""
    return decide(actor, action, layer).allowed


_L = TypeVar("_L", bound=Governed)


def managed(actor: Actor, layers: Iterable[_L]) -> list[_L]:
    """The layers ``actor`` manages (owns, stewards the group of, or all as an admin),
    whatever their token's scope: listing them or reading their log changes nothing."""
    looking = dataclasses.replace(actor, scope="write")
    return [layer for layer in layers if decide(looking, "manage", layer).allowed]


def can_create_in(actor: Actor, group: str) -> Decision:
    """May ``actor`` upload a new layer into ``group`` ("" = no group: admins only)?"""
    if not actor.may_write:
        return Decision(False, "uploading needs signing in (with a token that may write)")
    if actor.admin:
        return Decision(True, "site admin")
    if not group:
        return Decision(False, "choose the group the layer belongs to")
    if role_rank(actor.role_in(group)) >= 2:
        return Decision(True, f"contributor to group '{group}'")
    return Decision(False, f"only contributors and stewards of '{group}' add layers to it")


def can_move_into(actor: Actor, layer: Governed, group: str) -> bool:
    """May ``actor`` put ``layer`` into ``group``: admins, the group's stewards, and the
    layer's owner when they are in that group."""
    role = actor.role_in(group)
    return actor.admin or role == "steward" or (actor.user == layer.owner and bool(role))


def can_manage_group(actor: Actor, group: str) -> Decision:
    """May ``actor`` manage ``group``'s members and access requests?"""
    if not actor.may_write:
        return Decision(False, "managing a group needs signing in")
    if actor.admin:
        return Decision(True, "site admin")
    if role_rank(actor.role_in(group)) >= 3:
        return Decision(True, f"steward of group '{group}'")
    return Decision(False, f"only the stewards of '{group}' manage it")
