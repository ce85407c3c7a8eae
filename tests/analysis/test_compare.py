"""compare(): joins between catalogue layers on the real Trafford data, checked against
references computed in the test with shapely/pyproj in EPSG:27700 and SOURCES.md."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from landexplorer.analysis import compare
from landexplorer.errors import InputError, LayerNotFound
from tests.analysis.conftest import pairs

BANDS = ["High", "Medium", "Low", "Very Low"]


def test_allotments_against_flood_bands(demo_store, real):
    result = compare("allotments", "flood_risk", store=demo_store, by="prob_4band")
    # reference: plain shapely in British National Grid
    i, j = pairs(real.allotments, real.flood)
    bands = real.flood.prob_4band.to_numpy()[j]
    expected = {b: len(np.unique(i[bands == b])) for b in BANDS}
    assert expected == {"High": 4, "Medium": 5, "Low": 4, "Very Low": 2}  # SOURCES.md
    got = dict(zip(result.summary["class"], result.summary["left_features"], strict=True))
    assert {b: got[b] for b in BANDS} == expected
    assert got["(any)"] == len(np.unique(i)) == 8
    assert result.left_matched == 8 and result.left_total == 35
    assert len(result.matches) == len(i)
    assert result.crs == "EPSG:27700"
    # overlap per pair, summed per band: the reference intersection areas (SOURCES.md)
    ref_area = shapely.area(
        shapely.intersection(real.allotments.geometry.values[i], real.flood.geometry.values[j])
    )
    ref = {b: ref_area[bands == b].sum() for b in BANDS}
    assert round(ref["High"]) == 13_084 and round(ref["Medium"]) == 4_495
    sums = result.matches.groupby("prob_4band")["overlap_m2"].sum()
    for b in BANDS:
        assert sums[b] == pytest.approx(ref[b], rel=1e-6)
    # licences and attributions of both inputs travel with the result
    ids = {c["id"]: c for c in result.to_dict()["sources"]}
    assert "ODbL" in ids["allotments"]["licence"]
    assert "Environment Agency" in ids["flood_risk"]["attribution"]


def test_trees_in_flood_zones(demo_store, real):
    result = compare("street_trees", "flood_risk", store=demo_store, by="prob_4band")
    i, j = pairs(real.trees, real.flood)
    bands = real.flood.prob_4band.to_numpy()[j]
    got = dict(zip(result.summary["class"], result.summary["left_features"], strict=True))
    assert got["(any)"] == len(np.unique(i)) == 532  # SOURCES.md
    for b, n in zip(BANDS, [27, 61, 438, 11], strict=True):
        assert got[b] == len(np.unique(i[bands == b])) == n


def test_trees_within_50m_of_watercourses(demo_store, real):
    result = compare(
        "street_trees",
        "watercourses",
        store=demo_store,
        predicate="within-distance",
        distance=50,
    )
    tree = shapely.STRtree(np.asarray(real.watercourses.geometry.values))
    i, j = tree.query(np.asarray(real.trees.geometry.values), predicate="dwithin", distance=50)
    assert result.left_matched == len(np.unique(i)) > 100
    assert len(result.matches) == len(i)
    assert (result.matches["distance_m"] <= 50 + 1e-6).all()
    ref = shapely.distance(real.trees.geometry.values[i], real.watercourses.geometry.values[j])
    assert np.sort(result.matches["distance_m"].to_numpy()) == pytest.approx(np.sort(ref), abs=1e-6)


def test_nearest_watercourse_with_distances(demo_store, real):
    result = compare("allotments", "watercourses", store=demo_store, predicate="nearest", k=2)
    # brute force reference: every allotment against every watercourse
    d = shapely.distance(
        np.asarray(real.allotments.geometry.values)[:, None],
        np.asarray(real.watercourses.geometry.values)[None, :],
    )
    order = np.argsort(d, axis=1)[:, :2]
    m = result.matches.sort_values(["left_fid", "distance_m"])
    assert len(m) == 2 * len(real.allotments)
    got = m["distance_m"].to_numpy().reshape(-1, 2)
    ref = np.take_along_axis(d, order, axis=1)
    assert got == pytest.approx(ref, abs=1e-6)
    # the nearest one, k=1, with a limit that leaves some allotments without a match
    near = compare(
        "allotments", "watercourses", store=demo_store, predicate="nearest", distance=300
    )
    assert near.left_matched == int((d.min(axis=1) <= 300).sum())
    assert (near.matches["distance_m"] <= 300).all()


def test_touching_but_not_overlapping_and_points_on_the_boundary():
    square = shapely.box(-2.30, 53.40, -2.29, 53.41)
    neighbour = shapely.box(-2.29, 53.40, -2.28, 53.41)  # shares the edge x = -2.29
    polys = gpd.GeoDataFrame({"kind": ["a"]}, geometry=[square], crs="EPSG:4326")
    other = gpd.GeoDataFrame({"kind": ["b"]}, geometry=[neighbour], crs="EPSG:4326")
    touch = compare(polys, other)
    assert touch.left_matched == 1  # touching counts as intersecting ...
    assert touch.matches["overlap_m2"].iloc[0] == 0.0  # ... with no area in common
    pts = gpd.GeoDataFrame(
        {"name": ["edge", "inside", "outside"]},
        geometry=[
            shapely.Point(-2.29, 53.405),
            shapely.Point(-2.295, 53.405),
            shapely.Point(-2.2, 53.0),
        ],
        crs="EPSG:4326",
    )
    hit = compare(pts, polys, predicate="intersects")
    assert sorted(hit.matches["name"]) == ["edge", "inside"]
    inside = compare(pts, polys, predicate="within")
    assert list(inside.matches["name"]) == ["inside"]  # on the edge is not within
    holds = compare(polys, pts, predicate="contains")
    assert list(
        holds.matches["name_right"] if "name_right" in holds.matches else holds.matches["name"]
    ) == ["inside"]


def test_layer_in_another_crs_is_reprojected_on_purpose(demo_store, real):
    bng = real.allotments[["name", "geometry"]]  # EPSG:27700, as read from the file
    result = compare(bng, "flood_risk", store=demo_store, by="prob_4band")
    got = dict(zip(result.summary["class"], result.summary["left_features"], strict=True))
    assert got["High"] == 4 and got["(any)"] == 8
    assert any("EPSG:27700" in note and "reprojected" in note for note in result.notes)
    with pytest.raises(InputError):
        compare(bng.set_crs(None, allow_override=True), "flood_risk", store=demo_store)


def test_empty_results_and_reads_only_near_features(demo_store):
    far = gpd.GeoDataFrame(geometry=[shapely.box(-3.5, 50.5, -3.4, 50.6)], crs="EPSG:4326")
    result = compare(far, "flood_risk", store=demo_store, by="prob_4band")
    assert result.left_matched == 0 and len(result.matches) == 0
    assert list(result.summary.columns) == ["class", "left_features", "pairs"]
    assert len(result.summary) == 0
    nothing = compare(far.iloc[:0], "flood_risk", store=demo_store)
    assert nothing.left_total == 0 and len(nothing.matches) == 0


def test_bad_requests_are_refused_in_plain_words(demo_store):
    with pytest.raises(InputError, match="comparison"):
        compare("allotments", "flood_risk", store=demo_store, predicate="overlaps-ish")
    with pytest.raises(InputError, match="metres"):
        compare("allotments", "flood_risk", store=demo_store, predicate="within-distance")
    with pytest.raises(InputError, match="column"):
        compare("allotments", "flood_risk", store=demo_store, by="no_such_column")
    with pytest.raises(LayerNotFound):
        compare("allotments", "nope", store=demo_store)
