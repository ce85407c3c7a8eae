"""Turning what a caller gives (a catalogue layer id or a GeoDataFrame) into features.

Analysis reads only what it needs: rows whose bbox meets the area of interest, through
the layer's spatial index. Every geometry handed on is in EPSG:4326 (lon/lat), like the
catalogue stores it; a GeoDataFrame in another CRS is reprojected on purpose and the
result says so. Store-specific fast paths live in ``_fast_read`` and nowhere else, so a
PostGIS push-down can be added beside the GeoPackage one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd
import shapely

from landexplorer.analysis.wkbflat import FlatPolygons, flat_polygons
from landexplorer.catalog.base import FID, GEOMETRY, BBox, Store
from landexplorer.crs import crs_name, epsg_code
from landexplorer.errors import CRSError, InputError

if TYPE_CHECKING:
    import geopandas as gpd

#: A catalogue layer id or a GeoDataFrame.
LayerLike: TypeAlias = "str | gpd.GeoDataFrame"


@dataclass(frozen=True)
class Source:
    """Where an input came from, and the licence and credit that must travel with results."""

    id: str
    title: str = ""
    licence: str = ""
    attribution: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "title": self.title,
            "licence": self.licence,
            "attribution": self.attribution,
        }


@dataclass
class Features:
    """Geometries (shapely, EPSG:4326) with their attributes, one row each, and provenance.

    A frame given in another CRS keeps its own geometries in ``native``; the EPSG:4326
    ones are made only when something asks for them, so measuring a frame in its own
    CRS costs no reprojection at all.
    """

    _geoms: np.ndarray | None
    attrs: pd.DataFrame  # index: feature id (fid for catalogue layers, the frame's index else)
    source: Source
    notes: list[str] = field(default_factory=list)
    #: The geometries in the CRS they were given in, when that was not EPSG:4326, so that
    #: measuring in that same CRS needs no round trip (which is not exact to the mm).
    native: tuple[np.ndarray, Any] | None = None
    #: A big polygon layer read from the catalogue keeps its EPSG:4326 coordinates flat
    #: instead of as geometries: measuring it projects them and builds each geometry once,
    #: in the metric CRS (``metric.project_features``); ``geoms`` builds them when asked.
    flat: FlatPolygons | None = None
    _bounds: tuple[BBox | None] | None = field(default=None, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.attrs)

    @property
    def geoms(self) -> np.ndarray:
        """The geometries in EPSG:4326."""
        if self._geoms is None:
            from landexplorer.analysis.metric import project, wgs84

            if self.flat is not None:
                self._geoms = self.flat.geometries()
            else:
                assert self.native is not None
                self._geoms = project(self.native[0], wgs84(), src=_as_crs(self.native[1]))
        return self._geoms

    @property
    def bounds(self) -> BBox | None:
        """Lon/lat bounds of the non-empty geometries, or None when there are none."""
        # geometries never change, so neither do their bounds: work them out once
        if self._bounds is None:
            self._bounds = (self._find_bounds(),)
        return self._bounds[0]

    def _find_bounds(self) -> BBox | None:
        if len(self) == 0:
            return None
        if self._geoms is None and self.flat is not None:
            return self.flat.bounds()
        if self._geoms is None and self.native is not None:
            return _native_bounds(self.native[0], _as_crs(self.native[1]))
        b = shapely.bounds(self.geoms)
        ok = ~np.isnan(b[:, 0])
        if not ok.any():
            return None
        return (
            float(b[ok, 0].min()),
            float(b[ok, 1].min()),
            float(b[ok, 2].max()),
            float(b[ok, 3].max()),
        )

    def kind(self) -> str:
        """'point', 'line', 'polygon', 'mixed' or 'empty' from the geometry types present."""
        if self._geoms is None and self.flat is not None:
            return "polygon" if len(self.flat) else "empty"
        return geometry_kind(self._geoms if self._geoms is not None else self.native[0])  # type: ignore[index]

    def subset(self, mask: np.ndarray) -> Features:
        native = (self.native[0][mask], self.native[1]) if self.native is not None else None
        # flat coordinates are not cut: the subset gets geometries (built here if need be)
        keep = self._geoms if self._geoms is not None or native is not None else self.geoms
        return Features(
            keep[mask] if keep is not None else None,
            self.attrs.iloc[np.flatnonzero(mask)],
            self.source,
            list(self.notes),
            native,
        )


def _as_crs(value: Any) -> Any:
    from pyproj import CRS

    return CRS.from_user_input(value)


def _native_bounds(geoms: np.ndarray, crs: Any) -> BBox | None:
    """Lon/lat bounds of geometries in ``crs`` without reprojecting them one by one."""
    from landexplorer.analysis.metric import _transformer, wgs84, wkt_of

    b = shapely.bounds(geoms)
    ok = ~np.isnan(b[:, 0])
    if not ok.any():
        return None
    x0, y0 = float(b[ok, 0].min()), float(b[ok, 1].min())
    x1, y1 = float(b[ok, 2].max()), float(b[ok, 3].max())
    t = _transformer(wkt_of(crs), wkt_of(wgs84()))
    lon0, lat0, lon1, lat1 = t.transform_bounds(x0, y0, x1, y1, densify_pts=21)
    return (lon0, lat0, lon1, lat1)


_KIND_OF_TYPE = {
    0: "point",
    4: "point",
    1: "line",
    2: "line",
    5: "line",
    3: "polygon",
    6: "polygon",
}


def geometry_kind(geoms: np.ndarray) -> str:
    """The dimension family of an array of geometries (ignoring missing/empty ones)."""
    if len(geoms) == 0:
        return "empty"
    types = shapely.get_type_id(geoms)
    kinds = {_KIND_OF_TYPE.get(int(t), "mixed") for t in np.unique(types) if t >= 0}
    if not kinds:
        return "empty"
    return kinds.pop() if len(kinds) == 1 else "mixed"


def source_of(layer: LayerLike, store: Store | None) -> Source:
    """Provenance of an input without reading its features."""
    if isinstance(layer, str):
        entry = _store(store, layer).get(layer)
        return Source(entry.id, entry.title, entry.licence, entry.attribution)
    attrs = getattr(layer, "attrs", {}) or {}
    return Source(
        str(attrs.get("id", "frame")),
        str(attrs.get("title", "")),
        str(attrs.get("licence", "")),
        str(attrs.get("attribution", "")),
    )


def _store(store: Store | None, layer_id: str) -> Store:
    if store is None:
        raise InputError(
            f"'{layer_id}' names a catalogue layer, but no catalogue was given to read it from."
        )
    return store


def layer_bounds(layer: LayerLike, store: Store | None) -> BBox | None:
    """Lon/lat bounds of a layer, from the catalogue entry when there is one (no read)."""
    if isinstance(layer, str):
        entry = _store(store, layer).get(layer)
        return tuple(entry.bbox) if entry.bbox else None  # type: ignore[return-value]
    return load(layer, store).bounds


def load(
    layer: LayerLike,
    store: Store | None = None,
    *,
    bbox: BBox | None = None,
    columns: Sequence[str] | None = None,
) -> Features:
    """Features of a layer id (read from ``store``) or of a GeoDataFrame, as EPSG:4326.

    ``bbox`` (lon/lat) limits a catalogue read to rows meeting it, through the R-tree.
    ``columns`` limits the attributes read (None: all; ``[]``: none).
    """
    if isinstance(layer, str):
        return _load_layer(_store(store, layer), layer, bbox, columns)
    return _load_frame(layer, bbox, columns)


def _load_layer(
    store: Store, layer_id: str, bbox: BBox | None, columns: Sequence[str] | None
) -> Features:
    entry = store.get(layer_id)
    if entry.data_type != "vector":
        raise InputError(f"'{layer_id}' is a raster layer; this needs a layer of features.")
    names = entry.column_names()
    if columns is not None:
        for c in columns:
            if c not in names:
                raise InputError(
                    f"Layer '{layer_id}' has no column called '{c}'. "
                    f"Its columns are: {', '.join(names) or 'none'}."
                )
    source = Source(entry.id, entry.title, entry.licence, entry.attribution)
    if bbox is not None:
        bbox = _clamp_bbox(bbox)
        if entry.bbox and _covers(bbox, entry.bbox):
            bbox = None  # the whole layer is wanted: skip the spatial-index join
    table = store.read_whole(layer_id, bbox, columns)
    column = table.column(GEOMETRY)
    flat = flat_polygons(column) if table.num_rows >= _FLAT_FROM else None
    geoms = (
        None
        if flat is not None
        else np.asarray(shapely.from_wkb(column.to_numpy(zero_copy_only=False)), dtype=object)
    )
    # column by column: much cheaper than Table.to_pandas for the small reads of a report
    attrs = pd.DataFrame(
        {n: table.column(n).to_pandas() for n in table.schema.names if n not in (FID, GEOMETRY)},
        index=pd.RangeIndex(table.num_rows),
    )
    attrs.index = pd.Index(table.column(FID).to_numpy(), name=FID)
    return Features(geoms, attrs, source, flat=flat)


#: rows from which a polygon layer is kept as flat coordinates (below it GEOS parses the
#: WKB in a few milliseconds anyway)
_FLAT_FROM = 5_000


def _covers(outer: BBox, inner: Sequence[float]) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
    )


def _clamp_bbox(bbox: BBox) -> BBox:
    x0, y0, x1, y1 = (float(v) for v in bbox)
    return (max(x0, -180.0), max(y0, -90.0), min(x1, 180.0), min(y1, 90.0))


def _load_frame(frame: Any, bbox: BBox | None, columns: Sequence[str] | None) -> Features:
    notes: list[str] = []
    if frame.crs is None:
        raise CRSError(
            "The data given has no coordinate system, so it cannot be compared safely with "
            "other layers. Set one first, e.g. frame.set_crs('EPSG:4326')."
        )
    code = epsg_code(frame.crs)
    native = None
    given = np.asarray(frame.geometry.values, dtype=object)
    geoms: np.ndarray | None = given
    if code != 4326:
        native = (given, frame.crs)
        geoms = None  # made from ``native`` when needed
        notes.append(
            f"{source_of(frame, None).id} was given in {crs_name(frame.crs)} and was reprojected "
            "on purpose (to EPSG:4326 to compare, to the metric CRS to measure)."
        )
    keep = [c for c in frame.columns if c != frame.geometry.name]
    if columns is not None:
        missing = [c for c in columns if c not in keep]
        if missing:
            raise InputError(f"The data given has no column called '{missing[0]}'.")
        keep = list(columns)
    attrs = pd.DataFrame(frame[keep]).copy()
    attrs.index.name = FID
    feats = Features(geoms, attrs, source_of(frame, None), notes, native)
    if bbox is not None:
        feats = feats.subset(shapely.intersects(feats.geoms, shapely.box(*bbox)))
    return feats


def expand_bbox(bbox: BBox, metres: float) -> BBox:
    """Grow a lon/lat bbox by at least ``metres`` on every side (generous near the poles)."""
    x0, y0, x1, y1 = bbox
    dlat = metres / 110_574.0 * 1.01 + 1e-9
    lat = min(89.0, max(abs(y0), abs(y1)) + dlat)
    dlon = metres / (111_320.0 * math.cos(math.radians(lat))) * 1.01 + 1e-9
    return (x0 - dlon, y0 - dlat, x1 + dlon, y1 + dlat)
