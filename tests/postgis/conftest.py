"""Fixtures for the PostGIS-specific tests: a fresh database per test, and a pair of
catalogues (GeoPackage and PostGIS) holding the same real layers, built once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from landexplorer.catalog.gpkg import GeoPackageStore
from landexplorer.catalog.postgis import PostGISStore
from landexplorer.layers.ingest import IngestOptions, ingest
from tests.pg import PgCluster

#: Real layers of every geometry family and some awkward ones (see SOURCES.md).
LAYERS = {
    "flood": ("flood_risk_rofrs", "trafford_rofrs_2018.geojson"),
    "trees": ("highways_trees", "trafford_highways_trees.csv"),
    "allotments": ("allotments", "trafford_allotments.geojson"),
    "rivers": ("watercourses", "trafford_watercourses.geojson"),
    "conservation": ("designations", "trafford_conservation_areas.geojson"),
    "aqma": ("air_quality_aqma", "trafford_aqma.geojson"),
    "lsoa2011": ("boundaries", "trafford_lsoa_2011_generalised.geojson"),
    "listed": ("listed_buildings", "trafford_listed_buildings.csv"),
}


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    return pg_cluster.new_database()


@pytest.fixture
def pg_store(pg_url: str, tmp_path: Path) -> Iterator[PostGISStore]:
    s = PostGISStore(pg_url, tmp_path / "data" / "rasters")
    yield s
    s.close()


def load_real(store: GeoPackageStore | PostGISStore, real_data: Path) -> None:
    for layer_id, parts in LAYERS.items():
        crs = "EPSG:27700" if layer_id == "listed" else None  # eastings/northings
        options = IngestOptions(id=layer_id, licence="OGL-UK-3.0", crs=crs)
        ingest(store, real_data.joinpath(*parts), options)


@pytest.fixture(scope="module")
def pair(
    pg_cluster: PgCluster, real_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GeoPackageStore, PostGISStore]]:
    """The same real layers ingested into a GeoPackage and into PostGIS."""
    folder = tmp_path_factory.mktemp("pair")
    gpkg = GeoPackageStore(folder / "gpkg" / "landexplorer.gpkg")
    pg = PostGISStore(pg_cluster.new_database("pair"), folder / "pg" / "rasters")
    load_real(gpkg, real_data)
    load_real(pg, real_data)
    yield gpkg, pg
    gpkg.close()
    pg.close()
