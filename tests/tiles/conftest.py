"""Tile fixtures: a small catalogue of real Trafford layers (polygons, points, lines, DEM)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from landexplorer.catalog import Store, open_store
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings

LAYERS = {
    "flood": "flood_risk_rofrs/trafford_rofrs_2018.geojson",
    "trees": "highways_trees/trafford_highways_trees.csv",
    "rivers": "watercourses/trafford_watercourses.geojson",
    "dem": "dem_os_terrain50/trafford_os_terrain50_dtm_50m_bng.tif",
}


@pytest.fixture(scope="module")
def tile_settings(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> Settings:
    """A catalogue holding four real layers, licensed so they are public."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("tiles") / "data")
    store = open_store(settings)
    for layer_id, rel in LAYERS.items():
        ingest(
            store,
            real_data / rel,
            IngestOptions(id=layer_id, licence="OGL-UK-3.0", attribution=f"test {layer_id}"),
        )
    store.close()
    return settings


@pytest.fixture
def tile_store(tile_settings: Settings) -> Iterator[Store]:
    s = open_store(tile_settings)
    yield s
    s.close()
