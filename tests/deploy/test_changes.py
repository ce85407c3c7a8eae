"""The catalogue's change counter (``catalog.changes``): what moves it, how fast the epoch
follows, and that nothing is trusted when it cannot be followed."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg
import pytest

from landexplorer.access.store import AccessStore
from landexplorer.catalog import changes
from landexplorer.catalog.changes import FRESH_S, PostgresChanges, SqliteChanges
from landexplorer.catalog.postgis import PostGISStore


def moved_within(watch: changes.Changes, before: int, seconds: float = 1.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if watch.fresh() and watch.epoch() != before:
            return True
        time.sleep(0.005)
    return False


def counter(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT counter FROM {changes.COUNTER_TABLE}").fetchone()
        return int(row[0])


@pytest.fixture
def pg(pg_cluster, tmp_path: Path):
    url = pg_cluster.new_database("changes")
    store = PostGISStore(url, tmp_path / "rasters")
    access = AccessStore.beside(store)
    # a watcher of its own (not the one shared in this process), as another server has
    watch = PostgresChanges(url, lambda: psycopg.connect(url, autocommit=True))
    assert watch.wait_fresh()
    yield url, store, access, watch
    watch.close()
    access.close()
    store.close()


def test_changes_through_any_path_move_the_epoch(pg) -> None:
    url, _, access, watch = pg
    access.add_user("cai")
    access.add_group("growers", "Growers")
    for change in (
        lambda: access.set_member("growers", "cai", "viewer"),
        lambda: access.remove_member("growers", "cai"),
        lambda: access.create_token("cai", "laptop"),
        lambda: access.set_disabled("cai"),
    ):
        before = watch.epoch()
        change()
        assert moved_within(watch, before), change
    # by hand in SQL, as an administrator might (with a search_path of their own, too)
    before = watch.epoch()
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE access_users SET display = 'Cai' WHERE name = 'cai'")
    assert moved_within(watch, before)
    before = watch.epoch()
    with psycopg.connect(url) as conn:
        conn.execute("SET search_path = pg_catalog")
        conn.execute("UPDATE public.access_users SET display = 'C' WHERE name = 'cai'")
    assert moved_within(watch, before)


def test_bookkeeping_and_uncommitted_work_do_not_move_the_counter(pg) -> None:
    url, _, access, _ = pg
    access.add_user("cai")
    start = counter(url)
    with psycopg.connect(url) as conn:
        # a token's 'last used' is bookkeeping
        conn.execute("UPDATE access_secrets SET last_used = 'x'")
        conn.commit()
        assert counter(url) == start
        # a change not yet committed moves nothing anyone can see (the trigger is deferred)
        conn.execute("UPDATE access_users SET admin = 1 WHERE name = 'cai'")
        assert counter(url) == start
        conn.rollback()
    assert counter(url) == start
    access.set_admin("cai")
    assert counter(url) == start + 1


def test_an_unreachable_database_means_nothing_is_kept(tmp_path: Path) -> None:
    with socket_port() as port:
        url = f"postgresql://nobody@127.0.0.1:{port}/none"
        watch = PostgresChanges(url, lambda: psycopg.connect(url, connect_timeout=1))
        first = watch.epoch()
        time.sleep(0.05)
        assert not watch.fresh()
        assert len({first, watch.epoch(), watch.epoch()}) == 3  # every call: a new epoch
        watch.close()


def test_a_geopackage_worker_follows_access_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "access.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    watch = SqliteChanges([path])
    assert watch.wait_fresh()
    before = watch.epoch()
    time.sleep(FRESH_S / 3)
    assert watch.epoch() == before  # nothing moved: the same epoch
    other = sqlite3.connect(path)  # another worker's connection
    other.execute("INSERT INTO t VALUES (1)")
    other.commit()
    assert moved_within(watch, before)
    watch.close()


def test_stores_of_one_catalogue_share_one_watcher(pg, tmp_path: Path) -> None:
    url, store, _, _ = pg
    again = PostGISStore(url, tmp_path / "rasters")
    assert store.changes() is again.changes()
    watch = store.changes()
    assert watch.wait_fresh()
    again.close()
    assert watch.fresh()  # still used by the first store
    store.close()
    time.sleep(FRESH_S + 0.1)
    assert not watch.fresh()  # the last one closed: stopped


class socket_port:
    """A loopback port nothing listens on, while in use."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
