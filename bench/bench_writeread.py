#!/usr/bin/env python
"""Reads of other layers while a data steward uploads a 1,000,000-row layer (issue 10,
"Writes never stall reads").

Workload: on each store, a fresh catalogue holding the harness's 100k polygons as ``flood``
(/tmp/bench-data/L/polys_100k.gpkg), served by ``landexplorer serve`` with its default
settings (workers included). A fixed read mix on ``flood`` from ``READERS`` concurrent
clients (one async httpx client, one connection each): items by bbox (``limit=100``, a
bbox of 0.02 degrees drawn at random inside the layer's extent, fixed seed) and vector
tiles at z14 drawn at random from the tiles covering the layer (fixed seed; each tile
once, so every tile request is a first draw, never a cache hit), alternating.

  - idle: the read mix for ``IDLE_S`` seconds, nothing else running;
  - during: the same mix (new random bboxes and tiles of the same kind) for the whole time
    the upload runs: the 1M-point CSV (/tmp/bench-data/L/points_1m.csv, 70 MB) posted to
    ``POST /collections`` by a site admin's token, as the web page and a steward's script
    do, until its job (``/jobs/{id}``) says the layer is stored.

Figures per store: reads/s and p50/p99 of each kind, idle and during; the ratios during ÷
idle of reads/s (goal >= 0.5) and of p99 (goal <= 2); the upload's wall time; every read
that did not answer 200/204 is counted (a 503 "busy" is a failed read).

Rounds interleave the stores (the first alternating); each round is a fresh server start;
figures are medians over rounds with their p25-p75. Every round uploads a new layer
(``upload_<n>``), so the catalogue grows by 1M rows a round, as it would in use.

Run: BENCH_ONLY=writeread bash bench/run.sh, or .venv/bin/python bench/bench_writeread.py.
BENCH_QUICK=1 is a smoke run (one round, 3 s idle) that writes
$BENCH_DATA/work/writeread-smoke.json, never bench/results/writeread.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
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
import bench_edit  # noqa: E402
from common import DATA, QUICK, WORK, Noise, log  # noqa: E402
from pgdb import fresh_database  # noqa: E402
from wrkrun import spread  # noqa: E402

from landexplorer.tiles.grid import tiles_covering  # noqa: E402

ROUNDS = 1 if QUICK else int(os.environ.get("BENCH_WRITEREAD_ROUNDS", "3"))
# The 1M-point upload would get its low-zoom pyramid made after the job (the default);
# that would run into the next round. This benchmark times reads during the upload only.
os.environ["LANDEXPLORER_PYRAMIDS_AFTER_UPLOAD"] = "false"
IDLE_S = 3.0 if QUICK else float(os.environ.get("BENCH_WRITEREAD_IDLE_S", "15"))
READERS = 4
ZOOM = 14
BBOX_DEG = 0.02
UPLOAD = DATA / "L" / "points_1m.csv"
OUT = (WORK / "writeread-smoke.json") if QUICK else (ROOT / "bench/results/writeread.json")
COMMAND = "BENCH_ONLY=writeread bash bench/run.sh"
LAYER = bench_edit.LAYER
STORES = ("gpkg", "postgis")
bench_edit.CAT = WORK / "landexplorer_writeread"
pct = bench_edit.pct


class Mix:
    """The read requests, drawn from one seed: bboxes inside the layer, tiles covering it
    (each tile handed out once)."""

    def __init__(self, bbox: list[float], seed: int) -> None:
        self.rng = random.Random(seed)
        self.bbox = bbox
        x0, y0, x1, y1 = tiles_covering((bbox[0], bbox[1], bbox[2], bbox[3]), ZOOM)
        tiles = [(ZOOM, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
        self.rng.shuffle(tiles)
        self.tiles = tiles
        self.n = 0

    def next(self) -> tuple[str, str]:
        self.n += 1
        if self.n % 2 and self.tiles:
            z, x, y = self.tiles.pop()
            return "tile", f"/tiles/{LAYER}/{z}/{x}/{y}.mvt"
        w, s, e, n = self.bbox
        x0 = self.rng.uniform(w, e - BBOX_DEG)
        y0 = self.rng.uniform(s, n - BBOX_DEG)
        box = f"{x0:.5f},{y0:.5f},{x0 + BBOX_DEG:.5f},{y0 + BBOX_DEG:.5f}"
        return "items", f"/collections/{LAYER}/items?bbox={box}&limit=100"


async def read_mix(base: str, mix: Mix, stop: threading.Event, limit_s: float) -> dict:
    """READERS closed-loop readers until ``stop`` is set (or ``limit_s`` passed)."""
    lat: dict[str, list[float]] = {"items": [], "tile": []}
    failed: dict[str, int] = {}
    t0 = time.perf_counter()

    async def reader(client: httpx.AsyncClient) -> None:
        while not stop.is_set() and time.perf_counter() - t0 < limit_s:
            kind, path = mix.next()
            t = time.perf_counter()
            try:
                r = await client.get(path, headers={"Accept-Encoding": "gzip"})
                status = r.status_code
                ok = status == 200 or (kind == "tile" and status == 204)
                if ok and kind == "items":
                    ok = isinstance(r.json().get("features"), list)
            except httpx.HTTPError as exc:
                status, ok = type(exc).__name__, False
            if ok:
                lat[kind].append(time.perf_counter() - t)
            else:
                failed[str(status)] = failed.get(str(status), 0) + 1

    limits = httpx.Limits(max_connections=READERS, max_keepalive_connections=READERS)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        await asyncio.gather(*(reader(client) for _ in range(READERS)))
    elapsed = time.perf_counter() - t0
    out: dict[str, Any] = {"seconds": round(elapsed, 2), "failed": failed}
    for kind, xs in lat.items():
        out[kind] = {
            "per_s": round(len(xs) / elapsed, 1),
            "p50_ms": round(pct(xs, 0.5) * 1000, 1),
            "p99_ms": round(pct(xs, 0.99) * 1000, 1),
            "n": len(xs),
        }
    out["reads_per_s"] = round(sum(len(xs) for xs in lat.values()) / elapsed, 1)
    return out


def upload(base: str, token: str, layer_id: str, done: threading.Event, out: dict) -> None:
    """POST the CSV as a new layer and follow its job until stored; ``done`` set after."""
    headers = {"Authorization": f"Bearer {token}"}
    t = time.perf_counter()
    try:
        with UPLOAD.open("rb") as f, httpx.Client(base_url=base, timeout=600) as c:
            r = c.post(
                "/collections",
                headers=headers,
                files={"file": (UPLOAD.name, f, "text/csv")},
                data={"id": layer_id, "licence": "OGL-UK-3.0", "attribution": "bench"},
            )
            if r.status_code != 202:
                raise RuntimeError(f"upload refused: {r.status_code} {r.text[:300]}")
            job = r.headers.get("location") or r.json()["links"][0]["href"]
            while True:
                state = c.get(job, headers=headers).json()
                if state.get("status") in ("successful", "failed", "dismissed"):
                    break
                time.sleep(0.25)
            if state.get("status") != "successful":
                raise RuntimeError(f"upload job ended {state}")
            out["features"] = c.get(f"/collections/{layer_id}", headers=headers).json()[
                "featureCount"
            ]
        out["seconds"] = round(time.perf_counter() - t, 2)
    except Exception as exc:  # reported in the results, and the run fails after
        out["error"] = str(exc)
    finally:
        done.set()


def one_store(store: str, data: Path, url: str | None, token: str, rnd: int) -> dict:
    with bench_edit.Serve(data, url) as base:
        bbox = httpx.get(f"{base}/collections/{LAYER}", timeout=30).json()["extent"]
        bbox = bbox["spatial"]["bbox"][0]
        idle = asyncio.run(read_mix(base, Mix(bbox, 100 + rnd), threading.Event(), IDLE_S))
        log(f"round {rnd + 1} {store} idle: {idle}")
        done = threading.Event()
        up: dict[str, Any] = {}
        thread = threading.Thread(target=upload, args=(base, token, f"upload_{rnd}", done, up))
        thread.start()
        during = asyncio.run(read_mix(base, Mix(bbox, 200 + rnd), done, 3600))
        thread.join()
        log(f"round {rnd + 1} {store} during upload {up}: {during}")
        if "error" in up:
            raise RuntimeError(f"{store}: {up['error']}")
        assert up["features"] == 1_000_000, up
        return {"idle": idle, "during": during, "upload": up}


def main() -> None:
    noise = Noise()
    with ExitStack() as stack:
        url = fresh_database(stack, "le_writeread")
        catalogues = {
            "gpkg": bench_edit.build("gpkg", None),
            "postgis": bench_edit.build("postgis", url),
        }
        rounds: list[dict[str, Any]] = []
        for rnd in range(ROUNDS):
            order = STORES if rnd % 2 == 0 else STORES[::-1]
            got = {}
            for store in order:
                data, token = catalogues[store]
                got[store] = one_store(store, data, url if store == "postgis" else None, token, rnd)
            rounds.append(got)
    rows: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    for store in STORES:
        cells = [r[store] for r in rounds]
        for phase in ("idle", "during"):
            for kind, words in (("items", "items by bbox (limit 100)"), ("tile", "z14 tile")):
                rates = [c[phase][kind]["per_s"] for c in cells]
                failed = sum(sum(c[phase]["failed"].values()) for c in cells)
                what = "idle" if phase == "idle" else "during a 1M-row upload"
                rows.append({
                    "tool": f"landexplorer ({store}): {words} of another layer, {what}, "
                    f"{READERS} readers",
                    "median_s": statistics.median(c[phase][kind]["p50_ms"] for c in cells) / 1000,
                    "p99_s": statistics.median(c[phase][kind]["p99_ms"] for c in cells) / 1000,
                    "rate": f"{statistics.median(rates):.1f} reads/s (p25-p75 {spread(rates)})",
                    "notes": f"{failed} failed reads (both kinds)",
                })  # fmt: skip
        uploads = [c["upload"]["seconds"] for c in cells]
        rows.append({
            "tool": f"landexplorer ({store}): the 1M-point CSV uploaded (POST /collections "
            "to its job stored) while the readers read",
            "median_s": statistics.median(uploads),
            "p99_s": max(uploads),
            "rate": f"{1_000_000 / statistics.median(uploads):,.0f} rows/s",
            "notes": f"per round {spread(uploads)} s",
        })  # fmt: skip
        thr = [c["during"]["reads_per_s"] / c["idle"]["reads_per_s"] for c in cells]
        ratios.append(
            {
                "what": f"{store}: reads/s of another layer during a 1M-row upload / idle",
                "value": round(statistics.median(thr), 2),
                "goal": ">= 0.5",
            }
        )
        for kind in ("items", "tile"):
            p99 = [c["during"][kind]["p99_ms"] / c["idle"][kind]["p99_ms"] for c in cells]
            ratios.append(
                {
                    "what": f"{store}: p99 of {kind} reads during the upload / idle",
                    "value": round(statistics.median(p99), 2),
                    "goal": "<= 2",
                }
            )
    result = {
        "workload": "writeread",
        "command": COMMAND,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": ROUNDS,
        "idle_seconds": IDLE_S,
        "data": f"{bench_edit.GPKG} (read), {UPLOAD} (uploaded)",
        "server": "landexplorer serve (default settings: workers = cores up to 4; "
        "LANDEXPLORER_PYRAMIDS_AFTER_UPLOAD=false)",
        "noise": noise.finish(),
        "title": "Reads of another layer while a 1M-row layer is uploaded",
        "rows": rows,
        "ratios": ratios,
        "notes": "Every tile is requested once (a first draw, never a cache hit); items "
        "bboxes are random inside the layer. The upload goes through the HTTP API as a "
        "steward's does, so the server's own worker writes it.",
        "raw": rounds,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {OUT}")
    for row in rows + ratios:
        log(json.dumps(row))


if __name__ == "__main__":
    main()
