"""Tiles and JSON on the wire: compressed as the client accepts, the same tile the same
bytes whether the router or the cached-tile fast path sends it, PNG never compressed
again, and a cached tile compressed once (its compressed copy kept beside it)."""

from __future__ import annotations

import gzip
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import mapbox_vector_tile
import pytest

from landexplorer.api import create_app
from landexplorer.catalog import Store
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings
from landexplorer.tiles.cache import TileCache

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TILE = "12/2021/1326"  # RoFRS polygons over Trafford (several KB)
PNG = "13/4042/2652"  # the DEM
GZIP = {"Accept-Encoding": "gzip"}
PLAIN = {"Accept-Encoding": "identity"}


@pytest.fixture
def client(store: Store, settings: Settings, real_data: Path) -> Iterator[TestClient]:
    public = {"licence": "OGL-UK-3.0", "attribution": "test", "visibility": "public"}
    ingest(store, real_data / "flood_risk_rofrs/trafford_rofrs_2018.geojson",
           IngestOptions(id="flood", **public))  # fmt: skip
    ingest(store, real_data / "dem_os_terrain50/trafford_os_terrain50_dtm_50m_bng.tif",
           IngestOptions(id="dem", **public))  # fmt: skip
    with TestClient(create_app(settings)) as c:
        yield c


def wire(client: TestClient, path: str, headers: dict[str, str]) -> tuple[dict, bytes]:
    """The headers and the bytes exactly as sent (not decoded)."""
    with client.stream("GET", path, headers=headers) as r:
        assert r.status_code == 200, r.read()
        return dict(r.headers), b"".join(r.iter_raw())


def vary(headers: dict) -> list[str]:
    return [v.strip().lower() for v in headers.get("vary", "").split(",") if v.strip()]


def test_vector_tiles_are_compressed_as_the_client_accepts(client: TestClient) -> None:
    path = f"/tiles/flood/{TILE}.mvt"
    # drawn by the router, compressed once beside the drawing
    drawn_head, drawn = wire(client, path, GZIP)
    # from the cache, before routing, the compressed copy kept beside it
    cached_head, cached = wire(client, path, GZIP)
    plain_head, plain = wire(client, path, PLAIN)
    assert drawn_head["content-encoding"] == cached_head["content-encoding"] == "gzip"
    assert "content-encoding" not in plain_head
    assert vary(drawn_head) == vary(cached_head) == vary(plain_head) == ["accept-encoding"]
    assert drawn == cached  # the same bytes whichever path sends them
    assert int(cached_head["content-length"]) == len(cached) < 0.8 * len(plain)
    assert int(plain_head["content-length"]) == len(plain)
    assert gzip.decompress(cached) == plain  # the same tile
    assert mapbox_vector_tile.decode(plain)["flood"]["features"]
    assert drawn_head["etag"] == cached_head["etag"] == plain_head["etag"]
    # the OGC path and a request with an Origin (answered inside CORS) are compressed too
    ogc_head, ogc = wire(client, f"/collections/flood/tiles/WebMercatorQuad/{TILE}", GZIP)
    assert ogc_head["content-encoding"] == "gzip" and gzip.decompress(ogc) == plain
    cors_head, cors = wire(client, path, {**GZIP, "Origin": "https://example.org"})
    assert cors_head["content-encoding"] == "gzip" and cors == cached
    assert vary(cors_head).count("accept-encoding") == 1
    plain_cors, _ = wire(client, path, {**PLAIN, "Origin": "https://example.org"})
    assert vary(plain_cors).count("accept-encoding") == 1
    # refused codings are honoured
    _, refused = wire(client, path, {"Accept-Encoding": "gzip;q=0, identity"})
    assert refused == plain


def test_a_cached_tile_is_compressed_once(client: TestClient, settings: Settings) -> None:
    path = f"/tiles/flood/{TILE}.mvt"
    wire(client, path, PLAIN)  # drawn and cached, not yet compressed
    folder = settings.data_dir / "tilecache" / "flood"
    assert not list(folder.rglob("*.mvt.gz"))
    _, first = wire(client, path, GZIP)
    (packed,) = folder.rglob("*.mvt.gz")
    assert packed.read_bytes() == first
    made = packed.stat().st_mtime_ns
    for _ in range(3):
        assert wire(client, path, GZIP)[1] == first
    assert packed.stat().st_mtime_ns == made  # kept, not compressed again per request


def test_a_tile_first_drawn_for_gzip_keeps_its_compressed_copy(
    client: TestClient, settings: Settings
) -> None:
    """The drawing compresses once and writes only the compressed copy: the next request
    of the tile, in this worker or another (which finds the file), sends the kept bytes
    without compressing, and a client that takes no gzip gets them unpacked."""
    path = f"/collections/flood/tiles/WebMercatorQuad/{TILE}"
    _, first = wire(client, path, GZIP)
    folder = settings.data_dir / "tilecache" / "flood"
    (packed,) = folder.rglob("*.mvt.gz")
    assert packed.read_bytes() == first
    assert not list(folder.rglob("*.mvt"))  # one file per tile drawn
    made = packed.stat().st_mtime_ns
    assert wire(client, f"/tiles/flood/{TILE}.mvt", GZIP)[1] == first
    # another worker process: a fresh tile cache over the same folder
    other = TileCache(settings.data_dir / "tilecache")
    (key,) = [k for k in client.app.state.tiles.cache._mem if k.ext == "mvt"]  # type: ignore[attr-defined]
    assert other.get(key) == gzip.decompress(first)
    assert other.compressed(key, gzip.decompress(first)) == first
    assert packed.stat().st_mtime_ns == made  # never compressed again


def test_png_tiles_are_never_compressed_again(client: TestClient) -> None:
    path = f"/tiles/dem/{PNG}.png"
    for _ in range(2):  # drawn, then cached
        head, body = wire(client, path, GZIP)
        assert "content-encoding" not in head
        assert body.startswith(b"\x89PNG")
        assert "accept-encoding" not in vary(head)


def test_json_is_compressed_as_the_client_accepts(client: TestClient) -> None:
    path = "/collections/flood/items?limit=200"
    packed_head, packed = wire(client, path, GZIP)
    plain_head, plain = wire(client, path, PLAIN)
    assert packed_head["content-encoding"] == "gzip" and "content-encoding" not in plain_head
    assert "accept-encoding" in vary(packed_head) and "accept-encoding" in vary(plain_head)
    assert len(packed) < len(plain) // 3
    stamp = re.compile(rb'"timeStamp":"[^"]*"')  # the clock may tick between the two requests
    assert stamp.sub(b"", gzip.decompress(packed)) == stamp.sub(b"", plain)
