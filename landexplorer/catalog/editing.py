"""Editing one feature of a layer: checking what is sent, and the one edit algorithm that
both stores run inside their own transaction.

An edit is a small change, not a new layer version's table: the feature's row is
inserted, replaced or deleted in place, the layer's catalogue entry moves on (its
``version`` and ``updated``, so that every ETag and the tile cache's generation move
too) and the change is recorded in the catalogue's history (``catalog.history``), all
in ONE transaction. Each store supplies an ``EditTx`` (its SQL); the steps are here.

A feature's ETag is a hash of its stored state (properties and geometry) in that
layer table: any change to the feature changes it, and a client that sends the ETag it
read as ``If-Match`` changes only the version it saw (``FeatureChanged`` otherwise).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

import orjson
import pyarrow as pa
import shapely

from landexplorer.catalog.model import FID, GEOMETRY, LayerEntry
from landexplorer.errors import InputError, LayerNotFound, StoreBusy

#: Longest text value of one property.
MAX_TEXT_CHARS = 10_000
#: Most vertices in one edited geometry (a public server: sized before any work).
MAX_EDIT_VERTICES = 50_000
_INT64 = 2**63


class FeatureNotFound(LayerNotFound):
    """No feature with that id in the layer (404)."""


class FeatureChanged(Exception):
    """``If-Match`` named a state the feature is no longer in (412): ``current`` is the
    state it is in now (None once deleted)."""

    def __init__(self, fid: int, current: FeatureState | None, etag: str | None) -> None:
        super().__init__(f"feature {fid} changed")
        self.fid = fid
        self.current = current
        self.etag = etag


@dataclass(frozen=True)
class FeatureState:
    """One feature as stored: its properties (by column) and WKB geometry (EPSG:4326)."""

    properties: dict[str, Any]
    wkb: bytes

    def to_json(self) -> dict[str, Any]:
        """For the history table: exact (the geometry as WKB hex)."""
        return {"properties": self.properties, "wkb": self.wkb.hex()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> FeatureState | None:
        if not data:
            return None
        return cls(dict(data.get("properties") or {}), bytes.fromhex(str(data["wkb"])))

    def geojson(self, fid: int) -> dict[str, Any]:
        """A GeoJSON Feature (RFC 7946, lon/lat)."""
        geometry = orjson.loads(shapely.to_geojson(shapely.from_wkb(self.wkb)))
        return {"type": "Feature", "id": fid, "geometry": geometry, "properties": self.properties}


def _canonical(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def etag_of(entry: LayerEntry, fid: int, state: FeatureState) -> str:
    """The strong ETag of a feature's stored state (quoted, as HTTP sends it)."""
    props = orjson.dumps(state.properties, option=orjson.OPT_SORT_KEYS, default=_canonical)
    digest = hashlib.blake2b(digest_size=12)
    for part in (entry.id.encode(), entry.storage.encode(), str(fid).encode(), props, state.wkb):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return f'"{digest.hexdigest()}"'


def feature_etag(
    entry: LayerEntry, fid: int, state: FeatureState, crs_uri: str = "", media: str = ""
) -> str:
    """The ETag a GET of the feature sends: ``etag_of``, with a suffix naming the
    representation when it is not GeoJSON in CRS84 (``matches`` reads through it)."""
    tag = etag_of(entry, fid, state)
    variant = [v for v in (crs_uri, media) if v and v not in _PLAIN]
    if not variant:
        return tag
    suffix = hashlib.blake2b("|".join(variant).encode(), digest_size=4).hexdigest()
    return f'{tag[:-1]}-{suffix}"'


_PLAIN = {"http://www.opengis.net/def/crs/OGC/1.3/CRS84", "application/geo+json"}


def matches(if_match: str, etag: str) -> bool:
    """Does an ``If-Match`` header name this ETag (or ``*``)? A tag given with a variant
    suffix (``"<tag>-<crs>"``, from a GET in another CRS) names the same state."""
    for tag in (t.strip() for t in if_match.split(",")):
        if tag == "*":
            return True
        # A proxy that compresses answers (nginx's gzip) marks the ETag weak on the way:
        # the tag is still this server's hash of the feature's state, so it still names it.
        tag = tag.removeprefix("W/")
        if tag == etag or (tag.startswith(etag[:-1] + "-") and tag.endswith('"')):
            return True
    return False


def states_of(table: pa.Table) -> dict[int, FeatureState]:
    """The rows of a store's Arrow table as states, by feature id."""
    names = [n for n in table.column_names if n not in (FID, GEOMETRY)]
    rows = table.select(names).to_pylist()
    fids = table.column(FID).to_pylist()
    wkbs = table.column(GEOMETRY).to_pylist()
    return {
        int(fid): FeatureState(row, bytes(wkb))
        for fid, row, wkb in zip(fids, rows, wkbs, strict=True)
    }


# ----- checking what is sent -------------------------------------------------------------
def _columns_words(entry: LayerEntry) -> str:
    names = [c.name for c in entry.columns if c.type != "binary"]
    return ", ".join(f"'{n}'" for n in names) or "none"


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def check_value(entry: LayerEntry, column: str, kind: str, value: Any) -> Any:
    """A property value fit for its column's type, or a plain-words ``InputError``."""
    if value is None:
        return None
    shown = orjson.dumps(value, default=str).decode()[:40]
    where = f"The column '{column}' of '{entry.id}'"
    if kind == "string":
        if not isinstance(value, str):
            raise InputError(f"{where} holds text; {shown} is not text (put it in quotes).")
        if len(value) > MAX_TEXT_CHARS:
            raise InputError(f"{where} takes at most {MAX_TEXT_CHARS:,} characters.")
        if "\x00" in value:
            raise InputError(f"{where} cannot hold a NUL character.")
        return value
    if kind == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where} holds whole numbers; {shown} is not one.")
        if not -_INT64 <= value < _INT64:
            raise InputError(f"{where} holds whole numbers; {shown} is too large.")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{where} holds numbers; {shown} is not a number.")
        if not math.isfinite(float(value)) or abs(float(value)) > 1e308:
            raise InputError(f"{where} holds numbers; {shown} is not a finite number.")
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise InputError(f"{where} holds true or false; {shown} is neither.")
        return value
    if kind == "date":
        if not isinstance(value, str) or not _DATE.match(value):
            raise InputError(f"{where} holds dates written YYYY-MM-DD; {shown} is not one.")
        try:
            date.fromisoformat(value)
        except ValueError:
            raise InputError(
                f"{where} holds dates; {shown} is not a day of the calendar."
            ) from None
        return value
    if kind == "datetime":
        if not isinstance(value, str) or len(value) > 40:
            raise InputError(
                f"{where} holds dates and times (e.g. 2026-05-01T09:30:00Z); {shown} is not one."
            )
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InputError(
                f"{where} holds dates and times (e.g. 2026-05-01T09:30:00Z); {shown} is not one."
            ) from None
        # as GeoPackage writes them (GDAL reads them back): UTC with a Z, or a local time
        if when.tzinfo is not None:
            return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    raise InputError(f"{where} holds binary data, which cannot be changed through the API.")


def check_properties(entry: LayerEntry, given: Any) -> dict[str, Any]:
    """The properties of a request checked against the layer's columns and their types:
    unknown columns and values of the wrong type are refused, naming them."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise InputError("'properties' must be an object of column names and their values.")
    kinds = {c.name: c.type for c in entry.columns}
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name not in kinds:
            raise InputError(
                f"'{entry.id}' has no column called '{str(name)[:60]}'. Its columns are: "
                f"{_columns_words(entry)}. New columns come with a new version of the layer "
                "(uploaded from a file)."
            )
        out[name] = check_value(entry, name, kinds[name], value)
    return out


_FAMILY = {
    "point": "Point",
    "multipoint": "Point",
    "linestring": "LineString",
    "multilinestring": "LineString",
    "polygon": "Polygon",
    "multipolygon": "Polygon",
}
_WORDS = {"Point": "points", "LineString": "lines", "Polygon": "polygons (areas)"}


def check_geometry(entry: LayerEntry, given: Any, max_vertices: int, max_parts: int) -> bytes:
    """A request's GeoJSON geometry as WKB fit for the layer: sized before it is built
    (``TooLarge`` past the limits), of the layer's geometry type (a single polygon is
    made a multipolygon where the layer holds those), valid and not empty."""
    from landexplorer.analysis.limits import Limits, check_geojson

    what = "The feature's geometry"
    if given is None:
        raise InputError(f"{what} is missing: every feature of '{entry.id}' needs one.")
    if not isinstance(given, Mapping) or given.get("type") in ("Feature", "FeatureCollection"):
        raise InputError(f"{what} must be a GeoJSON geometry (an object with a 'type').")
    limits = Limits(geojson_vertices=min(max_vertices, MAX_EDIT_VERTICES), geojson_parts=max_parts)
    check_geojson(given, limits, what=what)
    try:
        geom = shapely.from_geojson(orjson.dumps(given).decode())
    except Exception as exc:  # GEOS says what, in its own words: keep them for the log
        raise InputError(f"{what} is not GeoJSON that can be read.", detail=str(exc)) from None
    geom = shapely.force_2d(geom)
    if geom.is_empty:
        raise InputError(f"{what} is empty: give it at least one position.")
    layer_type = (entry.geometry_type or "").replace(" Z", "").replace("25D", "").strip()
    family = _FAMILY.get(layer_type.lower())
    kind = geom.geom_type
    if family is not None and _FAMILY.get(kind.lower()) != family:
        raise InputError(
            f"'{entry.id}' holds {_WORDS[family]}; this feature's geometry is a {kind}. "
            f"Draw it as {_WORDS[family].split(' ')[0]} instead."
        )
    if family is None and kind == "GeometryCollection":
        raise InputError(f"{what} is a GeometryCollection; send one kind of shape.")
    if layer_type.startswith("Multi") and not kind.startswith("Multi"):
        geom = getattr(shapely, layer_type)([geom])  # e.g. MultiPolygon([polygon])
    elif family is not None and kind.startswith("Multi") and not layer_type.startswith("Multi"):
        parts = shapely.get_parts(geom)
        if len(parts) != 1:
            raise InputError(
                f"'{entry.id}' holds single {_WORDS[family]}; this geometry has "
                f"{len(parts)} parts. Send each part as its own feature."
            )
        geom = parts[0]
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        raise InputError(
            f"{what} is not a valid shape ({reason}): an outline must not cross itself. "
            "Move the crossing vertices apart and try again."
        )
    return bytes(shapely.to_wkb(geom, flavor="iso"))


def full_properties(
    entry: LayerEntry, given: Mapping[str, Any], current: FeatureState | None
) -> dict[str, Any]:
    """Every column's value for a new or replaced feature: what was given, null for the
    rest (binary columns, which cannot be sent, keep their value)."""
    out: dict[str, Any] = {}
    for column in entry.columns:
        if column.type == "binary":
            out[column.name] = current.properties.get(column.name) if current else None
        else:
            out[column.name] = given.get(column.name)
    return out


# ----- the one edit algorithm --------------------------------------------------------------
class EditTx(Protocol):
    """What a store gives the edit algorithm, inside one transaction that holds the
    layer's write lock: its feature rows, its catalogue row and its history table."""

    def entry(self) -> LayerEntry: ...

    def read(self, entry: LayerEntry, fid: int) -> FeatureState | None: ...

    def next_fid(self, entry: LayerEntry) -> int: ...

    def insert(self, entry: LayerEntry, fid: int, state: FeatureState) -> None: ...

    def update(self, entry: LayerEntry, fid: int, state: FeatureState) -> None: ...

    def delete(self, entry: LayerEntry, fid: int) -> None: ...

    def save_entry(self, entry: LayerEntry) -> None: ...

    def record(self, row: dict[str, Any]) -> int: ...


#: ``make(current)``: the feature's new state (None: delete it) from its current one.
Make = Callable[[FeatureState | None], FeatureState | None]


@dataclass
class Edit:
    """One change to one feature, as a store applies it.

    ``fid`` None: a new feature. ``if_match``: the ETag the client read (None: no
    precondition, for a create, or a revert of a deleted feature). ``must_exist``: a
    feature id that is not there is ``FeatureNotFound``.
    """

    operation: str  # "create", "replace", "update", "delete", "revert"
    make: Make
    fid: int | None = None
    if_match: str | None = None
    must_exist: bool = True
    actor: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    #: The layer table the edit was checked against (its columns): a replace from a file
    #: since then refuses the edit (nothing is changed; the caller tries again).
    storage: str | None = None


@dataclass
class EditResult:
    entry: LayerEntry  # the layer after the edit
    fid: int
    state: FeatureState | None  # None once deleted
    etag: str | None
    change_id: int


def apply_edit(tx: EditTx, edit: Edit, stamp: str) -> EditResult:
    """Run one edit in ``tx``'s transaction (the caller commits, or rolls back on any error)."""
    entry = tx.entry()
    if entry.data_type != "vector":
        raise InputError(f"'{entry.id}' is a raster layer: it has no features to edit.")
    if edit.storage is not None and edit.storage != entry.storage:
        raise StoreBusy(
            f"'{entry.id}' was replaced with a new version while your change was on its way, "
            "so nothing was changed. Read the feature again and send your change once more."
        )
    current: FeatureState | None = None
    if edit.fid is not None:
        current = tx.read(entry, edit.fid)
        if current is None and edit.must_exist:
            raise FeatureNotFound(f"There is no feature {edit.fid} in '{entry.id}'.")
        if edit.if_match is not None:
            now = etag_of(entry, edit.fid, current) if current is not None else None
            if now is None or not matches(edit.if_match, now):
                raise FeatureChanged(edit.fid, current, now)
    new = edit.make(current)
    if current is None and new is None:
        raise FeatureNotFound(f"There is no feature {edit.fid} in '{entry.id}'.")
    fid = edit.fid if edit.fid is not None else tx.next_fid(entry)
    if current is None and new is not None:
        tx.insert(entry, fid, new)
        entry.feature_count += 1
    elif new is None:
        tx.delete(entry, fid)
        entry.feature_count = max(0, entry.feature_count - 1)
    else:
        tx.update(entry, fid, new)
    if new is not None:
        new = tx.read(entry, fid) or new  # as stored (a store may write a time its own way)
        entry.bbox = _grown(entry.bbox, new.wkb)
    entry.version += 1
    entry.updated = stamp[:19] + "Z"
    tx.save_entry(entry)
    change_id = tx.record(
        {
            "layer_id": entry.id,
            "feature_id": fid,
            "operation": edit.operation,
            "actor": edit.actor,
            "at": stamp,
            "version": entry.version,
            "before": current.to_json() if current is not None else None,
            "after": new.to_json() if new is not None else None,
            "detail": edit.detail,
        }
    )
    etag = etag_of(entry, fid, new) if new is not None else None
    return EditResult(entry, fid, new, etag, change_id)


def _grown(
    bbox: tuple[float, float, float, float] | None, wkb: bytes
) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in shapely.from_wkb(wkb).bounds)
    if bbox is None:
        return (x0, y0, x1, y1)
    return (min(bbox[0], x0), min(bbox[1], y0), max(bbox[2], x1), max(bbox[3], y1))


#: The history row a replace of the whole layer from a file leaves.
LAYER_REPLACED = "layer replaced"


@dataclass(frozen=True)
class Change:
    """One row of the history."""

    id: int
    layer_id: str
    feature_id: int | None
    operation: str
    actor: str
    at: str
    version: int
    before: FeatureState | None
    after: FeatureState | None
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Change:
        def state(text: str | None) -> FeatureState | None:
            return FeatureState.from_json(json.loads(text)) if text else None

        return cls(
            id=int(row[0]), layer_id=str(row[1]),
            feature_id=None if row[2] is None else int(row[2]), operation=str(row[3]),
            actor=str(row[4]), at=str(row[5]), version=int(row[6]), before=state(row[7]),
            after=state(row[8]), detail=json.loads(row[9] or "{}"),
        )  # fmt: skip

    def to_doc(self, show_actor: bool = True) -> dict[str, Any]:
        """The change as the API answers it (GeoJSON Features before and after)."""
        fid = self.feature_id if self.feature_id is not None else 0
        doc: dict[str, Any] = {
            "id": self.id,
            "featureId": self.feature_id,
            "operation": self.operation,
            "by": self.actor if show_actor else "someone",
            "at": self.at,
            "layerVersion": self.version,
            "before": self.before.geojson(fid) if self.before else None,
            "after": self.after.geojson(fid) if self.after else None,
        }
        if self.operation == LAYER_REPLACED:
            doc["detail"] = self.detail
        elif "revertedTo" in self.detail:
            doc["revertedTo"] = self.detail["revertedTo"]
        return doc
