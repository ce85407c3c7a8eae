"""SQL the PostGIS store builds: filter values typed for PostgreSQL, columns read the way
the GeoPackage store returns them, and the push-downs (vector tiles, points per polygon).

Identifiers come from the catalogue and go through ``quote_ident``; values are bound.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from landexplorer.catalog.base import FID, BBox, Filter, Query
from landexplorer.catalog.model import LayerEntry
from landexplorer.catalog.pgcopy import GEOM_COLUMN
from landexplorer.catalog.sql import quote_ident
from landexplorer.errors import InputError

if TYPE_CHECKING:
    from landexplorer.catalog.postgis import PostGISStore


def vector_tile(
    store: PostGISStore,
    layer_id: str,
    z: int,
    x: int,
    y: int,
    *,
    extent: int = 4096,
    buffer: int = 256,
    properties: Sequence[str] | None = None,
) -> bytes | None:
    """The tile cut by PostGIS (``ST_AsMVTGeom`` + ``ST_AsMVT``): features touching the
    tile, clipped to it plus ``buffer``, feature ids from ``fid``, layer named by id."""

    def run(entry: LayerEntry) -> bytes:
        types = {c.name: c.type for c in entry.columns}
        names = list(properties) if properties is not None else entry.column_names()
        for name in names:
            if name not in types:
                raise InputError(f"Layer '{layer_id}' has no column called '{name}'.")
        pg_types = (
            store._pg_types(entry.storage)
            if any(types[n] in ("date", "datetime") for n in names)
            else {}
        )
        cols = [f"{select_expr(n, types[n], pg_types.get(n))} AS {quote_ident(n)}" for n in names]
        merc, lonlat = tile_bounds(z, x, y)
        # both envelopes are bound constants, so PostgreSQL works them out once
        sql = (
            "SELECT ST_AsMVT(q, %s, %s, 'geom', 'fid') FROM ("
            f"SELECT t.{FID}, {''.join(c + ', ' for c in cols)}"
            f"ST_AsMVTGeom(ST_Transform(t.{GEOM_COLUMN}, 3857), "
            "ST_MakeEnvelope(%s, %s, %s, %s, 3857), %s, %s, true) AS geom "
            f"FROM {quote_ident(entry.storage)} AS t "
            f"WHERE ST_Intersects(t.{GEOM_COLUMN}, ST_MakeEnvelope(%s, %s, %s, %s, 4326))"
            ") AS q WHERE q.geom IS NOT NULL"
        )
        params = (entry.id, extent, *merc, extent, buffer, *lonlat)
        rows = store._fetch(sql, params, binary=True)
        return bytes(rows[0][0] or b"")

    return store._retrying(layer_id, run)  # type: ignore[no-any-return]


def count_points_in_polygons(
    store: PostGISStore,
    polygons_id: str,
    points_id: str,
    *,
    predicate: str = "intersects",
    bbox: BBox | None = None,
) -> pa.Table | None:
    """Points per polygon as one indexed join in PostGIS: the polygons that hold points
    are counted in a GROUP BY join that PostgreSQL can run in parallel, and the rest are
    filled in with zeros (faster than a count per polygon)."""
    test = {"intersects": "ST_Intersects", "contains": "ST_Contains"}.get(predicate)
    if test is None:
        raise InputError("Points can be counted with 'intersects' or 'contains'.")
    points = store._vector(points_id)
    if "point" not in points.geometry_type.lower():
        raise InputError("The second layer must hold points to count.")
    if "polygon" not in store._vector(polygons_id).geometry_type.lower():
        raise InputError("The first layer must hold polygons to count points in.")

    def run(polys: LayerEntry) -> pa.Table:
        where, params = store.where(polys, Query(bbox=bbox), alias="p")
        inner, inner_params = store.where(polys, Query(bbox=bbox), alias="q")
        table, pts = quote_ident(polys.storage), quote_ident(points.storage)
        sql = (
            f"SELECT p.{FID}, coalesce(c.n, 0) FROM {table} AS p LEFT JOIN ("
            f"SELECT q.{FID}, count(*) AS n FROM {table} AS q JOIN {pts} AS t "
            f"ON {test}(q.{GEOM_COLUMN}, t.{GEOM_COLUMN}){inner} "
            f"GROUP BY q.{FID}) AS c ON c.{FID} = p.{FID}{where} ORDER BY p.{FID}"
        )
        params = [*inner_params, *params]
        rows = store._fetch(sql, params, binary=True)
        fids, counts = zip(*rows, strict=True) if rows else ((), ())
        return pa.table({FID: pa.array(fids, pa.int64()), "count": pa.array(counts, pa.int64())})

    return store._retrying(polygons_id, run)  # type: ignore[no-any-return]


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


def select_expr(name: str, kind: str, pg: str | None) -> str:
    """A column as the GeoPackage store returns it (dates and times as ISO text)."""
    col = f"t.{quote_ident(name)}"
    if kind == "date" and pg == "date":
        return f"to_char({col}, 'YYYY-MM-DD')"
    if kind == "datetime" and pg and pg.startswith("timestamp with time zone"):
        return f"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    if kind == "datetime" and pg and pg.startswith("timestamp"):
        return f"to_char({col}, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')"
    if kind in ("date", "datetime"):
        return f"{col}::text"
    return col


def coerce_filters(filters: Iterable[Filter], types: dict[str, str]) -> list[Filter]:
    """Give filter values the Python type of their column, as PostgreSQL is strict about it.

    SQLite compares a text column with the number 5 happily; PostgreSQL refuses, so a value
    meant for a text column becomes text and one meant for a number becomes a number.
    """
    out: list[Filter] = []
    for f in filters:
        op = f.op.lower()
        if op in ("and", "or", "not"):
            out.append(Filter(f.column, f.op, tuple(coerce_filters(f.value, types))))
            continue
        kind = types.get(f.column)
        if kind is None or op in ("isnull", "notnull", "intersects"):
            out.append(f)
            continue
        value = f.value
        if op in ("in", "between"):
            value = [_coerce_value(v, kind) for v in value]
        else:
            value = _coerce_value(value, kind)
        out.append(Filter(f.column, f.op, value))
    return out


def _coerce_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    try:
        if kind == "string":
            return value if isinstance(value, str) else str(value)
        if kind == "integer":
            if isinstance(value, float) and not value.is_integer():
                return value
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "boolean" and isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "t")
        if kind in ("date", "datetime"):
            return str(value)
    except (TypeError, ValueError):
        raise InputError(f"'{value}' cannot be compared with a {kind} column.") from None
    return value


def redact(text: str) -> str:
    """Connection errors can echo the URL; never log a password."""
    return re.sub(r"(postgres(?:ql)?://[^:/@]*:)[^@]*@", r"\1***@", text)
