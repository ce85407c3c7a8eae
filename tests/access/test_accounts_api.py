"""The accounts API from sign-in to sign-out, on both stores: /auth/login, /auth/me,
/auth/tokens, /auth/password, /auth/once/{secret}, /auth/logout."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from landexplorer.access import secrets
from landexplorer.api import create_app
from landexplorer.settings import Settings
from tests.access.test_clients import GROUP, build_catalogue, open_access
from tests.people import bearer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PASSWORD = "apple blossom in may"


@pytest.fixture
def app_settings(store_backend: str, settings: Settings, real_data: Path) -> Settings:
    build_catalogue(settings, real_data)
    with open_access(settings) as access:
        access.add_group(GROUP, "Orchard club")
        access.add_user("olive", password=PASSWORD, display="Olive Green")
        access.add_user("rowan")  # no password yet: signs in with a one-time link
        access.set_member(GROUP, "olive", "viewer")
        access.set_member(GROUP, "rowan", "steward")
    return settings


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as c:
        yield c


def login(c: TestClient, password: str = PASSWORD) -> Any:
    return c.post("/auth/login", json={"name": "olive", "password": password})


def test_sign_in_me_and_sign_out(client: TestClient) -> None:
    assert client.get("/auth/me").json() == {"signed_in": False}
    wrong = login(client, "not my password")
    assert wrong.status_code == 401
    assert wrong.json() == {
        "code": "not-signed-in",
        "description": "That name and password do not match an account here.",
    }
    assert "lx_session" not in client.cookies
    r = login(client)
    assert r.status_code == 200, r.text
    body = r.json()
    session = client.cookies["lx_session"]
    assert session.startswith(secrets.SESSION_PREFIX)
    assert body == {
        "signed_in": True,
        "user": "olive",
        "display": "Olive Green",
        "admin": False,
        "via": "session",
        "scope": "write",
        "groups": [{"name": GROUP, "title": "Orchard club", "role": "viewer"}],
        "csrf": secrets.csrf_for(session),
    }
    me = client.get("/auth/me")
    assert me.json() == body
    assert me.headers["cache-control"] == "no-store"
    # the group layer is visible while signed in
    assert client.get("/collections/allotments").status_code == 200
    out = client.post("/auth/logout", headers={"X-CSRF-Token": body["csrf"]})
    assert out.status_code == 200 and out.json() == {"signed_in": False}
    assert "lx_session" not in client.cookies
    assert client.get("/auth/me", headers={"Cookie": f"lx_session={session}"}).json() == {
        "signed_in": False
    }
    assert client.get("/collections/allotments").status_code == 404
    # signing out when not signed in is fine
    assert client.post("/auth/logout").json() == {"signed_in": False}


def test_malformed_sign_in_is_400_in_words(client: TestClient) -> None:
    r = client.post("/auth/login", json={"name": "olive"})
    assert r.status_code in (400, 422)
    assert "password" in r.json()["description"]
    r = client.post("/auth/login", json={"name": "olive", "password": PASSWORD, "admin": True})
    assert r.status_code in (400, 422)


def test_token_life_cycle(client: TestClient) -> None:
    assert client.get("/auth/tokens").status_code == 401
    csrf = login(client).json()["csrf"]
    assert client.get("/auth/tokens").json() == {"tokens": []}
    made = client.post(
        "/auth/tokens",
        json={"name": "QGIS at home", "scope": "read", "days": 30},
        headers={"X-CSRF-Token": csrf},
    )
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    doc = made.json()
    token = doc.pop("token")
    assert token.startswith(secrets.TOKEN_PREFIX) and len(token) > 40
    assert doc["name"] == "QGIS at home" and doc["scope"] == "read"
    listed = client.get("/auth/tokens").json()["tokens"]
    assert [t["id"] for t in listed] == [doc["id"]]
    assert token not in repr(listed)  # the secret is shown once only
    assert not listed[0]["revoked"]
    client.cookies.clear()
    # the token, alone
    me = client.get("/auth/me", headers=bearer(token)).json()
    assert me["user"] == "olive" and me["via"] == "token" and me["scope"] == "read"
    assert "csrf" not in me  # a token needs none
    assert client.get("/collections/allotments", headers=bearer(token)).status_code == 200
    # a read token cannot make tokens, nor revoke itself
    r = client.post("/auth/tokens", json={"name": "more"}, headers=bearer(token))
    assert r.status_code == 403 and "read-only" in r.json()["description"]
    assert client.delete(f"/auth/tokens/{doc['id']}", headers=bearer(token)).status_code == 403
    # a write token can; someone else's token id is not found
    with_write = client.post(
        "/auth/login", json={"name": "olive", "password": PASSWORD}
    ).json()  # sign in again
    writer = client.post(
        "/auth/tokens",
        json={"name": "script", "scope": "write", "days": 1},
        headers={"X-CSRF-Token": with_write["csrf"]},
    ).json()["token"]
    client.cookies.clear()
    assert client.delete("/auth/tokens/000000000000", headers=bearer(writer)).status_code == 404
    r = client.delete(f"/auth/tokens/{doc['id']}", headers=bearer(writer))
    assert r.status_code == 204
    assert client.get("/auth/me", headers=bearer(token)).status_code == 401
    listed = client.get("/auth/tokens", headers=bearer(writer)).json()["tokens"]
    assert {t["name"]: t["revoked"] for t in listed} == {"QGIS at home": True, "script": False}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scope": "admin"},
        {"name": "x", "days": 0},
        {"name": "x", "days": 400},
        {"name": ""},
        {"name": "x" * 81},
    ],
)
def test_token_requests_that_are_refused(client: TestClient, body: dict[str, Any]) -> None:
    csrf = login(client).json()["csrf"]
    r = client.post("/auth/tokens", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code in (400, 422), r.text
    assert r.json()["description"]
    assert client.get("/auth/tokens").json() == {"tokens": []}


def test_another_users_token_cannot_be_revoked(client: TestClient, app_settings: Settings) -> None:
    with open_access(app_settings) as access:
        theirs, info = access.create_token("rowan", "theirs", "read", 7)
    csrf = login(client).json()["csrf"]
    r = client.delete(f"/auth/tokens/{info.id}", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 404
    assert client.get("/auth/me", headers=bearer(theirs)).json()["user"] == "rowan"


def test_password_change(client: TestClient) -> None:
    csrf = login(client).json()["csrf"]
    old_session = client.cookies["lx_session"]
    r = client.post(
        "/auth/password",
        json={"current": "not it", "new": "a brand new password"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 403 and "current password is not right" in r.json()["description"]
    r = client.post(
        "/auth/password", json={"current": PASSWORD, "new": "short"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 400 and "at least 10 characters" in r.json()["description"]
    r = client.post(
        "/auth/password",
        json={"current": PASSWORD, "new": "a brand new password"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200, r.text
    assert r.json()["password_changed"] is True and r.json()["user"] == "olive"
    new_session = client.cookies["lx_session"]
    assert new_session != old_session
    assert r.json()["csrf"] == secrets.csrf_for(new_session)
    assert client.get("/auth/me").json()["user"] == "olive"
    client.cookies.clear()
    assert login(client).status_code == 401
    assert login(client, "a brand new password").status_code == 200


def test_one_time_sign_in_link(client: TestClient, app_settings: Settings) -> None:
    with open_access(app_settings) as access:
        once = access.create_sign_in_link("rowan")
    page = client.get(f"/auth/once/{once}")
    assert page.status_code == 200
    assert 'id="sign-in-once"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "lx_session" not in client.cookies  # looking at the page signs nobody in
    refused = client.post(f"/auth/once/{once}", headers={"Origin": "https://elsewhere.example"})
    assert refused.status_code == 403
    used = client.post(f"/auth/once/{once}", follow_redirects=False)
    assert used.status_code == 303 and used.headers["location"] == "/"
    me = client.get("/auth/me").json()
    assert me["user"] == "rowan" and me["groups"][0]["role"] == "steward"
    # rowan has no password yet: he sets one without a current password
    r = client.post(
        "/auth/password",
        json={"current": "", "new": "rowan's first password"},
        headers={"X-CSRF-Token": me["csrf"]},
    )
    assert r.status_code == 200, r.text
    client.cookies.clear()
    again = client.post(f"/auth/once/{once}", follow_redirects=False)
    assert again.status_code == 400 and "used already or has expired" in again.text
    assert "lx_session" not in client.cookies
    signed = client.post(
        "/auth/login", json={"name": "rowan", "password": "rowan's first password"}
    )
    assert signed.status_code == 200


def test_the_audit_log_records_the_life_cycle(client: TestClient, app_settings: Settings) -> None:
    login(client, "wrong password!")
    csrf = login(client).json()["csrf"]
    made = client.post("/auth/tokens", json={"name": "QGIS"}, headers={"X-CSRF-Token": csrf})
    client.delete(f"/auth/tokens/{made.json()['id']}", headers={"X-CSRF-Token": csrf})
    client.post("/auth/logout", headers={"X-CSRF-Token": csrf})
    with open_access(app_settings) as access:
        events = [(e.actor, e.action) for e in reversed(access.read_audit(limit=50))]
    assert events == [
        ("olive", "sign-in refused"),
        ("olive", "sign-in"),
        ("olive", "token created"),
        ("olive", "token revoked"),
        ("olive", "sign-out"),
    ]
