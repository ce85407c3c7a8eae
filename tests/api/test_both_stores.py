"""The features API over each store (GeoPackage and PostGIS): the same answers."""

from __future__ import annotations

import warnings

import geopandas as gpd
import pytest
import shapely

from landexplorer.api import create_app
from landexplorer.layers.ingest import IngestOptions, ingest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

FLOOD = "flood_risk_rofrs/trafford_rofrs_2018.geojson"


@pytest.fixture
def api(store, settings, real_data):
    ingest(store, [real_data / FLOOD], IngestOptions(id="flood", licence="OGL-UK-3.0"))
    with TestClient(create_app(settings)) as c:
        yield c


def test_cql2_and_bbox_on_each_store(api, real_data):
    src = gpd.read_file(real_data / FLOOD)
    box = shapely.box(-2.38, 53.41, -2.35, 53.43)

    def matched(**params):
        r = api.get("/collections/flood/items", params={"limit": 1, **params})
        assert r.status_code == 200, r.text
        return r.json()["numberMatched"]

    assert matched() == 1494
    assert matched(filter="prob_4band = 'High' OR prob_4band = 'Low'") == 302 + 377
    assert matched(filter="NOT (prob_4band IN ('High', 'Medium'))") == 377 + 74
    assert matched(filter="st_area_sh BETWEEN 1000 AND 5000") == int(
        src["st_area_sh"].between(1000, 5000).sum()
    )
    assert matched(filter=f"S_INTERSECTS(geometry, {box.wkt})") == int(
        src.geometry.intersects(box).sum()
    )
    assert matched(bbox="-2.38,53.41,-2.35,53.43") == int(src.geometry.intersects(box).sum())
    assert matched(prob_4band="Very Low") == 74
    page = api.get("/collections/flood/items", params={"limit": 1000, "offset": 1000}).json()
    assert page["numberReturned"] == 494


def test_export_and_item_on_each_store(api):
    one = api.get("/collections/flood/items/1")
    assert one.status_code == 200 and one.json()["id"] == 1
    r = api.get("/collections/flood/export", params={"f": "geojson", "crs": "EPSG:27700"})
    assert r.status_code == 200 and len(r.json()["features"]) == 1494
