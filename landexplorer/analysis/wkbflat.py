"""Polygon layers as one flat coordinate array, read straight from WKB.

Reprojecting 100,000 polygons through shapely means parsing the WKB into GEOS
geometries, copying their coordinates out, transforming them and building every
geometry a second time. For the common big case (a column of little-endian 2D Polygons
or MultiPolygons, as the catalogue stores them) the coordinates can instead be taken
straight from the WKB buffer: one pyproj call transforms them and
``shapely.from_ragged_array`` builds each geometry once, in the CRS it is measured in.
Anything else (points, lines, Z/M, big-endian, nulls, empty polygons) returns None and
the caller parses the WKB with shapely as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import shapely
from shapely import GeometryType

_POLYGON = 3
_MULTIPOLYGON = 6
#: lockstep rounds (one ring per geometry each) before giving up on the fast path
_MAX_ROUNDS = 512


@dataclass(frozen=True)
class FlatPolygons:
    """Coordinates (x and y apart, in the order of the WKB) and the offsets that group
    them into rings, polygons and (for MultiPolygons) geometries, as
    ``shapely.from_ragged_array`` takes them."""

    kind: GeometryType
    x: np.ndarray
    y: np.ndarray
    offsets: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.offsets[-1]) - 1

    def geometries(self, x: np.ndarray | None = None, y: np.ndarray | None = None) -> np.ndarray:
        """Shapely geometries from these coordinates (or from ``x``, ``y``: the same
        coordinates transformed), built once each."""
        xy = np.column_stack([self.x if x is None else x, self.y if y is None else y])
        return np.asarray(shapely.from_ragged_array(self.kind, xy, self.offsets), dtype=object)

    def bounds(self) -> tuple[float, float, float, float] | None:
        """Bounds of all the coordinates, or None when there are none."""
        if not len(self.x):
            return None
        x, y = self.x, self.y
        return (float(x.min()), float(y.min()), float(x.max()), float(y.max()))

    def ring_closers(self) -> tuple[np.ndarray, np.ndarray]:
        """(last, first): positions of each ring's closing vertex and of its first vertex,
        for the rings whose closing vertex repeats the first exactly (all, in valid data).
        A transform gives a repeated vertex the same result, so it need not be repeated."""
        ro = self.offsets[0]
        first, last = ro[:-1], ro[1:] - 1
        same = (last > first) & (self.x[last] == self.x[first]) & (self.y[last] == self.y[first])
        return last[same], first[same]


def _u32(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Little-endian uint32 values at arbitrary (unaligned) byte positions."""
    b = buf[pos[:, None] + np.arange(4)].astype(np.uint32)
    out: np.ndarray = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)
    return out.astype(np.int64)


def _binary(column: pa.ChunkedArray | pa.Array) -> pa.Array | None:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_large_binary(arr.type) or pa.types.is_binary(arr.type):
        return arr
    if isinstance(arr, pa.ExtensionArray):
        return _binary(arr.storage)
    return None


def flat_polygons(column: pa.ChunkedArray | pa.Array) -> FlatPolygons | None:
    """The coordinates and offsets of a WKB column of 2D Polygons or of 2D MultiPolygons
    (one type throughout), or None when the column is anything else."""
    arr = _binary(column)
    if arr is None or arr.null_count or len(arr) == 0:
        return None
    _, offsets, data = arr.buffers()
    if offsets is None or data is None:
        return None
    width = np.int64 if pa.types.is_large_binary(arr.type) else np.int32
    raw = np.frombuffer(offsets, dtype=width)[arr.offset : arr.offset + len(arr) + 1]
    starts: np.ndarray = raw.astype(np.int64)
    buf = np.frombuffer(data, dtype=np.uint8)
    n = len(arr)
    begin = starts[:-1]
    if np.any(starts[1:] - begin < 9) or np.any(buf[begin] != 1):
        return None  # too short for a header, or big-endian
    types = _u32(buf, begin + 1)
    if np.all(types == _POLYGON):
        kind = GeometryType.POLYGON
        parts = np.ones(n, dtype=np.int64)
        pos = begin.copy()  # the polygon header is the geometry's header
    elif np.all(types == _MULTIPOLYGON):
        kind = GeometryType.MULTIPOLYGON
        parts = _u32(buf, begin + 5)
        pos = begin + 9
    else:
        return None

    # Walk all geometries in lockstep, one ring each per round: a polygon's rings and a
    # multipolygon's polygons follow each other, so each position depends on the sizes
    # before it, but different geometries are independent.
    parts_left = parts.copy()
    rings_left = np.zeros(n, dtype=np.int64)
    poly_pos: list[np.ndarray] = []  # header position of each polygon
    poly_rings: list[np.ndarray] = []
    ring_pos: list[np.ndarray] = []  # position of each ring's first coordinate
    ring_pts: list[np.ndarray] = []
    active = np.flatnonzero(parts_left > 0)
    for _ in range(_MAX_ROUNDS):
        if not len(active):
            break
        new = active[rings_left[active] == 0]
        if len(new):
            at = pos[new]
            if np.any(buf[at] != 1) or np.any(_u32(buf, at + 1) != _POLYGON):
                return None
            nr = _u32(buf, at + 5)
            if np.any(nr == 0):
                return None  # empty polygon: leave it to GEOS
            poly_pos.append(at)
            poly_rings.append(nr)
            rings_left[new] = nr
            parts_left[new] -= 1
            pos[new] = at + 9
        at = pos[active]
        npts = _u32(buf, at)
        ring_pos.append(at + 4)
        ring_pts.append(npts)
        pos[active] = at + 4 + 16 * npts
        rings_left[active] -= 1
        active = active[(rings_left[active] > 0) | (parts_left[active] > 0)]
    else:
        return None
    if np.any(pos != starts[1:]):
        return None  # the walk did not end where each geometry ends: not what we think

    # Rings, polygons and geometries all lie in buffer order, so sorting by position
    # puts them in the order from_ragged_array wants.
    rp = np.concatenate(ring_pos)
    rn = np.concatenate(ring_pts)
    order = np.argsort(rp, kind="stable")
    rp, rn = rp[order], rn[order]
    if np.any(rn == 0):
        return None  # an empty ring: leave it to GEOS
    pp = np.concatenate(poly_pos)
    pr = np.concatenate(poly_rings)[np.argsort(pp, kind="stable")]

    # Coordinates: mark the bytes of every ring's coordinates and take them in one go.
    # (a ring ends on the next one's point count, never on a ring's first coordinate)
    mark = np.zeros(len(buf) + 1, dtype=np.int8)
    mark[rp] = 1
    mark[rp + 16 * rn] = -1
    inside = np.cumsum(mark[:-1], dtype=np.int8).view(bool)  # 0s and 1s only
    coords = buf[inside].view("<f8").reshape(-1, 2)
    x, y = np.ascontiguousarray(coords[:, 0]), np.ascontiguousarray(coords[:, 1])

    ring_offsets = np.concatenate([[0], np.cumsum(rn)]).astype(np.int64)
    poly_offsets = np.concatenate([[0], np.cumsum(pr)]).astype(np.int64)
    if kind == GeometryType.POLYGON:
        return FlatPolygons(kind, x, y, (ring_offsets, poly_offsets))
    geom_offsets = np.concatenate([[0], np.cumsum(parts)]).astype(np.int64)
    return FlatPolygons(kind, x, y, (ring_offsets, poly_offsets, geom_offsets))
