"""Query parameters of the feature endpoints, parsed into a ``Query`` (+ output CRS)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi import Query as Q

from landexplorer.api import crs as crs_mod
from landexplorer.api.cql2 import parse_filter
from landexplorer.api.deps import SettingsDep, VectorCollection
from landexplorer.catalog import Filter, LayerEntry, Query
from landexplorer.errors import InputError

#: Features in an items page when no ``limit`` is given: enough that a plain items URL
#: (``geopandas.read_file(url)``, a browser, curl) brings a small or medium layer whole;
#: ``numberMatched`` and the ``next`` link say when there is more.
DEFAULT_LIMIT = 10_000
#: The most features one items page returns. A page is built in memory before it is sent:
#: measured on the demo's street trees at about 1.7 KB of peak memory and 30 µs per point
#: feature, so a page of this size is ~85 MB and ~1.5 s, and one such page in each of the
#: default 8 work threads stays under the default 768 MB memory ceiling (past it new work
#: gets 503) and far inside the 30 s time budget (past it, 504). Larger layers are paged
#: (docs/api.md, "Paging"); a whole layer in one file is an export.
MAX_LIMIT = 50_000

#: Parameters with a meaning of their own; any other parameter named like a column is
#: an equality filter on that column.
RESERVED = {
    "bbox",
    "bbox-crs",
    "crs",
    "limit",
    "offset",
    "filter",
    "filter-lang",
    "filter-crs",
    "f",
    "properties",
    "datetime",
    "sortby",
}


@dataclass
class ItemsRequest:
    """What an items request asks for, checked."""

    query: Query
    crs: str
    limit: int
    offset: int
    extra: dict[str, str] = field(default_factory=dict)


def parse_bbox(text: str, bbox_crs: str | None) -> tuple[float, float, float, float]:
    """``bbox=west,south,east,north`` (in ``bbox-crs``) as a CRS84 box."""
    parts = text.split(",")
    if len(parts) not in (4, 6):
        raise InputError("bbox needs four numbers separated by commas: west,south,east,north.")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError("bbox needs numbers, e.g. bbox=-2.4,53.4,-2.3,53.5.") from None
    if not all(math.isfinite(v) for v in values):
        raise InputError("bbox needs finite numbers.")
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    x0, y0, x1, y1 = values
    uri = crs_mod.normalize(bbox_crs)
    if x0 > x1 or y0 > y1:
        raise InputError("The bbox is upside down: give west,south,east,north (low before high).")
    if uri == crs_mod.CRS84 and (x0 < -180 or x1 > 180 or y0 < -90 or y1 > 90):
        raise InputError("bbox longitudes must be within -180..180 and latitudes within -90..90.")
    out = crs_mod.bbox_to_crs84((x0, y0, x1, y1), uri)
    return (out[0], out[1], out[2], out[3])


def _coerce(entry: LayerEntry, name: str, value: str) -> Any:
    kind = next(c.type for c in entry.columns if c.name == name)
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        raise InputError(f"'{name}' holds numbers; '{value}' is not one.") from None
    if kind == "boolean":
        if value.lower() not in ("true", "false", "1", "0"):
            raise InputError(f"'{name}' is true or false; '{value}' is neither.")
        return value.lower() in ("true", "1")
    return value


async def items_request(
    request: Request,
    entry: VectorCollection,
    settings: SettingsDep,
    bbox: Annotated[str | None, Q(description="west,south,east,north")] = None,
    bbox_crs: Annotated[str | None, Q(alias="bbox-crs")] = None,
    crs: Annotated[str | None, Q(description="Output CRS URI")] = None,
    limit: Annotated[
        int, Q(ge=1, le=MAX_LIMIT, description=f"Features per page (at most {MAX_LIMIT})")
    ] = DEFAULT_LIMIT,
    offset: Annotated[int, Q(ge=0, le=2**53)] = 0,
    filter: Annotated[str | None, Q(description="CQL2 filter")] = None,
    filter_lang: Annotated[str | None, Q(alias="filter-lang")] = None,
    filter_crs: Annotated[str | None, Q(alias="filter-crs")] = None,
) -> ItemsRequest:
    """Check and collect the items parameters."""
    filters: list[Filter] = []
    columns = entry.column_names()
    extra: dict[str, str] = {}
    for key, value in request.query_params.items():
        if key in RESERVED:
            continue
        if key in columns:
            filters.append(Filter(key, "=", _coerce(entry, key, value)))
            extra[key] = value
    if filter:
        fcrs = crs_mod.normalize(filter_crs)
        filters.append(
            parse_filter(
                filter,
                filter_lang,
                columns,
                (lambda g: crs_mod.to_crs84(g, fcrs)) if fcrs != crs_mod.CRS84 else None,
                max_chars=settings.max_filter_chars,
                max_depth=settings.max_filter_depth,
                max_nodes=settings.max_filter_nodes,
                max_vertices=settings.max_geojson_vertices,
            )
        )
    query = Query(
        bbox=parse_bbox(bbox, bbox_crs) if bbox else None,
        filters=tuple(filters),
        limit=limit,
        offset=offset,
    )
    return ItemsRequest(
        query=query, crs=crs_mod.normalize(crs), limit=limit, offset=offset, extra=extra
    )


ItemsParams = Annotated[ItemsRequest, Depends(items_request)]
