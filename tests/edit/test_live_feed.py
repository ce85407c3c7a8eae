"""The live change feed (``/collections/{id}/changes/live``) against real server processes
on each store, read by a real HTTP client (httpx streaming the Server-Sent Events): an
edit arrives in another client's feed; a feed resumed with Last-Event-ID after a while
away catches up with exactly what it missed; on PostGIS an edit made through one server
reaches a feed held on another; concurrent editors' changes arrive each once, in order;
access is the rule of ``/changes`` and is asked again when the layer is made private; the
cap on open feeds answers 503; the server stops promptly with feeds open."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import live
from tests.edit.conftest import LAYER, POINTS, build

POINT = {"type": "Point", "coordinates": [-2.31, 53.43]}
#: generous liveness bound for an edit to reach a feed (the time is printed)
ARRIVES_S = 10.0


class Feed:
    """One client following a feed in a thread: its events arrive on ``events``."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url, self.headers = url, headers or {}
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status: int | None = None
        self.opened = threading.Event()
        self._stop = threading.Event()
        self._client: httpx.Client | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.opened.wait(30), "the feed did not answer"

    def _run(self) -> None:
        try:
            self._client = httpx.Client(timeout=httpx.Timeout(60, read=None))
            with self._client as client, client.stream("GET", self.url, headers=self.headers) as r:
                self.status = r.status_code
                self.opened.set()
                if r.status_code != 200:
                    self.events.put({"event": "refused", "data": json.loads(r.read())})
                    return
                event: dict[str, Any] = {}
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if not line:
                        if "event" in event:
                            self.events.put(event)
                        event = {}
                    elif line.startswith(":"):
                        self.events.put({"event": "comment", "data": line})
                    else:
                        name, _, value = line.partition(": ")
                        event[name] = json.loads(value) if name == "data" else value
                self.events.put({"event": "closed"})
        except Exception as exc:  # closed under it, or the server went away
            self.opened.set()
            self.events.put({"event": "closed", "error": str(exc)})

    def next(self, kind: str = "change", within: float = ARRIVES_S) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no '{kind}' event within {within} s"
            event = self.events.get(timeout=left)
            if event["event"] == kind:
                return event
            assert event["event"] in ("comment", "ready"), event

    def close(self) -> None:
        """Go away: the connection is closed at once (the thread may be mid-read)."""
        self._stop.set()
        if self._client is not None:
            self._client.close()
        self.thread.join(10)


def _patch(url: str, fid: int, trees: int, headers: dict[str, str]) -> httpx.Response:
    item = f"{url}/collections/{POINTS}/items/{fid}"
    tag = httpx.get(item, headers=headers).headers["etag"]
    return httpx.patch(
        item, json={"properties": {"trees": trees}}, headers={**headers, "If-Match": tag}
    )


def _create(url: str, name: str, headers: dict[str, str]) -> httpx.Response:
    body = {"type": "Feature", "geometry": POINT, "properties": {"name": name, "trees": 1}}
    return httpx.post(f"{url}/collections/{POINTS}/items", json=body, headers=headers)


@pytest.fixture
def tokens(store_backend, settings, real_data, tmp_path) -> dict[str, dict[str, str]]:
    return build(settings, real_data, tmp_path)


@pytest.fixture
def server(settings, tokens) -> Iterator[str]:
    with live.serve(settings.data_dir, database_url=settings.database_url) as url:
        yield url


def test_an_edit_arrives_and_a_resumed_feed_catches_up(server, tokens) -> None:
    url, ora = server, tokens["ora"]
    feed_url = f"{url}/collections/{POINTS}/changes/live"
    feed = Feed(feed_url)  # anonymous: a public layer, names not shown
    ready = feed.next("ready")
    assert ready["data"] == {"after": 0} and ready["id"] == "0"
    started = time.monotonic()
    assert _patch(url, 1, 40, ora).status_code == 200
    change = feed.next()
    took = time.monotonic() - started
    print(f"an edit reached another client's feed in {took * 1000:.0f} ms")
    listed = httpx.get(f"{url}/collections/{POINTS}/changes").json()["changes"]
    assert change["data"] == listed[0] and change["id"] == str(listed[0]["id"])
    assert change["data"]["after"]["properties"]["trees"] == 40
    assert change["data"]["by"] == "someone"  # as /changes shows it to anonymous
    feed.close()

    # away for 10 s while five edits are made; back with Last-Event-ID
    last = change["id"]
    time.sleep(1)
    made = []
    for n in range(5):
        r = _create(url, f"orchard {n}", ora) if n % 2 else _patch(url, 2, 50 + n, ora)
        assert r.status_code in (200, 201), r.text
        made.append(n)
    time.sleep(10)
    back = Feed(feed_url, {"Last-Event-ID": last, **ora})
    assert back.next("ready")["data"] == {"after": int(last)}
    got = [back.next() for _ in made]
    ids = [int(e["id"]) for e in got]
    listed = httpx.get(f"{url}/collections/{POINTS}/changes", headers=ora).json()["changes"]
    assert ids == [c["id"] for c in listed[1:]] and ids == sorted(set(ids))
    assert [e["data"] for e in got] == listed[1:]
    assert got[0]["data"]["by"] == "ora"  # the owner sees names
    # nothing more, and ?after= resumes the same way
    assert _patch(url, 1, 41, ora).status_code == 200
    newest = int(back.next()["id"])
    assert newest > ids[-1]
    back.close()
    again = Feed(f"{feed_url}?after={ids[1]}")
    assert [int(again.next()["id"]) for _ in range(4)] == [*ids[2:], newest]
    again.close()


def test_concurrent_editors_each_change_once_in_order(server, tokens) -> None:
    url = server
    feed = Feed(f"{url}/collections/{POINTS}/changes/live", tokens["ada"])
    feed.next("ready")
    accepted: list[int] = []
    lock = threading.Lock()

    def edit(who: str, n: int) -> None:
        for k in range(6):
            r = _create(url, f"{who} {n} {k}", tokens[who])
            assert r.status_code == 201, r.text
            with lock:
                accepted.append(int(r.headers["location"].rsplit("/", 1)[1]))

    threads = [threading.Thread(target=edit, args=(w, n)) for n, w in
               enumerate(["ora", "stew", "ada", "ora"])]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = [feed.next() for _ in accepted]
    ids = [int(e["id"]) for e in got]
    assert ids == sorted(set(ids)), ids
    assert sorted(e["data"]["featureId"] for e in got) == sorted(accepted)
    with pytest.raises(queue.Empty):  # nothing more, nothing twice
        while True:
            event = feed.events.get(timeout=2)
            assert event["event"] == "comment", event
    feed.close()


def test_access_is_the_rule_of_changes_and_is_asked_again(server, tokens) -> None:
    url = server
    anonymous = Feed(f"{url}/collections/{LAYER}/changes/live")  # a group layer
    refused = httpx.get(f"{url}/collections/{LAYER}/changes")
    assert anonymous.status == refused.status_code == 404
    assert anonymous.next("refused")["data"] == refused.json()
    viewer = Feed(f"{url}/collections/{LAYER}/changes/live", tokens["vic"])
    assert viewer.status == 200
    viewer.next("ready")
    # a public layer followed by anonymous, then made private by its owner: gone
    feed = Feed(f"{url}/collections/{POINTS}/changes/live")
    feed.next("ready")
    r = httpx.patch(f"{url}/collections/{POINTS}", json={"visibility": "private"},
                    headers=tokens["ora"])  # fmt: skip
    assert r.status_code == 200, r.text
    gone = feed.next("gone")
    assert "no longer" in gone["data"]["description"]
    assert feed.next("closed")
    viewer.close()
    # a Last-Event-ID that is no change id: refused in words
    bad = httpx.get(f"{url}/collections/{POINTS}/changes/live",
                    headers={**tokens["ora"], "Last-Event-ID": "yesterday"})  # fmt: skip
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["description"]
    # the owner follows it; the layer is deleted: gone
    owner = Feed(f"{url}/collections/{POINTS}/changes/live", tokens["ora"])
    owner.next("ready")
    assert httpx.delete(f"{url}/collections/{POINTS}", headers=tokens["ora"]).status_code == 204
    assert "no longer" in owner.next("gone")["data"]["description"]
    assert owner.next("closed")


def test_the_cap_gives_503_and_a_closed_feed_frees_its_place(settings, tokens) -> None:
    env = {"LANDEXPLORER_LIVE_MAX_STREAMS": "2", "LANDEXPLORER_LIVE_MAX_PER_CLIENT": "2"}
    with live.serve(settings.data_dir, database_url=settings.database_url, env=env) as url:
        feed_url = f"{url}/collections/{POINTS}/changes/live"
        first, second = Feed(feed_url), Feed(feed_url)
        first.next("ready")
        second.next("ready")
        r = httpx.get(feed_url)
        assert r.status_code == 503 and r.headers["retry-after"]
        assert "try again" in r.json()["description"]
        second.close()  # its connection closed: the server notices without writing to it
        deadline = time.monotonic() + 20
        while httpx.get(f"{feed_url}?timeout=0").status_code == 503:
            assert time.monotonic() < deadline, "a closed feed kept its place"
            time.sleep(0.2)
        first.close()


def test_the_server_stops_promptly_with_feeds_open(settings, tokens) -> None:
    with live.serve(settings.data_dir, database_url=settings.database_url) as url:
        feeds = [Feed(f"{url}/collections/{POINTS}/changes/live") for _ in range(3)]
        for feed in feeds:
            feed.next("ready")
        started = time.monotonic()
    took = time.monotonic() - started
    print(f"the server stopped in {took:.2f} s with 3 feeds open")
    assert took < 8
    for feed in feeds:
        assert feed.next("closed")


def test_an_edit_on_one_server_reaches_a_feed_on_another(store_backend, settings, tokens):
    if store_backend != "postgis":
        pytest.skip("two servers share one catalogue through PostGIS")
    with (
        live.serve(settings.data_dir, database_url=settings.database_url) as one,
        live.serve(settings.data_dir, database_url=settings.database_url) as two,
    ):
        feed = Feed(f"{two}/collections/{POINTS}/changes/live")
        feed.next("ready")
        started = time.monotonic()
        assert _patch(one, 2, 77, tokens["ora"]).status_code == 200
        change = feed.next()
        print(f"an edit on server 1 reached a feed on server 2 in "
              f"{(time.monotonic() - started) * 1000:.0f} ms")  # fmt: skip
        assert change["data"]["after"]["properties"]["trees"] == 77
        feed.close()
