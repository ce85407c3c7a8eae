"""The catalogue's history of feature edits: who changed what, when, before and after.

One table per catalogue, ``landexplorer_history`` (in the GeoPackage file itself, or a
table in the PostGIS database), one row per change:

* ``id`` - the change id, increasing (a layer's change list pages by it);
* ``layer_id``, ``feature_id`` (NULL for a change of the whole layer);
* ``operation`` - ``create``, ``replace``, ``update``, ``delete``, ``revert``, or
  ``layer replaced`` (a new version loaded from a file: the rows before it stay, and the
  feature ids after it name the new version's features);
* ``actor`` (the account, as the audit log names it), ``at`` (UTC, microseconds);
* ``version`` - the layer's version after the change;
* ``before`` / ``after`` - the feature's state as JSON (``editing.FeatureState``), NULL
  where it did not exist.

Reading a layer as it was at a time (``as_of``) starts from its current features and
undoes every change made after that time, so it reaches back to the layer's last
replace from a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import shapely

from landexplorer.catalog.base import FID, GEOMETRY, BBox, Store
from landexplorer.catalog.editing import LAYER_REPLACED, Change, FeatureState
from landexplorer.catalog.model import LayerEntry
from landexplorer.errors import InputError

HISTORY_TABLE = "landexplorer_history"
#: Most changes one page of a change list holds.
MAX_PAGE = 1000

#: The columns of a history row, in order (both stores).
COLUMNS = ("id", "layer_id", "feature_id", "operation", "actor", "at", "version", "before",
           "after", "detail")  # fmt: skip


def ddl(dialect: str) -> list[str]:
    """``CREATE TABLE/INDEX IF NOT EXISTS`` statements for ``sqlite`` or ``postgres``."""
    key = (
        "id INTEGER PRIMARY KEY AUTOINCREMENT"
        if dialect == "sqlite"
        else "id bigserial PRIMARY KEY"
    )
    big = "INTEGER" if dialect == "sqlite" else "bigint"
    return [
        f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} ({key}, layer_id TEXT NOT NULL, "
        f"feature_id {big}, operation TEXT NOT NULL, actor TEXT NOT NULL, at TEXT NOT NULL, "
        "version INTEGER NOT NULL, before TEXT, after TEXT, detail TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {HISTORY_TABLE}_layer ON {HISTORY_TABLE} (layer_id, id)",
        f"CREATE INDEX IF NOT EXISTS {HISTORY_TABLE}_feature "
        f"ON {HISTORY_TABLE} (layer_id, feature_id, id)",
    ]


def insert_sql(mark: str) -> str:
    """The INSERT of one row (``mark``: the placeholder, ``?`` or ``%s``), id left out."""
    names = COLUMNS[1:]
    return (
        f"INSERT INTO {HISTORY_TABLE} ({', '.join(names)}) "
        f"VALUES ({', '.join([mark] * len(names))})"
    )


def insert_values(row: dict[str, Any]) -> tuple[Any, ...]:
    def text(value: Any) -> str | None:
        return None if value is None else json.dumps(value, default=str)

    return (
        row["layer_id"], row["feature_id"], row["operation"], row["actor"], row["at"],
        int(row["version"]), text(row["before"]), text(row["after"]),
        json.dumps(row.get("detail") or {}, default=str),
    )  # fmt: skip


def select_sql(
    mark: str,
    layer_id: str,
    feature_id: int | None,
    after: int,
    limit: int,
    since: str | None,
) -> tuple[str, list[Any]]:
    """The SELECT of a layer's changes, oldest first (see ``Store.history``)."""
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM {HISTORY_TABLE} WHERE layer_id = {mark} AND id > {mark}"
    )
    params: list[Any] = [layer_id, int(after)]
    if feature_id is not None:
        sql += f" AND (feature_id = {mark} OR feature_id IS NULL)"
        params.append(int(feature_id))
    if since is not None:
        sql += f" AND at > {mark}"
        params.append(since)
    sql += f" ORDER BY id LIMIT {mark}"
    params.append(max(0, min(int(limit), 1_000_000)))
    return sql, params


def replaced_row(previous: LayerEntry, entry: LayerEntry) -> dict[str, Any]:
    """The row a replace from a file leaves (the store knows no actor: the audit log
    says who loaded the file)."""
    return {
        "layer_id": entry.id,
        "feature_id": None,
        "operation": LAYER_REPLACED,
        "actor": "",
        "at": stamp(),
        "version": entry.version,
        "before": None,
        "after": None,
        "detail": {
            "fromVersion": previous.version,
            "features": entry.feature_count,
            "source": entry.source,
        },
    }


def stamp() -> str:
    """Now, as the history writes times: UTC to the microsecond, e.g.
    ``2026-12-03T14:51:19.123456Z`` (sorts as text in time order)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> str:
    """A time given by a caller (ISO 8601; UTC when it names no zone) in ``stamp``'s form."""
    raw = text.strip()
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputError(
            f"'{raw[:40]}' is not a time this server can read: write it as ISO 8601, for "
            "example 2026-12-01T09:30:00Z."
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (OverflowError, ValueError):
        raise InputError(f"'{raw[:40]}' is outside the times this server can read.") from None


# ----- the layer as it was ---------------------------------------------------------------
def last_replace(changes: Iterable[Change]) -> Change | None:
    """The latest ``layer replaced`` row among ``changes``."""
    found = None
    for change in changes:
        if change.operation == LAYER_REPLACED and (found is None or change.id > found.id):
            found = change
    return found


def states_then(changes_after: Sequence[Change]) -> dict[int, FeatureState | None]:
    """From the changes made after a time (any order): each touched feature's state at
    that time, the ``before`` of its first change after it (None: it did not exist)."""
    then: dict[int, FeatureState | None] = {}
    for change in sorted(changes_after, key=lambda c: c.id):
        if change.feature_id is not None and change.feature_id not in then:
            then[change.feature_id] = change.before
    return then


def table_of(entry: LayerEntry, states: dict[int, FeatureState]) -> pa.Table:
    """States as a store's Arrow table (``fid``, the columns, WKB ``geometry``), by fid."""
    from landexplorer.catalog.arrowtypes import COLUMN_TO_ARROW

    fids = sorted(states)
    arrays: dict[str, pa.Array] = {FID: pa.array(fids, type=pa.int64())}
    for column in entry.columns:
        values = [states[f].properties.get(column.name) for f in fids]
        arrays[column.name] = pa.array(values, type=COLUMN_TO_ARROW[column.type])
    arrays[GEOMETRY] = pa.array([states[f].wkb for f in fids], type=pa.binary())
    return pa.table(arrays)


def in_bbox(state: FeatureState, bbox: BBox | None) -> bool:
    if bbox is None:
        return True
    return bool(shapely.intersects(shapely.from_wkb(state.wkb), shapely.box(*bbox)))


# ----- carried from one catalogue to another (``landexplorer migrate``) ---------------------
def copy_history(source: Store, target: Any, layer_ids: Iterable[str]) -> tuple[int, int]:
    """Copy the history of ``layer_ids`` from ``source`` into ``target`` (a store with
    ``transaction()``, e.g. PostGIS), oldest first; a change already there (same layer,
    feature, operation and time) is not added twice. Returns (changes read, added)."""
    read = added = 0
    for layer_id in layer_ids:
        changes = source.history(layer_id, limit=100_000_000)
        read += len(changes)
        if not changes:
            continue
        with target.transaction() as conn:
            # behind any editor or second migration of this layer, so what is already there
            # is read after they commit and nothing is added twice
            lock = getattr(target, "_layer_lock", None)
            if lock is not None:
                lock(conn, layer_id)
            rows = conn.execute(
                f"SELECT feature_id, operation, at FROM {HISTORY_TABLE} WHERE layer_id = %s",
                (layer_id,),
            ).fetchall()
            have = {(None if f is None else int(f), str(o), str(a)) for f, o, a in rows}
            todo = [c for c in changes if (c.feature_id, c.operation, c.at) not in have]
            for change in todo:
                conn.execute(insert_sql("%s"), insert_values(_row_of(change)))
        added += len(todo)
    return read, added


def _row_of(change: Change) -> dict[str, Any]:
    return {
        "layer_id": change.layer_id,
        "feature_id": change.feature_id,
        "operation": change.operation,
        "actor": change.actor,
        "at": change.at,
        "version": change.version,
        "before": change.before.to_json() if change.before else None,
        "after": change.after.to_json() if change.after else None,
        "detail": change.detail,
    }
