"""``landexplorer migrate --to postgresql://...``: a whole GeoPackage catalogue (layers,
versions, licences, feature ids, rasters' entries) copied into PostGIS and counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from landexplorer.catalog import Query, open_store
from landexplorer.catalog.gpkg import GeoPackageStore
from landexplorer.catalog.migrate import migrate
from landexplorer.catalog.postgis import PostGISStore
from landexplorer.cli import main
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings

DEM = ("dem_os_terrain50", "trafford_os_terrain50_dtm_50m_bng.tif")
FLOOD = ("flood_risk_rofrs", "trafford_rofrs_2018.geojson")
TREES = ("highways_trees", "trafford_highways_trees.csv")
LISTED = ("listed_buildings", "trafford_listed_buildings.csv")


@pytest.fixture
def catalogue(tmp_path: Path, real_data: Path) -> Settings:
    """A GeoPackage catalogue with a replaced layer (version 2), a private layer, a layer
    with dates, and a raster."""
    settings = Settings(data_dir=tmp_path / "data")
    store = GeoPackageStore(settings.catalog_path, settings.raster_dir)
    ingest(store, real_data.joinpath(*FLOOD), IngestOptions(id="flood", licence="OGL-UK-3.0"))
    ingest(store, real_data.joinpath(*TREES), IngestOptions(id="trees", batch_size=4000))
    ingest(store, real_data.joinpath(*TREES), IngestOptions(id="trees", replace=True))
    ingest(store, real_data.joinpath(*LISTED), IngestOptions(id="listed", crs="EPSG:27700"))
    ingest(store, real_data.joinpath(*DEM), IngestOptions(id="dem", licence="OGL-UK-3.0"))
    store.update_metadata("flood", attribution="© Environment Agency 2018")
    store.close()
    return settings


def test_migrate_copies_everything(catalogue: Settings, pg_url: str) -> None:
    source = GeoPackageStore(catalogue.catalog_path, catalogue.raster_dir)
    target = PostGISStore(pg_url, catalogue.raster_dir)
    report = migrate(source, target, batch_size=5000)  # several pages per layer
    assert report.ok
    assert {r.id: r.status for r in report.layers} == dict.fromkeys(
        ["dem", "flood", "listed", "trees"], "copied"
    )
    assert {r.id: r.target_count for r in report.layers if r.data_type == "vector"} == {
        "flood": 1494,
        "listed": 265,
        "trees": 15638,
    }
    for a in source.list_layers():
        b = target.get(a.id)
        assert b.to_dict() == a.to_dict(), a.id  # every catalogue field, version and times too
        if a.data_type == "raster":
            assert target.raster_path(b) == source.raster_path(a)
            assert target.raster_path(b).exists()
            continue
        ta, tb = source.read_arrow(a.id), target.read_arrow(a.id)
        assert ta.equals(tb), a.id  # same fids, attributes and WKB
    assert target.get("trees").version == 2
    assert target.get("flood").attribution == "© Environment Agency 2018"
    # a second run finds everything there already
    again = migrate(source, target)
    assert {r.status for r in again.layers} == {"skipped"}
    source.close()
    target.close()


def test_migrate_cli_then_use_the_database(
    catalogue: Settings, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(catalogue.data_dir)
    code = main(["--data-dir", data, "migrate", "--to", pg_url, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = json.loads(captured.out)
    assert sorted((r["id"], r["status"]) for r in rows) == [
        ("dem", "copied"),
        ("flood", "copied"),
        ("listed", "copied"),
        ("trees", "copied"),
    ]
    assert "4 copied" in captured.err
    # the same settings with the database URL now open the PostGIS catalogue
    store = open_store(Settings(data_dir=catalogue.data_dir, database_url=pg_url))
    assert store.backend == "postgis"
    assert store.count("flood", Query(bbox=(-2.40, 53.40, -2.30, 53.45))) > 0
    assert store.raster_path(store.get("dem")).exists()
    store.close()


def test_migrate_cli_refuses_other_urls(
    catalogue: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--data-dir", str(catalogue.data_dir), "migrate", "--to", "mysql://x/y"])
    assert code == 1
    assert "PostgreSQL URL" in capsys.readouterr().err


def test_migrate_carries_people_and_a_token_keeps_working(
    catalogue: Settings, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastapi.testclient import TestClient

    from landexplorer.access.store import AccessStore
    from landexplorer.api.app import create_app
    from tests.people import bearer

    source = GeoPackageStore(catalogue.catalog_path, catalogue.raster_dir)
    access = AccessStore.beside(source)
    access.add_user("sam", display="Sam")
    access.add_group("growers", "Growers")
    access.set_member("growers", "sam", "steward")
    token, _ = access.create_token("sam", "QGIS", "read", 30)
    access.audit("sam", "upload", "listed", 1)
    source.update_metadata("listed", owner="sam", group="growers", visibility="group")
    access.close()
    source.close()
    data = str(catalogue.data_dir)
    code = main(["--data-dir", data, "migrate", "--to", pg_url])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "accounts: 1 in the GeoPackage's access.sqlite, 1 added" in err
    assert "audit events: 1 in the GeoPackage's access.sqlite, 1 added" in err
    # again: nothing added twice
    code = main(["--data-dir", data, "migrate", "--to", pg_url])
    err = capsys.readouterr().err
    assert code == 0 and "accounts: 1 in the GeoPackage's access.sqlite, 0 added" in err
    assert "audit events: 1 in the GeoPackage's access.sqlite, 0 added" in err

    on_pg = Settings(data_dir=catalogue.data_dir, database_url=pg_url)
    target = open_store(on_pg)
    pg_access = AccessStore.beside(target)
    assert pg_access.get_group("growers").members == {"sam": "steward"}  # type: ignore[union-attr]
    assert [e.action for e in pg_access.read_audit(layer="listed")] == ["upload"]
    target.close()
    with TestClient(create_app(on_pg)) as client:
        assert client.get("/collections/listed").status_code == 404  # not without the token
        answer = client.get("/collections/listed/items?limit=1", headers=bearer(token))
        assert answer.status_code == 200, answer.text
        assert client.get("/auth/me", headers=bearer(token)).json()["user"] == "sam"
