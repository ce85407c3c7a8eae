"""The PostGIS store: the same catalogue on PostgreSQL, for groups that outgrow one file.

Layout in the database (schema ``public`` unless the URL's search_path says otherwise):

* ``landexplorer_migrations`` - which schema migrations have been applied;
* ``landexplorer_layers`` - the catalogue, one row per layer, the full entry as JSONB;
* ``<id>_v<version>`` - one table per layer version: ``fid bigint`` primary key, the
  attribute columns, ``geom geometry(Geometry, 4326)`` with a GiST index;
* ``landexplorer_staging`` - tables or raster files retired by a newer version or a delete
  but not yet removed (a reader may still have been using them).

A new version is created, filled (binary COPY), indexed and made current in ONE
transaction: PostgreSQL's DDL is transactional, so a failed or interrupted upload leaves
nothing behind, and readers see the old version until the commit. Writers of the same
layer queue on a transaction-scoped advisory lock. Rasters are COG files beside the
catalogue, as in the GeoPackage store.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from landexplorer import budget
from landexplorer.catalog import changes, history
from landexplorer.catalog.arrowtypes import COLUMN_TO_ARROW, column_type
from landexplorer.catalog.base import (
    FID,
    GEOMETRY,
    Query,
    SqlRunner,
    Store,
    VersionChanged,
    check_bbox,
)
from landexplorer.catalog.changes import PostgresChanges
from landexplorer.catalog.diskspace import database_disk_full, disk_full, is_disk_full
from landexplorer.catalog.editing import Edit, EditResult, FeatureState, apply_edit, states_of
from landexplorer.catalog.gpkg import now_iso, remove_stale_incoming
from landexplorer.catalog.history import Change
from landexplorer.catalog.model import Column, LayerEntry, check_layer_id, merge_replaced
from landexplorer.catalog.pgcopy import fill_table
from landexplorer.catalog.pgquery import (
    coerce_filters,
    redact,
    select_expr,
    touches_box,
)
from landexplorer.catalog.sql import (
    GEOM_COLUMN,
    catalog_upsert,
    catalog_values,
    compile_filters,
    quote_ident,
)
from landexplorer.errors import (
    InputError,
    LandExplorerError,
    LayerExists,
    LayerNotFound,
    StoreBusy,
)

log = logging.getLogger("landexplorer.catalog.postgis")
_T = TypeVar("_T")

CATALOG_TABLE = "landexplorer_layers"
STAGING_TABLE = "landexplorer_staging"
MIGRATIONS_TABLE = "landexplorer_migrations"
#: Any constant: the advisory lock key that serialises schema migrations.
_MIGRATION_LOCK = 0x6C616E64

#: Schema migrations, applied in order, each once, in one transaction with its row in
#: ``landexplorer_migrations``. Append new ones; never edit an applied one.
MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "catalogue, staging",
        f"""
        CREATE EXTENSION IF NOT EXISTS postgis;
        CREATE TABLE {CATALOG_TABLE} (
          id text PRIMARY KEY, title text NOT NULL, kind text NOT NULL,
          data_type text NOT NULL, visibility text NOT NULL, licence text NOT NULL,
          attribution text NOT NULL, version integer NOT NULL,
          feature_count bigint NOT NULL, storage text NOT NULL, updated text NOT NULL,
          entry jsonb NOT NULL);
        CREATE TABLE {STAGING_TABLE} (
          name text PRIMARY KEY, what text NOT NULL, since text NOT NULL);
        """,
    ),
    (2, "feature history", ";\n".join(history.ddl("postgres"))),
]

_UPDATABLE = {
    "title",
    "description",
    "kind",
    "owner",
    "group",
    "visibility",
    "licence",
    "attribution",
}


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is a dependency
        raise LandExplorerError(
            "The PostgreSQL driver (psycopg) is not installed.", detail=repr(exc)
        ) from exc
    return psycopg


def _reason(exc: Exception) -> str:
    """What PostgreSQL (or libpq) said when a connection failed, without the host, port or
    URL: "FATAL: password authentication failed for user ...", "FATAL: could not write init
    file" (its disk is full), "Connection refused. Is the server running ...?"."""
    text = redact(str(exc))
    text = re.sub(r"connection failed:\s*", "", text)
    text = re.sub(r"connection to server (at|on) .*? failed:\s*", "", text)
    lines = [re.sub(r"\s+", " ", line).strip() for line in text.splitlines()]
    said = ". ".join(line.rstrip(".") for line in lines if line)
    return said or type(exc).__name__


def _not_found(layer_id: str) -> LayerNotFound:
    return LayerNotFound(f"There is no layer called '{layer_id}' in the catalogue.")


@functools.cache
def _last_used_first() -> Any:
    """psycopg's ``ConnectionPool``, handing out the connection given back last.

    The stock pool hands them out in turn (first in, first out), so a server that once had
    eight requests at a time then spreads even one visitor's tiles over eight PostgreSQL
    backends: each is cold in the CPU's caches and prepares every statement for itself.
    Measured on 2 cores with two connections taking turns, the same tile query took
    1.16-1.18x as long as on one warm connection (z12 and z14 tiles of the 100k-polygon
    layer); handed out last-used-first, within the noise of it. Taking the last one back
    first keeps the busy few hot, and the idle rest are the ones the pool closes when it
    shrinks. (It overrides one private method of psycopg_pool 3.2-3.3; a test checks the
    order, so a release that renames it fails there, not silently.)"""
    from psycopg_pool import ConnectionPool

    class LastUsedFirst(ConnectionPool):  # type: ignore[type-arg]
        def _get_ready_connection(self, timeout: float | None) -> Any:
            if self._pool:  # called under the pool's lock
                self._pool.rotate(1)  # the connection returned last comes first
            return super()._get_ready_connection(timeout)

    return LastUsedFirst


_SET_TIMEOUT = "SELECT set_config('statement_timeout', %s, true)"


def _pipelined(conn: Any, cur: Any, sql: str, params: list[Any], timeout: list[str]) -> None:
    """Run ``sql`` on ``cur`` in a transaction of its own whose statement_timeout is
    ``timeout``: BEGIN, the timeout, the query and COMMIT sent together and answered in one
    round trip (psycopg's pipeline mode; four round trips one by one cost ~0.6 ms against
    ~0.25 ms on one machine). A failure rolls the transaction back before it is raised."""
    psycopg = _psycopg()
    with conn.cursor() as side:
        try:
            with conn.pipeline():
                side.execute("BEGIN")
                side.execute(_SET_TIMEOUT, timeout)
                cur.execute(sql, params)
                side.execute("COMMIT")
        except BaseException:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
            raise


class PostGISStore(Store):
    """The catalogue and its layers in a PostgreSQL database with PostGIS."""

    backend = "postgis"

    def __init__(
        self, url: str, raster_dir: Path, *, pool_size: int = 10, busy_timeout: float = 15.0
    ) -> None:
        self.url = url
        self.raster_dir = Path(raster_dir)
        #: How long an operation waits for a free connection before giving up with StoreBusy.
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        #: (storage table, created, checksum) -> column -> pg type. A table's name comes
        #: back when a layer is deleted and loaded again (``x_v1``), perhaps by another
        #: server process: the version's identity is part of the key.
        self._types: dict[tuple[str, str, str], dict[str, str]] = {}
        self._changes: PostgresChanges | None = None
        #: How many times each analysis push-down answered in SQL (tests check the path)
        self.pushdowns: Counter[str] = Counter()
        self._probe()
        # A bounded pool: many threads (an API worker has dozens) share a few connections,
        # so a busy server queues on the pool instead of exhausting max_connections.
        self._pool = _last_used_first()(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "application_name": "landexplorer"},
            timeout=busy_timeout,
            open=True,
        )
        self.migrate()
        self.cleanup()

    # ----- connections ---------------------------------------------------------------------
    def _probe(self) -> None:
        """Connect once directly, so an unreachable database is a plain error at once."""
        psycopg = _psycopg()
        try:
            psycopg.connect(self.url, connect_timeout=10).close()
        except psycopg.OperationalError as exc:
            raise LandExplorerError(
                "The catalogue database cannot be reached. Check that PostgreSQL is "
                "running and LANDEXPLORER_DATABASE_URL is right. "
                f"PostgreSQL said: {_reason(exc)}",
                detail=redact(str(exc)),
            ) from exc

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection (autocommit) for this thread; re-entrant, so whatever runs
        inside a transaction uses that transaction's connection."""
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        from psycopg_pool import PoolTimeout

        try:
            context = self._pool.connection()
            conn = context.__enter__()
        except PoolTimeout as exc:
            raise StoreBusy(
                "The catalogue database is busy. Please try again in a moment.",
                detail=f"no free connection within {self.busy_timeout} s",
            ) from exc
        self._local.conn = conn
        try:
            yield conn
        except BaseException as exc:
            self._local.conn = None
            context.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._local.conn = None
        context.__exit__(None, None, None)

    def close(self) -> None:
        self._pool.close()
        if self._changes is not None:
            self._changes = None
            changes.release(self.url)

    # ----- following changes made by other processes ----------------------------------------
    def changes(self) -> PostgresChanges:
        """The change epoch of this catalogue in this process (``catalog.changes``): moved
        by NOTIFY from the triggers on the catalogue and access tables."""
        if self._changes is None:
            psycopg = _psycopg()
            url = self.url
            found = changes.shared(
                url,
                lambda: PostgresChanges(
                    url,
                    lambda: psycopg.connect(
                        url,
                        autocommit=True,
                        connect_timeout=5,
                        application_name="landexplorer-changes",
                    ),
                ),
            )
            assert isinstance(found, PostgresChanges)
            self._changes = found
        return self._changes

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A transaction on a pooled connection (committed at the end, rolled back on any
        exception, Ctrl-C included). The database's disk being full is ``DiskFull``."""
        psycopg = _psycopg()
        try:
            with self._connection() as conn, conn.transaction():
                yield conn
        except psycopg.Error as exc:
            if is_disk_full(exc):
                raise database_disk_full(exc) from exc
            raise

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A transaction on a pooled connection, for the tables kept beside the catalogue
        (people and groups: ``landexplorer.access.store``)."""
        return self._transaction()

    def _fetch(self, sql: str, params: Iterable[Any] = (), binary: bool = False) -> list[Any]:
        left = budget.remaining()
        with self._connection() as conn, conn.cursor(binary=binary) as cur:
            if left is None:
                cur.execute(sql, list(params))
                return list(cur.fetchall())
            # Within a request's time budget, PostgreSQL itself stops the query at the end
            # of it (statement_timeout, local to this one transaction).
            budget.check()
            psycopg = _psycopg()
            timeout = [f"{max(1, math.ceil(left * 1000))}ms"]
            try:
                if (
                    conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
                    or not psycopg.Pipeline.is_supported()
                ):
                    # within a transaction already open: a savepoint (and set_config's
                    # local timeout lasts to that transaction's end)
                    with conn.transaction():
                        cur.execute(_SET_TIMEOUT, timeout)
                        cur.execute(sql, list(params))
                        return list(cur.fetchall())
                _pipelined(conn, cur, sql, list(params), timeout)
                return list(cur.fetchall())
            except psycopg.errors.QueryCanceled as exc:
                budget.check()
                if "statement timeout" in str(exc):
                    # ours, set just above: the budget is spent within PostgreSQL's clock
                    raise budget.spent() from exc
                raise

    # ----- schema ----------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Apply the schema migrations this database has not had yet; returns their numbers."""
        psycopg = _psycopg()
        applied: list[int] = []
        try:
            with self._transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version integer PRIMARY "
                    "KEY, description text NOT NULL, applied timestamptz NOT NULL DEFAULT now())"
                )
                done = {r[0] for r in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")}
                for version, description, sql in MIGRATIONS:
                    if version in done:
                        continue
                    conn.execute(sql)
                    conn.execute(
                        f"INSERT INTO {MIGRATIONS_TABLE} (version, description) VALUES (%s, %s)",
                        (version, description),
                    )
                    applied.append(version)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise LandExplorerError(
                "The database user may not create the catalogue tables or the PostGIS "
                "extension. Ask the database administrator to run CREATE EXTENSION postgis "
                "and grant CREATE on the schema.",
                detail=str(exc),
            ) from exc
        return applied

    def schema_version(self) -> int:
        """The highest migration applied."""
        row = self._fetch(f"SELECT coalesce(max(version), 0) FROM {MIGRATIONS_TABLE}")
        return int(row[0][0])

    # ----- catalogue ----------------------------------------------------------------------
    def list_layers(self) -> list[LayerEntry]:
        rows = self._fetch(f"SELECT entry FROM {CATALOG_TABLE} ORDER BY id")
        return [LayerEntry.from_dict(r[0]) for r in rows]

    def get(self, layer_id: str) -> LayerEntry:
        rows = self._fetch(f"SELECT entry FROM {CATALOG_TABLE} WHERE id = %s", (layer_id,))
        if not rows:
            raise _not_found(layer_id)
        return LayerEntry.from_dict(rows[0][0])

    def _read_entry(self, conn: Any, layer_id: str, lock: bool = False) -> LayerEntry | None:
        sql = f"SELECT entry FROM {CATALOG_TABLE} WHERE id = %s" + (" FOR UPDATE" if lock else "")
        row = conn.execute(sql, (layer_id,)).fetchone()
        return None if row is None else LayerEntry.from_dict(row[0])

    def _save_entry(self, conn: Any, entry: LayerEntry) -> None:
        from psycopg.types.json import Jsonb

        conn.execute(
            catalog_upsert(CATALOG_TABLE, "%s"), (*catalog_values(entry), Jsonb(entry.to_dict()))
        )

    def update_metadata(self, layer_id: str, **fields: Any) -> LayerEntry:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise InputError(f"These layer details cannot be changed here: {sorted(unknown)}.")
        with self._transaction() as conn:
            entry = self._read_entry(conn, layer_id, lock=True)
            if entry is None:
                raise _not_found(layer_id)
            for key, value in fields.items():
                setattr(entry, key, value)
            entry.updated = now_iso()
            self._save_entry(conn, entry)
        return entry

    def delete(self, layer_id: str) -> None:
        with self._transaction() as conn:
            self._layer_lock(conn, layer_id)
            entry = self._read_entry(conn, layer_id, lock=True)
            if entry is None:
                raise _not_found(layer_id)
            conn.execute(f"DELETE FROM {CATALOG_TABLE} WHERE id = %s", (layer_id,))
            self._retire(conn, entry.storage)
        self._discard(entry.storage)

    # ----- retired tables and files ------------------------------------------------------
    def _retire(self, conn: Any, name: str) -> None:
        conn.execute(
            f"INSERT INTO {STAGING_TABLE} VALUES (%s, 'retired', %s) "
            "ON CONFLICT (name) DO UPDATE SET what = excluded.what, since = excluded.since",
            (name, now_iso()),
        )

    def _discard(self, name: str) -> None:
        """Remove a retired table (or raster file); left for ``cleanup`` if a reader holds it."""
        psycopg = _psycopg()
        try:
            with self._transaction() as conn:
                # a reader still inside the old table must not stall the writer for long
                conn.execute("SET LOCAL lock_timeout = '2s'")
                in_use = conn.execute(
                    f"SELECT 1 FROM {CATALOG_TABLE} WHERE storage = %s", (name,)
                ).fetchone()
                if not in_use:
                    if name.endswith(".tif"):
                        with contextlib.suppress(FileNotFoundError):
                            (self.raster_dir.parent / name).unlink()
                    else:
                        conn.execute(f"DROP TABLE IF EXISTS {quote_ident(name)}")
                conn.execute(f"DELETE FROM {STAGING_TABLE} WHERE name = %s", (name,))
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            pass  # still retired: the next cleanup() removes it
        for key in [k for k in self._types if k[0] == name]:
            self._types.pop(key, None)

    def cleanup(self) -> int:
        """Remove tables and files that older versions or deleted layers left behind.

        Best effort, as at start-up: what cannot be removed now (a lock held, a full disk)
        is left for the next time. A crash cannot leave a half-written table here: each
        version is written in one transaction.
        """
        psycopg = _psycopg()
        try:
            names = [r[0] for r in self._fetch(f"SELECT name FROM {STAGING_TABLE}")]
        except (psycopg.Error, StoreBusy) as exc:
            log.info("clean-up skipped: %s", exc)
            return 0
        removed = 0
        for name in names:
            try:
                self._discard(name)
                removed += 1
            except (psycopg.Error, StoreBusy) as exc:
                log.info("left %s for a later clean-up: %s", name, exc)
        return removed + remove_stale_incoming(self.raster_dir)

    # ----- writing ------------------------------------------------------------------------
    @staticmethod
    def _layer_lock(conn: Any, layer_id: str) -> None:
        """Queue behind any other writer of this layer until our transaction ends."""
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("landexplorer:" + layer_id,))

    def _begin_version(self, conn: Any, entry: LayerEntry, replace: bool) -> LayerEntry | None:
        """Lock the layer, check the id, and work out the new version number."""
        check_layer_id(entry.id)
        self._layer_lock(conn, entry.id)
        old = self._read_entry(conn, entry.id, lock=True)
        if old is not None and not replace:
            raise LayerExists(
                f"A layer called '{entry.id}' already exists. Use --replace to store this file "
                "as its new version, or choose another id with --id."
            )
        entry.version = (old.version + 1) if old else 1
        return old

    def _finish_version(self, conn: Any, entry: LayerEntry, old: LayerEntry | None) -> None:
        if old is not None:
            merge_replaced(entry, old)  # kept details, read under the lock
            self._note_replaced(conn, old, entry)  # the history says so
        stamp = now_iso()
        entry.created = old.created if old else stamp
        entry.updated = stamp
        if old is not None and old.storage != entry.storage:
            self._retire(conn, old.storage)
        conn.execute(f"DELETE FROM {STAGING_TABLE} WHERE name = %s", (entry.storage,))
        self._save_entry(conn, entry)

    def write_vector(
        self,
        entry: LayerEntry,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        *,
        replace: bool = False,
    ) -> LayerEntry:
        return self._write_vector(entry, schema, batches, replace=replace, keep_version=False)

    def import_vector(
        self, entry: LayerEntry, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
    ) -> LayerEntry:
        """Store a layer copied from another catalogue, keeping its version number, times
        and (when the batches carry a ``fid`` column) its feature ids."""
        return self._write_vector(entry, schema, batches, replace=True, keep_version=True)

    def _write_vector(
        self,
        entry: LayerEntry,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        *,
        replace: bool,
        keep_version: bool,
    ) -> LayerEntry:
        psycopg = _psycopg()
        try:
            with self._transaction() as conn:
                old = self._fill_version(conn, entry, schema, batches, replace, keep_version)
        except psycopg.Error as exc:
            raise LandExplorerError(
                "The layer could not be saved into the catalogue; nothing was changed.",
                detail=repr(exc),
            ) from exc
        if old is not None and old.storage != entry.storage:
            self._discard(old.storage)
        return entry

    def _fill_version(
        self,
        conn: Any,
        entry: LayerEntry,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        replace: bool,
        keep_version: bool = False,
    ) -> LayerEntry | None:
        """Create, fill and catalogue a version table inside ``conn``'s transaction;
        returns the version it replaces (its table is retired, dropped after commit)."""
        entry.data_type = "vector"
        created, updated, version = entry.created, entry.updated, entry.version
        old = self._begin_version(conn, entry, replace)
        if keep_version:
            entry.version = version
        entry.storage = f"{entry.id}_v{entry.version}"
        if old is not None and old.storage == entry.storage:
            old = None  # re-importing the same version: the table is rebuilt in place
        fill_table(conn, entry.storage, schema, batches)
        names = [f.name for f in schema if f.name not in (GEOMETRY, FID)]
        entry.columns = [Column(n, column_type(schema.field(n).type)) for n in names]
        self._finish_version(conn, entry, old)
        if keep_version and created:
            entry.created, entry.updated = created, updated or entry.updated
            self._save_entry(conn, entry)
        return old

    def write_vectors(
        self,
        items: Iterable[tuple[LayerEntry, pa.Schema, Iterable[pa.RecordBatch]]],
        *,
        replace: bool = False,
    ) -> list[LayerEntry]:
        """The layers of one load in ONE transaction: every one of them, or none."""
        psycopg = _psycopg()
        done: list[tuple[LayerEntry, LayerEntry | None]] = []
        try:
            with self._transaction() as conn:
                for entry, schema, batches in items:
                    if any(other.id == entry.id for other, _ in done):
                        raise InputError(f"Two layers of this load would both be '{entry.id}'.")
                    done.append((entry, self._fill_version(conn, entry, schema, batches, replace)))
        except psycopg.Error as exc:
            raise LandExplorerError(
                "The layers could not be saved into the catalogue; nothing was changed.",
                detail=repr(exc),
            ) from exc
        for entry, old in done:
            if old is not None and old.storage != entry.storage:
                self._discard(old.storage)
        return [entry for entry, _ in done]

    def write_raster(
        self, entry: LayerEntry, cog_path: Path, *, replace: bool = False
    ) -> LayerEntry:
        return self._write_raster(entry, cog_path, replace=replace, keep_version=False)

    def import_raster(self, entry: LayerEntry, cog_path: Path) -> LayerEntry:
        """Catalogue a raster copied from another catalogue, keeping its version and times
        (the COG is copied unless it already is the file this store would use)."""
        return self._write_raster(entry, cog_path, replace=True, keep_version=True)

    def _write_raster(
        self, entry: LayerEntry, cog_path: Path, *, replace: bool, keep_version: bool
    ) -> LayerEntry:
        entry.data_type = "raster"
        created, updated, version = entry.created, entry.updated, entry.version
        self.raster_dir.mkdir(parents=True, exist_ok=True)
        placed: Path | None = None
        try:
            with self._transaction() as conn:
                old = self._begin_version(conn, entry, replace)
                if keep_version:
                    entry.version = version
                target = self.raster_dir / f"{entry.id}_v{entry.version}.tif"
                entry.storage = f"{self.raster_dir.name}/{target.name}"
                if old is not None and old.storage == entry.storage:
                    old = None
                source = Path(cog_path).resolve()
                if source != target.resolve():
                    if source.parent == self.raster_dir.resolve():
                        os.replace(source, target)
                    else:
                        shutil.copyfile(source, target)
                    placed = target
                self._finish_version(conn, entry, old)
                if keep_version and created:
                    entry.created, entry.updated = created, updated or entry.updated
                    self._save_entry(conn, entry)
        except BaseException as exc:
            if placed is not None:
                placed.unlink(missing_ok=True)
            if isinstance(exc, OSError) and is_disk_full(exc):
                raise disk_full(self.raster_dir, exc) from exc
            raise
        if old is not None and old.storage != entry.storage:
            self._discard(old.storage)
        return entry

    # ----- reading ------------------------------------------------------------------------
    def _pg_types(self, entry: LayerEntry) -> dict[str, str]:
        """Column types of a version's table (immutable, so cached by the version)."""
        table = entry.storage
        key = (table, entry.created, entry.checksum)
        types = self._types.get(key)
        if types is None:
            rows = self._fetch(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
                (quote_ident(table),),
            )
            types = {r[0]: r[1] for r in rows}
            self._types[key] = types
        return types

    def where(self, entry: LayerEntry, query: Query, alias: str = "t") -> tuple[str, list[Any]]:
        """The WHERE clause (with ``alias``) and its parameters for a query on a layer."""
        types = {c.name: c.type for c in entry.columns}
        filters = coerce_filters(query.filters, types)
        geom = f"{alias}.{GEOM_COLUMN}"

        def spatial(op: str, wkb: bytes) -> tuple[str, list[Any]]:
            if op != "intersects":
                raise InputError(f"The spatial test '{op}' is not available.")
            return f"ST_Intersects({geom}, ST_GeomFromWKB(%s, 4326))", [bytes(wkb)]

        clauses, params = compile_filters(filters, entry.column_names(), "%s", spatial=spatial)
        # SQLite's LIKE ignores case (ASCII); ILIKE gives the same answers here
        clauses = [c.replace(" LIKE %s", " ILIKE %s") for c in clauses]
        if query.bbox is not None:
            x0, y0, x1, y1 = check_bbox(query.bbox)
            touching, box = touches_box(geom, (x0, y0, x1, y1))
            clauses.insert(0, touching)
            params = [*box, *params]
        if query.fids is not None:
            clauses.append(f"{alias}.{FID} = ANY(%s)")
            params.append([int(f) for f in query.fids])
        return ((" WHERE " + " AND ".join(clauses)) if clauses else ""), params

    def _retrying(self, layer: str | LayerEntry, run: Any) -> Any:
        """Run a read; if a new version retired the table meanwhile, read the new one
        (a read pinned to one version says so instead: ``VersionChanged``)."""
        psycopg = _psycopg()
        if isinstance(layer, LayerEntry):
            try:
                return run(layer)
            except psycopg.errors.UndefinedTable:
                raise VersionChanged(layer.id) from None
        layer_id = layer
        for attempt in range(3):
            entry = self._vector(layer_id)
            try:
                return run(entry)
            except psycopg.errors.UndefinedTable:
                if attempt == 2:
                    raise StoreBusy(
                        "This layer is being replaced right now. Please try again in a moment."
                    ) from None
                time.sleep(0.05)
        raise AssertionError("unreachable")

    def read_arrow(self, layer: str | LayerEntry, query: Query | None = None) -> pa.Table:
        query = query or Query()
        layer_id = layer.id if isinstance(layer, LayerEntry) else layer

        def run(entry: LayerEntry) -> pa.Table:
            names = list(query.columns) if query.columns is not None else entry.column_names()
            types = {c.name: c.type for c in entry.columns}
            for name in names:
                if name not in types:
                    raise InputError(f"Layer '{layer_id}' has no column called '{name}'.")
            pg_types = (
                self._pg_types(entry)
                if any(types[n] in ("date", "datetime") for n in names)
                else {}
            )
            where, params = self.where(entry, query)
            cols = [f"t.{FID}", *(select_expr(n, types[n], pg_types.get(n)) for n in names)]
            cols.append(f"ST_AsBinary(t.{GEOM_COLUMN})")
            sql = f"SELECT {', '.join(cols)} FROM {quote_ident(entry.storage)} AS t{where}"
            sql += f" ORDER BY t.{FID}"
            if query.limit is not None:
                sql += " LIMIT %s"
                params.append(int(query.limit))
            if query.offset:
                sql += " OFFSET %s"
                params.append(int(query.offset))
            rows = self._fetch(sql, params, binary=True)
            columns = list(zip(*rows, strict=True)) if rows else [()] * (len(names) + 2)
            arrays: dict[str, pa.Array] = {FID: pa.array(columns[0], type=pa.int64())}
            for i, name in enumerate(names, start=1):
                arrays[name] = pa.array(columns[i], type=COLUMN_TO_ARROW[types[name]])
            arrays[GEOMETRY] = pa.array(columns[-1], type=pa.binary())
            return pa.table(arrays)

        return self._retrying(layer, run)  # type: ignore[no-any-return]

    def count(self, layer: str | LayerEntry, query: Query | None = None) -> int:
        query = query or Query()

        def run(entry: LayerEntry) -> int:
            if query.bbox is None and not query.filters and query.fids is None:
                return entry.feature_count
            where, params = self.where(entry, query)
            sql = f"SELECT count(*) FROM {quote_ident(entry.storage)} AS t{where}"
            return int(self._fetch(sql, params)[0][0])

        return self._retrying(layer, run)  # type: ignore[no-any-return]

    def feature_centres(self, entry: LayerEntry) -> np.ndarray:
        """From each geometry's bounding box, worked out in the database."""

        def run(e: LayerEntry) -> np.ndarray:
            sql = (
                f"SELECT (ST_XMin(t.{GEOM_COLUMN}) + ST_XMax(t.{GEOM_COLUMN})) / 2, "
                f"(ST_YMin(t.{GEOM_COLUMN}) + ST_YMax(t.{GEOM_COLUMN})) / 2 "
                f"FROM {quote_ident(e.storage)} AS t WHERE t.{GEOM_COLUMN} IS NOT NULL"
            )
            return np.asarray(self._fetch(sql, binary=True), dtype=np.float64).reshape(-1, 2)

        return self._retrying(entry, run)  # type: ignore[no-any-return]

    def exact_count(self, layer_id: str) -> int:
        """The rows really in the layer's table (``count`` trusts the catalogue)."""

        def run(entry: LayerEntry) -> int:
            sql = f"SELECT count(*) FROM {quote_ident(entry.storage)}"
            return int(self._fetch(sql)[0][0])

        return self._retrying(layer_id, run)  # type: ignore[no-any-return]

    # ----- the push-down capability (SQL in analysis.pgsql and tiles.pgtiles) -----------
    def sql(self) -> SqlRunner:
        """Spatial SQL on this database, for analysis and tiles to push work down to."""
        return _Sql(self)

    def table_name(self, layer_id: str) -> str:
        """The table of a layer's current version (for SQL-level readers)."""
        return self._vector(layer_id).storage

    # ----- editing features (catalog.editing) and their history (catalog.history) ------------
    def _note_replaced(self, conn: Any, previous: LayerEntry, entry: LayerEntry) -> None:
        """Inside a replace's transaction: a history row saying the layer was replaced."""
        if entry.data_type == "vector" or previous.data_type == "vector":
            row = history.replaced_row(previous, entry)
            conn.execute(history.insert_sql("%s"), history.insert_values(row))

    def edit_feature(self, layer_id: str, edit: Edit) -> EditResult:
        psycopg = _psycopg()
        try:
            with self._transaction() as conn:
                self._layer_lock(conn, layer_id)  # behind a replace or another edit
                return apply_edit(_PgEdit(self, conn, layer_id), edit, history.stamp())
        except psycopg.errors.UndefinedTable as exc:
            raise StoreBusy(
                "This layer is being replaced right now. Please try again in a moment."
            ) from exc

    def history(
        self,
        layer_id: str,
        *,
        feature_id: int | None = None,
        after: int = 0,
        limit: int = 100,
        since: str | None = None,
    ) -> list[Change]:
        sql, params = history.select_sql("%s", layer_id, feature_id, after, limit, since)
        return [Change.from_row(r) for r in self._fetch(sql, params)]


class _Sql:
    """The ``SqlRunner`` of a PostGIS store: its connections, reads that follow a replaced
    version, and columns read as ``read_arrow`` reads them."""

    def __init__(self, store: PostGISStore) -> None:
        self._store = store
        self.pushdowns = store.pushdowns

    def fetch(self, sql: str, params: Iterable[Any] = (), *, binary: bool = False) -> list[Any]:
        return self._store._fetch(sql, params, binary=binary)

    def read(self, layer: str | LayerEntry, run: Callable[[LayerEntry], _T]) -> _T:
        return self._store._retrying(layer, run)  # type: ignore[no-any-return]

    def entry(self, layer_id: str) -> LayerEntry:
        return self._store.get(layer_id)

    def vector(self, layer_id: str) -> LayerEntry:
        return self._store._vector(layer_id)

    def table(self, entry: LayerEntry) -> str:
        return quote_ident(entry.storage)

    def column(self, entry: LayerEntry, name: str) -> tuple[str, pa.DataType]:
        """The SELECT expression of a column (alias ``t``) and its Arrow type."""
        kind = {c.name: c.type for c in entry.columns}[name]
        pg = self._store._pg_types(entry).get(name) if kind in ("date", "datetime") else None
        return select_expr(name, kind, pg), COLUMN_TO_ARROW[kind]

    def where(self, entry: LayerEntry, query: Query, alias: str = "t") -> tuple[str, list[Any]]:
        return self._store.where(entry, query, alias)


class _PgEdit:
    """``editing.EditTx`` on a PostGIS transaction that holds the layer's lock."""

    def __init__(self, store: PostGISStore, conn: Any, layer_id: str) -> None:
        self.store, self.conn, self.layer_id = store, conn, layer_id
        self._casts: dict[str, str] = {}

    def entry(self) -> LayerEntry:
        entry = self.store._read_entry(self.conn, self.layer_id, lock=True)
        if entry is None:
            raise _not_found(self.layer_id)
        rows = self.conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (quote_ident(entry.storage),),
        ).fetchall()
        # values are bound as text and cast to the column's own type (from the database)
        self._casts = {str(r[0]): str(r[1]) for r in rows}
        return entry

    def read(self, entry: LayerEntry, fid: int) -> FeatureState | None:
        return states_of(self.store.read_arrow(entry, Query(fids=[fid]))).get(fid)

    def next_fid(self, entry: LayerEntry) -> int:
        top = self.conn.execute(
            f"SELECT coalesce(max({FID}), 0) FROM {quote_ident(entry.storage)}"
        ).fetchone()[0]
        seen = self.conn.execute(
            f"SELECT coalesce(max(feature_id), 0) FROM {history.HISTORY_TABLE} WHERE layer_id = %s",
            (entry.id,),
        ).fetchone()[0]
        return int(max(top, seen)) + 1

    def _columns(
        self, entry: LayerEntry, state: FeatureState
    ) -> tuple[list[str], list[str], list[Any]]:
        names = [GEOM_COLUMN]
        marks = ["ST_GeomFromWKB(%s, 4326)"]
        values: list[Any] = [state.wkb]
        for column in entry.columns:
            names.append(quote_ident(column.name))
            cast = self._casts.get(column.name)
            value = state.properties.get(column.name)
            if column.type in ("date", "datetime", "string") and cast:
                marks.append(f"CAST(%s::text AS {cast})")
                value = None if value is None else str(value)
            else:
                marks.append("%s")
            values.append(value)
        return names, marks, values

    def insert(self, entry: LayerEntry, fid: int, state: FeatureState) -> None:
        names, marks, values = self._columns(entry, state)
        self.conn.execute(
            f"INSERT INTO {quote_ident(entry.storage)} ({FID}, {', '.join(names)}) "
            f"VALUES (%s, {', '.join(marks)})",
            [fid, *values],
        )

    def update(self, entry: LayerEntry, fid: int, state: FeatureState) -> None:
        names, marks, values = self._columns(entry, state)
        sets = ", ".join(f"{n} = {m}" for n, m in zip(names, marks, strict=True))
        self.conn.execute(
            f"UPDATE {quote_ident(entry.storage)} SET {sets} WHERE {FID} = %s", [*values, fid]
        )

    def delete(self, entry: LayerEntry, fid: int) -> None:
        self.conn.execute(f"DELETE FROM {quote_ident(entry.storage)} WHERE {FID} = %s", (fid,))

    def save_entry(self, entry: LayerEntry) -> None:
        self.store._save_entry(self.conn, entry)

    def record(self, row: dict[str, Any]) -> int:
        found = self.conn.execute(
            history.insert_sql("%s") + " RETURNING id", history.insert_values(row)
        ).fetchone()
        return int(found[0])
