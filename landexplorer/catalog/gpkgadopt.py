"""Moving a feature table that GDAL wrote into a private GeoPackage into the catalogue.

Why: the catalogue runs in WAL mode, so readers never wait for a writer, but only while
one copy of SQLite in the process touches the file. GDAL (inside pyogrio) carries its own
SQLite, whose locks Python's ``sqlite3`` cannot see (``catalog.gate``); and a GDAL
connection that closes believes itself the file's last one and checkpoints and deletes
the WAL under Python's connections. So GDAL never opens the catalogue in a server
process: it writes a new layer into a GeoPackage of its own beside the catalogue, at its
full speed and with its fast in-memory R-tree bulk load, and Python's ``sqlite3`` then
copies the table, its R-tree, its triggers and its GeoPackage registrations into the
catalogue in one write transaction, while readers go on reading.

The R-tree is copied as its three shadow tables, page for page, when both files have the
same page size (the node size follows it); otherwise its rows are inserted again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from landexplorer.catalog.sql import quote_ident

#: The prefix of a private GeoPackage being written beside the catalogue (an orphan of a
#: stopped process is removed at the next open; see ``GeoPackageStore.cleanup``).
PRIVATE_PREFIX = ".writing-"

_META_COLUMNS = {
    "gpkg_contents": (
        "table_name, data_type, identifier, description, last_change, "
        "min_x, min_y, max_x, max_y, srs_id"
    ),
    "gpkg_geometry_columns": "table_name, column_name, geometry_type_name, srs_id, z, m",
    "gpkg_extensions": "table_name, column_name, extension_name, definition, scope",
    "gpkg_ogr_contents": "table_name, feature_count",
}
_RTREE_SHADOWS = (("_node", "nodeno, data"), ("_parent", "nodeno, parentnode"))
_RTREE_ROWID = ("_rowid", "rowid, nodeno")


def private_path(catalog: Path, table: str) -> Path:
    """Where GDAL writes ``table`` before it is moved into ``catalog``."""
    return catalog.parent / f"{PRIVATE_PREFIX}{table}.gpkg"


@contextlib.contextmanager
def attached(conn: sqlite3.Connection, path: Path, alias: str = "src"):  # type: ignore[no-untyped-def]
    """The private GeoPackage attached (read only) to a catalogue connection meanwhile.
    Attaching is not allowed inside a transaction, so this goes around the write one."""
    uri = f"file:{path}?mode=ro"
    conn.execute(f"ATTACH DATABASE ? AS {alias}", (uri,))
    try:
        yield alias
    finally:
        conn.execute(f"DETACH DATABASE {alias}")


def _objects(conn: sqlite3.Connection, src: str, kind: str, table: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        f"SELECT name, sql FROM {src}.sqlite_master WHERE type = ? AND tbl_name = ? "
        "AND sql IS NOT NULL ORDER BY rowid",
        (kind, table),
    ).fetchall()
    return [(str(n), str(s)) for n, s in rows]


def _has_table(conn: sqlite3.Connection, schema: str, name: str) -> bool:
    row = conn.execute(
        f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def adopt(conn: sqlite3.Connection, src: str, table: str, geom_column: str) -> None:
    """Copy ``table`` of the attached private GeoPackage ``src`` into ``main``, inside the
    caller's write transaction: the rows, the R-tree, the triggers (which need the
    ``gpkg_ogr_contents`` and R-tree tables first) and the GeoPackage registrations."""
    q = quote_ident(table)
    ddl = conn.execute(
        f"SELECT sql FROM {src}.sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    if ddl is None:
        raise LookupError(f"{table} is not in the private GeoPackage")
    conn.execute(ddl[0])
    conn.execute(f"INSERT INTO main.{q} SELECT * FROM {src}.{q}")
    for _, sql in _objects(conn, src, "index", table):
        conn.execute(sql)

    rtree = f"rtree_{table}_{geom_column}"
    if _has_table(conn, src, rtree):
        made = conn.execute(
            f"SELECT sql FROM {src}.sqlite_master WHERE type = 'table' AND name = ?", (rtree,)
        ).fetchone()
        conn.execute(made[0])
        same_pages = (
            conn.execute("PRAGMA main.page_size").fetchone()[0]
            == conn.execute(f"PRAGMA {src}.page_size").fetchone()[0]
        )
        qr = quote_ident(rtree)
        if same_pages:
            for suffix, columns in (*_RTREE_SHADOWS, _RTREE_ROWID):
                shadow = quote_ident(rtree + suffix)
                conn.execute(f"DELETE FROM main.{shadow}")
                conn.execute(
                    f"INSERT INTO main.{shadow} ({columns}) SELECT {columns} FROM {src}.{shadow}"
                )
        else:
            conn.execute(f"INSERT INTO main.{qr} SELECT * FROM {src}.{qr}")

    for meta, columns in _META_COLUMNS.items():
        if not _has_table(conn, src, meta):
            continue
        if not _has_table(conn, "main", meta):
            made = conn.execute(
                f"SELECT sql FROM {src}.sqlite_master WHERE type = 'table' AND name = ?", (meta,)
            ).fetchone()
            conn.execute(made[0])
        conn.execute(
            f"INSERT INTO main.{meta} ({columns}) SELECT {columns} FROM {src}.{meta} "
            "WHERE lower(table_name) = lower(?)",
            (table,),
        )
    for _, sql in _objects(conn, src, "trigger", table):
        conn.execute(sql)


def remove_private(path: Path) -> None:
    """Remove a private GeoPackage and whatever journal SQLite left beside it."""
    for p in (path, *(path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm"))):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
