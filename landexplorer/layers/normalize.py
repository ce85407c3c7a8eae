"""Normalisation: every batch leaves here valid, in EPSG:4326, with safe column names.

What is done, and counted in the layer's ingest report:

* geometries that are null, empty or unreadable are dropped;
* a layer keeps one geometry family (points, lines or polygons): the family is what
  the file declares, or that of most features of the first batch (polygons first on a
  tie). A feature of another family is not lost: it is counted in ``elsewhere`` and
  ingestion stores it in a layer of its own family (a second pass over the file with
  ``family``/``main`` set). Parts of another family inside a GeometryCollection that
  also holds this layer's family (a stray line among polygons) are dropped and counted;
* invalid geometries are repaired with ``make_valid`` keeping the family;
* lines and polygons are stored as Multi* so one layer has one geometry type;
* coordinates are reprojected to EPSG:4326 (lon/lat), and refused when they cannot be
  right for the declared CRS;
* a file with no CRS is accepted only when its coordinates can only be lon/lat;
* column names become lower-case ``a-z0-9_``; values are kept, with Arrow types the
  GeoPackage can store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import shapely
from pyproj import CRS

from landexplorer.catalog.base import GEOMETRY
from landexplorer.catalog.model import IngestReport
from landexplorer.crs import is_wgs84, parse_crs, transformer_to_wgs84
from landexplorer.errors import CRSError, EmptyInput
from landexplorer.layers.crs import check_source_bounds, looks_geographic
from landexplorer.layers.readers import RawBatch, VectorSource

POINT, LINE, POLYGON = "point", "line", "polygon"
#: Families by code (the order is the tie-break: on equal counts polygons win, then lines).
_FAMILIES = (POINT, LINE, POLYGON)
_CODE = {fam: code for code, fam in enumerate(_FAMILIES)}
#: Geometry type id (shapely) -> family code; -1 for collections and anything else.
_TYPE_CODE = np.array([0, 1, 1, 2, 0, 1, 2, -1], dtype=np.int8)
_FAMILY_TYPE_IDS = {POINT: (0, 4), LINE: (1, 2, 5), POLYGON: (3, 6)}
_MULTI_BUILDERS: dict[str, Callable[..., Any]] = {
    POINT: shapely.multipoints,
    LINE: shapely.multilinestrings,
    POLYGON: shapely.multipolygons,
}
# PostgreSQL's system columns too, so that every layer can move to the PostGIS store.
_PG_SYSTEM = {"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"}
_RESERVED = {"fid", "geom", "geometry", "ogc_fid", "rowid", "oid"} | _PG_SYSTEM


def family_of(declared: str) -> str | None:
    name = declared.lower().replace(" z", "").replace("3d ", "").replace(" m", "")
    if name in ("point", "multipoint"):
        return POINT
    if name in ("linestring", "multilinestring"):
        return LINE
    if name in ("polygon", "multipolygon"):
        return POLYGON
    return None


def row_families(geoms: np.ndarray, main: str | None = None) -> np.ndarray:
    """The family code of each geometry (-1: none, e.g. an empty collection).

    A GeometryCollection belongs to ``main`` when it holds any part of it (its other
    parts are strays); otherwise to the family most of its non-empty parts have
    (polygons first on a tie, then lines).
    """
    ids = shapely.get_type_id(geoms)
    out = np.full(len(geoms), -1, dtype=np.int8)
    simple = (ids >= 0) & (ids < 7)
    out[simple] = _TYPE_CODE[ids[simple]]
    collections = np.flatnonzero(ids == 7)
    if len(collections):
        parts, index = shapely.get_parts(geoms[collections], return_index=True)
        parts, inner = shapely.get_parts(parts, return_index=True)  # a multi inside a collection
        index = index[inner]
        part_ids = shapely.get_type_id(parts)
        codes = np.where((part_ids >= 0) & (part_ids < 7), _TYPE_CODE[part_ids.clip(0, 7)], -1)
        ok = (codes >= 0) & ~shapely.is_empty(parts)
        counts = np.zeros((len(collections), len(_FAMILIES)), dtype=np.int64)
        np.add.at(counts, (index[ok], codes[ok]), 1)
        best = len(_FAMILIES) - 1 - np.argmax(counts[:, ::-1], axis=1)
        family = np.where(counts.sum(axis=1) > 0, best, -1)
        if main is not None:
            family = np.where(counts[:, _CODE[main]] > 0, _CODE[main], family)
        out[collections] = family
    return out


def safe_column_names(names: list[str]) -> dict[str, str]:
    """Map each column name to a safe, unique, lower-case ``a-z0-9_`` name."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        safe = re.sub(r"[^0-9a-z_]+", "_", name.strip().lower()).strip("_")
        safe = re.sub(r"_+", "_", safe) or "column"
        if safe[0].isdigit():
            safe = "c_" + safe
        if safe in _RESERVED:
            safe = safe + "_1"
        safe = safe[:60]
        candidate, n = safe, 2
        while candidate in used:
            candidate, n = f"{safe}_{n}", n + 1
        used.add(candidate)
        out[name] = candidate
    return out


def _storable(field: pa.Field) -> pa.DataType:
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_large_string(t) or pa.types.is_null(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_decimal(t):
        return pa.float64()
    if pa.types.is_unsigned_integer(t):
        return pa.int64()
    if pa.types.is_time(t) or pa.types.is_duration(t):
        return pa.string()
    if pa.types.is_nested(t):
        return pa.string()
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return t
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
        return t
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return t
    return pa.string()


def _convert(array: pa.Array, target: pa.DataType) -> pa.Array:
    if array.type == target:
        return array
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
        if array.type == target:
            return array
    if pa.types.is_nested(array.type):
        values = [None if v is None else json.dumps(v, default=str) for v in array.to_pylist()]
        return pa.array(values, type=pa.string())
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), type=target)
    return array.cast(target, safe=False)


class Normalizer:
    """Turns a source's raw batches into storable batches, filling in the report and bbox."""

    def __init__(
        self,
        source: VectorSource,
        report: IngestReport,
        family: str | None = None,
        main: str | None = None,
    ) -> None:
        """``family`` and ``main``: a second pass that keeps only the features of
        ``family`` that the first pass (of the ``main`` family) counted in ``elsewhere``."""
        self.source = source
        self.report = report
        self.crs: CRS | None = source.crs
        self.family = family or family_of(source.geometry_type)
        self.main = main
        self.multi_points = source.geometry_type.lower().startswith("multipoint")
        self._points_decided = family is None or family != POINT
        #: Features of other families met (family -> count), left for their own layers.
        self.elsewhere: dict[str, int] = {}
        self.columns: dict[str, str] | None = None
        self.schema: pa.Schema | None = None
        self.bounds = [np.inf, np.inf, -np.inf, -np.inf]
        self.had_z = False

    # ----- decisions made on the first batch ------------------------------------------------
    @property
    def geometry_type(self) -> str:
        if self.family == POINT:
            return "MultiPoint" if self.multi_points else "Point"
        if self.family == LINE:
            return "MultiLineString"
        return "MultiPolygon"

    def _decide_crs(self, bounds: tuple[float, float, float, float]) -> CRS:
        if self.crs is not None:
            return self.crs
        if not all(np.isfinite(bounds)):
            raise EmptyInput(f"'{self.source.name}' has no usable coordinates.")
        if looks_geographic(bounds):
            self.crs = parse_crs("EPSG:4326")
            self.report.assumed.append(
                f"'{self.source.name}' does not say which coordinate system it uses; its "
                "coordinates can only be longitudes and latitudes, so WGS84 (EPSG:4326) "
                "was assumed."
            )
            return self.crs
        x0, y0, x1, y1 = bounds
        raise CRSError(
            f"'{self.source.name}' does not say which coordinate system its coordinates are "
            f"in, and they ({x0:,.0f}, {y0:,.0f} to {x1:,.0f}, {y1:,.0f}) are not longitudes "
            "and latitudes. Load it again naming the system, for example --crs EPSG:27700 "
            "for British National Grid."
        )

    def _decide_family(self, geoms: np.ndarray) -> None:
        if self.family is not None:
            return
        codes = row_families(geoms)
        counts = np.bincount(codes[codes >= 0], minlength=len(_FAMILIES))
        if not counts.any():
            raise EmptyInput(f"'{self.source.name}' has no points, lines or polygons in it.")
        self.family = _FAMILIES[len(_FAMILIES) - 1 - int(np.argmax(counts[::-1]))]
        if self.family == POINT:
            mine = codes == _CODE[POINT]
            self.multi_points = bool((shapely.get_type_id(geoms[mine]) == 4).any())

    def _route(self, geoms: np.ndarray, attrs: pa.RecordBatch) -> tuple[np.ndarray, pa.RecordBatch]:
        """Keep the features of this layer's family. In a first pass, those of another
        family are counted in ``elsewhere`` (for their own layer); in a second pass
        (``main`` set), features that belong to another layer are skipped silently."""
        assert self.family is not None
        codes = row_families(geoms, self.main or self.family)
        mine = codes == _CODE[self.family]
        if mine.all():
            return geoms, attrs
        if self.main is None:
            for code, n in zip(*np.unique(codes[~mine], return_counts=True), strict=True):
                if code < 0:  # nothing drawable at all (e.g. an empty collection)
                    self.report.dropped_empty += int(n)
                else:
                    family = _FAMILIES[int(code)]
                    self.elsewhere[family] = self.elsewhere.get(family, 0) + int(n)
        else:
            self.report.rows_read -= int((~mine).sum())  # rows of the other layer(s)
        if not self._points_decided and mine.any():
            self.multi_points = bool((shapely.get_type_id(geoms[mine]) == 4).any())
            self._points_decided = True
        return geoms[mine], attrs.filter(pa.array(mine))

    def _attributes(self, attrs: pa.RecordBatch) -> pa.RecordBatch:
        if self.columns is None:
            self.columns = safe_column_names(attrs.schema.names)
            self.report.renamed_columns.update({k: v for k, v in self.columns.items() if k != v})
            self._types = {f.name: _storable(f) for f in attrs.schema}
        arrays = []
        names = []
        for name in attrs.schema.names:
            target = self._types.get(name, pa.string())
            arrays.append(_convert(attrs.column(name), target))
            names.append(self.columns.get(name) or safe_column_names([name])[name])
        return pa.RecordBatch.from_arrays(arrays, names=names)

    # ----- per batch ------------------------------------------------------------------------
    def __call__(self, raw: RawBatch) -> pa.RecordBatch | None:
        self.report.rows_read += raw.attributes.num_rows
        if raw.x is not None and raw.y is not None:
            return self._points(raw)
        return self._geometries(raw)

    def _finish(self, attrs: pa.RecordBatch, wkb: pa.Array, bounds: np.ndarray) -> pa.RecordBatch:
        out = self._attributes(attrs)
        if out.num_columns:
            out = out.append_column(GEOMETRY, wkb)
        else:  # features without any attributes (a GeoJSON with empty properties)
            out = pa.RecordBatch.from_arrays([wkb], names=[GEOMETRY])
        if self.schema is None:
            self.schema = out.schema
        elif out.schema != self.schema:
            out = pa.RecordBatch.from_arrays(
                [_convert(out.column(i), f.type) for i, f in enumerate(self.schema)],
                schema=self.schema,
            )
        self.bounds = [
            min(self.bounds[0], bounds[0]),
            min(self.bounds[1], bounds[1]),
            max(self.bounds[2], bounds[2]),
            max(self.bounds[3], bounds[3]),
        ]
        self.report.features_stored += out.num_rows
        return out

    def _points(self, raw: RawBatch) -> pa.RecordBatch | None:
        assert raw.x is not None and raw.y is not None
        x = np.asarray(raw.x, dtype=np.float64)
        y = np.asarray(raw.y, dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        attrs = raw.attributes
        if not ok.all():
            self.report.dropped_no_coordinates += int((~ok).sum())
            x, y = x[ok], y[ok]
            attrs = attrs.filter(pa.array(ok))
        if self.family is None:
            self.family = POINT
        if len(x) == 0:
            return None
        bounds = (float(x.min()), float(y.min()), float(x.max()), float(y.max()))
        crs = self._decide_crs(bounds)
        check_source_bounds(crs, bounds, f"'{self.source.name}'")
        if not is_wgs84(crs):
            x, y = transformer_to_wgs84(crs.to_wkt()).transform(x, y)
            x, y = np.asarray(x), np.asarray(y)
        wkb = point_wkb(x, y)
        return self._finish(
            attrs, wkb, np.array([x.min(), y.min(), x.max(), y.max()], dtype=np.float64)
        )

    def _geometries(self, raw: RawBatch) -> pa.RecordBatch | None:
        assert raw.wkb is not None
        attrs = raw.attributes
        values = raw.wkb.to_numpy(zero_copy_only=False)
        geoms = shapely.from_wkb(values, on_invalid="ignore")
        if shapely.has_z(geoms).any():
            self.had_z = True
            geoms = shapely.force_2d(geoms)
        keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
        if not keep.all():
            if self.main is None:
                self.report.dropped_empty += int((~keep).sum())
            else:  # counted by the first pass
                self.report.rows_read -= int((~keep).sum())
            geoms, attrs = geoms[keep], attrs.filter(pa.array(keep))
        if len(geoms) == 0:
            return None
        self._decide_family(geoms)
        geoms, attrs = self._route(geoms, attrs)
        if len(geoms) == 0:
            return None
        geoms, attrs = self._keep_family(geoms, attrs)
        if len(geoms) == 0:
            return None
        invalid = ~shapely.is_valid(geoms)
        if invalid.any():
            self.report.repaired += int(invalid.sum())
            fixed = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
            geoms[invalid] = fixed
            # a shape with no area left (a sliver) comes back empty: drop it like any empty one,
            # or it would be stored as an empty geometry without an R-tree entry
            collapsed = shapely.is_empty(geoms)
            if collapsed.any():
                self.report.dropped_empty += int(collapsed.sum())
                geoms, attrs = geoms[~collapsed], attrs.filter(pa.array(~collapsed))
            geoms, attrs = self._keep_family(geoms, attrs, count_parts=False)
            if len(geoms) == 0:
                return None
        bounds = tuple(float(v) for v in shapely.total_bounds(geoms))
        crs = self._decide_crs(bounds)  # type: ignore[arg-type]
        check_source_bounds(crs, bounds, f"'{self.source.name}'")  # type: ignore[arg-type]
        if not is_wgs84(crs):
            transformer = transformer_to_wgs84(crs.to_wkt())
            geoms = shapely.transform(
                geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
            )
        geoms = self._promote(geoms)
        wkb = pa.array(shapely.to_wkb(geoms, flavor="iso"), type=pa.binary())
        return self._finish(attrs, wkb, shapely.total_bounds(geoms))

    def _keep_family(
        self, geoms: np.ndarray, attrs: pa.RecordBatch, count_parts: bool = True
    ) -> tuple[np.ndarray, pa.RecordBatch]:
        assert self.family is not None
        wanted = _FAMILY_TYPE_IDS[self.family]
        ids = shapely.get_type_id(geoms)
        mixed = ~np.isin(ids, wanted)
        if not mixed.any():
            return geoms, attrs
        rows = np.flatnonzero(mixed)
        parts, index = shapely.get_parts(geoms[rows], return_index=True)
        # one more level: a collection may hold multi-geometries
        parts, inner = shapely.get_parts(parts, return_index=True)
        index = index[inner]
        single_id = {POINT: 0, LINE: 1, POLYGON: 3}[self.family]
        part_ids = shapely.get_type_id(parts)
        good = (part_ids == single_id) & ~shapely.is_empty(parts)
        if count_parts:
            self.report.dropped_parts += int((~good).sum())
        rebuilt = np.full(len(rows), None, dtype=object)
        if good.any():
            parts, index = parts[good], index[good]
            build: Callable[..., Any] = _MULTI_BUILDERS[self.family]
            merged = np.asarray(build(parts, indices=index))
            present = np.unique(index)
            rebuilt[present] = merged[present]
        geoms = geoms.copy()
        geoms[rows] = rebuilt
        keep = ~shapely.is_missing(geoms)
        if not keep.all():
            self.report.dropped_empty += int((~keep).sum())
            geoms, attrs = geoms[keep], attrs.filter(pa.array(keep))
        return geoms, attrs

    def _promote(self, geoms: np.ndarray) -> np.ndarray:
        ids = shapely.get_type_id(geoms)
        if self.family == POLYGON:
            single = ids == 3
            if single.any():
                geoms[single] = shapely.multipolygons(geoms[single][:, None].tolist())
        elif self.family == LINE:
            single = ids != 5
            if single.any():
                geoms[single] = [shapely.MultiLineString([g]) for g in geoms[single]]
        elif self.family == POINT:
            if self.multi_points:
                single = ids == 0
                if single.any():
                    geoms[single] = [shapely.MultiPoint([g]) for g in geoms[single]]
            else:
                multi = ids == 4
                if multi.any():
                    counts = shapely.get_num_geometries(geoms[multi])
                    self.report.dropped_parts += int((counts - 1).clip(min=0).sum())
                    geoms[multi] = shapely.get_geometry(geoms[multi], 0)
        return geoms


def point_wkb(x: np.ndarray, y: np.ndarray) -> pa.Array:
    """ISO WKB points built straight from coordinate arrays (no per-point Python objects)."""
    n = len(x)
    record = np.dtype([("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])
    buf = np.empty(n, dtype=record)
    buf["order"] = 1
    buf["type"] = 1
    buf["x"] = x
    buf["y"] = y
    offsets = np.arange(0, (n + 1) * 21, 21, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(buf.view(np.uint8))]
    )
