"""The catalogue/store interface.

One interface, several implementations: the embedded GeoPackage store (default) and a
PostGIS store. Everything above the catalogue (analysis, tiles, api) talks to a
``Store`` and never to a file or a database directly.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa

from landexplorer.catalog.model import FID, GEOMETRY, BBox, LayerEntry
from landexplorer.errors import InputError, StoreBusy


class VersionChanged(StoreBusy):
    """The layer version a pinned read asked for was replaced by a newer one meanwhile."""

    def __init__(self, layer_id: str) -> None:
        super().__init__(
            f"The layer '{layer_id}' was replaced while it was being read. Please try again."
        )


if TYPE_CHECKING:
    import geopandas as gpd

    from landexplorer.catalog.editing import Change, Edit, EditResult

_T = TypeVar("_T")


def check_bbox(bbox: Iterable[float]) -> BBox:
    """Four finite numbers, west <= east and south <= north, or a plain-words refusal."""
    values = [float(v) for v in bbox]
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InputError("A bounding box needs four numbers: west, south, east, north.")
    x0, y0, x1, y1 = values
    if x0 > x1 or y0 > y1:
        raise InputError(
            "The bounding box is upside down: give west, south, east, north "
            "(the first two smaller than the last two)."
        )
    return x0, y0, x1, y1


@dataclass(frozen=True)
class Filter:
    """One safe comparison on a catalogued column: ``column op value``.

    Columns are checked against the layer's catalogue entry and values are always bound
    as parameters, never spliced into SQL.
    """

    column: str
    op: str  # "=", "<>", "<", "<=", ">", ">=", "like", "in", "between", "isnull", "notnull"
    value: Any = None


@dataclass
class Query:
    """What to read from a layer. Coordinates of ``bbox`` are EPSG:4326 lon/lat."""

    bbox: BBox | None = None
    columns: Sequence[str] | None = None  # None: every column
    filters: Sequence[Filter] = field(default_factory=tuple)
    limit: int | None = None
    offset: int = 0
    fids: Sequence[int] | None = None
    #: Hints for drawing tiles; a store may ignore them and return more rows. ``loose_bbox``:
    #: features whose bounds touch ``bbox`` (the exact test is left to the caller).
    #: ``min_size``: leave out features whose bounds are narrower than ``min_size[0]`` and
    #: lower than ``min_size[1]`` degrees (points too: only for layers that hold none).
    loose_bbox: bool = False
    min_size: tuple[float, float] | None = None


class SqlRunner(Protocol):
    """What a store backed by a spatial database (PostGIS) hands out for the SQL that
    analysis and tiles push down to it: rows fetched with bound parameters, and the names
    of the tables and columns to put in that SQL (always through ``quote_ident``).

    ``read`` runs ``run`` on a layer's current version and runs it again on the new
    version if a replace retired the table meanwhile."""

    #: How many answers each push-down gave (``compare``, ``overlay_areas``), for tests
    pushdowns: Counter[str]

    def fetch(self, sql: str, params: Iterable[Any] = (), *, binary: bool = False) -> list[Any]: ...

    def read(self, layer: str | LayerEntry, run: Callable[[LayerEntry], _T]) -> _T: ...

    def entry(self, layer_id: str) -> LayerEntry: ...

    def vector(self, layer_id: str) -> LayerEntry: ...

    def table(self, entry: LayerEntry) -> str: ...

    def column(self, entry: LayerEntry, name: str) -> tuple[str, pa.DataType]: ...

    def where(self, entry: LayerEntry, query: Query, alias: str = "t") -> tuple[str, list[Any]]: ...


class Store(ABC):
    """A catalogue of layers and the storage behind it."""

    #: "gpkg" or "postgis"
    backend: str = ""
    #: Where raster layers are kept as COG files (beside the catalogue).
    raster_dir: Path

    # ----- catalogue -------------------------------------------------------------------
    @abstractmethod
    def list_layers(self) -> list[LayerEntry]:
        """Every layer, in id order."""

    @abstractmethod
    def get(self, layer_id: str) -> LayerEntry:
        """One layer's entry; raises ``LayerNotFound``."""

    def exists(self, layer_id: str) -> bool:
        from landexplorer.errors import LayerNotFound

        try:
            self.get(layer_id)
        except LayerNotFound:
            return False
        return True

    @abstractmethod
    def update_metadata(self, layer_id: str, **fields: Any) -> LayerEntry:
        """Change descriptive fields (title, licence, visibility, ...) without a new version."""

    @abstractmethod
    def delete(self, layer_id: str) -> None:
        """Remove a layer and its data."""

    # ----- writing ------------------------------------------------------------------------
    @abstractmethod
    def write_vector(
        self,
        entry: LayerEntry,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        *,
        replace: bool = False,
    ) -> LayerEntry:
        """Store a new layer, or a new version of one, atomically.

        ``batches`` carry a WKB ``geometry`` column in EPSG:4326 plus attribute columns.
        The iterator may fill in ``entry`` (counts, bbox, report) as it goes: it is read
        again after the last batch. Either the whole version becomes visible in one step,
        or (on any exception, Ctrl-C included) the catalogue is left as it was.
        """

    def write_vectors(
        self,
        items: Iterable[tuple[LayerEntry, pa.Schema, Iterable[pa.RecordBatch]]],
        *,
        replace: bool = False,
    ) -> list[LayerEntry]:
        """Store the layers of one load (``write_vector``'s arguments, one item a layer).

        ``items`` may be lazy: the next item is asked for only once every batch of the
        one before has been read (ingestion learns then which layers follow). Here they
        are written one after the other, and if one fails, the layers this call created
        before it are deleted again; an earlier version that one of them replaced stays
        replaced. A store that can commit several versions in one transaction does so.
        """
        written: list[LayerEntry] = []
        try:
            for entry, schema, batches in items:
                if any(done.id == entry.id for done in written):
                    from landexplorer.errors import InputError

                    raise InputError(f"Two layers of this load would both be '{entry.id}'.")
                written.append(self.write_vector(entry, schema, batches, replace=replace))
        except BaseException:
            for done in written:
                if done.version == 1:
                    with contextlib.suppress(Exception):
                        self.delete(done.id)
            raise
        return written

    @abstractmethod
    def write_raster(
        self, entry: LayerEntry, cog_path: Path, *, replace: bool = False
    ) -> LayerEntry:
        """Take ownership of a finished COG file and catalogue it atomically."""

    def raster_path(self, entry: LayerEntry) -> Path:
        """The COG file behind a raster layer (``storage`` is relative to the data folder)."""
        return self.raster_dir.parent / entry.storage

    # ----- reading ------------------------------------------------------------------------
    def _vector(self, layer_id: str) -> LayerEntry:
        """A vector layer's entry; a raster layer is refused in plain words."""
        from landexplorer.errors import InputError

        entry = self.get(layer_id)
        if entry.data_type != "vector":
            raise InputError(f"'{layer_id}' is a raster layer; it has no features to read.")
        return entry

    def _pinned_or_current(self, layer: str | LayerEntry) -> LayerEntry:
        """The entry to read: the one given (one version, pinned) or the current one."""
        return layer if isinstance(layer, LayerEntry) else self._vector(layer)

    @abstractmethod
    def read_arrow(self, layer: str | LayerEntry, query: Query | None = None) -> pa.Table:
        """Features as an Arrow table: ``fid``, the requested columns, WKB ``geometry``.

        Given a ``LayerEntry`` rather than an id, the read is of exactly that version;
        if a newer version has retired it meanwhile, ``VersionChanged`` is raised, so a
        caller making several reads (a page and its count) never mixes two versions.
        """

    @abstractmethod
    def count(self, layer: str | LayerEntry, query: Query | None = None) -> int:
        """How many features match (ignores limit/offset); an entry pins the version."""

    def read_whole(
        self, layer_id: str, bbox: BBox | None = None, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """A layer's current features meeting ``bbox`` (all when None) as ``read_arrow``
        returns them (``fid``, the columns, WKB ``geometry``), read the store's fastest way;
        no filters, order or paging. The default is ``read_arrow``."""
        return self.read_arrow(layer_id, Query(bbox=bbox, columns=columns))

    def feature_centres(self, entry: LayerEntry) -> np.ndarray:
        """The centre of each feature's bounds (lon, lat; an n x 2 array), for planning
        tiles. The default reads every geometry; stores with an index read only that."""
        import shapely

        table = self.read_arrow(entry, Query(columns=[]))
        b = shapely.bounds(shapely.from_wkb(table.column(GEOMETRY).to_numpy(zero_copy_only=False)))
        return np.column_stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2])

    def read_frame(self, layer_id: str, query: Query | None = None) -> gpd.GeoDataFrame:
        """Features as a GeoDataFrame in EPSG:4326, indexed by ``fid``."""
        import geopandas as gpd
        import shapely

        table = self.read_arrow(layer_id, query)
        frame = table.drop_columns([GEOMETRY]).to_pandas()
        geoms = shapely.from_wkb(table.column(GEOMETRY).to_numpy(zero_copy_only=False))
        gdf = gpd.GeoDataFrame(frame, geometry=geoms, crs="EPSG:4326")
        return gdf.set_index(FID)

    # ----- editing features (``catalog.editing``; the history: ``catalog.history``) ------
    def edit_feature(self, layer_id: str, edit: Edit) -> EditResult:
        """Apply one edit to one feature of a vector layer in ONE transaction: the row,
        the layer's entry (its version moves on) and the history row together, or none.
        ``FeatureNotFound``, ``FeatureChanged`` (``If-Match`` no longer matches) or a
        plain-words ``InputError`` change nothing."""
        raise InputError("This catalogue cannot edit features one by one.")

    def history(
        self,
        layer_id: str,
        *,
        feature_id: int | None = None,
        after: int = 0,
        limit: int = 100,
        since: str | None = None,
    ) -> list[Change]:
        """A layer's changes, oldest first: those with an id above ``after`` (and made
        after the time ``since``, in ``history.stamp`` form), at most ``limit``. With
        ``feature_id``: that feature's changes and the layer's replaces from a file."""
        return []

    # ----- the push-down capability -----------------------------------------------------
    def sql(self) -> SqlRunner | None:
        """The store's spatial SQL (see ``SqlRunner``) for analysis and tiles to push work
        down to, or None (the default): callers then work in Python on ``read_arrow``."""
        return None

    def changes(self) -> ChangeEpoch | None:
        """What moves when another process changes this catalogue (``catalog.changes``),
        for caches kept between requests; None: no such following (each read is fresh)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class ChangeEpoch(Protocol):
    """What ``Store.changes`` gives (``catalog.changes.Changes`` is one): a number that
    moves whenever another process may have changed the catalogue, for caches to follow."""

    def epoch(self) -> int: ...

    def fresh(self) -> bool: ...

    def wait_fresh(self, timeout: float = 5.0) -> bool: ...

    def close(self) -> None: ...


ProgressCallback = Callable[[int], None]
