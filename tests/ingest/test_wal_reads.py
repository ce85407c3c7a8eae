"""Writes never stall reads on a GeoPackage catalogue: the file is in WAL mode, GDAL writes a
new layer into a private file beside it, and the table is moved in by one transaction.

The write is held half-way (its input waits on an event), and meanwhile other threads
read the catalogue and another layer's features with a busy timeout far shorter than the
write; before, they waited on the file's gate and were told "busy"."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from landexplorer.catalog.base import BBox, Query
from landexplorer.catalog.gpkg import GeoPackageStore
from landexplorer.catalog.gpkgadopt import PRIVATE_PREFIX
from landexplorer.layers import normalize
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings
from tests.crash import gdal_read

TREES = ("highways_trees", "trafford_highways_trees.csv")
SITES = ("allotments", "trafford_allotments.geojson")


def test_reads_go_on_while_a_layer_is_written(
    settings: Settings, real_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = GeoPackageStore(settings.catalog_path, settings.raster_dir, busy_timeout=0.5)
    ingest(store, real_data.joinpath(*SITES), IngestOptions(id="sites"))
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    sites = store.read_arrow("sites").num_rows

    halfway, go_on = threading.Event(), threading.Event()
    original = normalize.Normalizer.__call__
    calls = {"n": 0}

    def held(self, raw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:  # two batches are in GDAL's hands already
            halfway.set()
            assert go_on.wait(60)
        return original(self, raw)

    monkeypatch.setattr(normalize.Normalizer, "__call__", held)
    done: list[object] = []
    writer = threading.Thread(
        target=lambda: done.append(
            ingest(store, real_data.joinpath(*TREES), IngestOptions(id="trees", batch_size=2000))
        )
    )
    writer.start()
    try:
        assert halfway.wait(60)
        assert list(settings.data_dir.glob(f"{PRIVATE_PREFIX}*.gpkg")), "GDAL writes aside"
        answers: list[int] = []

        errors: list[BaseException] = []

        def read() -> None:
            try:
                reader = GeoPackageStore(settings.catalog_path, settings.raster_dir, 0.5)
                answers.append(len(reader.list_layers()))  # "trees" is not there yet
                answers.append(reader.read_arrow("sites", Query(limit=50)).num_rows)
                answers.append(reader.count("sites"))
                reader.close()
            except BaseException as exc:  # reported by the test thread below
                errors.append(exc)

        for _ in range(3):  # other threads (their own connections), each well within 0.5 s
            t = threading.Thread(target=read)
            t.start()
            t.join(10)
            assert not t.is_alive()
        assert errors == []
        assert answers == [1, min(50, sites), sites] * 3
    finally:
        go_on.set()
        writer.join(120)
    assert done, "the write finished"
    assert {e.id for e in store.list_layers()} == {"sites", "trees"}
    assert not list(settings.data_dir.glob(f"{PRIVATE_PREFIX}*")), "the private file is gone"


def test_moved_table_is_a_whole_geopackage_layer(settings: Settings, real_data: Path) -> None:
    """The R-tree copied page for page answers like the rows it indexes, its triggers keep
    it right on edits, and GDAL reads the layer from the WAL-mode file."""
    store = GeoPackageStore(settings.catalog_path, settings.raster_dir)
    entry = ingest(store, real_data.joinpath(*TREES), IngestOptions(id="trees"))[0]
    table = entry.storage
    rtree = f"rtree_{table}_geom"
    with sqlite3.connect(store.path) as conn:
        assert conn.execute(f"SELECT rtreecheck('{rtree}')").fetchone()[0] == "ok"
        rows = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        indexed = conn.execute(f'SELECT count(*) FROM "{rtree}"').fetchone()[0]
        assert rows == indexed == entry.feature_count
        triggers = {
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (table,)
            )
        }
        assert any(t.startswith(f"{rtree}_insert") for t in triggers), triggers
        listed = conn.execute(
            "SELECT count(*) FROM gpkg_extensions WHERE table_name = ? AND "
            "extension_name = 'gpkg_rtree_index'",
            (table,),
        ).fetchone()[0]
        assert listed == 1

    # a box query through the index finds what a scan finds
    x0, y0, x1, y1 = entry.bbox
    box: BBox = (x0, y0, (x0 + x1) / 2, (y0 + y1) / 2)
    through_index = store.count("trees", Query(bbox=box))
    whole = store.read_whole("trees")
    assert 0 < through_index < whole.num_rows

    # GDAL (another SQLite, in another process) reads the layer, spatial filter included
    found = gdal_read(store.path, table, box)
    assert found["features"] == entry.feature_count
    assert found["in_bbox"] >= through_index  # GDAL's filter is by envelope
