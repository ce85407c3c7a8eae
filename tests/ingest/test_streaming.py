"""The fast, bounded-memory ingest path: slices of large batches, CSV coordinates parsed by
pyarrow with a fall-back to text, and no pandas on the way."""

from __future__ import annotations

import importlib
import sqlite3
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from landexplorer.catalog import open_store
from landexplorer.layers.readers import RawBatch
from landexplorer.settings import Settings

ingest_module = importlib.import_module("landexplorer.layers.ingest")


@pytest.mark.parametrize("binary_type", [pa.binary(), pa.large_binary()])
def test_large_batches_are_cut_into_bounded_slices(monkeypatch, binary_type):
    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 400, 500)
    sizes[100] = 5_000  # larger than the limit on its own
    values = [bytes([i % 251]) * int(n) for i, n in enumerate(sizes)]
    values[7] = None
    # a slice of a larger array, so that the Arrow offsets do not start at zero
    wkb = pa.array([b"pad"] * 3 + values, type=binary_type).slice(3)
    attrs = pa.record_batch([pa.array(np.arange(len(values)))], names=["i"])
    monkeypatch.setattr(ingest_module, "MAX_BATCH_WKB_BYTES", 2_000)

    pieces = list(ingest_module._bounded(RawBatch(attrs, wkb=wkb)))

    assert len(pieces) > 10
    got_ids = [i for p in pieces for i in p.attributes.column(0).to_pylist()]
    got_wkb = [w for p in pieces for w in p.wkb.to_pylist()]
    assert got_ids == list(range(len(values)))
    assert got_wkb == values
    for piece in pieces:
        payload = sum(len(w) for w in piece.wkb.to_pylist() if w is not None)
        assert payload <= 2_000 or len(piece.wkb) == 1


def test_small_batches_and_points_are_not_cut():
    attrs = pa.record_batch([pa.array([1, 2])], names=["i"])
    batch = RawBatch(attrs, x=np.array([0.0, 1.0]), y=np.array([0.0, 1.0]))
    assert list(ingest_module._bounded(batch)) == [batch]


def test_csv_with_an_odd_coordinate_late_in_the_file(tmp_path):
    """Coordinates are parsed as numbers first; a cell that is not one number, far past the
    first block, makes the read start again with the column as text, with the same result
    the text path gives."""
    n = 300_000
    rng = np.random.default_rng(11)
    lon = np.round(rng.uniform(-2.5, -2.2, n), 6)
    lat = np.round(rng.uniform(53.3, 53.5, n), 6)
    lon_cells = [f"{v}" for v in lon]
    lat_cells = [f"{v}" for v in lat]
    lon_cells[250_000] = f"{lon[250_000]}; {lon[250_000]}"  # the same number twice: kept
    lat_cells[260_000] = "unknown"  # not a number: that row is left out
    path = tmp_path / "sites.csv"
    with path.open("w") as fh:
        fh.write("id,name,lon,lat\n")
        for i in range(n):
            fh.write(f"{i},site {i},{lon_cells[i]},{lat_cells[i]}\n")
    assert path.stat().st_size > 4 * 1024 * 1024  # several CSV blocks

    store = open_store(Settings(data_dir=tmp_path / "data", database_url=None))
    (entry,) = ingest_module.ingest(store, path, ingest_module.IngestOptions(id="sites"))

    assert entry.feature_count == n - 1
    assert entry.report.dropped_no_coordinates == 1
    keep = np.ones(n, dtype=bool)
    keep[260_000] = False
    assert entry.bbox == pytest.approx(
        (lon[keep].min(), lat[keep].min(), lon[keep].max(), lat[keep].max()), abs=1e-12
    )
    con = sqlite3.connect(tmp_path / "data" / "landexplorer.gpkg")
    try:
        rtree = con.execute(f'SELECT count(*) FROM "rtree_{entry.storage}_geom"').fetchone()[0]
        minx, miny = con.execute(
            f'SELECT minx, miny FROM "rtree_{entry.storage}_geom" r JOIN "{entry.storage}" t '
            "ON t.fid = r.id WHERE t.id = 250000"
        ).fetchone()
    finally:
        con.close()
    assert rtree == n - 1
    # the R-tree keeps float32 bounds, rounded outwards
    assert minx == pytest.approx(lon[250_000], abs=1e-5)
    assert miny == pytest.approx(lat[250_000], abs=1e-5)


def test_ingest_command_path_does_not_import_pandas(tmp_path, real_data):
    csv = real_data / "highways_trees" / "trafford_highways_trees.csv"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from landexplorer.catalog import open_store\n"
        "from landexplorer.layers.ingest import IngestOptions, import_gdal_lean, ingest\n"
        "from landexplorer.settings import Settings\n"
        "import_gdal_lean()\n"
        f"store = open_store(Settings(data_dir=Path({str(tmp_path)!r}), database_url=None))\n"
        f"(e,) = ingest(store, Path({str(csv)!r}), IngestOptions(id='trees'))\n"
        "print(e.feature_count, 'pandas' in sys.modules, 'geopandas' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    count, pandas, geopandas = done.stdout.split()
    assert int(count) == 15_638  # SOURCES.md: the Trafford highway trees
    assert (pandas, geopandas) == ("False", "False")
