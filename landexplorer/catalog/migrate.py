"""Copy a whole catalogue (layers, versions, metadata, rasters' entries) into PostGIS.

``landexplorer migrate --to postgresql://...`` uses this when a group outgrows one
GeoPackage. Every layer is copied in its own transaction with its version number, times,
licence and feature ids kept, then counted on both sides; a layer whose counts differ is
reported and left out of the new catalogue rather than half there.

People come too: accounts, groups, members, tokens and sessions (as the digests they are
stored as, so a token made before still works after), share links, grants, access
requests and the audit log. Rows already in the target are kept as they are, so running
``migrate`` again adds nothing twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from landexplorer.access.store import AccessStore
from landexplorer.catalog.base import Query, Store
from landexplorer.catalog.history import HISTORY_TABLE, copy_history
from landexplorer.catalog.model import LayerEntry
from landexplorer.catalog.postgis import PostGISStore
from landexplorer.errors import LandExplorerError

#: Called with (layer id, what happened) as each layer is done.
MigrateProgress = Callable[[str, str], None]


@dataclass
class LayerResult:
    """What happened to one layer."""

    id: str
    data_type: str
    status: str  # "copied", "skipped" (already there), "failed"
    source_count: int = 0
    target_count: int = 0
    message: str = ""


#: The access tables in words, for the report.
ACCESS_WORDS = {
    "access_users": "accounts",
    "access_groups": "groups",
    "access_members": "memberships",
    "access_secrets": "tokens, sessions and sign-in links",
    "access_links": "share links",
    "access_grants": "grants",
    "access_requests": "access requests",
    "access_audit": "audit events",
}


@dataclass
class AccessResult:
    """What happened to one kind of access record."""

    table: str
    what: str
    source_count: int
    added: int


@dataclass
class MigrationReport:
    layers: list[LayerResult] = field(default_factory=list)
    access: list[AccessResult] = field(default_factory=list)
    #: the layers' feature edits (``catalog.history``): read, added
    history: AccessResult | None = None

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.layers)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.layers:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def _arrow_types(entry: LayerEntry) -> dict[str, pa.DataType]:
    """Dates and times come out of the GeoPackage as ISO text; give them their type back."""
    wanted = {"date": pa.date32(), "datetime": pa.timestamp("ms", tz="UTC")}
    return {c.name: wanted[c.type] for c in entry.columns if c.type in wanted}


def _retyped(table: pa.Table, types: dict[str, pa.DataType]) -> pa.Table:
    for name, target in types.items():
        if name not in table.column_names:
            continue
        try:
            column = table.column(name).cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # not ISO text after all: keep it as text rather than lose it
        table = table.set_column(table.column_names.index(name), name, column)
    return table


def _pages(source: Store, layer_id: str, batch_size: int) -> Iterator[pa.Table]:
    offset = 0
    while True:
        page = source.read_arrow(layer_id, Query(limit=batch_size, offset=offset))
        if page.num_rows == 0:
            return
        yield page
        offset += page.num_rows
        if page.num_rows < batch_size:
            return


def copy_layer(
    source: Store, target: PostGISStore, entry: LayerEntry, batch_size: int = 65_536
) -> LayerResult:
    """Copy one layer's current version and check the feature counts on both sides."""
    result = LayerResult(entry.id, entry.data_type, "copied")
    copy = LayerEntry.from_dict(entry.to_dict())
    if entry.data_type == "raster":
        target.import_raster(copy, source.raster_path(entry))
        result.source_count = result.target_count = 1
        return result
    types = _arrow_types(entry)
    pages = (_retyped(p, types) for p in _pages(source, entry.id, batch_size))
    first = next(pages, None)
    if first is None:
        first = _retyped(source.read_arrow(entry.id, Query(limit=0)), types)
    schema = first.schema
    copied = 0

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal copied
        for page in itertools.chain([first], pages):
            for batch in page.cast(schema).to_batches():
                copied += batch.num_rows
                yield batch

    target.import_vector(copy, schema, batches())
    result.source_count = entry.feature_count
    result.target_count = target.exact_count(entry.id)
    if not (copied == entry.feature_count == result.target_count):
        target.delete(entry.id)
        result.status = "failed"
        result.message = (
            f"counts differ: catalogue says {entry.feature_count:,}, {copied:,} read, "
            f"{result.target_count:,} stored; the copy was removed"
        )
    return result


def migrate(
    source: Store,
    target: PostGISStore,
    *,
    replace: bool = False,
    progress: MigrateProgress | None = None,
    batch_size: int = 65_536,
) -> MigrationReport:
    """Copy every layer of ``source`` into ``target``.

    A layer already in the target is left alone (``skipped``) unless ``replace`` is set or
    the target holds an older version of it. Failures of one layer do not stop the others.
    """
    report = MigrationReport()
    report.access = migrate_access(source, target)
    for entry in source.list_layers():
        existing = target.get(entry.id) if target.exists(entry.id) else None
        if existing is not None and not replace and existing.version >= entry.version:
            result = LayerResult(entry.id, entry.data_type, "skipped")
            result.source_count = entry.feature_count
            result.target_count = existing.feature_count
            result.message = f"already there (version {existing.version})"
        else:
            try:
                result = copy_layer(source, target, entry, batch_size)
            except LandExplorerError as exc:
                result = LayerResult(entry.id, entry.data_type, "failed", message=exc.public)
        report.layers.append(result)
        if progress is not None:
            progress(entry.id, result.status)
    # the layers' feature edits (catalog.history), after the layers they are of
    copied = [r.id for r in report.layers if r.status != "failed" and r.data_type == "vector"]
    read, added = copy_history(source, target, copied)
    report.history = AccessResult(HISTORY_TABLE, "feature changes", read, added)
    return report


def _audit_key(row: list[Any]) -> tuple[Any, ...]:
    return tuple(row[1:])  # everything but the id: when, who, what, layer, version, detail


def migrate_access(source: Store, target: PostGISStore) -> list[AccessResult]:
    """Copy the access records beside ``source`` into ``target``'s database (rows already
    there are kept). A GeoPackage catalogue without ``access.sqlite`` has none to copy."""
    path = getattr(source, "path", None)
    if source.backend == "gpkg" and (
        path is None or not (Path(path).parent / "access.sqlite").exists()
    ):
        return []
    source_access = AccessStore.beside(source)
    target_access = AccessStore.beside(target)
    try:
        rows = source_access.dump()
        before = target_access.dump()
        # The audit log is keyed by id: an event already in the target (same when, who,
        # what) is not added again; one whose id the target uses for another event
        # gets the next free id, so no event of either side is lost.
        have = {_audit_key(r) for r in before["access_audit"]}
        used = {r[0] for r in before["access_audit"]}
        next_id = max(used, default=0) + 1
        audit: list[list[Any]] = []
        for row in rows["access_audit"]:
            if _audit_key(row) in have:
                continue
            if row[0] in used:
                row = [next_id, *row[1:]]
            used.add(row[0])
            next_id = max(next_id, row[0]) + 1
            audit.append(row)
        target_access.load({**rows, "access_audit": audit})
        after = target_access.dump()
    finally:
        source_access.close()
        target_access.close()
    return [
        AccessResult(
            table,
            ACCESS_WORDS.get(table, table),
            len(rows.get(table, [])),
            len(after.get(table, [])) - len(before.get(table, [])),
        )
        for table in AccessStore.TABLES
    ]
