"""Following the catalogue from several processes: one change counter for all of them.

A server process keeps a few answers in memory between requests (the people it has
looked up, the column types of layer tables, ...). When several processes serve one
catalogue (``serve --workers N`` on one machine, or N instances on one PostGIS behind a
proxy), a change made through any of them must reach the memories of all the others
within a second. So the catalogue keeps a change counter that moves with every change
that can change an answer, in the same transaction as the change:

* PostGIS: the one-row table ``landexplorer_changes``, moved by triggers on the catalogue
  and the access tables when a changing transaction commits (deferred: the row is locked
  only while committing, never while a long upload is written), which also
  ``NOTIFY landexplorer_changes``. Every process ``LISTEN``s on one connection of its own
  in a background thread (a change reaches it in milliseconds) and reads the counter there
  every ``POLL_S`` as well, in case a notification is lost with its connection.
* GeoPackage (several workers on one machine): SQLite's ``PRAGMA data_version`` of
  ``access.sqlite``, which moves whenever another connection commits, read in a background
  thread every ``POLL_S``. (The GeoPackage store reads its own catalogue's data_version on
  every lookup already, so its entries never go stale.)

Request paths ask :meth:`Changes.epoch`: an integer in memory (no I/O), moved whenever
the watcher sees the counter move. (Changes this process makes itself are known to its
caches at once by other means, e.g. ``AccessStore.generation``.) A cache keeps what it
holds together with the epoch it was read at and reads again when the epoch has moved.
When the watcher has not confirmed the counter for ``FRESH_S`` (the database cannot be
reached, the triggers could not be made), ``epoch()`` gives a new number on every call,
so such caches miss and every answer is read from the catalogue itself.

The watcher starts on the first ``epoch()`` and stops after ``IDLE_S`` without one, or
when the last store of the catalogue in this process is closed (it holds a database
connection of its own).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from landexplorer.catalog.pgquery import redact
from landexplorer.catalog.sql import quote_ident

log = logging.getLogger("landexplorer.catalog.changes")

#: How often the watcher reads the counter when no notification came, seconds.
POLL_S = 0.25
#: How long a confirmed counter is trusted without a newer confirmation, seconds.
FRESH_S = 0.9
#: How long the watcher keeps running with nobody asking, seconds.
IDLE_S = 10.0
#: How often the watcher looks again for watched tables that had no trigger yet, seconds.
RECHECK_S = 5.0

COUNTER_TABLE = "landexplorer_changes"
CHANNEL = "landexplorer_changes"
_TRIGGER = "landexplorer_changed"
_INSTALL_LOCK = 0x6C656368  # any constant: one installer at a time

#: Tables whose changes can change an answer, and the events that do. A token's
#: ``last_used`` (bookkeeping) is left out: it must not empty every cache each hour.
WATCHED: dict[str, str] = {
    "landexplorer_layers": "INSERT OR UPDATE OR DELETE",
    "access_users": "INSERT OR UPDATE OR DELETE",
    "access_groups": "INSERT OR UPDATE OR DELETE",
    "access_members": "INSERT OR UPDATE OR DELETE",
    "access_grants": "INSERT OR UPDATE OR DELETE",
    "access_links": "INSERT OR UPDATE OR DELETE",
    "access_secrets": "INSERT OR DELETE OR UPDATE OF revoked, expires, scope, user_name, digest",
}

#: The counter and its trigger function. ``{schema}``: the catalogue's schema, named in the
#: function so that a change made with another search_path (psql) still finds the counter.
_COUNTER_SQL = f"""
CREATE TABLE IF NOT EXISTS {COUNTER_TABLE} (
  one boolean PRIMARY KEY DEFAULT true CHECK (one), counter bigint NOT NULL);
INSERT INTO {COUNTER_TABLE} VALUES (true, 0) ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION {_TRIGGER}() RETURNS trigger AS $$
BEGIN
  UPDATE {{schema}}.{COUNTER_TABLE} SET counter = counter + 1;
  PERFORM pg_notify('{CHANNEL}', '');
  RETURN NULL;
END $$ LANGUAGE plpgsql;
"""


class Changes(ABC):
    """The change epoch of one catalogue in this process (see the module's docstring)."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self._epoch = next(self._numbers)
        self._seen: Any = None  # the counter as last read
        self._confirmed = float("-inf")  # monotonic time of the last confirmed read
        self._asked = time.monotonic()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: how many times the watcher saw the counter move (for diagnostics)
        self.moves = 0

    # ----- what request paths ask ---------------------------------------------------------
    def epoch(self) -> int:
        """A number that moves whenever the catalogue may have changed (memory only)."""
        now = time.monotonic()
        self._asked = now
        if self._thread is None or not self._thread.is_alive():
            self._start()
        if now - self._confirmed > FRESH_S:
            with self._lock:
                self._epoch = next(self._numbers)
                return self._epoch
        return self._epoch

    def fresh(self) -> bool:
        """Whether the counter was confirmed within ``FRESH_S``."""
        return time.monotonic() - self._confirmed <= FRESH_S

    def wait_fresh(self, timeout: float = 5.0) -> bool:
        """Start the watcher and wait until it has read the counter (tests, start-up)."""
        deadline = time.monotonic() + timeout
        self.epoch()
        while not self.fresh():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)

    # ----- the watcher ----------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="le-changes", daemon=True)
            self._thread.start()

    def _saw(self, counter: Any) -> None:
        """The counter was read: move the epoch if it moved, and note the confirmation."""
        with self._lock:
            if counter != self._seen:
                if self._seen is not None:
                    self.moves += 1
                self._seen = counter
                self._epoch = next(self._numbers)
        self._confirmed = time.monotonic()

    def _idle(self) -> bool:
        return time.monotonic() - self._asked > IDLE_S

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set() and not self._idle():
            try:
                self._watch()
                backoff = 0.1
            except Exception as exc:  # the database went away: try again, trust nothing
                self._confirmed = float("-inf")
                log.info("change watcher: %s (trying again)", redact(str(exc)))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
        self._confirmed = float("-inf")

    @abstractmethod
    def _watch(self) -> None:
        """Follow the counter until stopped, idle or an error (calling ``_saw``)."""


class PostgresChanges(Changes):
    """The counter of a PostGIS catalogue: LISTEN/NOTIFY, with a read every ``POLL_S``."""

    def __init__(self, url: str, connect: Callable[[], Any]) -> None:
        super().__init__()
        self.url = url
        self._connect = connect  # a new autocommit connection (not one of the pool's)

    def _watch(self) -> None:
        conn = self._connect()
        try:
            missing = install(conn)
            checked = time.monotonic()
            conn.execute(f"LISTEN {CHANNEL}")
            while not self._stop.is_set() and not self._idle():
                if missing and time.monotonic() - checked > RECHECK_S:
                    # a watched table made after we started (people, before their first use)
                    missing, checked = install(conn), time.monotonic()
                row = conn.execute(f"SELECT counter FROM {COUNTER_TABLE}").fetchone()
                self._saw(row[0] if row else None)
                # wait for a notification (or POLL_S), then read the counter again
                for _ in conn.notifies(timeout=POLL_S, stop_after=1):
                    pass
        finally:
            with contextlib.suppress(Exception):
                conn.close()


def install(conn: Any) -> set[str]:
    """Make the counter and its triggers where they are missing, on the watched tables that
    exist; returns the watched tables that do not exist yet. Idempotent; one installer at
    a time (an advisory lock)."""
    with conn.transaction():
        # a trigger waits for writers of its table: never long (the watcher tries again)
        conn.execute("SET LOCAL lock_timeout = '5s'")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INSTALL_LOCK,))
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        sql = _COUNTER_SQL.replace("{schema}", quote_ident(schema))
        has_counter = conn.execute("SELECT to_regclass(%s)", (COUNTER_TABLE,)).fetchone()[0]
        body = conn.execute(
            "SELECT prosrc FROM pg_proc WHERE proname = %s "
            "AND pronamespace = current_schema()::regnamespace",
            (_TRIGGER,),
        ).fetchone()
        if has_counter is None or body is None or body[0] not in sql:
            conn.execute(sql)  # missing, or made by an older landexplorer: (re)made
        rows = conn.execute(
            "SELECT c.relname, EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid "
            "AND t.tgname = %s) FROM pg_class c WHERE c.relname = ANY(%s) "
            "AND c.relnamespace = current_schema()::regnamespace",
            (_TRIGGER, list(WATCHED)),
        ).fetchall()
        for table, has_trigger in rows:
            if not has_trigger:
                conn.execute(
                    f"CREATE CONSTRAINT TRIGGER {_TRIGGER} AFTER {WATCHED[table]} ON {table} "
                    f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {_TRIGGER}()"
                )
    return set(WATCHED) - {r[0] for r in rows}


class SqliteChanges(Changes):
    """The counter of a GeoPackage catalogue: ``PRAGMA data_version`` of its files, read
    every ``POLL_S`` (several worker processes on one machine)."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self.paths = paths  # files only Python's sqlite3 writes (no GDAL: no gate needed)

    def _watch(self) -> None:
        conns = []
        try:
            for path in self.paths:
                if not path.exists():  # not made yet: nothing to trust until it is
                    raise FileNotFoundError(f"{path} does not exist yet")
                conns.append(sqlite3.connect(path, timeout=5.0, isolation_level=None))
            while not self._stop.is_set() and not self._idle():
                self._saw(tuple(c.execute("PRAGMA data_version").fetchone()[0] for c in conns))
                self._stop.wait(POLL_S)
        finally:
            for conn in conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()


_REGISTRY: dict[str, tuple[Changes, int]] = {}
_REGISTRY_LOCK = threading.Lock()


def shared(key: str, make: Callable[[], Changes]) -> Changes:
    """The one ``Changes`` of a catalogue (``key``: its URL or file) in this process: stores
    opened twice share it, so a change through either moves the epoch of both at once.
    Each call is one user of it until ``release(key)``."""
    with _REGISTRY_LOCK:
        found, users = _REGISTRY.get(key) or (make(), 0)
        _REGISTRY[key] = (found, users + 1)
        return found


def release(key: str) -> None:
    """One user of catalogue ``key``'s ``Changes`` is done; the last one stops its watcher."""
    with _REGISTRY_LOCK:
        found, users = _REGISTRY.get(key) or (None, 0)
        if found is None:
            return
        if users > 1:
            _REGISTRY[key] = (found, users - 1)
            return
        del _REGISTRY[key]
    found.close()
