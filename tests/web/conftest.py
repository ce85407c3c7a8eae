"""Browser fixtures: a live ``landexplorer serve`` on loopback over a copy of the demo
catalogue (basemap ``none``; a volunteer who signs in to upload), and Debian's Chromium
driven by Playwright. Screenshots of each step go to ``test-artifacts/web/``."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from landexplorer.settings import Settings
from tests.live import serve
from tests.people import bearer, make_token

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
#: The volunteer who signs in on the page to upload: a contributor of one group.
VOLUNTEER = "vera"
PASSWORD = "hedge-laying-4-ever"
GROUP = "trafford-volunteers"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
HILLSHADE_CREDIT = "Basemap from this server's elevation grid"


def _closed_port() -> int:
    """A loopback port nobody listens on (taken from the system, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


UNREACHABLE = f"http://127.0.0.1:{_closed_port()}"
WEB_DIR = Path(__file__).resolve().parents[2] / "landexplorer" / "web" / "node_modules"


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    #: bearer headers of the volunteer's personal access token (to check what they see)
    auth: dict[str, str] = field(default_factory=dict)
    user: str = VOLUNTEER
    password: str = PASSWORD

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
    settings = demo_gpkg_settings.model_copy(update={"data_dir": data_dir})
    _add_volunteer(settings)
    auth = bearer(make_token(settings, VOLUNTEER, admin=False))
    env = {
        "LANDEXPLORER_BASEMAP": "none",
        # every test's browser comes from loopback: one address for the stream cap of a
        # client, as many visitors behind one home router would be
        "LANDEXPLORER_LIVE_MAX_PER_CLIENT": "200",
        # two basemaps a test can switch to with no network: the server's own elevation
        # tiles, and a server that does not answer (a port nothing listens on)
        "LANDEXPLORER_BASEMAPS": json.dumps(
            [
                f"Hillshade|/tiles/elevation/{{z}}/{{x}}/{{y}}.png|{HILLSHADE_CREDIT}",
                f"Far away|{UNREACHABLE}/{{z}}/{{x}}/{{y}}.png|Nobody",
                "none",
            ]
        ),
    }
    with serve(data_dir, env=env, ready_path="/config.json") as url:
        yield LiveServer(url, data_dir, auth)


def _add_volunteer(settings: Settings) -> None:
    """The volunteer, with a password, a contributor of one group (through the access
    store, as ``landexplorer users`` does)."""
    from landexplorer.access.store import AccessStore
    from landexplorer.catalog import open_store

    store = open_store(settings)
    access = AccessStore.beside(store)
    try:
        access.add_user(VOLUNTEER, password=PASSWORD, display="Vera")
        access.add_group(GROUP, "Trafford volunteers")
        access.set_member(GROUP, VOLUNTEER, "contributor")
    finally:
        access.close()
        store.close()


def sign_in(page: Any, server: LiveServer) -> None:
    """Sign in on the page with the volunteer's name and password (the page is open)."""
    page.click("#sign-in-open")
    page.fill("#sign-in-name", server.user)
    page.fill("#sign-in-password", server.password)
    page.press("#sign-in-password", "Enter")
    page.wait_for_selector("#account-signed-in:not([hidden])")


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


def _failed(watch: PageWatch, request: Any) -> None:
    """A failed request is a problem, except a live feed the page closed itself (the
    layer was hidden, or another took its place): closing an EventSource aborts it."""
    closed_feed = request.url.split("?")[0].endswith("/changes/live") and (
        request.failure == "net::ERR_ABORTED"
    )
    if not closed_feed:
        watch.errors.append(f"request failed: {request.url} {request.failure}")


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
    page.on("requestfailed", lambda r: _failed(watch, r))
    page.on("request", lambda r: watch.requests.append(r.url))
    page.set_default_timeout(30_000)
    return page


def marks(page: Any, name: str) -> int:
    """How many times the page has marked ``landexplorer:<name>`` (User Timing)."""
    return int(page.evaluate("n => performance.getEntriesByName(n).length", f"landexplorer:{name}"))


def wait_started(page: Any) -> None:
    """The page has its layers, its panel and its tools."""
    page.wait_for_selector("body[data-ready=true]", state="attached")


def wait_drawn(page: Any, layer: str, times: int = 1) -> None:
    """Every tile of the view of ``layer`` has been painted ``times`` times."""
    page.wait_for_function(
        "([n, k]) => performance.getEntriesByName(n).length >= k",
        arg=[f"landexplorer:drawn:{layer}", times],
    )


def wait_ready(page: Any) -> None:
    """The page has its layers and has painted the vector tiles of the layers shown."""
    wait_started(page)
    page.wait_for_function("performance.getEntriesByName('landexplorer:first-tile').length > 0")
    page.wait_for_load_state("networkidle")


def map_view(page: Any) -> tuple[int, float, float]:
    """Zoom, latitude and longitude of the view, as the page writes them in its address."""
    from urllib.parse import urlparse

    fragment = dict(p.split("=", 1) for p in urlparse(page.url).fragment.split("&") if "=" in p)
    z, lat, lon = fragment["map"].split("/")
    return int(z), float(lat), float(lon)


def download_shapes(page: Any) -> dict[str, Any]:
    """The drawn shapes, as the page's "Download shapes (GeoJSON)" button gives them."""
    import json

    with page.expect_download() as info:
        page.click("#draw-download")
    path = info.value.path()
    return dict(json.loads(Path(path).read_text("utf-8")))


def shot(page: Any, name: str) -> Path:
    """Save a screenshot of the step as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
