"""The area report: what every visible layer holds inside one polygon.

Points are counted, lines measured, polygons measured by area and share of the report
area (pieces of one class are merged first, so overlaps are not counted twice), rasters
summarised with coverage-weighted statistics. Each layer is read only within the
polygon's bbox, through its spatial index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely

from landexplorer import budget
from landexplorer.analysis import metric
from landexplorer.analysis.limits import (
    GeoJSONSize,
    Limits,
    check_coordinates,
    check_geojson,
    check_size,
    limits_or_none,
    too_many_features,
)
from landexplorer.analysis.results import AreaReport, LayerInArea
from landexplorer.analysis.sources import geometry_kind, load
from landexplorer.analysis.zonal import compute as zonal_compute
from landexplorer.analysis.zonal import raster_of
from landexplorer.catalog.base import BBox, Query, Store
from landexplorer.catalog.model import LayerEntry
from landexplorer.errors import InputError, LayerNotFound

#: Words that mark a column as a classification worth breaking a layer down by.
_CLASS_WORDS = (
    "band",
    "grade",
    "class",
    "category",
    "type",
    "designation",
    "status",
    "risk",
    "form",
    "kind",
    "use",
)
_MAX_CLASSES = 12
NO_CLASS = "(none)"


def area_polygon(
    area: Any, store: Store | None = None, limits: Limits | None = None
) -> tuple[shapely.Geometry, list[str]]:
    """The report polygon in EPSG:4326 from a shapely geometry (lon/lat), a GeoJSON
    mapping, a GeoDataFrame (any CRS) or ``(layer_id, fid)``; repaired if invalid.

    GeoJSON is counted and checked before shapely sees it (``limits.check_geojson``):
    too many vertices or parts for ``limits`` is ``TooLarge``, a coordinate that is not a
    finite longitude/latitude an ``InputError``. The polygon parts are merged once, so
    overlapping (even identical) pieces become one area before anything is measured.
    """
    notes: list[str] = []
    if isinstance(area, tuple) and len(area) == 2 and isinstance(area[0], str):
        if store is None:
            raise InputError("A feature of a layer was named, but no catalogue was given.")
        layer_id, fid = area
        frame = store.read_frame(layer_id)
        if fid not in frame.index:
            raise LayerNotFound(f"Layer '{layer_id}' has no feature {fid}.")
        geoms = [frame.geometry.loc[fid]]
    elif isinstance(area, Mapping):
        check_geojson(area, limits)
        try:
            geoms = _geojson_geometries(area)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise InputError(
                "The area is not a GeoJSON polygon that can be read.", detail=repr(exc)
            ) from exc
    elif hasattr(area, "geometry") and hasattr(area, "crs"):
        if area.crs is None:
            raise InputError("The area has no coordinate system; say which it uses.")
        geoms = list(np.asarray(area.to_crs("EPSG:4326").geometry.values))
    elif isinstance(area, shapely.Geometry):
        geoms = [area]
    else:
        raise InputError("The area must be a polygon (GeoJSON, a shape or a layer feature).")
    parts = _flat_parts(np.asarray([g for g in geoms if g is not None], dtype=object))
    parts = parts[~shapely.is_empty(parts)] if len(parts) else parts
    if len(parts) == 0:
        raise InputError("The area is empty: draw or give a polygon.")
    if not isinstance(area, Mapping):
        check_coordinates(parts)
        _check_shape_size(parts, limits)
    polys = parts[np.isin(shapely.get_type_id(parts), (3,))]
    # each piece is repaired on its own (repairing thousands of overlapping pieces as one
    # multipolygon costs gigabytes; one by one it costs next to nothing)
    bad = ~shapely.is_valid(polys)
    if bad.any():
        reason = shapely.is_valid_reason(polys[np.flatnonzero(bad)[0]])
        fixed = _flat_parts(shapely.make_valid(polys[bad]))
        # keep the polygon parts (a repair can leave stray lines or points beside them)
        fixed = fixed[shapely.get_type_id(fixed) == 3]
        polys = np.concatenate([polys[~bad], fixed])
        notes.append(f"The area's outline was invalid ({reason}) and was repaired.")
    if not len(polys):
        raise InputError(
            "The area must be a polygon; a point or a line has no inside to report on."
        )
    # one union: overlapping and repeated pieces become one area, measured once
    geom = shapely.union_all(polys)
    if geom.is_empty or shapely.area(geom) == 0:
        raise InputError("The area encloses nothing (its outline has no inside).")
    return geom, notes


def _geojson_geometries(area: Mapping[str, Any]) -> list[shapely.Geometry]:
    kind = area.get("type")
    if kind == "FeatureCollection":
        return [
            shapely.geometry.shape(f["geometry"])
            for f in area.get("features", [])
            if f.get("geometry")
        ]
    if kind == "Feature":
        geometry = area.get("geometry")
        return [] if geometry is None else [shapely.geometry.shape(geometry)]
    return [shapely.geometry.shape(dict(area))]


def _flat_parts(geoms: np.ndarray) -> np.ndarray:
    """Single geometries (polygons, lines, points) of multi-geometries and collections."""
    parts = shapely.get_parts(geoms)
    for _ in range(8):  # collections in collections
        multi = shapely.get_type_id(parts) >= 4
        if not multi.any():
            break
        parts = np.concatenate([parts[~multi], shapely.get_parts(parts[multi])])
    return np.asarray(parts, dtype=object)


def _check_shape_size(parts: np.ndarray, limits: Limits | None) -> None:
    """Vertex and part counts of shapely geometries given directly (as for GeoJSON)."""
    lim = limits_or_none(limits)
    if lim.geojson_vertices is None and lim.geojson_parts is None:
        return
    polygons = parts[shapely.get_type_id(parts) == 3]
    rings = len(polygons) + int(shapely.get_num_interior_rings(polygons).sum())
    size = GeoJSONSize(
        vertices=int(shapely.get_num_coordinates(parts).sum()), parts=len(parts) + rings
    )
    check_size(size, lim)


def area_report(
    store: Store,
    area: Any,
    *,
    layers: Sequence[str] | None = None,
    by: Mapping[str, str] | None = None,
    limits: Limits | None = None,
) -> AreaReport:
    """What each layer (default: every public layer) holds inside ``area``.

    ``area``: see :func:`area_polygon`. ``by`` maps a layer id to the column to break it
    down by; otherwise a classification column is picked by name (band, grade, type ...)
    when it has few values. ``limits`` (None: none) bounds the area's size, the features
    measured (all layers together) and the raster cells read; the work is sized before
    any layer is read, and a report over a limit is refused (``WorkTooLarge``).

    >>> rep = area_report(store, ward_polygon, layers=["flood_risk", "street_trees"])
    >>> rep.layers[0].classes   # area and share by flood band
    """
    lim = limits_or_none(limits)
    geom, notes = area_polygon(area, store, lim)
    x0, y0, x1, y1 = (float(v) for v in shapely.bounds(geom))
    bbox = (x0, y0, x1, y1)
    crs = metric.choose_metric_crs(bbox)  # type: ignore[arg-type]
    area_m = metric.project(np.asarray([geom], dtype=object), crs)[0]
    shapely.prepare(area_m)
    total = float(shapely.area(area_m))
    if layers is None:
        entries = [e for e in store.list_layers() if e.is_public]
    else:
        entries = [store.get(layer_id) for layer_id in layers]
    if lim.report_features is not None:
        _check_features(store, entries, bbox, lim.report_features)
    results = []
    for entry in entries:
        budget.check()  # between layers: a report past its time budget stops here
        if entry.data_type == "raster":
            results.append(_raster(store, entry, geom, lim.zonal_cells))
        else:
            column = (by or {}).get(entry.id)
            results.append(_vector(store, entry, bbox, area_m, total, crs, column))  # type: ignore[arg-type]
    return AreaReport(
        area_m2=total,
        crs=metric.name(crs),
        bbox=bbox,
        layers=results,  # type: ignore[arg-type]
        notes=notes,
    )


def _check_features(store: Store, entries: Sequence[LayerEntry], bbox: BBox, most: int) -> None:
    """Refuse a report that would measure more than ``most`` features, all layers
    together. A layer's whole count (in its catalogue entry) bounds what it can hold in
    the area, so only the biggest layers are counted in the area's bbox (through the
    spatial index), biggest first, and only while the bound is over the limit."""
    vectors = [e for e in entries if e.data_type == "vector"]
    counts = {e.id: int(e.feature_count) for e in vectors}
    if sum(counts.values()) <= most:
        return
    for entry in sorted(vectors, key=lambda e: -e.feature_count):
        if entry.bbox and _box_covers(bbox, entry.bbox):
            continue  # the area's bbox holds the whole layer: the count is exact
        budget.check()
        counts[entry.id] = store.count(entry.id, Query(bbox=bbox))
        if sum(counts.values()) <= most:
            return
    total = sum(counts.values())
    if total > most:
        biggest = sorted(counts.items(), key=lambda kv: -kv[1])
        raise too_many_features(total, most, biggest)


def _box_covers(outer: BBox, inner: Sequence[float]) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
    )


def _candidate_columns(entry: LayerEntry) -> list[str]:
    names = [c.name for c in entry.columns if c.type == "string"]
    return [n for n in names if any(w in n.lower() for w in _CLASS_WORDS)]


def _pick_class(frame: pd.DataFrame, candidates: list[str]) -> str | None:
    for name in candidates:
        distinct = frame[name].nunique(dropna=True)
        if 1 <= distinct <= _MAX_CLASSES:
            return name
    return None


def _vector(
    store: Store,
    entry: LayerEntry,
    bbox: tuple[float, float, float, float],
    area_m: shapely.Geometry,
    total: float,
    crs: Any,
    column: str | None,
) -> LayerInArea:
    candidates = [column] if column else _candidate_columns(entry)
    feats = load(entry.id, store, bbox=bbox, columns=candidates)
    out = LayerInArea(
        entry.id,
        entry.title,
        geometry_kind(feats.geoms),
        licence=entry.licence,
        attribution=entry.attribution,
    )
    geoms = metric.project(feats.geoms, crs)
    hit = shapely.intersects(area_m, geoms)
    if out.kind in ("polygon", "line") and hit.any():
        # features that only touch the area's edge have nothing inside it
        pieces = _clip(geoms[hit], area_m)
        size = shapely.area(pieces) if out.kind == "polygon" else shapely.length(pieces)
        hit[np.flatnonzero(hit)[size <= 0]] = False
    geoms = geoms[hit]
    attrs = feats.attrs.iloc[np.flatnonzero(hit)]
    by = column or _pick_class(attrs, candidates)
    out.by = by
    labels = (
        attrs[by].astype("object").where(attrs[by].notna(), NO_CLASS).to_numpy()
        if by
        else np.full(len(geoms), NO_CLASS, dtype=object)
    )
    out.count = len(geoms)
    kind = out.kind
    if len(geoms) == 0:
        out.kind = _kind_of_entry(entry)
        out.amount = 0.0
        out.unit = {"point": "features", "line": "m", "polygon": "m2"}.get(out.kind, "")
        out.share = 0.0 if out.kind == "polygon" else None
        return out
    if kind == "point":
        out.unit = "features"
        out.amount = float(len(geoms))
        counts = pd.Series(labels).value_counts()
        out.classes = [{"class": k, "count": int(v)} for k, v in counts.sort_index().items()]
    elif kind == "line":
        pieces = _clip(geoms, area_m)
        lengths = np.asarray(shapely.length(pieces), dtype=float)
        out.unit = "m"
        out.amount = float(lengths.sum())
        frame = pd.DataFrame({"class": labels, "length_m": lengths})
        grouped = frame.groupby("class", sort=True).agg(
            count=("length_m", "size"), length_m=("length_m", "sum")
        )
        out.classes = [
            {"class": k, "count": int(r["count"]), "length_m": float(r["length_m"])}
            for k, r in grouped.iterrows()
        ]
    elif kind == "polygon":
        pieces = _clip(geoms, area_m)
        out.unit = "m2"
        classes = []
        merged_all = []
        for label in sorted(set(labels.tolist()), key=str):
            sel = labels == label
            merged = shapely.union_all(pieces[sel]) if sel.sum() > 1 else pieces[sel][0]
            merged_all.append(merged)
            amount = float(shapely.area(merged))
            classes.append(
                {
                    "class": label,
                    "count": int(sel.sum()),
                    "area_m2": amount,
                    "share": amount / total if total else None,
                }
            )
        covered = shapely.union_all(merged_all) if len(merged_all) > 1 else merged_all[0]
        out.amount = float(shapely.area(covered))
        out.share = out.amount / total if total else None
        out.classes = classes
    return out


def _kind_of_entry(entry: LayerEntry) -> str:
    name = entry.geometry_type.lower()
    if "point" in name:
        return "point"
    if "line" in name:
        return "line"
    if "polygon" in name:
        return "polygon"
    return "empty"


def _clip(geoms: np.ndarray, area_m: shapely.Geometry) -> np.ndarray:
    """Parts of ``geoms`` inside the (prepared) area; features wholly inside are kept as is."""
    inside = shapely.covers(area_m, geoms)
    out = geoms.copy()
    rest = np.flatnonzero(~inside)
    if len(rest):
        out[rest] = shapely.intersection(geoms[rest], area_m)
    return out


def _raster(
    store: Store, entry: LayerEntry, geom: shapely.Geometry, max_cells: int | None = None
) -> LayerInArea:
    info = raster_of(entry.id, store)
    zone = metric.project(np.asarray([geom], dtype=object), info.crs)
    categorical = str(entry.raster.get("dtype", "")).startswith(("int", "uint"))
    wanted = ["count", "mean", "min", "max", "std", *(["majority"] if categorical else [])]
    values = zonal_compute(
        zone, info.path, wanted, "coverage", max_cells=max_cells,
        doing=f"Summarising '{entry.id}' inside the area",
        cli=f"landexplorer report AREA.geojson --layers {entry.id}",
    )  # fmt: skip
    stats = {name: float(arr[0]) for name, arr in values.items()}
    out = LayerInArea(
        entry.id,
        entry.title,
        "raster",
        count=round(stats["count"]),
        amount=stats["count"],
        unit="cells",
        stats=stats,
        licence=entry.licence,
        attribution=entry.attribution,
    )
    return out
