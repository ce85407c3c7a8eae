"""A layer's changes as they are accepted: ``GET /collections/{id}/changes/live``, a
Server-Sent Events stream (``text/event-stream``) that a browser follows with
``EventSource`` and a terminal with ``curl -N``.

Events, one per line group:

* ``event: ready`` first, ``id:`` and ``data: {"after": N}``: the stream follows the
  changes after change id N (the resume point asked for, or the layer's last change when
  none was; the ``id`` makes a reconnecting browser resume from there even if no change
  came before it lost the connection);
* ``event: change`` with ``id: <change id>`` and ``data:`` the change's JSON, exactly one
  entry of ``/changes`` (a ``layer replaced`` change too: clients then read the layer
  again);
* ``event: gone``: the layer was deleted, or is no longer shared with this caller (the
  two are told apart for nobody, as a 404 does not tell them apart); the stream ends;
* ``: keep-alive`` comments every ``HEARTBEAT_S`` so proxies keep the connection.

Resuming: ``Last-Event-ID`` (sent by ``EventSource`` when it reconnects) or ``?after=``:
every change after that id is sent first, read from the history a page at a time, then the
stream follows live. So a client that was away misses nothing and gets nothing twice.

Why no committed change is ever skipped: a feed reads "the changes with an id above the
last one it sent", so a change committed *later* with a *lower* id would be missed.
On GeoPackage there is one writer at a time (SQLite's write lock), and a change's id is
taken inside its write transaction: ids are committed in order. On PostGIS the id is a
``bigserial``, taken when the row is inserted; every history row of a layer (an edit, a
replace from a file) is inserted by a transaction that first took the layer's advisory
lock (``PostGISStore._layer_lock``), and PostgreSQL releases a transaction's locks only
after its commit is visible. So the next writer of the layer takes its id after the
previous one's commit can be seen: a layer's ids are committed in increasing order.
(Ids of *different* layers may commit out of order; a feed follows one layer.)

Who may follow: whoever may see the layer (the rule of ``/changes``); who made each change
is named as ``/changes`` names it. The policy is asked again whenever the layer's entry
changes (a visibility change is one) and at every heartbeat. Streams are counted per
worker process and per client address (``live_max_streams``, ``live_max_per_client``);
past either, 503 with Retry-After. A stream lasts at most ``live_max_s`` (or the
``timeout`` asked for); the browser then reconnects and resumes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from landexplorer import budget
from landexplorer.access.model import Actor
from landexplorer.access.policy import decide
from landexplorer.api.auth import actor_of
from landexplorer.api.deps import VectorCollection
from landexplorer.api.errors import ApiError
from landexplorer.api.feeds import READ_BUDGET_S, Feeds, Followed, feeds_of
from landexplorer.api.refusals import refusals
from landexplorer.api.routers.history import born
from landexplorer.catalog import LayerEntry, Store
from landexplorer.errors import InputError

router = APIRouter(tags=["Editing features"])

EVENT_STREAM = "text/event-stream"
#: How often a quiet stream sends a comment (and asks the policy again), seconds.
HEARTBEAT_S = 15.0
#: Changes read from the history at a time while catching up.
PAGE = 200
#: How long a browser waits before reconnecting, milliseconds (the SSE ``retry`` field).
RETRY_MS = 2000
_MAX_ID = 2**62


def _resume_point(last_event_id: str | None, after: int | None) -> int | None:
    """The change id to resume after (``Last-Event-ID`` wins: it is the browser's own)."""
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if len(text) > 20 or not text.isdigit() or int(text) > _MAX_ID:
            raise InputError(
                "Last-Event-ID must be the id of a change this stream sent (a whole number)."
            )
        return int(text)
    return after


def _event(kind: str, data: Any, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


def _read(store: Store, layer_id: str, after: int, limit: int, since: str | None) -> list[Any]:
    """A page of history, in a worker thread with a budget of its own (a stream outlives
    its request's budget)."""
    with budget.limit(READ_BUDGET_S):
        return store.history(layer_id, after=after, limit=limit, since=since)


def last_change_id(store: Store, layer_id: str, since: str | None, start: int = 0) -> int:
    """The id of the layer's last change (0: none), found without reading its history
    through: ``history(after=x, limit=1)`` is the layer's first change after x (one index
    step), so the last one is found by doubling steps from ``start`` (a change id known to
    be the layer's, or 0) and then halving them, a few dozen such reads at most."""
    first = _read(store, layer_id, start, 1, since)
    if not first:
        return start
    low = first[0].id  # a change of the layer; none above ``high``
    step = 1
    while True:
        found = _read(store, layer_id, low + step, 1, since)
        if not found:
            high = low + step
            break
        low, step = found[0].id, step * 2
    while high > low:
        middle = (low + high) // 2
        found = _read(store, layer_id, middle, 1, since)
        if found:
            low = found[0].id
        else:
            high = middle
    return low


def _client_of(request: Request) -> str:
    return request.client.host if request.client else ""


@router.get(
    "/collections/{collectionId}/changes/live",
    summary="A layer's changes, live (Server-Sent Events)",
    operation_id="getLiveChanges",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The changes as they are accepted: events 'ready', 'change' "
            "(the JSON of one entry of /changes) and 'gone' (see docs/api.md).",
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
        },
        **refusals(400, 404, 503),
    },
)
async def live_changes(
    request: Request,
    entry: VectorCollection,
    after: Annotated[
        int | None,
        Query(ge=0, le=_MAX_ID, description="Resume after this change id (else: from now)"),
    ] = None,
    timeout: Annotated[
        int | None,
        Query(ge=0, le=86_400, description="End the stream after this many seconds"),
    ] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> StreamingResponse:
    """Every change of the layer's features as it is accepted (one event each), after
    the changes since ``Last-Event-ID`` or ``after`` when resuming. See docs/api.md,
    "Following changes live"."""
    resume = _resume_point(last_event_id, after)
    settings = request.app.state.settings
    lifetime = min(timeout if timeout is not None else settings.live_max_s, settings.live_max_s)
    feeds = feeds_of(request.app)
    client = _client_of(request)
    refused = feeds.admit(client)
    if refused is not None:
        raise ApiError(503, "overloaded", refused, {"Retry-After": "30"})
    actor = actor_of(request)
    store: Store = request.app.state.store
    followed = feeds.follow(entry)
    try:
        since = born(entry)
        if resume is None:
            start = await run_in_threadpool(
                last_change_id, store, entry.id, since, followed.last_id
            )
        else:
            start = resume
    except BaseException:
        feeds.unfollow(entry.id)
        feeds.leave(client)
        raise
    headers = {
        "Cache-Control": "no-cache" if entry.is_public else "private, no-cache",
        "X-Accel-Buffering": "no",
    }
    body = _stream(feeds, followed, actor, entry, store, start, lifetime)
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            feeds.unfollow(entry.id)
            feeds.leave(client)

    return _FeedResponse(body, release, media_type=EVENT_STREAM, headers=headers)


class _FeedResponse(StreamingResponse):
    """A stream that gives its place back however it ends: finished, the client gone, or
    never started (the client left before the first byte, so the body never ran)."""

    def __init__(self, body: AsyncIterator[bytes], release: Any, **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def _stream(
    feeds: Feeds,
    followed: Followed,
    actor: Actor,
    first: LayerEntry,
    store: Store,
    start: int,
    lifetime: float,
) -> AsyncIterator[bytes]:
    layer_id, created = first.id, first.created
    yield f"retry: {RETRY_MS}\n".encode() + _event("ready", {"after": start}, start)
    last = start
    ends = time.monotonic() + lifetime
    beat = time.monotonic() + HEARTBEAT_S
    while not feeds.closing.is_set():
        wake = followed.event  # before reading: a change during the read sets it
        entry = followed.entry
        if entry is None or entry.created != created or not _sees(actor, entry):
            yield _event(
                "gone",
                {"description": f"'{layer_id}' is no longer there, or no longer "
                 "shared with you. Nothing more will come on this stream."},
            )  # fmt: skip
            return
        changes = await run_in_threadpool(_read, store, layer_id, last, PAGE, born(entry))
        names = decide(actor, "edit", entry).allowed
        for change in changes:
            yield _event("change", change.to_doc(names), change.id)
            last = change.id
        if changes:  # only ids read from the history (a resume point may be anything)
            followed.last_id = max(followed.last_id, changes[-1].id)
        if len(changes) == PAGE:
            continue  # catching up: the next page at once
        now = time.monotonic()
        if now >= ends:
            return
        if now >= beat:
            yield b": keep-alive\n\n"
            beat = now + HEARTBEAT_S
            continue  # and the policy is asked again
        closing = asyncio.ensure_future(feeds.closing.wait())
        woken = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait(
                {closing, woken}, timeout=min(beat, ends) - now,
                return_when=asyncio.FIRST_COMPLETED,
            )  # fmt: skip
        finally:
            closing.cancel()
            woken.cancel()


def _sees(actor: Actor, entry: LayerEntry) -> bool:
    return decide(actor, "view", entry).allowed
