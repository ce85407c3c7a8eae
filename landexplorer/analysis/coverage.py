"""Exact cell-coverage fractions of polygons, without a GEOS call per cell.

By Green's theorem the area of a polygon is ``-∮ y dx`` over its rings (exterior
anticlockwise, holes clockwise). The area of its part inside one grid cell
``[x0, x1] x [y0, y1]`` is the same integral taken only over ``x`` in ``[x0, x1]`` with
``y`` clamped to ``[y0, y1]``: on every vertical line the polygon's cross-section is a set
of disjoint intervals, each bounded by one upward and one downward edge, and clamping both
ends keeps exactly the part of each interval inside the cell. A clamped linear function
is piecewise linear with at most three pieces, so each (edge, cell) term is a closed
formula. An edge adds nothing to cells above it and the same amount (``dy`` times its
width in the column) to every cell wholly below it, so only the one or two cells each
edge crosses are computed; the constant parts are spread down each column with a
cumulative sum. Everything runs as a few numpy passes over all edges at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

_CHUNK = 250_000  # (edge, column) pairs per numpy pass, to bound memory


def coverage_fractions(
    zones: np.ndarray,
    c0: np.ndarray,
    r0: np.ndarray,
    ncols: np.ndarray,
    nrows: np.ndarray,
    origin: tuple[float, float],
    dx: float,
    dy: float,
) -> np.ndarray:
    """Covered fraction of every cell of each zone's cell block, concatenated zone by zone.

    Zone ``z``'s block is ``nrows[z] x ncols[z]`` cells starting at (``r0[z]``, ``c0[z]``),
    row-major; rows count down from ``origin`` (the top-left corner), cells are ``dx`` by
    ``dy``. Zones are polygons or multipolygons in the grid's CRS.
    """
    ncells = ncols * nrows
    total = int(ncells.sum())
    offsets = np.r_[0, np.cumsum(ncells)[:-1]].astype(np.int64)
    if len(zones) == 0 or total == 0:
        return np.zeros(total)
    parts, part_zone = shapely.get_parts(zones, return_index=True)
    parts = shapely.orient_polygons(parts)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    same = coord_ring[1:] == coord_ring[:-1]
    xa, ya = coords[:-1, 0][same], coords[:-1, 1][same]
    xb, yb = coords[1:, 0][same], coords[1:, 1][same]
    ez = part_zone[ring_part[coord_ring[:-1][same]]]
    # Columns each edge spans within its zone's block; vertical edges add nothing.
    gx0 = origin[0] + c0[ez] * dx
    lo = np.minimum(xa, xb)
    hi = np.maximum(xa, xb)
    ca = np.clip(np.floor((lo - gx0) / dx).astype(np.int64), 0, ncols[ez] - 1)
    cb = np.clip(np.ceil((hi - gx0) / dx).astype(np.int64), 1, ncols[ez])
    span = np.where(hi > lo, np.maximum(cb - ca, 0), 0)
    edges = np.flatnonzero(span > 0)
    # Exact terms go to ``exact`` (row-major); constant terms to ``below`` (column-major),
    # at the first row wholly below the edge, to be summed down each column.
    exact = np.zeros(total)
    below = np.zeros(total + 1)
    cum = np.cumsum(span[edges])
    start = 0
    while start < len(edges):
        base = cum[start - 1] if start else 0
        stop = max(int(np.searchsorted(cum, base + _CHUNK, side="right")), start + 1)
        e = edges[start:stop]
        _edge_columns(
            e,
            span,
            xa,
            ya,
            xb,
            yb,
            ez,
            ca,
            nrows,
            c0,
            r0,
            ncols,
            offsets,
            origin,
            dx,
            dy,
            exact,
            below,
        )
        start = stop
    # Sum the constants down each column (segments of nrows in column-major order).
    # Each column restarts from zero (a cumulative sum over the whole array minus the
    # column's start would lose digits to cancellation as the running total grows).
    seg_len = np.repeat(nrows, ncols)
    column = np.repeat(np.arange(len(seg_len)), seg_len)
    column_major = pd.Series(below[:-1]).groupby(column, sort=False).cumsum().to_numpy()
    # Column-major position of each row-major cell.
    z = np.repeat(np.arange(len(zones)), ncells)
    k = np.arange(total) - np.repeat(offsets, ncells)
    row, col = k // ncols[z], k % ncols[z]
    area = exact + column_major[offsets[z] + col * nrows[z] + row]
    return np.clip(area / (dx * dy), 0.0, 1.0)


def _edge_columns(
    e: np.ndarray,
    span: np.ndarray,
    xa: np.ndarray,
    ya: np.ndarray,
    xb: np.ndarray,
    yb: np.ndarray,
    ez: np.ndarray,
    ca: np.ndarray,
    nrows: np.ndarray,
    c0: np.ndarray,
    r0: np.ndarray,
    ncols: np.ndarray,
    offsets: np.ndarray,
    origin: tuple[float, float],
    dx: float,
    dy: float,
    exact: np.ndarray,
    below: np.ndarray,
) -> None:
    counts = span[e]
    pe = np.repeat(e, counts)
    col = ca[pe] + np.arange(len(pe)) - np.repeat(np.cumsum(counts) - counts, counts)
    pz = ez[pe]
    ax, ay, bx, by = xa[pe], ya[pe], xb[pe], yb[pe]
    x0 = origin[0] + (c0[pz] + col) * dx
    lo = np.maximum(np.minimum(ax, bx), x0)
    hi = np.minimum(np.maximum(ax, bx), x0 + dx)
    slope = (by - ay) / (bx - ax)
    ylo = ay + (lo - ax) * slope
    yhi = ay + (hi - ax) * slope
    ymin, ymax = np.minimum(ylo, yhi), np.maximum(ylo, yhi)
    sign = -np.sign(bx - ax)
    top = origin[1] - r0[pz] * dy  # top edge of the zone's block
    nr = nrows[pz]
    # rows the edge passes through (in the block), and the first row wholly below it
    ra = np.clip(np.floor((top - ymax) / dy).astype(np.int64), 0, nr - 1)
    rb = np.clip(np.floor((top - ymin) / dy).astype(np.int64), 0, nr - 1)
    first_below = np.clip(np.ceil((top - ymin) / dy).astype(np.int64), 0, nr)
    rb = np.minimum(rb, first_below - 1)
    ra = np.maximum(np.minimum(ra, rb), 0)  # an edge along the block top: no exact rows
    # constant part: dy x width for every row from first_below down
    has_below = first_below < nr
    cm_key = offsets[pz] + col * nr + first_below
    below += np.bincount(
        cm_key[has_below], weights=(sign * dy * (hi - lo))[has_below], minlength=len(below)
    )
    # exact part for rows ra..rb
    nexact = np.maximum(rb - ra + 1, 0)
    q = np.repeat(np.arange(len(pe)), nexact)
    row = ra[q] + np.arange(len(q)) - np.repeat(np.cumsum(nexact) - nexact, nexact)
    y1 = top[q] - row * dy
    y0 = y1 - dy
    qlo, qhi, qax, qay, qs = lo[q], hi[q], ax[q], ay[q], slope[q]
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = qax + (y0 - qay) / qs
        t1 = qax + (y1 - qay) / qs
    t0 = np.where(np.isfinite(t0), np.clip(t0, qlo, qhi), qlo)
    t1 = np.where(np.isfinite(t1), np.clip(t1, qlo, qhi), qlo)
    pts = np.sort(np.stack([qlo, t0, t1, qhi], axis=1), axis=1)
    widths = np.diff(pts, axis=1)
    mids = (pts[:, 1:] + pts[:, :-1]) / 2
    yv = qay[:, None] + (mids - qax[:, None]) * qs[:, None]
    clamped = np.clip(yv, y0[:, None], y1[:, None]) - y0[:, None]
    integral = np.sum(widths * clamped, axis=1)
    key = offsets[pz[q]] + row * ncols[pz[q]] + col[q]
    exact += np.bincount(key, weights=sign[q] * integral, minlength=len(exact))
