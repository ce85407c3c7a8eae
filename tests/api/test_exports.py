"""Exports: every format reads back with GDAL, in the CRS asked for, with the licence inside."""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile

import geopandas as gpd
import pyogrio
import pytest
import shapely

ALLOTMENTS = "allotments/trafford_allotments.geojson"


@pytest.fixture(scope="module")
def source(real_data):
    return gpd.read_file(real_data / ALLOTMENTS)


def _download(client, tmp_path, fmt, crs=None):
    params = {"f": fmt, **({"crs": crs} if crs else {})}
    r = client.get("/collections/allotments/export", params=params)
    assert r.status_code == 200, r.text
    assert "attachment" in r.headers["content-disposition"]
    assert 'rel="license"' in r.headers["link"]
    path = tmp_path / r.headers["content-disposition"].split("filename=")[1].strip('"')
    path.write_bytes(r.content)
    return path, r


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp"])
def test_export_in_bng_has_right_coordinates(client, tmp_path, source, fmt):
    path, r = _download(client, tmp_path, fmt, "EPSG:27700")
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/27700>"
    read_path = f"/vsizip/{path}/allotments.shp" if fmt == "shp" else path
    got = pyogrio.read_dataframe(read_path)
    assert len(got) == 35
    assert got.crs.to_epsg() == 27700
    # the same sites as the source, reprojected here with pyproj through geopandas
    expected = source.to_crs(27700).sort_values("osm_id").geometry.centroid
    got_c = got.sort_values("osm_id").geometry.centroid
    assert expected.x.to_numpy() == pytest.approx(got_c.x.to_numpy(), abs=0.01)
    assert expected.y.to_numpy() == pytest.approx(got_c.y.to_numpy(), abs=0.01)
    assert (got_c.x.between(368_283, 383_298)).all()  # SOURCES.md: the borough in BNG


def test_shapefile_zip_carries_prj_and_licence(client, tmp_path):
    path, _ = _download(client, tmp_path, "shp", "EPSG:27700")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert {"allotments.shp", "allotments.shx", "allotments.dbf", "allotments.prj"} <= names
        assert "British_National_Grid" in zf.read("allotments.prj").decode()
        licence = zf.read("LICENCE.txt").decode()
    assert "OGL-UK-3.0 AND ODbL-1.0" in licence and "OpenStreetMap" in licence


def test_default_export_is_wgs84_geojson_with_licence(client, tmp_path, source):
    path, _ = _download(client, tmp_path, "geojson")
    doc = json.loads(path.read_text())
    assert doc["license"] == "OGL-UK-3.0 AND ODbL-1.0" and "crs" not in doc
    assert len(doc["features"]) == 35
    got = shapely.union_all([shapely.geometry.shape(f["geometry"]) for f in doc["features"]])
    assert got.area == pytest.approx(shapely.union_all(source.geometry.values).area, rel=1e-6)


def test_csv_has_wkt_and_licence_columns(client, tmp_path):
    import pandas as pd

    path, _ = _download(client, tmp_path, "csv")
    frame = pd.read_csv(path)
    assert len(frame) == 35
    assert frame["wkt"].str.startswith(("POLYGON", "MULTIPOLYGON")).all()
    assert (frame["licence"] == "OGL-UK-3.0 AND ODbL-1.0").all()
    assert frame["attribution"].str.contains("OpenStreetMap").all()


def test_gpkg_and_kml_carry_licence(client, tmp_path):
    gpkg, _ = _download(client, tmp_path, "gpkg")
    with sqlite3.connect(gpkg) as conn:
        (description,) = conn.execute(
            "SELECT description FROM gpkg_contents WHERE table_name = 'allotments'"
        ).fetchone()
    assert "Licence: OGL-UK-3.0 AND ODbL-1.0" in description
    kml, r = _download(client, tmp_path, "kml", "EPSG:27700")
    assert r.headers["content-crs"].endswith("/4326>")  # KML is always WGS84
    assert "Licence: OGL-UK-3.0" in kml.read_text()
    assert len(pyogrio.read_dataframe(kml)) == 35


@pytest.mark.parametrize("query", ["f=xls", "crs=EPSG:99999", "crs=nonsense", "crs=EPSG:4979x"])
def test_bad_export_requests(client, query):
    r = client.get(f"/collections/allotments/export?{query}")
    assert r.status_code == 400 and set(r.json()) == {"code", "description"}


def test_raster_layers_have_no_export(client):
    assert client.get("/collections/elevation/export").status_code == 404


def test_export_bytes_are_a_zip(client):
    r = client.get("/collections/allotments/export", params={"f": "shp"})
    assert zipfile.is_zipfile(io.BytesIO(r.content))


def test_head_on_export_sends_the_headers_only(client):
    r = client.head("/collections/allotments/export", params={"f": "shp", "crs": "EPSG:27700"})
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-type"] == "application/zip"
    assert 'filename="allotments_v1_epsg27700.zip"' in r.headers["content-disposition"]
