"""The web page for people, in Debian's Chromium against a live server over a fresh
catalogue on each store: signing in with a password (and the page's words when it is
wrong), uploading into a group with the session cookie and the CSRF header, a share link
that shows a layer to a visitor who is not signed in until it is revoked, and signing out
back to the public map. People are made through the access store, as the CLI makes them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from landexplorer.access.store import AccessStore
from landexplorer.catalog import open_store
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings
from tests.conftest import STORE_BACKENDS
from tests.live import serve
from tests.people import bearer, make_token
from tests.pg import PgCluster
from tests.web.conftest import PageWatch, open_page, shot, wait_drawn, wait_started

PASSWORD = "orchard-ladder-7-plums"
USER = "ana"
GROUP = "sale-orchards"

ORCHARDS_CSV = """name,lon,lat,trees
Walton Park orchard,-2.3263,53.4231,14
Sale Water Park edge,-2.2979,53.4367,9
Ashton-on-Mersey plot,-2.3412,53.4306,22
"""

PUBLIC_GEOJSON = """{"type": "FeatureCollection", "features": [
 {"type": "Feature", "properties": {"name": "Longford Park"},
  "geometry": {"type": "Point", "coordinates": [-2.2866, 53.4472]}}]}"""


@dataclass
class PeopleServer:
    url: str
    settings: Settings
    backend: str
    admin_token: str

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=60, **kw)


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def people_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PeopleServer]:
    """A fresh catalogue (one public layer, one private layer of ana's group) with ana,
    steward of sale-orchards with a password, served on loopback."""
    root = tmp_path_factory.mktemp(f"people-{request.param}")
    database_url = None
    if request.param == "postgis":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        database_url = cluster.new_database("people")
    settings = Settings(data_dir=root / "data", database_url=database_url)
    store = open_store(settings)
    access = AccessStore.beside(store)
    try:
        access.add_user(USER, password=PASSWORD, display="Ana")
        access.add_group(GROUP, "Sale orchards")
        access.set_member(GROUP, USER, "steward")
        access.add_user("ben", password=PASSWORD)
        access.set_member(GROUP, "ben", "viewer")
        access.add_user("cai", password=PASSWORD)
        public = root / "parks.geojson"
        public.write_text(PUBLIC_GEOJSON, "utf-8")
        ingest(
            store,
            public,
            IngestOptions(
                id="parks",
                title="Parks",
                kind="open",
                licence="OGL-UK-3.0",
                attribution="Trafford Council",
                visibility="public",
            ),
        )
        private = root / "plans.csv"
        private.write_text(ORCHARDS_CSV, "utf-8")
        ingest(
            store,
            private,
            IngestOptions(
                id="planting_plans",
                title="Planting plans",
                kind="community",
                owner=USER,
                group=GROUP,
                visibility="private",
            ),
        )
        walks = root / "walks.csv"
        walks.write_text(ORCHARDS_CSV, "utf-8")
        ingest(
            store,
            walks,
            IngestOptions(id="orchard_walks", title="Orchard walks", owner=USER, group=GROUP,
                          visibility="link", licence="CC-BY-4.0"),
        )  # fmt: skip
        access.request_access("orchard_walks", "cai", "I lead the Tuesday walks")
    finally:
        access.close()
        store.close()
    admin = make_token(settings, "site-admin", admin=True, scope="read")
    env = {"LANDEXPLORER_BASEMAP": "none"}
    with serve(
        settings.data_dir, database_url=database_url, env=env, ready_path="/config.json"
    ) as url:
        yield PeopleServer(url, settings, request.param, admin)


def listed(page: Any) -> list[str]:
    """The layers in the panel."""
    return sorted(
        page.eval_on_selector_all("#layer-groups .layer", "els => els.map(e => e.dataset.layer)")
    )


def sign_in(page: Any, name: str = USER, password: str = PASSWORD) -> None:
    page.click("#sign-in-open")
    page.fill("#sign-in-name", name)
    page.fill("#sign-in-password", password)
    page.press("#sign-in-password", "Enter")


def test_wrong_password_is_said_in_plain_words(
    browser: Any, people_server: PeopleServer, watch: PageWatch
) -> None:
    page = open_page(browser, watch)
    page.goto(people_server.url + "/")
    wait_started(page)
    sign_in(page, password="not-the-password")
    page.wait_for_selector("#sign-in-message.error")
    text = page.inner_text("#sign-in-message")
    shot(page, f"people-wrong-password-{people_server.backend}")
    assert text.startswith("That name and password do not match")
    assert page.is_visible("#sign-in-open") and page.is_hidden("#account-signed-in")
    assert page.evaluate("document.getElementById('sign-in-dialog').open")
    # the right password in the same form signs in
    page.fill("#sign-in-password", PASSWORD)
    page.click("#sign-in-submit")
    page.wait_for_selector("#account-signed-in:not([hidden])")
    assert page.inner_text("#account-name") == "Ana"
    page.context.close()


def test_sign_out_returns_to_the_public_map(
    browser: Any, people_server: PeopleServer, watch: PageWatch
) -> None:
    page = open_page(browser, watch)
    page.goto(people_server.url + "/")
    wait_started(page)
    assert listed(page) == ["parks"]
    page.click("#sec-upload summary")
    assert page.is_visible("#upload-signed-out") and page.is_hidden("#upload-form")
    assert "Sign in to add your layers" in page.inner_text("#sec-upload")
    sign_in(page)
    page.wait_for_selector("#account-signed-in:not([hidden])")
    # signed in: the group's private layer joins the panel, the upload form shows
    page.wait_for_selector("#layer-groups .layer[data-layer=planting_plans]")
    assert page.is_visible("#upload-form") and page.is_hidden("#upload-signed-out")
    # the menu works from the keyboard: Enter opens it, arrows move, Enter chooses
    page.focus("#account-button")
    page.keyboard.press("Enter")
    page.wait_for_selector("#account-menu:not([hidden])")
    items = page.eval_on_selector_all(
        "#account-menu [role=menuitem]", "els => els.map(e => e.textContent)"
    )
    assert items == [
        "My layers",
        "My groups",
        "Audit log",  # ana is a steward
        "Access tokens",
        "Change password",
        "Sign out",
    ]
    page.keyboard.press("ArrowUp")  # from the first item round to the last: Sign out
    assert page.evaluate("document.activeElement.id") == "menu-sign-out"
    page.keyboard.press("Enter")
    page.wait_for_selector("#sign-in-open:not([hidden])")
    page.wait_for_function(
        "!document.querySelector('#layer-groups .layer[data-layer=planting_plans]')"
    )
    shot(page, f"people-signed-out-{people_server.backend}")
    assert listed(page) == ["parks"]
    assert page.is_visible("#upload-signed-out")
    # the session has ended on the server too
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    if "lx_session" in cookies:
        me = people_server.get("/auth/me", cookies={"lx_session": cookies["lx_session"]})
        assert me.json()["signed_in"] is False
    assert watch.errors == []
    page.context.close()


def test_upload_into_a_group_share_by_link_then_revoke(
    browser: Any, people_server: PeopleServer, watch: PageWatch, tmp_path: Path
) -> None:
    backend = people_server.backend
    page = open_page(browser, watch)
    page.goto(people_server.url + "/")
    wait_started(page)
    sign_in(page)
    page.wait_for_selector("#account-signed-in:not([hidden])")

    # upload a small CSV into the group: cookie + CSRF header, private by default
    source = tmp_path / "orchard_sites.csv"
    source.write_text(ORCHARDS_CSV, "utf-8")
    page.click("#sec-upload summary")
    assert page.eval_on_selector_all("#upload-group option", "els => els.map(e => e.value)") == [
        GROUP
    ]
    assert page.input_value("#upload-visibility") == "private"
    page.set_input_files("#upload-file", str(source))
    page.fill("#upload-title", "Orchard sites")
    page.select_option("#upload-licence", "CC-BY-4.0")
    page.fill("#upload-attribution", "Sale orchard volunteers")
    page.click("#upload-submit")
    page.wait_for_selector("[data-testid=upload-count]", timeout=120_000)
    assert page.inner_text("[data-testid=upload-count]") == "3"
    shot(page, f"people-uploaded-{backend}")
    store = open_store(people_server.settings)
    try:
        entry = store.get("orchard_sites")
    finally:
        store.close()
    assert (entry.owner, entry.group, entry.visibility) == (USER, GROUP, "private")
    assert (
        people_server.get(
            "/collections/orchard_sites", headers=bearer(people_server.admin_token)
        ).status_code
        == 200
    )
    assert people_server.get("/collections/orchard_sites").status_code == 404  # not for anyone

    # My layers > Share: visible to people with a link, then make a link
    page.click("#account-button")
    page.click("#menu-my-layers")
    row = page.locator("#my-layers-list tr[data-layer=orchard_sites]")
    row.wait_for()
    assert "private" in row.inner_text()
    row.locator("button.share-layer").click()
    page.wait_for_selector("#share-dialog[open]")
    page.wait_for_function("document.getElementById('share-visibility').value === 'private'")
    page.select_option("#share-visibility", "link")
    page.click("#share-layer-save")
    page.wait_for_selector("#share-layer-message.ok")
    page.click("#share-make-link")
    page.wait_for_selector("#share-new-link:not([hidden])")
    link_url = page.input_value("#share-new-link-url")
    shot(page, f"people-share-link-{backend}")
    query = parse_qs(urlparse(link_url).query)
    assert query["layers"] == ["orchard_sites"] and query["link"][0].startswith("lxl_")
    assert page.locator("#share-links li[data-link]").count() == 1
    assert page.inner_text("#share-who").strip() != ""

    # a visitor who is not signed in opens the link: the layer is listed and drawn
    visitor_watch = PageWatch()
    visitor = open_page(browser, visitor_watch)
    visitor.goto(link_url)
    wait_started(visitor)
    assert "orchard_sites" in listed(visitor)
    assert visitor.is_checked("#layer-orchard_sites")
    wait_drawn(visitor, "orchard_sites")
    assert visitor.inner_text("#status") == "A layer shared with you by link is on the map."
    shot(visitor, f"people-link-visitor-{backend}")
    secret = query["link"][0]
    tiles = [u for u in visitor_watch.requests if "/tiles/orchard_sites/" in u]
    assert tiles and all(f"link={secret}" in u for u in tiles)
    # the link is kept for the page's lifetime only: no cookie, nothing in the storage
    assert visitor.context.cookies() == []
    stored = visitor.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert secret not in stored

    # revoke the link: the visitor's reload no longer shows the layer
    page.locator("#share-links li[data-link] button.link-revoke").click()
    page.wait_for_function("!document.querySelector('#share-links li[data-link]')")
    visitor.reload()
    wait_started(visitor)
    assert "orchard_sites" not in listed(visitor)
    assert "share link no longer works" in visitor.inner_text("#status")
    assert listed(visitor) == sorted(["parks"])
    assert (
        httpx.get(f"{people_server.url}/collections/orchard_sites?link={secret}").status_code == 404
    )
    assert watch.errors == []
    visitor.context.close()
    page.context.close()


def test_access_tokens_made_shown_once_and_revoked(
    browser: Any, people_server: PeopleServer, watch: PageWatch
) -> None:
    page = open_page(browser, watch)
    page.goto(people_server.url + "/")
    wait_started(page)
    sign_in(page)
    page.wait_for_selector("#account-signed-in:not([hidden])")
    page.click("#account-button")
    page.click("#menu-tokens")
    page.wait_for_selector("#tokens-dialog[open]")
    page.click("#token-make")  # no name yet: said in words, nothing made
    page.wait_for_selector("#token-message.error")
    assert "what the token is for" in page.inner_text("#token-message")
    page.fill("#token-name", "QGIS at home")
    page.click("#token-make")
    page.wait_for_selector("#token-new:not([hidden])")
    token = page.input_value("#token-new-value")
    assert token.startswith("lxt_")
    rows = page.locator("#tokens-list tr[data-token]")
    rows.first.wait_for()
    assert rows.count() == 1 and "QGIS at home" in rows.first.inner_text()
    assert "read only" in rows.first.inner_text()
    shot(page, f"people-token-{people_server.backend}")
    # the token works for tools, as that person and read-only
    me = people_server.get("/auth/me", headers=bearer(token)).json()
    assert (me["user"], me["scope"]) == (USER, "read")
    # it is shown once: the list never holds the secret
    assert token not in page.inner_text("#tokens-list")
    rows.first.locator("button.token-revoke").click()
    page.wait_for_function("!document.querySelector('#tokens-list tr[data-token]')")
    assert people_server.get("/auth/me", headers=bearer(token)).status_code == 401
    assert watch.errors == []
    page.context.close()


def test_on_a_phone_the_sign_in_form_and_menu_fit_the_screen(
    browser: Any, people_server: PeopleServer, watch: PageWatch
) -> None:
    page = open_page(browser, watch, width=360, height=640, is_mobile=True, has_touch=True)
    page.goto(people_server.url + "/")
    wait_started(page)
    page.click("#sign-in-open")
    box = page.locator("#sign-in-dialog").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
    page.fill("#sign-in-name", USER)
    page.fill("#sign-in-password", PASSWORD)
    page.click("#sign-in-submit")
    page.wait_for_selector("#account-signed-in:not([hidden])")
    page.click("#account-button")
    page.wait_for_selector("#account-menu:not([hidden])")
    shot(page, f"people-phone-menu-{people_server.backend}")
    menu = page.locator("#account-menu").bounding_box()
    assert menu is not None and menu["x"] >= 0 and menu["x"] + menu["width"] <= 360
    page.click("#menu-tokens")
    dialog = page.locator("#tokens-dialog").bounding_box()
    assert dialog is not None and dialog["x"] >= 0 and dialog["x"] + dialog["width"] <= 360
    shot(page, f"people-phone-tokens-{people_server.backend}")
    assert watch.errors == []
    page.context.close()


def test_asking_to_see_a_layer(browser: Any, people_server: PeopleServer, watch: PageWatch) -> None:
    """cai, in no group, asks for a layer by name; a private one is not revealed. (Before
    the group page test, where a steward answers cai's request.)"""
    page = open_page(browser, watch)
    page.goto(people_server.url + "/")
    wait_started(page)
    sign_in(page, "cai")
    page.wait_for_selector("#account-signed-in:not([hidden])")
    page.click("#account-button")
    page.click("#menu-my-groups")
    page.wait_for_selector("#my-requests li[data-request]")
    assert "not in any group yet" in page.inner_text("#groups-list")
    page.fill("#ask-layer", "planting_plans")  # private: the same answer as no such layer
    page.click("#ask-submit")
    page.wait_for_selector("#groups-message.error")
    assert page.inner_text("#groups-message") == "There is no collection called 'planting_plans'."
    page.fill("#ask-layer", "orchard_walks")
    page.fill("#ask-message", "I lead the Tuesday walks")
    page.click("#ask-submit")
    page.wait_for_selector("#groups-message.ok")
    asked = page.locator("#my-requests li[data-request]")
    assert asked.count() == 1  # asked again: the request already waiting
    assert asked.first.get_attribute("data-status") == "pending"
    assert "Orchard walks" in asked.inner_text() and "waiting for an answer" in asked.inner_text()
    shot(page, f"people-ask-{people_server.backend}")
    assert all("404 (Not Found)" in e for e in watch.errors)  # the private layer's answer
    page.context.close()


def test_group_page_members_roles_and_requests(
    browser: Any, people_server: PeopleServer, watch: PageWatch
) -> None:
    page = open_page(browser, watch)
    page.on("dialog", lambda d: d.accept())  # "Remove cai from the group?"
    page.goto(people_server.url + "/")
    wait_started(page)
    sign_in(page)
    page.wait_for_selector("#account-signed-in:not([hidden])")
    page.click("#account-button")
    page.click("#menu-my-groups")
    page.click(f"#groups-list button[data-group={GROUP}]")
    page.wait_for_selector(f"#group-page[data-group={GROUP}]:not([hidden])")
    assert page.inner_text("#group-title") == "Sale orchards"
    members = page.eval_on_selector_all(
        "#group-members tr[data-member]", "els => els.map(e => e.dataset.member)"
    )
    assert sorted(members) == ["ana", "ben"]
    # a steward sees who asks for access, and grants it
    request_row = page.locator("#group-requests li[data-request]")
    request_row.wait_for()
    assert "cai" in request_row.inner_text() and "Tuesday walks" in request_row.inner_text()
    shot(page, f"people-group-page-{people_server.backend}")
    request_row.locator("button.request-grant").click()
    page.wait_for_selector("#groups-message.ok")
    assert page.locator("#group-requests li[data-request]").count() == 0
    # change a role, add a member, remove them again
    page.select_option("#group-members tr[data-member=ben] select", "contributor")
    page.wait_for_function("document.getElementById('groups-message').textContent.includes('ben')")
    page.fill("#group-add-name", "cai")
    page.select_option("#group-add-role", "viewer")
    page.click("#group-add button[type=submit]")
    page.wait_for_selector("#group-members tr[data-member=cai]")
    page.locator("#group-members tr[data-member=cai] button.member-remove").click()
    page.wait_for_function("!document.querySelector('#group-members tr[data-member=cai]')")
    store = open_store(people_server.settings)
    access = AccessStore.beside(store)
    try:
        assert "orchard_walks" in access.grants_of("cai")
        roles = access.actor_for_user("ben").roles
        assert roles.get(GROUP) == "contributor"
        assert GROUP not in access.actor_for_user("cai").roles
    finally:
        access.close()
        store.close()

    # the steward's audit view: what just happened in the group, newest first
    page.keyboard.press("Escape")
    page.click("#account-button")
    page.click("#menu-audit")
    page.wait_for_selector("#audit-dialog[open]")
    page.wait_for_selector("#audit-list tr[data-event]")
    actions = page.eval_on_selector_all(
        "#audit-list tr[data-event]", "els => els.map(e => e.dataset.action)"
    )
    assert actions[:4] == ["member removed", "member set", "member set", "access request granted"]
    assert "user: cai" in page.inner_text("#audit-list tr[data-event]:first-child")
    shot(page, f"people-audit-{people_server.backend}")
    page.fill("#audit-layer", "orchard_walks")
    page.click("#audit-show")
    page.wait_for_function(
        "[...document.querySelectorAll('#audit-list tr[data-event]')]"
        ".every(e => e.dataset.action === 'access request granted')"
    )
    assert watch.errors == []
    page.fill("#audit-layer", "parks")  # public, but not this steward's to read
    page.click("#audit-show")
    page.wait_for_selector("#audit-message.error")
    assert "layers you manage" in page.inner_text("#audit-message")
    assert all("403 (Forbidden)" in e for e in watch.errors)  # the refusal, said in words
    page.context.close()

    # a viewer has no audit log in the menu
    viewer = open_page(browser, watch)
    viewer.goto(people_server.url + "/")
    wait_started(viewer)
    sign_in(viewer, "ben")
    viewer.wait_for_selector("#account-signed-in:not([hidden])")
    viewer.click("#account-button")
    viewer.wait_for_selector("#account-menu:not([hidden])")
    assert viewer.is_hidden("#menu-audit")
    viewer.context.close()


def test_too_many_attempts_are_said_in_plain_words(
    browser: Any, people_server: PeopleServer, watch: PageWatch
) -> None:
    """Ten wrong tries for one name in five minutes: the eleventh is refused with a wait.
    (Last in this file: it uses up the tries of a name nobody else here signs in with.)"""
    for _ in range(10):
        wrong = httpx.post(
            people_server.url + "/auth/login",
            json={"name": "nobody", "password": "guess"},
            timeout=60,
        )
        assert wrong.status_code == 401
    page = open_page(browser, watch)
    page.goto(people_server.url + "/")
    wait_started(page)
    sign_in(page, name="nobody", password="guess")
    page.wait_for_selector("#sign-in-message.error")
    text = page.inner_text("#sign-in-message")
    assert text.startswith("Too many attempts to sign in. Please wait ")
    assert "seconds and try again" in text
    page.context.close()


def test_a_share_link_goes_with_every_request_of_the_page(
    browser: Any, people_server: PeopleServer, watch: PageWatch
) -> None:
    """A link made by the access store (what POST /collections/{id}/links makes): the
    visitor's page sends it with its catalogue and tile requests, and stops
    showing the layer once it is revoked."""
    store = open_store(people_server.settings)
    access = AccessStore.beside(store)
    try:
        secret, info = access.create_link("orchard_walks", USER)
    finally:
        access.close()
        store.close()
    page = open_page(browser, watch)
    page.goto(f"{people_server.url}/?link={secret}&layers=orchard_walks")
    wait_started(page)
    assert "orchard_walks" in listed(page) and page.is_checked("#layer-orchard_walks")
    wait_drawn(page, "orchard_walks")
    ours = [u for u in watch.requests if u.startswith(people_server.url + "/")]
    api = [u for u in ours if urlparse(u).path.startswith(("/collections", "/tiles/"))]
    assert any("/tiles/orchard_walks/" in u for u in api)
    assert api and all(parse_qs(urlparse(u).query).get("link") == [secret] for u in api if "?" in u)
    # the address keeps the link for this page only: no cookie, no storage holds it
    assert page.context.cookies() == []
    assert secret not in page.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}])")
    store = open_store(people_server.settings)
    access = AccessStore.beside(store)
    try:
        assert access.revoke_link("orchard_walks", info.id)
    finally:
        access.close()
        store.close()
    page.wait_for_timeout(2500)  # the server remembers a looked-up link for up to 2 s
    page.reload()
    wait_started(page)
    assert "orchard_walks" not in listed(page)
    assert "share link no longer works" in page.inner_text("#status")
    page.context.close()
