"""Counting points in polygons at scale (e.g. a million trees in 100,000 flood polygons).

The STRtree goes on the points and is queried with the polygons: one bulk query of
100,000 prepared polygons against a packed tree of points, instead of a million point
queries against a tree of polygons (what ``geopandas.sjoin`` does when the points are on
the left). Counting is topological, so it runs in the storage CRS (EPSG:4326) and says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from landexplorer.analysis.sources import LayerLike, Source, geometry_kind, load, source_of
from landexplorer.catalog.base import BBox, Store
from landexplorer.errors import InputError


def count_points_arrays(
    polygons: np.ndarray, points: np.ndarray, predicate: str = "intersects"
) -> np.ndarray:
    """How many ``points`` each polygon holds (``intersects``: the boundary counts;
    ``contains``: strictly inside). Geometries in one CRS; returns one int per polygon."""
    if predicate not in ("intersects", "contains"):
        raise InputError("Points can be counted with 'intersects' or 'contains'.")
    if len(polygons) == 0 or len(points) == 0:
        return np.zeros(len(polygons), dtype=np.int64)
    poly_idx, _ = point_pairs(polygons, points, predicate)
    return np.bincount(poly_idx, minlength=len(polygons)).astype(np.int64)


def point_pairs(
    polygons: np.ndarray, points: np.ndarray, predicate: str = "intersects"
) -> tuple[np.ndarray, np.ndarray]:
    """(polygon index, point index) pairs where the polygon holds the point.

    Single points are binned on a regular grid with one numpy sort (cheaper than building
    an R-tree over a million points). Each polygon's bbox covers a band of grid rows, and
    in each row the candidate points are one contiguous slice of the sorted points, so the
    candidates come out of a few vectorised passes; a bbox test in numpy drops most of
    them, and the rest get the exact prepared-geometry test. Layers with multi-points or
    empty geometries fall back to an STRtree on the points.
    """
    types = shapely.get_type_id(points)
    if len(points) == 0 or len(polygons) == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    if not (types == 0).all() or shapely.is_empty(points).any():
        tree = shapely.STRtree(points)
        pi, qi = tree.query(polygons, predicate=predicate)  # type: ignore[call-overload]
        return pi, qi
    xy = shapely.get_coordinates(points)
    x, y = xy[:, 0], xy[:, 1]
    pb = shapely.bounds(polygons)
    ok = ~np.isnan(pb[:, 0])
    x0, y0 = float(x.min()), float(y.min())
    span_x = max(float(x.max()) - x0, 1e-12)
    span_y = max(float(y.max()) - y0, 1e-12)
    # four cells per point: fine enough that few candidates fall outside a polygon's bbox
    ncells = max(1, 4 * len(x))
    size = max(np.sqrt(span_x * span_y / ncells), 1e-12)
    nx = int(span_x / size) + 1
    ny = int(span_y / size) + 1
    cx = np.minimum(((x - x0) / size).astype(np.int64), nx - 1)
    cy = np.minimum(((y - y0) / size).astype(np.int64), ny - 1)
    cell = cy * nx + cx
    order = np.argsort(cell, kind="stable")
    starts = np.searchsorted(cell[order], np.arange(nx * ny + 1))
    # polygon bbox -> cell ranges, clipped to the grid
    px0 = np.clip(np.floor((pb[:, 0] - x0) / size), 0, nx - 1)
    px1 = np.clip(np.floor((pb[:, 2] - x0) / size), -1, nx - 1)
    py0 = np.clip(np.floor((pb[:, 1] - y0) / size), 0, ny - 1)
    py1 = np.clip(np.floor((pb[:, 3] - y0) / size), -1, ny - 1)
    inside_grid = (
        ok
        & (pb[:, 2] >= x0)
        & (pb[:, 0] <= x0 + nx * size)
        & (pb[:, 3] >= y0)
        & (pb[:, 1] <= y0 + ny * size)
    )
    poly = np.flatnonzero(inside_grid & (px1 >= px0) & (py1 >= py0))
    px0, px1 = px0[poly].astype(np.int64), px1[poly].astype(np.int64)
    py0, py1 = py0[poly].astype(np.int64), py1[poly].astype(np.int64)
    nrows = py1 - py0 + 1
    # one (polygon, grid row) pair per row of each polygon's bbox
    rp = np.repeat(np.arange(len(poly)), nrows)
    row = py0[rp] + np.arange(len(rp)) - np.repeat(np.cumsum(nrows) - nrows, nrows)
    lo = starts[row * nx + px0[rp]]
    hi = starts[row * nx + px1[rp] + 1]
    length = hi - lo
    cp = np.repeat(rp, length)
    cq = order[
        np.repeat(lo, length) + np.arange(len(cp)) - np.repeat(np.cumsum(length) - length, length)
    ]
    b = pb[poly[cp]]
    keep = (x[cq] >= b[:, 0]) & (x[cq] <= b[:, 2]) & (y[cq] >= b[:, 1]) & (y[cq] <= b[:, 3])
    cp, cq = poly[cp[keep]], cq[keep]
    shapely.prepare(polygons)
    test = shapely.contains_xy if predicate == "contains" else shapely.intersects_xy
    hit = test(polygons[cp], x[cq], y[cq])
    return cp[hit], cq[hit]


def count_points(
    polygons: LayerLike,
    points: LayerLike,
    *,
    store: Store | None = None,
    predicate: str = "intersects",
    bbox: BBox | None = None,
) -> tuple[pd.DataFrame, list[Source]]:
    """Points of ``points`` in each polygon of ``polygons``, zeros included.

    Returns a frame (``fid``, ``count``) in the polygon layer's order, and the sources
    (licences and attributions). Only points in the polygons' bbox are read.
    """
    if store is not None and isinstance(polygons, str) and isinstance(points, str):
        # a store with a spatial database counts in one indexed join (PostGIS)
        pushed = store.count_points_in_polygons(polygons, points, predicate=predicate, bbox=bbox)
        if pushed is not None:
            frame = pushed.to_pandas()
            return frame, [source_of(polygons, store), source_of(points, store)]
    pf = load(polygons, store, bbox=bbox, columns=[])
    if geometry_kind(pf.geoms) not in ("polygon", "empty"):
        raise InputError("The first layer must hold polygons to count points in.")
    box = pf.bounds
    qf = load(points, store, bbox=box if box is not None else (0.0, 0.0, 0.0, 0.0), columns=[])
    if geometry_kind(qf.geoms) not in ("point", "empty"):
        raise InputError("The second layer must hold points to count.")
    counts = count_points_arrays(pf.geoms, qf.geoms, predicate)
    frame = pd.DataFrame({"fid": pf.attrs.index.to_numpy(), "count": counts})
    return frame, [pf.source, qf.source]
