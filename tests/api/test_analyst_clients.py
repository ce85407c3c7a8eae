"""What an analyst's own tools see on a live server (issue 12): GDAL's OAPIF driver
(Debian's ogrinfo/ogr2ogr and pyogrio's), OWSLib and geopandas get quiet listings, the CRS
they asked for, whole layers in one request, the licence in their copies, and a page on
another site can read the public answers."""

from __future__ import annotations

import sqlite3
import subprocess
import warnings

import geopandas as gpd
import httpx
import pyogrio
import pytest

from landexplorer.api import create_app
from landexplorer.api.params import DEFAULT_LIMIT, MAX_LIMIT
from tests.api.test_live_clients import needs_ogr
from tests.people import bearer, make_token

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BNG = "http://www.opengis.net/def/crs/EPSG/0/27700"
LICENCE = "OGL-UK-3.0 AND ODbL-1.0"  # the demo allotments'


# ---- the raster layer is a coverage, not a feature collection


@needs_ogr
def test_ogrinfo_lists_the_layers_without_an_error(live_url):
    out = subprocess.run(
        ["ogrinfo", "-ro", "-q", f"OAPIF:{live_url}"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "ERROR" not in out.stdout + out.stderr, out.stderr
    assert "allotments" in out.stdout and "elevation" not in out.stdout


def test_feature_clients_pass_the_coverage_by(live_url):
    assert "elevation" not in {name for name, _ in pyogrio.list_layers(f"OAPIF:{live_url}")}
    from owslib.ogcapi.features import Features

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # OWSLib quiet too
        listed = {c["id"]: c for c in Features(live_url).collections()["collections"]}
    # still listed for the web page and tile clients, said to be a grid with map tiles
    raster = listed["elevation"]
    assert raster["itemType"] == "coverage" and raster["layerDataType"] == "Coverage"
    rels = {link["rel"] for link in raster["links"]}
    assert "items" not in rels
    tiles = next(x for x in raster["links"] if x["rel"].endswith("/tilesets-map"))
    assert httpx.get(tiles["href"]).json()["tilesets"][0]["dataType"] == "map"
    vector = listed["allotments"]
    assert vector["itemType"] == "feature"
    assert any(x["rel"].endswith("/tilesets-vector") for x in vector["links"])


# ---- the CRS asked for is the CRS the client gets


def test_geopandas_gets_the_crs_it_asked_for(live_url):
    url = f"{live_url}/collections/allotments/items"
    bng = gpd.read_file(f"{url}?crs={BNG}")
    assert bng.crs.to_epsg() == 27700
    x0, y0, x1, y1 = bng.total_bounds
    assert 370_000 < x0 < x1 < 385_000 and 385_000 < y0 < y1 < 400_000  # Trafford in BNG
    lonlat = gpd.read_file(url)
    assert lonlat.crs.to_epsg() == 4326 and -2.5 < lonlat.total_bounds[0] < -2.2
    again = lonlat.to_crs(27700).total_bounds
    assert abs(again - bng.total_bounds).max() < 0.01  # the same places
    fid = httpx.get(url, params={"limit": 1}).json()["features"][0]["id"]
    one = gpd.read_file(f"{url}/{fid}?crs={BNG}")
    assert one.crs.to_epsg() == 27700


def test_crs_is_named_in_the_body_and_the_header(client):
    r = client.get("/collections/allotments/items", params={"crs": BNG, "limit": 1})
    assert r.headers["content-crs"] == f"<{BNG}>"
    assert r.json()["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::27700"
    plain = client.get("/collections/allotments/items", params={"limit": 1})
    assert "crs" not in plain.json()  # RFC 7946: CRS84 needs no crs member


# ---- paging that suits analysts


def test_a_plain_items_url_brings_a_medium_layer_whole(live_url):
    frame = gpd.read_file(f"{live_url}/collections/flood_risk/items")
    assert len(frame) == 1494
    body = httpx.get(f"{live_url}/collections/street_trees/items").json()
    assert body["numberMatched"] == 15638 and body["numberReturned"] == DEFAULT_LIMIT
    assert any(link["rel"] == "next" for link in body["links"])
    whole = httpx.get(f"{live_url}/collections/street_trees/items", params={"limit": MAX_LIMIT})
    assert whole.json()["numberReturned"] == 15638


def test_limit_past_the_maximum_is_refused_in_plain_words(client):
    r = client.get("/collections/allotments/items", params={"limit": MAX_LIMIT + 1})
    assert r.status_code == 400 and str(MAX_LIMIT) in r.json()["description"]
    doc = client.get("/openapi.json").json()
    params = doc["paths"]["/collections/{collectionId}/items"]["get"]["parameters"]
    limit = next(p for p in params if p["name"] == "limit")["schema"]
    assert limit["default"] == DEFAULT_LIMIT and limit["maximum"] == MAX_LIMIT


# ---- CORS: public reads for every site, writes and the token for listed sites only

LISTED = "https://group.example.org"
ELSEWHERE = "https://elsewhere.example"


@pytest.fixture(scope="module")
def cors_client(demo_settings):
    settings = demo_settings.model_copy(update={"cors_origins": [LISTED]})
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def reader(demo_settings):
    """Bearer headers of a signed-in reader (their answers may hold layers others cannot see)."""
    return bearer(make_token(demo_settings, "cors-reader", admin=False, scope="read"))


def test_any_site_reads_public_answers(cors_client):
    r = cors_client.get("/collections/allotments/items?limit=1", headers={"Origin": ELSEWHERE})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert "Content-Crs" in r.headers["access-control-expose-headers"]
    pre = cors_client.options(
        "/collections/allotments/items",
        headers={
            "Origin": ELSEWHERE,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "If-None-Match",
        },
    )
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "*"
    assert "POST" not in pre.headers["access-control-allow-methods"]
    # any header but the token: a read shows nothing private whatever else it sends
    pre = cors_client.options(
        "/collections",
        headers={
            "Origin": ELSEWHERE,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Content-Type, X-Requested-With",
        },
    )
    assert pre.status_code == 200
    assert "x-requested-with" in pre.headers["access-control-allow-headers"]


def test_other_sites_get_no_writes_and_no_token(cors_client, reader):
    for method, headers in (
        ("DELETE", {}),
        ("GET", {"Access-Control-Request-Headers": "Authorization"}),
        ("POST", {"Access-Control-Request-Headers": "Content-Type"}),
    ):
        pre = cors_client.options(
            "/collections/allotments",
            headers={"Origin": ELSEWHERE, "Access-Control-Request-Method": method, **headers},
        )
        assert pre.status_code == 403, method
        assert "access-control-allow-origin" not in pre.headers
        assert "LANDEXPLORER_CORS_ORIGINS" in pre.json()["description"]
    # an answer to a token holder (it may hold private layers) is not shared
    r = cors_client.get("/collections", headers={"Origin": ELSEWHERE, **reader})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    # nor is a refused token's answer (the other site learns nothing from it)
    r = cors_client.get(
        "/collections", headers={"Origin": ELSEWHERE, "Authorization": "Bearer lxt_no"}
    )
    assert r.status_code == 401 and "access-control-allow-origin" not in r.headers
    w = cors_client.delete("/collections/nothing_here", headers={"Origin": ELSEWHERE})
    assert "access-control-allow-origin" not in w.headers


def test_listed_sites_may_write_with_a_token(cors_client, reader):
    pre = cors_client.options(
        "/collections/allotments",
        headers={
            "Origin": LISTED,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == LISTED
    assert "PATCH" in pre.headers["access-control-allow-methods"]
    assert "authorization" in pre.headers["access-control-allow-headers"]
    assert "Origin" in pre.headers["vary"]
    r = cors_client.get("/collections", headers={"Origin": LISTED, **reader})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == LISTED and "Origin" in r.headers["vary"]


def test_live_server_answers_cors_by_default(live_url):
    r = httpx.get(f"{live_url}/collections", headers={"Origin": ELSEWHERE})
    assert r.headers["access-control-allow-origin"] == "*"


# ---- the licence travels into copies


@needs_ogr
def test_gpkg_export_carries_the_licence_in_its_metadata(live_url, tmp_path):
    target = tmp_path / "allotments.gpkg"
    target.write_bytes(httpx.get(f"{live_url}/collections/allotments/export?f=gpkg").content)
    out = subprocess.run(
        ["ogrinfo", "-ro", "-so", str(target), "allotments"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert f"LICENSE={LICENCE}" in out.stdout
    assert "ATTRIBUTION=Trafford Council" in out.stdout
    with sqlite3.connect(target) as db:
        (description,) = db.execute("SELECT description FROM gpkg_contents").fetchone()
        records = " ".join(m for (m,) in db.execute("SELECT metadata FROM gpkg_metadata"))
    assert f"Licence: {LICENCE}" in description and LICENCE in records


@needs_ogr
def test_ogr2ogr_copy_keeps_the_licence(live_url, tmp_path):
    """GDAL's OAPIF driver keeps a collection's title and description as layer metadata and
    the whole collection document in the ``json:metadata`` domain; ogr2ogr writes both into
    the copy's gpkg_metadata, so the licence and attribution members travel with it."""
    target = tmp_path / "copy.gpkg"
    run = subprocess.run(
        ["ogr2ogr", "-f", "GPKG", str(target), f"OAPIF:{live_url}", "allotments"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    shown = subprocess.run(
        ["ogrinfo", "-ro", "-so", "-mdd", "json:metadata", str(target), "allotments"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert f'"license":"{LICENCE}"' in shown.stdout
    assert '"attribution":"Trafford Council' in shown.stdout
