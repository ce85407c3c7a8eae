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

from collections.abc import Callable, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from landexplorer import budget
from landexplorer.analysis import metric, pgsql
from landexplorer.analysis.limits import Limits, PairLimit, limits_or_none
from landexplorer.analysis.results import Comparison
from landexplorer.analysis.sources import (
    Features,
    LayerLike,
    Source,
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
    left: np.ndarray,
    right: np.ndarray,
    predicate: str,
    distance: float | None = None,
    *,
    limit: PairLimit | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) where ``predicate(left[i], right[j])`` holds, sorted by i then j.

    The tree goes on the larger side; ``predicate`` is one of intersects, within,
    contains, dwithin (with ``distance`` in the units of the coordinates). With ``limit``
    the pairs are estimated from a sample before the rest is searched, and the search
    stops (``WorkTooLarge``) as soon as the estimate or the pairs found pass the limit.
    """
    if len(left) == 0 or len(right) == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    kwargs = {"distance": distance} if predicate == "dwithin" else {}
    if len(right) >= len(left):
        tree = shapely.STRtree(right)
        li, rj = _query_pairs(tree, len(right), left, predicate, kwargs, limit)
    else:
        tree = shapely.STRtree(left)
        rj, li = _query_pairs(tree, len(left), right, _SWAPPED[predicate], kwargs, limit)
    order = np.lexsort((rj, li))
    return li[order], rj[order]


#: query features sampled to estimate a comparison's pairs before it runs
SAMPLE = 1024
#: pairs one tree query may produce at most (about), in the worst case, while sampling
_SAMPLE_BATCH_PAIRS = 1_000_000
#: pairs aimed at per chunk of the search after the sample
_CHUNK_PAIRS = 500_000
#: an estimate is refused when over the limit by this factor; between the limit and that
#: the search runs, chunk by chunk, and stops only if the pairs really pass the limit (a
#: sample of a few hundred features is often out by a factor of two either way)
ESTIMATE_SLACK = 2.0


def _query_pairs(
    tree: shapely.STRtree,
    tree_size: int,
    geoms: np.ndarray,
    predicate: str,
    kwargs: dict[str, Any],
    limit: PairLimit | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(geometry index, tree index) pairs of ``tree.query(geoms, predicate)``.

    Without a limit or a time budget: one query, as fast as it gets. Otherwise a sample
    of the query geometries first (in batches small enough that even a sample meeting
    everything stays small): its pairs per geometry times the geometries estimates the
    whole, and an estimate well over the limit (``ESTIMATE_SLACK``) is refused at once; a
    sample that is already over on its own stops early. The rest is then searched in
    chunks sized from the pairs seen so far, growing at most fourfold, with the time
    budget checked and the pairs counted between chunks: the search stops as soon as the
    pairs found pass the limit, so no answer ever holds more.
    """
    n = len(geoms)
    if limit is None and budget.remaining() is None:
        pairs = tree.query(geoms, predicate=predicate, **kwargs)  # type: ignore[call-overload]
        return pairs[0], pairs[1]
    most = limit.most if limit is not None else None
    found_q: list[np.ndarray] = []
    found_t: list[np.ndarray] = []
    found = 0

    def run(idx: np.ndarray) -> int:
        kw = {k: (v[idx] if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
        q, t = tree.query(geoms[idx], predicate=predicate, **kw)  # type: ignore[call-overload]
        found_q.append(idx[q])
        found_t.append(t)
        return len(q)

    # the sample: spread over the whole layer, the same every time
    s = min(n, SAMPLE)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n, s, replace=False)) if s < n else np.arange(n)
    # small batches first (four features meeting everything already tell a huge
    # comparison), doubling up to a size that stays small even if each meets everything
    most_batch = max(1, _SAMPLE_BATCH_PAIRS // max(tree_size, 1))
    batch, start = min(4, most_batch), 0
    while start < s:
        budget.check()
        found += run(sample[start : start + batch])
        start = min(start + batch, s)
        # the estimate can only grow from here: refuse as soon as it is over
        if most is not None and found * n / s > most * ESTIMATE_SLACK:
            assert limit is not None
            raise limit.refuse(found * n / start)
        batch = min(batch * 2, most_batch)
    if s < n:
        rest = np.setdiff1d(np.arange(n), sample, assume_unique=True)
        done = s
        chunk = s
        pos = 0
        while pos < len(rest):
            budget.check()
            rate = max(found / done, 1e-6)
            chunk = int(min(chunk * 4, max(1.0, _CHUNK_PAIRS / rate)))
            idx = rest[pos : pos + chunk]
            found += run(idx)
            pos += len(idx)
            done += len(idx)
            if most is not None and found > most:
                assert limit is not None
                raise limit.refuse(found * n / min(done, n))
    if most is not None and found > most:
        assert limit is not None
        raise limit.refuse(found)  # every feature was in the sample: an exact count
    q = np.concatenate(found_q) if found_q else np.zeros(0, dtype=np.intp)
    t = np.concatenate(found_t) if found_t else np.zeros(0, dtype=np.intp)
    return q, t


def nearest_pairs(
    left: np.ndarray,
    right: np.ndarray,
    k: int,
    max_distance: float | None,
    *,
    limit: PairLimit | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` nearest right features of each left feature: (i, j, distance).

    With ``limit``: at most ``k`` pairs per left feature are kept, so more left features
    times ``k`` than the limit is refused before searching; the candidates looked at in
    each round of the search count too."""
    empty = np.zeros(0, dtype=np.intp)
    if len(left) == 0 or len(right) == 0:
        return empty, empty, np.zeros(0)
    if limit is not None and len(left) * min(k, len(right)) > limit.most:
        raise limit.refuse(len(left) * min(k, len(right)))
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
        budget.check()  # between rounds: a request past its time budget stops here
        qi, qj = _query_pairs(
            tree, len(right), left[pending], "dwithin", {"distance": radius[pending]}, limit
        )
        order = np.lexsort((qj, qi))
        qi, qj = qi[order], qj[order]
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
    limits: Limits | None = None,
) -> Comparison:
    """Which features of ``left`` meet features of ``right``, pair by pair.

    ``predicate``: ``intersects`` (touching counts), ``within`` (left inside right; a point
    on the boundary is not inside), ``contains`` (left holds right), ``within-distance``
    (``distance`` metres or nearer) or ``nearest`` (the ``k`` nearest right features,
    no further than ``distance`` metres when given; distances returned). ``by`` names a
    column of ``right`` whose classes the summary counts left features by. ``bbox``
    (lon/lat) limits the comparison to left features meeting it. Only right features near
    the left ones are read.

    ``limits`` (None: none, as on the command line) bounds the pairs: they are estimated
    before the search (from the catalogue's counts, then a sample) and a comparison over
    the limit is refused with ``WorkTooLarge``, saying how to narrow it.

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
    most = limits_or_none(limits).compare_pairs
    limit = None if most is None else _pair_limit(most, left, right, predicate, distance, k, by)
    if store is not None and isinstance(left, str) and isinstance(right, str):
        # a store with a spatial database finds (and measures) the pairs in SQL
        pushed = _in_store(
            store, left, right, predicate, distance, by, bbox, left_columns, want_right,
            overlap, limit,
        )  # fmt: skip
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
            li, rj, dist = nearest_pairs(lm, rm, k or 1, distance, limit=limit)
        else:
            li, rj = candidate_pairs(lm, rm, "dwithin", float(distance or 0.0), limit=limit)
            dist = _chunked(shapely.distance, lm[li], rm[rj])
    else:
        li, rj = candidate_pairs(lf.geoms, rf.geoms, predicate, limit=limit)

    def overlaps(kind: str) -> np.ndarray:
        a = metric.project_features(lf.subset(_mask(li, len(lf))), crs)[_rank(li)]
        b = metric.project_features(rf.subset(_mask(rj, len(rf))), crs)[_rank(rj)]
        pieces = _chunked(shapely.intersection, a, b)
        return shapely.area(pieces) if kind == "polygon" else shapely.length(pieces)

    return _assemble(
        lf, rf, li, rj, predicate=predicate, by=by, distance=distance, k=k, crs=crs,
        left_total=len(lf), sources=[lf.source, rf.source], notes=[*lf.notes, *rf.notes],
        dist=dist, overlaps=overlaps if overlap else None,
    )  # fmt: skip


def _assemble(
    lf: Features,
    rf: Features,
    li: np.ndarray,
    rj: np.ndarray,
    *,
    predicate: str,
    by: str | None,
    distance: float | None,
    k: int | None,
    crs: Any,
    left_total: int,
    sources: list[Source],
    notes: list[str],
    dist: np.ndarray | None = None,
    overlaps: Callable[[str], np.ndarray] | None = None,
) -> Comparison:
    """The one assembly of a comparison from its pairs (left rows ``li`` of ``lf`` with
    right rows ``rj`` of ``rf``), whichever step found them (SQL or Python): the matches
    frame, ``distance_m`` when measured, and for topological tests asked for overlaps the
    metric area (polygons) or length (lines) of each pair's intersection on polygons,
    from ``overlaps(left kind)``; then the summary and the result."""
    matches = _pairs_frame(lf, rf, li, rj)
    if dist is not None:
        matches["distance_m"] = dist
    if overlaps is not None and predicate in ("intersects", "within", "contains") and len(li):
        lk, rk = geometry_kind(lf.geoms[li]), geometry_kind(rf.geoms[rj])
        if rk == "polygon" and lk in ("polygon", "line"):
            matches["overlap_m2" if lk == "polygon" else "overlap_m"] = overlaps(lk)
    gdf = gpd.GeoDataFrame(matches, geometry=lf.geoms[li], crs="EPSG:4326")
    return Comparison(
        matches=gdf,
        summary=summarise(gdf, by),
        predicate=predicate,
        left_total=left_total,
        left_matched=len(np.unique(li)),
        crs=metric.name(crs),
        sources=sources,
        by=by,
        distance_m=distance,
        k=k,
        notes=notes,
    )


#: pairs measured per vectorised GEOS call, with the time budget checked between calls
_MEASURE_CHUNK = 50_000


def _chunked(fn: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``fn(a, b)`` pair by pair, in chunks when a time budget is open."""
    if len(a) <= _MEASURE_CHUNK or budget.remaining() is None:
        return fn(a, b)  # type: ignore[no-any-return]
    out = []
    for start in range(0, len(a), _MEASURE_CHUNK):
        budget.check()
        out.append(fn(a[start : start + _MEASURE_CHUNK], b[start : start + _MEASURE_CHUNK]))
    return np.concatenate(out)


def _pair_limit(
    most: int,
    left: LayerLike,
    right: LayerLike,
    predicate: str,
    distance: float | None,
    k: int | None,
    by: str | None,
) -> PairLimit:
    """The limit on pairs with the words that name this comparison and how to narrow it."""
    lname = left if isinstance(left, str) else "LEFT"
    rname = right if isinstance(right, str) else "RIGHT"
    cli = f"landexplorer compare {lname} {rname} --predicate {predicate}"
    if distance is not None:
        cli += f" --distance {distance:g}"
    if predicate == "nearest" and k:
        cli += f" --k {k}"
    if by:
        cli += f" --by {by}"
    if predicate == "within-distance":
        doing = f"Comparing {lname} with {rname} within {distance:g} m"
        narrow = "a smaller distance, a bounding box (bbox) or an area"
    elif predicate == "nearest":
        doing = f"Finding the {k or 1} nearest {rname} features of each {lname} feature"
        narrow = "a smaller k, a bounding box (bbox) or an area"
    else:
        doing = f"Comparing {lname} with {rname} ({predicate})"
        narrow = "a bounding box (bbox) or an area, or smaller layers"
    return PairLimit(most=most, doing=doing, narrow=narrow, cli=cli)


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
    limit: PairLimit | None = None,
) -> Comparison | None:
    """The comparison with its pairs found and measured by the store in SQL, or None (the
    Python path answers then, with its own checks). Same read boxes, metric CRS, pair
    order and frames as the Python path; only the matched features are read back."""
    sql = store.sql()
    if sql is None or predicate == "nearest":
        return None  # k nearest in metres: the Python path (see docs/postgis.md)
    lnames, rnames = store.get(left).column_names(), store.get(right).column_names()
    if any(c not in lnames for c in left_columns or []) or any(
        c not in rnames for c in [*(right_columns or []), *([by] if by else [])]
    ):
        return None  # the Python path says which column is missing
    ls = pgsql.summarise_features(sql, left, bbox)
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
    rs = pgsql.summarise_features(sql, right, read_box)
    if rs is None:
        return None
    if limit is not None and ls.count * rs.count > limit.most:
        _check_pairs_in_store(store, left, right, predicate, distance, bbox, ls.count, limit)
    crs = metric.choose_metric_crs(left_box or layer_bounds(left, store), rs.bounds)
    topological = predicate in ("intersects", "within", "contains")
    # no overlap to measure when the left holds only points or the right no polygons
    lkind, rkind = kind_of_types(ls.geometry_types), kind_of_types(rs.geometry_types)
    overlap = overlap and lkind != "point" and rkind not in ("point", "line")
    pairs = pgsql.compare_sql(
        sql, left, right, crs=metric.name(crs), predicate=predicate, distance=distance,
        # a right feature meeting a left one meets the left bounds: no need to say so in SQL
        bbox=bbox, right_bbox=None if topological else read_box, overlap=overlap and topological,
    )  # fmt: skip
    if pairs is None:
        return None
    if limit is not None and pairs.num_rows > limit.most:
        raise limit.refuse(pairs.num_rows)  # the estimate was low: still never more
    lfid = pairs.column("left_fid").to_numpy()
    rfid = pairs.column("right_fid").to_numpy()
    lf = _read_fids(store, left, np.unique(lfid), left_columns)
    rf = _read_fids(store, right, np.unique(rfid), right_columns)
    li = np.searchsorted(lf.attrs.index.to_numpy(), lfid)
    rj = np.searchsorted(rf.attrs.index.to_numpy(), rfid)
    dist = pairs.column("distance_m").to_numpy() if predicate == "within-distance" else None
    return _assemble(
        lf, rf, li, rj, predicate=predicate, by=by, distance=distance, k=None, crs=crs,
        left_total=ls.count, sources=[source_of(left, store), source_of(right, store)],
        notes=[], dist=dist,
        overlaps=(lambda _kind: pairs.column("overlap").to_numpy(zero_copy_only=False))
        if overlap and topological else None,
    )  # fmt: skip


#: left features sampled to estimate the pairs of a comparison the store runs in SQL
SAMPLE_IN_STORE = 64


def _check_pairs_in_store(
    store: Store,
    left: str,
    right: str,
    predicate: str,
    distance: float | None,
    bbox: BBox | None,
    n_left: int,
    limit: PairLimit,
) -> None:
    """Estimate, before the SQL join runs, the pairs it would produce: a sample of the
    left features (by random fid, the same every time), and for each the right features
    meeting its bbox (grown by the distance) counted through the spatial index; their
    mean times the left features. Over the limit: ``WorkTooLarge``. Counting stops as
    soon as the estimate is over, so a huge comparison is refused after a few counts."""
    geoms = _left_sample(store, left, bbox, n_left)
    if not len(geoms):
        return
    boxes = shapely.bounds(geoms)
    boxes = boxes[~np.isnan(boxes[:, 0])]
    s = len(boxes)
    found = 0
    for i, box in enumerate(boxes):
        budget.check()
        window = tuple(float(v) for v in box)
        if predicate == "within-distance":
            window = expand_bbox(window, float(distance or 0.0))  # type: ignore[arg-type]
        found += store.count(right, Query(bbox=window))  # type: ignore[arg-type]
        if found * n_left / s > limit.most * ESTIMATE_SLACK:
            raise limit.refuse(found * n_left / (i + 1))


def _left_sample(store: Store, layer_id: str, bbox: BBox | None, n_left: int) -> np.ndarray:
    """About ``SAMPLE_IN_STORE`` geometries of the layer's features meeting ``bbox``."""
    if n_left <= SAMPLE_IN_STORE:
        table = store.read_arrow(layer_id, Query(bbox=bbox, columns=[]))
    else:
        total = max(store.get(layer_id).feature_count, n_left)
        # fids run from 1 as features were loaded; ask for enough that about the sample
        # size of them fall in the bbox
        ask = int(min(total, 20_000, SAMPLE_IN_STORE * 1.5 * total / n_left))
        rng = np.random.default_rng(0)
        fids = np.sort(rng.choice(np.arange(1, total + 1), max(ask, 1), replace=False))
        table = store.read_arrow(layer_id, Query(bbox=bbox, columns=[], fids=fids.tolist()))
        if table.num_rows < SAMPLE_IN_STORE // 4:
            # fids far from 1..n: the first features in the bbox will do
            table = store.read_arrow(layer_id, Query(bbox=bbox, columns=[], limit=SAMPLE_IN_STORE))
        table = table.slice(0, SAMPLE_IN_STORE)
    return np.asarray(
        shapely.from_wkb(table.column(GEOMETRY).to_numpy(zero_copy_only=False)), dtype=object
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
