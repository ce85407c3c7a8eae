"""Shared fixtures: explicit settings, fresh stores, and a session-wide demo catalogue
built once from the real Trafford data in ../shared/data/real."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from landexplorer.catalog import Store, open_store
from landexplorer.settings import Settings
from tests.pg import PgCluster, find_pg_bin, postgis_installed

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: The stores every ``store`` test runs against (LANDEXPLORER_TEST_STORES="gpkg" narrows it).
STORE_BACKENDS = os.environ.get("LANDEXPLORER_TEST_STORES", "gpkg postgis").split()


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real open-data bundle. Absent: skip locally, fail in CI."""
    if not (REAL_DATA / "SOURCES.md").exists():
        message = f"the real data bundle is not at {REAL_DATA}"
        if IN_CI:
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)
    return REAL_DATA


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL + PostGIS cluster on loopback, started on first use.
    Not installed: skip locally, fail in CI (scripts/system-deps.sh installs it)."""
    bin_dir = find_pg_bin()
    if bin_dir is None or not postgis_installed():
        message = "PostgreSQL 15 + PostGIS is not installed (scripts/system-deps.sh installs it)"
        if IN_CI:
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)
    cluster = PgCluster(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=STORE_BACKENDS)
def store_backend(request: pytest.FixtureRequest) -> str:
    """Which store a test's ``store`` (and its ``settings``) use: every store test runs on both."""
    return str(request.param)


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, real_data: Path) -> Settings:
    """Settings of a fresh catalogue. In a test that takes ``store``, they point at that
    store (a fresh PostGIS database for the postgis run), so an app or CLI built from them
    sees the same catalogue."""
    database_url = None
    wants = "store_backend" in request.fixturenames
    if wants and request.getfixturevalue("store_backend") == "postgis":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        database_url = cluster.new_database()
    return Settings(data_dir=tmp_path / "data", demo_mirror=real_data, database_url=database_url)


@pytest.fixture
def store(store_backend: str, settings: Settings) -> Iterator[Store]:
    s = open_store(settings)
    assert s.backend == store_backend
    yield s
    s.close()


@pytest.fixture(scope="session")
def demo_gpkg_settings(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> Settings:
    """Settings of a GeoPackage catalogue holding the whole demo (built once per session)."""
    from landexplorer.layers.demo import load_demo

    data_dir = tmp_path_factory.mktemp("demo") / "data"
    demo = Settings(data_dir=data_dir, demo_mirror=real_data)
    s = open_store(demo)
    load_demo(s, demo)
    s.close()
    return demo


@pytest.fixture(scope="session", params=STORE_BACKENDS)
def demo_settings(request: pytest.FixtureRequest, demo_gpkg_settings: Settings) -> Settings:
    """Settings of a catalogue holding the whole demo, on each store in turn (the PostGIS
    one is the GeoPackage demo copied by ``migrate``, rasters shared). Built once per
    session; tests must not change it; take ``store`` for a catalogue of your own."""
    if request.param == "gpkg":
        return demo_gpkg_settings
    from landexplorer.catalog.gpkg import GeoPackageStore
    from landexplorer.catalog.migrate import migrate
    from landexplorer.catalog.postgis import PostGISStore

    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    url = cluster.new_database("demo")
    source = GeoPackageStore(demo_gpkg_settings.catalog_path, demo_gpkg_settings.raster_dir)
    target = PostGISStore(url, demo_gpkg_settings.raster_dir)
    report = migrate(source, target)
    source.close()
    target.close()
    assert report.ok, report
    return demo_gpkg_settings.model_copy(update={"database_url": url})


@pytest.fixture
def demo_store(demo_settings: Settings) -> Iterator[Store]:
    s = open_store(demo_settings)
    yield s
    s.close()
