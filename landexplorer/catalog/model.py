"""What the catalogue knows about a layer."""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from landexplorer.errors import InputError

BBox = tuple[float, float, float, float]
#: Name of the geometry column in every Arrow table a store returns (WKB, EPSG:4326).
GEOMETRY = "geometry"
#: Name of the feature id column in every Arrow table a store returns.
FID = "fid"

Kind = Literal["community", "open", "reference"]
DataType = Literal["vector", "raster"]
Visibility = Literal["private", "group", "link", "public"]

KINDS: tuple[str, ...] = ("community", "open", "reference")
#: Who sees a layer (see ``landexplorer.access.policy``): narrowest first.
VISIBILITIES: tuple[str, ...] = ("private", "group", "link", "public")

_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
#: Prefixes of the tables the catalogue, GeoPackage, its R-trees and SQLite keep for
#: themselves: a layer id must not look like one of them.
RESERVED_ID_PREFIXES: tuple[str, ...] = ("landexplorer_", "gpkg_", "rtree_", "sqlite_")
#: The longest layer id.
MAX_ID_LENGTH = 48


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
            f"'{layer_id[:60]}' cannot be used as a layer id. Use up to 48 lower-case "
            "letters, digits and underscores, starting with a letter (for example "
            "'orchards_2024')."
        )
    reserved = next(
        (p for p in RESERVED_ID_PREFIXES if layer_id.startswith(p) or layer_id == p[:-1]), None
    )
    if reserved is not None:
        prefixes = ", ".join(f"'{p}'" for p in RESERVED_ID_PREFIXES[:-1])
        prefixes += f" or '{RESERVED_ID_PREFIXES[-1]}'"
        raise InputError(
            f"'{layer_id}' cannot be used as a layer id: names starting with {prefixes} are "
            "kept for the catalogue's own tables. Choose another id, for example "
            f"'my_{layer_id[len(reserved) :] or 'layer'}'.".replace("my__", "my_")
        )
    return layer_id


def sibling_id(layer_id: str, suffix: str) -> str:
    """``<layer_id>_<suffix>`` cut to fit the id length, keeping the whole suffix."""
    base = layer_id[: MAX_ID_LENGTH - len(suffix) - 1].rstrip("_")
    return f"{base}_{suffix}"


# ----- licences --------------------------------------------------------------------------
#: Licences named in messages as examples of what to write.
LICENCE_EXAMPLES = ("OGL-UK-3.0", "CC-BY-4.0", "ODbL-1.0")
#: Longest licence expression accepted.
MAX_LICENCE_CHARS = 200
#: Names people write for common data licences, and their SPDX ids.
_LICENCE_ALIASES = {
    "ogl": "OGL-UK-3.0",
    "ogl3": "OGL-UK-3.0",
    "oglv3": "OGL-UK-3.0",
    "ogl30": "OGL-UK-3.0",
    "ogluk3": "OGL-UK-3.0",
    "opengovernmentlicence": "OGL-UK-3.0",
    "opengovernmentlicencev30": "OGL-UK-3.0",
    "odbl": "ODbL-1.0",
    "opendatabaselicense": "ODbL-1.0",
    "opendatabaselicence": "ODbL-1.0",
    "ccby": "CC-BY-4.0",
    "ccby4": "CC-BY-4.0",
    "ccby40": "CC-BY-4.0",
    "ccbysa": "CC-BY-SA-4.0",
    "ccbysa40": "CC-BY-SA-4.0",
    "cc0": "CC0-1.0",
    "publicdomain": "CC0-1.0",
}


@functools.cache
def _spdx() -> Any:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


@functools.cache
def _squashed_keys() -> dict[str, str]:
    """Every SPDX licence id by its letters and digits alone (``ccby40`` -> ``CC-BY-4.0``)."""
    return {
        re.sub(r"[^a-z0-9]", "", k.lower()): k
        for k in _spdx().known_symbols
        if not k.startswith("LicenseRef-")  # ScanCode's own, not SPDX ids
    }


def _licence_hint(text: str) -> str:
    """' Did you mean X?' for a misspelt licence, or ''."""
    squashed = re.sub(r"[^a-z0-9]", "", text.lower())
    guess = _LICENCE_ALIASES.get(squashed)
    if guess is None:
        keys = _squashed_keys()
        guess = keys.get(squashed)
        if guess is None and len(squashed) <= 40:
            close = difflib.get_close_matches(squashed, list(keys), n=1, cutoff=0.85)
            guess = keys[close[0]] if close else None
    return f" Did you mean {guess}?" if guess else ""


def normalise_licence(text: str) -> str:
    """A licence as a valid SPDX expression in its standard spelling, or a plain-words error.

    >>> normalise_licence("ogl-uk-3.0 and odbl-1.0")
    'OGL-UK-3.0 AND ODbL-1.0'

    Custom licences are written ``LicenseRef-<name>`` (SPDX's form for them).
    """
    examples = ", ".join(LICENCE_EXAMPLES[:-1]) + f" or {LICENCE_EXAMPLES[-1]}"
    how = (
        f"Give an SPDX licence id (https://spdx.org/licenses/), for example {examples}; join "
        "several with AND (e.g. 'OGL-UK-3.0 AND ODbL-1.0'), or write LicenseRef-<name> for "
        "a licence of your own."
    )
    stripped = " ".join(text.split())
    if not stripped:
        raise InputError(
            "The licence is blank. " + how + " A layer without a licence stays private: "
            "leave the licence out altogether for that."
        )
    if len(stripped) > MAX_LICENCE_CHARS:
        raise InputError(f"The licence is longer than {MAX_LICENCE_CHARS} characters. " + how)
    from landexplorer.access.spdx import LicenceError, normalise

    try:
        return normalise(stripped)
    except LicenceError as exc:
        if exc.unknown:
            hint = _licence_hint(stripped) or _licence_hint(exc.unknown)
            said = f"'{exc.unknown}' is not a licence id landexplorer knows."
        else:
            hint = _licence_hint(stripped)
            said = f"'{stripped}' is not a licence expression landexplorer can read: {exc}"
        raise InputError(said + hint + " " + how) from None


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
    #: Details a replace kept from the version before (field -> value), and that version.
    kept: dict[str, str] = field(default_factory=dict)
    kept_from_version: int = 0
    #: Features of another geometry kind in the same file, stored as their own layers
    #: (layer id -> features).
    also_stored: dict[str, int] = field(default_factory=dict)

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
        if self.also_stored:
            others = ", ".join(f"{n:,} in '{layer}'" for layer, n in self.also_stored.items())
            lines.append(
                "The file also held features of another geometry kind; they were stored as "
                f"their own layer(s) in the same load: {others}."
            )
        lines.extend(self.assumed)
        lines.extend(self.notes)
        if self.kept:
            what = "; ".join(f"{k} {v}" for k, v in self.kept.items())
            lines.append(
                f"Kept from version {self.kept_from_version} because no new value was given: "
                f"{what}."
            )
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
    owner: str = ""  # the account that owns the layer ("" when loaded by the operator)
    group: str = ""  # the group the layer belongs to ("" for none)
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
    # ---- instructions for the write of a new version, never stored (see merge_replaced)
    #: Details a replace takes from the current version (nobody gave new values for them).
    keep: tuple[str, ...] = field(default=(), compare=False, repr=False)
    #: A replace may turn a raster layer into a vector one or back.
    allow_type_change: bool = field(default=False, compare=False, repr=False)

    @property
    def is_public(self) -> bool:
        """Shown to everybody: public and licensed (a layer without a licence stays private)."""
        return self.visibility == "public" and bool(self.licence)

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bbox"] = list(self.bbox) if self.bbox else None
        for transient in _TRANSIENT:
            data.pop(transient, None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerEntry:
        data = dict(data)
        data["columns"] = [Column(**c) for c in data.get("columns") or []]
        data["report"] = IngestReport.from_dict(data.get("report"))
        bbox = data.get("bbox")
        data["bbox"] = tuple(bbox) if bbox else None
        if data.get("visibility") not in VISIBILITIES:  # "hidden" was the old private
            data["visibility"] = "private"
        known = {
            k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k not in _TRANSIENT
        }
        return cls(**known)


_TRANSIENT = ("keep", "allow_type_change")

#: What a replace keeps from the layer's current version unless new values are given.
KEPT_ON_REPLACE: tuple[str, ...] = (
    "title", "description", "kind", "owner", "group", "visibility", "licence", "attribution",
    "source",
)  # fmt: skip

_TYPE_WORDS = {
    "raster": "a raster layer (a grid of values)",
    "vector": "a vector layer (points, lines or polygons)",
}


def merge_replaced(entry: LayerEntry, previous: LayerEntry) -> None:
    """Prepare ``entry``, a new version of ``previous``, for its commit.

    The stores call this where they read the current version to replace it (under their
    write lock, so a change made meanwhile is not lost): the details named in
    ``entry.keep`` are taken from ``previous`` and listed in the ingest report, and a
    change between raster and vector is refused unless ``entry.allow_type_change``.
    Calling it again (with the version read later, under the lock) is harmless.
    """
    if entry.data_type != previous.data_type and not entry.allow_type_change:
        raise InputError(type_change_message(entry.id, previous.data_type, entry.data_type))
    kept: dict[str, str] = {}
    for name in entry.keep:
        value = getattr(previous, name)
        setattr(entry, name, value)
        if value:  # an empty detail kept empty is not worth a word
            kept[name] = f"'{value}'"
    entry.report.kept = kept
    entry.report.kept_from_version = previous.version if kept else 0


def type_change_message(layer_id: str, old: str, new: str) -> str:
    """Why a replace that would change a layer between raster and vector was refused."""
    return (
        f"'{layer_id}' is {_TYPE_WORDS.get(old, old)}, and this file would make it "
        f"{_TYPE_WORDS.get(new, new)}. Nothing was changed. To store it as the new version "
        "anyway, load it again with --allow-type-change (over HTTP: the form field "
        "allow_type_change=true); or give it its own id with --id."
    )
