"""References for the analysis tests, computed here straight from the real files with
geopandas/shapely/pyproj in EPSG:27700 (never through landexplorer)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

BNG = "EPSG:27700"


class Real:
    """The real Trafford layers in British National Grid, read once per session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, gpd.GeoDataFrame] = {}

    def _read(self, key: str, rel: str) -> gpd.GeoDataFrame:
        if key not in self._cache:
            self._cache[key] = gpd.read_file(self.root / rel).to_crs(BNG)
        return self._cache[key]

    @property
    def flood(self) -> gpd.GeoDataFrame:
        return self._read("flood", "flood_risk_rofrs/trafford_rofrs_2018.geojson")

    @property
    def grades(self) -> gpd.GeoDataFrame:
        return self._read(
            "grades",
            "agricultural_land_classification/trafford_agricultural_land_classification.geojson",
        )

    @property
    def allotments(self) -> gpd.GeoDataFrame:
        return self._read("allotments", "allotments/trafford_allotments.geojson")

    @property
    def watercourses(self) -> gpd.GeoDataFrame:
        return self._read("water", "watercourses/trafford_watercourses.geojson")

    @property
    def wards(self) -> gpd.GeoDataFrame:
        return self._read("wards", "boundaries/trafford_ward_full_resolution.geojson")

    @property
    def trees(self) -> gpd.GeoDataFrame:
        if "trees" not in self._cache:
            df = pd.read_csv(self.root / "highways_trees/trafford_highways_trees.csv")
            pts = gpd.GeoDataFrame(
                df, geometry=gpd.points_from_xy(df.lon, df.lat), crs="EPSG:4326"
            ).to_crs(BNG)
            self._cache["trees"] = pts
        return self._cache["trees"]

    @property
    def dem(self) -> Path:
        return self.root / "dem_os_terrain50" / "trafford_os_terrain50_dtm_50m_bng.tif"


@pytest.fixture(scope="session")
def real(real_data: Path) -> Real:
    return Real(real_data)


def pairs(left: gpd.GeoDataFrame, right: gpd.GeoDataFrame, predicate: str = "intersects"):
    """Reference (i, j) index pairs with plain shapely, tree on the right."""
    tree = shapely.STRtree(np.asarray(right.geometry.values))
    return tree.query(np.asarray(left.geometry.values), predicate=predicate)
