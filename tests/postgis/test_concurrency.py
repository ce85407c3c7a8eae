"""Many readers and several writers at once.

PostGIS: 8 reader threads and 2 writer threads replacing the same layer over and over;
no reader ever errs or sees half a version, and every write lands as its own version.
GeoPackage: the same mix never fails with anything but a clear StoreBusy ("busy, try
again"), and a write that meets a held lock gives up quickly with that message.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyogrio
import pytest
import shapely

from landexplorer.catalog import LayerEntry, Query, Store
from landexplorer.catalog.gpkg import GeoPackageStore
from landexplorer.errors import StoreBusy

TREES = ("highways_trees", "trafford_highways_trees.csv")
BOX = (-2.36, 53.40, -2.30, 53.44)


def _versions(real_data: Path) -> dict[int, tuple[pa.Schema, list[pa.RecordBatch], int]]:
    """Two contents to alternate between: the first 6,000 and the first 9,000 trees, with
    how many of each fall in BOX (computed here with shapely)."""
    table = pyogrio.read_arrow(real_data.joinpath(*TREES))[1]
    lon = table.column("lon").to_numpy().astype(float)
    lat = table.column("lat").to_numpy().astype(float)
    points = shapely.points(lon, lat)
    out = {}
    for n in (6000, 9000):
        geoms = pa.array(shapely.to_wkb(points[:n]), pa.binary())
        batch = pa.record_batch(
            [table.column("species").slice(0, n).combine_chunks().cast(pa.string()), geoms],
            names=["species", "geometry"],
        )
        inside = int(shapely.intersects(points[:n], shapely.box(*BOX)).sum())
        chunks = pa.Table.from_batches([batch]).to_batches(max_chunksize=1500)
        out[n] = (batch.schema, chunks, inside)
    return out


def _write(store: Store, layer_id: str, n: int, content: tuple, replace: bool) -> LayerEntry:
    schema, batches, _ = content
    entry = LayerEntry(id=layer_id, title=layer_id, licence="OGL-UK-3.0", feature_count=n)
    return store.write_vector(entry, schema, iter(batches), replace=replace)


def _hammer(store: Store, real_data: Path, seconds: float, writes_each: int) -> dict:
    contents = _versions(real_data)
    _write(store, "shared", 6000, contents[6000], replace=False)
    stop = threading.Event()
    errors: list[BaseException] = []
    busy = {"n": 0}
    reads = {"n": 0}
    lock = threading.Lock()
    valid_counts = {n: c[2] for n, c in contents.items()}

    def reader() -> None:
        last_version = 0
        while not stop.is_set():
            try:
                entry = store.get("shared")
                assert entry.version >= last_version, "versions went backwards"
                last_version = entry.version
                whole = store.read_arrow("shared", Query(columns=[])).num_rows
                assert whole in valid_counts, f"half a version: {whole} rows"
                inside = store.count("shared", Query(bbox=BOX))
                assert inside in valid_counts.values(), f"bbox count {inside}"
                with lock:
                    reads["n"] += 1
            except StoreBusy:
                with lock:
                    busy["n"] += 1
            except BaseException as exc:  # every other failure fails the test
                errors.append(exc)
                return

    def writer(k: int) -> None:
        for i in range(writes_each):
            n = (6000, 9000)[(i + k) % 2]
            try:
                _write(store, "shared", n, contents[n], replace=True)
                _write(store, f"own_{k}", n, contents[n], replace=True)
            except StoreBusy:
                with lock:
                    busy["n"] += 1
            except BaseException as exc:
                errors.append(exc)
                return

    readers = [threading.Thread(target=reader) for _ in range(8)]
    writers = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=300)
    time.sleep(seconds)  # readers keep going a little after the last write
    stop.set()
    for t in readers:
        t.join(timeout=60)
    assert not errors, repr(errors[:3])
    assert reads["n"] > 0
    return {"busy": busy["n"], "reads": reads["n"]}


def test_postgis_many_readers_two_writers(pg_store: Store, real_data: Path, pg_url: str) -> None:
    import psycopg

    result = _hammer(pg_store, real_data, seconds=0.5, writes_each=6)
    assert result["busy"] == 0
    # writers of one layer queue, so each of the 12 replacements is its own version
    assert pg_store.get("shared").version == 1 + 2 * 6
    assert pg_store.exact_count("shared") == pg_store.get("shared").feature_count
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT LIKE 'landexplorer%%' AND tablename <> 'spatial_ref_sys'"
        ).fetchall()
    pg_store.cleanup()
    assert {r[0] for r in rows} <= {"shared_v13", "own_0_v6", "own_1_v6", "shared_v12"}


def test_geopackage_mix_fails_only_with_busy(tmp_path: Path, real_data: Path) -> None:
    store = GeoPackageStore(tmp_path / "c.gpkg")
    _hammer(store, real_data, seconds=0.5, writes_each=3)
    assert store.count("shared") in (6000, 9000)


def test_geopackage_held_lock_gives_store_busy(tmp_path: Path, real_data: Path) -> None:
    store = GeoPackageStore(tmp_path / "c.gpkg", busy_timeout=0.5)
    contents = _versions(real_data)
    _write(store, "shared", 6000, contents[6000], replace=False)
    other = sqlite3.connect(tmp_path / "c.gpkg", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # somebody else is in the middle of saving
    try:
        started = time.monotonic()
        with pytest.raises(StoreBusy) as info:
            store.update_metadata("shared", title="New title")
        assert time.monotonic() - started < 10
        assert "try again" in info.value.public
        # readers are not held up by a writer: the catalogue is in WAL mode
        assert store.count("shared", Query(bbox=BOX)) == contents[6000][2]
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.update_metadata("shared", title="New title").title == "New title"
    assert store.count("shared", Query(bbox=BOX)) == contents[6000][2]


def test_postgis_pool_exhausted_gives_store_busy(pg_url: str, tmp_path: Path) -> None:
    """With every pooled connection held by a long write, a reader gets a clear StoreBusy
    after the busy timeout, and everything works again once the write is done."""
    from landexplorer.catalog.postgis import PostGISStore

    store = PostGISStore(pg_url, tmp_path / "rasters", pool_size=1, busy_timeout=0.5)
    schema = pa.schema([("name", pa.string()), ("geometry", pa.binary())])
    point = shapely.to_wkb(shapely.Point(-2.3, 53.4))
    release = threading.Event()
    started = threading.Event()

    def slow_batches():  # type: ignore[no-untyped-def]
        yield pa.record_batch([pa.array(["a"]), pa.array([point], pa.binary())], schema=schema)
        started.set()
        release.wait(30)  # an upload still being read from a slow client

    writer = threading.Thread(
        target=store.write_vector,
        args=(LayerEntry(id="slow", title="Slow", feature_count=1), schema, slow_batches()),
    )
    writer.start()
    try:
        assert started.wait(30)
        with pytest.raises(StoreBusy) as info:
            store.list_layers()
        assert "try again" in info.value.public
    finally:
        release.set()
        writer.join(30)
    assert [e.id for e in store.list_layers()] == ["slow"]
    assert store.exact_count("slow") == 1
    store.close()


def test_postgis_pool_hands_out_the_connection_used_last(pg_url: str, tmp_path: Path) -> None:
    """After a burst has opened several connections, one visitor's requests in a row all
    run on the same PostgreSQL backend (warm, its statements prepared), not on each of
    the pool's connections in turn; under load the others are still used."""
    from landexplorer.catalog.postgis import PostGISStore

    store = PostGISStore(pg_url, tmp_path / "rasters", pool_size=4)
    held = threading.Barrier(4)
    pids: set[int] = set()

    def burst() -> None:  # four at once: the pool grows to four connections
        with store._connection() as conn:
            pids.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            held.wait(30)

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(pids) == 4
    in_a_row = {store._fetch("SELECT pg_backend_pid()")[0][0] for _ in range(12)}
    assert len(in_a_row) == 1 and in_a_row <= pids
    store.close()
