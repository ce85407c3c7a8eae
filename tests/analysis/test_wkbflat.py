"""Polygon layers read as flat coordinates straight from WKB: the same geometries as
GEOS parses, the same EPSG:27700 coordinates as projecting those geometries, and the
same overlay areas end to end from the catalogue."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyogrio
import pytest
import shapely
from pyproj import CRS, Transformer
from shapely import MultiPolygon, Point, Polygon

from landexplorer.analysis import metric, overlay_areas, sources
from landexplorer.analysis.wkbflat import flat_polygons

FLOOD = "flood_risk_rofrs/trafford_rofrs_2018.geojson"
HOLED = Polygon(
    [(0, 0), (10, 0), (10, 10), (0, 10)], [[(1, 1), (2, 1), (2, 2)], [(5, 5), (6, 5), (6, 6)]]
)
TRIANGLE = Polygon([(20, 20), (21, 20), (21, 21)])


def _wkb(geoms, **kw) -> pa.Array:
    return pa.array(list(shapely.to_wkb(geoms, **kw)), pa.binary())


def _real_wkb(real_data) -> pa.Array:
    """The RoFRS polygons as MultiPolygons, as the catalogue stores them (the GeoJSON mixes
    Polygons and MultiPolygons, which the flat read leaves to GEOS)."""
    _, table = pyogrio.read_arrow(real_data / FLOOD, columns=[])
    column = table.column(table.schema.names[-1])
    assert flat_polygons(column) is None  # mixed types
    geoms = shapely.from_wkb(column.to_numpy(zero_copy_only=False))
    multi = [g if isinstance(g, MultiPolygon) else MultiPolygon([g]) for g in geoms]
    return _wkb(multi)


def test_real_layer_parses_to_the_same_geometries_as_geos(real_data):
    column = _real_wkb(real_data)
    flat = flat_polygons(column)
    assert flat is not None and len(flat) == 1494  # SOURCES.md: 1,494 RoFRS polygons
    ref = shapely.from_wkb(column.to_numpy(zero_copy_only=False))
    got = flat.geometries()
    assert np.array_equal(shapely.to_wkb(got), shapely.to_wkb(ref))
    assert flat.bounds() == pytest.approx(tuple(shapely.total_bounds(ref)), abs=0)


def test_projected_coordinates_are_exactly_those_of_projecting_the_geometries(real_data):
    column = _real_wkb(real_data)
    flat = flat_polygons(column)
    assert flat is not None
    bng = CRS.from_epsg(27700)
    got = metric.project_flat(flat, bng)
    ref = shapely.from_wkb(column.to_numpy(zero_copy_only=False))
    to_bng = Transformer.from_crs(4326, 27700, always_xy=True)
    want = shapely.transform(ref, lambda xy: np.column_stack(to_bng.transform(xy[:, 0], xy[:, 1])))
    assert np.array_equal(shapely.get_coordinates(got), shapely.get_coordinates(want))
    assert np.array_equal(shapely.area(got), shapely.area(want))
    assert np.array_equal(shapely.to_wkb(got), shapely.to_wkb(metric.project(ref, bng)))


def test_holes_parts_empties_and_slices():
    multi = [MultiPolygon([HOLED, TRIANGLE]), MultiPolygon(), MultiPolygon([TRIANGLE])]
    flat = flat_polygons(_wkb(multi))
    assert flat is not None
    assert [g.wkt for g in flat.geometries()] == [g.wkt for g in multi]
    sliced = flat_polygons(_wkb(multi).slice(1))
    assert sliced is not None
    assert [g.wkt for g in sliced.geometries()] == [g.wkt for g in multi[1:]]
    polys = flat_polygons(_wkb([HOLED, TRIANGLE]))
    assert polys is not None and [g.wkt for g in polys.geometries()] == [HOLED.wkt, TRIANGLE.wkt]
    assert polys.bounds() == (0.0, 0.0, 21.0, 21.0)


@pytest.mark.parametrize(
    "column",
    [
        pytest.param(lambda: _wkb([HOLED, Point(1, 1)]), id="mixed types"),
        pytest.param(lambda: _wkb([Point(1, 1)]), id="points"),
        pytest.param(lambda: _wkb([Polygon([(0, 0, 1), (1, 0, 1), (1, 1, 1)])]), id="3D"),
        pytest.param(lambda: _wkb([HOLED], byte_order=0), id="big-endian"),
        pytest.param(lambda: _wkb([HOLED, Polygon()]), id="empty polygon"),
        pytest.param(lambda: pa.array([shapely.to_wkb(HOLED), None], pa.binary()), id="null"),
        pytest.param(lambda: pa.array([b"\x01\x06\x00"], pa.binary()), id="truncated"),
        pytest.param(lambda: pa.array([], pa.binary()), id="no rows"),
    ],
)
def test_anything_else_is_left_to_geos(column):
    assert flat_polygons(column()) is None


def test_catalogue_overlay_is_the_same_with_flat_coordinates(demo_store, real, monkeypatch):
    """The RoFRS layer (1,494 rows) is below the size where the flat read starts: lower
    the threshold so that it is read flat, and compare with the usual read."""
    args = dict(store=demo_store, by="grade", left_by="prob_4band")
    usual = overlay_areas("flood_risk", "land_grade", **args)
    monkeypatch.setattr(sources, "_FLAT_FROM", 1)
    assert sources.load("flood_risk", demo_store, columns=[]).flat is not None
    flat = overlay_areas("flood_risk", "land_grade", **args)
    a = usual.totals.set_index(["prob_4band", "class"])["area_m2"]
    b = flat.totals.set_index(["prob_4band", "class"])["area_m2"]
    assert a.to_dict() == b.to_dict()  # exactly the same numbers
    assert flat.left_total == usual.left_total
    assert flat.left_total == pytest.approx(real.flood.area.sum(), rel=1e-9)
    ref = gpd.overlay(
        real.flood[["prob_4band", "geometry"]],
        real.grades[["grade", "geometry"]],
        how="intersection",
        keep_geom_type=True,
    )
    ref = ref.assign(a=ref.area).groupby(["prob_4band", "grade"])["a"].sum()
    assert round(ref[("High", "Grade 2")] / 1e6, 3) == 0.317  # SOURCES.md
    for key, value in ref.items():
        assert b[key] == pytest.approx(value, rel=1e-7, abs=1e-3)


def test_flat_features_give_geometries_bounds_and_subsets(demo_store, monkeypatch):
    monkeypatch.setattr(sources, "_FLAT_FROM", 1)
    feats = sources.load("flood_risk", demo_store, columns=["prob_4band"])
    assert feats.flat is not None and feats.kind() == "polygon"
    monkeypatch.setattr(sources, "_FLAT_FROM", 10**9)
    usual = sources.load("flood_risk", demo_store, columns=["prob_4band"])
    assert usual.flat is None
    assert feats.bounds == pytest.approx(usual.bounds, abs=0)
    high = (feats.attrs["prob_4band"] == "High").to_numpy()
    part = feats.subset(high)
    assert len(part) == int(high.sum()) and part.flat is None
    assert np.array_equal(shapely.to_wkb(part.geoms), shapely.to_wkb(usual.geoms[high]))
    assert np.array_equal(shapely.to_wkb(feats.geoms), shapely.to_wkb(usual.geoms))
