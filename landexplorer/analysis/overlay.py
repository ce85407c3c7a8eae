"""Overlay amounts: how much of each left feature falls in each class of a polygon layer.

Areas (m², ha) for polygons, lengths (m, km) for lines, counts for points, all measured
in one metric CRS named in the result. Pairs where one side wholly covers the other are
measured without computing an intersection (the common case: a small flood polygon inside
one land-grade polygon); only the pairs that cross get a GEOS intersection. Where the
right layer's polygons of one class overlap each other, the overlapping pieces are
dissolved so that no square metre is counted twice.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from landexplorer.analysis import metric, pgsql
from landexplorer.analysis.compare import candidate_pairs, kind_of_types
from landexplorer.analysis.results import Overlay
from landexplorer.analysis.sources import LayerLike, Source, load, source_of
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

    A store backed by a spatial database measures catalogue layers in SQL
    (``Store.sql()``, ``analysis.pgsql``), with the same CRS and the same answers.
    """
    if store is not None and isinstance(left, str) and isinstance(right, str) and not keep_pieces:
        pushed = _in_store(store, left, right, by, left_by, bbox, dissolve)
        if pushed is not None:
            return pushed
    lf = load(left, store, bbox=bbox, columns=[left_by] if left_by else [])
    box = lf.bounds
    # a catalogue layer is read only around the left features; a frame is used as given
    right_box = (
        (box if box is not None else (0.0, 0.0, 0.0, 0.0)) if isinstance(right, str) else None
    )
    rf = load(right, store, bbox=right_box, columns=[by] if by else [])
    kind = lf.kind()
    if kind in ("mixed",):
        raise InputError("The left layer mixes points, lines and polygons; split it first.")
    rkind = rf.kind()
    if rkind not in ("polygon", "empty"):
        raise InputError(
            "Overlay needs a polygon layer on the right (areas such as flood zones or land "
            "grades) to measure the left layer against."
        )
    if kind == "empty":
        kind = "polygon"
    amount_col = _UNITS[kind][1]
    crs = metric.choose_metric_crs(lf.bounds, rf.bounds)
    lm = metric.project_features(lf, crs)
    rm = metric.project_features(rf, crs)
    classes = (
        rf.attrs[by].astype("object").where(rf.attrs[by].notna(), "(none)").to_numpy()
        if by
        else np.full(len(rm), ALL_CLASSES, dtype=object)
    )

    # Cut big right polygons (a land grade dissolved over a district) into pieces of a few
    # hundred vertices: each intersection then touches only a small piece.
    parts, origin = _pieces_near(lm, rm)
    li, pj = candidate_pairs(lm, parts, "intersects")
    amounts, pieces = pair_amounts(lm, parts, li, pj, kind, keep_pieces=True)
    assert pieces is not None
    if dissolve or kind == "point":
        li, pj, amounts, pieces = _dissolve_overlaps(
            lm, parts, origin, classes, li, pj, amounts, pieces, kind
        )
    rj = origin[pj]

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
    whole = pd.Series(left_measure, index=fids).loc[per["left_fid"]].to_numpy()
    group_total = (
        pd.Series(left_measure).groupby(lf.attrs[left_by].to_numpy()).sum() if left_by else None
    )
    piece_frame = None
    if keep_pieces and pieces is not None:
        back = metric.project(pieces, metric.parse_wgs84(), crs)
        piece_frame = gpd.GeoDataFrame(
            {"left_fid": fids[li], "class": classes[rj], amount_col: amounts},
            geometry=back,
            crs="EPSG:4326",
        )
        piece_frame = piece_frame[piece_frame[amount_col] > 0].reset_index(drop=True)
    return _assemble(
        per, whole, group_total, float(left_measure.sum()), kind=kind, crs=crs, by=by,
        left_by=left_by, sources=[lf.source, rf.source], pieces=piece_frame,
        notes=[*lf.notes, *rf.notes],
    )  # fmt: skip


def _assemble(
    per: pd.DataFrame,
    whole: np.ndarray,
    group_total: pd.Series | None,
    left_total: float,
    *,
    kind: str,
    crs: Any,
    by: str | None,
    left_by: str | None,
    sources: list[Source],
    pieces: gpd.GeoDataFrame | None,
    notes: list[str],
) -> Overlay:
    """The one assembly of an overlay from the amounts per left feature and class,
    whichever step measured them (SQL or Python): shares and totals, then the result."""
    measure = _UNITS[kind][0]
    per, totals = _tabulate(per, whole, group_total, left_total, left_by, _UNITS[kind])
    return Overlay(
        per_feature=per,
        totals=totals,
        measure=measure,
        unit={"area": "m2", "length": "m", "count": "features"}[measure],
        left_total=left_total,
        crs=metric.name(crs),
        sources=sources,
        by=by,
        left_by=left_by,
        pieces=pieces,
        notes=notes,
    )


def _tabulate(
    per: pd.DataFrame,
    whole: np.ndarray,
    group_total: pd.Series | None,
    left_total: float,
    left_by: str | None,
    units: tuple[str, str, str | None, float],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Shares per feature, and totals per class (per ``left_by`` group too), from the
    amounts per left feature and class (``whole``: each row's left feature measure;
    ``group_total``: the left measure per ``left_by`` value)."""
    _, amount_col, big_col, big_div = units
    with np.errstate(invalid="ignore", divide="ignore"):
        per["share"] = per[amount_col].to_numpy() / whole
    if big_col:
        per.insert(len(per.columns) - 1, big_col, per[amount_col] / big_div)

    keys = [*([left_by] if left_by else []), "class"]
    totals = (
        per.groupby(keys, sort=True, dropna=False)
        .agg(features=("left_fid", "nunique"), **{amount_col: (amount_col, "sum")})
        .reset_index()
    )
    if left_by and group_total is not None:
        denominators = group_total.reindex(totals[left_by]).to_numpy()
    else:
        denominators = np.full(len(totals), left_total)
    with np.errstate(invalid="ignore", divide="ignore"):
        totals["share"] = totals[amount_col].to_numpy() / denominators
    if big_col:
        totals.insert(len(totals.columns) - 1, big_col, totals[amount_col] / big_div)
    return per, totals


def _in_store(
    store: Store,
    left: str,
    right: str,
    by: str | None,
    left_by: str | None,
    bbox: BBox | None,
    dissolve: bool,
) -> Overlay | None:
    """The overlay measured by the store in SQL, or None (the Python path answers then,
    with its own checks): the same features, metric CRS and tables as the Python path."""
    sql = store.sql()
    if sql is None:
        return None
    ls = pgsql.summarise_features(sql, left, bbox)
    if ls is None:
        return None
    kind = kind_of_types(ls.geometry_types)
    right_box = ls.bounds if ls.bounds is not None else (0.0, 0.0, 0.0, 0.0)
    rs = pgsql.summarise_features(sql, right, right_box)
    if (
        rs is None
        or kind == "mixed"
        or kind_of_types(rs.geometry_types) not in ("polygon", "empty")
    ):
        return None
    kind = "polygon" if kind == "empty" else kind
    crs = metric.choose_metric_crs(ls.bounds, rs.bounds)
    rows = pgsql.overlay_areas_sql(
        sql, left, right, crs=metric.name(crs), kind=kind, by=by, left_by=left_by, bbox=bbox,
        right_bbox=right_box, dissolve=dissolve or kind == "point",
    )  # fmt: skip
    if rows is None:
        return None
    amount_col = _UNITS[kind][1]
    t = rows.per
    per = pd.DataFrame({"left_fid": t.column("left_fid").to_numpy()})
    if left_by:
        per[left_by] = t.column("left_by").to_pandas().to_numpy()
    if by:
        cls = t.column("class").to_pandas()
        per["class"] = cls.astype("object").where(cls.notna(), "(none)").to_numpy()
    else:
        per["class"] = np.full(len(per), ALL_CLASSES, dtype=object)
    per[amount_col] = t.column("amount").to_numpy()
    group_total = None
    if left_by and rows.group_totals is not None:
        g = rows.group_totals
        group_total = pd.Series(
            g.column("amount").to_numpy(), index=g.column("left_by").to_pandas().to_numpy()
        )
    return _assemble(
        per, t.column("whole").to_numpy(), group_total, rows.left_total, kind=kind, crs=crs,
        by=by, left_by=left_by, sources=[source_of(left, store), source_of(right, store)],
        pieces=None, notes=[],
    )  # fmt: skip


_SUBDIVIDE_OVER = 2048  # vertices: bigger right polygons are cut before intersecting


def _pieces_near(lm: np.ndarray, rm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The right polygons that meet the left features, the big ones cut to the left
    features' extent and subdivided; with the index of each piece's polygon."""
    if len(lm) == 0 or len(rm) == 0:
        return rm[:0], np.zeros(0, dtype=np.intp)
    used = np.unique(shapely.STRtree(lm).query(rm, predicate="intersects")[0])
    nv = shapely.get_num_coordinates(rm[used])
    small, big = used[nv <= _SUBDIVIDE_OVER], used[nv > _SUBDIVIDE_OVER]
    if not len(big):
        return rm[small], small
    extent = shapely.box(*shapely.total_bounds(lm))
    cut = shapely.intersection(rm[big], extent)
    parts, owner = subdivide(cut)
    keep = shapely.area(parts) > 0
    return np.concatenate([rm[small], parts[keep]]), np.concatenate([small, big[owner[keep]]])


def subdivide(geoms: np.ndarray, max_vertices: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Split polygons with more than ``max_vertices`` into pieces that tile them exactly
    (halving the bbox along its longer side until every piece is small, like PostGIS'
    ST_Subdivide). Returns the pieces and, for each, the index of its polygon."""
    n = len(geoms)
    if n == 0:
        return geoms, np.zeros(0, dtype=np.intp)
    nv = shapely.get_num_coordinates(geoms)
    done_g = [geoms[nv <= max_vertices]]
    done_o = [np.flatnonzero(nv <= max_vertices)]
    todo_o = np.flatnonzero(nv > max_vertices)
    todo_g = geoms[todo_o]
    for _ in range(40):  # each round halves the pieces' extent
        if not len(todo_g):
            break
        b = shapely.bounds(todo_g)
        wide = (b[:, 2] - b[:, 0]) >= (b[:, 3] - b[:, 1])
        mx = (b[:, 0] + b[:, 2]) / 2
        my = (b[:, 1] + b[:, 3]) / 2
        first = shapely.box(
            b[:, 0], b[:, 1], np.where(wide, mx, b[:, 2]), np.where(wide, b[:, 3], my)
        )
        second = shapely.box(
            np.where(wide, mx, b[:, 0]), np.where(wide, b[:, 1], my), b[:, 2], b[:, 3]
        )
        halves = shapely.intersection(
            np.concatenate([todo_g, todo_g]), np.concatenate([first, second])
        )
        owners = np.concatenate([todo_o, todo_o])
        keep = ~shapely.is_empty(halves) & (shapely.area(halves) > 0)
        halves, owners = halves[keep], owners[keep]
        small = shapely.get_num_coordinates(halves) <= max_vertices
        done_g.append(halves[small])
        done_o.append(owners[small])
        todo_g, todo_o = halves[~small], owners[~small]
    done_g.append(todo_g)
    done_o.append(todo_o)
    return np.concatenate(done_g), np.concatenate(done_o)


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
    parts: np.ndarray,
    origin: np.ndarray,
    classes: np.ndarray,
    li: np.ndarray,
    pj: np.ndarray,
    amounts: np.ndarray,
    pieces: np.ndarray,
    kind: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge the pairs of one left feature whose right polygons (same class) overlap.

    ``pj`` index the (subdivided) right ``parts``, ``origin`` maps a part to its right
    polygon and ``classes`` a right polygon to its class. Parts of one polygon tile it and
    never overlap each other.
    """
    pclass = classes[origin]
    if len(li) < 2:
        return li, pj, amounts, pieces
    if kind == "point":
        # A point is in a class once, however many polygons of that class hold it.
        key = pd.DataFrame({"i": li, "c": pclass[pj]})
        first = ~key.duplicated().to_numpy()
        return li[first], pj[first], amounts[first], pieces[first]
    # Which parts meet a part of another polygon of their class? For areas only
    # overlapping interiors matter; a line can run along the edge two polygons share, so
    # for lengths touching counts too.
    used = np.unique(pj)
    sub = parts[used]
    a, b = shapely.STRtree(sub).query(sub, predicate="intersects")
    keep = (a < b) & (pclass[used[a]] == pclass[used[b]]) & (origin[used[a]] != origin[used[b]])
    a, b = a[keep], b[keep]
    if len(a) and kind == "polygon":
        keep = ~shapely.touches(sub[a], sub[b])
        a, b = a[keep], b[keep]
    if not len(a):
        return li, pj, amounts, pieces
    overlapping = np.zeros(len(parts), dtype=bool)
    overlapping[used[a]] = True
    overlapping[used[b]] = True
    positions = np.flatnonzero(overlapping[pj])
    key = pd.DataFrame({"i": li[positions], "c": pclass[pj[positions]]})
    groups = [positions[idx] for idx in key.groupby(["i", "c"]).indices.values()]
    drop = np.zeros(len(li), dtype=bool)
    amounts = amounts.copy()
    pieces = pieces.copy()
    for idx in groups:
        if len(idx) < 2:
            continue
        if kind == "polygon":
            merged = shapely.union_all(pieces[idx])
            amounts[idx[0]] = shapely.area(merged)
        else:
            # intersect the line with the merged parts rather than merging its separate
            # pieces: two overlapping polygons need not cut a line at exactly one place
            feature = lm[li[idx[0]]]
            window = shapely.box(*shapely.bounds(feature))
            zone = shapely.union_all(shapely.intersection(parts[pj[idx]], window))
            merged = shapely.intersection(feature, zone)
            amounts[idx[0]] = shapely.length(merged)
        pieces[idx[0]] = merged
        drop[idx[1:]] = True
    keep = ~drop
    return li[keep], pj[keep], amounts[keep], pieces[keep]
