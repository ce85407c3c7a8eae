"""Work pushed into PostGIS gives the answers of the Python path on the GeoPackage store:
points counted per polygon in one SQL join, and vector tiles cut by ST_AsMVT."""

from __future__ import annotations

import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
import shapely

from landexplorer.analysis.counts import count_points
from landexplorer.catalog import Query
from landexplorer.catalog.gpkg import GeoPackageStore
from landexplorer.catalog.postgis import PostGISStore
from landexplorer.errors import InputError
from landexplorer.tiles.vector import TileOptions, render_vector_tile

Pair = tuple[GeoPackageStore, PostGISStore]
TMS = morecantile.tms.get("WebMercatorQuad")


def test_count_points_pushed_down_agrees(pair: Pair) -> None:
    gpkg, pg = pair
    assert gpkg.sql() is None and pg.sql() is not None  # Python path there, SQL here
    python, sources = count_points("flood", "trees", store=gpkg)
    pushed, pushed_sources = count_points("flood", "trees", store=pg)
    assert pushed.columns.tolist() == ["fid", "count"]
    assert pushed["fid"].tolist() == python["fid"].tolist() == list(range(1, 1495))
    assert pushed["count"].tolist() == python["count"].tolist()
    assert [s.id for s in pushed_sources] == [s.id for s in sources] == ["flood", "trees"]
    # 532 trees fall in a RoFRS polygon (SOURCES.md); polygons of different bands may
    # overlap, so the per-polygon sum is at least that
    assert pushed["count"].sum() >= 532
    box = (-2.36, 53.40, -2.30, 53.44)
    a, _ = count_points("flood", "trees", store=gpkg, bbox=box)
    b, _ = count_points("flood", "trees", store=pg, bbox=box)
    a = a.sort_values("fid", ignore_index=True)  # a bbox read comes in R-tree order
    assert a.equals(b) and 0 < len(a) < 1494
    strict_a, _ = count_points("flood", "trees", store=gpkg, predicate="contains")
    strict_b, _ = count_points("flood", "trees", store=pg, predicate="contains")
    assert strict_a["count"].tolist() == strict_b["count"].tolist()
    with pytest.raises(InputError):
        count_points("trees", "flood", store=pg)


def _features(tile: bytes, layer: str) -> dict[int, dict]:
    decoded = mapbox_vector_tile.decode(tile, default_options={"y_coord_down": True})
    if not decoded:
        return {}
    return {f["id"]: f for f in decoded[layer]["features"]}


def _tiles(pair: Pair, layer_id: str, zoom: int, n: int) -> list[morecantile.Tile]:
    west, south, east, north = pair[0].get(layer_id).bbox or (0, 0, 0, 0)
    tiles = list(TMS.tiles(west, south, east, north, [zoom]))
    rng = np.random.default_rng(zoom)
    return [tiles[i] for i in rng.choice(len(tiles), size=min(n, len(tiles)), replace=False)]


@pytest.mark.parametrize(("layer_id", "zoom"), [("flood", 14), ("flood", 12), ("trees", 15)])
def test_mvt_pushed_down_decodes_to_the_same_features(pair: Pair, layer_id: str, zoom: int) -> None:
    gpkg, pg = pair
    entry = gpkg.get(layer_id)
    options = TileOptions(properties=tuple(entry.column_names()[:2]))
    seen = 0
    for t in _tiles(pair, layer_id, zoom, 12):
        ours = render_vector_tile(gpkg, entry, t.z, t.x, t.y, options)
        pushed = render_vector_tile(pg, pg.get(layer_id), t.z, t.x, t.y, options)
        fa, fb = _features(ours, layer_id), _features(pushed, layer_id)
        # same features (ids from fid) touching the tile, same properties
        expected = pg.count(layer_id, Query(bbox=tuple(TMS.bounds(t))))
        assert len(fb) <= expected
        # each renderer may drop what collapses to (almost) nothing on the tile grid; what
        # one has and the other has not must be specks or slivers under ~1 unit wide
        assert len(set(fa) & set(fb)) >= 0.8 * max(len(fa), len(fb)) - 1, t
        for fid in set(fa) ^ set(fb):
            geom = shapely.geometry.shape((fa.get(fid) or fb[fid])["geometry"])
            assert geom.area < 8 or geom.area <= 0.5 * geom.length, (t, fid)
        for fid in set(fa) & set(fb):
            assert fb[fid]["properties"] == {
                k: v for k, v in fa[fid]["properties"].items() if v is not None
            }
            # decoded tile polygons may self-touch after snapping: compare their valid forms
            ga = shapely.make_valid(shapely.geometry.shape(fa[fid]["geometry"]))
            gb = shapely.make_valid(shapely.geometry.shape(fb[fid]["geometry"]))
            # outlines within ~2 units of each other (simplification 1 unit, snapping to the
            # grid) differ in area by at most ~2 units times their length
            if ga.geom_type == "Point":
                assert ga.distance(gb) <= 1.0, (t, fid)
            else:
                differ = shapely.symmetric_difference(ga, gb).area
                assert differ <= 2.5 * max(ga.length, gb.length), (t, fid, differ)
        seen += len(fb)
    assert seen > 0
