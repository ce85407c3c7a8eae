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
