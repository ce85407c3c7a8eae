"""The map as a newcomer meets it (issue 12): where it opens, basemaps (and no network),
raster values in the popup, the page's own words for errors, a taken layer name, the
upload's progress, and the API docs with no CDN. Debian's Chromium against a live server."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from landexplorer.api.routers.web import STATIC_DIR
from tests.web.conftest import (
    HILLSHADE_CREDIT,
    UNREACHABLE,
    LiveServer,
    PageWatch,
    map_view,
    open_page,
    shot,
    sign_in,
    wait_drawn,
    wait_ready,
    wait_started,
)
from tests.web.test_map import _big_flood_polygon


def _mercator_y(lat: float) -> float:
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def _fit(bounds: list[float], width: float, height: float) -> tuple[int, float, float]:
    """Leaflet's fitBounds (zoomSnap 1, no padding): the zoom and the centre it picks."""
    x0, y0, x1, y1 = bounds
    dx = (x1 - x0) / 360 * 256
    dy = (_mercator_y(y1) - _mercator_y(y0)) / (2 * math.pi) * 256
    zoom = math.floor(math.log2(min(width / dx, height / dy)))
    my = (_mercator_y(y0) + _mercator_y(y1)) / 2
    lat = math.degrees(2 * math.atan(math.exp(my)) - math.pi / 2)
    return min(zoom, 17), lat, (x0 + x1) / 2


def _union(boxes: list[list[float]]) -> list[float]:
    return [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]


def _bbox(web_server: LiveServer, layer: str) -> list[float]:
    entry = web_server.get(f"/collections/{layer}").json()
    return list(entry["extent"]["spatial"]["bbox"][0])


def _map_size(page: Any) -> tuple[float, float]:
    size = page.evaluate(
        "(() => { const r = document.getElementById('map').getBoundingClientRect();"
        " return [r.width, r.height]; })()"
    )
    return float(size[0]), float(size[1])


@pytest.mark.parametrize("address", ["/", "/#layers=elevation", "/#layers=woodland,wards"])
def test_the_map_opens_on_the_layers_it_shows(
    browser, web_server: LiveServer, watch: PageWatch, address: str
):
    page = open_page(browser, watch)
    page.goto(web_server.url + address)
    wait_started(page)
    shown = sorted(
        page.eval_on_selector_all(
            "#layer-groups input[type=checkbox]:checked", "els => els.map(e => e.id.slice(6))"
        )
    )
    if address == "/":  # a first visit: the layers the demo manifest names
        assert shown == ["allotments", "flood_risk"]
    else:
        assert shown == sorted(address.split("=")[1].split(","))
    want = _fit(_union([_bbox(web_server, x) for x in shown]), *_map_size(page))
    zoom, lat, lon = map_view(page)
    assert zoom == want[0]
    assert lat == pytest.approx(want[1], abs=1e-3) and lon == pytest.approx(want[2], abs=1e-3)
    # nothing hangs on window for tests or benchmarks any more
    assert page.evaluate("[typeof window.landexplorer, typeof window.lxMap]") == [
        "undefined",
        "undefined",
    ]
    assert watch.errors == []


def test_no_demo_knowledge_in_the_page():
    """Layer ids, colours and bounds of the demo live in data/demo.json, not in the page."""
    demo_ids = ["flood_risk", "allotments", "land_grade", "prob_4band", "Grade 1", "wards"]
    for path in sorted((STATIC_DIR / "js").glob("*.js")):
        text = path.read_text("utf-8")
        for word in [*demo_ids, "Trafford", "53.35", "-2.47", "#08306b"]:
            if word == "prob_4band" and path.name == "layers.js":
                continue  # a usual name of a class column, in the list of such names
            # names as whole words ("wards" is a demo layer, "stewards" a role)
            pattern = rf"(?<!\w){re.escape(word)}(?!\w)" if word[0].isalpha() else re.escape(word)
            assert not re.search(pattern, text), f"{path.name} mentions {word!r}"


def test_a_shared_view_opens_where_it_was_shared(browser, web_server: LiveServer, watch):
    page = open_page(browser, watch)
    page.goto(web_server.url + "/#map=13/53.4400/-2.3000&layers=woodland")
    wait_ready(page)
    assert map_view(page) == (13, pytest.approx(53.44, abs=1e-3), pytest.approx(-2.3, abs=1e-3))
    assert watch.errors == []


def _pick_basemap(page: Any, name: str) -> None:
    page.hover(".leaflet-control-layers")
    page.click(f".leaflet-control-layers-base label:has-text('{name}')")


def test_basemaps_switch_and_an_unreachable_one_is_said_once(
    browser, web_server: LiveServer, watch: PageWatch
):
    page = open_page(browser, watch)
    page.goto(web_server.url + "/#map=12/53.4189/-2.3657&layers=flood_risk")
    wait_ready(page)
    box = page.locator("#map")
    assert box.get_attribute("data-basemap") == "none"  # the server's BASEMAP=none
    labels = page.eval_on_selector_all(
        ".leaflet-control-layers-base label", "els => els.map(e => e.innerText.trim())"
    )
    assert labels == ["Hillshade", "Far away", "No basemap"]
    # the server's own grid as a basemap: its tiles come, its credit is on the map
    _pick_basemap(page, "Hillshade")
    page.wait_for_selector("#map[data-basemap-state=shown]")
    page.wait_for_load_state("networkidle")
    shot(page, "20-basemap-hillshade")
    tiles = [u for u in watch.requests if "/tiles/elevation/" in u]
    assert len(tiles) >= 4
    assert HILLSHADE_CREDIT in page.inner_text(".leaflet-control-attribution")
    # a basemap that cannot be reached: one tile is tried, and the page says so once
    _pick_basemap(page, "Far away")
    page.wait_for_selector("#map[data-basemap-state=unreachable]")
    page.wait_for_timeout(1500)
    shot(page, "21-basemap-unreachable")
    status = page.inner_text("#status")
    assert "“Far away” cannot be reached" in status
    assert "layers are drawn on a plain background" in status
    tried = [u for u in watch.requests if u.startswith(UNREACHABLE)]
    assert len(tried) == 1
    # the one failed request is all the browser reports: no error per tile
    assert len(watch.errors) <= 2 and all(
        UNREACHABLE in e or "CONNECTION" in e for e in watch.errors
    )
    # back to the plain background and again: no second try, no second message
    _pick_basemap(page, "No basemap")
    _pick_basemap(page, "Far away")
    page.wait_for_timeout(500)
    assert len([u for u in watch.requests if u.startswith(UNREACHABLE)]) == 1
    assert "Nobody" not in page.inner_text(".leaflet-control-attribution")


def test_clicking_the_elevation_grid_shows_its_value_under_the_top_layer(
    browser, web_server: LiveServer, watch: PageWatch
):
    point, _bands = _big_flood_polygon(web_server, "High")
    page = open_page(browser, watch)
    # the grid listed first in the address, the flood polygons drawn over it
    page.goto(f"{web_server.url}/#map=17/{point.y}/{point.x}&layers=elevation,flood_risk")
    wait_ready(page)
    wait_drawn(page, "elevation")
    area = page.locator("#map").bounding_box()
    with page.expect_request("**/collections/elevation/value?*") as asked:
        page.mouse.click(area["x"] + area["width"] / 2, area["y"] + area["height"] / 2)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    page.wait_for_timeout(400)
    shot(page, "22-elevation-popup")
    # the layer drawn on top (the flood polygons) first, then the grid under it
    titles = popup.locator("h4").all_inner_texts()
    by_id = {c["id"]: c["title"] for c in web_server.get("/collections").json()["collections"]}
    assert titles == [by_id["flood_risk"], by_id["elevation"]]
    # the value shown is the API's for the place clicked, which is the point asked for
    query = parse_qs(urlparse(asked.value.url).query)
    lon, lat = float(query["lon"][0]), float(query["lat"][0])
    assert lon == pytest.approx(point.x, abs=2e-5) and lat == pytest.approx(point.y, abs=2e-5)
    api = web_server.get("/collections/elevation/value", params={"lon": lon, "lat": lat}).json()
    cell = popup.locator("table[data-layer=elevation] td")
    assert float(cell.get_attribute("data-value")) == api["value"]
    assert 2.5 <= api["value"] <= 105.2  # the DEM's range (SOURCES.md)
    assert cell.inner_text().endswith(" m")  # the unit from the manifest's style
    assert watch.errors == []


def _renamed_csv(real_data: Path, folder: Path) -> Path:
    """The real allotments CSV with its coordinate columns given names nobody guesses."""
    rows = list(csv.reader((real_data / "allotments" / "trafford_allotments.csv").open()))
    assert rows[0] == ["name", "osm_id", "lon", "lat"]
    rows[0] = ["name", "osm_id", "where_x", "where_y"]
    path = folder / "orchard_sites.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def _watch_progress(page: Any) -> None:
    page.evaluate(
        """() => {
            const bar = document.getElementById("upload-progress");
            window.__bar = [];
            const note = () => window.__bar.push([bar.getAttribute("value"), performance.now()]);
            new MutationObserver(note).observe(bar, { attributeFilter: ["value"] });
        }"""
    )


def test_upload_in_the_pages_words_with_replace_or_keep_both(
    browser, web_server: LiveServer, watch: PageWatch, real_data: Path, tmp_path: Path
):
    source = _renamed_csv(real_data, tmp_path)
    page = open_page(browser, watch)
    page.goto(web_server.url + "/")
    wait_ready(page)
    sign_in(page, web_server)

    def fill_in() -> None:
        page.click("#sec-upload summary")
        page.set_input_files("#upload-file", str(source))
        page.fill("#upload-attribution", "Trafford Council")

    fill_in()
    # the session ended meanwhile (signed out in another window): the upload is refused in
    # the page's words, not the API's header syntax, and nothing is added
    session = {c["name"]: c["value"] for c in page.context.cookies()}["lx_session"]
    csrf = web_server.get("/auth/me", cookies={"lx_session": session}).json()["csrf"]
    out = web_server.post(
        "/auth/logout", cookies={"lx_session": session}, headers={"X-CSRF-Token": csrf}
    )
    assert out.status_code == 200 and out.json() == {"signed_in": False}
    page.click("#upload-submit")
    page.wait_for_selector("#upload-message.error")
    text = page.inner_text("#upload-message")
    assert "Sign in first" in text and "Bearer" not in text
    assert web_server.get("/collections/orchard_sites", headers=web_server.auth).status_code == 404
    # signed in again, the coordinates are in columns the reader cannot guess: the form's
    # fields are named
    page.reload()
    wait_ready(page)
    sign_in(page, web_server)
    fill_in()
    page.click("#upload-submit")
    page.wait_for_function(
        "document.getElementById('upload-message').innerText.includes('Coordinate columns')"
    )
    shot(page, "23-upload-coordinates")
    text = page.inner_text("#upload-message")
    assert "--x" not in text and "--y" not in text and "--wkt" not in text
    assert page.get_attribute("#upload-more", "open") is not None
    page.fill("#upload-x", "where_x")
    page.fill("#upload-y", "where_y")
    events: list[tuple[str, str]] = []
    page.on(
        "response",
        lambda r: (
            events.append(("job", r.text()))
            if "/jobs/" in r.url and '"successful"' in r.text()
            else None
        ),
    )
    _watch_progress(page)
    page.click("#upload-submit")
    count = page.locator("[data-testid=upload-count]")
    count.wait_for(timeout=120_000)
    assert count.inner_text() == "35"  # SOURCES.md: 35 allotments
    entry = web_server.get("/collections/orchard_sites", headers=web_server.auth).json()
    assert entry["featureCount"] == 35 and entry["layerVersion"] == 1
    # the bar reached 100% once, after the job said the layer was stored, and never before
    bar = page.evaluate("window.__bar")
    values = [v for v, _t in bar]
    assert values.count("100") == 1 and values[-1] == "100"
    assert all(v is None or int(v) <= 50 for v in values[:-1])
    assert events  # the job was seen successful (before the bar's last step)
    # the same file again: its name is taken, and the form asks what to do
    page.click("#upload-submit")
    page.wait_for_selector("#upload-exists:not([hidden])")
    shot(page, "24-upload-name-taken")
    question = page.inner_text("#upload-exists")
    assert "already on the map" in question and "PUT" not in question
    assert page.is_hidden("#upload-progress")
    page.click("#upload-keep-both")
    page.wait_for_function(
        "document.querySelector('[data-testid=upload-count]') && "
        "document.getElementById('upload-message').innerText.includes('(2)')",
        timeout=120_000,
    )
    second = web_server.get("/collections/orchard_sites_2", headers=web_server.auth).json()
    assert second["featureCount"] == 35 and second["title"].endswith("(2)")
    assert (
        web_server.get("/collections/orchard_sites", headers=web_server.auth).json()["layerVersion"]
        == 1
    )
    # and once more, replacing the first: a new version of the same layer
    page.click("#upload-submit")
    page.wait_for_selector("#upload-exists:not([hidden])")
    page.click("#upload-replace")
    page.wait_for_function(
        "document.getElementById('upload-message').innerText.startsWith('Replaced')",
        timeout=120_000,
    )
    shot(page, "25-upload-replaced")
    replaced = web_server.get("/collections/orchard_sites", headers=web_server.auth).json()
    assert replaced["layerVersion"] == 2 and replaced["featureCount"] == 35
    assert page.is_checked("#layer-orchard_sites") and page.is_checked("#layer-orchard_sites_2")
    # the browser reported only the answers the page turned into words (401, 400, 409s)
    statuses = sorted({int(m) for e in watch.errors for m in re.findall(r"status of (\d+)", e)})
    assert statuses == [400, 401, 409]


def test_api_docs_work_with_no_network(browser, web_server: LiveServer, watch: PageWatch):
    page = open_page(browser, watch)
    # every address but this server's is cut off, as on a machine with no network
    page.context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(web_server.url) else route.abort()
        ),
    )
    page.goto(web_server.url + "/docs")
    page.wait_for_selector(".swagger-ui .information-container .title")
    page.wait_for_selector(".opblock-summary-path[data-path='/collections/{collectionId}/value']")
    shot(page, "26-api-docs")
    assert "Land Explorer" in page.inner_text(".swagger-ui .information-container .title")
    fetched = {f"{urlparse(u).scheme}://{urlparse(u).netloc}" for u in watch.requests}
    assert fetched == {web_server.url}
    assert watch.errors == []


def test_a_group_elsewhere_sees_its_own_layer(browser, tmp_path: Path, watch: PageWatch):
    """A catalogue with none of the demo's layers (a group's sites in Leeds): the page
    shows its layer, in its own colour, on its own extent, not an empty Trafford."""
    from landexplorer.catalog import open_store
    from landexplorer.layers.ingest import IngestOptions, ingest
    from landexplorer.settings import Settings
    from tests.live import serve

    sites = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": name},
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
            }
            for name, lon, lat in [
                ("Meanwood Valley", -1.5712, 53.8347),
                ("Kirkstall", -1.6043, 53.8170),
                ("Chapel Allerton", -1.5363, 53.8290),
            ]
        ],
    }
    path = tmp_path / "leeds_growing_spaces.geojson"
    path.write_text(json.dumps(sites), "utf-8")
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    store = open_store(settings)
    try:
        options = IngestOptions(kind="community", licence="CC0-1.0", attribution="Leeds group")
        ingest(store, path, options)
    finally:
        store.close()
    with serve(data_dir, env={"LANDEXPLORER_BASEMAP": "none"}, ready_path="/config.json") as url:
        page = open_page(browser, watch)
        page.goto(url + "/")
        wait_ready(page)
        shot(page, "27-elsewhere")
        assert page.is_checked("#layer-leeds_growing_spaces")
        want = _fit([-1.6043, 53.8170, -1.5363, 53.8347], *_map_size(page))
        zoom, lat, lon = map_view(page)
        assert zoom == want[0]
        assert lat == pytest.approx(want[1], abs=1e-3) and lon == pytest.approx(want[2], abs=1e-3)
        assert watch.errors == []
