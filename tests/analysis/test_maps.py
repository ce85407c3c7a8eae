"""The folium map: layers styled by class, popups, legend, credits, and it opens offline
(no script or stylesheet from the network), checked in headless Chromium."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from landexplorer.cli import main
from landexplorer.maps import LEAFLET_DIST, write_map

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _remote_assets(html: str) -> list[str]:
    """Every script/stylesheet/image the page would fetch from http(s)."""
    tags = re.findall(r"<(?:script|link|img)\b[^>]*>", html, flags=re.IGNORECASE)
    found = []
    for tag in tags:
        found += re.findall(r"""(?:src|href)\s*=\s*["']?(https?:[^"' >]+)""", tag, re.I)
    found += re.findall(r"""@import\s+(?:url\()?["']?(https?:[^"')]+)""", html)
    return found


@pytest.fixture
def comparison_map(demo_store, tmp_path) -> Path:
    if not (LEAFLET_DIST / "leaflet.js").exists():
        pytest.fail("Leaflet is not installed: run `make install` (npm ci in landexplorer/web)")
    return write_map(
        demo_store,
        ["street_trees"],
        tmp_path / "map.html",
        compare=("allotments", "flood_risk"),
        by="prob_4band",
    )


def test_map_html_is_self_contained(comparison_map):
    html = comparison_map.read_text(encoding="utf-8")
    assert _remote_assets(html) == []
    assert "L.map(" in html or "L.map (" in html  # Leaflet inlined and used
    assert "Environment Agency" in html and "OpenStreetMap contributors" in html  # credits
    for band in ("High", "Medium", "Low", "Very Low"):
        assert band in html  # legend classes
    assert "allotments by prob_4band" in html


def test_map_opens_offline_in_a_browser(comparison_map):
    if not CHROMIUM.exists():
        message = "Chromium is not installed at /usr/bin/chromium"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        context = browser.new_context(offline=True)
        page = context.new_page()
        problems: list[str] = []
        requests: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(comparison_map.as_uri())
        page.wait_for_selector(".leaflet-interactive", timeout=15_000)
        shapes = page.evaluate("document.querySelectorAll('.leaflet-interactive').length")
        attribution = page.inner_text(".leaflet-control-attribution")
        browser.close()
    assert problems == []
    assert [u for u in requests if u.startswith("http")] == []
    assert shapes > 35  # 35 allotments + trees + flood polygons near them
    assert "Environment Agency" in attribution


def test_map_command(capsys, demo_settings, tmp_path):
    target = tmp_path / "out" / "trees.html"
    code = main(
        [
            "--data-dir",
            str(demo_settings.data_dir),
            "map",
            "allotments",
            "greenspace",
            "--out",
            str(target),
        ]
    )
    assert code == 0 and target.exists()
    assert _remote_assets(target.read_text(encoding="utf-8")) == []
    code = main(["--data-dir", str(demo_settings.data_dir), "map", "--out", str(target)])
    assert code == 1
