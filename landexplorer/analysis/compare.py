"""Comparing two layers feature by feature: intersects, within, contains, within a
distance, nearest.

Both sides are brought to the storage CRS (EPSG:4326) on purpose, whatever they were
given in, and topological tests (intersects, within, contains) run there, where a point
stored on an edge is exactly on it. Distances, overlaps, areas and lengths are measured
in one metric CRS chosen for the data and named in the result.

The STRtree is built on the larger side and queried with the smaller one: a million
points in a tree queried by a hundred thousand polygons is many times faster than the
other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from landexplorer.analysis import metric
from landexplorer.analysis.results import Comparison
from landexplorer.analysis.sources import (
    Features,
    LayerLike,
    expand_bbox,
    geometry_kind,
    layer_bounds,
    load,
    source_of,
)
from landexplorer.catalog.base import FID, GEOMETRY, BBox, Query, Store
from landexplorer.errors import InputError

PREDICATES = ("intersects", "within", "contains", "within-distance", "nearest")
#: The same test seen from the other side (tree built on the left instead of the right).
_SWAPPED = {
    "intersects": "intersects",
    "within": "contains",
    "contains": "within",
    "dwithin": "dwithin",
}
ANY_CLASS = "(any)"


def candidate_pairs(
    left: np.ndarray, right: np.ndarray, predicate: str, distance: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) where ``predicate(left[i], right[j])`` holds, sorted by i then j.

    The tree goes on the larger side; ``predicate`` is one of intersects, within,
    contains, dwithin (with ``distance`` in the units of the coordinates).
    """
    if len(left) == 0 or len(right) == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    kwargs = {"distance": distance} if predicate == "dwithin" else {}
    if len(right) >= len(left):
        li, rj = shapely.STRtree(right).query(left, predicate=predicate, **kwargs)  # type: ignore[call-overload]
    else:
        rj, li = shapely.STRtree(left).query(  # type: ignore[call-overload]
            right, predicate=_SWAPPED[predicate], **kwargs
        )
    order = np.lexsort((rj, li))
    return li[order], rj[order]


def nearest_pairs(
    left: np.ndarray, right: np.ndarray, k: int, max_distance: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` nearest right features of each left feature: (i, j, distance)."""
    empty = np.zeros(0, dtype=np.intp)
    if len(left) == 0 or len(right) == 0:
        return empty, empty, np.zeros(0)
    tree = shapely.STRtree(right)
    li, rj = tree.query_nearest(left, max_distance=max_distance, all_matches=False)
    if k == 1:
        d = shapely.distance(left[li], right[rj])
        return li, rj, d
    # k > 1: search a radius around each left feature, doubling it until k are inside.
    d1 = np.full(len(left), np.nan)
    d1[li] = shapely.distance(left[li], right[rj])
    radius = np.where(np.isnan(d1), np.nan, np.maximum(d1 * 2.0, 1.0))
    if max_distance is not None:
        radius = np.minimum(radius, max_distance)
    pending = np.flatnonzero(~np.isnan(radius))
    want = min(k, len(right))
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    out_d: list[np.ndarray] = []
    while len(pending):
        qi, qj = tree.query(left[pending], predicate="dwithin", distance=radius[pending])
        counts = np.bincount(qi, minlength=len(pending))
        capped = max_distance is not None and radius[pending] >= max_distance
        done = (counts >= want) | capped
        sel = done[qi]
        gi, gj = pending[qi[sel]], qj[sel]
        if len(gi):
            gd = shapely.distance(left[gi], right[gj])
            order = np.lexsort((gj, gd, gi))
            gi, gj, gd = gi[order], gj[order], gd[order]
            rank = _rank_within_groups(gi)
            keep = rank < k
            out_i.append(gi[keep])
            out_j.append(gj[keep])
            out_d.append(gd[keep])
        pending = pending[~done]
        radius[pending] *= 2.0
        if max_distance is not None:
            radius[pending] = np.minimum(radius[pending], max_distance)
    if not out_i:
        return empty, empty, np.zeros(0)
    i, j, d = np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)
    order = np.lexsort((j, d, i))
    return i[order], j[order], d[order]


def _rank_within_groups(sorted_keys: np.ndarray) -> np.ndarray:
    """0, 1, 2... within each run of equal values of an array sorted by those values."""
    if len(sorted_keys) == 0:
        return np.zeros(0, dtype=np.intp)
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_keys)) + 1]
    run_lengths = np.diff(np.r_[starts, len(sorted_keys)])
    return np.arange(len(sorted_keys)) - np.repeat(starts, run_lengths)


def compare(
    left: LayerLike,
    right: LayerLike,
    *,
    store: Store | None = None,
    predicate: str = "intersects",
    distance: float | None = None,
    k: int | None = None,
    by: str | None = None,
    bbox: BBox | None = None,
    left_columns: Sequence[str] | None = None,
    right_columns: Sequence[str] | None = None,
    overlap: bool = True,
) -> Comparison:
    """Which features of ``left`` meet features of ``right``, pair by pair.

    ``predicate``: ``intersects`` (touching counts), ``within`` (left inside right; a point
    on the boundary is not inside), ``contains`` (left holds right), ``within-distance``
    (``distance`` metres or nearer) or ``nearest`` (the ``k`` nearest right features,
    no further than ``distance`` metres when given; distances returned). ``by`` names a
    column of ``right`` whose classes the summary counts left features by. ``bbox``
    (lon/lat) limits the comparison to left features meeting it. Only right features near
    the left ones are read.

    >>> result = compare("allotments", "flood_risk", store=store, by="prob_4band")
    >>> result.summary            # left_features and pairs per flood band
    """
    predicate = predicate.replace("_", "-").lower()
    if predicate not in PREDICATES:
        raise InputError(
            f"'{predicate}' is not a comparison landexplorer knows. Use one of: "
            + ", ".join(PREDICATES)
            + "."
        )
    if predicate == "within-distance" and (distance is None or distance < 0):
        raise InputError("Say how near counts, in metres, e.g. --distance 50.")
    if distance is not None and distance < 0:
        raise InputError("A distance cannot be negative.")
    if k is not None and k < 1:
        raise InputError("k (how many nearest features) must be 1 or more.")
    k = (k or 1) if predicate == "nearest" else None
    by = by or None  # an empty class column means none
    if by is not None:
        _check_column(right, store, by)  # before any path: SQL and Python refuse alike

    want_right = (
        None
        if right_columns is None
        else list(dict.fromkeys([*right_columns, *([by] if by else [])]))
    )
    if store is not None and isinstance(left, str) and isinstance(right, str):
        # a store with a spatial database finds (and measures) the pairs in SQL
        pushed = _in_store(
            store, left, right, predicate, distance, by, bbox, left_columns, want_right, overlap
        )
        if pushed is not None:
            return pushed
    lf = load(left, store, bbox=bbox, columns=left_columns)
    left_box = lf.bounds
    if left_box is None:
        right_box = None
    elif predicate == "nearest" and distance is None:
        right_box = None  # the nearest may be anywhere
    elif predicate in ("within-distance", "nearest"):
        right_box = expand_bbox(left_box, float(distance or 0.0))
    else:
        right_box = left_box
    if left_box is None:
        rf = load(right, store, bbox=(0.0, 0.0, 0.0, 0.0), columns=want_right)
    else:
        rf = load(right, store, bbox=right_box, columns=want_right)
    crs = metric.choose_metric_crs(lf.bounds or layer_bounds(left, store), rf.bounds)

    # Topological tests run in the storage CRS, where a point stored on an edge is exactly
    # on it (reprojecting would move it by nanometres, one way or the other); distances,
    # areas and lengths are measured in the metric CRS.
    dist: np.ndarray | None = None
    if predicate in ("nearest", "within-distance"):
        lm = metric.project_features(lf, crs)
        rm = metric.project_features(rf, crs)
        if predicate == "nearest":
            li, rj, dist = nearest_pairs(lm, rm, k or 1, distance)
        else:
            li, rj = candidate_pairs(lm, rm, "dwithin", float(distance or 0.0))
            dist = shapely.distance(lm[li], rm[rj])
    else:
        li, rj = candidate_pairs(lf.geoms, rf.geoms, predicate)

    matches = _pairs_frame(lf, rf, li, rj)
    if dist is not None:
        matches["distance_m"] = dist
    notes = [*lf.notes, *rf.notes]
    if overlap and predicate in ("intersects", "within", "contains") and len(li):
        lk, rk = geometry_kind(lf.geoms[li]), geometry_kind(rf.geoms[rj])
        if rk == "polygon" and lk in ("polygon", "line"):
            a = metric.project_features(lf.subset(_mask(li, len(lf))), crs)[_rank(li)]
            b = metric.project_features(rf.subset(_mask(rj, len(rf))), crs)[_rank(rj)]
            pieces = shapely.intersection(a, b)
            if lk == "polygon":
                matches["overlap_m2"] = shapely.area(pieces)
            else:
                matches["overlap_m"] = shapely.length(pieces)
    gdf = gpd.GeoDataFrame(matches, geometry=lf.geoms[li], crs="EPSG:4326")
    summary = summarise(gdf, by)
    return Comparison(
        matches=gdf,
        summary=summary,
        predicate=predicate,
        left_total=len(lf),
        left_matched=len(np.unique(li)),
        crs=metric.name(crs),
        sources=[lf.source, rf.source],
        by=by,
        distance_m=distance,
        k=k,
        notes=notes,
    )


_KIND_OF_NAME = {
    "POINT": "point",
    "MULTIPOINT": "point",
    "LINESTRING": "line",
    "MULTILINESTRING": "line",
    "POLYGON": "polygon",
    "MULTIPOLYGON": "polygon",
}


def kind_of_types(names: frozenset[str]) -> str:
    """The dimension family of a set of PostGIS geometry type names (as ``geometry_kind``)."""
    kinds = {_KIND_OF_NAME.get(n.upper(), "mixed") for n in names}
    if not kinds:
        return "empty"
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _in_store(
    store: Store,
    left: str,
    right: str,
    predicate: str,
    distance: float | None,
    by: str | None,
    bbox: BBox | None,
    left_columns: Sequence[str] | None,
    right_columns: Sequence[str] | None,
    overlap: bool,
) -> Comparison | None:
    """The comparison with its pairs found and measured by the store in SQL, or None (the
    Python path answers then, with its own checks). Same read boxes, metric CRS, pair
    order and frames as the Python path; only the matched features are read back."""
    if predicate == "nearest":
        return None  # k nearest in metres: the Python path (see docs/postgis.md)
    lnames, rnames = store.get(left).column_names(), store.get(right).column_names()
    if any(c not in lnames for c in left_columns or []) or any(
        c not in rnames for c in [*(right_columns or []), *([by] if by else [])]
    ):
        return None  # the Python path says which column is missing
    ls = store.summarise_features(left, bbox)
    if ls is None:
        return None
    left_box = ls.bounds
    right_box = (
        None
        if left_box is None
        else expand_bbox(left_box, float(distance or 0.0))
        if predicate == "within-distance"
        else left_box
    )
    read_box = right_box if right_box is not None else (0.0, 0.0, 0.0, 0.0)
    rs = store.summarise_features(right, read_box)
    if rs is None:
        return None
    crs = metric.choose_metric_crs(left_box or layer_bounds(left, store), rs.bounds)
    topological = predicate in ("intersects", "within", "contains")
    # no overlap to measure when the left holds only points or the right no polygons
    lkind, rkind = kind_of_types(ls.geometry_types), kind_of_types(rs.geometry_types)
    overlap = overlap and lkind != "point" and rkind not in ("point", "line")
    pairs = store.compare_sql(
        left, right, crs=metric.name(crs), predicate=predicate, distance=distance,
        # a right feature meeting a left one meets the left bounds: no need to say so in SQL
        bbox=bbox, right_bbox=None if topological else read_box, overlap=overlap and topological,
    )  # fmt: skip
    if pairs is None:
        return None
    lfid = pairs.column("left_fid").to_numpy()
    rfid = pairs.column("right_fid").to_numpy()
    lf = _read_fids(store, left, np.unique(lfid), left_columns)
    rf = _read_fids(store, right, np.unique(rfid), right_columns)
    li = np.searchsorted(lf.attrs.index.to_numpy(), lfid)
    rj = np.searchsorted(rf.attrs.index.to_numpy(), rfid)
    matches = _pairs_frame(lf, rf, li, rj)
    if predicate == "within-distance":
        matches["distance_m"] = pairs.column("distance_m").to_numpy()
    if overlap and topological and len(li):
        lk, rk = geometry_kind(lf.geoms[li]), geometry_kind(rf.geoms[rj])
        if rk == "polygon" and lk in ("polygon", "line"):
            name = "overlap_m2" if lk == "polygon" else "overlap_m"
            matches[name] = pairs.column("overlap").to_numpy(zero_copy_only=False)
    gdf = gpd.GeoDataFrame(matches, geometry=lf.geoms[li], crs="EPSG:4326")
    return Comparison(
        matches=gdf,
        summary=summarise(gdf, by),
        predicate=predicate,
        left_total=ls.count,
        left_matched=len(np.unique(li)),
        crs=metric.name(crs),
        sources=[source_of(left, store), source_of(right, store)],
        by=by,
        distance_m=distance,
        k=None,
        notes=[],
    )


def _read_fids(
    store: Store, layer_id: str, fids: np.ndarray, columns: Sequence[str] | None
) -> Features:
    """The features with these ids (fid order), as ``load`` gives them."""
    table = store.read_arrow(layer_id, Query(fids=fids.tolist(), columns=columns))
    geoms = shapely.from_wkb(table.column(GEOMETRY).to_numpy(zero_copy_only=False))
    attrs = pd.DataFrame(
        {n: table.column(n).to_pandas() for n in table.schema.names if n not in (FID, GEOMETRY)},
        index=pd.RangeIndex(table.num_rows),
    )
    attrs.index = pd.Index(table.column(FID).to_numpy(), name=FID)
    return Features(np.asarray(geoms, dtype=object), attrs, source_of(layer_id, store))


def _mask(idx: np.ndarray, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return mask


def _rank(idx: np.ndarray) -> np.ndarray:
    """Position of each ``idx`` value among the sorted unique values (for subset rows)."""
    return np.searchsorted(np.unique(idx), idx)


def _check_column(layer: LayerLike, store: Store | None, column: str) -> None:
    if isinstance(layer, str):
        names = store.get(layer).column_names() if store is not None else []
    else:
        names = [c for c in layer.columns if c != layer.geometry.name]
    if column not in names:
        raise InputError(
            f"'{column}' is not a column of the right-hand layer. Its columns are: "
            f"{', '.join(names) or 'none'}."
        )


def _pairs_frame(lf: Features, rf: Features, li: np.ndarray, rj: np.ndarray) -> pd.DataFrame:
    """left_fid, left attributes, right_fid, right attributes (suffix ``_right`` on clashes)."""
    left_part = lf.attrs.iloc[li].reset_index()
    left_part = left_part.rename(columns={left_part.columns[0]: "left_fid"})
    right_part = rf.attrs.iloc[rj].reset_index()
    right_part = right_part.rename(columns={right_part.columns[0]: "right_fid"})
    taken = set(left_part.columns)
    right_part = right_part.rename(
        columns={c: f"{c}_right" for c in right_part.columns if c in taken}
    )
    return pd.concat([left_part, right_part], axis=1)


def summarise(matches: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """Distinct left features and pairs per class of the right layer's ``by`` column."""
    rows = []
    if len(matches):
        rows.append(
            {
                "class": ANY_CLASS,
                "left_features": int(matches["left_fid"].nunique()),
                "pairs": len(matches),
            }
        )
    if by is not None and len(matches):
        col = (
            by
            if by in matches.columns and f"{by}_right" not in matches.columns
            else (f"{by}_right")
        )
        classes = matches[col].astype("object").where(matches[col].notna(), "(none)")
        grouped = matches.assign(_class=classes).groupby("_class", sort=True)
        for cls, group in grouped:
            rows.append(
                {
                    "class": cls,
                    "left_features": int(group["left_fid"].nunique()),
                    "pairs": len(group),
                }
            )
    return pd.DataFrame(rows, columns=["class", "left_features", "pairs"])
