"""Every reader on the real Trafford files: counts, bbox, attribute values and CRS checked
against the source files (read independently with pyogrio/rasterio) and SOURCES.md."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely

from landexplorer.catalog import Query, Store
from landexplorer.errors import CRSError
from landexplorer.layers.ingest import IngestOptions, ingest


def _one(store: Store, path: Path, **options: object):
    entries = ingest(store, path, IngestOptions(**options))  # type: ignore[arg-type]
    assert len(entries) == 1
    return entries[0]


def _source_bounds(path: str | Path) -> np.ndarray:
    _, geometry = pyogrio.read_dataframe(path, read_geometry=True).pipe(
        lambda df: (None, df.to_crs(4326).geometry)
    )
    return np.asarray(geometry.total_bounds)


def test_geojson_mixed_polygons_flood(store: Store, real_data: Path) -> None:
    path = real_data / "flood_risk_rofrs" / "trafford_rofrs_2018.geojson"
    entry = _one(store, path, licence="OGL-UK-3.0", attribution="© Environment Agency")
    assert entry.feature_count == 1494
    assert entry.geometry_type == "MultiPolygon"
    assert entry.source_crs == "EPSG:4326"
    np.testing.assert_allclose(entry.bbox, _source_bounds(path), atol=1e-9)
    # SOURCES.md: bbox -2.47845, 53.35741, -2.25369, 53.48035
    np.testing.assert_allclose(entry.bbox, (-2.47845, 53.35741, -2.25369, 53.48035), atol=1e-5)
    frame = store.read_frame(entry.id)
    assert Counter(frame["prob_4band"]) == {"High": 302, "Medium": 741, "Low": 377, "Very Low": 74}
    assert shapely.is_valid(frame.geometry.values).all()
    assert entry.licence == "OGL-UK-3.0" and entry.visibility == "public"


def test_shapefile_zip_in_bng_matches_geojson(store: Store, real_data: Path) -> None:
    zipped = real_data / "flood_risk_rofrs" / "trafford_rofrs_2018_bng_shapefile.zip"
    entry = _one(store, zipped, id="flood_bng")
    assert entry.feature_count == 1494
    assert entry.source_crs == "EPSG:27700"
    reference = _one(store, real_data / "flood_risk_rofrs" / "trafford_rofrs_2018.geojson")
    # Reprojected back from BNG, the outline lands within a few centimetres of the original.
    np.testing.assert_allclose(entry.bbox, reference.bbox, atol=2e-6)
    a = store.read_frame(entry.id).sort_values("st_area_sh")
    b = store.read_frame(reference.id).sort_values("st_area_sh")
    assert list(a["prob_4band"]) == list(b["prob_4band"])
    areas_a = a.to_crs(27700).area.to_numpy()
    areas_b = b.to_crs(27700).area.to_numpy()
    np.testing.assert_allclose(areas_a, areas_b, rtol=1e-4, atol=0.01)
    assert a["pub_date"].iloc[0] == b["pub_date"].iloc[0] or isinstance(a["pub_date"].iloc[0], str)


def test_kml_allotments(store: Store, real_data: Path) -> None:
    entry = _one(store, real_data / "allotments" / "trafford_allotments.kml")
    assert entry.feature_count == 35
    assert entry.geometry_type == "MultiPolygon"
    names = set(store.read_frame(entry.id)["name"])
    source = pyogrio.read_dataframe(real_data / "allotments" / "trafford_allotments.geojson")
    assert names == set(source["name"])


def test_csv_lon_lat_trees(store: Store, real_data: Path) -> None:
    path = real_data / "highways_trees" / "trafford_highways_trees.csv"
    entry = _one(store, path, batch_size=4096)  # several batches
    assert entry.feature_count == 15638
    assert entry.geometry_type == "Point"
    assert any("longitude and latitude" in line for line in entry.report.assumed)
    assert entry.report.renamed_columns == {"treeID": "treeid"}
    geojson = real_data / "highways_trees" / "trafford_highways_trees.geojson"
    np.testing.assert_allclose(entry.bbox, _source_bounds(geojson), atol=1e-9)
    frame = store.read_frame(entry.id)
    assert "vandalised" in set(frame["species"])
    first_line = path.read_text().splitlines()[1].split(",")
    row = frame.iloc[0]
    assert str(row["treeid"]) == first_line[0]
    assert row.geometry.x == pytest.approx(float(first_line[-2]))
    assert row.geometry.y == pytest.approx(float(first_line[-1]))


def test_csv_easting_northing_needs_crs_then_matches_geojson(store: Store, real_data: Path) -> None:
    path = real_data / "listed_buildings" / "trafford_listed_buildings.csv"
    with pytest.raises(CRSError, match="--crs EPSG:27700"):
        ingest(store, path)
    assert store.list_layers() == []
    entry = _one(store, path, crs="EPSG:27700")
    assert entry.source_crs == "EPSG:27700"
    assert entry.feature_count == 265
    frame = store.read_frame(entry.id)
    reference = pyogrio.read_dataframe(
        real_data / "listed_buildings" / "trafford_listed_buildings.geojson"
    )
    # Same records at the same places, matched by list entry number. The published GeoJSON
    # was converted from the same eastings/northings with another datum shift, so points
    # differ by about 1.4 m typically (up to about 12 m for a few).
    ours = frame.set_index("listentry").sort_index()
    theirs = reference.set_index("ListEntry").sort_index()
    assert list(ours.index) == list(theirs.index)
    gap = ours.to_crs(27700).distance(theirs.to_crs(27700), align=True)
    assert float(gap.median()) < 2.0
    assert float(gap.max()) < 15.0
    assert "Gatepiers And Walls To Timperley Lodge" in set(frame["name"])


def test_geopackage_in_bng(store: Store, real_data: Path) -> None:
    path = (
        real_data
        / "agricultural_land_classification"
        / "gm_agricultural_land_classification_bng.gpkg"
    )
    entry = _one(store, path, id="alc_gm")
    assert entry.feature_count == 162
    assert entry.source_crs == "EPSG:27700"
    geojson = (
        real_data
        / "agricultural_land_classification"
        / "gm_agricultural_land_classification.geojson"
    )
    np.testing.assert_allclose(entry.bbox, _source_bounds(geojson), atol=1e-5)
    grades = Counter(store.read_frame(entry.id)["grade"])
    reference = Counter(pyogrio.read_dataframe(geojson)["grade"])
    assert grades == reference


def test_awkward_aqma_geometrycollection_and_invalid(store: Store, real_data: Path) -> None:
    entry = _one(store, real_data / "air_quality_aqma" / "trafford_aqma.geojson")
    assert entry.feature_count == 3
    assert entry.geometry_type == "MultiPolygon"
    assert entry.report.repaired == 3
    assert entry.report.dropped_parts == 2  # the two stray LineStrings
    frame = store.read_frame(entry.id)
    assert shapely.is_valid(frame.geometry.values).all()
    assert set(shapely.get_type_id(frame.geometry.values)) == {6}
    # Repair keeps the area: compare with the source's area in BNG.
    source = pyogrio.read_dataframe(real_data / "air_quality_aqma" / "trafford_aqma.geojson")
    src_area = shapely.area(shapely.make_valid(source.to_crs(27700).geometry.values)).sum()
    assert frame.to_crs(27700).area.sum() == pytest.approx(src_area, rel=0.01)


def test_invalid_lsoa_boundaries_repaired(store: Store, real_data: Path) -> None:
    entry = _one(store, real_data / "boundaries" / "trafford_lsoa_2011_generalised.geojson")
    assert entry.feature_count == 138
    assert entry.report.repaired == 2
    frame = store.read_frame(entry.id)
    assert shapely.is_valid(frame.geometry.values).all()
    assert {"Trafford 021C", "Trafford 023D"} <= set(frame["area_name"])


def test_lines_promoted_to_multilinestring(store: Store, real_data: Path) -> None:
    entry = _one(store, real_data / "watercourses" / "trafford_watercourses.geojson")
    assert entry.feature_count == 78
    assert entry.geometry_type == "MultiLineString"
    source = pyogrio.read_dataframe(real_data / "watercourses" / "trafford_watercourses.geojson")
    frame = store.read_frame(entry.id)
    assert frame.to_crs(27700).length.sum() == pytest.approx(source.to_crs(27700).length.sum())


def test_bbox_query_is_exact_not_envelope(store: Store, real_data: Path) -> None:
    entry = _one(store, real_data / "flood_risk_rofrs" / "trafford_rofrs_2018.geojson")
    box = (-2.40, 53.40, -2.35, 53.43)
    frame = store.read_frame(entry.id, Query(bbox=box))
    source = pyogrio.read_dataframe(real_data / "flood_risk_rofrs" / "trafford_rofrs_2018.geojson")
    expected = int(shapely.intersects(source.geometry.values, shapely.box(*box)).sum())
    assert len(frame) == expected == store.count(entry.id, Query(bbox=box))
    page = store.read_arrow(entry.id, Query(bbox=box, limit=10, offset=5))
    assert page.num_rows == 10
    assert page.column("fid").to_pylist() == sorted(frame.index)[5:15]


def test_flatgeobuf_and_geoparquet(store: Store, real_data: Path, tmp_path: Path) -> None:
    source = pyogrio.read_dataframe(
        real_data / "designations" / "trafford_conservation_areas.geojson"
    )
    fgb = tmp_path / "conservation.fgb"
    pyogrio.write_dataframe(source.to_crs(27700), fgb, driver="FlatGeobuf")
    parquet = tmp_path / "conservation.parquet"
    source.to_parquet(parquet)
    a = _one(store, fgb, id="cons_fgb")
    b = _one(store, parquet, id="cons_parquet")
    assert a.feature_count == b.feature_count == 21
    assert a.source_crs == "EPSG:27700" and b.source_crs in ("EPSG:4326", "OGC:CRS84", "WGS 84")
    fa = store.read_frame("cons_fgb").sort_values("site_name")
    fb = store.read_frame("cons_parquet").sort_values("site_name")
    assert list(fa["site_name"]) == sorted(source["site_name"])
    # numbers stored as space-padded strings stay strings, unchanged
    assert list(fb["site_area_hectares"]) == list(
        source.sort_values("site_name")["site_area_hectares"]
    )
    np.testing.assert_allclose(a.bbox, b.bbox, atol=1e-6)


def test_csv_with_wkt_column(store: Store, real_data: Path, tmp_path: Path) -> None:
    source = pyogrio.read_dataframe(
        real_data / "designations" / "trafford_sites_of_special_scientific_interest.geojson"
    )
    path = tmp_path / "sssi.csv"
    path.write_text(
        "name,wkt\n"
        + "".join(
            f'"{n}","{g.wkt}"\n' for n, g in zip(source["site_name"], source.geometry, strict=True)
        )
    )
    entry = _one(store, path)
    assert entry.feature_count == 2
    assert any("longitudes and latitudes" in line for line in entry.report.assumed)
    frame = store.read_frame(entry.id)
    assert frame.to_crs(27700).area.sum() == pytest.approx(source.to_crs(27700).area.sum())


def test_geopackage_all_layers_or_one(store: Store, real_data: Path, tmp_path: Path) -> None:
    gpkg = tmp_path / "two.gpkg"
    sssi = pyogrio.read_dataframe(
        real_data / "designations" / "trafford_sites_of_special_scientific_interest.geojson"
    )
    lnr = pyogrio.read_dataframe(
        real_data / "designations" / "trafford_local_nature_reserves.geojson"
    )
    pyogrio.write_dataframe(sssi, gpkg, layer="sssi")
    pyogrio.write_dataframe(lnr, gpkg, layer="lnr", append=False)
    entries = ingest(store, gpkg, IngestOptions(id="sites"))
    assert sorted(e.id for e in entries) == ["sites_lnr", "sites_sssi"]
    one = ingest(store, gpkg, IngestOptions(id="just_lnr", layer="lnr"))
    assert [e.feature_count for e in one] == [2]


def test_raster_geotiff_to_cog(store: Store, real_data: Path) -> None:
    import rasterio

    path = real_data / "dem_os_terrain50" / "trafford_os_terrain50_dtm_50m_bng.tif"
    entry = _one(store, path, id="dem")
    assert entry.data_type == "raster"
    assert entry.raster["width"] == 350 and entry.raster["height"] == 320
    assert entry.raster["crs"] == "EPSG:27700"
    assert entry.raster["stats"]["min"] == pytest.approx(6.5, abs=0.01)
    assert entry.raster["stats"]["max"] == pytest.approx(86.0, abs=0.01)
    cog = store.raster_path(entry)
    with rasterio.open(cog) as dst, rasterio.open(path) as src:
        assert dst.profile["tiled"] and dst.overviews(1)
        assert dst.transform == src.transform
        np.testing.assert_array_equal(dst.read(1), src.read(1))


def test_ascii_grid_zip_and_mosaic(store: Store, real_data: Path) -> None:
    import rasterio

    dem = real_data / "dem_os_terrain50"
    one = _one(store, dem / "sj79.zip", id="sj79")
    assert (one.raster["width"], one.raster["height"]) == (200, 200)
    assert one.raster["crs"] == "EPSG:27700"  # from the ESRI .prj without a datum shift
    tiles = sorted(dem.glob("sj*.zip"))
    entries = ingest(store, tiles, IngestOptions(id="terrain"))
    mosaic = entries[0]
    assert (mosaic.raster["width"], mosaic.raster["height"]) == (600, 400)
    with (
        rasterio.open(store.raster_path(mosaic)) as m,
        rasterio.open(dem / "trafford_os_terrain50_dtm_50m_bng.tif") as ref,
    ):
        assert m.bounds == (360000.0, 380000.0, 390000.0, 400000.0)
        # the published mosaic is a clip of the same tiles: identical cells
        window = m.window(*ref.bounds)
        np.testing.assert_array_equal(m.read(1, window=window), ref.read(1))
