"""Fast GeoJSON FeatureCollection encoding from the store's Arrow tables.

Geometry JSON is made in C by ``shapely.to_geojson`` and spliced in with
``orjson.Fragment`` (no shapely -> dict -> json round trip); properties go through
orjson, which writes NaN and infinity as null, so the output is always valid JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
import shapely

from landexplorer.catalog import FID, GEOMETRY

_NULL = orjson.Fragment(b"null")


def geometry_fragments(table: pa.Table, crs_uri: str | None = None) -> list[Any]:
    """The geometry of each row as a JSON fragment (reprojected when ``crs_uri`` is given)."""
    wkb = table.column(GEOMETRY).to_numpy(zero_copy_only=False)
    if len(wkb) == 0:
        return []
    geoms = shapely.from_wkb(wkb)
    if crs_uri is not None:
        from landexplorer.api.crs import from_crs84

        geoms = from_crs84(geoms, crs_uri)
    texts = shapely.to_geojson(geoms)
    return [orjson.Fragment(t) if t is not None else _NULL for t in texts]


def features(table: pa.Table, crs_uri: str | None = None) -> list[dict[str, Any]]:
    """GeoJSON Feature dicts (geometry as pre-encoded fragments)."""
    geoms = geometry_fragments(table, crs_uri)
    names = [n for n in table.column_names if n not in (FID, GEOMETRY)]
    props = table.select(names).to_pylist()  # row dicts made by Arrow in C++
    fids = table.column(FID).to_pylist()
    return [
        {"type": "Feature", "id": fid, "geometry": geom, "properties": row}
        for fid, geom, row in zip(fids, geoms, props, strict=True)
    ]


def feature_collection(
    table: pa.Table,
    *,
    crs_uri: str | None = None,
    extra: dict[str, Any] | None = None,
    links: Sequence[dict[str, Any]] = (),
) -> bytes:
    """A whole FeatureCollection as JSON bytes; ``extra`` members go before the features."""
    doc: dict[str, Any] = {"type": "FeatureCollection"}
    if extra:
        doc.update(extra)
    if links:
        doc["links"] = list(links)
    doc["features"] = features(table, crs_uri)
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY, default=str)


def feature(
    table: pa.Table, *, crs_uri: str | None = None, extra: dict[str, Any] | None = None
) -> bytes:
    """One Feature (the table's first row) as JSON bytes."""
    doc = features(table, crs_uri)[0]
    if extra:
        doc.update(extra)
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY, default=str)
