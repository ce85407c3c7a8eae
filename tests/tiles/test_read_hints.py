"""The tile renderer's read hints (``Query.loose_bbox``, ``Query.min_size``) on the
GeoPackage store: fewer rows read, the same tiles drawn."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from landexplorer.catalog import Query, Store
from landexplorer.tiles import grid, vector
from landexplorer.tiles.vector import render_vector_tile


def _tiles(store: Store, layer: str, zooms: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Every tile at these zooms around the layer's middle (3 x 3 at each)."""
    west, south, east, north = store.get(layer).bbox
    out = []
    for z in zooms:
        lon, lat = (west + east) / 2, (south + north) / 2
        cx, cy = grid.tiles_covering((lon, lat, lon, lat), z)[:2]
        out += [(z, cx + dx, cy + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    return out


def _fids(store: Store, layer: str, query: Query) -> set[int]:
    return set(store.read_arrow(layer, query).column("fid").to_pylist())


def test_a_loose_read_adds_only_features_whose_bounds_touch(tile_store: Store) -> None:
    for z, x, y in _tiles(tile_store, "flood", (12,)):
        bbox = grid.tile_bounds_lonlat(z, x, y)
        exact = _fids(tile_store, "flood", Query(bbox=bbox))
        loose = tile_store.read_arrow("flood", Query(bbox=bbox, loose_bbox=True))
        fids = loose.column("fid").to_pylist()
        assert exact <= set(fids)
        geoms = shapely.from_wkb(loose.column("geometry").to_numpy(zero_copy_only=False))
        touching = shapely.intersects(geoms, shapely.box(*bbox))
        assert {f for f, t in zip(fids, touching, strict=True) if t} == exact


def test_min_size_leaves_out_only_features_smaller_than_it(tile_store: Store) -> None:
    entry = tile_store.get("flood")
    bbox = entry.bbox
    every = tile_store.read_arrow("flood", Query(bbox=bbox))
    b = shapely.bounds(shapely.from_wkb(every.column("geometry").to_numpy(zero_copy_only=False)))
    width, height = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    dx, dy = float(np.median(width)), float(np.median(height))
    kept = _fids(tile_store, "flood", Query(bbox=bbox, min_size=(dx, dy)))
    fids = np.asarray(every.column("fid").to_pylist())
    big = (width >= dx) | (height >= dy)
    # the R-tree keeps bounds rounded outwards (32-bit): a feature a hair under the size
    # may be kept, never one over it left out
    near = (np.abs(width - dx) < 3e-5) | (np.abs(height - dy) < 3e-5)
    assert set(fids[big]) <= kept
    assert kept - set(fids[big]) <= set(fids[near])
    assert 0.3 * len(fids) < len(kept) < 0.8 * len(fids)


def test_layers_that_may_hold_points_are_read_whole(tile_store: Store) -> None:
    assert vector._min_size(tile_store.get("trees"), 12, 1326) is None
    assert vector._min_size(tile_store.get("flood"), 12, 1326) is not None
    assert vector._min_size(tile_store.get("rivers"), 12, 1326) is not None


@pytest.mark.parametrize("layer", ["flood", "rivers", "trees"])
def test_the_hints_change_no_tile(
    tile_store: Store, layer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each tile is byte for byte the tile drawn from an exact read of every feature."""
    tiles = [(0, 0, 0), *_tiles(tile_store, layer, (8, 10, 12, 14))]
    entry = tile_store.get(layer)
    hinted = [render_vector_tile(tile_store, entry, *t) for t in tiles]
    assert sum(len(t) > 0 for t in hinted) >= 9
    real_read = tile_store.read_arrow

    def exact_read(layer_id, query):  # type: ignore[no-untyped-def]
        assert query.loose_bbox and (query.min_size is not None) == (layer != "trees")
        plain = Query(bbox=query.bbox, columns=query.columns)
        return real_read(layer_id, plain)

    monkeypatch.setattr(tile_store, "read_arrow", exact_read)
    assert [render_vector_tile(tile_store, entry, *t) for t in tiles] == hinted
