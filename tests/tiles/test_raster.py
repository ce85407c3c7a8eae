"""Raster PNG tiles: they decode, and their colours follow the colour ramp of the DEM values."""

from __future__ import annotations

import io

import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import Transformer

from landexplorer.catalog import Store
from landexplorer.settings import Settings
from landexplorer.tiles import TileService, colormap, grid
from landexplorer.tiles.raster import TILE_PX


def _decode(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (TILE_PX, TILE_PX)
    return np.asarray(image.convert("RGBA"))


def test_png_colours_follow_the_ramp(tile_store: Store, tile_settings: Settings) -> None:
    service = TileService(tile_store, tile_settings.data_dir / "tilecache-test")
    entry = service.layer("dem")
    z, x, y = 13, 4042, 2651  # inside the DEM over Trafford
    rgba = _decode(service.raster_tile("dem", z, x, y))
    assert (rgba[..., 3] == 255).all(), "a tile inside the raster is fully opaque"
    low, high = service.default_rescale(entry)
    assert (low, high) == (6.5, 86.0)  # SOURCES.md: range 6.5-86.0 m
    # reference: the DEM value under each of a grid of pixel centres, read from the stored
    # BNG file with rasterio, coloured with the same ramp
    w, _, e, n = grid.tile_bounds_3857(z, x, y)
    px = (e - w) / TILE_PX
    to_bng = Transformer.from_crs("EPSG:3857", "EPSG:27700", always_xy=True)
    pal, _ = colormap.palette(colormap.DEFAULT_RAMP)
    rows = cols = np.arange(8, TILE_PX, 16)
    diffs = []
    with rasterio.open(tile_store.raster_path(entry)) as src:
        for r in rows:
            for c in cols:
                ex, ny = to_bng.transform(w + (c + 0.5) * px, n - (r + 0.5) * px)
                value = next(src.sample([(ex, ny)]))[0]
                want = int(colormap.classify(np.array([value], dtype=float), low, high)[0])
                got = int(np.argmin(np.abs(pal[1:].astype(int) - rgba[r, c, :3]).sum(axis=1))) + 1
                assert (pal[got] == rgba[r, c, :3]).all(), "every colour comes from the palette"
                diffs.append(abs(got - want))
    # bilinear warping to web mercator and nearest lookup move values by a fraction of
    # the 50 m cells: most pixels land on the same class or the next few
    assert np.median(diffs) <= 2
    assert np.percentile(diffs, 90) <= 10


def test_rescale_and_ramp_change_the_colours(tile_store: Store, tile_settings: Settings) -> None:
    service = TileService(tile_store, tile_settings.data_dir / "tilecache-test")
    z, x, y = 13, 4042, 2651
    # everything above 0..5 m is the top colour of the ramp
    rgba = _decode(service.raster_tile("dem", z, x, y, ramp="greys", rescale=(0.0, 5.0)))
    assert (rgba[..., :3] == 255).all()
    assert colormap.colour_of(86.0, 6.5, 86.0, "greys") == (255, 255, 255)


def test_tile_outside_the_raster_is_transparent(tile_store: Store, tile_settings: Settings) -> None:
    service = TileService(tile_store, tile_settings.data_dir / "tilecache-test")
    rgba = _decode(service.raster_tile("dem", 12, 0, 0))
    assert (rgba[..., 3] == 0).all()


def test_unknown_ramp_is_refused_in_plain_words(tile_store: Store, tile_settings: Settings) -> None:
    from landexplorer.errors import InputError

    service = TileService(tile_store, tile_settings.data_dir / "tilecache-test")
    with pytest.raises(InputError, match="colour ramp"):
        service.raster_tile("dem", 13, 4042, 2651, ramp="rainbow")
