"""Vector tiles for one catalogue layer: read, project, clip, simplify, encode.

Features are read through the ``Store`` (R-tree bbox query), projected straight to tile
units, clipped to the tile plus a buffer, simplified with a tolerance fixed in tile units
(so it grows with each zoom out: about 0.6 m at z14, 38 m at z8) and encoded by
``landexplorer.tiles.mvt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
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
    table = store.read_arrow(entry.id, Query(bbox=bbox, columns=columns))
    if table.num_rows == 0:
        return b""
    wkb = table.column(GEOMETRY).to_numpy(zero_copy_only=False)
    geoms = _to_tile_units(shapely.from_wkb(wkb), z, x, y, extent)
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
