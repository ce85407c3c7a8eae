"""A GeoTIFF whose empty cells are NaN loads on both stores (NaN is not JSON: the catalogue
names it), and its statistics leave those cells out."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from landexplorer.catalog import Store
from landexplorer.layers.ingest import IngestOptions, ingest


def test_a_raster_with_nan_cells_loads_on_both_stores(store: Store, tmp_path: Path) -> None:
    grid = np.arange(100, dtype="float32").reshape(10, 10)
    grid[0, :] = np.nan  # the first row, 0-9, is empty
    path = tmp_path / "heights.tif"
    profile = {"driver": "GTiff", "width": 10, "height": 10, "count": 1, "dtype": "float32"}
    transform = from_origin(370_000, 400_000, 50, 50)
    with rasterio.open(path, "w", crs="EPSG:27700", transform=transform, nodata=np.nan,
                       **profile) as dst:  # fmt: skip
        dst.write(grid, 1)
    (entry,) = ingest(store, [path], IngestOptions(id="heights", licence="CC-BY-4.0"))
    again = store.get("heights")
    assert again.raster["nodata"] == "NaN"
    stats = again.raster["stats"]
    assert (stats["min"], stats["max"]) == (10.0, 99.0)
    assert math.isclose(stats["mean"], float(np.nanmean(grid)))
    assert entry.version == again.version == 1
