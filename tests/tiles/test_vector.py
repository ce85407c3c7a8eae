"""Vector tiles decoded with mapbox-vector-tile and compared with a shapely clip of the source."""

from __future__ import annotations

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from landexplorer.catalog import Query, Store
from landexplorer.tiles import grid
from landexplorer.tiles.vector import TileOptions, render_vector_tile

EXTENT, BUFFER = 4096, 256
# z14 and z12 tiles over the Mersey valley (many RoFRS polygons), and one z10 tile
FLOOD_TILES = [(14, 8086, 5306), (14, 8083, 5303), (12, 2021, 1326), (10, 505, 331)]


def _decode(blob: bytes, layer: str) -> list[dict]:
    decoded = mapbox_vector_tile.decode(blob, default_options={"y_coord_down": True})
    return decoded[layer]["features"] if decoded else []


def _reference(store: Store, layer: str, z: int, x: int, y: int, columns: list[str]):
    """Source features touching the tile, clipped to the buffered tile in tile units."""
    table = store.read_arrow(layer, Query(bbox=grid.tile_bounds_lonlat(z, x, y), columns=columns))
    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    units = shapely.transform(geoms, lambda c: grid.lonlat_to_tile_units(c, z, x, y, EXTENT))
    clipped = shapely.clip_by_rect(units, -BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER)
    fids = table.column("fid").to_pylist()
    props = {c: table.column(c).to_pylist() for c in columns}
    return fids, clipped, props


@pytest.mark.parametrize(("z", "x", "y"), FLOOD_TILES)
def test_polygon_tile_matches_shapely_clip(tile_store: Store, z: int, x: int, y: int) -> None:
    entry = tile_store.get("flood")
    blob = render_vector_tile(tile_store, entry, z, x, y, TileOptions(properties=("prob_4band",)))
    features = _decode(blob, "flood")
    fids, clipped, props = _reference(tile_store, "flood", z, x, y, ["prob_4band"])
    assert len(fids) > 10, "the test tile should hold features"
    by_id = {f["id"]: f for f in features}
    ref_area = dict(zip(fids, shapely.area(clipped), strict=True))
    # every feature in the tile is a source feature touching it, with its own properties
    assert set(by_id) <= set(fids)
    band = dict(zip(fids, props["prob_4band"], strict=True))
    for fid, feature in by_id.items():
        assert feature["properties"] == {"prob_4band": band[fid]}
        assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    # features still bigger than a few tile units once snapped to the integer grid must all
    # be there (slivers that snap to nothing may go, as with PostGIS' ST_AsMVTGeom)
    snapped = dict(zip(fids, shapely.area(shapely.set_precision(clipped, 1.0)), strict=True))
    big = {fid for fid, a in snapped.items() if a > 4.0}
    assert len(big) > 10
    assert big <= set(by_id)
    # and drawn where the source is: snapping to the grid moves a vertex by under 0.71
    # units and simplifying by under 1, so the area changes by less than perimeter x 1.71
    ref_perimeter = dict(zip(fids, shapely.length(clipped), strict=True))
    for fid in big:
        got = shape(by_id[fid]["geometry"]).area
        assert abs(got - ref_area[fid]) <= 1.71 * ref_perimeter[fid], fid
    total_got = sum(shape(by_id[f]["geometry"]).area for f in big)
    total_ref = sum(ref_area[f] for f in big)
    assert total_got == pytest.approx(total_ref, rel=0.01)


def _rings(commands: list[int]) -> list[list[tuple[int, int]]]:
    """Rings of a polygon command stream, read straight from the protobuf integers."""
    rings, ring, cx, cy, i = [], [], 0, 0, 0
    while i < len(commands):
        cmd, count = commands[i] & 7, commands[i] >> 3
        i += 1
        if cmd == 7:
            rings.append(ring)
            continue
        for _ in range(count):
            dx, dy = commands[i], commands[i + 1]
            cx += (dx >> 1) ^ -(dx & 1)
            cy += (dy >> 1) ^ -(dy & 1)
            i += 2
            if cmd == 1:
                ring = []
            ring.append((cx, cy))
    return rings


def _signed_area(ring: list[tuple[int, int]]) -> float:
    return (
        sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True))
        / 2
    )


def test_polygon_rings_wind_as_mvt_requires(tile_store: Store) -> None:
    """MVT 2.1: an exterior ring has positive area in tile coordinates (clockwise on
    screen), a hole negative; every polygon starts with an exterior ring."""
    from mapbox_vector_tile.Mapbox import vector_tile_pb2

    entry = tile_store.get("flood")
    tile = vector_tile_pb2.tile()
    tile.ParseFromString(render_vector_tile(tile_store, entry, 12, 2021, 1326))
    (layer,) = tile.layers
    assert layer.version == 2 and layer.extent == EXTENT and layer.name == "flood"
    for feature in layer.features:
        areas = [_signed_area(r) for r in _rings(list(feature.geometry))]
        assert areas and areas[0] > 0
        assert all(a != 0 for a in areas)
    assert len(layer.features) > 100


def test_points_keep_their_positions(tile_store: Store) -> None:
    z, x, y = 14, 8084, 5302
    entry = tile_store.get("trees")
    blob = render_vector_tile(tile_store, entry, z, x, y, TileOptions(properties=("species",)))
    features = _decode(blob, "trees")
    table = tile_store.read_arrow(
        "trees", Query(bbox=grid.tile_bounds_lonlat(z, x, y), columns=["species"])
    )
    assert len(features) == table.num_rows > 0
    coords = shapely.get_coordinates(
        shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    )
    expected = {
        fid: tuple(np.rint(c).astype(int))
        for fid, c in zip(
            table.column("fid").to_pylist(),
            grid.lonlat_to_tile_units(coords, z, x, y, EXTENT),
            strict=True,
        )
    }
    for feature in features:
        assert feature["geometry"]["type"] == "Point"
        assert tuple(feature["geometry"]["coordinates"]) == expected[feature["id"]]


def test_lines_follow_the_source(tile_store: Store) -> None:
    z, x, y = 12, 2020, 1326
    entry = tile_store.get("rivers")
    blob = render_vector_tile(tile_store, entry, z, x, y)
    features = _decode(blob, "rivers")
    fids, clipped, _ = _reference(tile_store, "rivers", z, x, y, [])
    assert features and {f["id"] for f in features} <= set(fids)
    ref = dict(zip(fids, shapely.length(clipped), strict=True))
    for feature in features:
        got = shape(feature["geometry"]).length
        assert got == pytest.approx(ref[feature["id"]], rel=0.03, abs=3.0)


def test_tile_without_features_is_empty(tile_store: Store) -> None:
    entry = tile_store.get("flood")
    assert render_vector_tile(tile_store, entry, 14, 0, 0) == b""


def test_property_types_round_trip() -> None:
    """Integers (negative too), doubles, booleans, text and nulls decode as they went in."""
    import pyarrow as pa

    from landexplorer.tiles import mvt

    squares = np.array([shapely.box(10 * i, 10, 10 * i + 8, 18) for i in range(4)])
    rows = np.arange(4)
    props = {
        "n": pa.array([1, -7, 300_000, None], type=pa.int64()),
        "f": pa.array([0.5, float("nan"), -2.25, 1e10]),
        "b": pa.array([True, False, None, True]),
        "s": pa.array(["High", "Low", "High", "Über"]),
    }
    layer = mvt.encode_layer(
        "t", [mvt.encode_polygons(squares, rows)], np.array([5, 6, 7, 2**40]), props
    )
    decoded = mapbox_vector_tile.decode(mvt.encode_tile([layer]))["t"]["features"]
    got = {f["id"]: f["properties"] for f in decoded}
    assert got == {
        5: {"n": 1, "f": 0.5, "b": True, "s": "High"},
        6: {"n": -7, "b": False, "s": "Low"},
        7: {"n": 300_000, "f": -2.25, "s": "High"},
        2**40: {"f": 1e10, "b": True, "s": "Über"},
    }
