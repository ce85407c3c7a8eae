#!/usr/bin/env python
"""Edits: how many feature edits a server accepts per second, and how soon another open
client's live change feed shows them (issue 10's benchmark).

Workload: the shared harness's 100k polygons (/tmp/bench-data/L/polys_100k.gpkg) ingested
as ``flood`` into a fresh catalogue on each store (GeoPackage; PostGIS in the harness's
cluster on 127.0.0.1:55432 when it runs, else a throw-away cluster started here), served by
``landexplorer serve`` with its default settings (workers included), edited by a site admin
with a write token.

  - edits/s: closed-loop editors, each on features of its own (no two editors on one feature,
    so every edit should be accepted), each edit a ``PATCH .../items/{id}`` with ``If-Match``
    (the ETag of the previous answer): of one attribute (``area_code``, a new text each time)
    or of the geometry (the feature's polygon moved by 1e-6 degrees and back). c=1 and c=8,
    a fixed time per cell; figures: accepted edits per second, p50 and p99 of the PATCH's
    round trip, refusals counted (there should be none).
  - feed latency: one client follows ``/collections/flood/changes/live`` while 8 editors
    patch attributes; for each accepted edit, the time from its accepted answer arriving at
    the editor to the change arriving in the feed (matched by the unique text written).
    Goal: p99 under 1 s.

Rounds interleave the two stores, the one that goes first alternating each round; each round
is a fresh server start over the same catalogue. Figures are medians over rounds with their
p25-p75 (``spread``).

Run: BENCH_ONLY=edit bash bench/run.sh, or .venv/bin/python bench/bench_edit.py.
BENCH_QUICK=1 is a smoke run (one round, 2 s cells) that writes
$BENCH_DATA/work/edit-smoke.json, never bench/results/edit.json.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", "/work/shared/bench"))
sys.path.insert(0, str(SHARED))
sys.path.insert(0, str(ROOT))
from common import DATA, QUICK, WORK, Noise, log  # noqa: E402
from pgdb import fresh_database  # noqa: E402
from servers import wait_ready  # noqa: E402
from wrkrun import spread  # noqa: E402

PY = sys.executable
PORT = int(os.environ.get("BENCH_LE_EDIT_PORT", "18090"))
ROUNDS = 1 if QUICK else int(os.environ.get("BENCH_EDIT_ROUNDS", "3"))
DURATION = 2.0 if QUICK else float(os.environ.get("BENCH_EDIT_DURATION", "8"))
CONCURRENCY = (1, 8)
FEED_EDITORS = 8
GPKG = DATA / "L" / "polys_100k.gpkg"
CAT = WORK / "landexplorer_edit"
OUT = (WORK / "edit-smoke.json") if QUICK else (ROOT / "bench" / "results" / "edit.json")
COMMAND = "BENCH_ONLY=edit bash bench/run.sh"
LAYER = "flood"
DBNAME = "le_edit"
STORES = ("gpkg", "postgis")


def database(stack: ExitStack) -> str:
    """A fresh PostGIS database for this benchmark (bench/pgdb.py)."""
    return fresh_database(stack, DBNAME)


def cli(data: Path, url: str | None, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "LANDEXPLORER_DATABASE_URL"}
    if url:
        env["LANDEXPLORER_DATABASE_URL"] = url
    done = subprocess.run(
        [PY, "-m", "landexplorer.cli", "--data-dir", str(data), *args],
        check=True, capture_output=True, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    return done.stdout + done.stderr


def build(store: str, url: str | None) -> tuple[Path, str]:
    """The catalogue with ``flood`` and an admin's write token."""
    data = CAT / store / "data"
    shutil.rmtree(data.parent, ignore_errors=True)
    data.mkdir(parents=True)
    cli(data, url, "ingest", "--no-pyramid", str(GPKG), "--id", LAYER, "--licence", "OGL-UK-3.0",
        "--attribution", "bench")  # fmt: skip
    cli(data, url, "users", "add", "editor", "--admin")
    said = cli(data, url, "users", "token", "editor", "--name", "bench", "--scope", "write")
    found = re.search(r"\blxt_[A-Za-z0-9_-]+", said)
    assert found, said
    return data, found.group(0)


class Serve:
    """``landexplorer serve`` with its defaults on one catalogue."""

    def __init__(self, data: Path, url: str | None) -> None:
        self.data, self.url = data, url
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        env = {k: v for k, v in os.environ.items() if k != "LANDEXPLORER_DATABASE_URL"}
        if self.url:
            env["LANDEXPLORER_DATABASE_URL"] = self.url
        log_file = (self.data.parent / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [PY, "-m", "landexplorer.cli", "--data-dir", str(self.data), "serve",
             "--port", str(PORT), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{PORT}"
        assert wait_ready(base, f"/collections/{LAYER}"), "the server did not start"
        return base

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def moved(geometry: dict[str, Any], d: float) -> dict[str, Any]:
    def shift(c: Any) -> Any:
        if isinstance(c[0], (int, float)):
            return [c[0] + d, c[1]]
        return [shift(x) for x in c]

    return {"type": geometry["type"], "coordinates": shift(geometry["coordinates"])}


def editor(
    base: str,
    token: str,
    fids: list[int],
    kind: str,
    until: float,
    out: dict[str, Any],
    accepted_at: dict[str, float] | None = None,
    tag: str = "",
) -> None:
    """Closed-loop PATCHes of ``fids`` in turn until ``until``."""
    auth = {"Authorization": f"Bearer {token}"}
    times: list[float] = []
    refused: dict[int, int] = {}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        state: dict[int, tuple[str, dict[str, Any]]] = {}
        for fid in fids:
            r = client.get(f"/collections/{LAYER}/items/{fid}")
            r.raise_for_status()
            state[fid] = (r.headers["etag"], r.json()["geometry"])
        n = 0
        while time.monotonic() < until:
            fid = fids[n % len(fids)]
            etag, geometry = state[fid]
            if kind == "geometry":
                geometry = moved(geometry, 1e-6 if n % 2 == 0 else -1e-6)
                body: dict[str, Any] = {"geometry": geometry}
            else:
                value = f"{tag}{n}"
                body = {"properties": {"area_code": value}}
            t = time.perf_counter()
            r = client.patch(
                f"/collections/{LAYER}/items/{fid}",
                content=json.dumps(body),
                headers={"If-Match": etag, "Content-Type": "application/merge-patch+json"},
            )
            took = time.perf_counter() - t
            if r.status_code == 200:
                times.append(took)
                state[fid] = (r.headers["etag"], geometry)
                if accepted_at is not None:
                    accepted_at[f"{tag}{n}"] = time.monotonic()
            else:
                refused[r.status_code] = refused.get(r.status_code, 0) + 1
                fresh = client.get(f"/collections/{LAYER}/items/{fid}")
                state[fid] = (fresh.headers["etag"], fresh.json()["geometry"])
            n += 1
    out["times"] = times
    out["refused"] = refused


def edits_cell(base: str, token: str, kind: str, conc: int, offset: int) -> dict[str, Any]:
    """``conc`` editors for DURATION s; each its own 4 features."""
    until = time.monotonic() + DURATION
    outs: list[dict[str, Any]] = [{} for _ in range(conc)]
    threads = [
        threading.Thread(
            target=editor,
            args=(base, token, [offset + 4 * i + k + 1 for k in range(4)], kind, until, outs[i]),
            kwargs={"tag": f"b{offset}-{i}-"},
        )
        for i in range(conc)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    times = [x for o in outs for x in o["times"]]
    refused: dict[str, int] = {}
    for o in outs:
        for code, k in o["refused"].items():
            refused[str(code)] = refused.get(str(code), 0) + k
    return {
        "edits_per_s": len(times) / wall,
        "p50_ms": pct(times, 0.5) * 1000,
        "p99_ms": pct(times, 0.99) * 1000,
        "accepted": len(times),
        "refused": refused,
    }


def feed_cell(base: str, token: str, offset: int) -> dict[str, Any]:
    """8 editors of attributes; one client on the live feed; latency per accepted edit."""
    accepted_at: dict[str, float] = {}
    arrived: dict[str, float] = {}
    ready = threading.Event()
    stop = threading.Event()

    def follow() -> None:
        auth = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        with (
            httpx.Client(base_url=base, headers=auth, timeout=httpx.Timeout(30, read=60)) as c,
            c.stream("GET", f"/collections/{LAYER}/changes/live") as r,
        ):
            r.raise_for_status()
            for line in r.iter_lines():
                if line.startswith("event: ready"):
                    ready.set()
                if line.startswith("data: ") and '"area_code"' in line:
                    doc = json.loads(line[6:])
                    after = (doc.get("after") or {}).get("properties") or {}
                    value = after.get("area_code")
                    if isinstance(value, str):
                        arrived.setdefault(value, time.monotonic())
                if stop.is_set():
                    return

    feed = threading.Thread(target=follow, daemon=True)
    feed.start()
    assert ready.wait(30), "the live feed did not start"
    until = time.monotonic() + DURATION
    outs: list[dict[str, Any]] = [{} for _ in range(FEED_EDITORS)]
    threads = [
        threading.Thread(
            target=editor,
            args=(
                base,
                token,
                [offset + 4 * i + k + 1 for k in range(4)],
                "attributes",
                until,
                outs[i],
                accepted_at,
            ),
            kwargs={"tag": f"f{offset}-{i}-"},
        )
        for i in range(FEED_EDITORS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not set(accepted_at) <= set(arrived):
        time.sleep(0.05)
    stop.set()
    lat = [max(0.0, arrived[k] - t) for k, t in accepted_at.items() if k in arrived]
    missing = len(set(accepted_at) - set(arrived))
    return {
        "accepted": len(accepted_at),
        "arrived": len(lat),
        "missing_after_10s": missing,
        "p50_ms": pct(lat, 0.5) * 1000,
        "p99_ms": pct(lat, 0.99) * 1000,
    }


def main() -> None:
    noise = Noise()
    with ExitStack() as stack:
        url = database(stack)
        catalogues: dict[str, tuple[Path, str]] = {}
        t = time.perf_counter()
        catalogues["gpkg"] = build("gpkg", None)
        catalogues["postgis"] = build("postgis", url)
        log(f"catalogues built in {time.perf_counter() - t:.0f} s")
        rounds: list[dict[str, Any]] = []
        for rnd in range(ROUNDS):
            order = STORES if rnd % 2 == 0 else STORES[::-1]
            got: dict[str, Any] = {}
            for store in order:
                data, token = catalogues[store]
                with Serve(data, url if store == "postgis" else None) as base:
                    offset = 1000 + rnd * 200
                    cells: dict[str, Any] = {}
                    for kind in ("attributes", "geometry"):
                        for conc in CONCURRENCY:
                            cells[f"{kind} c={conc}"] = edits_cell(base, token, kind, conc, offset)
                            offset += 40
                            log(f"round {rnd + 1} {store} {kind} c={conc}: "
                                f"{cells[f'{kind} c={conc}']}")  # fmt: skip
                    cells["feed"] = feed_cell(base, token, offset)
                    log(f"round {rnd + 1} {store} feed: {cells['feed']}")
                    got[store] = cells
            rounds.append(got)
    noise_summary = noise.finish()
    rows: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    for store in STORES:
        for kind in ("attributes", "geometry"):
            for conc in CONCURRENCY:
                cells = [r[store][f"{kind} c={conc}"] for r in rounds]
                rates = [c["edits_per_s"] for c in cells]
                refused = sum(sum(c["refused"].values()) for c in cells)
                rows.append({
                    "tool": f"landexplorer ({store}): PATCH of one feature's {kind}, c={conc}",
                    "median_s": statistics.median(c["p50_ms"] for c in cells) / 1000,
                    "p99_s": statistics.median(c["p99_ms"] for c in cells) / 1000,
                    "rate": f"{statistics.median(rates):.0f} accepted edits/s "
                    f"(p25-p75 {spread(rates)})",
                    "notes": f"median/p99 of the PATCH round trip; {refused} refused",
                })  # fmt: skip
        feeds = [r[store]["feed"] for r in rounds]
        p99s = [f["p99_ms"] for f in feeds]
        missing = sum(f["missing_after_10s"] for f in feeds)
        rows.append({
            "tool": f"landexplorer ({store}): accepted edit to its arrival in another "
            f"client's live feed, {FEED_EDITORS} editors",
            "median_s": statistics.median(f["p50_ms"] for f in feeds) / 1000,
            "p99_s": statistics.median(p99s) / 1000,
            "rate": f"{sum(f['accepted'] for f in feeds)} edits followed",
            "notes": f"p99 per round {spread(p99s)} ms; {missing} never arrived",
        })  # fmt: skip
        ratios.append({
            "what": f"{store}: live feed p99, edit accepted to arrival (s), "
            f"{FEED_EDITORS} editors",
            "value": round(statistics.median(p99s) / 1000, 3),
            "goal": "< 1",
        })  # fmt: skip
    result = {
        "workload": "edit",
        "command": COMMAND,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": ROUNDS,
        "cell_seconds": DURATION,
        "data": str(GPKG),
        "server": "landexplorer serve (default settings: workers = cores up to 4)",
        "noise": noise_summary,
        "title": "Edits: accepted edits per second and the live feed's delay",
        "rows": rows,
        "ratios": ratios,
        "notes": "Each round is a fresh `landexplorer serve` (default settings) over the "
        "same catalogue; editors never share a feature, so every edit should be accepted. "
        "The feed delay is measured from the accepted answer reaching the editor to the "
        "change reaching the follower (both on this machine).",
        "raw": rounds,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {OUT}")
    for row in rows + ratios:
        log(json.dumps(row))


if __name__ == "__main__":
    main()
