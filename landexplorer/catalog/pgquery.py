"""SQL the PostGIS store builds: filter values typed for PostgreSQL and columns read the way
the GeoPackage store returns them (the push-downs live in ``analysis.pgsql`` and
``tiles.pgtiles``).

Identifiers come from the catalogue and go through ``quote_ident``; values are bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from landexplorer.catalog.base import Filter
from landexplorer.catalog.sql import quote_ident
from landexplorer.errors import InputError

if TYPE_CHECKING:
    pass


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


#: How far inside a box a geometry's bounds must lie to be taken as touching it without
#: testing its outline. PostGIS compares bounds as float4 boxes rounded outwards, by at
#: most one float4 step each (2**-16 degrees at 180 degrees): 8 steps covers the box's
#: rounding and the geometry's with room to spare (about 12 m on the ground).
_FLOAT_BOX_SLACK = 2.0**-13


def touches_box(geom: str, bbox: Iterable[float]) -> tuple[str, list[float]]:
    """SQL true for the geometries ``geom`` touching a lon/lat box, exactly, and its
    parameters.

    The index finds those whose bounds meet the box (``&&``); only those whose bounds do
    not lie well inside it are tested outline by outline (``@``: bounds within, compared
    as float4, so against the box shrunk by ``_FLOAT_BOX_SLACK``). ``ST_Intersects``
    alone tests every candidate's outline: 1.1x the time of a z12 tile of the
    100k-polygon layer."""
    x0, y0, x1, y1 = (float(v) for v in bbox)
    box = "ST_MakeEnvelope(%s, %s, %s, %s, 4326)"
    exact = f"{geom} && {box} AND ST_Intersects({geom}, {box})"
    m = _FLOAT_BOX_SLACK
    if x1 - x0 <= 2 * m or y1 - y0 <= 2 * m:  # too small to hold anything well inside
        return f"({exact})", [x0, y0, x1, y1] * 2
    inner = [x0 + m, y0 + m, x1 - m, y1 - m]
    sql = f"({geom} && {box} AND ({geom} @ {box} OR ST_Intersects({geom}, {box})))"
    return sql, [x0, y0, x1, y1, *inner, x0, y0, x1, y1]


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
