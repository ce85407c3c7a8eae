"""Saved and shared maps respect access, on both stores: whoever opens a map sees only the
layers they may see; a layer they may not see (or one deleted since) is "not available to
you", without its name or any detail, and the rest of the map works. The map lists the
licences and attributions of the layers it shows and what they oblige.

The catalogue: ``allotments`` belongs to group ``orchard-club`` (visibility ``group``,
credited to "Trafford Council"); ``flood_risk`` is public. olive is a viewer of the group.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from landexplorer.api import create_app
from landexplorer.api.routers.maps import unavailable_words
from landexplorer.catalog import open_store
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings
from tests.access.test_clients import ALLOTMENTS, GROUP, open_access
from tests.access.test_licences import FLOOD
from tests.people import bearer, make_token

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SECRET_CREDIT = "Trafford Council allotment officers"


def a_map() -> dict[str, Any]:
    return {
        "title": "Growing spaces and flood risk",
        "view": {"center": [53.445, -2.35], "zoom": 13},
        "layers": [{"id": "allotments", "opacity": 0.8}, {"id": "flood_risk", "opacity": 0.5}],
    }


@dataclass
class World:
    client: TestClient
    settings: Settings
    olive: dict[str, str]  # viewer of orchard-club
    sam: dict[str, str]  # in no group


@pytest.fixture
def world(store_backend: str, settings: Settings, real_data: Path) -> Iterator[World]:
    store = open_store(settings)
    try:
        ingest(
            store,
            [real_data / ALLOTMENTS],
            IngestOptions(id="allotments", licence="CC-BY-SA-4.0", attribution=SECRET_CREDIT),
        )
        ingest(
            store,
            [real_data / FLOOD],
            IngestOptions(id="flood_risk", licence="OGL-UK-3.0", attribution="Environment Agency"),
        )
        store.update_metadata("allotments", group=GROUP, visibility="group")
        store.update_metadata("flood_risk", visibility="public")
    finally:
        store.close()
    olive = make_token(settings, "olive", admin=False, scope="read", groups={GROUP: "viewer"})
    sam = make_token(settings, "sam", admin=False)
    with TestClient(create_app(settings)) as c:
        yield World(c, settings, bearer(olive), bearer(sam))


def saved(w: World) -> str:
    r = w.client.post("/maps", json=a_map(), headers=w.olive)
    assert r.status_code == 201, r.text
    licences = r.json()["licences"]  # the saver sees both layers' terms
    assert [i["id"] for i in licences["inputs"]] == ["allotments", "flood_risk"]
    map_id: str = r.json()["id"]
    return map_id


def test_a_member_sees_every_layer_with_its_licence(world: World) -> None:
    map_id = saved(world)
    r = world.client.get(f"/maps/{map_id}", headers=world.olive)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["layers"] == a_map()["layers"]
    assert body["unavailable"] == 0 and "unavailable_message" not in body
    block = body["licences"]
    assert [(i["id"], i["licence"], i["attribution"]) for i in block["inputs"]] == [
        ("allotments", "CC-BY-SA-4.0", SECRET_CREDIT),
        ("flood_risk", "OGL-UK-3.0", "Environment Agency"),
    ]
    assert block["share_alike"] and block["derived_licence"] == "CC-BY-SA-4.0"
    assert "share alike" in block["summary"] and "Environment Agency" in block["summary"]
    assert r.headers["cache-control"].startswith("private")


def test_a_layer_the_viewer_may_not_see_is_unavailable_without_details(world: World) -> None:
    map_id = saved(world)
    for who in ({}, world.sam):
        r = world.client.get(f"/maps/{map_id}", headers=who)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["layers"] == [{"id": "flood_risk", "opacity": 0.5}]  # the rest works
        assert body["unavailable"] == 1
        assert body["unavailable_message"] == "1 layer on this map is not available to you."
        assert body["title"] == "Growing spaces and flood risk" and body["view"]["zoom"] == 13
        assert [i["id"] for i in body["licences"]["inputs"]] == ["flood_risk"]
        assert not body["licences"]["share_alike"]
        for secret in ("allotments", SECRET_CREDIT, "CC-BY-SA-4.0", "0.8"):
            assert secret not in r.text, secret
        # the short link opens for them too
        link = world.client.get(f"/m/{map_id}", headers=who, follow_redirects=False)
        assert link.status_code == 303 and link.headers["location"] == f"/?map={map_id}"


def test_a_deleted_layer_looks_the_same_as_a_hidden_one(world: World) -> None:
    map_id = saved(world)
    anonymous = world.client.get(f"/maps/{map_id}").json()
    store = open_store(world.settings)
    try:
        store.delete("allotments")
    finally:
        store.close()
    member = world.client.get(f"/maps/{map_id}", headers=world.olive).json()
    assert member["layers"] == anonymous["layers"] == [{"id": "flood_risk", "opacity": 0.5}]
    assert member["unavailable"] == anonymous["unavailable"] == 1
    assert member["licences"] == anonymous["licences"]


def test_a_share_link_or_a_grant_makes_the_layer_available(world: World) -> None:
    map_id = saved(world)
    store = open_store(world.settings)
    try:
        store.update_metadata("allotments", visibility="link")
    finally:
        store.close()
    with open_access(world.settings) as access:
        secret, _ = access.create_link("allotments", "olive")
    r = world.client.get(f"/maps/{map_id}", params={"link": secret})
    assert r.status_code == 200, r.text
    assert r.json()["unavailable"] == 0 and len(r.json()["layers"]) == 2
    assert world.client.get(f"/maps/{map_id}").json()["unavailable"] == 1


def test_the_words_and_the_rules(world: World) -> None:
    from landexplorer.api.deps import rule_of
    from tests.access.test_matrix import path_of, routes_of

    assert unavailable_words(2) == "2 layers on this map are not available to you."
    rules = {
        path_of(route): rule_of(route)
        for route, _ in routes_of(world.client.app)
        if path_of(route) in ("/maps", "/maps/{mapId}", "/m/{mapId}")
    }
    assert rules == {"/maps": "anyone", "/maps/{mapId}": "anyone", "/m/{mapId}": "anyone"}
