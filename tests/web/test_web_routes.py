"""The routes behind the page: ``/`` for browsers and other clients, the static files and
npm libraries, ``/config.json``, and saved maps (``/maps``, ``/m/{id}``)."""

from __future__ import annotations

import gzip
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from landexplorer.api import create_app
from landexplorer.api.routers.web import NODE_MODULES, STATIC_DIR
from landexplorer.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", basemap="none")
    with TestClient(create_app(settings)) as c:
        yield c


def a_map(**extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "title": "Orchards by the Mersey",
        "view": {"center": [53.445, -2.35], "zoom": 14},
        "layers": [{"id": "flood_risk", "opacity": 0.6}, {"id": "allotments"}],
        "shapes": {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {},
                    "geometry": {"type": "Point", "coordinates": [-2.35, 53.445]},
                }
            ],
        },
    }
    body.update(extra)
    return body


def test_home_is_the_map_for_browsers_and_the_landing_page_for_clients(client):
    page = client.get("/", headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<div id="map"' in page.text
    assert page.text == (STATIC_DIR / "index.html").read_text("utf-8")
    landing = client.get("/")
    assert landing.headers["content-type"] == "application/json"
    assert {link["rel"] for link in landing.json()["links"]} >= {"conformance", "data"}
    assert client.get("/?f=json", headers=HTML).json()["links"]
    assert client.get("/?f=html").text == page.text


def test_page_assets_are_local_and_referenced_files_exist(client):
    html = (STATIC_DIR / "index.html").read_text("utf-8")
    # no CDN: every script and stylesheet is served by this server
    assert "http://" not in html and "https://" not in html
    refs = [
        "/web/vendor/leaflet/leaflet.js",
        "/web/vendor/vectorgrid/Leaflet.VectorGrid.bundled.min.js",
        "/web/app.css",
        "/web/js/main.js",
    ]
    for ref in refs:
        assert ref in html
        r = client.get(ref)
        assert r.status_code == 200, ref
    # the lazily loaded libraries are there too, from the npm packages of the lockfile
    lock = json.loads((STATIC_DIR.parent / "package-lock.json").read_text("utf-8"))
    leaflet_version = lock["packages"]["node_modules/leaflet"]["version"]
    js = client.get("/web/vendor/leaflet/leaflet.js").text
    assert f"Leaflet {leaflet_version}" in js[:200]
    assert client.get("/web/vendor/geoman/leaflet-geoman.min.js").status_code == 200
    assert client.get("/web/vendor/proj4/proj4.js").status_code == 200
    assert (
        client.get("/web/vendor/leaflet/images/layers.png").headers["content-type"] == "image/png"
    )


def test_assets_are_gzipped_and_revalidated(client):
    raw = (NODE_MODULES / "leaflet" / "dist" / "leaflet.js").read_bytes()
    r = client.get("/web/vendor/leaflet/leaflet.js", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.content == raw  # httpx decodes; the bytes are the file's
    assert int(r.headers["content-length"]) == len(gzip.compress(raw, 6, mtime=0))
    assert r.headers["content-type"].startswith("text/javascript")
    again = client.get(
        "/web/vendor/leaflet/leaflet.js", headers={"If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    own = client.get("/web/js/main.js")
    assert own.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "path",
    [
        "/web/../../pyproject.toml",
        "/web/%2e%2e/%2e%2e/settings.py",
        "/web/vendor/leaflet/../../../../../../etc/passwd",
        "/web/vendor/nothere/x.js",
        "/web/vendor/leaflet/package.json.map",
        "/web/.hidden.js",
        "/web/js/missing.js",
        "/web/vendor/leaflet/leaflet-src.js.map",
    ],
)
def test_nothing_outside_the_web_folders_is_served(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert set(r.json()) == {"code", "description"}


def test_config_exposes_the_basemap_setting(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path, basemap="none"))) as c:
        assert c.get("/config.json").json()["basemap"] is None
    with TestClient(create_app(Settings(data_dir=tmp_path))) as c:
        base = c.get("/config.json").json()["basemap"]
        assert base["url"] == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
        assert "OpenStreetMap contributors" in base["attribution"]
    custom = "https://tiles.example.org/{z}/{x}/{y}.png"
    settings = Settings(data_dir=tmp_path, basemap=custom, max_upload_mb=7)
    with TestClient(create_app(settings)) as c:
        r = c.get("/config.json")
        body = r.json()
        assert body["basemap"]["url"] == custom
        assert "tiles.example.org" in body["basemap"]["attribution"]
        # uploads go with signing in (accounts), no longer with a shared token
        assert body["accounts"] is True and body["maxUploadMb"] == 7
        assert "uploadsNeedToken" not in body
        # what it names depends on who asks: never kept by a shared cache
        assert r.headers["cache-control"].startswith("private")


def test_save_and_open_a_map(client, tmp_path):
    r = client.post("/maps", json=a_map())
    assert r.status_code == 201
    saved = r.json()
    map_id = saved["id"]
    assert len(map_id) == 8
    assert saved["url"].endswith(f"/m/{map_id}")
    assert r.headers["location"].endswith(f"/maps/{map_id}")
    body = client.get(f"/maps/{map_id}").json()
    assert body["title"] == "Orchards by the Mersey"
    assert body["view"] == {"center": [53.445, -2.35], "zoom": 14}
    # this catalogue is empty: the layers are kept in the file, and left out of the
    # answer without their names, as a layer the viewer may not see is
    assert body["layers"] == [] and body["unavailable"] == 2
    saved_layers = json.loads((tmp_path / "data" / "maps" / f"{map_id}.json").read_text("utf-8"))
    assert saved_layers["layers"] == [
        {"id": "flood_risk", "opacity": 0.6},
        {"id": "allotments", "opacity": 1.0},
    ]
    assert body["shapes"]["features"][0]["geometry"]["coordinates"] == [-2.35, 53.445]
    # the file is in the data folder, whole, with no temporary files left behind
    folder = tmp_path / "data" / "maps"
    assert sorted(p.name for p in folder.iterdir()) == [f"{map_id}.json"]
    assert json.loads((folder / f"{map_id}.json").read_text("utf-8"))["title"] == body["title"]
    # the short link opens the page on that map
    link = client.get(f"/m/{map_id}", follow_redirects=False)
    assert link.status_code == 303 and link.headers["location"] == f"/?map={map_id}"
    # two saves of the same map are two links
    assert client.post("/maps", json=a_map()).json()["id"] != map_id


@pytest.mark.parametrize(
    "body",
    [
        {"view": {"center": [53.4], "zoom": 14}},
        {"view": {"center": [53.4, -2.3], "zoom": 40}},
        {"view": {"center": [-2.3, 253.4], "zoom": 12}},
        a_map(layers=[{"id": "Robert'); DROP TABLE layers;--"}]),
        a_map(layers=[{"id": "flood_risk", "opacity": 3}]),
        a_map(shapes={"type": "Feature"}),
        a_map(extra_field=1),
    ],
)
def test_bad_maps_are_refused_in_plain_words(client, body):
    r = client.post("/maps", json=body)
    assert r.status_code == 400
    assert set(r.json()) == {"code", "description"}
    assert "could not be saved" in r.json()["description"] or "shapes" in r.json()["description"]


def test_too_large_and_unknown_maps(client):
    big = a_map(title="x" * 100)
    pad = "y" * (Settings().maps_max_kb * 1024)
    big["shapes"] = {"type": "FeatureCollection", "features": [{"pad": pad}]}
    r = client.post("/maps", json=big)
    assert r.status_code == 413
    assert "too large to save" in r.json()["description"]
    for path in ("/maps/AAAAAAAA", "/maps/../../etc", "/m/nothere1", "/maps/a%2F..%2Fb0000"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert set(r.json()) == {"code", "description"}


def test_saved_maps_are_rate_limited_per_client(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", basemap="none", maps_per_minute=3)
    with TestClient(create_app(settings)) as c:
        codes = [c.post("/maps", json=a_map()).status_code for _ in range(5)]
        assert codes == [201, 201, 201, 429, 429]
        r = c.post("/maps", json=a_map())
        assert int(r.headers["retry-after"]) >= 1
        assert "wait" in r.json()["description"]
        assert len(list((tmp_path / "data" / "maps").glob("*.json"))) == 3


def test_saved_maps_cannot_fill_the_disk(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", basemap="none", maps_max_total_mb=1)
    folder = tmp_path / "data" / "maps"
    folder.mkdir(parents=True)
    (folder / "AAAAAAAAAAAA.json").write_bytes(b"{}" + b" " * (1024 * 1024))
    with TestClient(create_app(settings)) as c:
        r = c.post("/maps", json=a_map())
        assert r.status_code == 507
        assert "no room for more saved maps" in r.json()["description"]
        assert len(list(folder.glob("*.json"))) == 1


def test_config_offers_the_basemaps_of_the_settings(tmp_path):
    def config(**kw: object) -> dict[str, object]:
        with TestClient(create_app(Settings(data_dir=tmp_path, **kw))) as c:
            body: dict[str, object] = c.get("/config.json").json()
            return body

    body = config()
    assert [b["id"] for b in body["basemaps"]] == ["osm", "topo", "none"]
    assert body["defaultBasemap"] == "osm"
    assert body["basemaps"][2]["url"] is None
    assert "OpenTopoMap" in body["basemaps"][1]["attribution"]
    # a template of one's own: offered first and opened on; a broken entry is left out
    own = "https://tiles.example.org/{z}/{x}/{y}.png"
    body = config(basemap=own, basemaps=["Aerial|https://a.example/{z}/{x}/{y}.jpg|© A", "x|y"])
    assert [b["id"] for b in body["basemaps"]] == ["custom", "aerial"]
    assert body["defaultBasemap"] == "custom" and body["basemap"]["url"] == own
    assert body["basemaps"][1]["attribution"] == "© A"
    body = config(basemap="none", basemaps=["none"])
    assert body["basemap"] is None and body["defaultBasemap"] == "none"
    assert config(basemap="topo")["basemap"]["maxZoom"] == 17


def test_config_carries_the_demo_manifest_styles(tmp_path):
    manifest = json.loads((Path(__file__).parents[2] / "data" / "demo.json").read_text("utf-8"))
    with TestClient(create_app(Settings(data_dir=tmp_path, basemap="none"))) as c:
        body = c.get("/config.json").json()
    assert body["defaultLayers"] == manifest["map"]["visible"] == ["flood_risk", "allotments"]
    flood = body["styles"]["flood_risk"]
    assert flood["classColumn"] == "prob_4band"
    assert list(flood["classes"]) == ["High", "Medium", "Low", "Very Low"]  # legend order
    # another manifest (a group's own) without a map section: the page's own colours
    other = tmp_path / "ours.json"
    other.write_text(json.dumps({"layers": []}), "utf-8")
    settings = Settings(data_dir=tmp_path, basemap="none", demo_manifest=other)
    with TestClient(create_app(settings)) as c:
        body = c.get("/config.json").json()
    assert body["styles"] == {} and body["defaultLayers"] == []


def test_api_docs_load_their_scripts_from_this_server(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text
    assert '"validatorUrl": null' in page.text
    lock = json.loads((STATIC_DIR.parent / "package-lock.json").read_text("utf-8"))
    version = lock["packages"]["node_modules/swagger-ui-dist"]["version"]
    for ref in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        url = f"/web/vendor/swagger-ui/{ref}"
        assert url in page.text
        assert client.get(url).status_code == 200, url
    css = client.get("/web/vendor/swagger-ui/swagger-ui.css").text
    assert "swagger-ui" in css
    assert version.startswith("5.")
    assert "/docs" not in client.get("/openapi.json").json()["paths"]
