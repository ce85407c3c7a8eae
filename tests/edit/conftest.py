"""A catalogue of its own per test, on each store: the Trafford allotments (35
multipolygons, columns ``name`` and ``osm_id``) owned by ``ora`` of the group
``orchard-club``, a point layer with a column of every editable type, and the people of
the group with personal access tokens, made through the access store itself."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from landexplorer.api import create_app
from landexplorer.catalog import open_store
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings
from tests.people import bearer, make_token

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

GROUP = "orchard-club"
LAYER = "plots"
POINTS = "sites"
#: who -> (role in the group or "admin", token scope)
PEOPLE = {
    "ora": ("contributor", "write"),  # the owner
    "stew": ("steward", "write"),
    "cora": ("contributor", "write"),  # a contributor who does not own the layer
    "vic": ("viewer", "write"),
    "otto": ("", "write"),  # signed in, in no group
    "ada": ("admin", "write"),
    "ora-read": ("contributor", "read"),  # the owner's read-only token
}

SITES_CSV = (
    "name,planted,trees,area_ha,organic,surveyed,lon,lat\n"
    "Sale orchard,2019-03-01,12,0.4,true,2024-05-01T10:00:00Z,-2.32,53.42\n"
    "Canal path,2021-11-20,5,0.1,false,2024-06-02T09:30:00Z,-2.35,53.44\n"
)


@dataclass
class World:
    client: TestClient
    settings: Settings
    tokens: dict[str, dict[str, str]]  # person -> Authorization header

    def as_(self, who: str) -> dict[str, str]:
        return self.tokens[who]

    def get(self, path: str, who: str = "ada", **kw: Any) -> Any:
        return self.client.get(path, headers={**self.as_(who), **kw.pop("headers", {})}, **kw)

    def send(self, method: str, path: str, who: str = "ada", **kw: Any) -> Any:
        headers = {**self.as_(who), **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)


def build(settings: Settings, real_data: Path, tmp: Path) -> dict[str, dict[str, str]]:
    store = open_store(settings)
    try:
        src = real_data / "allotments" / "trafford_allotments.geojson"
        options = IngestOptions(
            id=LAYER, licence="OGL-UK-3.0", attribution="Trafford Council / OSM",
            owner="ora", group=GROUP, visibility="group",
        )  # fmt: skip
        ingest(store, [src], options)
        csv = tmp / "sites.csv"
        csv.write_text(SITES_CSV)
        ingest(store, [csv], IngestOptions(id=POINTS, licence="CC0-1.0", owner="ora",
                                           group=GROUP, visibility="public"))  # fmt: skip
    finally:
        store.close()
    tokens = {}
    for who, (role, scope) in PEOPLE.items():
        user = who.removesuffix("-read")
        groups = {GROUP: role} if role not in ("", "admin") else {}
        token = make_token(settings, user, admin=role == "admin", scope=scope, groups=groups)
        tokens[who] = bearer(token)
    tokens["anonymous"] = {}
    return tokens


@pytest.fixture
def world(
    store_backend: str, settings: Settings, real_data: Path, tmp_path: Path
) -> Iterator[World]:
    tokens = build(settings, real_data, tmp_path)
    with TestClient(create_app(settings)) as client:
        yield World(client, settings, tokens)
