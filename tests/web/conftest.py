"""Browser fixtures: a live ``landexplorer serve`` on loopback over a copy of the demo
catalogue (basemap ``none``, uploads allowed with a token), and Debian's Chromium driven by
Playwright. Screenshots of each step go to ``test-artifacts/web/``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from landexplorer.settings import Settings
from tests.live import serve

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
TOKEN = "web-test-token-5678"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WEB_DIR = Path(__file__).resolve().parents[2] / "landexplorer" / "web" / "node_modules"


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    token: str = TOKEN

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=60, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=120, **kw)


@pytest.fixture(scope="session")
def web_server(
    demo_gpkg_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The page and the API on a free loopback port, over a private copy of the demo
    catalogue (the upload test adds a layer; the shared demo must stay unchanged). The
    browser tests run on the GeoPackage store only: the page sees the same API on both, and
    the API's own tests cover PostGIS."""
    if not WEB_DIR.is_dir():
        message = "the web map's npm packages are not installed (make install runs npm ci)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    data_dir = tmp_path_factory.mktemp("web") / "data"
    shutil.copytree(demo_gpkg_settings.data_dir, data_dir)
    env = {"LANDEXPLORER_BASEMAP": "none", "LANDEXPLORER_WRITE_TOKEN": TOKEN}
    with serve(data_dir, env=env, ready_path="/config.json") as url:
        yield LiveServer(url, data_dir)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (never a downloaded browser build)."""
    if not CHROMIUM.exists():
        message = "Chromium is not installed at /usr/bin/chromium (scripts/system-deps.sh)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


@dataclass
class PageWatch:
    """What the page said: console errors, uncaught exceptions, failed requests."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()


def open_page(
    browser: Any, watch: PageWatch, width: int = 1280, height: int = 800, **kw: Any
) -> Any:
    """A fresh page (own context: no shared storage) that records problems into ``watch``."""
    context = browser.new_context(viewport={"width": width, "height": height}, **kw)
    page = context.new_page()
    page.on(
        "console",
        lambda m: watch.errors.append(f"console: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: watch.errors.append(f"exception: {e}"))
    page.on("requestfailed", lambda r: watch.errors.append(f"request failed: {r.url} {r.failure}"))
    page.on("request", lambda r: watch.requests.append(r.url))
    page.set_default_timeout(30_000)
    return page


def wait_ready(page: Any) -> None:
    """The page has its layers and has painted the vector tiles of the layers shown."""
    page.wait_for_function("window.landexplorer && window.landexplorer.ready === true")
    page.wait_for_function("window.landexplorer.firstVectorTile !== null")
    page.wait_for_load_state("networkidle")


def shot(page: Any, name: str) -> Path:
    """Save a screenshot of the step as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
