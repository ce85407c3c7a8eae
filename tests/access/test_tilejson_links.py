"""A layer seen through a share link: its TileJSON's tile address carries the link, so a
map library that follows it (MapLibre, QGIS's vector tiles) draws the tiles the holder may
see; without the link the layer stays unknown, and public layers' addresses carry nothing."""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from landexplorer.api import create_app
from landexplorer.catalog import open_store
from landexplorer.settings import Settings
from tests.access.test_clients import build_catalogue, open_access

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def test_tilejson_of_a_link_layer_keeps_the_link(
    store_backend: str, settings: Settings, real_data: Path
) -> None:
    build_catalogue(settings, real_data)
    store = open_store(settings)
    try:
        store.update_metadata("allotments", visibility="link")
    finally:
        store.close()  # type: ignore[attr-defined]
    with open_access(settings) as access:
        secret, _ = access.create_link("allotments", "rowan")
    with TestClient(create_app(settings)) as client:
        assert client.get("/tiles/allotments/tilejson.json").status_code == 404
        r = client.get("/tiles/allotments/tilejson.json", params={"link": secret})
        assert r.status_code == 200, r.text
        assert "private" in r.headers["cache-control"]
        template = r.json()["tiles"][0]
        assert parse_qs(urlparse(template).query) == {"link": [secret]}
        tile = template.replace("{z}", "10").replace("{x}", "505").replace("{y}", "331")
        got = client.get(tile)
        assert got.status_code == 200 and got.content, got.status_code
        # the same tile without the link is not served to a stranger
        assert client.get(tile.split("?")[0]).status_code == 404
        # a made-up link is not echoed into the address
        r = client.get("/tiles/aqma/tilejson.json", params={"link": "lxl_" + "x" * 43})
        assert r.status_code == 200 and "?" not in r.json()["tiles"][0]
