"""Vector tiles cut by a store that can run spatial SQL (``Store.sql()``: PostGIS), with
``ST_AsMVTGeom`` and ``ST_AsMVT``, for ``landexplorer.tiles.vector``.

Identifiers come from the catalogue and go through ``quote_ident``; values are bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from landexplorer.catalog import FID, LayerEntry, SqlRunner, VersionChanged
from landexplorer.catalog.pgquery import touches_box
from landexplorer.catalog.sql import GEOM_COLUMN, quote_ident
from landexplorer.errors import InputError


def vector_tile_sql(
    sql: SqlRunner,
    layer: str | LayerEntry,
    z: int,
    x: int,
    y: int,
    *,
    extent: int = 4096,
    buffer: int = 256,
    properties: Sequence[str] | None = None,
) -> bytes:
    """The tile cut by PostGIS (``ST_AsMVTGeom`` + ``ST_AsMVT``): features touching the
    tile, clipped to it plus ``buffer``, feature ids from ``fid``, layer named by id.

    Given the layer's entry (as the tile service has it already), its version is read
    without asking the catalogue again, one round trip per tile; if a replace retired that
    version meanwhile, the current one is read."""
    layer_id = layer.id if isinstance(layer, LayerEntry) else layer

    def run(entry: LayerEntry) -> bytes:
        types = {c.name: c.type for c in entry.columns}
        names = list(properties) if properties is not None else entry.column_names()
        for name in names:
            if name not in types:
                raise InputError(f"Layer '{layer_id}' has no column called '{name}'.")
        cols = [f"{sql.column(entry, n)[0]} AS {quote_ident(n)}" for n in names]
        merc, lonlat = tile_bounds(z, x, y)
        # Both envelopes are bound constants, so PostgreSQL works them out once. Features
        # touching the tile itself, exactly (as the GeoPackage path draws). OFFSET 0 keeps
        # the inner query whole: flattened into the outer one, the filter on its geometry
        # would run ST_AsMVTGeom a second time for every feature (1.5x the time).
        touching, box = touches_box(f"t.{GEOM_COLUMN}", lonlat)
        text = (
            "SELECT ST_AsMVT(q, %s, %s, 'geom', 'fid') FROM ("
            f"SELECT t.{FID}, {''.join(c + ', ' for c in cols)}"
            f"ST_AsMVTGeom(ST_Transform(t.{GEOM_COLUMN}, 3857), "
            "ST_MakeEnvelope(%s, %s, %s, %s, 3857), %s, %s, true) AS geom "
            f"FROM {sql.table(entry)} AS t WHERE {touching} "
            "OFFSET 0) AS q WHERE q.geom IS NOT NULL"
        )
        params = (entry.id, extent, *merc, extent, buffer, *box)
        rows = sql.fetch(text, params, binary=True)
        return bytes(rows[0][0] or b"")

    if isinstance(layer, LayerEntry) and layer.storage:
        try:
            return sql.read(layer, run)
        except VersionChanged:
            pass
    return sql.read(layer_id, run)


_HALF_WORLD = 20037508.342789244  # WebMercator metres from the origin to the edge


def tile_bounds(z: int, x: int, y: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A WebMercatorQuad tile's bounds in EPSG:3857 metres and in lon/lat degrees."""
    if not (0 <= z <= 30 and 0 <= x < 2**z and 0 <= y < 2**z):
        raise InputError(f"There is no tile {z}/{x}/{y}.")
    size = 2 * _HALF_WORLD / 2**z
    west, south = -_HALF_WORLD + x * size, _HALF_WORLD - (y + 1) * size
    merc = (west, south, west + size, south + size)

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / 2**z))))

    lonlat = (x / 2**z * 360 - 180, lat(y + 1), (x + 1) / 2**z * 360 - 180, lat(y))
    return merc, lonlat
