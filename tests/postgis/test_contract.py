"""The Store contract, run on both stores through the parametrised ``store`` fixture:
whatever a caller can observe through the interface is the same on GeoPackage and PostGIS.
Reference values come from SOURCES.md or are computed here with pyogrio + shapely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely

from landexplorer.catalog import Filter, Query, Store
from landexplorer.errors import InputError, LayerExists, LayerNotFound
from landexplorer.layers import normalize
from landexplorer.layers.ingest import IngestOptions, ingest

FLOOD = ("flood_risk_rofrs", "trafford_rofrs_2018.geojson")
TREES = ("highways_trees", "trafford_highways_trees.csv")
DEM = ("dem_os_terrain50", "trafford_os_terrain50_dtm_50m_bng.tif")


@pytest.fixture
def flood(store: Store, real_data: Path) -> Store:
    ingest(store, real_data.joinpath(*FLOOD), IngestOptions(id="flood", licence="OGL-UK-3.0"))
    return store


def test_counts_and_filters_match_sources_md(flood: Store) -> None:
    entry = flood.get("flood")
    assert entry.feature_count == 1494
    assert flood.count("flood", Query(filters=[Filter("prob_4band", "=", "High")])) == 302
    bands = {"High": 302, "Medium": 741, "Low": 377, "Very Low": 74}
    assert flood.count("flood", Query(filters=[Filter("prob_4band", "in", list(bands))])) == 1494
    either = Filter("", "or", (Filter("prob_4band", "=", "Low"), Filter("prob_4band", "=", "High")))
    assert flood.count("flood", Query(filters=[either])) == 377 + 302
    negated = Filter("", "not", (Filter("prob_4band", "=", "Medium"),))
    assert flood.count("flood", Query(filters=[negated])) == 1494 - 741
    table = flood.read_arrow("flood", Query(filters=[Filter("prob_4band", "=", "Very Low")]))
    assert table.num_rows == 74
    assert set(table.column("prob_4band").to_pylist()) == {"Very Low"}


def test_bbox_reads_match_shapely(flood: Store, real_data: Path) -> None:
    source = pyogrio.read_dataframe(real_data.joinpath(*FLOOD))
    geoms = shapely.make_valid(source.geometry.values)
    rng = np.random.default_rng(6)
    x0, y0, x1, y1 = flood.get("flood").bbox or (0, 0, 0, 0)
    for _ in range(12):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        w, h = rng.uniform(0.002, 0.03, size=2)
        box = (cx - w, cy - h, cx + w, cy + h)
        expected = int(shapely.intersects(geoms, shapely.box(*box)).sum())
        assert flood.count("flood", Query(bbox=box)) == expected
        table = flood.read_arrow("flood", Query(bbox=box, columns=["prob_4band"]))
        assert table.num_rows == expected
        assert table.column_names == ["fid", "prob_4band", "geometry"]
        got = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
        assert shapely.intersects(got, shapely.box(*box)).all()


def test_paging_and_fids(flood: Store) -> None:
    whole = flood.read_arrow("flood", Query(columns=[]))
    assert whole.column("fid").to_pylist() == list(range(1, 1495))
    page = flood.read_arrow("flood", Query(columns=[], limit=10, offset=100))
    assert page.column("fid").to_pylist() == list(range(101, 111))
    some = flood.read_arrow("flood", Query(fids=[5, 3, 999]))
    assert some.column("fid").to_pylist() == [3, 5, 999]
    assert flood.count("flood", Query(fids=[])) == 0


def test_spatial_filter_intersects(flood: Store, real_data: Path) -> None:
    source = pyogrio.read_dataframe(real_data.joinpath(*FLOOD))
    geoms = shapely.make_valid(source.geometry.values)
    area = shapely.buffer(shapely.Point(-2.35, 53.42), 0.02)
    expected = int(shapely.intersects(geoms, area).sum())
    spatial = Filter("geometry", "intersects", shapely.to_wkb(area))
    assert flood.count("flood", Query(filters=[spatial])) == expected


def test_new_version_replaces_and_old_one_goes(store: Store, real_data: Path) -> None:
    path = real_data.joinpath(*TREES)
    first = ingest(store, path, IngestOptions(id="trees"))[0]
    with pytest.raises(LayerExists):
        ingest(store, path, IngestOptions(id="trees"))
    second = ingest(store, path, IngestOptions(id="trees", replace=True, title="Trees again"))[0]
    assert (first.version, second.version) == (1, 2)
    assert second.created == first.created
    assert store.get("trees").title == "Trees again"
    assert store.count("trees") == store.read_arrow("trees", Query(columns=[])).num_rows == 15638


def test_failure_mid_write_keeps_previous_version(
    store: Store, real_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = real_data.joinpath(*TREES)
    ingest(store, path, IngestOptions(id="trees", batch_size=2000))
    before = store.read_arrow("trees").to_pydict()
    original = normalize.Normalizer.__call__
    calls = {"n": 0}

    def broken(self, raw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk trouble")
        return original(self, raw)

    monkeypatch.setattr(normalize.Normalizer, "__call__", broken)
    with pytest.raises(RuntimeError):
        ingest(store, path, IngestOptions(id="trees", replace=True, batch_size=2000))
    assert store.get("trees").version == 1
    assert store.read_arrow("trees").to_pydict() == before
    with pytest.raises(RuntimeError):
        calls["n"] = 0
        ingest(store, path, IngestOptions(id="fresh", batch_size=2000))
    assert not store.exists("fresh")


def test_metadata_delete_and_errors(flood: Store) -> None:
    changed = flood.update_metadata("flood", title="Flood risk", visibility="group")
    assert flood.get("flood").title == changed.title == "Flood risk"
    assert flood.get("flood").visibility == "group"
    with pytest.raises(InputError):
        flood.update_metadata("flood", storage="elsewhere")
    with pytest.raises(InputError):
        flood.read_arrow("flood", Query(columns=["no_such_column"]))
    with pytest.raises(InputError):
        flood.count("flood", Query(filters=[Filter("no_such_column", "=", 1)]))
    with pytest.raises(InputError):
        flood.count("flood", Query(bbox=(1, 1, 0, 0)))
    flood.delete("flood")
    assert not flood.exists("flood")
    with pytest.raises(LayerNotFound):
        flood.read_arrow("flood")
    with pytest.raises(LayerNotFound):
        flood.delete("flood")


def test_raster_is_catalogued_beside(store: Store, real_data: Path) -> None:
    entry = ingest(store, real_data.joinpath(*DEM), IngestOptions(id="dem"))[0]
    assert entry.data_type == "raster"
    assert (entry.raster["width"], entry.raster["height"]) == (350, 320)
    path = store.raster_path(store.get("dem"))
    assert path.exists()
    again = ingest(store, real_data.joinpath(*DEM), IngestOptions(id="dem", replace=True))[0]
    assert again.version == 2
    assert store.raster_path(again).exists()
    assert not path.exists()  # the old version's file is gone
    with pytest.raises(InputError):
        store.read_arrow("dem")
