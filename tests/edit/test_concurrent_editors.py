"""Several editors at once on one layer, on each store (a short run of the issue's
many-editors test): random creates, patches and deletes, some on the same features.
Every accepted change is in the final data and in the history, once; every refused one
got 412 (a stale ETag) or 404 (deleted meanwhile); nothing lost or duplicated."""

from __future__ import annotations

import random
import threading
from typing import Any

from tests.edit.conftest import LAYER, World
from tests.edit.test_features_edit import ITEMS, SQUARE

EDITORS = 4
STEPS = 12
SHARED = [20, 21, 22]  # every editor works on these too


def test_editors_at_once_lose_nothing(world: World) -> None:
    accepted: list[tuple[str, int, Any]] = []  # (operation, fid, name or None)
    refused: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(EDITORS)

    def editor(n: int) -> None:
        rng = random.Random(n)
        mine: list[int] = []
        start.wait()
        for step in range(STEPS):
            roll = rng.random()
            if roll < 0.25 or not mine:
                name = f"editor {n} new {step}"
                body = {"type": "Feature", "geometry": SQUARE, "properties": {"name": name}}
                r = world.send("POST", ITEMS, "ora", json=body)
                assert r.status_code == 201, r.text
                fid = r.json()["id"]
                mine.append(fid)
                with lock:
                    accepted.append(("create", fid, name))
                continue
            fid = rng.choice(SHARED + mine)
            got = world.get(f"{ITEMS}/{fid}", "ora")
            if got.status_code == 404:
                continue
            tag = got.headers["etag"]
            if roll < 0.85 or fid in SHARED:
                name = f"editor {n} step {step}"
                body = {"properties": {"name": name}}
                r = world.send(
                    "PATCH", f"{ITEMS}/{fid}", "ora", json=body, headers={"If-Match": tag}
                )
                op: tuple[str, int, Any] = ("update", fid, name)
            else:
                r = world.send("DELETE", f"{ITEMS}/{fid}", "ora", headers={"If-Match": tag})
                op = ("delete", fid, None)
                if r.status_code == 204:
                    mine.remove(fid)
            with lock:
                if r.status_code in (200, 204):
                    accepted.append(op)
                else:
                    assert r.status_code in (412, 404), r.text
                    refused.append(r.status_code)

    threads = [threading.Thread(target=editor, args=(n,)) for n in range(EDITORS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    store = world.client.app.state.store  # type: ignore[attr-defined]
    changes = store.history(LAYER, limit=10_000)
    # the history holds every accepted change exactly once, and nothing else
    recorded = sorted(
        (c.operation, c.feature_id, c.after.properties["name"] if c.after else None)
        for c in changes
    )
    assert recorded == sorted(accepted)
    # the final data is what the history says: the last change of each feature
    last: dict[int, Any] = {}
    for c in changes:
        last[c.feature_id] = c.after
    rows = {r["fid"]: r for r in store.read_arrow(LAYER).to_pylist()}
    for fid, state in last.items():
        if state is None:
            assert fid not in rows
        else:
            assert rows[fid]["name"] == state.properties["name"]
    created = [fid for op, fid, _ in accepted if op == "create"]
    assert len(created) == len(set(created))  # no id given twice
    deleted = {fid for op, fid, _ in accepted if op == "delete"}
    assert store.get(LAYER).feature_count == 35 + len(created) - len(deleted) == len(rows)
    assert refused, "the editors never met on a shared feature"
