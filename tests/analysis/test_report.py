"""The area report for a ward boundary, checked layer by layer against shapely/pyproj
references in EPSG:27700 and exactextract; invalid and unusable areas."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from exactextract import exact_extract

from landexplorer.analysis import area_report
from landexplorer.errors import InputError


@pytest.fixture(scope="module")
def ward(real_data):
    data = json.loads((real_data / "boundaries/trafford_ward_full_resolution.geojson").read_text())
    feature = data["features"][0]
    return feature


def test_report_for_a_ward(demo_store, real, ward):
    report = area_report(demo_store, ward)
    name = ward["properties"]["area_name"]
    ref_ward = real.wards[real.wards.area_name == name].geometry.iloc[0]
    assert report.crs == "EPSG:27700"
    assert report.area_m2 == pytest.approx(ref_ward.area, rel=1e-9)
    layers = {layer.layer: layer for layer in report.layers}
    assert "elevation" in layers and "flood_risk" in layers  # every public layer
    # polygons: area by flood band, each band dissolved first
    flood = layers["flood_risk"]
    assert flood.by == "prob_4band" and flood.unit == "m2"
    for c in flood.classes:
        group = real.flood[real.flood.prob_4band == c["class"]]
        zone = shapely.union_all(np.asarray(group.geometry.values))
        ref = shapely.intersection(ref_ward, zone).area
        assert c["area_m2"] == pytest.approx(ref, rel=1e-6)
        assert c["share"] == pytest.approx(ref / ref_ward.area, rel=1e-6)
    ref_any = shapely.intersection(
        ref_ward, shapely.union_all(np.asarray(real.flood.geometry.values))
    )
    assert flood.amount == pytest.approx(ref_any.area, rel=1e-6)
    # points: trees inside the ward (on the edge counts)
    trees = layers["street_trees"]
    assert trees.count == int(shapely.intersects(ref_ward, real.trees.geometry.values).sum())
    # lines: length of watercourses inside
    water = layers["watercourses"]
    ref_len = shapely.length(shapely.intersection(real.watercourses.geometry.values, ref_ward))
    assert water.amount == pytest.approx(ref_len.sum(), rel=1e-6)
    # raster: coverage-weighted statistics, as exactextract gives them
    ee = exact_extract(
        str(real.dem),
        real.wards[real.wards.area_name == name],
        ["mean", "min", "max", "count"],
        output="pandas",
    )
    elev = layers["elevation"]
    assert elev.stats["mean"] == pytest.approx(float(ee["mean"].iloc[0]), rel=1e-6)
    assert elev.stats["count"] == pytest.approx(float(ee["count"].iloc[0]), rel=1e-6)
    # the ward's neighbours touch it but hold none of it: only the ward itself counts
    assert layers["wards"].count == 1
    assert layers["wards"].share == pytest.approx(1.0)
    # licences and attributions of each layer
    assert "Environment Agency" in flood.attribution and flood.licence == "OGL-UK-3.0"
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["layers"][0]["licence"]


def test_report_on_chosen_layers_and_columns(demo_store, ward):
    report = area_report(
        demo_store, ward, layers=["greenspace", "street_trees"], by={"street_trees": "species"}
    )
    assert [layer.layer for layer in report.layers] == ["greenspace", "street_trees"]
    trees = report.layers[1]
    assert trees.by == "species"
    assert sum(c["count"] for c in trees.classes) == trees.count


def test_invalid_area_is_repaired_and_says_so(demo_store):
    # a bow tie: the outline crosses itself
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[-2.36, 53.40], [-2.34, 53.42], [-2.34, 53.40], [-2.36, 53.42], [-2.36, 53.40]]
        ],
    }
    report = area_report(demo_store, bowtie, layers=["street_trees"])
    assert any("invalid" in note and "repaired" in note for note in report.notes)
    assert report.area_m2 > 0


@pytest.mark.parametrize(
    "area",
    [
        {"type": "LineString", "coordinates": [[-2.36, 53.40], [-2.34, 53.42]]},
        {"type": "Point", "coordinates": [-2.36, 53.40]},
        {"type": "Polygon", "coordinates": [[[-2.36, 53.40], [-2.34, 53.40], [-2.36, 53.40]]]},
        "not an area",
    ],
)
def test_unusable_areas_are_refused(demo_store, area):
    with pytest.raises(InputError):
        area_report(demo_store, area)


def test_area_with_nothing_in_it(demo_store):
    sea = {
        "type": "Polygon",
        "coordinates": [[[-4.0, 53.6], [-3.99, 53.6], [-3.99, 53.61], [-4.0, 53.61], [-4.0, 53.6]]],
    }
    report = area_report(demo_store, sea, layers=["flood_risk", "street_trees", "elevation"])
    flood, trees, elev = report.layers
    assert flood.count == 0 and flood.amount == 0
    assert trees.count == 0
    assert elev.count == 0
