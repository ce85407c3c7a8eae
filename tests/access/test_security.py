"""Security of accounts, sessions and tokens, tried as an attacker would, on both stores.

Secrets never stored or logged in clear (the access tables read directly, a live server's
log, the audit log); session fixation; CSRF on cookie-authenticated writes; cross-site
sign-in; brute force; no account enumeration (same answer, comparable time); constant-time
comparisons; disabling an account and changing a password end what they must; cookie flags.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from landexplorer.access import secrets
from landexplorer.access.store import AccessStore
from landexplorer.api import create_app
from landexplorer.settings import Settings
from tests import live
from tests.access.test_clients import GROUP, build_catalogue, open_access
from tests.people import bearer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PASSWORD = "correct horse battery staple"
ROWAN_PASSWORD = "rowan's own long password"


def add_people(settings: Settings) -> None:
    """olive (viewer of orchard-club) and rowan (contributor, owner of allotments), with
    passwords."""
    with open_access(settings) as access:
        access.add_group(GROUP, "Orchard club")
        access.add_user("olive", password=PASSWORD, display="Olive")
        access.add_user("rowan", password=ROWAN_PASSWORD)
        access.set_member(GROUP, "olive", "viewer")
        access.set_member(GROUP, "rowan", "contributor")


@pytest.fixture
def app_settings(store_backend: str, settings: Settings, real_data: Path) -> Settings:
    build_catalogue(settings, real_data)
    add_people(settings)
    return settings


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as c:
        yield c


def sign_in(c: TestClient, name: str = "olive", password: str = PASSWORD) -> tuple[str, str]:
    """Sign in; (session secret, CSRF token). The client's cookie jar is left empty."""
    r = c.post("/auth/login", json={"name": name, "password": password})
    assert r.status_code == 200, r.text
    session = r.cookies["lx_session"]
    c.cookies.clear()
    return session, r.json()["csrf"]


def cookie(session: str) -> dict[str, str]:
    return {"Cookie": f"lx_session={session}"}


def me(c: TestClient, session: str) -> dict[str, Any]:
    r = c.get("/auth/me", headers=cookie(session))
    assert r.status_code == 200
    return dict(r.json())


# ---------------------------------------------------------------- secrets at rest and in logs
def table_text(settings: Settings) -> str:
    """Every row of every access table, read with the database's own client."""
    rows: list[Any] = []
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_name LIKE 'access_%'"
                )
            ]
            for name in names:
                rows += [name, *conn.execute(f'SELECT * FROM "{name}"').fetchall()]
    else:
        path = settings.catalog_path.parent / "access.sqlite"
        conn = sqlite3.connect(path)
        try:
            names = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            for name in names:
                rows += [name, *conn.execute(f'SELECT * FROM "{name}"').fetchall()]
        finally:
            conn.close()
    assert any("access_users" in str(r) for r in rows), "the access tables were not found"
    return repr(rows)


@contextlib.contextmanager
def serve_logged(settings: Settings) -> Iterator[tuple[str, Path]]:
    """``landexplorer serve`` at log level info (the access log on), its log file."""
    port = live.free_port()
    data_dir = str(settings.data_dir)
    env = {**os.environ, "LANDEXPLORER_DATA_DIR": data_dir}
    if settings.database_url:
        env["LANDEXPLORER_DATABASE_URL"] = settings.database_url
    log = settings.data_dir.parent / "serve-info.log"
    cmd = [sys.executable, "-m", "landexplorer.cli", "--data-dir", data_dir, "serve",
           "--port", str(port), "--log-level", "info"]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/conformance", timeout=2).status_code == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_no_secret_in_clear_in_tables_log_or_audit(app_settings: Settings) -> None:
    with open_access(app_settings) as access:
        once = access.create_sign_in_link("rowan")
        link, _ = access.create_link("allotments", "rowan")
    # a share link opens a layer whose visibility is link
    from landexplorer.catalog import open_store

    store = open_store(app_settings)
    store.update_metadata("allotments", visibility="link")
    store.close()
    with serve_logged(app_settings) as (url, log), httpx.Client(base_url=url) as web:
        # a wrong password, then the right one
        assert (
            web.post("/auth/login", json={"name": "olive", "password": "not it at all"}).status_code
            == 401
        )
        signed = web.post("/auth/login", json={"name": "olive", "password": PASSWORD})
        assert signed.status_code == 200
        session = signed.cookies["lx_session"]
        csrf = signed.json()["csrf"]
        made = web.post(
            "/auth/tokens",
            json={"name": "QGIS", "scope": "read", "days": 30},
            headers={"X-CSRF-Token": csrf},
        )
        assert made.status_code == 201, made.text
        token = made.json()["token"]
        web.cookies.clear()
        assert web.get("/collections/allotments", headers=bearer(token)).status_code == 200
        assert web.get("/collections/allotments", params={"link": link}).status_code == 200
        assert web.get("/collections/allotments").status_code == 404
        # a one-time sign-in link: its page (a preview), then used
        assert web.get(f"/auth/once/{once}").status_code == 200
        used = web.post(f"/auth/once/{once}", follow_redirects=False)
        assert used.status_code == 303
        rowan_session = used.cookies["lx_session"]
        web.cookies.clear()
        # rowan changes his password (through the API, as the page does)
        changed = web.post(
            "/auth/password",
            json={"current": ROWAN_PASSWORD, "new": "a new long password!"},
            headers={"X-CSRF-Token": secrets.csrf_for(rowan_session), **cookie(rowan_session)},
        )
        assert changed.status_code == 200, changed.text
        time.sleep(0.5)  # the access log is written after the answer
    logged = log.read_text()
    assert "GET /collections/allotments" in logged  # the access log was on
    clear = {
        "olive's password": PASSWORD,
        "rowan's password": ROWAN_PASSWORD,
        "the new password": "a new long password!",
        "the token": token,
        "the session": session,
        "rowan's session": rowan_session,
        "the one-time link": once,
        "the share link": link,
        "a CSRF token": csrf,
    }
    stored = table_text(app_settings)
    with open_access(app_settings) as access:
        audit = repr([e.public() for e in access.read_audit(limit=1000)])
        users = {u.name: u for u in access.list_users()}
    assert "sign-in" in audit and "token created" in audit
    for what, secret in clear.items():
        assert secret not in stored, f"{what} is stored in clear"
        assert secret not in logged, f"{what} is in the server's log"
        assert secret not in audit, f"{what} is in the audit log"
    # the secrets' digests are what is kept; passwords are argon2id hashes
    for secret in (token, session, once, link):
        assert secrets.digest(secret) in stored
    # (the first run of serve made "admin" too, with no password: see cli/serve_cmd.py)
    assert stored.count("$argon2id$") == sum(u.has_password for u in users.values()) == 2
    assert "lxl_[hidden]" in logged and "lxo_[hidden]" in logged  # logged, without the secret


# ---------------------------------------------------------------- sessions
def test_session_fixation(client: TestClient) -> None:
    planted = secrets.new_secret(secrets.SESSION_PREFIX)  # an attacker's chosen cookie
    client.cookies.set("lx_session", planted)
    r = client.post("/auth/login", json={"name": "olive", "password": PASSWORD})
    assert r.status_code == 200
    after = r.cookies["lx_session"]
    assert after != planted
    client.cookies.clear()
    assert me(client, planted) == {"signed_in": False}
    assert me(client, after)["user"] == "olive"


def test_a_real_session_planted_before_sign_in_is_not_promoted(client: TestClient) -> None:
    attacker, _ = sign_in(client, "rowan", ROWAN_PASSWORD)
    client.cookies.set("lx_session", attacker)
    r = client.post("/auth/login", json={"name": "olive", "password": PASSWORD})
    victim = r.cookies["lx_session"]
    client.cookies.clear()
    assert victim != attacker
    assert me(client, attacker)["user"] == "rowan"  # still only the attacker's own account
    assert me(client, victim)["user"] == "olive"


def test_logout_ends_the_session(client: TestClient) -> None:
    session, csrf = sign_in(client)
    r = client.post("/auth/logout", headers={**cookie(session), "X-CSRF-Token": csrf})
    assert r.status_code == 200
    assert 'lx_session=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert me(client, session) == {"signed_in": False}


def test_cookie_flags(client: TestClient, app_settings: Settings) -> None:
    r = client.post("/auth/login", json={"name": "olive", "password": PASSWORD})
    flags = [p.strip().lower() for p in r.headers["set-cookie"].split(";")]
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert "secure" not in flags  # plain http: a Secure cookie would never come back
    https = app_settings.model_copy(update={"public_url": "https://maps.example.org"})
    with TestClient(create_app(https)) as c:
        r = c.post("/auth/login", json={"name": "olive", "password": PASSWORD})
    assert r.status_code == 200
    flags = [p.strip().lower() for p in r.headers["set-cookie"].split(";")]
    assert {"httponly", "samesite=lax", "path=/", "secure"} <= set(flags)


# ---------------------------------------------------------------- CSRF and origins
def test_csrf_on_cookie_writes(client: TestClient) -> None:
    session, csrf = sign_in(client, "rowan", ROWAN_PASSWORD)
    wrong = secrets.csrf_for(secrets.new_secret(secrets.SESSION_PREFIX))
    body = {"name": "script", "scope": "read", "days": 7}
    for headers in ({}, {"X-CSRF-Token": wrong}, {"X-CSRF-Token": ""}):
        r = client.post("/auth/tokens", json=body, headers={**cookie(session), **headers})
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "csrf" and "Reload the page" in r.json()["description"]
        r = client.patch(
            "/collections/allotments",
            json={"title": "Stolen"},
            headers={**cookie(session), **headers},
        )
        assert r.status_code == 403
    tokens = client.get("/auth/tokens", headers=cookie(session)).json()["tokens"]
    assert tokens == []  # nothing was made
    assert (
        client.get("/collections/allotments", headers=cookie(session)).json()["title"] != "Stolen"
    )
    # the right token works
    made = client.post("/auth/tokens", json=body, headers={**cookie(session), "X-CSRF-Token": csrf})
    assert made.status_code == 201
    r = client.patch(
        "/collections/allotments",
        json={"title": "Plots"},
        headers={**cookie(session), "X-CSRF-Token": csrf},
    )
    assert r.status_code == 200, r.text
    assert client.get("/collections/allotments", headers=cookie(session)).json()["title"] == "Plots"
    # DELETE without it changes nothing either
    token_id = made.json()["id"]
    r = client.delete(f"/auth/tokens/{token_id}", headers=cookie(session))
    assert r.status_code == 403
    assert (
        client.get("/collections/allotments", headers=bearer(made.json()["token"])).status_code
        == 200
    )
    r = client.delete(f"/auth/tokens/{token_id}", headers={**cookie(session), "X-CSRF-Token": csrf})
    assert r.status_code == 204
    assert (
        client.get("/collections/allotments", headers=bearer(made.json()["token"])).status_code
        == 401
    )


def test_bearer_writes_need_no_csrf(client: TestClient, app_settings: Settings) -> None:
    with open_access(app_settings) as access:
        token, _ = access.create_token("rowan", "script", "write", 7)
    r = client.patch("/collections/allotments", json={"title": "By script"}, headers=bearer(token))
    assert r.status_code == 200, r.text
    r = client.post(
        "/auth/tokens", json={"name": "another", "scope": "read"}, headers=bearer(token)
    )
    assert r.status_code == 201


def test_cross_site_sign_in_is_refused(client: TestClient) -> None:
    body = {"name": "olive", "password": PASSWORD}
    r = client.post("/auth/login", json=body, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert "only possible from this server's own page" in r.json()["description"]
    assert "set-cookie" not in r.headers
    r = client.post("/auth/login", json=body, headers={"Origin": "http://testserver"})
    assert r.status_code == 200


# ---------------------------------------------------------------- guessing
def test_brute_force_is_slowed_down(client: TestClient) -> None:
    for _ in range(10):
        r = client.post("/auth/login", json={"name": "olive", "password": "guess guess guess"})
        assert r.status_code == 401
    r = client.post("/auth/login", json={"name": "olive", "password": "guess guess guess"})
    assert r.status_code == 429
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= 301
    assert "Too many sign-in attempts" in r.json()["description"]
    # the right password is refused too until the window passes (and no session is made)
    r = client.post("/auth/login", json={"name": "olive", "password": PASSWORD})
    assert r.status_code == 429 and "set-cookie" not in r.headers
    # the name is counted whatever its case; another account is not locked out by it
    r = client.post("/auth/login", json={"name": "OLIVE", "password": PASSWORD})
    assert r.status_code == 429
    assert (
        client.post("/auth/login", json={"name": "rowan", "password": ROWAN_PASSWORD}).status_code
        == 200
    )


def test_no_account_enumeration(client: TestClient) -> None:
    wrong = client.post("/auth/login", json={"name": "olive", "password": "not the password"})
    unknown = client.post("/auth/login", json={"name": "nobody", "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["description"] == "That name and password do not match an account here."
    times: dict[str, list[float]] = {"olive": [], "nobody": []}
    for _ in range(7):  # 8 attempts per name in all: under the limit of 10
        for name in times:  # interleaved, so a burst of load hits both alike
            t = time.perf_counter()
            r = client.post("/auth/login", json={"name": name, "password": "not the password"})
            times[name].append(time.perf_counter() - t)
            assert r.status_code == 401
    known, nobody = (statistics.median(times[n]) for n in ("olive", "nobody"))
    assert 0.5 < known / nobody < 2.0, times


def test_comparisons_are_constant_time(
    monkeypatch: pytest.MonkeyPatch, app_settings: Settings
) -> None:
    import hmac

    assert secrets.same("lxt_abc", "lxt_abc") and not secrets.same("lxt_abc", "lxt_abd")
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def compare(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(secrets.hmac, "compare_digest", compare)
    with open_access(app_settings) as access:
        token, _ = access.create_token("olive", "QGIS", "read", 7)
        assert access.actor_for_secret(token, "token") is not None
    # the token is looked up by its digest and the digests compared in constant time
    assert seen and all(a == secrets.digest(token).encode() for a, _ in seen)
    # the CSRF check uses the same comparison
    seen.clear()
    with TestClient(create_app(app_settings)) as c:
        session, csrf = sign_in(c)
        r = c.post(
            "/auth/tokens", json={"name": "x"}, headers={**cookie(session), "X-CSRF-Token": csrf}
        )
        assert r.status_code == 201
    assert (csrf.encode(), csrf.encode()) in seen


# ---------------------------------------------------------------- ending access
def test_disabling_an_account_ends_its_sessions_and_tokens_at_once(
    client: TestClient, app_settings: Settings
) -> None:
    session, _ = sign_in(client)
    with open_access(app_settings) as other:
        token, _ = other.create_token("olive", "QGIS", "read", 7)
    assert client.get("/collections/allotments", headers=bearer(token)).status_code == 200
    assert me(client, session)["user"] == "olive"
    access: AccessStore = client.app.state.access  # type: ignore[attr-defined]
    access.set_disabled("olive")  # what `landexplorer users disable` does, in this process
    assert client.get("/collections/allotments", headers=bearer(token)).status_code == 401
    assert me(client, session) == {"signed_in": False}
    r = client.post("/auth/login", json={"name": "olive", "password": PASSWORD})
    assert r.status_code == 401
    assert r.json()["description"] == "That name and password do not match an account here."


def test_disabling_from_another_process_is_felt_within_the_cache_time(
    client: TestClient, app_settings: Settings
) -> None:
    session, _ = sign_in(client)
    assert me(client, session)["user"] == "olive"
    with open_access(app_settings) as other:  # like the command line, another connection
        other.set_disabled("olive")
    time.sleep(2.1)  # the server keeps a looked-up actor for 2 s at most
    assert me(client, session) == {"signed_in": False}


def test_a_password_change_ends_other_sessions(client: TestClient) -> None:
    laptop, _ = sign_in(client)
    phone, phone_csrf = sign_in(client)
    assert laptop != phone
    r = client.post(
        "/auth/password",
        json={"current": PASSWORD, "new": "an even longer password"},
        headers={**cookie(phone), "X-CSRF-Token": phone_csrf},
    )
    assert r.status_code == 200, r.text
    fresh = r.cookies["lx_session"]
    client.cookies.clear()
    assert me(client, laptop) == {"signed_in": False}
    assert me(client, phone) == {"signed_in": False}  # the old secret is gone too
    assert me(client, fresh)["user"] == "olive"  # this browser goes on with a new one
    assert (
        client.post("/auth/login", json={"name": "olive", "password": PASSWORD}).status_code == 401
    )
    assert (
        client.post(
            "/auth/login", json={"name": "olive", "password": "an even longer password"}
        ).status_code
        == 200
    )


def test_tiles_of_a_layer_that_is_not_public_are_private(
    client: TestClient, app_settings: Settings
) -> None:
    with open_access(app_settings) as access:
        token, _ = access.create_token("olive", "QGIS", "read", 7)
    tile = "tiles/WebMercatorQuad/12/2021/1326"  # over Trafford
    for path in (f"/collections/allotments/{tile}", "/tiles/allotments/12/2021/1326.mvt?v=1"):
        r = client.get(path, headers=bearer(token))
        assert r.status_code in (200, 204), r.text
        assert r.headers["cache-control"].startswith("private"), path
        assert client.get(path).status_code == 404  # and nobody else gets it
    r = client.get(f"/collections/aqma/{tile}")
    assert r.status_code in (200, 204)
    assert r.headers["cache-control"].startswith("public")
