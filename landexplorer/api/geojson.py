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
_CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_EPSG = "http://www.opengis.net/def/crs/EPSG/0/"


def crs_member(crs_uri: str | None) -> dict[str, Any] | None:
    """The GeoJSON (2008) ``crs`` member naming a CRS other than CRS84, else None.

    RFC 7946 GeoJSON is CRS84 and has no ``crs`` member. Output asked for in another CRS
    (OGC API - Features Part 2) says so in a header (``Content-Crs``) that file readers
    never see; GDAL (and so geopandas, QGIS and ogr2ogr) reads this member instead, so the
    coordinates come in labelled with the CRS they are in.
    """
    if not crs_uri or crs_uri == _CRS84:
        return None
    if crs_uri.startswith(_EPSG):
        name = f"urn:ogc:def:crs:EPSG::{crs_uri.rsplit('/', 1)[1]}"
    else:
        name = crs_uri
    return {"type": "name", "properties": {"name": name}}


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
    named = crs_member(crs_uri)
    if named:
        doc["crs"] = named
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
    named = crs_member(crs_uri)
    if named:
        doc["crs"] = named
    if extra:
        doc.update(extra)
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY, default=str)
