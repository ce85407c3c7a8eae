"""overlay_areas() and count_points(): areas, lengths and counts by class, checked
against shapely/geopandas references in EPSG:27700 and SOURCES.md."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from landexplorer.analysis import count_points, overlay_areas
from landexplorer.errors import InputError
from tests.analysis.conftest import pairs

BANDS = ["High", "Medium", "Low", "Very Low"]


def _union_area_by_band(left: gpd.GeoDataFrame, right: gpd.GeoDataFrame, col: str) -> dict:
    """Reference: area of left inside the union of each class of right."""
    out = {}
    for band, group in right.groupby(col):
        zone = shapely.union_all(np.asarray(group.geometry.values))
        out[band] = float(shapely.area(shapely.intersection(left.geometry.values, zone)).sum())
    return out


def test_allotment_area_by_flood_band(demo_store, real):
    result = overlay_areas("allotments", "flood_risk", store=demo_store, by="prob_4band")
    totals = result.totals.set_index("class")
    ref = _union_area_by_band(real.allotments, real.flood, "prob_4band")
    for band in BANDS:
        assert totals.loc[band, "area_m2"] == pytest.approx(ref[band], rel=1e-7)
        assert totals.loc[band, "area_ha"] == pytest.approx(ref[band] / 10_000, rel=1e-7)
    assert result.left_total == pytest.approx(real.allotments.area.sum(), rel=1e-9)
    assert round(result.left_total) == 381_805  # SOURCES.md
    assert totals.loc["High", "share"] == pytest.approx(ref["High"] / result.left_total)
    assert dict(totals["features"]) == {"High": 4, "Medium": 5, "Low": 4, "Very Low": 2}
    assert result.crs == "EPSG:27700" and result.unit == "m2"
    # per feature rows add up to the totals
    per = result.per_feature.groupby("class")["area_m2"].sum()
    assert per.to_dict() == pytest.approx(totals["area_m2"].to_dict())


def test_overlapping_polygons_of_one_class_are_not_counted_twice(demo_store, real):
    """RoFRS has High polygons that overlap each other over allotments: SOURCES.md's
    13,084 m² sums every piece; the dissolved figure counts each m² once."""
    summed = overlay_areas(
        "allotments", "flood_risk", store=demo_store, by="prob_4band", dissolve=False
    ).totals.set_index("class")["area_m2"]
    dissolved = overlay_areas(
        "allotments", "flood_risk", store=demo_store, by="prob_4band"
    ).totals.set_index("class")["area_m2"]
    i, j = pairs(real.allotments, real.flood)
    pieces = shapely.area(
        shapely.intersection(real.allotments.geometry.values[i], real.flood.geometry.values[j])
    )
    bands = real.flood.prob_4band.to_numpy()[j]
    assert round(summed["High"]) == round(pieces[bands == "High"].sum()) == 13_084
    assert round(summed["Medium"]) == 4_495 and round(summed["Low"]) == 28_344
    assert round(summed["Very Low"]) == 4_634
    assert dissolved["High"] < summed["High"]
    ref = _union_area_by_band(real.allotments, real.flood, "prob_4band")
    assert dissolved["High"] == pytest.approx(ref["High"], rel=1e-7)


def test_flood_area_by_land_grade(demo_store, real):
    result = overlay_areas(
        "flood_risk", "land_grade", store=demo_store, by="grade", left_by="prob_4band"
    )
    totals = result.totals.set_index(["prob_4band", "class"])["area_m2"]
    ref = gpd.overlay(
        real.flood[["prob_4band", "geometry"]],
        real.grades[["grade", "geometry"]],
        how="intersection",
        keep_geom_type=True,
    )
    ref = ref.assign(a=ref.area).groupby(["prob_4band", "grade"])["a"].sum()
    assert round(ref[("High", "Grade 2")] / 1e6, 3) == 0.317  # SOURCES.md
    assert totals[("High", "Grade 2")] / 1e6 == pytest.approx(0.317, abs=5e-4)
    for key, value in ref.items():
        assert totals[key] == pytest.approx(value, rel=1e-7, abs=1e-3)
    assert len(totals) == len(ref)


def test_watercourse_length_in_flood_bands(demo_store, real):
    result = overlay_areas("watercourses", "flood_risk", store=demo_store, by="prob_4band")
    assert result.measure == "length" and result.unit == "m"
    ref = {}
    for band, group in real.flood.groupby("prob_4band"):
        zone = shapely.union_all(np.asarray(group.geometry.values))
        ref[band] = shapely.length(
            shapely.intersection(real.watercourses.geometry.values, zone)
        ).sum()
    totals = result.totals.set_index("class")["length_m"]
    for band in BANDS:
        assert totals[band] == pytest.approx(ref[band], rel=1e-6)


def test_points_counted_once_per_class(demo_store, real):
    result = overlay_areas("street_trees", "flood_risk", store=demo_store, by="prob_4band")
    assert result.measure == "count"
    counts = result.totals.set_index("class")["count"]
    assert counts.to_dict() == {"High": 27, "Low": 438, "Medium": 61, "Very Low": 11}


def test_count_points_per_polygon(demo_store, real):
    frame, sources = count_points("flood_risk", "street_trees", store=demo_store)
    i, _ = pairs(real.flood, real.trees)
    ref = np.bincount(i, minlength=len(real.flood))
    assert len(frame) == len(real.flood)
    assert frame["count"].sum() == ref.sum()
    assert (frame["count"] > 0).sum() == (ref > 0).sum()
    assert [s.id for s in sources] == ["flood_risk", "street_trees"]


def test_features_crossing_the_bbox_are_measured_whole(demo_store, real):
    """A bbox that cuts through allotments: those meeting it are read whole, and their
    areas are the full features' areas, not the clipped parts."""
    allot = demo_store.read_frame("allotments")
    target = allot.geometry.iloc[0]
    x0, y0, x1, y1 = target.bounds
    cut = (x0, y0, (x0 + x1) / 2, (y0 + y1) / 2)  # covers only part of the first site
    result = overlay_areas("allotments", "land_grade", store=demo_store, by="grade", bbox=cut)
    assert set(result.per_feature["left_fid"]) >= {int(allot.index[0])}
    ref = real.allotments.geometry.iloc[0].area
    got = result.per_feature[result.per_feature.left_fid == allot.index[0]]["area_m2"].sum()
    assert got == pytest.approx(ref, rel=1e-7)


def test_right_side_must_be_polygons(demo_store):
    with pytest.raises(InputError, match="polygon"):
        overlay_areas("allotments", "street_trees", store=demo_store)


def test_empty_overlay(demo_store):
    far = gpd.GeoDataFrame(geometry=[shapely.box(-3.5, 50.5, -3.4, 50.6)], crs="EPSG:4326")
    result = overlay_areas(far, "flood_risk", store=demo_store, by="prob_4band")
    assert len(result.totals) == 0 and len(result.per_feature) == 0
    assert isinstance(result.totals, pd.DataFrame)
    assert result.left_total > 0
