"""Zonal statistics and point sampling on the real OS Terrain 50 DEM, checked against a
masked rasterio read (cell centres), exactextract (coverage-weighted) and SOURCES.md."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.mask
import shapely
from exactextract import exact_extract
from rasterio.transform import from_origin

from landexplorer.analysis import sample_points, zonal_stats
from landexplorer.errors import InputError


def test_mean_elevation_under_allotments_matches_a_masked_read(demo_store, real):
    result = zonal_stats(
        "allotments",
        "elevation",
        store=demo_store,
        method="centre",
        stats=["count", "mean", "min", "max"],
    )
    assert result.crs == "EPSG:27700" and result.method == "centre"
    with rasterio.open(real.dem) as src:
        for geom, (_, row) in zip(real.allotments.geometry, result.stats.iterrows(), strict=True):
            arr, _ = rasterio.mask.mask(src, [geom], crop=True, filled=False)
            if arr.count() == 0:
                assert row["count"] == 0 and np.isnan(row["mean"])
                continue
            assert row["count"] == arr.count()
            assert row["mean"] == pytest.approx(float(arr.mean()), rel=1e-6)
            assert row["min"] == pytest.approx(float(arr.min()))
            assert row["max"] == pytest.approx(float(arr.max()))
    # small sites fall between cell centres: the centre method leaves some without a value
    assert result.stats["mean"].isna().sum() == 5  # as rasterstats (peers' table)


def test_coverage_weighted_default_agrees_with_exactextract(demo_store, real):
    result = zonal_stats(
        "allotments",
        "elevation",
        store=demo_store,
        stats=["count", "mean", "min", "max", "std", "sum"],
    )
    assert result.method == "coverage"
    ref = exact_extract(
        str(real.dem),
        real.allotments,
        ["count", "mean", "min", "max", "stdev", "sum"],
        output="pandas",
    )
    assert result.stats["mean"].isna().sum() == 0  # every site gets a value
    for ours, theirs in (
        ("count", "count"),
        ("mean", "mean"),
        ("min", "min"),
        ("max", "max"),
        ("std", "stdev"),
        ("sum", "sum"),
    ):
        assert result.stats[ours].to_numpy() == pytest.approx(
            ref[theirs].to_numpy(), rel=1e-6, abs=1e-6
        )
    flood = zonal_stats("flood_risk", "elevation", store=demo_store, stats=["count", "mean"])
    ref = exact_extract(str(real.dem), real.flood, ["count", "mean"], output="pandas")
    assert flood.stats["mean"].to_numpy() == pytest.approx(ref["mean"].to_numpy(), abs=1e-5)
    assert flood.stats["count"].to_numpy() == pytest.approx(ref["count"].to_numpy(), abs=1e-5)


def test_mean_elevation_by_flood_band_and_for_the_borough(demo_store):
    bands = zonal_stats(
        "flood_risk", "elevation", store=demo_store, by="prob_4band", method="centre"
    ).stats.set_index("prob_4band")["mean"]
    # SOURCES.md: High 17.5 m, Medium 19.0, Low 20.3, Very Low 24.2 (means of 50 m cells)
    assert bands.round(1).to_dict() == {"High": 17.5, "Medium": 19.0, "Low": 20.3, "Very Low": 24.2}
    whole = zonal_stats("borough", "elevation", store=demo_store, method="centre")
    assert round(float(whole.stats["mean"].iloc[0]), 1) == 26.8


def _small_raster(tmp_path, data, nodata):
    path = tmp_path / "small.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs="EPSG:27700",
        nodata=nodata,
        transform=from_origin(380_000, 390_000, 10, 10),
    ) as dst:
        dst.write(data, 1)
    return path


def test_nodata_is_left_out_and_polygons_outside_get_no_value(tmp_path):
    data = np.arange(16, dtype="float32").reshape(4, 4)
    data[0, 0] = -9999
    path = _small_raster(tmp_path, data, -9999)
    zones = gpd.GeoDataFrame(
        {"name": ["top-left 2x2", "outside"]},
        geometry=[
            shapely.box(380_000, 389_980, 380_020, 390_000),
            shapely.box(300_000, 300_000, 300_010, 300_010),
        ],
        crs="EPSG:27700",
    )
    result = zonal_stats(zones, path, stats=["count", "mean", "min", "max", "majority"])
    first, outside = result.stats.iloc[0], result.stats.iloc[1]
    # cells 1, 4, 5 are valid (0 is nodata)
    assert first["count"] == pytest.approx(3.0, abs=1e-6)
    assert first["mean"] == pytest.approx((1 + 4 + 5) / 3, abs=1e-6)
    assert first["min"] == 1 and first["max"] == 5
    assert outside["count"] == 0 and np.isnan(outside["mean"])
    assert any("reprojected" in n for n in result.notes)  # 27700 -> storage CRS on purpose


def test_half_covered_cells_weigh_half(tmp_path):
    data = np.array([[10, 20], [30, 40]], dtype="float32")
    path = _small_raster(tmp_path, data, None)
    # covers the whole of cell 10 and half of cell 20
    zone = gpd.GeoDataFrame(
        geometry=[shapely.box(380_000, 389_990, 380_015, 390_000)], crs="EPSG:27700"
    )
    row = zonal_stats(zone, path, stats=["count", "mean", "median", "p90", "majority"]).stats
    assert row["count"].iloc[0] == pytest.approx(1.5)
    assert row["mean"].iloc[0] == pytest.approx((10 * 1 + 20 * 0.5) / 1.5)
    assert row["median"].iloc[0] == 10 and row["p90"].iloc[0] == 20
    assert row["majority"].iloc[0] == 10
    centre = zonal_stats(zone, path, method="centre", stats=["count", "mean"]).stats
    assert centre["count"].iloc[0] == 1 and centre["mean"].iloc[0] == 10


def test_sample_points_matches_rasterio(demo_store, real):
    result = sample_points("street_trees", "elevation", store=demo_store)
    trees = real.trees.iloc[:500]
    with rasterio.open(real.dem) as src:
        xy = zip(trees.geometry.x, trees.geometry.y, strict=True)
        ref = np.array([v[0] for v in src.sample(xy)])
    assert result.stats["value"].to_numpy()[:500] == pytest.approx(ref.astype(float), abs=1e-6)


def test_bad_requests(demo_store):
    with pytest.raises(InputError, match="statistic"):
        zonal_stats("allotments", "elevation", store=demo_store, stats=["mode-ish"])
    with pytest.raises(InputError, match="points"):
        zonal_stats("street_trees", "elevation", store=demo_store)
    with pytest.raises(InputError, match="raster"):
        zonal_stats("allotments", "no_such_raster", store=demo_store)


def test_edges_on_cell_boundaries_do_not_leak_into_other_polygons(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.uniform(0, 100, size=(20, 20)).astype("float32")
    path = _small_raster(tmp_path, data, None)
    # boxes whose edges lie exactly on cell lines, mixed with ones that cut cells
    shapes = [
        shapely.box(380_020, 389_900, 380_060, 389_960),
        shapely.box(380_005, 389_905, 380_033, 389_977),
        shapely.box(380_100, 389_800, 380_150, 389_850),
        shapely.Polygon([(380_000, 390_000), (380_040, 390_000), (380_020, 389_970)]),
    ]
    zones = gpd.GeoDataFrame(geometry=shapes, crs="EPSG:27700")
    got = zonal_stats(zones, path, stats=["count", "mean"]).stats
    ref = exact_extract(str(path), zones, ["count", "mean"], output="pandas")
    assert got["count"].to_numpy() == pytest.approx(ref["count"].to_numpy(), abs=1e-6)
    assert got["mean"].to_numpy() == pytest.approx(ref["mean"].to_numpy(), abs=1e-6)
