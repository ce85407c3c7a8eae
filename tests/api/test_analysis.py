"""POST /analysis/*: answers checked against SOURCES.md and geopandas computed here."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely

AREA = shapely.box(-2.36, 53.40, -2.33, 53.42)


def test_compare_allotments_with_flood_matches_sources(client):
    r = client.post(
        "/analysis/compare",
        json={"left": "allotments", "right": "flood_risk", "by": "prob_4band"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["left_total"] == 35 and body["left_matched"] == 8  # SOURCES.md
    by_class = {row["class"]: row["left_features"] for row in body["summary"]}
    assert by_class == {"(any)": 8, "High": 4, "Medium": 5, "Low": 4, "Very Low": 2}
    matches = body["matches"]
    assert matches["type"] == "FeatureCollection" and matches["numberMatched"] == body["pairs"]
    assert {f["properties"]["left_fid"] for f in matches["features"]} and len(
        {f["properties"]["left_fid"] for f in matches["features"]}
    ) == 8
    assert {s["id"] for s in body["sources"]} == {"allotments", "flood_risk"}


def test_compare_class_column_empty_or_unknown(client):
    """An empty class column means none (same answer on both stores); an unknown one is a
    plain 400, not a server error (found by schemathesis on the PostGIS store)."""
    body = {"left": "allotments", "right": "flood_risk"}
    r = client.post("/analysis/compare", json={**body, "by": ""})
    assert r.status_code == 200, r.text
    assert [row["class"] for row in r.json()["summary"]] == ["(any)"]
    r = client.post("/analysis/compare", json={**body, "by": "no_such_column"})
    assert r.status_code == 400
    assert r.json()["code"] and "prob_4band" in r.json()["description"]


def test_report_on_a_drawn_area_against_geopandas(client, real_data):
    r = client.post(
        "/analysis/report",
        json={"area": shapely.geometry.mapping(AREA), "layers": ["flood_risk", "allotments"]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["crs"].endswith("27700") or "British National Grid" in body["crs"]
    expected_area = gpd.GeoSeries([AREA], crs=4326).to_crs(27700).area.iloc[0]
    assert body["area_m2"] == pytest.approx(expected_area, rel=1e-3)
    flood = next(layer for layer in body["layers"] if layer["layer"] == "flood_risk")
    src = gpd.read_file(real_data / "flood_risk_rofrs" / "trafford_rofrs_2018.geojson")
    assert flood["count"] == int(src.geometry.intersects(AREA).sum())
    clipped = src.to_crs(27700).geometry.intersection(
        gpd.GeoSeries([AREA], crs=4326).to_crs(27700).iloc[0]
    )
    union_area = shapely.union_all(clipped.values).area
    assert flood["amount"] == pytest.approx(union_area, rel=1e-3)
    assert body["area"]["type"] == "Feature"


def test_zonal_elevation_of_allotments(client):
    r = client.post(
        "/analysis/zonal",
        json={
            "layer": "allotments",
            "raster": "elevation",
            "stats": ["count", "mean", "min", "max"],
        },
    )
    assert r.status_code == 200, r.text
    rows = r.json()["stats"]
    assert len(rows) == 35
    means = [row["mean"] for row in rows if row["mean"] is not None]
    # SOURCES.md: the DEM ranges 6.5-86.0 m over the borough
    assert means and all(6.5 <= m <= 86.0 for m in means)
    assert all(row["min"] <= row["mean"] <= row["max"] for row in rows if row["mean"] is not None)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/analysis/compare", {"left": "nope", "right": "flood_risk"}, 404),
        ("/analysis/compare", {"left": "allotments'--", "right": "flood_risk"}, 404),
        ("/analysis/compare", {"left": "allotments", "right": "flood_risk", "predicate": "x"}, 400),
        ("/analysis/compare", {"left": "allotments"}, 400),
        ("/analysis/report", {"area": {"type": "Point", "coordinates": [-2.3, 53.4]}}, 400),
        ("/analysis/report", {"area": {"type": "Polygon", "coordinates": "x"}}, 400),
        ("/analysis/zonal", {"layer": "allotments", "raster": "flood_risk"}, 400),
        ("/analysis/zonal", {"layer": "allotments", "raster": "elevation", "stats": ["zz"]}, 400),
    ],
)
def test_bad_analysis_requests(client, path, body, status):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"code", "description"}
