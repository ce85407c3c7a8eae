"""End-to-end tests of the web map in Debian's Chromium against a live server with the demo
data: what a volunteer does, checked against the API, the real files and shapely/pyproj."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest
import shapely
from PIL import Image, ImageChops
from pyproj import Transformer
from shapely.geometry import Point, shape
from shapely.ops import polylabel

from landexplorer.catalog import open_store
from landexplorer.settings import Settings
from tests.web.conftest import (
    LiveServer,
    PageWatch,
    download_shapes,
    map_view,
    open_page,
    shot,
    sign_in,
    wait_drawn,
    wait_ready,
    wait_started,
)

_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)


def to_bng(geom: Any) -> Any:
    """A lon/lat geometry in British National Grid metres (pyproj)."""
    return shapely.transform(geom, lambda xy: np.column_stack(_BNG.transform(xy[:, 0], xy[:, 1])))


def map_pixels(page: Any) -> Image.Image:
    return Image.open(io.BytesIO(page.locator("#map").screenshot())).convert("RGB")


def changed_share(a: Image.Image, b: Image.Image) -> float:
    """Share of pixels that differ between two screenshots of the map."""
    diff = np.asarray(ImageChops.difference(a, b).convert("L"))
    return float((diff > 24).mean())


def visible_layers(page: Any) -> list[str]:
    return sorted(
        page.eval_on_selector_all(
            "#layer-groups input[type=checkbox]:checked", "els => els.map(e => e.id.slice(6))"
        )
    )


def hash_params(page: Any) -> dict[str, str]:
    fragment = urlparse(page.url).fragment
    return dict(part.split("=", 1) for part in fragment.split("&") if "=" in part)


def test_map_loads_with_no_console_errors(browser, web_server: LiveServer, watch: PageWatch):
    page = open_page(browser, watch)
    page.goto(web_server.url + "/")
    wait_ready(page)
    shot(page, "01-loaded")
    assert watch.errors == []
    # nothing fetched from anywhere but this server (no CDN, no basemap with basemap=none)
    fetched = [u for u in watch.requests if not u.startswith("data:")]
    assert {f"{urlparse(u).scheme}://{urlparse(u).netloc}" for u in fetched} == {web_server.url}
    # every collection the API lists is in the panel, in its group
    collections = web_server.get("/collections").json()["collections"]
    listed = page.eval_on_selector_all(
        "#layer-groups .layer", "els => els.map(e => e.dataset.layer)"
    )
    assert sorted(listed) == sorted(c["id"] for c in collections)
    community = page.eval_on_selector_all(
        "section[aria-label='Community layers'] .layer", "els => els.map(e => e.dataset.layer)"
    )
    assert sorted(community) == sorted(
        c["id"] for c in collections if c["keywords"] == ["community"]
    )
    # the default layers are on and their licence/attribution are in the attribution line
    assert visible_layers(page) == ["allotments", "flood_risk"]
    attribution = page.inner_text(".leaflet-control-attribution")
    by_id = {c["id"]: c for c in collections}
    for layer_id in ("flood_risk", "allotments"):
        assert by_id[layer_id]["attribution"] in attribution
        assert by_id[layer_id]["license"] in attribution
    assert "© Environment Agency copyright and/or database right 2018" in attribution
    # the legend of the flood layer lists the four RoFRS bands of SOURCES.md, in order
    legend = page.inner_text("#legend-flood_risk")
    bands = [line.strip() for line in legend.splitlines()[1:]]
    assert bands == ["High", "Medium", "Low", "Very Low"]
    # HTML went to the browser; any other client at / still gets the landing JSON
    assert web_server.get("/").json()["links"]


def test_toggling_a_layer_changes_what_is_drawn(browser, web_server: LiveServer, watch: PageWatch):
    page = open_page(browser, watch)
    page.goto(web_server.url + "/#map=12/53.4189/-2.3657&layers=flood_risk")
    wait_ready(page)
    before = map_pixels(page)
    shot(page, "02-before-toggle")
    page.check("#layer-land_grade")
    wait_drawn(page, "land_grade")
    page.wait_for_load_state("networkidle")
    after = map_pixels(page)
    shot(page, "03-land-grade-on")
    # land grade covers the whole borough: most of the map changes colour
    assert changed_share(before, after) > 0.2
    assert "Grade 2" in page.inner_text("#legend-land_grade")
    assert "Natural England" in page.inner_text(".leaflet-control-attribution")
    assert "layers=flood_risk,land_grade" in page.url or "layers=land_grade,flood_risk" in page.url
    # and off again: the same picture as before, and its credit leaves the attribution line
    page.uncheck("#layer-land_grade")
    page.wait_for_timeout(300)
    again = map_pixels(page)
    assert changed_share(before, again) < 0.01
    assert "Natural England" not in page.inner_text(".leaflet-control-attribution")
    page.uncheck("#layer-flood_risk")
    page.wait_for_timeout(300)
    assert changed_share(before, map_pixels(page)) > 0.01
    assert watch.errors == []


def _big_flood_polygon(web_server: LiveServer, band: str) -> tuple[Point, set[str]]:
    """A point well inside a large polygon of a band, and the bands of every flood polygon
    that holds it (from the API's full GeoJSON, computed with shapely)."""
    fc = web_server.get("/collections/flood_risk/items", params={"limit": 2000}).json()
    feats = [(shape(f["geometry"]), f["properties"]["prob_4band"]) for f in fc["features"]]
    assert len(feats) == 1494  # SOURCES.md
    candidates = [g for g, b in feats if b == band]
    biggest = max(candidates, key=lambda g: to_bng(g).area)
    # the pole of inaccessibility of its largest part: far from any edge at the zoom used
    part = max(getattr(biggest, "geoms", [biggest]), key=lambda p: p.area)
    point = polylabel(part, 1e-6)
    bands = {b for g, b in feats if g.contains(point)}
    return point, bands


def test_clicking_a_flood_polygon_shows_its_band(browser, web_server: LiveServer, watch: PageWatch):
    point, bands = _big_flood_polygon(web_server, "High")
    assert bands == {"High"}
    page = open_page(browser, watch)
    page.goto(f"{web_server.url}/#map=17/{point.y}/{point.x}&layers=flood_risk")
    wait_ready(page)
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    page.wait_for_timeout(400)  # the popup fades in
    shot(page, "04-flood-popup")
    table = popup.locator("table[data-layer=flood_risk]")
    rows = dict(
        zip(
            table.locator("th").all_inner_texts(),
            table.locator("td").all_inner_texts(),
            strict=True,
        )
    )
    assert rows["prob_4band"] == "High"
    assert "What's here?" in popup.inner_text()
    assert watch.errors == []


def test_uploading_a_real_file_adds_a_layer(
    browser, web_server: LiveServer, watch: PageWatch, real_data: Path
):
    page = open_page(browser, watch)
    page.goto(web_server.url + "/")
    wait_ready(page)
    sign_in(page, web_server)  # uploads go with the session cookie and its CSRF header
    page.click("#sec-upload summary")
    # first a file that is not geodata: a plain-words error next to the form
    page.set_input_files("#upload-file", str(real_data / "allotments" / "README.md"))
    page.click("#upload-submit")
    page.wait_for_selector("#upload-message.error")
    error = page.inner_text("#upload-message")
    shot(page, "05-upload-refused")
    assert error and "Traceback" not in error and "Error:" not in error
    # then the real KML of the allotments: 35 sites (SOURCES.md)
    page.set_input_files("#upload-file", str(real_data / "allotments" / "trafford_allotments.kml"))
    page.fill("#upload-title", "Allotments from KML")
    page.fill("#upload-attribution", "Trafford Council; outlines © OpenStreetMap contributors")
    page.select_option("#upload-licence", "ODbL-1.0")
    page.click("#upload-submit")
    count = page.locator("[data-testid=upload-count]")
    count.wait_for(timeout=120_000)
    page.wait_for_load_state("networkidle")
    shot(page, "06-uploaded")
    assert count.inner_text() == "35"
    own = page.eval_on_selector_all(
        "section[aria-label='Your layers'] .layer", "els => els.map(e => e.dataset.layer)"
    )
    assert len(own) == 1
    entry = web_server.get(f"/collections/{own[0]}", headers=web_server.auth).json()
    assert entry["featureCount"] == 35 and entry["title"] == "Allotments from KML"
    # the volunteer's, in their group, private until they share it
    store = open_store(Settings(data_dir=web_server.data_dir))
    try:
        stored = store.get(own[0])
    finally:
        store.close()
    assert (stored.owner, stored.group, stored.visibility) == (
        web_server.user, "trafford-volunteers", "private",
    )  # fmt: skip
    assert web_server.get(f"/collections/{own[0]}").status_code == 404
    assert page.is_checked(f"#layer-{own[0]}")
    assert "outlines © OpenStreetMap contributors" in page.inner_text(
        ".leaflet-control-attribution"
    )
    # the only thing the browser complained about is the refused README (a 415 answer)
    assert len(watch.errors) == 1 and "status of 415" in watch.errors[0]


def test_drawing_a_polygon_gives_the_api_area_report(
    browser, web_server: LiveServer, watch: PageWatch
):
    page = open_page(browser, watch)
    page.goto(web_server.url + "/#map=15/53.4473/-2.3460&layers=flood_risk,allotments,elevation")
    wait_started(page)
    page.wait_for_load_state("networkidle")
    page.click("#sec-draw summary")
    page.click("button[data-draw=Polygon]")
    page.wait_for_selector("button[data-draw=Polygon][aria-pressed=true]")
    box = page.locator("#map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    corners = [(-220, -160), (200, -180), (240, 150), (-180, 170)]
    for dx, dy in corners:
        page.mouse.click(cx + dx, cy + dy)
        page.wait_for_timeout(150)
    with page.expect_request("**/analysis/report") as asked:
        page.mouse.click(cx + corners[0][0], cy + corners[0][1])  # close the ring
    page.wait_for_selector("[data-testid=report-area]", timeout=120_000)
    shot(page, "07-area-report")
    sent = asked.value.post_data_json  # exactly what the page asked the API
    geometry = sent["area"]
    assert geometry["type"] == "Polygon"
    drawn = download_shapes(page)
    assert len(drawn["features"]) == 1 and drawn["features"][0]["geometry"] == geometry
    # the same question asked of the API directly
    api = web_server.post(
        "/analysis/report",
        json={"area": geometry, "layers": ["flood_risk", "allotments", "elevation"]},
    ).json()
    shown_area = float(page.get_attribute("[data-testid=report-area]", "data-value"))
    assert shown_area == api["area_m2"]
    # the API's area is the polygon's area in British National Grid (pyproj + shapely here)
    reference = to_bng(shape(geometry)).area
    assert api["area_m2"] == pytest.approx(reference, rel=1e-6)
    # the page's own measurement (proj4 in the browser) agrees with it
    measured = float(page.get_attribute("[data-testid=drawn-area]", "data-value"))
    assert measured == pytest.approx(reference, rel=1e-4)
    assert "EPSG:27700" in page.inner_text("#measure")
    by_layer = {layer["layer"]: layer for layer in api["layers"]}
    for layer_id in ("flood_risk", "allotments"):
        count = page.get_attribute(
            f"[data-testid=report-count][data-layer={layer_id}]", "data-value"
        )
        assert int(count) == by_layer[layer_id]["count"]
        amount = page.get_attribute(
            f"[data-testid=report-amount][data-layer={layer_id}]", "data-value"
        )
        assert float(amount) == pytest.approx(by_layer[layer_id]["amount"], rel=1e-12)
    assert by_layer["flood_risk"]["count"] > 0  # the area was drawn over the Mersey valley
    stats = by_layer["elevation"]["stats"]
    mean = page.get_attribute("[data-testid=report-stats] [data-stat=mean]", "data-value")
    assert float(mean) == pytest.approx(stats["mean"], rel=1e-12)
    assert 6.5 <= stats["mean"] <= 86.0  # the DEM's range (SOURCES.md)
    assert watch.errors == []


def _shapes_param(coords: list[list[float]]) -> str:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Polygon", "coordinates": [coords]},
            }
        ],
    }
    raw = json.dumps(fc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_saved_map_link_reopens_the_same_view(browser, web_server: LiveServer, watch: PageWatch):
    ring = [[-2.36, 53.44], [-2.34, 53.44], [-2.34, 53.45], [-2.36, 53.44]]
    page = open_page(browser, watch)
    page.goto(
        f"{web_server.url}/#map=14/53.4450/-2.3500&layers=land_grade:60,allotments"
        f"&shapes={_shapes_param(ring)}"
    )
    wait_ready(page)
    page.click("#sec-share summary")
    page.fill("#share-title", "Allotments on good land")
    page.click("#share-save")
    link = page.locator("#share-url")
    link.wait_for()
    url = link.get_attribute("href")
    shot(page, "08-saved")
    map_id = url.rsplit("/", 1)[1]
    saved = web_server.get(f"/maps/{map_id}").json()
    assert saved["title"] == "Allotments on good land"
    assert saved["view"]["zoom"] == 14
    assert saved["view"]["center"] == pytest.approx([53.445, -2.35], abs=1e-4)
    assert {(x["id"], x["opacity"]) for x in saved["layers"]} == {
        ("land_grade", 0.6),
        ("allotments", 1.0),
    }
    saved_ring = saved["shapes"]["features"][0]["geometry"]["coordinates"][0]
    np.testing.assert_allclose(saved_ring, ring, atol=1e-9)
    # someone else opens the link in a fresh browser (no storage shared)
    other = open_page(browser, watch)
    other.goto(url)
    wait_ready(other)
    shot(other, "09-reopened")
    assert urlparse(other.url).query == f"map={map_id}"
    assert visible_layers(other) == ["allotments", "land_grade"]
    assert other.input_value("#opacity-land_grade") == "60"
    view = hash_params(other)["map"].split("/")
    assert int(view[0]) == 14
    assert [float(view[1]), float(view[2])] == pytest.approx([53.445, -2.35], abs=1e-3)
    other.click("#sec-draw summary")
    shapes = download_shapes(other)
    np.testing.assert_allclose(shapes["features"][0]["geometry"]["coordinates"][0], ring, atol=1e-9)
    assert other.title().startswith("Allotments on good land")
    assert watch.errors == []


def test_phone_sized_viewport(browser, web_server: LiveServer, watch: PageWatch):
    page = open_page(browser, watch, width=390, height=844, is_mobile=True, has_touch=True)
    page.goto(web_server.url + "/")
    wait_ready(page)
    shot(page, "10-phone")
    # the panel starts closed and the map fills the screen, with nothing to scroll sideways
    assert page.is_hidden("#panel")
    assert page.get_attribute("#panel-toggle", "aria-expanded") == "false"
    width = page.evaluate("document.getElementById('map').getBoundingClientRect().width")
    assert width == pytest.approx(390, abs=1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # the panel opens from the keyboard, and a layer can be switched on with it
    page.focus("#panel-toggle")
    page.keyboard.press("Enter")
    assert page.is_visible("#panel")
    page.focus("#layer-land_grade")
    page.keyboard.press("Space")
    wait_drawn(page, "land_grade")
    shot(page, "11-phone-panel")
    assert "land_grade" in visible_layers(page)
    page.click("#panel-toggle")
    assert page.is_hidden("#panel")
    page.wait_for_load_state("networkidle")
    shot(page, "12-phone-land-grade")
    assert watch.errors == []


def test_compare_allotments_with_flood_risk(browser, web_server: LiveServer, watch: PageWatch):
    page = open_page(browser, watch)
    page.goto(web_server.url + "/")
    wait_ready(page)
    page.click("#sec-compare summary")
    page.wait_for_selector("#compare-left option[value=allotments]", state="attached")
    page.select_option("#compare-left", "allotments")
    page.select_option("#compare-right", "flood_risk")
    page.wait_for_selector("#compare-by option[value=prob_4band]", state="attached")
    page.select_option("#compare-by", "prob_4band")
    page.click("#compare-form button[type=submit]")
    table = page.locator("[data-testid=compare-summary]")
    table.wait_for()
    page.wait_for_timeout(300)
    shot(page, "13-compare")
    assert page.is_hidden("#compare-distance-row")  # only asked for "within a distance"
    api = web_server.post(
        "/analysis/compare",
        json={
            "left": "allotments",
            "right": "flood_risk",
            "predicate": "intersects",
            "by": "prob_4band",
        },
    ).json()
    # SOURCES.md: 8 of the 35 allotments touch a RoFRS polygon
    assert (api["left_matched"], api["left_total"]) == (8, 35)
    assert "8 of 35" in page.inner_text("#compare-message")
    assert page.inner_text("[data-testid=compare-licences]").startswith("Made from ")
    by_band = {row["class"]: row["left_features"] for row in api["summary"]}
    assert by_band == {"(any)": 8, "High": 4, "Medium": 5, "Low": 4, "Very Low": 2}
    headers = table.locator("th").all_inner_texts()
    shown = [
        dict(zip(headers, row.locator("td").all_inner_texts(), strict=True))
        for row in table.locator("tbody tr").all()
    ]
    assert len(shown) == len(api["summary"])
    for got, want in zip(shown, api["summary"], strict=True):
        assert {k: str(v) for k, v in want.items()} == got
    # the matching allotments are drawn on top of the map, one outline per pair
    outlines = page.locator(".leaflet-overlay-pane path").count()
    assert outlines == len(api["matches"]["features"])
    assert watch.errors == []


def test_find_a_name_and_a_grid_reference(browser, web_server: LiveServer, watch: PageWatch):
    page = open_page(browser, watch)
    page.goto(web_server.url + "/")
    wait_ready(page)
    page.click("#sec-find summary")
    fc = web_server.get("/collections/allotments/items", params={"limit": 1}).json()
    name = fc["features"][0]["properties"]["name"]
    page.fill("#find-text", name.split()[0])
    page.press("#find-text", "Enter")
    hit = page.locator("#find-results button", has_text=name).first
    hit.wait_for()
    hit.click()
    page.wait_for_timeout(500)
    shot(page, "14-find-name")
    _z, lat, lon = map_view(page)
    centre = (lon, lat)
    assert shape(fc["features"][0]["geometry"]).buffer(0.002).contains(Point(centre))
    # a grid reference goes to the centre of its square (pyproj's answer, to a metre or so)
    page.fill("#find-text", "SJ 79 90")
    page.press("#find-text", "Enter")
    page.wait_for_function("document.getElementById('find-results').innerText.includes('SJ 79 90')")
    _z, lat, lon = map_view(page)
    to_lonlat = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True)
    want_lon, want_lat = to_lonlat.transform(379500, 390500)
    assert lon == pytest.approx(want_lon, abs=5e-5) and lat == pytest.approx(want_lat, abs=5e-5)
    assert watch.errors == []


def test_dropping_a_csv_on_the_map_adds_it(
    browser, web_server: LiveServer, watch: PageWatch, real_data: Path
):
    source = (
        real_data / "flood_risk_rofrs" / "water_level_monitoring_stations_trafford_and_environs.csv"
    )
    page = open_page(browser, watch)
    page.goto(web_server.url + "/")
    wait_ready(page)
    sign_in(page, web_server)
    # a real drag and drop of the file onto the map (a DataTransfer holding it)
    drop = page.evaluate_handle(
        """([name, text]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], name, { type: "text/csv" }));
            return dt;
        }""",
        [source.name, source.read_text("utf-8")],
    )
    page.dispatch_event("#map", "dragenter", {"dataTransfer": drop})
    assert page.is_visible("#drop-zone")
    page.dispatch_event("#map", "drop", {"dataTransfer": drop})
    assert page.is_hidden("#drop-zone")
    assert (
        page.input_value("#upload-title") == "water level monitoring stations trafford and environs"
    )
    page.fill("#upload-attribution", "© Environment Agency copyright and/or database right 2025.")
    page.click("#upload-submit")
    count = page.locator("[data-testid=upload-count]")
    count.wait_for(timeout=120_000)
    shot(page, "15-dropped-csv")
    assert count.inner_text() == "19"  # SOURCES.md: 19 EA stations
    assert watch.errors == []


def test_whats_here_on_a_clicked_polygon(browser, web_server: LiveServer, watch: PageWatch):
    fc = web_server.get("/collections/allotments/items", params={"limit": 100}).json()
    biggest = max(fc["features"], key=lambda f: to_bng(shape(f["geometry"])).area)
    inside = polylabel(
        max(getattr(g := shape(biggest["geometry"]), "geoms", [g]), key=lambda p: p.area)
    )
    page = open_page(browser, watch)
    page.goto(f"{web_server.url}/#map=17/{inside.y}/{inside.x}&layers=allotments,flood_risk")
    wait_ready(page)
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.locator(".leaflet-popup-content .whats-here[data-layer=allotments]").click()
    page.wait_for_selector("[data-testid=report-area]", timeout=120_000)
    shot(page, "16-whats-here")
    shown = float(page.get_attribute("[data-testid=report-area]", "data-value"))
    # the report is for the allotment's whole outline from the API, in British National Grid
    assert shown == pytest.approx(to_bng(shape(biggest["geometry"])).area, rel=1e-6)
    count = page.get_attribute("[data-testid=report-count][data-layer=allotments]", "data-value")
    assert int(count) >= 1
    assert watch.errors == []


def test_drawing_a_line_measures_it(browser, web_server: LiveServer, watch: PageWatch):
    page = open_page(browser, watch)
    page.goto(web_server.url + "/#map=14/53.4473/-2.3460&layers=")
    wait_started(page)
    page.click("#sec-draw summary")
    page.click("button[data-draw=Line]")
    page.wait_for_selector("button[data-draw=Line][aria-pressed=true]")
    box = page.locator("#map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for dx, dy in [(-200, 0), (0, 120), (220, -60)]:
        page.mouse.click(cx + dx, cy + dy)
        page.wait_for_timeout(150)
    page.mouse.click(cx + 220, cy - 60)  # clicking the last point again finishes the line
    page.wait_for_selector("[data-testid=drawn-length]")
    shot(page, "17-line")
    line = download_shapes(page)["features"][0]["geometry"]
    assert line["type"] == "LineString" and len(line["coordinates"]) == 3
    measured = float(page.get_attribute("[data-testid=drawn-length]", "data-value"))
    assert measured == pytest.approx(to_bng(shape(line)).length, rel=1e-4)
    assert " km" in page.inner_text("#measure")
    assert watch.errors == []
