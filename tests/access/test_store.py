"""The access store on both catalogues: accounts, secrets kept as digests only, groups,
links, grants, requests, and an audit log that cannot be rewritten."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from landexplorer.access import secrets
from landexplorer.access.store import AccessStore
from landexplorer.catalog import Store
from landexplorer.errors import InputError


@pytest.fixture
def access(store: Store) -> Iterator[AccessStore]:
    a = AccessStore.beside(store)
    yield a
    a.close()


def _all_text(access: AccessStore) -> str:
    return repr(access.dump())


def test_accounts_and_passwords(access: AccessStore) -> None:
    access.add_user("olive", password="a long enough secret", display="Olive")
    with pytest.raises(InputError, match="already an account"):
        access.add_user("olive")
    with pytest.raises(InputError, match="2 to 40 characters"):
        access.add_user("Olive Smith")
    with pytest.raises(InputError, match="at least 10"):
        access.add_user("pat", password="short")
    assert access.check_password("olive", "a long enough secret") is not None
    assert access.check_password("olive", "wrong password!") is None
    assert access.check_password("nobody", "a long enough secret") is None
    stored = _all_text(access)
    assert "a long enough secret" not in stored
    assert "$argon2id$" in stored
    access.set_disabled("olive")
    assert access.check_password("olive", "a long enough secret") is None


def test_tokens_sessions_and_links_are_digests(access: AccessStore) -> None:
    access.add_user("olive")
    token, info = access.create_token("olive", "QGIS", "read", 30)
    session = access.create_session("olive")
    once = access.create_sign_in_link("olive")
    link, _ = access.create_link("orchards", "olive")
    stored = _all_text(access)
    for secret in (token, session, once, link):
        assert secret not in stored
        assert secrets.digest(secret) in stored
    actor = access.actor_for_secret(token, "token")
    assert actor is not None and actor.user == "olive" and actor.scope == "read"
    assert access.actor_for_secret(token, "session") is None  # a token is not a session
    assert access.actor_for_secret(session, "session") is not None
    assert access.use_sign_in_link(once) == "olive"
    assert access.use_sign_in_link(once) is None  # once only
    assert access.link_layers([link, "lxl_made-up"]) == frozenset({"orchards"})
    assert access.revoke_token("olive", info.id)
    assert access.actor_for_secret(token, "token") is None
    access.end_session(session)
    assert access.actor_for_secret(session, "session") is None


def test_disabling_ends_everything(access: AccessStore) -> None:
    access.add_user("olive")
    token, _ = access.create_token("olive", "script", "write", 30)
    session = access.create_session("olive")
    access.set_disabled("olive")
    assert access.actor_for_secret(token, "token") is None
    assert access.actor_for_secret(session, "session") is None
    access.set_disabled("olive", False)  # enabling again does not revive old secrets
    assert access.actor_for_secret(token, "token") is None


def test_groups_roles_grants_requests(access: AccessStore) -> None:
    for name in ("sam", "vic", "gus"):
        access.add_user(name)
    access.add_group("growers", "Trafford growers")
    access.set_member("growers", "sam", "steward")
    access.set_member("growers", "vic", "viewer")
    with pytest.raises(InputError, match="role is one of"):
        access.set_member("growers", "vic", "boss")
    with pytest.raises(InputError, match="no group"):
        access.set_member("nope", "vic", "viewer")
    group = access.get_group("growers")
    assert group is not None and group.members == {"sam": "steward", "vic": "viewer"}
    assert access.roles_of("sam") == {"growers": "steward"}
    req = access.request_access("orchards", "gus", "for our survey")
    assert access.request_access("orchards", "gus").id == req.id  # asking twice: the same
    decided = access.decide_request(req.id, True, "sam")
    assert decided.status == "granted"
    with pytest.raises(InputError, match="already granted"):
        access.decide_request(req.id, False, "sam")
    token, _ = access.create_token("gus", "t", "read", 1)
    actor = access.actor_for_secret(token, "token")
    assert actor is not None and "orchards" in actor.grants
    access.forget_layer("orchards")
    assert access.grants_of("gus") == set()
    assert access.remove_member("growers", "vic")
    assert access.roles_of("vic") == {}


def test_audit_log_is_append_only(access: AccessStore, store: Store) -> None:
    access.audit("olive", "upload", "orchards", 1, features=3)
    access.audit("sam", "update", "orchards", 1, changes={"visibility": "public"})
    access.audit("sam", "upload", "allotments", 2)
    events = access.read_audit()
    assert [e.action for e in events] == ["upload", "update", "upload"]  # newest first
    assert access.read_audit(layer="orchards", limit=1)[0].action == "update"
    assert [e.layer for e in access.read_audit(layers=["allotments"])] == ["allotments"]
    assert [e.id for e in access.read_audit(before=events[0].id)] == [e.id for e in events[1:]]
    with pytest.raises(Exception, match="append-only"), access.db.tx() as cur:
        cur.run("UPDATE access_audit SET actor = 'someone else'")
    with pytest.raises(Exception, match="append-only"), access.db.tx() as cur:
        cur.run("DELETE FROM access_audit")
    assert len(access.read_audit()) == 3


def test_dump_and_load_carry_everything(access: AccessStore, tmp_path: object) -> None:
    from landexplorer.access.store import SqliteDb

    access.add_user("olive", password="a long enough secret")
    access.add_group("growers")
    access.set_member("growers", "olive", "steward")
    token, _ = access.create_token("olive", "t", "write", 5)
    access.audit("olive", "upload", "orchards", 1)
    other = AccessStore(SqliteDb(tmp_path / "copy.sqlite"))  # type: ignore[operator]
    try:
        counts = other.load(access.dump())
        assert counts["access_users"] == 1 and counts["access_audit"] == 1
        other.load(access.dump())  # again: harmless
        assert len(other.read_audit()) == 1
        actor = other.actor_for_secret(token, "token")
        assert actor is not None and actor.roles == {"growers": "steward"}
        assert other.check_password("olive", "a long enough secret") is not None
        other.audit("olive", "next", "orchards", 2)  # ids go on after the loaded ones
        assert [e.action for e in other.read_audit()] == ["next", "upload"]
    finally:
        other.close()


def test_expired_secrets_do_not_work(access: AccessStore) -> None:
    access.add_user("olive")
    session = access.create_session("olive", hours=1 / 3600)  # one second
    assert access.actor_for_secret(session, "session") is not None
    time.sleep(2.1)
    assert access.actor_for_secret(session, "session") is None


def test_a_full_disk_still_reads_people_and_refuses_changes_in_words(tmp_path: Path) -> None:
    """``access.sqlite`` (WAL) on a disk with no room left, closed cleanly before: SQLite
    cannot make the index it needs even to read, so the store reads the file as it is
    (tokens and sessions work), refuses every change with the disk-full words, and writes
    again once there is room."""
    from landexplorer.access.store import SqliteDb
    from landexplorer.errors import DiskFull
    from tests.crash import fill, small_disk

    with small_disk(tmp_path / "disk", 8) as disk:
        first = AccessStore(SqliteDb(disk / "access.sqlite"))
        first.add_user("olive")
        token, _ = first.create_token("olive", "QGIS", "read", 30)
        first.close()
        assert sorted(p.name for p in disk.iterdir()) == ["access.sqlite"]  # no -wal, -shm
        filler = fill(disk)
        access = AccessStore(SqliteDb(disk / "access.sqlite"))
        try:
            actor = access.actor_for_secret(token, "token")
            assert actor is not None and actor.user == "olive"
            with pytest.raises(DiskFull) as refused:
                access.add_user("rowan")
            assert "The disk is full" in str(refused.value)
            assert "Nothing was lost" in str(refused.value)
            assert access.get_user("rowan") is None
            filler.unlink()
            access.add_user("rowan")  # room again: a connection that writes
            assert access.get_user("rowan") is not None
            assert access.actor_for_secret(token, "token") is not None
        finally:
            access.close()
