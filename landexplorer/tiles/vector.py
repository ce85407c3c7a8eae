"""Vector tiles for one catalogue layer: read, project, clip, simplify, encode.

Features are read through the ``Store`` (R-tree bbox query), projected straight to tile
units, clipped to the tile plus a buffer, simplified with a tolerance fixed in tile units
(so it grows with each zoom out: about 0.6 m at z14, 38 m at z8) and encoded by
``landexplorer.tiles.mvt``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import shapely

from landexplorer.catalog.base import FID, GEOMETRY, Query, Store
from landexplorer.catalog.model import LayerEntry
from landexplorer.errors import InputError
from landexplorer.tiles import grid, mvt
from landexplorer.tiles.pgtiles import vector_tile_sql

#: Douglas-Peucker tolerance in tile units (1/4096 of a tile): below what a screen shows.
SIMPLIFY_UNITS = 1.0
_SIMPLIFY_MIN_VERTICES = 12
#: Polygons and lines smaller than this (tile units) in both directions are not drawn.
TINY_UNITS = 2.0


@dataclass(frozen=True)
class TileOptions:
    """How vector tiles are cut: extent and buffer in tile units, which properties."""

    extent: int = 4096
    buffer: int = 256
    properties: tuple[str, ...] | None = None  # None: every column of the layer


def check_properties(entry: LayerEntry, names: Sequence[str] | None) -> tuple[str, ...] | None:
    """Validate requested property names against the layer's catalogued columns."""
    if names is None:
        return None
    known = entry.column_names()
    unknown = [n for n in names if n not in known and n != FID]
    if unknown:
        raise InputError(
            f"Layer '{entry.id}' has no column called '{unknown[0]}'. "
            f"Its columns are: {', '.join(known) or 'none'}."
        )
    return tuple(n for n in names if n != FID)


def _to_tile_units(geoms: np.ndarray, z: int, x: int, y: int, extent: int) -> np.ndarray:
    return shapely.transform(geoms, lambda c: grid.lonlat_to_tile_units(c, z, x, y, extent))


def _simplify(geoms: np.ndarray) -> np.ndarray:
    """Douglas-Peucker at ``SIMPLIFY_UNITS`` for outlines with enough vertices to gain from it
    (small ones are only snapped to the grid); thin slivers it would erase are kept as they
    are, and snapping then decides whether anything of them is left to draw."""
    out = geoms.copy()
    many = shapely.get_num_coordinates(geoms) > _SIMPLIFY_MIN_VERTICES
    if many.any():
        simple = shapely.simplify(geoms[many], SIMPLIFY_UNITS, preserve_topology=False)
        lost = shapely.is_empty(simple)
        simple[lost] = geoms[many][lost]
        out[many] = simple
    return out


def _min_size(entry: LayerEntry, z: int, y: int) -> tuple[float, float] | None:
    """Bounds (degrees of longitude, latitude) under which a feature is ``TINY_UNITS`` wide
    and high in tile z/?/y, whatever its place in the tile, or None for a layer that may hold
    points (never left out). A degree of latitude spans the most tile units at the tile's
    pole-ward edge, so the latitude bound is taken there (a tile beyond it, to be safe)."""
    kind = (entry.geometry_type or "").lower()
    if not ("polygon" in kind or "linestring" in kind) or "point" in kind or "collection" in kind:
        return None
    units_per_degree = 4096 * 2**z / 360.0  # of longitude, the same everywhere
    edge = max(abs(grid.tile_bounds_lonlat(z, 0, row)[i]) for row in (y - 1, y, y + 1)
               if 0 <= row < 2**z for i in (1, 3))  # fmt: skip
    stretch = 1.0 / math.cos(math.radians(min(edge, 89.9)))
    return TINY_UNITS / units_per_degree, TINY_UNITS / (units_per_degree * stretch)


def _touching(geoms: np.ndarray, bbox: tuple[float, float, float, float]) -> np.ndarray:
    """Which geometries touch the box (all at once; those inside its bounds need no test)."""
    b = shapely.bounds(geoms)
    west, south, east, north = bbox
    inside = (b[:, 0] >= west) & (b[:, 1] >= south) & (b[:, 2] <= east) & (b[:, 3] <= north)
    if inside.all():
        return inside
    box = shapely.box(*bbox)
    shapely.prepare(box)
    out = inside.copy()
    out[~inside] = shapely.intersects(box, geoms[~inside])
    return out


def render_vector_tile(
    store: Store, entry: LayerEntry, z: int, x: int, y: int, options: TileOptions | None = None
) -> bytes:
    """The MVT bytes of one tile of a vector layer (b"" when no feature touches it)."""
    options = options or TileOptions()
    grid.check_tile(z, x, y)
    extent, buffer = options.extent, options.buffer
    # a store with a spatial database cuts the tile itself (PostGIS: ST_AsMVT)
    sql = store.sql()
    if sql is not None:
        return vector_tile_sql(
            sql, entry, z, x, y, extent=extent, buffer=buffer, properties=options.properties
        )
    # features touching the tile itself (as PostGIS' ST_AsMVT queries do); the buffer only
    # keeps their outlines running past the edge so renderers draw no seams
    bbox = grid.tile_bounds_lonlat(z, x, y)
    columns = list(options.properties) if options.properties is not None else None
    # candidates by their bounds only, without outlines too small to draw (when the layer
    # holds no points); the exact test is done below, on all candidates at once
    query = Query(bbox=bbox, columns=columns, loose_bbox=True, min_size=_min_size(entry, z, y))
    table = store.read_arrow(entry, query)
    if table.num_rows == 0:
        return b""
    lonlat = shapely.from_wkb(table.column(GEOMETRY).to_numpy(zero_copy_only=False))
    touching = _touching(lonlat, bbox)
    if not touching.all():
        table = table.filter(pa.array(touching))
        lonlat = lonlat[touching]
        if table.num_rows == 0:
            return b""
    geoms = _to_tile_units(lonlat, z, x, y, extent)
    lo, hi = -float(buffer), float(extent + buffer)
    # only geometries crossing the buffered edge need clipping (clipping is the costly part)
    b = shapely.bounds(geoms)
    crossing = (b[:, 0] < lo) | (b[:, 1] < lo) | (b[:, 2] > hi) | (b[:, 3] > hi)
    if crossing.any():
        geoms[crossing] = shapely.clip_by_rect(geoms[crossing], lo, lo, hi, hi)
    types = np.where(shapely.is_empty(geoms), -1, shapely.get_type_id(geoms))
    # outlines under TINY_UNITS both ways (1/8 of a screen pixel; at most 4 square units,
    # which snapping to the grid mostly erases anyway) are left out before the costly steps
    tiny = ((b[:, 2] - b[:, 0]) < TINY_UNITS) & ((b[:, 3] - b[:, 1]) < TINY_UNITS)
    types = np.where(tiny & (types != 0) & (types != 4), -1, types)
    poly = (types == 3) | (types == 6)
    line = (types == 1) | (types == 5) | (types == 2)
    point = (types == 0) | (types == 4)
    other = types == 7  # collections left by clipping: keep their polygonal/linear parts
    if other.any():
        for i in np.flatnonzero(other):
            parts = shapely.get_parts(geoms[i])
            kinds = shapely.get_type_id(parts)
            if (kinds == 3).any():
                geoms[i], poly[i] = shapely.multipolygons(parts[kinds == 3]), True
            elif (kinds == 1).any():
                geoms[i], line[i] = shapely.multilinestrings(parts[kinds == 1]), True
    rows = np.arange(len(geoms))
    families = []
    if poly.any():
        families.append(mvt.encode_polygons(_simplify(geoms[poly]), rows[poly]))
    if line.any():
        families.append(mvt.encode_lines(_simplify(geoms[line]), rows[line]))
    if point.any():
        families.append(mvt.encode_points(geoms[point], rows[point]))
    names = [n for n in table.column_names if n not in (FID, GEOMETRY)]
    props = {n: table.column(n) for n in names}
    ids = table.column(FID).to_numpy()
    layer = mvt.encode_layer(entry.id, families, ids, props, extent)
    return mvt.encode_tile([layer])
