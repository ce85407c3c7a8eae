"""OGC API - Features over the demo catalogue, checked against SOURCES.md figures and
against shapely/pyproj/geopandas computed here."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from pyproj import Transformer

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
FLOOD_BANDS = {"High": 302, "Medium": 741, "Low": 377, "Very Low": 74}  # SOURCES.md


def test_landing_links(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    rels = {link["rel"]: link for link in r.json()["links"]}
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert client.get(rels["service-desc"]["href"]).json()["openapi"].startswith("3.")


def test_conformance_declares_core_geojson_crs_filter(client):
    classes = client.get("/conformance").json()["conformsTo"]
    for part in (
        "features-1/1.0/conf/core",
        "features-1/1.0/conf/geojson",
        "features-2/1.0/conf/crs",
        "features-3/1.0/conf/filter",
        "cql2/1.0/conf/cql2-text",
    ):
        assert any(c.endswith(part) for c in classes), part


def test_collections_list_public_layers_with_metadata(client, demo_store):
    body = client.get("/collections").json()
    ids = {c["id"] for c in body["collections"]}
    expected = {e.id for e in demo_store.list_layers() if e.is_public}
    assert ids == expected and "flood_risk" in ids
    flood = next(c for c in body["collections"] if c["id"] == "flood_risk")
    assert flood["itemType"] == "feature"
    bbox = flood["extent"]["spatial"]["bbox"]
    assert isinstance(bbox[0], list)
    assert bbox[0] == pytest.approx([-2.47845, 53.35741, -2.25369, 53.48035], abs=1e-4)
    assert CRS84 in flood["crs"] and flood["storageCrs"] == CRS84
    assert "http://www.opengis.net/def/crs/EPSG/0/27700" in flood["crs"]
    rels = [link["rel"] for link in flood["links"]]
    assert "items" in rels and "license" in rels and "describedby" in rels
    assert flood["attribution"].startswith("© Environment Agency")


def test_items_count_and_paging_match_the_source(client, real_data):
    r = client.get("/collections/flood_risk/items", params={"limit": 1000})
    assert r.headers["content-type"] == "application/geo+json"
    body = r.json()
    assert body["numberMatched"] == 1494 and body["numberReturned"] == 1000
    assert body["license"] == "OGL-UK-3.0" and "Environment Agency" in body["attribution"]
    nxt = next(link["href"] for link in body["links"] if link["rel"] == "next")
    page2 = client.get(nxt).json()
    assert page2["numberReturned"] == 494
    assert not any(link["rel"] == "next" for link in page2["links"])
    assert any(link["rel"] == "prev" for link in page2["links"])
    ids = [f["id"] for f in body["features"]] + [f["id"] for f in page2["features"]]
    assert len(set(ids)) == 1494


def test_items_bbox_matches_shapely_intersects(client, real_data):
    src = gpd.read_file(real_data / "flood_risk_rofrs" / "trafford_rofrs_2018.geojson")
    bbox = (-2.40, 53.40, -2.33, 53.44)
    expected = int(src.geometry.intersects(shapely.box(*bbox)).sum())
    body = client.get(
        "/collections/flood_risk/items", params={"bbox": ",".join(map(str, bbox)), "limit": 5000}
    ).json()
    assert body["numberReturned"] == expected > 10
    geoms = [shapely.geometry.shape(f["geometry"]) for f in body["features"]]
    assert shapely.intersects(geoms, shapely.box(*bbox)).all()


@pytest.mark.parametrize(("band", "count"), FLOOD_BANDS.items())
def test_property_equality_filter(client, band, count):
    body = client.get("/collections/flood_risk/items", params={"prob_4band": band}).json()
    assert body["numberMatched"] == count


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prob_4band = 'High'", 302),
        ("prob_4band IN ('High', 'Medium')", 302 + 741),
        ("prob_4band LIKE 'V%'", 74),
        ("NOT prob_4band = 'High'", 1494 - 302),
        ("prob_4band = 'High' OR prob_4band = 'Low'", 302 + 377),
        ("prob_4band IS NULL", 0),
    ],
)
def test_cql2_text(client, text, expected):
    r = client.get("/collections/flood_risk/items", params={"filter": text, "limit": 1})
    assert r.status_code == 200, r.text
    assert r.json()["numberMatched"] == expected


def test_cql2_numeric_and_spatial_against_geopandas(client, real_data):
    src = gpd.read_file(real_data / "flood_risk_rofrs" / "trafford_rofrs_2018.geojson")
    area = src["st_area_sh"]
    assert client.get(
        "/collections/flood_risk/items",
        params={"filter": "st_area_sh BETWEEN 1000 AND 5000", "limit": 1},
    ).json()["numberMatched"] == int(((area >= 1000) & (area <= 5000)).sum())
    poly = shapely.box(-2.38, 53.41, -2.35, 53.43)
    expected = int(src.geometry.intersects(poly).sum())
    text = f"S_INTERSECTS(geometry, {poly.wkt}) AND st_area_sh > 500"
    got = client.get("/collections/flood_risk/items", params={"filter": text, "limit": 1}).json()[
        "numberMatched"
    ]
    assert got == int((src.geometry.intersects(poly) & (area > 500)).sum())
    assert 0 < got < expected


def test_cql2_json(client):
    tree = (
        '{"op":"and","args":[{"op":"=","args":[{"property":"prob_4band"},"Medium"]},'
        '{"op":">","args":[{"property":"st_area_sh"},0]}]}'
    )
    r = client.get(
        "/collections/flood_risk/items",
        params={"filter": tree, "filter-lang": "cql2-json", "limit": 1},
    )
    assert r.json()["numberMatched"] == 741


def _first_xy(geometry: dict) -> tuple[float, float]:
    x, y = shapely.get_coordinates(shapely.geometry.shape(geometry))[0]
    return float(x), float(y)


def test_one_item_and_crs_output(client):
    one = client.get("/collections/allotments/items/1").json()
    assert one["type"] == "Feature" and one["id"] == 1
    lon, lat = _first_xy(one["geometry"])
    r = client.get(
        "/collections/allotments/items/1",
        params={"crs": "http://www.opengis.net/def/crs/EPSG/0/27700"},
    )
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/27700>"
    e, n = _first_xy(r.json()["geometry"])
    ref = Transformer.from_crs("OGC:CRS84", "EPSG:27700", always_xy=True).transform(lon, lat)
    assert (e, n) == pytest.approx(ref, abs=0.01)
    # EPSG:4326 is served in its own axis order: latitude first
    lat2, lon2 = _first_xy(
        client.get("/collections/allotments/items/1", params={"crs": "EPSG:4326"}).json()[
            "geometry"
        ]
    )
    assert (lon2, lat2) == pytest.approx((lon, lat), abs=1e-9)


def test_bbox_crs_27700(client):
    t = Transformer.from_crs("OGC:CRS84", "EPSG:27700", always_xy=True)
    x0, y0 = t.transform(-2.40, 53.40)
    x1, y1 = t.transform(-2.33, 53.44)
    in_bng = client.get(
        "/collections/flood_risk/items",
        params={"bbox": f"{x0},{y0},{x1},{y1}", "bbox-crs": "EPSG:27700", "limit": 1},
    ).json()["numberMatched"]
    in_84 = client.get(
        "/collections/flood_risk/items", params={"bbox": "-2.40,53.40,-2.33,53.44", "limit": 1}
    ).json()["numberMatched"]
    # the BNG box, as a lon/lat envelope, is a little larger than the original one
    assert in_84 <= in_bng <= in_84 * 1.1


def test_etag_and_304(client):
    url = "/collections/allotments/items?limit=5"
    r = client.get(url)
    tag = r.headers["etag"]
    assert "max-age" in r.headers["cache-control"]
    again = client.get(url, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    other = client.get("/collections/allotments/items?limit=6", headers={"If-None-Match": tag})
    assert other.status_code == 200


def test_head_answers_where_get_does(client):
    for path in (
        "/",
        "/conformance",
        "/collections",
        "/collections/allotments",
        "/collections/allotments/items",
        "/collections/allotments/items/1",
        "/collections/allotments/queryables",
    ):
        r = client.head(path)
        assert r.status_code == 200, path
        assert r.content == b""


def test_json_media_types(client):
    r = client.get("/collections/allotments/items", headers={"Accept": "application/json"})
    assert r.headers["content-type"] == "application/json"
    r = client.get("/collections/allotments/items", params={"f": "geojson"})
    assert r.headers["content-type"] == "application/geo+json"
    r = client.get("/collections/allotments/items", headers={"Accept": ""})
    assert r.json()["type"] == "FeatureCollection"


def test_queryables_list_columns(client):
    r = client.get("/collections/flood_risk/queryables")
    assert r.headers["content-type"].startswith("application/schema+json")
    props = r.json()["properties"]
    assert props["prob_4band"]["type"] == "string"
    assert props["st_area_sh"]["type"] == "number"
    assert props["geometry"]["format"] == "geometry-any"


def test_cors_from_settings(demo_settings):
    import warnings

    from landexplorer.api import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    allowed = "https://map.example.org"
    app = create_app(demo_settings.model_copy(update={"cors_origins": [allowed]}))
    with TestClient(app) as c:
        r = c.get("/collections", headers={"Origin": allowed})
        assert r.headers["access-control-allow-origin"] == allowed
        pre = c.options(
            "/collections/allotments/items",
            headers={"Origin": allowed, "Access-Control-Request-Method": "GET"},
        )
        assert pre.status_code == 200
        # other sites read public answers (tests/api/test_analyst_clients.py: the rest)
        other = c.get("/collections", headers={"Origin": "https://elsewhere.example"})
        assert other.headers["access-control-allow-origin"] == "*"
