"""TileJSON 3.0.0 documents for catalogue layers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from landexplorer.catalog.model import LayerEntry
from landexplorer.tiles import grid

#: Deepest zoom advertised for vector layers; clients over-zoom beyond it.
VECTOR_MAXZOOM = 16
_WORLD_M = 2 * grid.HALF_WORLD


def fitting_zoom(bbox: tuple[float, float, float, float] | None) -> int:
    """The deepest zoom at which the whole box still fits in about one tile."""
    if not bbox:
        return 0
    west, south, east, north = bbox
    (mx0, mx1), (my0, my1) = grid.lonlat_to_mercator(
        np.array([west, east], dtype=float), np.array([south, north], dtype=float)
    )
    span = max(float(mx1 - mx0), float(my1 - my0), 1.0)
    return max(0, min(grid.MAX_ZOOM, math.floor(math.log2(_WORLD_M / span))))


def zoom_range(entry: LayerEntry) -> tuple[int, int]:
    """(minzoom, maxzoom) worth drawing for a layer.

    Vector: from a little above the zoom where the layer fits one tile, to 16.
    Raster: to the zoom whose pixels are just finer than the raster's cells.
    """
    minzoom = max(0, fitting_zoom(entry.bbox) - 2)
    if entry.data_type == "raster":
        res = (entry.raster or {}).get("resolution") or [0]
        crs = str((entry.raster or {}).get("crs", ""))
        cell = float(res[0]) if res else 0.0
        if crs in ("EPSG:4326", "OGC:CRS84"):
            cell *= 111_320.0  # degrees to metres, near enough to pick a zoom
        if cell > 0:
            maxzoom = math.ceil(math.log2(_WORLD_M / (256 * cell)))
            maxzoom = max(0, min(grid.MAX_ZOOM, maxzoom))
            return min(minzoom, maxzoom), maxzoom
        return minzoom, 18
    return min(minzoom, VECTOR_MAXZOOM), VECTOR_MAXZOOM


_JSON_TYPES = {"integer": "Number", "number": "Number", "boolean": "Boolean"}


def tilejson(entry: LayerEntry, tile_url: str) -> dict[str, Any]:
    """A TileJSON 3.0.0 document for one layer; ``tile_url`` holds {z}/{x}/{y}."""
    minzoom, maxzoom = zoom_range(entry)
    bounds = list(entry.bbox) if entry.bbox else [-180.0, -85.0511, 180.0, 85.0511]
    centre_zoom = max(minzoom, min(maxzoom, fitting_zoom(entry.bbox) + 1))
    doc: dict[str, Any] = {
        "tilejson": "3.0.0",
        "name": entry.title,
        "description": entry.description or entry.title,
        "version": f"{entry.version}.0.0",
        "attribution": entry.attribution,
        "scheme": "xyz",
        "tiles": [tile_url],
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": bounds,
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, centre_zoom],
    }
    if entry.licence:
        doc["licence"] = entry.licence
    if entry.data_type == "vector":
        doc["vector_layers"] = [
            {
                "id": entry.id,
                "description": entry.description or entry.title,
                "minzoom": minzoom,
                "maxzoom": maxzoom,
                "fields": {c.name: _JSON_TYPES.get(c.type, "String") for c in entry.columns},
            }
        ]
    return doc
