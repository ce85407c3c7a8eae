"""Ten editors for a minute on one layer, against a live ``landexplorer serve --workers 2``
on each store (issue 10's many-editors test; test_concurrent_editors.py is its short,
in-process cousin).

Each editor is a steward of the layer's group with a token of their own, made through
the access store. For ``LANDEXPLORER_TEN_EDITORS_SECONDS`` (60 by default) each one, on
its own HTTP connection, reads a feature and then creates, patches its attributes,
patches its geometry or deletes it, with the ETag it read as If-Match. Some of the work
is on purpose on the same few features (a hot set every editor patches), on features
other editors made (so a delete can beat a patch), with an ETag already out of date,
and without If-Match at all. Every request and answer is recorded; afterwards:

- every refused edit got 412 (changed meanwhile), 428 (no If-Match) or, for a feature
  that an accepted delete removed first, 404 in plain words; nothing else, never a 5xx;
- the change list (``/changes``, paged to its end) holds each accepted edit exactly
  once, ids increasing, with its operation and the editor who made it, and nothing else;
- replaying that list from the layer as it was before gives the layer as it is after,
  each change's ``before`` being what the replay holds at that point (nothing lost in
  between, nothing applied twice); no feature is listed twice, no created one missing.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import shapely.geometry

from tests import live
from tests.edit.conftest import GROUP, LAYER, build
from tests.people import bearer, make_token

EDITORS = 10
SECONDS = float(os.environ.get("LANDEXPLORER_TEN_EDITORS_SECONDS", "60"))
HOT = [3, 4, 5]  # every editor patches these; nobody deletes them
ITEMS = f"/collections/{LAYER}/items"


@dataclass(eq=False)
class Call:
    """One edit request and its answer."""

    editor: str
    kind: str  # create, attributes, geometry, delete
    fid: int | None
    if_match: str | None
    body: dict[str, Any] | None
    stale: bool  # the If-Match was out of date on purpose
    status: int = 0
    answer: Any = None


@dataclass
class Log:
    calls: list[Call] = field(default_factory=list)
    made: list[int] = field(default_factory=list)  # features created, by anyone
    lock: threading.Lock = field(default_factory=threading.Lock)


def square(n: int, step: int) -> dict[str, Any]:
    """A small square no other edit draws (its corner says who and when)."""
    x, y = -2.33 + n * 0.002, 53.42 + step * 1e-6
    ring = [[x, y], [x + 0.001, y], [x + 0.001, y + 0.001], [x, y + 0.001], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def editor(base: str, n: int, token: dict[str, str], log: Log, stop_at: float) -> None:
    rng = random.Random(1000 + n)
    me = f"editor-{n}"
    mine: list[int] = []
    old_tags: dict[int, str] = {}  # an ETag of each feature from before my last change
    with httpx.Client(base_url=base, headers=token, timeout=60) as client:
        step = 0
        while time.monotonic() < stop_at:
            step += 1
            roll = rng.random()
            if roll < 0.2 or (not mine and roll < 0.3):
                name = f"{me} new {step}"
                body = {"type": "Feature", "geometry": square(n, step),
                        "properties": {"name": name}}  # fmt: skip
                call = Call(me, "create", None, None, body, False)
                r = client.post(ITEMS, json=body)
                call.status, call.answer = r.status_code, _json(r)
                with log.lock:
                    log.calls.append(call)
                    if r.status_code == 201:
                        log.made.append(int(call.answer["id"]))
                if r.status_code == 201:
                    mine.append(int(call.answer["id"]))
                continue
            where = rng.random()
            with log.lock:
                others = list(log.made)
            if where < 0.4 or not (mine or others):
                fid = rng.choice(HOT)
            elif where < 0.7 and mine:
                fid = rng.choice(mine)
            else:
                fid = rng.choice(others or mine)
            got = client.get(f"{ITEMS}/{fid}")
            if got.status_code == 404:  # deleted by someone: a read, not an edit
                if fid in mine:
                    mine.remove(fid)
                continue
            assert got.status_code == 200, got.text
            tag: str | None = got.headers["etag"]
            stale = False
            choice = rng.random()
            if choice < 0.05:
                tag = None  # no If-Match at all: 428
            elif choice < 0.12 and fid in old_tags:
                tag, stale = old_tags[fid], True  # out of date on purpose: 412
            if rng.random() < 0.3:
                time.sleep(rng.random() * 0.02)  # others may change it meanwhile
            kind = rng.choice(["attributes", "attributes", "geometry", "delete"])
            if kind == "delete" and fid in HOT:
                kind = "attributes"
            headers = {"If-Match": tag} if tag is not None else {}
            body = None
            if kind == "attributes":
                body = {"properties": {"name": f"{me} step {step}"}}
            elif kind == "geometry":
                body = {"geometry": square(n, step)}
            call = Call(me, kind, fid, tag, body, stale)
            if kind == "delete":
                r = client.delete(f"{ITEMS}/{fid}", headers=headers)
            else:
                r = client.patch(f"{ITEMS}/{fid}", json=body, headers=headers)
            call.status, call.answer = r.status_code, _json(r)
            with log.lock:
                log.calls.append(call)
            if r.status_code in (200, 204) and got.headers.get("etag"):
                old_tags[fid] = got.headers["etag"]
            if kind == "delete" and r.status_code == 204 and fid in mine:
                mine.remove(fid)


def _json(r: httpx.Response) -> Any:
    if r.status_code == 204 or not r.content:
        return None
    try:
        return r.json()
    except ValueError:
        return r.text


def all_items(client: httpx.Client) -> dict[int, dict[str, Any]]:
    """Every feature of the layer, by id, paged to the end."""
    found: dict[int, dict[str, Any]] = {}
    offset = 0
    while True:
        page = client.get(ITEMS, params={"limit": 1000, "offset": offset}).json()
        for f in page["features"]:
            assert int(f["id"]) not in found, f"feature {f['id']} is listed twice"
            found[int(f["id"])] = f
        if len(page["features"]) < 1000:
            return found
        offset += 1000


def all_changes(client: httpx.Client) -> list[dict[str, Any]]:
    """The layer's whole change list, following ``next`` links."""
    changes: list[dict[str, Any]] = []
    url: str | None = f"/collections/{LAYER}/changes?limit=500"
    while url:
        page = client.get(url).json()
        changes += page["changes"]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    return changes


def same_feature(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    if a["properties"] != b["properties"]:
        return False
    ga, gb = shapely.geometry.shape(a["geometry"]), shapely.geometry.shape(b["geometry"])
    return bool(ga.equals_exact(gb, 1e-9))


def test_ten_editors_for_a_minute(store_backend, settings, real_data, tmp_path):
    build(settings, real_data, tmp_path)
    tokens = {}
    for n in range(EDITORS):
        secret = make_token(settings, f"editor-{n}", admin=False, groups={GROUP: "steward"})
        tokens[n] = bearer(secret)
    log = Log()
    server = live.serve(settings.data_dir, database_url=settings.database_url, workers=2)
    with server as url, httpx.Client(base_url=url, headers=tokens[0], timeout=60) as reader:
        before = all_items(reader)
        assert len(before) == 35 and set(HOT) <= set(before)
        assert all_changes(reader) == []
        started = time.monotonic()
        stop_at = started + SECONDS
        threads = [
            threading.Thread(target=editor, args=(url, n, tokens[n], log, stop_at))
            for n in range(EDITORS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        after = all_items(reader)
        changes = all_changes(reader)

    calls = log.calls
    accepted = [c for c in calls if c.status in (200, 201, 204)]
    refused = [c for c in calls if c.status not in (200, 201, 204)]
    counts = Counter((c.kind, c.status) for c in calls)
    print(
        f"\n{store_backend}: {len(calls)} edits in {elapsed:.1f} s "
        f"({len(calls) / elapsed:.1f} edits/s, {len(accepted) / elapsed:.1f} accepted/s); "
        f"accepted {len(accepted)}, refused {len(refused)}; by kind and answer: "
        + ", ".join(f"{k} {s}: {v}" for (k, s), v in sorted(counts.items()))
    )
    assert len(threads) == EDITORS and all(not t.is_alive() for t in threads)
    # every editor got work done, and the race was real: some edits were refused
    assert {c.editor for c in accepted} == {f"editor-{n}" for n in range(EDITORS)}
    assert any(c.status == 412 and not c.stale for c in calls), "the editors never met"

    # ----- every answer is one of the expected ones --------------------------------------
    deleted = {c.fid for c in accepted if c.kind == "delete"}
    for c in calls:
        if c.kind == "create":
            assert c.status == 201, (c.status, c.answer)
        elif c.if_match is None:
            assert c.status == 428, (c.status, c.answer)
            assert "If-Match" in c.answer["description"], c.answer
        elif c.status == 412:
            assert c.answer["code"] == "changed", c.answer
            assert "feature" in c.answer
        elif c.status == 404:
            assert c.fid in deleted, f"404 for feature {c.fid}, which nobody deleted"
            assert c.answer["description"] == f"There is no feature {c.fid} in '{LAYER}'."
        else:
            assert c.status in ((204,) if c.kind == "delete" else (200,)), (c.status, c.answer)
            assert not c.stale, "an out-of-date ETag was accepted"
    assert any(c.status == 428 for c in calls) and any(c.stale and c.status == 412 for c in calls)

    # ----- the change list holds each accepted edit once, and nothing else ---------------
    ids = [ch["id"] for ch in changes]
    assert ids == sorted(set(ids)), "change ids are not increasing, or one is listed twice"
    assert len(changes) == len(accepted), (len(changes), len(accepted))
    operation = {"create": "create", "attributes": "update", "geometry": "update"}
    unmatched: dict[tuple[str, str, int], list[Call]] = {}
    for c in accepted:
        fid = c.fid if c.fid is not None else int(c.answer["id"])
        unmatched.setdefault((c.editor, operation.get(c.kind, "delete"), fid), []).append(c)
    for ch in changes:
        candidates = unmatched.get((ch["by"], ch["operation"], ch["featureId"]), [])
        match = next(
            (
                c
                for c in candidates
                if c.kind == "delete" or same_feature(_bare(c.answer), ch["after"])
            ),
            None,
        )
        assert match is not None, f"change {ch['id']} matches no accepted edit: {ch}"
        candidates.remove(match)
    assert not any(unmatched.values())

    # ----- replaying the change list on the layer as it was gives the layer as it is -----
    state: dict[int, dict[str, Any] | None] = {fid: _bare(f) for fid, f in before.items()}
    for ch in changes:
        fid = ch["featureId"]
        assert same_feature(state.get(fid), ch["before"]), f"change {ch['id']} missed one"
        state[fid] = ch["after"]
    replayed = {fid: f for fid, f in state.items() if f is not None}
    assert set(replayed) == set(after), sorted(set(replayed) ^ set(after))
    for fid, f in after.items():
        assert same_feature(replayed[fid], _bare(f)), fid
    created = [int(c.answer["id"]) for c in accepted if c.kind == "create"]
    assert len(created) == len(set(created)), "a feature id was given twice"
    assert set(created) - deleted <= set(after), "a created feature is missing"
    assert len(after) == 35 + len(created) - len(deleted)


def _bare(feature: dict[str, Any] | None) -> dict[str, Any] | None:
    """A feature's properties and geometry, as a change's ``before``/``after`` has them."""
    if feature is None:
        return None
    return {"properties": feature["properties"], "geometry": feature["geometry"]}
