"""A server process warms up before its first request, touching no layer."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import mapbox_vector_tile
import pytest

from landexplorer.access.store import AccessStore
from landexplorer.api import create_app, warmup
from landexplorer.catalog import Store
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def test_the_made_up_tile_is_a_real_tile() -> None:
    decoded = mapbox_vector_tile.decode(warmup.draw_made_up_tile())
    features = decoded["warm_up"]["features"]
    assert sorted(f["geometry"]["type"] for f in features) == ["Point", "Polygon"]
    assert {f["properties"]["name"] for f in features} == {"square", "corner"}


def test_warming_up_touches_no_layer(store: Store, settings: Settings, real_data: Path) -> None:
    ingest(store, real_data / "flood_risk_rofrs/trafford_rofrs_2018.geojson",
           IngestOptions(id="flood", licence="OGL-UK-3.0", attribution="test",
                         visibility="public"))  # fmt: skip
    before = store.get("flood")
    audit = AccessStore.beside(store)
    events = [e.id for e in audit.read_audit(limit=1000)]
    with TestClient(create_app(settings, warm=True)) as client:
        cache = settings.data_dir / "tilecache"
        assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))
        assert [e.id for e in audit.read_audit(limit=1000)] == events
        after = store.get("flood")
        assert (after.version, after.updated) == (before.version, before.updated)
        # and the server answers as ever
        tile = client.get("/tiles/flood/12/2021/1326.mvt")
        assert tile.status_code == 200
        assert mapbox_vector_tile.decode(tile.content)["flood"]["features"]
        assert client.get(warmup.NO_ROUTE).status_code == 404
    audit.close()


def test_a_failing_warm_up_does_not_stop_the_server(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> bytes:
        raise RuntimeError("made-up failure")

    monkeypatch.setattr(warmup, "draw_made_up_tile", broken)
    app = create_app(settings, warm=True)
    with caplog.at_level(logging.ERROR, logger="landexplorer.warmup"), TestClient(app) as client:
        assert client.get("/conformance").status_code == 200
    assert "warming up failed" in caplog.text
