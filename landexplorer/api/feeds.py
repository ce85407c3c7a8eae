"""What wakes the live change feeds of this process (``/collections/{id}/changes/live``).

A feed must not read the database in a loop of its own: two hundred people following a
layer would be two hundred queries a tick. So one watcher per process (an asyncio task,
running while anyone follows anything) keeps the catalogue entry of every followed layer
and wakes the feeds of a layer when its entry changed. An edit moves the layer's version
in the same transaction as its history row, a replace from a file moves it too, and a
change of visibility or a delete changes the entry, so "the entry changed" is exactly
"read the history again, and ask the policy again".

The watcher reads the followed entries (one read per layer, in a worker thread):

* at once when this process applied an edit (``edited``, called by the edit routes);
* when the store's change epoch moved (``Store.changes``: on PostGIS a LISTEN/NOTIFY
  counter moved by triggers on the catalogue table, so an edit made by another server
  process on the same database arrives within milliseconds); the epoch is memory only,
  looked at every ``EPOCH_LOOK_S``;
* on GeoPackage, when the catalogue file's modification time or size moved (one
  ``stat`` per ``EPOCH_LOOK_S``, no lock taken, so a long upload never makes the watcher
  wait): another worker process committed something, an edit perhaps. That epoch follows
  only the people and sharing tables, and an edit by the other worker must still arrive
  within a second. A write still in progress moves the file too; the read then finds the
  entry as it was, and the commit moves the file again;
* and at least every ``POLL_S`` whatever happened (``POLL_TRUSTED_S`` while a PostGIS
  epoch is confirmed), for what no signal reports: a change of the file within the
  clock's resolution of the one before it, or a lost signal.

A feed waits on its layer's ``Followed.event``, taken *before* it reads the history: a
change that lands during the read sets that event, so no wake is ever lost.

Shutting down: uvicorn waits for open responses before it stops, and a feed never ends by
itself, so the watcher hooks SIGTERM and SIGINT (chained before uvicorn's own handler)
and sets ``closing``: every feed then ends at once and the server stops in moments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from landexplorer import budget
from landexplorer.catalog import LayerEntry, Store
from landexplorer.errors import LayerNotFound

log = logging.getLogger("landexplorer.api.feeds")

#: How often the watcher looks at the store's change epoch (memory only), seconds.
EPOCH_LOOK_S = 0.05
#: The longest a followed layer goes without its entry read, seconds ...
POLL_S = 1.0
#: ... and while a PostGIS change epoch is confirmed (it reports every catalogue change).
POLL_TRUSTED_S = 5.0
#: The time budget of one read made for the feeds (outside any request's budget).
READ_BUDGET_S = 10.0
#: The shortest time between two reads woken by the GeoPackage file moving, seconds
#: (a large upload by another worker moves the file all the time it is written).
FILE_READ_GAP_S = 0.2


@dataclass
class Followed:
    """One layer that feeds in this process follow."""

    entry: LayerEntry | None  # None: deleted (or the read failed: see ``gone``)
    users: int = 0
    #: set (and replaced by a new one) whenever the entry changed
    event: asyncio.Event = field(default_factory=asyncio.Event)
    #: the highest change id any feed here has read (a start for finding "now")
    last_id: int = 0

    def wake(self) -> None:
        self.event.set()
        self.event = asyncio.Event()


class Feeds:
    """The live feeds of one app in one process: counts, the followed layers, the watcher."""

    def __init__(self, store: Store, max_streams: int, max_per_client: int) -> None:
        self.store = store
        self.max_streams = max_streams
        self.max_per_client = max_per_client
        self.loop = asyncio.get_running_loop()
        self.open = 0
        self.per_client: Counter[str] = Counter()
        self.layers: dict[str, Followed] = {}
        self.closing = asyncio.Event()
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._hooked = False

    # ----- opening and closing feeds ------------------------------------------------------
    def admit(self, client: str) -> str | None:
        """Count a new feed of ``client`` in; None when admitted, else why not (words)."""
        if self.open >= self.max_streams:
            return (
                "This server is following as many live changes as it can just now. "
                "Please try again in a minute."
            )
        if self.per_client[client] >= self.max_per_client:
            return (
                f"You already follow {self.max_per_client} live change lists from this "
                "address. Close some (another tab or window) and try again."
            )
        self.open += 1
        self.per_client[client] += 1
        return None

    def leave(self, client: str) -> None:
        self.open -= 1
        self.per_client[client] -= 1
        if self.per_client[client] <= 0:
            del self.per_client[client]

    def follow(self, entry: LayerEntry) -> Followed:
        found = self.layers.get(entry.id)
        if found is None:
            found = self.layers[entry.id] = Followed(entry)
        found.users += 1
        self._hook_signals()
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._watch(), name="le-live-feeds")
        return found

    def unfollow(self, layer_id: str) -> None:
        found = self.layers.get(layer_id)
        if found is None:
            return
        found.users -= 1
        if found.users <= 0:
            del self.layers[layer_id]

    def kick(self) -> None:
        """This process changed something a feed may show: read the entries now."""
        self._kick.set()

    def close(self) -> None:
        """The server is stopping: every feed ends now."""
        self.closing.set()
        for followed in self.layers.values():
            followed.wake()

    # ----- the watcher ---------------------------------------------------------------------
    async def _watch(self) -> None:
        source = self.store.changes()
        seen = source.epoch() if source is not None else None
        read_at = time.monotonic()
        mark = _file_mark(self.store)
        while self.layers and not self.closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), EPOCH_LOOK_S)
            kicked = self._kick.is_set()
            self._kick.clear()
            moved = False
            trusted = False
            if source is not None:
                now_epoch = source.epoch()
                # an epoch that is not confirmed gives a new number every call: the poll
                # below covers that time instead
                trusted = source.fresh()
                moved = trusted and now_epoch != seen
                seen = now_epoch
            now_mark = _file_mark(self.store)
            if now_mark != mark and time.monotonic() - read_at >= FILE_READ_GAP_S:
                mark = now_mark
                moved = True
            every = POLL_TRUSTED_S if trusted and self.store.backend == "postgis" else POLL_S
            if not (kicked or moved or time.monotonic() - read_at >= every):
                continue
            read_at = time.monotonic()
            ids = list(self.layers)
            try:
                entries = await run_in_threadpool(self._entries, ids)
            except Exception as exc:  # the database is away: the feeds wait, try again later
                log.info("live feeds could not read the catalogue: %s", exc)
                continue
            for layer_id, entry in entries.items():
                followed = self.layers.get(layer_id)
                if followed is not None and entry != followed.entry:
                    followed.entry = entry
                    followed.wake()

    def _entries(self, ids: list[str]) -> dict[str, LayerEntry | None]:
        out: dict[str, LayerEntry | None] = {}
        with budget.limit(READ_BUDGET_S):
            for layer_id in ids:
                try:
                    out[layer_id] = self.store.get(layer_id)
                except LayerNotFound:
                    out[layer_id] = None
        return out

    def _hook_signals(self) -> None:
        """Chain SIGTERM and SIGINT before the server's own handlers (see the docstring)."""
        if self._hooked or threading.current_thread() is not threading.main_thread():
            return  # signals are the main thread's (a test client runs the app elsewhere)
        self._hooked = True
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)

            def handler(number: int, frame: Any, previous: Any = previous) -> None:
                self.loop.call_soon_threadsafe(self.close)
                if callable(previous):
                    previous(number, frame)
                else:  # the default (or ignore): as it was before us
                    signal.signal(number, previous)
                    signal.raise_signal(number)

            try:
                signal.signal(sig, handler)
            except (ValueError, OSError):  # not allowed here: feeds end with their clients
                return


def _file_mark(store: Store) -> tuple[int, ...] | None:
    """The modification times and sizes of the GeoPackage catalogue and its WAL (None on
    PostGIS, or when the file cannot be looked at): a commit of any process appends to
    the WAL (and a checkpoint moves the file)."""
    path = getattr(store, "path", None) if store.backend == "gpkg" else None
    if path is None:
        return None
    mark: list[int] = []
    for each in (str(path), f"{path}-wal"):
        try:
            found = os.stat(each)
        except OSError:
            if each == str(path):
                return None
            mark.extend((0, 0))  # no WAL (yet, or after the last connection closed)
            continue
        mark.extend((found.st_mtime_ns, found.st_size))
    return tuple(mark)


def feeds_of(app: Any) -> Feeds:
    """The app's ``Feeds`` in the running event loop (made on first use)."""
    found: Feeds | None = getattr(app.state, "live_feeds", None)
    if found is None or found.loop is not asyncio.get_running_loop():
        settings = app.state.settings
        found = Feeds(app.state.store, settings.live_max_streams, settings.live_max_per_client)
        app.state.live_feeds = found
    return found


def edited(app: Any) -> None:
    """An edit was applied by this process: wake the feeds' watcher (if there is one)."""
    found: Feeds | None = getattr(app.state, "live_feeds", None)
    if found is not None:
        found.kick()
