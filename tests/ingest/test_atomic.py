"""Writes are atomic: a failure or an interruption mid-write leaves the catalogue, and the
previous version of the layer, exactly as they were."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from landexplorer.catalog import Store
from landexplorer.catalog.gpkg import GeoPackageStore
from landexplorer.layers import normalize
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings
from tests.crash import gdal_read

TREES = ("highways_trees", "trafford_highways_trees.csv")


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    # GDAL may add its metadata tables (gpkg_extensions, ...) on first use; those are fine
    return {n for n in names if not n.startswith(("gpkg_", "sqlite_"))}


@pytest.fixture
def gpkg(settings: Settings) -> GeoPackageStore:
    return GeoPackageStore(settings.catalog_path, settings.raster_dir)


def _fail_on_third_batch(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    original = normalize.Normalizer.__call__
    calls = {"n": 0}

    def broken(self, raw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise error
        return original(self, raw)

    monkeypatch.setattr(normalize.Normalizer, "__call__", broken)


@pytest.mark.parametrize("error", [RuntimeError("disk trouble"), KeyboardInterrupt()])
def test_failure_mid_write_keeps_previous_version(
    gpkg: GeoPackageStore, real_data: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    path = real_data.joinpath(*TREES)
    first = ingest(gpkg, path, IngestOptions(id="trees", batch_size=2000))[0]
    before_tables = _tables(gpkg.path)
    before_rows = gpkg.read_arrow("trees").to_pydict()
    _fail_on_third_batch(monkeypatch, error)
    with pytest.raises(type(error)):
        ingest(gpkg, path, IngestOptions(id="trees", replace=True, batch_size=2000))
    monkeypatch.undo()
    after = gpkg.get("trees")
    assert (after.version, after.storage, after.feature_count) == (1, first.storage, 15638)
    assert gpkg.read_arrow("trees").to_pydict() == before_rows
    assert _tables(gpkg.path) == before_tables  # the half-written version is gone
    # and the layer can still be replaced properly afterwards
    second = ingest(gpkg, path, IngestOptions(id="trees", replace=True))[0]
    assert second.version == 2 and second.feature_count == 15638
    assert "trees_v1" not in _tables(gpkg.path)


def test_failure_on_new_layer_leaves_nothing(
    gpkg: GeoPackageStore, real_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _tables(gpkg.path)
    _fail_on_third_batch(monkeypatch, ValueError("boom"))
    with pytest.raises(ValueError):
        ingest(gpkg, real_data.joinpath(*TREES), IngestOptions(id="trees", batch_size=2000))
    assert gpkg.list_layers() == []
    assert _tables(gpkg.path) == before


def _start_big_ingest(settings: Settings, real_data: Path, tmp_path: Path) -> subprocess.Popen[str]:
    """Start `landexplorer ingest` of ~940,000 trees in another process and return once its
    feature table is being written."""
    big = tmp_path / "big.csv"
    src = real_data.joinpath(*TREES).read_text().splitlines()
    with big.open("w") as fh:
        fh.write(src[0] + "\n")
        for _ in range(60):
            fh.write("\n".join(src[1:]) + "\n")
    env = {**os.environ, "LANDEXPLORER_DATA_DIR": str(settings.data_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "landexplorer.cli", "ingest", str(big), "--id", "big"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "big_v1" not in _tables(settings.catalog_path):
        time.sleep(0.02)
    return proc


def test_killed_process_leaves_catalogue_and_is_cleaned(
    settings: Settings, real_data: Path, tmp_path: Path
) -> None:
    """A process killed mid-write (power cut, kill -9) leaves an orphan table that is not
    in the catalogue; the next open removes it."""
    store = GeoPackageStore(settings.catalog_path, settings.raster_dir)
    sites = real_data / "allotments" / "trafford_allotments.geojson"
    ingest(store, sites, IngestOptions(id="sites"))
    store.close()
    proc = _start_big_ingest(settings, real_data, tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    reopened = GeoPackageStore(settings.catalog_path, settings.raster_dir)
    assert [e.id for e in reopened.list_layers()] == ["sites"]
    assert reopened.read_frame("sites").shape[0] == 35
    assert "big_v1" not in _tables(settings.catalog_path)


def test_ctrl_c_in_cli_changes_nothing(settings: Settings, real_data: Path, tmp_path: Path) -> None:
    GeoPackageStore(settings.catalog_path).close()
    proc = _start_big_ingest(settings, real_data, tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Nothing was changed" in err and "Traceback" not in err
    store = GeoPackageStore(settings.catalog_path)
    assert store.list_layers() == []
    assert "big_v1" not in _tables(settings.catalog_path)


def test_catalogue_is_a_valid_geopackage(store: Store, real_data: Path) -> None:
    if not isinstance(store, GeoPackageStore):
        pytest.skip("GeoPackage only")
    ingest(
        store, real_data / "allotments" / "trafford_allotments.geojson", IngestOptions(id="sites")
    )
    ingest(store, real_data.joinpath(*TREES), IngestOptions(id="trees"))
    layers = gdal_read(store.path)["layers"]
    assert layers["sites_v1"] == "MultiPolygon" and layers["trees_v1"] == "Point"
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for table in ("sites_v1", "trees_v1"):
            n = conn.execute(f'SELECT count(*) FROM "rtree_{table}_geom"').fetchone()[0]
            m = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            assert n == m > 0
    ogrinfo = shutil.which("ogrinfo")
    if ogrinfo is None:
        if os.environ.get("CI"):
            pytest.fail("ogrinfo (gdal-bin) is required in CI")
        pytest.skip("ogrinfo not installed")
    out = subprocess.run(
        [ogrinfo, "-ro", "-so", str(store.path), "trees_v1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Feature Count: 15638" in out
    assert "EPSG" in out and "4326" in out
