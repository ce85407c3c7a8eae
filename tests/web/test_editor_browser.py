"""Editing features on the web page, in Debian's Chromium against a live two-worker
server (``serve``'s default on two cores) over a fresh GeoPackage catalogue: a steward
adds a point and an area, moves a vertex, changes attributes, deletes, and undoes; two
people edit the same layer at once and each sees the other's edit arrive over the live
feed; a save over a change someone else made first shows both versions and lets the
person choose; a visitor who may not edit gets no editing tools but still sees edits
arrive. What the page saved is read back through the API each time."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from landexplorer.access.store import AccessStore
from landexplorer.catalog import open_store
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings
from tests.live import serve
from tests.people import bearer, make_token
from tests.web.conftest import PageWatch, open_page, shot, wait_started

PASSWORD = "pear-grafting-3-springs"
GROUP = "sale-orchards"
ZOOM = 16
#: the view's centre: Walton Park orchard, the first row of the layer
CENTRE = (-2.3263, 53.4231)

ORCHARDS_CSV = """name,lon,lat,trees
Walton Park orchard,-2.3263,53.4231,14
Sale Water Park edge,-2.2979,53.4367,9
Ashton-on-Mersey plot,-2.3412,53.4306,22
"""

SPACES_GEOJSON = """{"type": "FeatureCollection", "features": [
 {"type": "Feature", "properties": {"name": "Old bowling green", "beds": 4},
  "geometry": {"type": "Polygon", "coordinates": [[[-2.300, 53.440], [-2.298, 53.440],
   [-2.298, 53.441], [-2.300, 53.441], [-2.300, 53.440]]]}}]}"""


@dataclass
class EditServer:
    url: str
    settings: Settings
    #: bearer headers of a reader who may see every layer (to check what was saved)
    reader: dict[str, str]

    def item(self, layer: str, fid: Any) -> httpx.Response:
        return httpx.get(
            f"{self.url}/collections/{layer}/items/{fid}", headers=self.reader, timeout=30
        )


@pytest.fixture(scope="module")
def edit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EditServer]:
    """ana (steward) and ben (contributor) of one group that owns a public point layer and
    a group-only area layer; cai is signed up but in no group."""
    root = tmp_path_factory.mktemp("editor")
    settings = Settings(data_dir=root / "data")
    store = open_store(settings)
    access = AccessStore.beside(store)
    try:
        for name in ("ana", "ben", "cai"):
            access.add_user(name, password=PASSWORD, display=name.title())
        access.add_group(GROUP, "Sale orchards")
        access.set_member(GROUP, "ana", "steward")
        access.set_member(GROUP, "ben", "contributor")
        orchards = root / "orchards.csv"
        orchards.write_text(ORCHARDS_CSV, "utf-8")
        ingest(
            store,
            orchards,
            IngestOptions(id="orchards", title="Orchards", owner="ana", group=GROUP,
                          visibility="public", licence="CC-BY-4.0",
                          attribution="Sale orchard volunteers"),
        )  # fmt: skip
        spaces = root / "spaces.geojson"
        spaces.write_text(SPACES_GEOJSON, "utf-8")
        ingest(
            store,
            spaces,
            IngestOptions(id="growing_spaces", title="Growing spaces", owner="ana",
                          group=GROUP, visibility="group"),
        )  # fmt: skip
    finally:
        access.close()
        store.close()
    reader = bearer(make_token(settings, "site-reader", admin=True, scope="read"))
    env = {"LANDEXPLORER_BASEMAP": "none"}
    with serve(settings.data_dir, workers=2, env=env, ready_path="/config.json") as url:
        yield EditServer(url, settings, reader)


# ----- moving about the map ---------------------------------------------------------------
def _world_px(lon: float, lat: float) -> tuple[float, float]:
    """Web-mercator pixel of a point at ``ZOOM`` (256-pixel tiles)."""
    size = 256 * 2**ZOOM
    x = (lon + 180) / 360 * size
    s = math.sin(math.radians(lat))
    y = (0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)) * size
    return x, y


def _lonlat(x: float, y: float) -> tuple[float, float]:
    size = 256 * 2**ZOOM
    lon = x / size * 360 - 180
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / size))))
    return lon, lat


def screen_of(page: Any, lon: float, lat: float) -> tuple[float, float]:
    """Where on the screen a point is, with the map opened at ``CENTRE``, ``ZOOM``."""
    box = page.locator("#map").bounding_box()
    cx, cy = _world_px(*CENTRE)
    x, y = _world_px(lon, lat)
    return box["x"] + box["width"] / 2 + (x - cx), box["y"] + box["height"] / 2 + (y - cy)


def lonlat_at(page: Any, sx: float, sy: float) -> tuple[float, float]:
    """The point under a screen position (the inverse of ``screen_of``)."""
    box = page.locator("#map").bounding_box()
    cx, cy = _world_px(*CENTRE)
    return _lonlat(cx + sx - box["x"] - box["width"] / 2, cy + sy - box["y"] - box["height"] / 2)


def near(a: list[float] | tuple[float, ...], b: tuple[float, float], pixels: float = 3) -> bool:
    """Two points within a few screen pixels of each other at ``ZOOM``."""
    ax, ay = _world_px(a[0], a[1])
    bx, by = _world_px(*b)
    return math.hypot(ax - bx, ay - by) <= pixels


# ----- the page -----------------------------------------------------------------------------
def open_map(browser: Any, watch: PageWatch, server: EditServer, layers: str) -> Any:
    page = open_page(browser, watch)
    page.goto(f"{server.url}/#map={ZOOM}/{CENTRE[1]}/{CENTRE[0]}&layers={layers}")
    wait_started(page)
    return page


def sign_in(page: Any, name: str) -> None:
    page.click("#sign-in-open")
    page.fill("#sign-in-name", name)
    page.fill("#sign-in-password", PASSWORD)
    page.press("#sign-in-password", "Enter")
    page.wait_for_selector("#account-signed-in:not([hidden])")
    page.wait_for_selector("#sec-edit:not([hidden])")
    if not page.evaluate("document.getElementById('sec-edit').open"):
        page.click("#sec-edit summary")


def said(page: Any, start: str) -> str:
    """Wait until the page's status line starts with ``start``; give the whole line."""
    page.wait_for_function(
        "s => document.getElementById('status').textContent.startsWith(s)", arg=start
    )
    return str(page.inner_text("#status"))


def field(page: Any, column: str) -> Any:
    return page.locator(f"#edit-fields input[data-column='{column}']")


def open_feature_at(page: Any, layer: str, lon: float, lat: float) -> str:
    """Choose the feature under a point with the page's "Choose a feature" tool; its id."""
    page.select_option("#edit-layer", layer)
    page.click("#edit-pick")
    page.mouse.click(*screen_of(page, lon, lat))
    said(page, "Editing feature ")
    return str(page.get_attribute("#edit-form", "data-feature"))


def live_changes(page: Any) -> int:
    return int(page.evaluate("Number(document.body.dataset.liveChanges || 0)"))


def wait_following(page: Any, layer: str) -> None:
    page.wait_for_function(
        "id => (document.body.dataset.liveFeeds || '').split(',').includes(id)", arg=layer
    )


def wait_live_change(page: Any, before: int, timeout_s: float = 20) -> float:
    """Wait until the page has redrawn a layer for another live change; seconds taken."""
    t0 = time.perf_counter()
    page.wait_for_function(
        "n => Number(document.body.dataset.liveChanges || 0) > n",
        arg=before,
        timeout=timeout_s * 1000,
    )
    return time.perf_counter() - t0


# ----- the tests ------------------------------------------------------------------------------
def test_steward_adds_moves_changes_deletes_and_undoes(
    browser: Any, edit_server: EditServer, watch: PageWatch
) -> None:
    page = open_map(browser, watch, edit_server, "orchards")
    sign_in(page, "ana")
    options = page.eval_on_selector_all("#edit-layer option", "els => els.map(e => e.value)")
    assert sorted(options) == ["growing_spaces", "orchards"]

    # add a point: one click on the map, the form from the layer's columns, Save
    page.select_option("#edit-layer", "orchards")
    assert page.inner_text("#edit-add") == "Add a point"
    page.click("#edit-add")
    said(page, "Click the map where the new point goes")
    box = page.locator("#map").bounding_box()
    at = (box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2 + 60)
    page.mouse.click(*at)
    assert field(page, "trees").get_attribute("type") == "number"
    field(page, "name").fill("Crossford Bridge orchard")
    field(page, "trees").fill("5.5")
    page.click("#edit-save")
    assert said(page, "“trees” needs a whole number").endswith("is not one.")
    field(page, "trees").fill("5")
    page.click("#edit-save")
    added = said(page, "Saved: feature ")
    fid = page.get_attribute("#edit-form", "data-feature")
    assert fid and f"feature {fid} was added to Orchards" in added
    shot(page, "edit-01-added")
    saved = edit_server.item("orchards", fid).json()
    assert saved["properties"]["name"] == "Crossford Bridge orchard"
    assert saved["properties"]["trees"] == 5
    assert near(saved["geometry"]["coordinates"], lonlat_at(page, *at))

    # move it: drag its handle, Save
    handle = page.locator(".edit-handle").first
    hb = handle.bounding_box()
    start = (hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2)
    to = (start[0] - 80, start[1] + 40)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*to, steps=8)
    page.mouse.up()
    said(page, "Moved. Save to keep it.")
    page.click("#edit-save")
    said(page, f"Saved: feature {fid} of Orchards was changed.")
    moved = edit_server.item("orchards", fid).json()
    assert near(moved["geometry"]["coordinates"], lonlat_at(page, *to))
    assert not near(moved["geometry"]["coordinates"], lonlat_at(page, *at))

    # change an attribute, then undo it: back as it was, its place too
    field(page, "trees").fill("7")
    page.click("#edit-save")
    said(page, f"Saved: feature {fid} of Orchards was changed.")
    assert edit_server.item("orchards", fid).json()["properties"]["trees"] == 7
    page.click("#edit-undo")
    said(page, f"Undone: feature {fid} is back as it was before your change.")
    assert edit_server.item("orchards", fid).json()["properties"]["trees"] == 5
    assert page.input_value("#edit-fields input[data-column='trees']") == "5"

    # delete (the page asks first), then undo: the feature is back under its own id
    page.once("dialog", lambda d: d.accept())
    page.click("#edit-delete")
    said(page, f"Deleted feature {fid} of Orchards.")
    assert edit_server.item("orchards", fid).status_code == 404
    assert page.is_hidden("#edit-form")
    page.click("#edit-undo")
    said(page, f"Undone: feature {fid} is back.")
    back = edit_server.item("orchards", fid).json()
    assert back["properties"] == saved["properties"] | {"trees": 5}
    assert near(back["geometry"]["coordinates"], lonlat_at(page, *to))

    # add an area: three corners, then Save (the ring is closed for the person)
    page.click("#edit-stop")
    page.select_option("#edit-layer", "growing_spaces")
    assert page.inner_text("#edit-add") == "Add an area"
    page.click("#edit-add")
    said(page, "Click the map to place each corner of the new area")
    corners = [(at[0] - 200, at[1] - 150), (at[0] - 100, at[1] - 150), (at[0] - 150, at[1] - 80)]
    page.click("#edit-save")
    said(page, "Click the map to place at least three corners of the area first.")
    for corner in corners:
        page.mouse.click(*corner)
    field(page, "name").fill("Church hall beds")
    field(page, "beds").fill("2")
    page.click("#edit-save")
    said(page, "Saved: feature ")
    area_id = page.get_attribute("#edit-form", "data-feature")
    shot(page, "edit-02-area-added")
    area = edit_server.item("growing_spaces", area_id).json()
    assert area["properties"] == {"name": "Church hall beds", "beds": 2}
    rings = area["geometry"]["coordinates"]
    ring = rings[0][0] if area["geometry"]["type"] == "MultiPolygon" else rings[0]
    assert len(ring) == 4 and ring[0] == ring[-1]
    for got, corner in zip(ring[:3], corners, strict=True):
        assert near(got, lonlat_at(page, *corner))
    assert watch.errors == []
    page.context.close()


def test_two_people_see_each_others_edits_and_a_conflict_is_shown(
    browser: Any, edit_server: EditServer
) -> None:
    watch_a, watch_b = PageWatch(), PageWatch()
    a = open_map(browser, watch_a, edit_server, "orchards")
    b = open_map(browser, watch_b, edit_server, "orchards")
    sign_in(a, "ana")
    sign_in(b, "ben")
    wait_following(a, "orchards")
    wait_following(b, "orchards")
    a.wait_for_timeout(300)  # both feeds have said "ready"

    # ana changes the orchard at the centre; ben's map redraws it from his live feed
    fid = open_feature_at(a, "orchards", *CENTRE)
    assert a.input_value("#edit-fields input[data-column='name']") == "Walton Park orchard"
    seen_b = live_changes(b)
    field(a, "trees").fill("15")
    a.click("#edit-save")
    said(a, f"Saved: feature {fid} of Orchards was changed.")
    took = wait_live_change(b, seen_b)
    print(f"ana's save reached ben's map (feed, then the layer read again) in {took:.2f} s")
    assert edit_server.item("orchards", fid).json()["properties"]["trees"] == 15

    # ben opens it (he reads ana's version), then ana renames it before ben saves
    assert open_feature_at(b, "orchards", *CENTRE) == fid
    assert b.input_value("#edit-fields input[data-column='trees']") == "15"
    field(a, "name").fill("Walton Park community orchard")
    a.click("#edit-save")
    said(a, f"Saved: feature {fid} of Orchards was changed.")
    field(b, "trees").fill("20")
    b.click("#edit-save")
    b.wait_for_selector("#edit-conflict:not([hidden])")
    words = b.inner_text("#edit-conflict-text")
    assert words.startswith(f"Someone else changed feature {fid} after you opened it")
    rows = {
        r.locator("th").inner_text(): (
            r.locator("td[data-side=theirs]").inner_text(),
            r.locator("td[data-side=mine]").inner_text(),
        )
        for r in b.locator("#edit-conflict-rows tr").all()
    }
    assert rows["name"] == ("Walton Park community orchard", "Walton Park orchard")
    assert rows["trees"] == ("15", "20")
    assert "differs" in (b.locator("#edit-conflict-rows tr").first.get_attribute("class") or "")
    shot(b, "edit-03-conflict")
    # nothing of ben's was stored
    assert edit_server.item("orchards", fid).json()["properties"] == {
        "name": "Walton Park community orchard",
        "trees": 15,
    }

    # ben puts his over theirs; ana's map gets it live
    seen_a = live_changes(a)
    b.click("#edit-put-mine")
    said(b, f"Saved: feature {fid} of Orchards was changed.")
    assert b.is_hidden("#edit-conflict")
    took = wait_live_change(a, seen_a)
    print(f"ben's save reached ana's map in {took:.2f} s")
    assert edit_server.item("orchards", fid).json()["properties"] == {
        "name": "Walton Park orchard",
        "trees": 20,
    }

    # ana, whose open copy is now stale, saves again and keeps theirs (ben's) instead
    field(a, "trees").fill("3")
    a.click("#edit-save")
    a.wait_for_selector("#edit-conflict:not([hidden])")
    a.click("#edit-keep-theirs")
    said(a, f"Kept their version of feature {fid}; your change was not saved.")
    assert a.input_value("#edit-fields input[data-column='trees']") == "20"
    assert edit_server.item("orchards", fid).json()["properties"]["trees"] == 20
    # the browser logs each refused save (412) itself; nothing else went wrong
    refused = "the server responded with a status of 412 (Precondition Failed)"
    assert [e for e in watch_a.errors + watch_b.errors if refused not in e] == []
    assert sum(refused in e for e in watch_b.errors) == 1
    assert sum(refused in e for e in watch_a.errors) == 1
    a.context.close()
    b.context.close()


def test_visitor_gets_no_editing_tools_but_sees_edits_arrive(
    browser: Any, edit_server: EditServer, watch: PageWatch
) -> None:
    page = open_map(browser, watch, edit_server, "orchards")
    wait_following(page, "orchards")
    assert page.is_hidden("#sec-edit")
    anon = httpx.get(f"{edit_server.url}/collections/orchards", timeout=30)
    assert anon.json()["mayChange"] is False
    assert "private" not in anon.headers.get("cache-control", "")
    feed = [link for link in anon.json()["links"] if link.get("type") == "text/event-stream"]
    assert feed and feed[0]["href"].endswith("/collections/orchards/changes/live")
    # a contributor who is signed in gets mayChange, and an answer no shared cache keeps
    ben = bearer(make_token(edit_server.settings, "ben", admin=False))
    mine = httpx.get(f"{edit_server.url}/collections/orchards", headers=ben, timeout=30)
    assert mine.json()["mayChange"] is True
    assert mine.headers["cache-control"].startswith("private")
    # cai, signed in but in no group: the public layer, no tools
    cai = bearer(make_token(edit_server.settings, "cai", admin=False))
    assert (
        httpx.get(f"{edit_server.url}/collections/orchards", headers=cai, timeout=30).json()[
            "mayChange"
        ]
        is False
    )

    # an edit through the API reaches the visitor's map
    page.wait_for_timeout(300)
    seen = live_changes(page)
    url = f"{edit_server.url}/collections/orchards/items"
    created = httpx.post(
        url,
        headers=ben | {"Content-Type": "application/geo+json"},
        json={
            "type": "Feature",
            "properties": {"name": "Dane Road orchard", "trees": 6},
            "geometry": {"type": "Point", "coordinates": [-2.3250, 53.4225]},
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    took = wait_live_change(page, seen)
    print(f"an edit through the API reached a visitor's map in {took:.2f} s")
    shot(page, "edit-04-visitor-saw-edit")
    assert watch.errors == []
    page.context.close()
