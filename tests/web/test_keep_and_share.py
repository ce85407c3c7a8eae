"""In the browser (Playwright, Debian's Chromium): a comparison says what it is made from
and what that obliges; a signed-in volunteer keeps its matches as a layer of their own,
private to them and their group's stewards; a map saved with that layer on it, opened by
someone signed out, shows the rest of the map and says "1 layer on this map is not
available to you", without the layer's name."""

from __future__ import annotations

import httpx

from tests.web.conftest import (
    LiveServer,
    PageWatch,
    open_page,
    shot,
    sign_in,
    wait_ready,
    wait_started,
)

KEPT = "vera_allotments_at_risk"


def test_keep_a_comparison_and_share_a_map_with_it(
    browser, web_server: LiveServer, watch: PageWatch
) -> None:
    page = open_page(browser, watch)
    page.goto(web_server.url + "/")
    wait_ready(page)
    sign_in(page, web_server)
    try:
        page.click("#sec-compare summary")
        page.wait_for_selector("#compare-left option[value=allotments]", state="attached")
        page.select_option("#compare-left", "allotments")
        page.select_option("#compare-right", "flood_risk")
        page.click("#compare-form button[type=submit]")
        page.locator("[data-testid=compare-summary]").wait_for()
        line = page.inner_text("[data-testid=compare-licences]")
        api = web_server.post(
            "/analysis/compare", json={"left": "allotments", "right": "flood_risk"}
        ).json()
        assert line.startswith(api["licences"]["summary"])
        page.fill("#compare-keep-name", "Vera allotments at risk")
        page.click("#compare-keep")
        page.wait_for_selector("#compare-keep-message.ok")
        said = page.inner_text("#compare-keep-message")
        assert said.startswith(f"Kept as '{KEPT}' ({api['pairs']} features)"), said
        shot(page, "30-kept-comparison")
        layer = web_server.get(f"/collections/{KEPT}", headers=web_server.auth)
        assert layer.status_code == 200, layer.text
        assert web_server.get(f"/collections/{KEPT}").status_code == 404  # private
        # the kept layer is on the map: save the map with it
        page.click("#sec-share summary")
        page.fill("#share-title", "Allotments at risk")
        page.click("#share-save")
        page.locator("#share-url").wait_for()
        assert "Made from " in page.inner_text("[data-testid=share-licences]")
        url = page.locator("#share-url").get_attribute("href")
        assert url
        address = "/maps/" + url.rsplit("/", 1)[1]
        assert web_server.get(address).json()["unavailable"] == 1  # signed out
        mine = web_server.get(address, headers=web_server.auth).json()
        assert KEPT in {x["id"] for x in mine["layers"]}
        # someone signed out opens the link in a fresh browser
        other = open_page(browser, watch)
        other.goto(url)
        wait_started(other)
        other.wait_for_function(
            "document.getElementById('status').textContent.includes('not available to you')"
        )
        assert other.inner_text("#status") == "1 layer on this map is not available to you."
        assert KEPT not in other.content()
        shot(other, "31-shared-map-signed-out")
        other.context.close()
    finally:  # the server is shared with the other browser tests: leave it as it was
        httpx.delete(f"{web_server.url}/collections/{KEPT}", headers=web_server.auth, timeout=60)
        page.context.close()
    assert not watch.errors, watch.errors
