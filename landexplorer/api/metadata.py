"""Collection metadata in OGC API shape: extent, CRS lists, links, licence and attribution."""

from __future__ import annotations

from typing import Any

from landexplorer.api.crs import CRS84, SUPPORTED
from landexplorer.catalog import LayerEntry

#: Licence URLs for the SPDX ids the catalogue uses.
LICENCE_URLS = {
    "OGL-UK-3.0": "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/",
    "ODbL-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
}

JSON = "application/json"
GEOJSON = "application/geo+json"
SCHEMA_JSON = "application/schema+json"


def licence_links(entry: LayerEntry) -> list[dict[str, str]]:
    """``rel: license`` links for each licence named in the entry (SPDX ids or URLs)."""
    links = []
    for part in entry.licence.replace(" OR ", " AND ").split(" AND "):
        name = part.strip().strip("()")
        href = LICENCE_URLS.get(name) or (name if name.startswith("http") else None)
        if href:
            links.append({"rel": "license", "href": href, "title": name})
    return links


def licence_members(entry: LayerEntry) -> dict[str, str]:
    """The licence and attribution as they travel in every response and export."""
    return {"license": entry.licence, "attribution": entry.attribution}


def collection_doc(entry: LayerEntry, root: str) -> dict[str, Any]:
    """One collection's description."""
    base = f"{root}/collections/{entry.id}"
    links: list[dict[str, Any]] = [
        {"rel": "self", "type": JSON, "href": base, "title": "This collection"},
    ]
    doc: dict[str, Any] = {
        "id": entry.id,
        "title": entry.title,
        "description": entry.description,
        "keywords": [entry.kind],
        "attribution": entry.attribution,
        "license": entry.licence,
        "layerVersion": entry.version,
        "updated": entry.updated,
    }
    if entry.bbox:
        doc["extent"] = {"spatial": {"bbox": [list(entry.bbox)], "crs": CRS84}}
    if entry.data_type == "vector":
        links += [
            {"rel": "items", "type": GEOJSON, "href": f"{base}/items", "title": "Features"},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": SCHEMA_JSON,
                "href": f"{base}/queryables",
                "title": "Queryables",
            },
            {
                "rel": "describedby",
                "type": SCHEMA_JSON,
                "href": f"{base}/schema",
                "title": "Schema of the features",
            },
        ]
        # the layer's changes as they are accepted (docs/api.md "Following changes live"):
        # the web page follows this link, so a server without the feed is never asked
        links.append(
            {
                "rel": "related",
                "type": "text/event-stream",
                "href": f"{base}/changes/live",
                "title": "Live feed of changes (Server-Sent Events)",
            }
        )
        for fmt, media in EXPORT_MEDIA.items():
            links.append(
                {
                    "rel": "enclosure",
                    "type": media,
                    "href": f"{base}/export?f={fmt}",
                    "title": f"Download as {fmt}",
                }
            )
        doc.update(
            itemType="feature",
            crs=SUPPORTED,
            storageCrs=CRS84,
            geometryType=entry.geometry_type,
            featureCount=entry.feature_count,
        )
        links.append(_tilesets_link(base, "vector"))
    else:
        # A grid, not features: no items link, and said three ways so that feature clients
        # pass it by (GDAL's OAPIF driver skips layerDataType Coverage; OGC API - Common
        # and Tiles say dataType; the web page reads itemType).
        doc.update(itemType="coverage", dataType="coverage", layerDataType="Coverage")
        links.append(_tilesets_link(base, "map"))
    doc["links"] = links + licence_links(entry)
    return doc


def _tilesets_link(base: str, kind: str) -> dict[str, str]:
    """The link to a collection's tilesets (OGC API - Tiles: vector or map tiles)."""
    return {
        "rel": f"http://www.opengis.net/def/rel/ogc/1.0/tilesets-{kind}",
        "type": JSON,
        "href": f"{base}/tiles",
        "title": "Vector tiles" if kind == "vector" else "Map tiles (PNG)",
    }


EXPORT_MEDIA = {
    "geojson": "application/geo+json",
    "csv": "text/csv",
    "gpkg": "application/geopackage+sqlite3",
    "shp": "application/zip",
    "kml": "application/vnd.google-earth.kml+xml",
}

_JSON_TYPES = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "binary": {"type": "string", "contentEncoding": "base64"},
}

_GEOMETRY_SCHEMA = {
    "Point": "https://geojson.org/schema/Point.json",
    "MultiPoint": "https://geojson.org/schema/MultiPoint.json",
    "LineString": "https://geojson.org/schema/LineString.json",
    "MultiLineString": "https://geojson.org/schema/MultiLineString.json",
    "Polygon": "https://geojson.org/schema/Polygon.json",
    "MultiPolygon": "https://geojson.org/schema/MultiPolygon.json",
}


def json_schema(entry: LayerEntry, root: str, *, queryables: bool) -> dict[str, Any]:
    """The queryables (or feature schema) of a collection as a JSON Schema."""
    name = "queryables" if queryables else "schema"
    props: dict[str, Any] = {
        "geometry": {
            "title": "Geometry",
            "x-ogc-role": "primary-geometry",
            "format": "geometry-any",
            "$ref": _GEOMETRY_SCHEMA.get(
                entry.geometry_type, "https://geojson.org/schema/Geometry.json"
            ),
        }
    }
    if queryables:
        props["geometry"].pop("$ref")
    for col in entry.columns:
        props[col.name] = {"title": col.name, **_JSON_TYPES.get(col.type, {"type": "string"})}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{root}/collections/{entry.id}/{name}",
        "type": "object",
        "title": entry.title,
        "properties": props,
        "additionalProperties": not queryables,
    }
