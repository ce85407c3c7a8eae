"""The hand-written MVT encoder read by a second, independent decoder: vtzero's C++ reader
(besides mapbox-vector-tile in test_vector.py). It parses the protobuf strictly, so a
wrong length, tag or wire type fails here; layer, extent, ids and geometry types must
agree with what mapbox-vector-tile reads."""

from __future__ import annotations

import mapbox_vector_tile
import pytest
from vtzero.tile import VectorTile

from landexplorer.catalog import Store
from landexplorer.tiles.vector import TileOptions, render_vector_tile

_TYPES = {VectorTile.POINT: "Point", VectorTile.LINESTRING: "Line", VectorTile.POLYGON: "Polygon"}


def _vtzero(blob: bytes) -> tuple[bytes, int, int, list[tuple[int, str]]]:
    tile = VectorTile(blob)
    assert len(tile) == 1
    layer = next(tile)
    features = []
    for _ in range(len(layer)):
        f = next(layer)
        assert f.has_id()
        features.append((f.id, _TYPES[f.geometry_type]))
    return layer.name, layer.version, layer.extent, features


@pytest.mark.parametrize(
    ("layer", "z", "x", "y"),
    [("flood", 14, 8086, 5306), ("flood", 10, 505, 331), ("trees", 14, 8085, 5304),
     ("rivers", 12, 2021, 1326)],
)  # fmt: skip
def test_vtzero_reads_what_mapbox_vector_tile_reads(
    tile_store: Store, layer: str, z: int, x: int, y: int
) -> None:
    entry = tile_store.get(layer)
    blob = render_vector_tile(tile_store, entry, z, x, y, TileOptions())
    assert blob, "the test tile should hold features"
    name, version, extent, features = _vtzero(blob)
    assert (name, version, extent) == (layer.encode(), 2, 4096)
    decoded = mapbox_vector_tile.decode(blob, default_options={"y_coord_down": True})[layer]
    other = [
        (f["id"], f["geometry"]["type"].replace("Multi", "").replace("String", ""))
        for f in decoded["features"]
    ]
    assert features == other and len(features) > 0
