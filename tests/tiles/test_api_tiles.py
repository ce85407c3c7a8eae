"""The tiles router: TestClient checks of media types, 204, TileJSON and errors; a layer
replaced under a running app; and GDAL's MVT driver reading a tile from a live server."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import mapbox_vector_tile
import pytest

from landexplorer.api import create_app
from landexplorer.catalog import Store
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings
from tests.live import serve

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

MVT = "application/vnd.mapbox-vector-tile"
TILE = "14/8086/5306"  # RoFRS polygons beside the Mersey


@pytest.fixture(scope="module")
def client(tile_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(tile_settings)) as c:
        yield c


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"code", "description"} and body["description"]
    return body


def test_ogc_and_xyz_addresses_serve_the_same_mvt(client: TestClient) -> None:
    ogc = client.get(f"/collections/flood/tiles/WebMercatorQuad/{TILE}")
    xyz = client.get(f"/tiles/flood/{TILE}.mvt")
    pbf = client.get(f"/tiles/flood/{TILE}.pbf")
    assert ogc.status_code == xyz.status_code == pbf.status_code == 200
    assert ogc.headers["content-type"] == MVT
    assert ogc.content == xyz.content == pbf.content
    features = mapbox_vector_tile.decode(ogc.content)["flood"]["features"]
    assert len(features) > 50
    assert "prob_4band" in features[0]["properties"]


def test_properties_parameter_limits_the_columns(client: TestClient) -> None:
    r = client.get(f"/tiles/flood/{TILE}.mvt", params={"properties": "prob_4band"})
    features = mapbox_vector_tile.decode(r.content)["flood"]["features"]
    assert {k for f in features for k in f["properties"]} == {"prob_4band"}
    _error(client.get(f"/tiles/flood/{TILE}.mvt", params={"properties": "x;drop"}), 400)


def test_empty_tile_is_204_and_etag_revalidates(client: TestClient) -> None:
    empty = client.get("/tiles/flood/14/0/0.mvt")
    assert empty.status_code == 204 and empty.content == b""
    first = client.get(f"/tiles/flood/{TILE}.mvt")
    again = client.get(f"/tiles/flood/{TILE}.mvt", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert client.head(f"/tiles/flood/{TILE}.mvt").status_code == 200


def test_raster_png_and_tilejson(client: TestClient) -> None:
    png = client.get("/tiles/dem/13/4042/2651.png", params={"colormap": "viridis"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    doc = client.get("/collections/dem/tiles/WebMercatorQuad/tilejson.json").json()
    assert doc["tilejson"] == "3.0.0" and doc["tiles"][0].endswith("/tiles/dem/{z}/{x}/{y}.png")
    assert doc["maxzoom"] == 12  # 50 m cells: z12 pixels are ~38 m at the equator, ~23 m here
    assert "vector_layers" not in doc and doc["attribution"] == "test dem"


def test_vector_tilejson_describes_the_layer(client: TestClient, tile_store: Store) -> None:
    doc = client.get("/tiles/flood/tilejson.json").json()
    entry = tile_store.get("flood")
    assert doc["tilejson"] == "3.0.0" and doc["attribution"] == "test flood"
    assert doc["bounds"] == pytest.approx(list(entry.bbox))
    assert 0 <= doc["minzoom"] < doc["maxzoom"] <= 22
    (layer,) = doc["vector_layers"]
    assert layer["id"] == "flood" and layer["fields"]["prob_4band"] == "String"
    tileset = client.get("/collections/flood/tiles/WebMercatorQuad").json()
    assert any(link["rel"] == "item" and link["type"] == MVT for link in tileset["links"])


def test_bad_tile_requests_get_the_error_body(client: TestClient) -> None:
    assert _error(client.get("/tiles/nothing_here/1/0/0.mvt"), 404)["code"] == "not-found"
    _error(client.get("/tiles/flood/3/9/0.mvt"), 404)  # column outside zoom 3
    _error(client.get("/tiles/flood/30/0/0.mvt"), 400)
    _error(client.get("/tiles/flood/1/0/0.png"), 400)  # a vector layer has no PNG tiles
    _error(client.get("/tiles/dem/1/0/0.mvt"), 400)
    _error(client.get("/tiles/dem/13/4042/2651.png", params={"rescale": "9,1"}), 400)
    _error(client.get("/tiles/dem/13/4042/2651.png", params={"colormap": "rainbow"}), 400)
    _error(client.get("/tiles/flood'--/1/0/0.mvt"), 404)


def test_replacing_a_layer_serves_new_tiles_at_once(
    store: Store, settings: Settings, real_data: Path
) -> None:
    """A new version (written by another process, e.g. the CLI) is drawn on the next request
    of the same running app; the old version's cached tiles are removed; a layer deleted and
    loaded again under the same id never gets the old layer's tiles."""
    licensed = {"licence": "OGL-UK-3.0", "attribution": "test"}
    flood = real_data / "flood_risk_rofrs/trafford_rofrs_2018.geojson"
    grades = (
        real_data
        / "agricultural_land_classification/trafford_agricultural_land_classification.geojson"
    )
    ingest(store, flood, IngestOptions(id="area", **licensed))
    with TestClient(create_app(settings)) as c:
        before = c.get(f"/tiles/area/{TILE}.mvt")
        props = mapbox_vector_tile.decode(before.content)["area"]["features"][0]["properties"]
        assert "prob_4band" in props
        cache = settings.data_dir / "tilecache" / "area"
        assert [p.name[:3] for p in cache.iterdir()] == ["v1-"]
        ingest(store, grades, IngestOptions(id="area", replace=True, **licensed))
        after = c.get(f"/tiles/area/{TILE}.mvt")
        features = mapbox_vector_tile.decode(after.content)["area"]["features"]
        assert {f["properties"]["grade"] for f in features} <= {
            "Grade 2",
            "Grade 3",
            "Grade 4",
            "Non Agricultural",
            "Urban",
        }
        assert before.headers["etag"] != after.headers["etag"]
        assert [p.name[:3] for p in cache.iterdir()] == ["v2-"]
        # deleted and loaded again under the same id: version 1 again, but not the old tiles
        store.delete("area")
        assert c.get(f"/tiles/area/{TILE}.mvt").status_code == 404
        ingest(store, grades, IngestOptions(id="area", **licensed))
        again = c.get(f"/tiles/area/{TILE}.mvt")
        assert store.get("area").version == 1
        features = mapbox_vector_tile.decode(again.content)["area"]["features"]
        assert "grade" in features[0]["properties"]


@pytest.fixture(scope="module")
def live(tile_settings: Settings) -> Iterator[str]:
    """``landexplorer serve`` (2 workers) on a free loopback port."""
    with serve(tile_settings.data_dir, workers=2) as url:
        yield url


def test_gdal_mvt_driver_reads_a_served_tile(live: str, tile_store: Store) -> None:
    import pyogrio
    import shapely

    from landexplorer.catalog import Query
    from landexplorer.tiles import grid

    source = f"/vsicurl/{live}/tiles/flood/{TILE}.mvt"
    frame = pyogrio.read_dataframe(source)
    assert frame.crs.to_epsg() == 3857
    z, x, y = (int(v) for v in TILE.split("/"))
    # GDAL georeferences the tile from z/x/y in its address: features sit on the tile
    tile_box = shapely.box(*grid.tile_bounds_3857(z, x, y))
    assert frame.geometry.intersects(tile_box).all()
    expected = tile_store.count("flood", Query(bbox=grid.tile_bounds_lonlat(z, x, y)))
    assert 0.9 * expected <= len(frame) <= expected
    assert set(frame["prob_4band"]) <= {"High", "Medium", "Low", "Very Low"}


def test_cached_fast_path_answers_like_the_router(client: TestClient) -> None:
    """The second request of a tile is answered from the cache before routing: same bytes,
    same headers; a request the fast path does not handle still gets the router's answer."""
    for path in (f"/tiles/flood/{TILE}.mvt?properties=prob_4band", "/tiles/dem/13/4042/2652.png"):
        first = client.get(path)  # drawn by the router
        second = client.get(path)  # from the cache
        assert first.status_code == second.status_code == 200
        assert first.content == second.content
        for header in ("content-type", "content-length", "etag", "cache-control"):
            assert first.headers[header] == second.headers[header]
    empty1 = client.get("/tiles/flood/14/1/1.mvt")
    empty2 = client.get("/tiles/flood/14/1/1.mvt")
    assert empty1.status_code == empty2.status_code == 204
    assert empty1.headers["etag"] == empty2.headers["etag"]
    # errors still come from the router, with the one error body
    _error(client.get(f"/tiles/flood/{TILE}.mvt?properties=nope"), 400)
    _error(client.get("/tiles/flood/1/5/0.mvt"), 404)


def test_the_tile_cache_lives_where_the_settings_say(
    store: Store,
    settings: Settings,
    real_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``tile_cache_dir`` (``LANDEXPLORER_TILE_CACHE_DIR``): instances sharing a data folder
    may each keep their tiles apart; each draws its own copy, the same bytes."""
    ingest(store, real_data / "flood_risk_rofrs/trafford_rofrs_2018.geojson",
           IngestOptions(id="area", licence="OGL-UK-3.0", attribution="test"))  # fmt: skip
    answers = []
    for name in ("one", "two"):
        apart = settings.model_copy(update={"tile_cache_dir": tmp_path / name / "tiles"})
        with TestClient(create_app(apart)) as c:
            answer = c.get(f"/tiles/area/{TILE}.mvt")
            assert answer.status_code == 200
            answers.append(answer.content)
        assert list((tmp_path / name / "tiles" / "area").rglob("*.mvt*"))
    assert answers[0] == answers[1]
    assert not (settings.data_dir / "tilecache").exists()
    # the default, and the environment (as landexplorer serve's workers read it)
    assert Settings(data_dir=tmp_path / "d").tile_cache_path == tmp_path / "d" / "tilecache"
    monkeypatch.setenv("LANDEXPLORER_TILE_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert Settings(data_dir=tmp_path / "d").tile_cache_path == tmp_path / "elsewhere"
