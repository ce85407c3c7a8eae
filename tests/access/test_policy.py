"""The one policy, rule by rule: who may view, download, change and manage a layer."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from landexplorer.access.model import ANONYMOUS, OPERATOR, Actor
from landexplorer.access.policy import (
    can,
    can_create_in,
    can_manage_group,
    decide,
    effective_visibility,
)


@dataclass
class Layer:
    id: str = "orchards"
    owner: str = "olive"
    group: str = "growers"
    visibility: str = "group"
    licence: str = "CC-BY-4.0"


OWNER = Actor(user="olive", roles={"growers": "contributor"}, via="session")
STEWARD = Actor(user="sam", roles={"growers": "steward"}, via="session")
CONTRIBUTOR = Actor(user="cora", roles={"growers": "contributor"}, via="session")
VIEWER = Actor(user="vic", roles={"growers": "viewer"}, via="session")
OUTSIDER = Actor(user="otto", roles={"other-group": "steward"}, via="session")
ADMIN = Actor(user="ada", admin=True, via="session")
LINK_HOLDER = ANONYMOUS.with_links(frozenset({"orchards"}))
GRANTED = Actor(user="gus", grants=frozenset({"orchards"}), via="session")

ACTORS = {
    "anonymous": ANONYMOUS,
    "link holder": LINK_HOLDER,
    "outsider": OUTSIDER,
    "granted": GRANTED,
    "viewer": VIEWER,
    "contributor": CONTRIBUTOR,
    "steward": STEWARD,
    "owner": OWNER,
    "admin": ADMIN,
}

# who may VIEW (and download) at each visibility
SEES = {
    "private": {"steward", "owner", "admin"},
    "group": {"granted", "viewer", "contributor", "steward", "owner", "admin"},
    "link": {"link holder", "granted", "viewer", "contributor", "steward", "owner", "admin"},
    "public": set(ACTORS),
}
CHANGES = {"steward", "owner", "admin"}  # contributors change only their own layers
#: contributors edit the features of the group's layers that the group sees
EDITS = {v: CHANGES | ({"contributor"} if v != "private" else set()) for v in SEES}
MANAGES = {"steward", "owner", "admin"}


@pytest.mark.parametrize("visibility", list(SEES))
@pytest.mark.parametrize("who", list(ACTORS))
def test_every_actor_at_every_visibility(who: str, visibility: str) -> None:
    layer = Layer(visibility=visibility)
    actor = ACTORS[who]
    assert can(actor, "view", layer) == (who in SEES[visibility])
    assert can(actor, "download", layer) == (who in SEES[visibility])
    assert can(actor, "edit", layer) == (who in EDITS[visibility])
    assert can(actor, "change", layer) == (who in CHANGES)
    assert can(actor, "manage", layer) == (who in MANAGES)


def test_public_needs_a_licence_to_be_public() -> None:
    layer = Layer(visibility="public", licence="")
    assert effective_visibility(layer) == "group"
    assert not can(ANONYMOUS, "view", layer)
    assert can(VIEWER, "view", layer)


def test_read_only_token_never_changes_anything() -> None:
    reader = Actor(user="olive", roles={"growers": "steward"}, scope="read", via="token")
    layer = Layer()
    assert can(reader, "view", layer)
    for action in ("change", "manage"):
        decision = decide(reader, action, layer)
        assert not decision.allowed
        assert "read-only" in decision.reason
    assert not can_create_in(reader, "growers").allowed
    assert not can_manage_group(reader, "growers").allowed


def test_old_hidden_visibility_counts_as_private() -> None:
    layer = Layer(visibility="hidden")
    assert not can(VIEWER, "view", layer)
    assert can(STEWARD, "view", layer)


def test_operator_may_do_everything() -> None:
    for action in ("view", "download", "change", "manage"):
        assert can(OPERATOR, action, Layer(visibility="private"))


def test_link_of_another_layer_opens_nothing() -> None:
    other = ANONYMOUS.with_links(frozenset({"allotments"}))
    assert not can(other, "view", Layer(visibility="link"))


def test_a_grant_does_not_open_a_private_layer() -> None:
    assert not can(GRANTED, "view", Layer(visibility="private"))


def test_creating_and_managing_groups() -> None:
    assert can_create_in(CONTRIBUTOR, "growers").allowed
    assert can_create_in(STEWARD, "growers").allowed
    assert not can_create_in(VIEWER, "growers").allowed
    assert not can_create_in(OUTSIDER, "growers").allowed
    assert not can_create_in(ANONYMOUS, "growers").allowed
    assert not can_create_in(CONTRIBUTOR, "").allowed
    assert can_create_in(ADMIN, "").allowed
    assert can_manage_group(STEWARD, "growers").allowed
    assert not can_manage_group(CONTRIBUTOR, "growers").allowed
    assert can_manage_group(ADMIN, "growers").allowed


def test_reasons_are_words() -> None:
    assert decide(STEWARD, "manage", Layer()).reason == "steward of group 'growers'"
    assert decide(ANONYMOUS, "change", Layer()).reason == "changing a layer needs signing in"
    assert decide(OUTSIDER, "view", Layer(visibility="private")).reason == "the layer is private"
    with pytest.raises(ValueError):
        decide(ADMIN, "fly", Layer())
