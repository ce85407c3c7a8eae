"""Overlay amounts: how much of each left feature falls in each class of a polygon layer.

Areas (m², ha) for polygons, lengths (m, km) for lines, counts for points, all measured
in one metric CRS named in the result. Pairs where one side wholly covers the other are
measured without computing an intersection (the common case: a small flood polygon inside
one land-grade polygon); only the pairs that cross get a GEOS intersection. Where the
right layer's polygons of one class overlap each other, the overlapping pieces are
dissolved so that no square metre is counted twice.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from landexplorer.analysis import metric
from landexplorer.analysis.compare import candidate_pairs
from landexplorer.analysis.results import Overlay
from landexplorer.analysis.sources import LayerLike, geometry_kind, load
from landexplorer.catalog.base import BBox, Store
from landexplorer.errors import InputError

ALL_CLASSES = "(all)"
_UNITS = {
    "polygon": ("area", "area_m2", "area_ha", 10_000.0),
    "line": ("length", "length_m", "length_km", 1_000.0),
    "point": ("count", "count", None, 1.0),
}


def overlay_areas(
    left: LayerLike,
    right: LayerLike,
    *,
    store: Store | None = None,
    by: str | None = None,
    left_by: str | None = None,
    bbox: BBox | None = None,
    keep_pieces: bool = False,
    dissolve: bool = True,
) -> Overlay:
    """Area (or length, or count) of each ``left`` feature in each ``by`` class of ``right``.

    ``left_by`` groups the layer totals by a left column too (e.g. flood band x land
    grade). ``bbox`` (lon/lat) limits the left features read. ``keep_pieces`` returns the
    intersection shapes (EPSG:4326) for maps. With ``dissolve`` (the default), right
    polygons of one class that overlap each other are merged first, so an area is never
    counted twice; ``dissolve=False`` sums every pair's overlap instead, as
    ``geopandas.overlay`` followed by a sum does.

    >>> o = overlay_areas("allotments", "flood_risk", store=store, by="prob_4band")
    >>> o.totals      # class, features, area_m2, area_ha, share
    """
    lf = load(left, store, bbox=bbox, columns=[left_by] if left_by else [])
    box = lf.bounds
    rf = load(
        right,
        store,
        bbox=box if box is not None else (0.0, 0.0, 0.0, 0.0),
        columns=[by] if by else [],
    )
    kind = geometry_kind(lf.geoms)
    if kind in ("mixed",):
        raise InputError("The left layer mixes points, lines and polygons; split it first.")
    rkind = geometry_kind(rf.geoms)
    if rkind not in ("polygon", "empty"):
        raise InputError(
            "Overlay needs a polygon layer on the right (areas such as flood zones or land "
            "grades) to measure the left layer against."
        )
    if kind == "empty":
        kind = "polygon"
    measure, amount_col, big_col, big_div = _UNITS[kind]
    crs = metric.choose_metric_crs(lf.bounds, rf.bounds)
    lm = metric.project_features(lf, crs)
    rm = metric.project_features(rf, crs)
    classes = (
        rf.attrs[by].astype("object").where(rf.attrs[by].notna(), "(none)").to_numpy()
        if by
        else np.full(len(rm), ALL_CLASSES, dtype=object)
    )

    li, rj = candidate_pairs(lm, rm, "intersects")
    amounts, pieces = pair_amounts(lm, rm, li, rj, kind, keep_pieces)
    if dissolve or kind == "point":
        li, rj, amounts, pieces = _dissolve_overlaps(lm, rm, classes, li, rj, amounts, pieces, kind)

    left_measure = _measure(lm, kind)
    fids = lf.attrs.index.to_numpy()
    per = pd.DataFrame({"left_fid": fids[li]})
    if left_by:
        per[left_by] = lf.attrs[left_by].to_numpy()[li]
    per["class"] = classes[rj]
    per[amount_col] = amounts
    per = pd.DataFrame(
        per.groupby(
            ["left_fid", *([left_by] if left_by else []), "class"],
            sort=False,
            dropna=False,
            as_index=False,
        )[amount_col].sum()
    )
    per = per[per[amount_col] > 0].reset_index(drop=True)
    whole = pd.Series(left_measure, index=fids)
    with np.errstate(invalid="ignore", divide="ignore"):
        per["share"] = per[amount_col].to_numpy() / whole.loc[per["left_fid"]].to_numpy()
    if big_col:
        per.insert(len(per.columns) - 1, big_col, per[amount_col] / big_div)

    keys = [*([left_by] if left_by else []), "class"]
    totals = (
        per.groupby(keys, sort=True, dropna=False)
        .agg(features=("left_fid", "nunique"), **{amount_col: (amount_col, "sum")})
        .reset_index()
    )
    if left_by:
        group_total = pd.Series(left_measure).groupby(lf.attrs[left_by].to_numpy()).sum()
        denominators = group_total.reindex(totals[left_by]).to_numpy()
    else:
        denominators = np.full(len(totals), left_measure.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        totals["share"] = totals[amount_col].to_numpy() / denominators
    if big_col:
        totals.insert(len(totals.columns) - 1, big_col, totals[amount_col] / big_div)

    piece_frame = None
    if keep_pieces and pieces is not None:
        back = metric.project(pieces, metric.parse_wgs84(), crs)
        piece_frame = gpd.GeoDataFrame(
            {"left_fid": fids[li], "class": classes[rj], amount_col: amounts},
            geometry=back,
            crs="EPSG:4326",
        )
        piece_frame = piece_frame[piece_frame[amount_col] > 0].reset_index(drop=True)
    return Overlay(
        per_feature=per,
        totals=totals,
        measure=measure,
        unit={"area": "m2", "length": "m", "count": "features"}[measure],
        left_total=float(left_measure.sum()),
        crs=metric.name(crs),
        sources=[lf.source, rf.source],
        by=by,
        left_by=left_by,
        pieces=piece_frame,
        notes=[*lf.notes, *rf.notes],
    )


def _measure(geoms: np.ndarray, kind: str) -> np.ndarray:
    if kind == "polygon":
        return np.asarray(shapely.area(geoms), dtype=float)
    if kind == "line":
        return np.asarray(shapely.length(geoms), dtype=float)
    return np.ones(len(geoms))


def pair_amounts(
    lm: np.ndarray,
    rm: np.ndarray,
    li: np.ndarray,
    rj: np.ndarray,
    kind: str,
    keep_pieces: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Area/length/count of ``lm[li] ∩ rm[rj]`` for each pair (and the pieces if asked)."""
    n = len(li)
    if kind == "point":
        return np.ones(n), (lm[li] if keep_pieces else None)
    a, b = lm[li], rm[rj]
    shapely.prepare(rm)
    # Pairs where the right polygon covers the left feature need no intersection at all.
    inside = shapely.covers(b, a)
    amounts = np.empty(n)
    pieces = np.empty(n, dtype=object) if keep_pieces else None
    if kind == "polygon":
        amounts[inside] = shapely.area(a[inside])
        rest = np.flatnonzero(~inside)
        if len(rest):
            shapely.prepare(lm)
            holds = shapely.covers(a[rest], b[rest])
            held = rest[holds]
            amounts[held] = shapely.area(b[held])
            cross = rest[~holds]
            cut = shapely.intersection(a[cross], b[cross])
            amounts[cross] = shapely.area(cut)
            if pieces is not None:
                pieces[held] = b[held]
                pieces[cross] = cut
    else:
        amounts[inside] = shapely.length(a[inside])
        cross = np.flatnonzero(~inside)
        cut = shapely.intersection(a[cross], b[cross])
        amounts[cross] = shapely.length(cut)
        if pieces is not None:
            pieces[cross] = cut
    if pieces is not None:
        pieces[inside] = a[inside]
    return amounts, pieces


def _dissolve_overlaps(
    lm: np.ndarray,
    rm: np.ndarray,
    classes: np.ndarray,
    li: np.ndarray,
    rj: np.ndarray,
    amounts: np.ndarray,
    pieces: np.ndarray | None,
    kind: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Merge the pairs of one left feature whose right polygons (same class) overlap."""
    if len(li) < 2:
        return li, rj, amounts, pieces
    if kind == "point":
        # A point is in a class once, however many polygons of that class hold it.
        key = pd.DataFrame({"i": li, "c": classes[rj]})
        first = ~key.duplicated().to_numpy()
        return li[first], rj[first], amounts[first], (pieces[first] if pieces is not None else None)
    # Which right polygons meet another of their class? For areas only overlapping
    # interiors matter; a line can run along the edge two polygons share, so for lengths
    # touching counts too.
    used = np.unique(rj)
    sub = rm[used]
    a, b = shapely.STRtree(sub).query(sub, predicate="intersects")
    keep = (a < b) & (classes[used[a]] == classes[used[b]])
    a, b = a[keep], b[keep]
    if len(a) and kind == "polygon":
        keep = ~shapely.touches(sub[a], sub[b])
        a, b = a[keep], b[keep]
    if not len(a):
        return li, rj, amounts, pieces
    overlapping = np.zeros(len(rm), dtype=bool)
    overlapping[used[a]] = True
    overlapping[used[b]] = True
    flagged = overlapping[rj]
    positions = np.flatnonzero(flagged)
    key = pd.DataFrame({"i": li[positions], "c": classes[rj[positions]]})
    groups = {g: positions[idx] for g, idx in key.groupby(["i", "c"]).indices.items()}
    drop = np.zeros(len(li), dtype=bool)
    amounts = amounts.copy()
    for idx in groups.values():
        if len(idx) < 2:
            continue
        # intersect with the merged polygons rather than merging the separate pieces: the
        # pieces of one line cut by two overlapping polygons need not match exactly
        merged = shapely.intersection(lm[li[idx[0]]], shapely.union_all(rm[rj[idx]]))
        amounts[idx[0]] = shapely.area(merged) if kind == "polygon" else shapely.length(merged)
        if pieces is not None:
            pieces[idx[0]] = merged
        drop[idx[1:]] = True
    keep = ~drop
    return li[keep], rj[keep], amounts[keep], (pieces[keep] if pieces is not None else None)
