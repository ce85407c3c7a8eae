"""Analysis work is sized before it runs: request geometries counted on the raw GeoJSON,
pairs, cells and features estimated first, refusals in plain words; ordinary work on the
Trafford demo is unchanged under the default limits (both stores)."""

from __future__ import annotations

import math
import time
import warnings

import pytest
import shapely

from landexplorer import budget
from landexplorer.analysis import area_report, compare, zonal_stats
from landexplorer.analysis.limits import Limits, check_geojson
from landexplorer.analysis.report import area_polygon
from landexplorer.errors import InputError, TimeBudgetExceeded, TooLarge, WorkTooLarge
from landexplorer.settings import Settings

DEFAULTS = Limits.from_settings(Settings())
SQUARE = [[[-2.36, 53.40], [-2.33, 53.40], [-2.33, 53.42], [-2.36, 53.42], [-2.36, 53.40]]]
SQUARES = {"type": "MultiPolygon", "coordinates": [SQUARE] * 5_000}


# ---- request geometries -----------------------------------------------------------------


def test_geojson_is_counted_from_list_lengths():
    size = check_geojson({"type": "Polygon", "coordinates": SQUARE})
    assert (size.vertices, size.parts) == (5, 2)  # one polygon, one ring
    fc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": SQUARE}},
            {"type": "Feature", "geometry": None},
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": SQUARE[0]}},
        ],
    }
    size = check_geojson(fc)
    assert (size.vertices, size.parts) == (10, 3 + 2 + 1)


def test_five_thousand_squares_are_refused_before_anything_is_built():
    t0 = time.perf_counter()
    with pytest.raises(TooLarge) as info:
        check_geojson(SQUARES, DEFAULTS)
    assert time.perf_counter() - t0 < 0.05  # list lengths only
    assert "1,000 pieces" in info.value.public and "command line" in info.value.public
    # as many vertices as the limit allows, and one more
    line = [[-2.3 + i * 1e-6, 53.4] for i in range(DEFAULTS.geojson_vertices or 0)]
    check_geojson({"type": "LineString", "coordinates": line}, DEFAULTS)
    line.append([-2.2, 53.4])
    with pytest.raises(TooLarge, match="points in its outlines"):
        check_geojson({"type": "LineString", "coordinates": line}, DEFAULTS)


@pytest.mark.parametrize(
    ("coordinates", "words"),
    [
        ([[[math.nan, 53.4], [-2.3, 53.4], [-2.3, 53.5], [math.nan, 53.4]]], "not a number"),
        ([[[-2.4, 53.4], [math.inf, 53.4], [-2.3, 53.5], [-2.4, 53.4]]], "not a number"),
        ([[[400.0, 53.4], [401.0, 53.4], [401.0, 53.5], [400.0, 53.4]]], "outside longitude"),
        ([[[53.4, -200.0], [53.5, -200.0], [53.5, -201.0], [53.4, -200.0]]], "outside"),
        ([[["-2.4", 53.4], [-2.3, 53.4], [-2.3, 53.5], ["-2.4", 53.4]]], "not a number"),
        ([[[True, 53.4], [-2.3, 53.4], [-2.3, 53.5], [True, 53.4]]], "not a number"),
        ([[[-2.4], [-2.3, 53.4], [-2.3, 53.5], [-2.4]]], "longitude, latitude"),
        ([[[-2.4, 53.4], [-2.3, 53.4], [-2.4, 53.4]]], "at least four"),
        ([[1, 2, 3, 4]], "longitude, latitude"),
        ([5], "nested lists"),
        ("nope", "not a list"),
    ],
)
def test_bad_coordinates_are_input_errors(coordinates, words):
    with pytest.raises(InputError, match=words) as info:
        check_geojson({"type": "Polygon", "coordinates": coordinates}, DEFAULTS)
    assert not isinstance(info.value, TooLarge)


def test_collections_nested_too_deeply_and_unknown_types():
    deep: dict = {"type": "Polygon", "coordinates": SQUARE}
    for _ in range(10):
        deep = {"type": "GeometryCollection", "geometries": [deep]}
    with pytest.raises(InputError, match="too deeply"):
        check_geojson(deep)
    with pytest.raises(InputError, match="not a GeoJSON type"):
        check_geojson({"type": "Circle", "coordinates": [0, 0]})
    with pytest.raises(InputError, match="not a Feature"):
        check_geojson({"type": "FeatureCollection", "features": [{"type": "Polygon"}]})


def test_the_area_is_unioned_once():
    """5,000 identical squares (allowed here) are one square, built in well under a
    second (repairing them as one multipolygon grew a server to 6.8 GB)."""
    t0 = time.perf_counter()
    geom, notes = area_polygon(SQUARES, limits=Limits(geojson_parts=20_000))
    assert time.perf_counter() - t0 < 5
    assert geom.geom_type == "Polygon"
    assert geom.equals(shapely.Polygon(SQUARE[0]))
    assert notes == []  # each square is valid on its own: nothing was repaired


def test_shapes_given_directly_are_checked_too():
    with warnings.catch_warnings():  # shapely warns about building it: that is the point
        warnings.simplefilter("ignore", RuntimeWarning)
        with_nan = shapely.Polygon([(0, 0), (1, 0), (math.nan, 1), (0, 0)])
    with pytest.raises(InputError, match="not a number"):
        area_polygon(with_nan)
    many = shapely.MultiPolygon(
        [shapely.box(i * 1e-3, 0, i * 1e-3 + 5e-4, 1e-3) for i in range(600)]
    )
    area_polygon(many)  # no limits: fine
    with pytest.raises(TooLarge):
        area_polygon(many, limits=DEFAULTS)


# ---- comparisons ----------------------------------------------------------------------------


def test_self_compare_within_100_km_is_refused_fast(demo_store):
    pushed = dict(getattr(demo_store, "pushdowns", {}))
    t0 = time.perf_counter()
    with pytest.raises(WorkTooLarge) as info:
        compare(
            "street_trees", "street_trees", store=demo_store, predicate="within-distance",
            distance=100_000, limits=DEFAULTS,
        )  # fmt: skip
    assert time.perf_counter() - t0 < 10
    words = info.value.public
    assert "street_trees" in words and "2,000,000" in words
    assert "smaller distance" in words and "bbox" in words
    assert "landexplorer compare street_trees street_trees --predicate within-distance" in words
    # 15,638 trees, each within 100 km of every other: about 244.5 million pairs
    estimate = float(words.split("about ")[1].split(" pairs")[0].replace(",", ""))
    assert 1e8 < estimate <= 15_638**2 * 1.01
    # on PostGIS the join was never run
    assert dict(getattr(demo_store, "pushdowns", {})) == pushed


@pytest.mark.parametrize(
    "args",
    [
        {"left": "street_trees", "right": "watercourses", "predicate": "within-distance",
         "distance": 50},
        {"left": "street_trees", "right": "flood_risk", "predicate": "intersects",
         "by": "prob_4band"},
        {"left": "allotments", "right": "flood_risk", "predicate": "intersects"},
        {"left": "greenspace", "right": "woodland", "predicate": "within-distance",
         "distance": 100},
        {"left": "allotments", "right": "street_trees", "predicate": "nearest", "k": 3},
        {"left": "flood_risk", "right": "land_grade", "predicate": "within"},
    ],
)  # fmt: skip
def test_ordinary_comparisons_are_the_same_under_the_limits(demo_store, args):
    args = dict(args)  # the same dict serves both stores
    left, right = args.pop("left"), args.pop("right")
    free = compare(left, right, store=demo_store, **args)
    limited = compare(left, right, store=demo_store, limits=DEFAULTS, **args)
    assert len(limited.matches) == len(free.matches)
    assert limited.matches.drop(columns="geometry").equals(free.matches.drop(columns="geometry"))
    assert limited.summary.equals(free.summary)


def test_pairs_just_over_a_small_limit(demo_store):
    """A limit below what a comparison really produces is refused; the estimate is close
    to the real count (street_trees x flood_risk intersects: 537 pairs)."""
    real = len(compare("street_trees", "flood_risk", store=demo_store).matches)
    with pytest.raises(WorkTooLarge) as info:
        compare("street_trees", "flood_risk", store=demo_store, limits=Limits(compare_pairs=100))
    estimate = float(info.value.public.split("about ")[1].split(" pairs")[0].replace(",", ""))
    assert real / 4 < estimate < real * 4
    ok = compare("street_trees", "flood_risk", store=demo_store, limits=Limits(compare_pairs=real))
    assert len(ok.matches) == real


def test_nearest_is_bounded_by_k(demo_store):
    with pytest.raises(WorkTooLarge, match="smaller k"):
        compare(
            "street_trees", "allotments", store=demo_store, predicate="nearest", k=10,
            limits=Limits(compare_pairs=100_000),
        )  # fmt: skip


def test_comparisons_stop_at_the_time_budget(demo_store):
    with budget.limit(0.0), pytest.raises(TimeBudgetExceeded):
        compare("street_trees", "flood_risk", store=demo_store, limits=DEFAULTS)


# ---- zonal statistics and reports -------------------------------------------------------


def test_zonal_cells_are_counted_from_bounds(demo_store):
    free = zonal_stats("allotments", "elevation", store=demo_store)
    limited = zonal_stats("allotments", "elevation", store=demo_store, limits=DEFAULTS)
    assert limited.stats.equals(free.stats)
    with pytest.raises(WorkTooLarge) as info:
        zonal_stats("allotments", "elevation", store=demo_store, limits=Limits(zonal_cells=1_000))
    assert "raster cells" in info.value.public and "landexplorer zonal allotments" in (
        info.value.public
    )
    with budget.limit(0.0), pytest.raises(TimeBudgetExceeded):
        zonal_stats("allotments", "elevation", store=demo_store, limits=DEFAULTS)


def test_report_features_are_counted_before_reading(demo_store):
    area = {"type": "Polygon", "coordinates": SQUARE}
    layers = ["flood_risk", "street_trees", "elevation"]
    free = area_report(demo_store, area, layers=layers)
    limited = area_report(demo_store, area, layers=layers, limits=DEFAULTS)
    assert limited.to_dict() == free.to_dict()
    # the whole borough: all 15,638 trees (and flood polygons) would be measured
    borough = shapely.geometry.mapping(shapely.box(-2.48, 53.35, -2.25, 53.49))
    with pytest.raises(WorkTooLarge) as info:
        area_report(demo_store, borough, layers=layers, limits=Limits(report_features=5_000))
    words = info.value.public
    assert "street_trees 15,638" in words and "smaller area" in words and "fewer layers" in words
    # a small area holds fewer trees than the limit: counted through the index, accepted
    small = area_report(demo_store, area, layers=layers, limits=Limits(report_features=5_000))
    assert small.to_dict() == free.to_dict()
    # the raster part is sized too
    with pytest.raises(WorkTooLarge, match="raster cells"):
        area_report(demo_store, borough, layers=["elevation"], limits=Limits(zonal_cells=1_000))
    with budget.limit(0.0), pytest.raises(TimeBudgetExceeded):
        area_report(demo_store, area, layers=layers, limits=DEFAULTS)
