"""The embedded store: one GeoPackage holds the catalogue and every vector layer.

Layout inside the file:

* ``landexplorer_layers`` - the catalogue, one row per layer (registered in
  ``gpkg_contents`` as an attributes table, so QGIS shows it too);
* ``<id>_v<version>`` - one feature table per layer version, written by GDAL with an
  R-tree spatial index into a private GeoPackage beside the catalogue and moved in by one
  transaction (``gpkgadopt``), geometry column ``geom`` in EPSG:4326;
* ``landexplorer_staging`` - tables being written or retired. A table listed here is
  not (or no longer) part of the catalogue; whatever is left in it after a crash or a
  Ctrl-C is removed the next time the store is opened. A table being written names its
  writer (``writing by <owner>``, see ``owners``): it is left alone while that process
  runs, so a second process opening the catalogue never takes it away.

Opening the store writes nothing unless something needs doing, and the clean-up at
open is best effort: on a full disk the catalogue still opens, lists and serves, and a
write fails with ``DiskFull`` (nothing lost) until space is freed.

A new version becomes visible in the single transaction that repoints the catalogue
row, so readers see either the old version or the new one, never half of one. The file
is in WAL mode and only Python's SQLite opens it in this process, so readers take no
lock of this store and never wait for a writer; writers of this process wait for each
other at the file's gate (``catalog.gate``) and for other processes in SQLite.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import shapely

from landexplorer import budget
from landexplorer.catalog import history
from landexplorer.catalog.arrowtypes import COLUMN_TO_ARROW, column_type
from landexplorer.catalog.base import (
    FID,
    GEOMETRY,
    Query,
    Store,
    VersionChanged,
    check_bbox,
)
from landexplorer.catalog.changes import Changes, SqliteChanges, release, shared
from landexplorer.catalog.diskspace import disk_full, free_mb, is_disk_full
from landexplorer.catalog.editing import Edit, EditResult, FeatureState, apply_edit, states_of
from landexplorer.catalog.gate import gate_for
from landexplorer.catalog.gpkgadopt import (
    PRIVATE_PREFIX,
    adopt,
    attached,
    private_path,
    remove_private,
)
from landexplorer.catalog.history import Change
from landexplorer.catalog.model import Column, LayerEntry, check_layer_id, merge_replaced
from landexplorer.catalog.owners import is_alive, this_process
from landexplorer.catalog.sql import catalog_upsert, catalog_values, compile_filters, quote_ident
from landexplorer.errors import (
    DiskFull,
    InputError,
    LandExplorerError,
    LayerExists,
    LayerNotFound,
    StoreBusy,
)

log = logging.getLogger("landexplorer.catalog.gpkg")

CATALOG_TABLE = "landexplorer_layers"
STAGING_TABLE = "landexplorer_staging"
#: ``what`` of a staging row for a table being written, followed by its writer's tag.
WRITING_BY = "writing by "
GEOM_COLUMN = "geom"
_BUSY_TIMEOUT_S = 15.0
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def gpkg_to_wkb(blob: bytes) -> bytes:
    """Strip the GeoPackage header (and envelope) from a geometry blob, leaving ISO WKB."""
    flags = blob[3]
    return blob[8 + _ENVELOPE_BYTES.get((flags >> 1) & 7, 0) :]


#: A geometry blob as WKB, cut in SQLite for the usual headers (flags byte: no envelope or
#: an xy one, either byte order); any other header by ``gpkg_to_wkb`` (SQL ``le_wkb``). A
#: Python call per row costs more than the rest of reading a layer of points whole.
_WKB_SQL = (
    "CASE substr({g}, 4, 1) WHEN x'01' THEN substr({g}, 9) WHEN x'03' THEN substr({g}, 41) "
    "WHEN x'00' THEN substr({g}, 9) WHEN x'02' THEN substr({g}, 41) ELSE le_wkb({g}) END"
)


def _sql_wkb(blob: bytes | None) -> bytes | None:
    return None if blob is None else gpkg_to_wkb(blob)


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY, organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
CREATE TABLE IF NOT EXISTS gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
  description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT
  (strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, max_x DOUBLE,
  max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT uk_gc_table_name UNIQUE (table_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
CREATE TABLE IF NOT EXISTS {CATALOG_TABLE} (
  fid INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
  kind TEXT NOT NULL, data_type TEXT NOT NULL, visibility TEXT NOT NULL,
  licence TEXT NOT NULL, attribution TEXT NOT NULL, version INTEGER NOT NULL,
  feature_count INTEGER NOT NULL, storage TEXT NOT NULL, updated TEXT NOT NULL,
  entry TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {STAGING_TABLE} (
  name TEXT PRIMARY KEY, what TEXT NOT NULL, since TEXT NOT NULL);
"""

_WGS84_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
    'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
    'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
    'AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]'
)


class GeoPackageStore(Store):
    """The catalogue and its layers in one GeoPackage file (plus COG files beside it)."""

    backend = "gpkg"

    def __init__(
        self, path: Path, raster_dir: Path | None = None, busy_timeout: float = _BUSY_TIMEOUT_S
    ) -> None:
        self.path = Path(path)
        self.raster_dir = Path(raster_dir) if raster_dir else self.path.parent / "rasters"
        #: How long a read or write waits for another writer before giving up with StoreBusy.
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._gate = gate_for(self.path)
        self._changes: Changes | None = None  # see changes()
        self._init_lock = threading.Lock()
        self._ensure_file()
        self.cleanup()

    # ----- connections ---------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            # Within a request's time budget, SQLite stops a query when it is spent (the
            # handler runs every few thousand VM steps; 0 means go on).
            conn.set_progress_handler(_budget_spent, 20_000)
            conn.create_function("le_intersects", 5, _sql_intersects, deterministic=True)
            conn.create_function("le_intersects_wkb", 2, _sql_intersects_wkb, deterministic=True)
            conn.create_function("le_wkb", 1, _sql_wkb, deterministic=True)
            self._local.conn = conn
            self._local.cache = (None, {})
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=True
        )
        self._local.read_only = False
        try:
            conn.execute("PRAGMA schema_version").fetchone()  # opens the WAL index
        except sqlite3.OperationalError:
            conn.close()
            free = free_mb(self.path)
            if not self.path.exists() or free is None or free >= 1:
                raise
            # A full disk: SQLite cannot make the WAL index it needs even to read. The last
            # connection to close checkpointed the WAL into the file, so read the file as it
            # is; every write says the disk is full (``_write``).
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro&immutable=1",
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=True,
            )
            self._local.read_only = True
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that turns SQLite's 'database is locked' into a clear StoreBusy."""
        conn = self._conn()
        if getattr(self._local, "read_only", False):
            free = free_mb(self.path)
            if free is None or free < 1:
                raise disk_full(self.path)
            conn.close()  # room again: open for writing
            self._local.conn = None
            conn = self._conn()
        with self._gate.write(self.busy_timeout):
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _busy(exc):
                    raise StoreBusy(
                        "The catalogue is busy saving another change. Please try again in a moment."
                    ) from exc
                raise
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                # SQLite may have rolled back already (a full disk does that)
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and is_disk_full(exc):
                    raise disk_full(self.path, exc) from exc
                raise
            finally:
                self._local.cache = (None, {})

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        if self._changes is not None:
            self._changes = None
            release(str(self.path.resolve()))

    def changes(self) -> Changes:
        """The change epoch of this catalogue in this process (``catalog.changes``): moved
        when another worker process changes people, groups, tokens or links (this file's
        own entries are checked against its ``data_version`` on every lookup anyway)."""
        if self._changes is None:
            access = self.path.resolve().parent / "access.sqlite"
            self._changes = shared(str(self.path.resolve()), lambda: SqliteChanges([access]))
        return self._changes

    def _ensure_file(self) -> None:
        try:
            with self._init_lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not self._complete():
                    self._create()
                self._use_wal()
        except (sqlite3.Error, OSError) as exc:
            if is_disk_full(exc):
                raise disk_full(self.path, exc) from exc
            raise

    def _use_wal(self) -> None:
        """Put the file in WAL mode (kept in the file), so that a reader sees the last
        commit while a writer writes, and nobody waits for a long upload. Best effort: on
        a full disk or while another process holds the file the switch waits for the next
        open (in the old mode readers wait for a commit, as SQLite makes them)."""
        conn = self._conn()
        if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            return
        try:
            with self._gate.write(self.busy_timeout):
                conn.execute("PRAGMA journal_mode = WAL")
        except (sqlite3.OperationalError, StoreBusy) as exc:
            log.info("the catalogue stays in its journal mode for now: %s", exc)

    def _complete(self) -> bool:
        """Whether the file already has everything ``_create`` would make (read only)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return False
        conn = self._conn()
        if conn.execute("PRAGMA application_id").fetchone()[0] != 1196444487:
            return False
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            return False
        names = {"gpkg_spatial_ref_sys", "gpkg_contents", "gpkg_geometry_columns"}
        names |= {CATALOG_TABLE, STAGING_TABLE}
        marks = ", ".join("?" * len(names))
        found = conn.execute(
            f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({marks})",
            sorted(names),
        ).fetchone()[0]
        if found != len(names):
            return False
        srs = conn.execute(
            "SELECT count(*) FROM gpkg_spatial_ref_sys WHERE srs_id IN (-1, 0, 4326)"
        ).fetchone()[0]
        listed = conn.execute(
            "SELECT count(*) FROM gpkg_contents WHERE table_name = ?", (CATALOG_TABLE,)
        ).fetchone()[0]
        return bool(srs == 3 and listed == 1)

    def _create(self) -> None:
        """Make the GeoPackage tables and the catalogue (each only if it is missing)."""
        conn = self._conn()
        with self._gate.write(self.busy_timeout):
            # An interrupted first open may have left a file without these: set them always.
            if conn.execute("PRAGMA application_id").fetchone()[0] != 1196444487:
                conn.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                conn.execute("PRAGMA user_version = 10300")  # GeoPackage 1.3
            # one transaction: a first open cut short leaves no half-made catalogue
            try:
                conn.executescript(
                    "BEGIN;" + _SCHEMA + "INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES "
                    "('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', NULL), "
                    "('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', NULL), "
                    f"('WGS 84 geodetic', 4326, 'EPSG', 4326, '{_WGS84_WKT}', "
                    "'longitude/latitude');"
                    "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, "
                    f"description) VALUES ('{CATALOG_TABLE}', 'attributes', '{CATALOG_TABLE}', "
                    "'landexplorer layer catalogue');"
                    "COMMIT;"
                )
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    # ----- catalogue ----------------------------------------------------------------------
    def _entries(self) -> dict[str, LayerEntry]:
        conn = self._conn()
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            cached_version, cached = self._local.cache
            if cached_version == version:
                return cached  # type: ignore[no-any-return]
            rows = conn.execute(f"SELECT entry FROM {CATALOG_TABLE} ORDER BY id").fetchall()
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                raise StoreBusy("The catalogue is busy. Please try again in a moment.") from exc
            raise
        entries = {}
        for (text,) in rows:
            entry = LayerEntry.from_dict(json.loads(text))
            entries[entry.id] = entry
        self._local.cache = (version, entries)
        return entries

    def list_layers(self) -> list[LayerEntry]:
        return list(self._entries().values())

    def get(self, layer_id: str) -> LayerEntry:
        entry = self._entries().get(layer_id)
        if entry is None:
            raise LayerNotFound(f"There is no layer called '{layer_id}' in the catalogue.")
        return entry

    def _save_entry(self, conn: sqlite3.Connection, entry: LayerEntry) -> None:
        conn.execute(
            catalog_upsert(CATALOG_TABLE, "?"),
            (*catalog_values(entry), json.dumps(entry.to_dict())),
        )

    def update_metadata(self, layer_id: str, **fields: Any) -> LayerEntry:
        allowed = {
            "title",
            "description",
            "kind",
            "owner",
            "group",
            "visibility",
            "licence",
            "attribution",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise InputError(f"These layer details cannot be changed here: {sorted(unknown)}.")
        with self._write() as conn:
            entry = self._read_entry(conn, layer_id)
            for key, value in fields.items():
                setattr(entry, key, value)
            entry.updated = now_iso()
            self._save_entry(conn, entry)
        return entry

    def _read_entry(self, conn: sqlite3.Connection, layer_id: str) -> LayerEntry:
        row = conn.execute(
            f"SELECT entry FROM {CATALOG_TABLE} WHERE id = ?", (layer_id,)
        ).fetchone()
        if row is None:
            raise LayerNotFound(f"There is no layer called '{layer_id}' in the catalogue.")
        return LayerEntry.from_dict(json.loads(row[0]))

    def delete(self, layer_id: str) -> None:
        with self._write() as conn:
            entry = self._read_entry(conn, layer_id)
            conn.execute(f"DELETE FROM {CATALOG_TABLE} WHERE id = ?", (layer_id,))
            conn.execute(
                f"INSERT OR REPLACE INTO {STAGING_TABLE} VALUES (?, ?, ?)",
                (entry.storage, "retired", now_iso()),
            )
        self._try_discard(entry.storage)

    # ----- staging and clean-up -----------------------------------------------------------
    def _written_elsewhere(self, what: str, name: str) -> bool:
        """Whether a staging row is a table that a live writer is still writing: another
        process, or another thread of this one (a row of this process that no thread is
        writing is an orphan of a failed attempt)."""
        if not what.startswith(WRITING_BY):
            return False
        owner = what[len(WRITING_BY) :]
        if owner == this_process():
            return name in self._gate.writing
        return is_alive(owner)

    def _claim(self, name: str) -> None:
        """Stage a table (or raster file) this thread is about to write, removing an orphan
        of that name first; a live writer of the same name is refused with StoreBusy."""
        marked = False
        try:
            with self._write() as conn:
                row = conn.execute(
                    f"SELECT what FROM {STAGING_TABLE} WHERE name = ?", (name,)
                ).fetchone()
                if row is not None and self._written_elsewhere(row[0], name):
                    raise StoreBusy(
                        "Another upload of this layer is being saved right now. Please try "
                        "again when it has finished.",
                        detail=f"{name} is staged as {row[0]!r}",
                    )
                # A table or file of that name can only be an orphan of an earlier attempt.
                if name.endswith(".tif"):
                    with contextlib.suppress(FileNotFoundError):
                        (self.raster_dir.parent / name).unlink()
                else:
                    _drop_feature_table(conn, name)
                conn.execute(
                    f"INSERT OR REPLACE INTO {STAGING_TABLE} VALUES (?, ?, ?)",
                    (name, WRITING_BY + this_process(), now_iso()),
                )
                # marked before the commit, so no clean-up of this process takes it meanwhile
                self._gate.writing.add(name)
                marked = True
        except BaseException:
            if marked:
                self._gate.writing.discard(name)  # not staged after all (a full disk)
            raise

    def _release(self, name: str) -> None:
        self._gate.writing.discard(name)

    def _discard(self, name: str) -> None:
        """Remove a staged or retired table (or raster file) and its staging row."""
        with self._write() as conn:
            if name.endswith(".tif"):
                with contextlib.suppress(FileNotFoundError):
                    (self.raster_dir.parent / name).unlink()
            else:
                _drop_feature_table(conn, name)
            conn.execute(f"DELETE FROM {STAGING_TABLE} WHERE name = ?", (name,))

    def _try_discard(self, name: str) -> bool:
        """``_discard``, or leave it staged for the next ``cleanup()`` when the catalogue is
        busy or the disk is full (removing needs a little room for SQLite's journal)."""
        try:
            self._discard(name)
        except (StoreBusy, DiskFull) as exc:
            log.info("left %s staged for a later clean-up: %s", name, exc.detail or exc.public)
            return False
        return True

    def cleanup(self) -> int:
        """Remove whatever an interrupted write or an old version left behind.

        Best effort: what cannot be removed now (busy catalogue, full disk) stays staged
        for the next time; tables that a live process is still writing are left alone.
        """
        try:
            rows = self._fetch(f"SELECT name, what FROM {STAGING_TABLE}", [])
            in_use = {e.storage for e in self._entries().values()}
        except StoreBusy as exc:
            log.info("clean-up skipped: %s", exc.public)
            return 0
        removed = 0
        live = {name for name, what in rows if self._written_elsewhere(what, name)}
        for private in self.path.parent.glob(f"{PRIVATE_PREFIX}*.gpkg"):
            if private.name[len(PRIVATE_PREFIX) : -len(".gpkg")] not in live:
                remove_private(private)  # GDAL's file of a write that stopped half-way
        for name, what in rows:
            try:
                if name in in_use:
                    with self._write() as wconn:
                        wconn.execute(f"DELETE FROM {STAGING_TABLE} WHERE name = ?", (name,))
                    continue
                if self._written_elsewhere(what, name):
                    continue
                self._discard(name)
                removed += 1
            except (StoreBusy, DiskFull) as exc:
                log.info("left %s staged for a later clean-up: %s", name, exc.detail or exc.public)
            except sqlite3.OperationalError as exc:  # e.g. a read-only copy of the catalogue
                log.info("left %s staged for a later clean-up: %s", name, exc)
        return removed + remove_stale_incoming(self.raster_dir)

    def _next_version(self, entry: LayerEntry, replace: bool) -> LayerEntry | None:
        check_layer_id(entry.id)
        try:
            old = self.get(entry.id)
        except LayerNotFound:
            return None
        if not replace:
            raise LayerExists(
                f"A layer called '{entry.id}' already exists. Use --replace to store this file "
                "as its new version, or choose another id with --id."
            )
        return old

    def _commit_version(self, entry: LayerEntry, old: LayerEntry | None) -> LayerEntry:
        return self._commit_versions([(entry, old)])[0]

    def _commit_versions(
        self, staged: list[tuple[LayerEntry, LayerEntry | None]], discard: bool = True
    ) -> list[LayerEntry]:
        """Make written versions current, all in one transaction (each with the version
        it replaces, or None for a new layer); then remove the replaced ones (``discard``)."""
        stamp = now_iso()
        with self._write() as conn:
            for entry, old in staged:
                current = conn.execute(
                    f"SELECT version, entry FROM {CATALOG_TABLE} WHERE id = ?", (entry.id,)
                ).fetchone()
                if old is None and current is not None:
                    raise LayerExists(f"A layer called '{entry.id}' was added meanwhile.")
                if current is not None:
                    previous = LayerEntry.from_dict(json.loads(current[1]))
                    merge_replaced(entry, previous)  # kept details, as they are now
                    entry.created = previous.created
                    # edits made while the file was written moved the version on
                    entry.version = max(entry.version, previous.version + 1)
                    self._note_replaced(conn, previous, entry)  # the history says so
                    conn.execute(
                        f"INSERT OR REPLACE INTO {STAGING_TABLE} VALUES (?, ?, ?)",
                        (previous.storage, "retired", stamp),
                    )
                else:
                    entry.created = stamp
                entry.updated = stamp
                self._save_entry(conn, entry)
                conn.execute(f"DELETE FROM {STAGING_TABLE} WHERE name = ?", (entry.storage,))
        for entry, old in staged if discard else ():
            if old is not None and old.storage != entry.storage:
                self._try_discard(old.storage)
        return [entry for entry, _ in staged]

    # ----- writing ------------------------------------------------------------------------
    def write_vector(
        self,
        entry: LayerEntry,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        *,
        replace: bool = False,
    ) -> LayerEntry:
        return self.write_vectors([(entry, schema, batches)], replace=replace)[0]

    def write_vectors(
        self,
        items: Iterable[tuple[LayerEntry, pa.Schema, Iterable[pa.RecordBatch]]],
        *,
        replace: bool = False,
    ) -> list[LayerEntry]:
        """The layers of one load: each table is written and staged first, then all of
        them become current in ONE transaction; on any failure, none does."""
        staged: list[tuple[LayerEntry, LayerEntry | None]] = []
        try:
            try:
                for entry, schema, batches in items:
                    if any(other.id == entry.id for other, _ in staged):
                        raise InputError(f"Two layers of this load would both be '{entry.id}'.")
                    staged.append((entry, self._write_table(entry, schema, batches, replace)))
                self._commit_versions(staged, discard=False)
            except BaseException:
                for entry, _ in staged:
                    self._try_discard(entry.storage)
                raise
        finally:
            for entry, _ in staged:
                self._release(entry.storage)
        for entry, old in staged:
            if old is not None and old.storage != entry.storage:
                self._try_discard(old.storage)
        return [entry for entry, _ in staged]

    def _write_table(
        self,
        entry: LayerEntry,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        replace: bool,
    ) -> LayerEntry | None:
        """Write a version's table, staged and claimed (the caller commits and releases
        it); returns the version it will replace. On failure nothing is left."""
        import pyogrio

        old = self._next_version(entry, replace)
        entry.version = (old.version + 1) if old else 1
        entry.data_type = "vector"
        if old is not None:
            merge_replaced(entry, old)  # refused early if it would change the type
        table = f"{entry.id}_v{entry.version}"
        entry.storage = table
        self._claim(table)

        failure: list[BaseException] = []
        written = {"largest": 0, "rows": 0}

        def guarded() -> Iterator[pa.RecordBatch]:
            try:
                for batch in batches:
                    written["largest"] = max(written["largest"], batch.nbytes)
                    written["rows"] += batch.num_rows
                    yield batch
            except BaseException as exc:  # re-raised below, whatever it was
                failure.append(exc)
                raise

        reader = pa.RecordBatchReader.from_batches(schema, guarded())
        pyogrio.set_gdal_config_options(_GDAL_WRITE_CONFIG)
        private = private_path(self.path, table)
        try:
            remove_private(private)  # an orphan of an attempt cut short
            # GDAL writes into a GeoPackage of its own (no gate, no lock of the catalogue:
            # readers and other writers go on), which is then moved in (``gpkgadopt``)
            pyogrio.write_arrow(
                reader,
                private,
                layer=table,
                driver="GPKG",
                geometry_name=GEOMETRY,
                geometry_type=entry.geometry_type or "Unknown",
                crs="EPSG:4326",
                layer_options={"GEOMETRY_NAME": GEOM_COLUMN, "FID": FID, "SPATIAL_INDEX": "YES"},
                # the catalogue's own version (GDAL writes a 1.4 file's date-times without
                # zero milliseconds, and the stores give them as a 1.3 file keeps them)
                dataset_options={"VERSION": "1.3"},
                append=False,
            )
            if failure:
                raise failure[0]
            self._adopt(private, table)
            entry.columns = [
                Column(f.name, column_type(f.type)) for f in schema if f.name != GEOMETRY
            ]
            self._set_contents_metadata(entry)
            return old
        except BaseException as exc:
            self._try_discard(table)
            self._release(table)
            if failure and exc is not failure[0]:
                raise failure[0] from None
            if isinstance(exc, LandExplorerError) or not isinstance(exc, Exception):
                raise  # our own errors, and interruptions (Ctrl-C), pass through unchanged
            if is_disk_full(exc) or _ran_out_of_room(self.path, exc, **written):
                raise disk_full(self.path, exc) from exc
            raise LandExplorerError(
                "The layer could not be saved into the catalogue; nothing was changed.",
                detail=repr(exc),
            ) from exc
        finally:
            remove_private(private)

    def _adopt(self, private: Path, table: str) -> None:
        """Move the table GDAL wrote into ``private`` into the catalogue, in one write
        transaction (readers of the catalogue go on meanwhile: WAL)."""
        conn = self._conn()
        gate = self._gate.write(self.busy_timeout, what="(moving a written layer in)")
        with gate, attached(conn, private) as src, self._write() as wconn:
            adopt(wconn, src, table, GEOM_COLUMN)

    def _set_contents_metadata(self, entry: LayerEntry) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE gpkg_contents SET identifier = ?, description = ? WHERE table_name = ?",
                (f"{entry.title} [{entry.storage}]", entry.description, entry.storage),
            )

    def write_raster(
        self, entry: LayerEntry, cog_path: Path, *, replace: bool = False
    ) -> LayerEntry:
        old = self._next_version(entry, replace)
        entry.version = (old.version + 1) if old else 1
        entry.data_type = "raster"
        if old is not None:
            merge_replaced(entry, old)  # refused early if it would change the type
        self.raster_dir.mkdir(parents=True, exist_ok=True)
        target = self.raster_dir / f"{entry.id}_v{entry.version}.tif"
        entry.storage = f"{self.raster_dir.name}/{target.name}"
        self._claim(entry.storage)
        try:
            if Path(cog_path).resolve().parent == self.raster_dir.resolve():
                os.replace(cog_path, target)
            else:
                shutil.copyfile(cog_path, target)
            return self._commit_version(entry, old)
        except BaseException as exc:
            self._try_discard(entry.storage)
            if isinstance(exc, OSError) and is_disk_full(exc):
                raise disk_full(target, exc) from exc
            raise
        finally:
            self._release(entry.storage)

    # ----- reading ------------------------------------------------------------------------
    def _where(self, entry: LayerEntry, query: Query) -> tuple[str, str, list[Any]]:
        """FROM/JOIN and WHERE clauses and their parameters for a query."""
        table = quote_ident(entry.storage)
        source = f"{table} AS t"
        spatial = _spatial_for(quote_ident(f"rtree_{entry.storage}_{GEOM_COLUMN}"))
        clauses, params = compile_filters(query.filters, entry.column_names(), spatial=spatial)
        if query.bbox is not None:
            x0, y0, x1, y1 = check_bbox(query.bbox)
            rtree = quote_ident(f"rtree_{entry.storage}_{GEOM_COLUMN}")
            source += f" JOIN {rtree} AS r ON t.{FID} = r.id"
            spatial_params: list[Any] = [x0, x1, y0, y1]
            clauses.insert(0, "r.maxx >= ? AND r.minx <= ? AND r.maxy >= ? AND r.miny <= ?")
            if not query.loose_bbox:
                clauses.insert(
                    1,
                    "((r.minx >= ? AND r.maxx <= ? AND r.miny >= ? AND r.maxy <= ?) "
                    f"OR le_intersects(t.{GEOM_COLUMN}, ?, ?, ?, ?))",
                )
                spatial_params += [x0, x1, y0, y1, x0, y0, x1, y1]
            if query.min_size is not None:
                # the R-tree's bounds are rounded outwards: never narrower than the feature
                clauses.insert(1, "(r.maxx - r.minx >= ? OR r.maxy - r.miny >= ?)")
                spatial_params[4:4] = [float(query.min_size[0]), float(query.min_size[1])]
            params = [*spatial_params, *params]
        if query.fids is not None:
            fids = [int(f) for f in query.fids]
            clauses.append(f"t.{FID} IN ({', '.join('?' * len(fids))})" if fids else "0 = 1")
            params.extend(fids)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return source, where, params

    def _retrying(self, read: Callable[[], Any], pinned: LayerEntry | None = None) -> Any:
        """Run a read again if a new version retired the table between lookup and query
        (a read pinned to one version says so instead: ``VersionChanged``)."""
        if pinned is not None:
            try:
                return read()
            except _Stale:
                raise VersionChanged(pinned.id) from None
        for _ in range(3):
            try:
                return read()
            except _Stale:
                time.sleep(0.02)
        raise StoreBusy("This layer is being replaced right now. Please try again in a moment.")

    def read_arrow(self, layer: str | LayerEntry, query: Query | None = None) -> pa.Table:
        pinned = layer if isinstance(layer, LayerEntry) else None
        return self._retrying(lambda: self._read_arrow(layer, query), pinned)  # type: ignore[no-any-return]

    def _read_arrow(self, layer: str | LayerEntry, query: Query | None) -> pa.Table:
        query = query or Query()
        entry = self._pinned_or_current(layer)
        layer_id = entry.id
        names = list(query.columns) if query.columns is not None else entry.column_names()
        types = {c.name: c.type for c in entry.columns}
        for name in names:
            if name not in types:
                raise InputError(f"Layer '{layer_id}' has no column called '{name}'.")
        source, where, params = self._where(entry, query)
        geom = _WKB_SQL.format(g=f"t.{GEOM_COLUMN}")
        cols = ", ".join([f"t.{FID}", *(f"t.{quote_ident(n)}" for n in names), geom])
        sql = f"SELECT {cols} FROM {source}{where} ORDER BY t.{FID}"
        if query.limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params = [*params, int(query.limit), int(query.offset)]
        elif query.offset:
            sql += " LIMIT -1 OFFSET ?"
            params = [*params, int(query.offset)]
        rows = self._fetch(sql, params)
        # a column at a time (one unpacking of a million rows into zip() costs more)
        arrays: dict[str, pa.Array] = {FID: pa.array([r[0] for r in rows], type=pa.int64())}
        for i, name in enumerate(names, start=1):
            values: Sequence[Any] = [r[i] for r in rows]
            if types[name] == "boolean":  # SQLite keeps booleans as 0 and 1
                values = [None if v is None else bool(v) for v in values]
            arrays[name] = pa.array(values, type=COLUMN_TO_ARROW[types[name]])
        arrays[GEOMETRY] = pa.array([r[-1] for r in rows], type=pa.binary())
        return pa.table(arrays)

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                # No gate: only this process's one SQLite (Python's) opens the file, and in
                # WAL mode a reader sees the last commit while a writer goes on
                return self._conn().execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    raise _Stale() from exc
                if "interrupted" in str(exc):
                    budget.check()
                if not _busy(exc):
                    raise
                if time.monotonic() > deadline:
                    raise StoreBusy("The catalogue is busy. Please try again in a moment.") from exc
                time.sleep(0.05)

    def count(self, layer: str | LayerEntry, query: Query | None = None) -> int:
        pinned = layer if isinstance(layer, LayerEntry) else None
        return self._retrying(lambda: self._count(layer, query), pinned)  # type: ignore[no-any-return]

    def _count(self, layer: str | LayerEntry, query: Query | None) -> int:
        query = query or Query()
        entry = self._pinned_or_current(layer)
        if query.bbox is None and not query.filters and query.fids is None:
            return entry.feature_count
        source, where, params = self._where(entry, query)
        return int(self._fetch(f"SELECT count(*) FROM {source}{where}", params)[0][0])

    def feature_centres(self, entry: LayerEntry) -> np.ndarray:
        """From the R-tree alone (its bounds are rounded outwards to 32 bits)."""
        rtree = quote_ident(f"rtree_{entry.storage}_{GEOM_COLUMN}")
        rows = self._retrying(
            lambda: self._fetch(f"SELECT (minx + maxx) / 2, (miny + maxy) / 2 FROM {rtree}", []),
            entry,
        )
        return np.asarray(rows, dtype=np.float64).reshape(-1, 2)

    def table_name(self, layer_id: str) -> str:
        """The feature table of a layer's current version (for GDAL-level readers)."""
        return self._vector(layer_id).storage

    # ----- editing features (catalog.editing) and their history (catalog.history) ------------
    def _history_table(self, conn: sqlite3.Connection) -> None:
        """Make the history table (in this file) if it is not there yet, inside the
        write transaction (a rolled-back first edit leaves no table, and none is needed)."""
        for sql in history.ddl("sqlite"):
            conn.execute(sql)

    def _note_replaced(
        self, conn: sqlite3.Connection, previous: LayerEntry, entry: LayerEntry
    ) -> None:
        """Inside a replace's commit: a history row saying the layer was replaced."""
        self._history_table(conn)
        row = history.replaced_row(previous, entry)
        conn.execute(history.insert_sql("?"), history.insert_values(row))

    def edit_feature(self, layer_id: str, edit: Edit) -> EditResult:
        with self._write() as conn:
            for name, fn in _GPKG_FUNCTIONS.items():
                conn.create_function(name, 1, fn, deterministic=True)
            self._history_table(conn)
            return apply_edit(_GpkgEdit(self, conn, layer_id), edit, history.stamp())

    def history(
        self,
        layer_id: str,
        *,
        feature_id: int | None = None,
        after: int = 0,
        limit: int = 100,
        since: str | None = None,
    ) -> list[Change]:
        sql, params = history.select_sql("?", layer_id, feature_id, after, limit, since)
        try:
            rows = self._fetch(sql, params)
        except _Stale:  # no history table yet: nothing was ever edited here
            return []
        return [Change.from_row(r) for r in rows]


def _budget_spent() -> int:
    """SQLite progress handler: non-zero interrupts the query (its request ran out of time)."""
    return 1 if budget.expired() else 0


#: A raster being built (``.incoming-*.tif`` beside the COGs) is an orphan of a stopped
#: process once it is this old: building one takes seconds, or minutes for a huge mosaic.
_INCOMING_AGE_S = 3600.0


def remove_stale_incoming(raster_dir: Path) -> int:
    """Remove rasters left half-built in ``raster_dir`` by a stopped process."""
    removed = 0
    cutoff = time.time() - _INCOMING_AGE_S
    with contextlib.suppress(OSError):
        for path in raster_dir.glob(".incoming-*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
    return removed


def _ran_out_of_room(path: Path, exc: BaseException, largest: int, rows: int) -> bool:
    """Whether a failed GDAL write most likely ran out of disk space.

    When SQLite meets a full disk it rolls the transaction back itself; GDAL's own
    ROLLBACK then fails, and that is the only error it reports ("cannot rollback - no
    transaction is active"), with the journal that filled the disk already gone. So: that
    symptom (or any GDAL write error) with less room left than the failed step needed
    (a few batches, plus the spatial index built at the end).
    """
    free = free_mb(path)
    if free is None:
        return False
    need_mb = (3 * largest + 64 * rows) / (1024 * 1024) + 8
    return free < need_mb


class _Stale(Exception):
    """The table a read used was retired by a newer version meanwhile."""


# GDAL builds a new layer's R-tree in memory with a fast bulk load, up to this much memory;
# past it, it goes on inserting row by row. 48 MB covers a layer of about 1.2 million
# features; beyond that an ingest takes longer but its memory stays flat.
# The private GeoPackage GDAL writes is copied into the catalogue by a durable commit, so
# GDAL need not wait for the disk on its own file.
_GDAL_WRITE_CONFIG = {
    "OGR_GPKG_MAX_RAM_USAGE_RTREE": str(48 * 1024 * 1024),
    "OGR_SQLITE_SYNCHRONOUS": "OFF",
}


def _sql_intersects(blob: bytes | None, x0: float, y0: float, x1: float, y1: float) -> int:
    """SQLite function: does a GeoPackage geometry intersect a box (exact, not envelope)?"""
    if blob is None:
        return 0
    geom = shapely.from_wkb(gpkg_to_wkb(blob))
    return int(shapely.intersects(geom, shapely.box(x0, y0, x1, y1)))


def _spatial_for(rtree: str) -> Any:
    """A spatial-filter compiler for one table: R-tree envelope candidates, then the exact test."""

    def compile_spatial(op: str, wkb: bytes) -> tuple[str, list[Any]]:
        if op != "intersects":
            raise InputError(f"The spatial test '{op}' is not available.")
        x0, y0, x1, y1 = shapely.from_wkb(wkb).bounds
        return (
            f"(t.{FID} IN (SELECT id FROM {rtree} WHERE maxx >= ? AND minx <= ? AND maxy >= ? "
            f"AND miny <= ?) AND le_intersects_wkb(t.{GEOM_COLUMN}, ?))",
            [x0, x1, y0, y1, wkb],
        )

    return compile_spatial


_PREPARED: dict[bytes, Any] = {}


def _sql_intersects_wkb(blob: bytes | None, wkb: bytes) -> int:
    """SQLite function: does a GeoPackage geometry intersect a WKB geometry (exact)?"""
    if blob is None:
        return 0
    other = _PREPARED.get(wkb)
    if other is None:
        if len(_PREPARED) > 64:  # a small cache of prepared query geometries
            _PREPARED.clear()
        other = shapely.from_wkb(wkb)
        shapely.prepare(other)
        _PREPARED[wkb] = other
    return int(shapely.intersects(other, shapely.from_wkb(gpkg_to_wkb(blob))))


def _drop_feature_table(conn: sqlite3.Connection, table: str) -> None:
    """Remove a feature table and every GeoPackage registration of it."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    rtree = f"rtree_{table}_{GEOM_COLUMN}"
    for name in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (table,)
    ).fetchall():
        conn.execute(f"DROP TRIGGER IF EXISTS {quote_ident(name[0])}")
    conn.execute(f"DROP TABLE IF EXISTS {quote_ident(rtree)}")
    if exists:
        conn.execute(f"DROP TABLE {quote_ident(table)}")
    for meta in ("gpkg_extensions", "gpkg_geometry_columns", "gpkg_ogr_contents", "gpkg_contents"):
        has = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (meta,)
        ).fetchone()
        if has:
            conn.execute(f"DELETE FROM {meta} WHERE lower(table_name) = lower(?)", (table,))
    for meta in ("gpkg_data_columns", "gpkg_metadata_reference"):
        has = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (meta,)
        ).fetchone()
        if has:
            conn.execute(f"DELETE FROM {meta} WHERE lower(table_name) = lower(?)", (table,))


# ----- editing: one feature's row, through Python's sqlite3 ----------------------------------
def wkb_to_gpkg(wkb: bytes) -> bytes:
    """A GeoPackage geometry blob (little-endian header, xy envelope, EPSG:4326) of WKB."""
    import struct

    x0, y0, x1, y1 = shapely.from_wkb(wkb).bounds
    return struct.pack("<2sBBi4d", b"GP", 0, 0b011, 4326, x0, x1, y0, y1) + wkb


def _blob_bounds(blob: bytes | None) -> tuple[float, float, float, float] | None:
    if blob is None:
        return None
    geom = shapely.from_wkb(gpkg_to_wkb(blob))
    return None if geom.is_empty else tuple(geom.bounds)  # type: ignore[return-value]


def _bound(i: int) -> Callable[[bytes | None], float | None]:
    def fn(blob: bytes | None) -> float | None:
        bounds = _blob_bounds(blob)
        return None if bounds is None else bounds[i]

    return fn


#: The SQL functions the GeoPackage R-tree triggers call (GDAL defines them in its own
#: SQLite; Python's sqlite3 needs them to insert or update a row of a layer table).
_GPKG_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "ST_IsEmpty": lambda blob: None if blob is None else int(_blob_bounds(blob) is None),
    "ST_MinX": _bound(0),
    "ST_MinY": _bound(1),
    "ST_MaxX": _bound(2),
    "ST_MaxY": _bound(3),
}


class _GpkgEdit:
    """``editing.EditTx`` on a GeoPackage write transaction."""

    def __init__(self, store: GeoPackageStore, conn: sqlite3.Connection, layer_id: str) -> None:
        self.store, self.conn, self.layer_id = store, conn, layer_id

    def entry(self) -> LayerEntry:
        return self.store._read_entry(self.conn, self.layer_id)

    def read(self, entry: LayerEntry, fid: int) -> FeatureState | None:
        return states_of(self.store._read_arrow(entry, Query(fids=[fid]))).get(fid)

    def next_fid(self, entry: LayerEntry) -> int:
        table = quote_ident(entry.storage)
        top = self.conn.execute(f"SELECT coalesce(max({FID}), 0) FROM {table}").fetchone()[0]
        seen = self.conn.execute(
            f"SELECT coalesce(max(feature_id), 0) FROM {history.HISTORY_TABLE} WHERE layer_id = ?",
            (entry.id,),
        ).fetchone()[0]
        return int(max(top, seen)) + 1

    def _columns(self, entry: LayerEntry, state: FeatureState) -> tuple[list[str], list[Any]]:
        names = [GEOM_COLUMN, *(c.name for c in entry.columns)]
        values = [wkb_to_gpkg(state.wkb), *(state.properties.get(c.name) for c in entry.columns)]
        return [quote_ident(n) for n in names], values

    def insert(self, entry: LayerEntry, fid: int, state: FeatureState) -> None:
        names, values = self._columns(entry, state)
        marks = ", ".join("?" * (len(names) + 1))
        self.conn.execute(
            f"INSERT INTO {quote_ident(entry.storage)} ({FID}, {', '.join(names)}) "
            f"VALUES ({marks})",
            [fid, *values],
        )

    def update(self, entry: LayerEntry, fid: int, state: FeatureState) -> None:
        names, values = self._columns(entry, state)
        sets = ", ".join(f"{n} = ?" for n in names)
        self.conn.execute(
            f"UPDATE {quote_ident(entry.storage)} SET {sets} WHERE {FID} = ?", [*values, fid]
        )

    def delete(self, entry: LayerEntry, fid: int) -> None:
        self.conn.execute(f"DELETE FROM {quote_ident(entry.storage)} WHERE {FID} = ?", (fid,))

    def save_entry(self, entry: LayerEntry) -> None:
        self.store._save_entry(self.conn, entry)

    def record(self, row: dict[str, Any]) -> int:
        cur = self.conn.execute(history.insert_sql("?"), history.insert_values(row))
        return int(cur.lastrowid or 0)
