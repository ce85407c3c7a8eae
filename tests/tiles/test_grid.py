"""The tile grid against morecantile's WebMercatorQuad."""

from __future__ import annotations

import morecantile
import numpy as np
import pytest

from landexplorer.tiles import grid

TMS = morecantile.tms.get("WebMercatorQuad")
TILES = [
    (0, 0, 0),
    (1, 1, 0),
    (8, 126, 82),
    (12, 2021, 1316),
    (14, 8074, 5274),
    (18, 130000, 84000),
]


@pytest.mark.parametrize(("z", "x", "y"), TILES)
def test_bounds_match_morecantile(z: int, x: int, y: int) -> None:
    ref = TMS.bounds(morecantile.Tile(x, y, z))
    assert grid.tile_bounds_lonlat(z, x, y) == pytest.approx(
        (ref.left, ref.bottom, ref.right, ref.top), abs=1e-9
    )
    xy = TMS.xy_bounds(morecantile.Tile(x, y, z))
    assert grid.tile_bounds_3857(z, x, y) == pytest.approx(
        (xy.left, xy.bottom, xy.right, xy.top), abs=1e-6
    )


def test_tile_units_put_corners_at_0_and_extent() -> None:
    z, x, y = 14, 8074, 5274
    w, s, e, n = grid.tile_bounds_lonlat(z, x, y)
    units = grid.lonlat_to_tile_units(np.array([[w, n], [e, s]]), z, x, y, 4096)
    assert units == pytest.approx(np.array([[0, 0], [4096, 4096]]), abs=1e-6)


def test_tiles_covering_matches_morecantile() -> None:
    bbox = (-2.4784, 53.3574, -2.2530, 53.4804)  # Trafford, from SOURCES.md
    for z in (8, 12, 14):
        ref = list(TMS.tiles(*bbox, zooms=[z]))
        x0, y0, x1, y1 = grid.tiles_covering(bbox, z)
        assert {(t.x, t.y) for t in ref} == {
            (x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)
        }


def test_tiles_outside_the_grid_are_refused() -> None:
    with pytest.raises(ValueError):
        grid.check_tile(3, 8, 0)
    with pytest.raises(ValueError):
        grid.check_tile(25, 0, 0)
