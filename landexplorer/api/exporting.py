"""Writing a collection out as GeoJSON, CSV, GeoPackage, zipped Shapefile or KML.

Every export carries the layer's licence and attribution inside the file (a member,
column, description or LICENCE.txt, as the format allows) and is written in the CRS
asked for: EPSG:4326 by default, with a matching ``.prj`` for shapefiles. KML is always
EPSG:4326, as the format requires.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import orjson
from pyproj import CRS

from landexplorer.catalog import LayerEntry, Query, Store
from landexplorer.errors import CRSError, InputError

FORMATS = {
    "geojson": ("application/geo+json", ".geojson"),
    "csv": ("text/csv; charset=utf-8", ".csv"),
    "gpkg": ("application/geopackage+sqlite3", ".gpkg"),
    "shp": ("application/zip", ".zip"),
    "kml": ("application/vnd.google-earth.kml+xml", ".kml"),
}


def export_crs(text: str | None) -> CRS:
    """The CRS to write in: EPSG:4326 unless asked (an EPSG code, CURIE or OGC URI)."""
    if not text:
        return CRS.from_epsg(4326)
    value = text.strip().strip("[]")
    if "/def/crs/EPSG/0/" in value:
        value = "EPSG:" + value.rsplit("/", 1)[1]
    elif value.endswith("/OGC/1.3/CRS84") or value.upper() in ("CRS84", "OGC:CRS84"):
        value = "EPSG:4326"
    if not value.upper().startswith("EPSG:") or not value[5:].isdigit():
        raise CRSError(
            f"'{text}' is not a coordinate system this server can write; use EPSG:<code>."
        )
    try:
        crs = CRS.from_user_input(value)
    except Exception as exc:
        raise CRSError(f"'{text}' is not a known coordinate system.", detail=str(exc)) from exc
    if crs.is_geocentric or crs.is_vertical:
        raise CRSError(f"'{text}' is not a map coordinate system.")
    return crs


def licence_text(entry: LayerEntry) -> str:
    """The licence note written into exports."""
    return (
        f"{entry.title}\nLicence: {entry.licence or 'not licensed'}\n"
        f"Attribution: {entry.attribution or '-'}\nSource: {entry.source or '-'}\n"
        f"Layer '{entry.id}', version {entry.version}, updated {entry.updated}.\n"
    )


def licence_metadata(entry: LayerEntry) -> dict[str, str]:
    """Licence, attribution and provenance as named metadata items (GeoPackage, GeoTIFF)."""
    return {
        "TITLE": entry.title,
        "LICENSE": entry.licence or "not licensed",
        "ATTRIBUTION": entry.attribution or "-",
        "SOURCE": entry.source or "-",
        "LAYER_VERSION": str(entry.version),
        "UPDATED": entry.updated,
    }


def write_export(
    store: Store, entry: LayerEntry, fmt: str, crs: CRS, folder: Path, query: Query | None = None
) -> Path:
    """Write the export into ``folder`` and return the file to send."""
    import pyogrio

    if fmt not in FORMATS:
        raise InputError(f"'{fmt}' is not an export format; choose one of {', '.join(FORMATS)}.")
    frame = store.read_frame(entry.id, query or Query())
    frame = frame.reset_index()
    epsg = crs.to_epsg()
    if fmt == "kml":
        epsg, crs = 4326, CRS.from_epsg(4326)
    if epsg != 4326:
        frame = frame.to_crs(crs)
    stem = folder / entry.id
    if fmt == "geojson":
        return _write_geojson(frame, entry, crs, stem.with_suffix(".geojson"))
    if fmt == "csv":
        out = stem.with_suffix(".csv")
        data = frame.drop(columns="geometry")
        data["wkt"] = frame.geometry.to_wkt()
        data["licence"] = entry.licence
        data["attribution"] = entry.attribution
        data.to_csv(out, index=False)
        return out
    if fmt == "gpkg":
        out = stem.with_suffix(".gpkg")
        # gpkg_contents.description holds the note; gpkg_metadata (GDAL's metadata record,
        # which ogrinfo, QGIS and ogr2ogr read and copy) holds each item by name.
        items = licence_metadata(entry)
        pyogrio.write_dataframe(
            frame, out, layer=entry.id, driver="GPKG",
            layer_options={"DESCRIPTION": licence_text(entry), "IDENTIFIER": entry.title},
            layer_metadata=items, dataset_metadata=items,
        )  # fmt: skip
        return out
    if fmt == "shp":
        shp_dir = folder / "shp"
        shp_dir.mkdir()
        pyogrio.write_dataframe(
            frame, shp_dir / f"{entry.id}.shp", driver="ESRI Shapefile",
            layer_options={"ENCODING": "UTF-8"},
        )  # fmt: skip
        (shp_dir / "LICENCE.txt").write_text(licence_text(entry), encoding="utf-8")
        out = stem.with_suffix(".zip")
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(shp_dir.iterdir()):
                zf.write(part, part.name)
        return out
    out = stem.with_suffix(".kml")
    pyogrio.write_dataframe(frame, out, driver="KML", layer=entry.id)
    _kml_description(out, entry)
    return out


def _write_geojson(frame: Any, entry: LayerEntry, crs: CRS, out: Path) -> Path:
    import shapely

    texts = shapely.to_geojson(frame.geometry.values)
    props = frame.drop(columns=["geometry", "fid"]).astype(object)
    props = props.where(props.notna(), None).to_dict("records")
    doc: dict[str, Any] = {
        "type": "FeatureCollection",
        "name": entry.id,
        "license": entry.licence,
        "attribution": entry.attribution,
    }
    epsg = crs.to_epsg()
    if epsg != 4326:  # RFC 7946 GeoJSON is lon/lat; other CRSs are named (GeoJSON 2008 style)
        doc["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}}
    doc["features"] = [
        {
            "type": "Feature",
            "id": int(fid),
            "geometry": orjson.Fragment(g) if g is not None else None,
            "properties": p,
        }
        for fid, g, p in zip(frame["fid"], texts, props, strict=True)
    ]
    out.write_bytes(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY, default=str))
    return out


def _kml_description(path: Path, entry: LayerEntry) -> None:
    """Put the licence and attribution into the KML Document's description."""
    from xml.sax.saxutils import escape

    text = path.read_text(encoding="utf-8")
    note = f"<description>{escape(licence_text(entry))}</description>"
    marker = "<Document"
    at = text.find(marker)
    if at >= 0:
        end = text.find(">", at) + 1
        text = text[:end] + note + text[end:]
        path.write_text(text, encoding="utf-8")
