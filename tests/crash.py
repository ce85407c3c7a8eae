"""Helpers for the crash and disk-full tests: the real CLI in another process, a small real
filesystem to fill, and the checks that a catalogue holds nothing half-done."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from landexplorer.access.store import AccessStore
from landexplorer.catalog.postgis import _MIGRATION_LOCK
from landexplorer.settings import Settings

TREES = ("highways_trees", "trafford_highways_trees.csv")
SITES = ("allotments", "trafford_allotments.geojson")


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {**os.environ, "LANDEXPLORER_DATA_DIR": str(settings.data_dir), **extra}
    env.pop("LANDEXPLORER_DATABASE_URL", None)
    if settings.database_url:
        env["LANDEXPLORER_DATABASE_URL"] = settings.database_url
    return env


def cli_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "landexplorer.cli", *(str(a) for a in args)]


def cli(
    env: dict[str, str], *args: str | Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``landexplorer ARGS`` in a new process (a restart of the program, each time)."""
    done = subprocess.run(cli_cmd(*args), env=env, capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"landexplorer {args} failed ({done.returncode}): {done.stderr}")
    return done


def layers_json(env: dict[str, str]) -> list[dict[str, Any]]:
    """``landexplorer layers list --json`` of a fresh process."""
    return json.loads(cli(env, "layers", "list", "--json").stdout)  # type: ignore[no-any-return]


def big_csv(real_data: Path, target: Path, copies: int) -> int:
    """The real street-tree CSV repeated ``copies`` times; returns its number of rows."""
    lines = real_data.joinpath(*TREES).read_text().splitlines()
    with target.open("w") as fh:
        fh.write(lines[0] + "\n")
        for _ in range(copies):
            fh.write("\n".join(lines[1:]) + "\n")
    return (len(lines) - 1) * copies


def same_or_next(
    before: list[dict[str, Any]], after: list[dict[str, Any]], layer_id: str, count: int
) -> bool:
    """Whether ``after`` is ``before``, or ``before`` with ``layer_id`` one complete version on
    (``count`` features); every other entry unchanged. Returns True for the new version."""
    if after == before:
        return False
    old = {e["id"]: e for e in before}
    new = {e["id"]: e for e in after}
    assert set(old) == set(new), (sorted(old), sorted(new))
    for key in old:
        if key != layer_id:
            assert new[key] == old[key], key
    assert new[layer_id]["version"] == old[layer_id]["version"] + 1, new[layer_id]
    assert new[layer_id]["feature_count"] == count, new[layer_id]
    return True


# ---- is anything half-done left? --------------------------------------------------------
def assert_clean(settings: Settings) -> None:
    """Integrity ok; no staged table; no feature table that is not a catalogued version;
    no journal or temporary file; every upload job in a final state; no upload folder.
    The access store (people, tokens, the audit log) is whole too. ``access.sqlite`` and the
    catalogue run in WAL mode, so their -wal and -shm files are theirs while a server has
    them open; GDAL's private file of a layer being written (``.writing-*``) is a leftover."""
    data = settings.data_dir
    access_files: tuple[str, ...] = ()
    if settings.database_url:
        _assert_clean_pg(settings.database_url)
    else:
        access = data / "access.sqlite"
        if access.exists():
            with contextlib.closing(sqlite3.connect(access)) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            access_files = ("access.sqlite-wal", "access.sqlite-shm")
        # the catalogue is in WAL mode too (its -wal and -shm while a server has it open)
        name = settings.catalog_path.name
        access_files = (*access_files, f"{name}-wal", f"{name}-shm")
        with contextlib.closing(sqlite3.connect(settings.catalog_path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT * FROM landexplorer_staging").fetchall() == []
            storages = {r[0] for r in conn.execute("SELECT storage FROM landexplorer_layers")}
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                    "'gpkg%' AND name NOT LIKE 'rtree%' AND name NOT LIKE 'landexplorer%' "
                    "AND name NOT LIKE 'sqlite%'"
                )
            }
            assert tables == {s for s in storages if not s.endswith(".tif")}, tables
            contents = {r[0] for r in conn.execute("SELECT table_name FROM gpkg_contents")}
            assert contents - {"landexplorer_layers"} == tables, contents
    leftovers = [
        p.name
        for p in (data.iterdir() if data.is_dir() else ())
        if (p.name.endswith(("-journal", "-wal", "-shm", ".tmp")) or p.name.startswith("."))
        and p.name not in access_files
    ]
    assert leftovers == [], leftovers
    rasters = settings.raster_dir
    if rasters.is_dir():
        assert [p.name for p in rasters.iterdir() if p.name.startswith(".")] == []
    jobs = data / "jobs"
    if jobs.is_dir():
        assert [p.name for p in jobs.glob(".*.tmp")] == []
        for record in jobs.glob("*.json"):
            status = json.loads(record.read_text())["status"]
            assert status in ("successful", "failed"), (record.name, status)
    uploads = data / "uploads"
    if uploads.is_dir():
        assert [str(p) for p in uploads.rglob("*") if p.is_file()] == []


def _assert_clean_pg(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT * FROM landexplorer_staging").fetchall() == []
        storages = {r[0] for r in conn.execute("SELECT storage FROM landexplorer_layers")}
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT "
                "LIKE 'landexplorer%%' AND tablename <> 'spatial_ref_sys'"
            )
        }
        tables -= set(AccessStore.TABLES)  # people, tokens and the audit log, not layers
        assert tables == {s for s in storages if not s.endswith(".tif")}, tables


class WriteWatch:
    """Sees whether a layer version is being written right now: a staged table in the
    GeoPackage; a write transaction holding a layer's advisory lock in PostgreSQL."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pg: Any = None
        if settings.database_url:
            import psycopg

            self._pg = psycopg.connect(settings.database_url, autocommit=True)

    def __call__(self) -> bool:
        if self._pg is not None:
            row = self._pg.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() "
                "AND NOT (l.classid = 0 AND l.objid = %s)",  # not the schema migration lock
                (_MIGRATION_LOCK,),
            ).fetchone()
            return bool(row and row[0])
        try:
            uri = f"file:{self.settings.catalog_path}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=0.2)) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM landexplorer_staging WHERE what LIKE 'writing%'"
                ).fetchone()
                return bool(row and row[0])
        except sqlite3.OperationalError:
            return True  # locked: GDAL is committing a batch

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()


def wait_pg_idle(url: str | None, timeout: float = 20.0) -> None:
    """Wait until PostgreSQL has ended the sessions of a killed client."""
    if not url:
        return
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND application_name = 'landexplorer'"
            ).fetchone()
            if not row or not row[0]:
                return
            time.sleep(0.05)
    raise AssertionError("PostgreSQL still has sessions of the killed process")


# ---- a small real filesystem ------------------------------------------------------------
@contextlib.contextmanager
def small_disk(where: Path, mb: int) -> Iterator[Path]:
    """A tmpfs of ``mb`` MB mounted at ``where`` (unmounted after). Where mounting is not
    permitted (not root, no CAP_SYS_ADMIN in a container), the test is skipped saying so."""
    where.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("mounting a small filesystem is not possible here: no mount command")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={mb}m,mode=0777", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(
            "mounting a small filesystem is not permitted here "
            f"({(done.stderr or done.stdout).strip()})"
        )
    try:
        yield where
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
        with contextlib.suppress(OSError):
            where.rmdir()


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill the filesystem of ``disk`` up to ``leave`` bytes free; remove the file to free it."""
    filler = disk / "filler.bin"
    free = shutil.disk_usage(disk).free - leave
    if free > 0:
        with filler.open("ab") as fh:
            try:
                os.posix_fallocate(fh.fileno(), fh.seek(0, 2), free)
            except OSError:
                block = b"\0" * (1 << 20)
                with contextlib.suppress(OSError):
                    while True:
                        fh.write(block)
                        fh.flush()
    return filler


# ---- GDAL on the catalogue, from another process ---------------------------------------------
_GDAL_READ = r"""
import json, sys
import pyogrio
path, layer, bbox = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = {"layers": {n: t for n, t in pyogrio.list_layers(path)}}
if layer:
    out["features"] = pyogrio.read_info(path, layer=layer, force_feature_count=True)["features"]
    if bbox:
        out["in_bbox"] = pyogrio.read_arrow(path, layer=layer, bbox=tuple(bbox))[1].num_rows
print(json.dumps(out))
"""


def gdal_read(path: Path, layer: str = "", bbox: tuple[float, ...] | None = None) -> Any:
    """What GDAL (pyogrio) reads of a GeoPackage catalogue, in a process of its own: in WAL
    mode two copies of SQLite in one process must not open the same file (a second copy
    opening the WAL index believes itself its first user and resets it)."""
    done = subprocess.run(
        [sys.executable, "-c", _GDAL_READ, str(path), layer, json.dumps(bbox)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)
