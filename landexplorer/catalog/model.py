"""What the catalogue knows about a layer."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from landexplorer.errors import InputError

Kind = Literal["community", "open", "reference"]
DataType = Literal["vector", "raster"]
Visibility = Literal["public", "private", "hidden"]

KINDS: tuple[str, ...] = ("community", "open", "reference")
VISIBILITIES: tuple[str, ...] = ("public", "private", "hidden")

_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


def slugify(text: str) -> str:
    """Turn a file name or title into a layer id: lower case, ``a-z0-9_``, starting with a letter.

    >>> slugify("Trafford Allotments (2020).geojson")
    'trafford_allotments_2020_geojson'
    """
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not slug or not slug[0].isalpha():
        slug = "layer_" + slug
    return slug[:48].rstrip("_")


def check_layer_id(layer_id: str) -> str:
    """Return ``layer_id`` if it is a valid id, else raise a plain-words error."""
    if not _ID_RE.match(layer_id):
        raise InputError(
            f"'{layer_id}' cannot be used as a layer id. Use up to 48 lower-case letters, "
            "digits and underscores, starting with a letter (for example 'orchards_2024')."
        )
    return layer_id


@dataclass
class IngestReport:
    """What ingestion changed or assumed, kept with the layer so nobody is surprised later."""

    rows_read: int = 0
    features_stored: int = 0
    repaired: int = 0
    dropped_empty: int = 0
    dropped_no_coordinates: int = 0
    dropped_parts: int = 0
    renamed_columns: dict[str, str] = field(default_factory=dict)
    assumed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> IngestReport:
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def summary(self) -> list[str]:
        """Plain-words lines for people."""
        lines = [f"{self.features_stored:,} features stored from {self.rows_read:,} read."]
        if self.repaired:
            lines.append(f"{self.repaired:,} invalid geometries were repaired.")
        if self.dropped_empty:
            lines.append(f"{self.dropped_empty:,} features with empty geometry were left out.")
        if self.dropped_no_coordinates:
            lines.append(
                f"{self.dropped_no_coordinates:,} rows without usable coordinates were left out."
            )
        if self.dropped_parts:
            lines.append(
                f"{self.dropped_parts:,} geometry parts of another kind (e.g. stray lines in a "
                "polygon layer) were left out."
            )
        if self.renamed_columns:
            pairs = ", ".join(f"'{a}' -> '{b}'" for a, b in self.renamed_columns.items())
            lines.append(f"Columns renamed to be safe: {pairs}.")
        lines.extend(self.assumed)
        lines.extend(self.notes)
        return lines


@dataclass
class Column:
    name: str
    type: str  # "string" | "integer" | "number" | "boolean" | "date" | "datetime" | "binary"


@dataclass
class LayerEntry:
    """One layer in the catalogue: identity, provenance, licence and the current version."""

    id: str
    title: str
    kind: str = "community"
    data_type: str = "vector"
    description: str = ""
    owner: str = ""
    visibility: str = "public"
    licence: str = ""
    attribution: str = ""
    source: str = ""
    source_crs: str = ""
    geometry_type: str = ""
    feature_count: int = 0
    bbox: tuple[float, float, float, float] | None = None
    version: int = 1
    checksum: str = ""
    created: str = ""
    updated: str = ""
    storage: str = ""  # table name (vector) or file path relative to data_dir (raster)
    columns: list[Column] = field(default_factory=list)
    report: IngestReport = field(default_factory=IngestReport)
    raster: dict[str, Any] = field(default_factory=dict)  # width, height, bands, dtype, nodata, ...

    @property
    def is_public(self) -> bool:
        """Shown to everybody: public and licensed (a layer without a licence stays private)."""
        return self.visibility == "public" and bool(self.licence)

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bbox"] = list(self.bbox) if self.bbox else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerEntry:
        data = dict(data)
        data["columns"] = [Column(**c) for c in data.get("columns") or []]
        data["report"] = IngestReport.from_dict(data.get("report"))
        bbox = data.get("bbox")
        data["bbox"] = tuple(bbox) if bbox else None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
