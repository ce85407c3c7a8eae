"""``GET /collections/{id}/value``: a raster layer's value at a longitude/latitude, on both
stores. Checked against the original OS Terrain 50 grid read with rasterio, a small grid
of our own with empty cells, and visibility as for tiles."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from landexplorer.api import create_app
from landexplorer.catalog import Store
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings
from tests.people import bearer, make_token

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

_TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)


@pytest.mark.parametrize(("lon", "lat"), [(-2.35, 53.42), (-2.3103, 53.4587), (-2.45, 53.38)])
def test_value_is_the_cell_of_the_original_grid(client, real_data: Path, lon, lat):
    r = client.get("/collections/elevation/value", params={"lon": lon, "lat": lat})
    assert r.status_code == 200
    body = r.json()
    # the OS Terrain 50 tile the demo was built from, read with rasterio at the BNG point
    x, y = _TO_BNG.transform(lon, lat)
    tile = f"sj{int(x - 300_000) // 10_000}{int(y - 300_000) // 10_000}"  # 10 km squares of SJ
    source = f"zip://{real_data}/dem_os_terrain50/{tile}.zip!/{tile.upper()}.asc"
    with rasterio.open(source) as src:
        assert src.bounds.left <= x < src.bounds.right and src.bounds.bottom <= y < src.bounds.top
        want = float(next(src.sample([(x, y)]))[0])
    assert body["value"] == pytest.approx(want, abs=1e-4)
    assert 2.5 <= body["value"] <= 105.2  # the DEM's range (SOURCES.md)
    assert body["status"] == "value" and body["crs"] == "EPSG:27700"
    assert body["license"] == "OGL-UK-3.0" and "OS data" in body["attribution"]


def test_outside_the_grid_is_no_value_in_plain_words(client):
    r = client.get("/collections/elevation/value", params={"lon": -3.5, "lat": 53.42})
    assert r.status_code == 200
    assert r.json()["value"] is None and r.json()["status"] == "outside"
    assert "outside the area the grid covers" in r.json()["description"]


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/collections/elevation/value?lat=53.4", 400, "add lon="),
        ("/collections/elevation/value?lon=west&lat=53.4", 400, "must be a number"),
        ("/collections/elevation/value?lon=-2.3&lat=95", 400, "between -90 and 90"),
        ("/collections/elevation/value?lon=-2.3&lat=inf", 400, "between -90 and 90"),
        ("/collections/elevation/value?lon=-2.3&lat=53.4&band=2", 400, "band 2 does not exist"),
        ("/collections/elevation/value?lon=-2.3&lat=53.4&band=x", 400, "whole number"),
        ("/collections/elevation/value?lon=-2.3&lat=53.4&band=%C2%B2", 400, "whole number"),
        ("/collections/elevation/value?lon=1,5&lat=53.4", 400, "must be a number"),
        ("/collections/flood_risk/value?lon=-2.3&lat=53.4", 404, "not a grid of values"),
        ("/collections/nothere/value?lon=-2.3&lat=53.4", 404, "no collection called"),
    ],
)
def test_bad_questions_are_refused_in_plain_words(client, path, status, words):
    r = client.get(path)
    assert r.status_code == status
    assert set(r.json()) == {"code", "description"}
    assert words in r.json()["description"]


@pytest.fixture
def small_grid(store: Store, settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    """A 4x3 grid in British National Grid with two empty cells, as a private layer."""
    data = np.arange(12, dtype=np.float32).reshape(3, 4) * 1.5
    data[1, 2] = -9999
    data[2, 0] = -9999
    path = tmp_path / "small.tif"
    profile = {
        "driver": "GTiff", "width": 4, "height": 3, "count": 1, "dtype": "float32",
        "crs": "EPSG:27700", "transform": from_origin(370000, 395000, 100, 100),
        "nodata": -9999,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    options = IngestOptions(id="small", licence="CC0-1.0", attribution="test", visibility="private")
    ingest(store, path, options)
    with TestClient(create_app(settings)) as c:
        yield c


def _lonlat(x: float, y: float) -> dict[str, float]:
    lon, lat = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True).transform(x, y)
    return {"lon": lon, "lat": lat}


def test_empty_cells_and_visibility(small_grid: TestClient, settings: Settings):
    auth = bearer(make_token(settings))  # a site admin sees the private layer
    # hidden from anonymous callers exactly as its tiles are
    place = _lonlat(370150, 394950)  # row 0, column 1
    assert small_grid.get("/collections/small/value", params=place).status_code == 404
    assert small_grid.get("/tiles/small/12/2020/1300.png").status_code == 404
    r = small_grid.get("/collections/small/value", params=place, headers=auth)
    assert r.status_code == 200
    assert r.json()["value"] == 1.5 and r.json()["cell"] == {"row": 0, "col": 1}
    assert r.headers["cache-control"].startswith("private")
    for x, y in ((370250, 394850), (370050, 394750)):  # the two empty (nodata) cells
        got = small_grid.get("/collections/small/value", params=_lonlat(x, y), headers=auth)
        assert got.status_code == 200
        assert got.json()["value"] is None and got.json()["status"] == "nodata"
        assert "no value for this place" in got.json()["description"]
    last = small_grid.get("/collections/small/value", params=_lonlat(370350, 394750), headers=auth)
    assert last.json()["value"] == 16.5  # row 2, column 3: 11 * 1.5
    outside = small_grid.get(
        "/collections/small/value", params=_lonlat(370450, 394750), headers=auth
    )
    assert outside.json()["status"] == "outside"
