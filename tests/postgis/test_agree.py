"""The two stores give the same answers on the same real data: entries, whole reads
(feature ids, attributes, geometries byte for byte), bbox reads and filtered counts."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from landexplorer.catalog import Filter, Query
from landexplorer.catalog.gpkg import GeoPackageStore
from landexplorer.catalog.postgis import PostGISStore
from tests.postgis.conftest import LAYERS

Pair = tuple[GeoPackageStore, PostGISStore]


@pytest.mark.parametrize("layer_id", sorted(LAYERS))
def test_entries_and_whole_reads_agree(pair: Pair, layer_id: str) -> None:
    gpkg, pg = pair
    a, b = gpkg.get(layer_id), pg.get(layer_id)
    for name in ("feature_count", "bbox", "geometry_type", "columns", "licence", "version"):
        assert getattr(a, name) == getattr(b, name), name
    ta, tb = gpkg.read_arrow(layer_id), pg.read_arrow(layer_id)
    assert ta.schema == tb.schema
    assert ta.num_rows == tb.num_rows == a.feature_count
    assert pg.exact_count(layer_id) == a.feature_count
    for name in ta.column_names:
        if name == "geometry":
            continue
        assert ta.column(name).to_pylist() == tb.column(name).to_pylist(), name
    # GDAL's GeoPackage blob and PostGIS's ST_AsBinary both give ISO WKB of the same shapes
    wa = ta.column("geometry").to_pylist()
    wb = tb.column("geometry").to_pylist()
    same = [x == y for x, y in zip(wa, wb, strict=True)]
    if not all(same):
        ga, gb = shapely.from_wkb(wa), shapely.from_wkb(wb)
        assert shapely.equals_exact(ga, gb, tolerance=0).all()


def test_bbox_reads_agree(pair: Pair) -> None:
    gpkg, pg = pair
    rng = np.random.default_rng(2026)
    x0, y0, x1, y1 = gpkg.get("flood").bbox or (0, 0, 0, 0)
    for _ in range(40):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        w, h = rng.uniform(0.001, 0.05, size=2)
        box = (cx - w, cy - h, cx + w, cy + h)
        for layer_id in ("flood", "trees", "rivers", "lsoa2011"):
            q = Query(bbox=box, columns=[])
            fa = gpkg.read_arrow(layer_id, q).column("fid").to_pylist()
            fb = pg.read_arrow(layer_id, q).column("fid").to_pylist()
            assert fa == fb, (layer_id, box)
            assert gpkg.count(layer_id, q) == pg.count(layer_id, q) == len(fa)


def test_bbox_edges_exact(pair: Pair) -> None:
    """A box whose edge runs a hair (1e-7 degrees, 1 cm) inside or outside a tree, or a
    polygon's corner: both stores agree on which features it touches. PostGIS compares
    bounds as rounded float4 boxes, so bounds alone would take features a hair outside."""
    gpkg, pg = pair
    for layer_id in ("trees", "flood"):
        table = gpkg.read_arrow(layer_id, Query(columns=[]))
        geoms = shapely.from_wkb(table.column("geometry").to_pylist()[:40])
        for g in geoms:
            west, south, _, north = g.bounds
            for eps in (1e-7, -1e-7):
                # the feature lies just right of, or just across, the box's east edge
                box = (west - 0.01, south - 0.01, west - eps, north + 0.01)
                q = Query(bbox=box, columns=[])
                fa = gpkg.read_arrow(layer_id, q).column("fid").to_pylist()
                fb = pg.read_arrow(layer_id, q).column("fid").to_pylist()
                assert fa == fb, (layer_id, box)


@pytest.mark.parametrize(
    ("layer_id", "flt"),
    [
        ("flood", Filter("prob_4band", "=", "Medium")),
        ("flood", Filter("prob_4band", "<>", "Medium")),
        ("flood", Filter("prob_4band", "in", ["High", "Low"])),
        ("trees", Filter("species", "like", "Acer%")),
        ("trees", Filter("species", "isnull")),
        ("trees", Filter("treeid", "<", "T01000")),
        ("listed", Filter("listentry", "between", (1067000, 1068000))),
        ("listed", Filter("listentry", ">", "1356000")),  # a number given as text, as from a URL
        ("listed", Filter("listdate", "<", "1970-01-01")),
        ("listed", Filter("amenddate", "isnull")),
        ("listed", Filter("grade", "=", "II*")),
        ("conservation", Filter("site_area_hectares", "notnull")),
    ],
)
def test_filters_agree(pair: Pair, layer_id: str, flt: Filter) -> None:
    gpkg, pg = pair
    if flt.column not in gpkg.get(layer_id).column_names():
        pytest.skip(f"{layer_id} has no column {flt.column}")
    q = Query(filters=[flt], columns=[])
    fa = gpkg.read_arrow(layer_id, q).column("fid").to_pylist()
    fb = pg.read_arrow(layer_id, q).column("fid").to_pylist()
    assert fa == fb
    assert pg.count(layer_id, q) == len(fa)


def test_trees_in_flood_match_sources_md(pair: Pair) -> None:
    """532 of 15,638 trees fall in a RoFRS polygon (SOURCES.md), on both stores."""
    for store in pair:
        flood = shapely.from_wkb(store.read_arrow("flood", Query(columns=[])).column("geometry"))
        union = shapely.union_all(flood)
        wkb = shapely.to_wkb(union)
        inside = store.count("trees", Query(filters=[Filter("geometry", "intersects", wkb)]))
        assert inside == 532


def test_overlay_areas_agree_with_geopandas(pair: Pair, real_data) -> None:  # type: ignore[no-untyped-def]
    """Areas measured from either store agree with each other and with geopandas.overlay in
    EPSG:27700 to 1e-6 relative, and with SOURCES.md (flooded allotment area, High band:
    13,084 m2)."""
    import geopandas as gpd

    from landexplorer.analysis.overlay import overlay_areas

    gpkg, pg = pair
    left = gpd.read_file(real_data / "allotments" / "trafford_allotments.geojson")
    right = gpd.read_file(real_data / "flood_risk_rofrs" / "trafford_rofrs_2018.geojson")
    left, right = left.to_crs(27700), shapely_valid(right.to_crs(27700))
    pieces = gpd.overlay(left[["geometry"]], right[["prob_4band", "geometry"]], how="intersection")
    reference = pieces.assign(area=pieces.area).groupby("prob_4band")["area"].sum().to_dict()
    # dissolve=False sums every pair's overlap, as geopandas.overlay + sum does
    totals = overlay_areas("allotments", "flood", store=pg, by="prob_4band", dissolve=False).totals
    got = dict(zip(totals["class"], totals["area_m2"], strict=True))
    for band, m2 in reference.items():
        assert got[band] == pytest.approx(m2, rel=1e-6), band
    assert got["High"] == pytest.approx(13_084, abs=1.0)
    # and the GeoPackage store's answer (its own fast read path) is the same
    other = overlay_areas("allotments", "flood", store=gpkg, by="prob_4band", dissolve=False)
    for band, m2 in zip(other.totals["class"], other.totals["area_m2"], strict=True):
        assert got[band] == pytest.approx(m2, rel=1e-6), band


def shapely_valid(frame):  # type: ignore[no-untyped-def]
    """The stores repair invalid polygons with make_valid; the reference does the same."""
    return frame.set_geometry(shapely.make_valid(frame.geometry.values))
