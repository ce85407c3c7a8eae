#!/usr/bin/env python
"""Instances: items and cached-tile throughput of one and of two ``landexplorer serve``
instances on one PostGIS catalogue, in the same run (docs/deploy.md quotes these figures).

Workload: the shared harness's 100k polygons (/tmp/bench-data/L/polys_100k.gpkg) ingested
once as ``flood`` (public, OGL-UK-3.0) into a fresh PostGIS catalogue (a database of its
own in the harness's cluster on 127.0.0.1:55432 when that runs, else a throw-away cluster
started here). Each instance is one ``landexplorer serve --workers 1`` with a data folder
of its own (two machines: their tile caches are apart), so that the figures compare the
number of instances and nothing else.

  - items: /collections/flood/items?bbox=...&limit=100 over the harness's 200 random
    bboxes of about 100 features;
  - cached tiles: /collections/flood/tiles/WebMercatorQuad/z/x/y?properties=id,prob_4band
    over the harness's z12 (50) and z14 (100) tiles, every tile requested once from each
    instance before timing (cache hits; ``Accept-Encoding`` is not sent, as wrk does not).

Each cell is closed-loop wrk (the harness's urls.lua) at c=2 and c=8 in all: with two
instances, one wrk per instance at half the connections, run at the same time, their
requests summed (what a proxy spreading connections evenly would see). Rounds interleave
one and two instances, the one that goes first alternating each round. Figures: median
over rounds of req/s with its p25-p75, the median of the per-round p50/p95 latencies, and
the median of the per-round ratios (two instances / one) with their p25-p75. The same
machine runs PostgreSQL, both instances and wrk: on 2 cores a second instance has no core
of its own, so the ratio says what a second instance costs or gains *here*; on separate
machines each instance brings its own cores.

Run: BENCH_ONLY=instances bash bench/run.sh (the workload data must exist: a full
`make bench` makes it), or .venv/bin/python bench/bench_instances.py. BENCH_QUICK=1 is a
smoke run (30 bboxes, one round, 2 s cells) that writes $BENCH_DATA/work/instances-smoke.json,
never bench/results/instances.json.
"""

from __future__ import annotations

import json
import os
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
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", "/work/shared/bench"))
sys.path.insert(0, str(SHARED))
sys.path.insert(0, str(ROOT))
from common import DATA, QUICK, WORK, Noise, Server, log  # noqa: E402
from pgdb import fresh_database  # noqa: E402
from servers import wait_ready  # noqa: E402
from wrkrun import spread  # noqa: E402
from wrkrun import wrk as run_wrk  # noqa: E402

PY = sys.executable
PORTS = (
    int(os.environ.get("BENCH_LE_INSTANCE_PORT", "18070")),
    int(os.environ.get("BENCH_LE_INSTANCE_PORT2", "18071")),
)
ROUNDS = 1 if QUICK else int(os.environ.get("BENCH_INSTANCES_ROUNDS", "5"))
DURATION = 2 if QUICK else int(os.environ.get("BENCH_INSTANCES_DURATION", "5"))
CONCURRENCY = (2, 8)
INSTANCES = (1, 2)
GPKG = DATA / "L" / "polys_100k.gpkg"
CAT = WORK / "landexplorer_instances"
OUT = (WORK / "instances-smoke.json") if QUICK else (ROOT / "bench" / "results" / "instances.json")
COMMAND = "BENCH_ONLY=instances bash bench/run.sh"
LAYER = "flood"
PROPS = "id,prob_4band"
DBNAME = "le_instances"
KINDS = {
    "items": "items, limit=100, bbox of ~100 of 100k polygons",
    "tiles": "cached MVT tiles z12+z14 (OGC path, properties=id,prob_4band)",
}


def database(stack: ExitStack) -> str:
    """A fresh PostGIS database for this benchmark (bench/pgdb.py)."""
    return fresh_database(stack, DBNAME)


def build(url: str) -> float:
    """The catalogue: ``flood`` ingested into PostGIS, public. Returns the ingest time."""
    shutil.rmtree(CAT, ignore_errors=True)
    (CAT / "a" / "data").mkdir(parents=True)
    (CAT / "b" / "data").mkdir(parents=True)
    env = {**os.environ, "LANDEXPLORER_DATABASE_URL": url}
    t = time.perf_counter()
    subprocess.run(
        [PY, "-m", "landexplorer.cli", "--data-dir", str(CAT / "a" / "data"), "ingest", "--no-pyramid",
         str(GPKG), "--id", LAYER, "--licence", "OGL-UK-3.0", "--attribution", "bench"],
        check=True, capture_output=True, cwd=ROOT, env=env,
    )  # fmt: skip
    return time.perf_counter() - t


def paths_for(kind: str, queries: dict[str, Any]) -> list[str]:
    if kind == "items":
        return [
            f"/collections/{LAYER}/items?"
            + urlencode({"bbox": ",".join(f"{v:.7f}" for v in d["bbox"]), "limit": 100})
            for d in queries["bboxes"]["100"]
        ]
    tiles = queries["tiles"]["12"] + queries["tiles"]["14"]
    return [
        f"/collections/{LAYER}/tiles/WebMercatorQuad/{t['z']}/{t['x']}/{t['y']}?properties={PROPS}"
        for t in tiles
    ]


def check(bases: list[str], paths: dict[str, list[str]], queries: dict) -> dict[str, Any]:
    """Both instances give the same features and the same tiles (which also warms each
    one's tile cache). Fails (no figures) otherwise."""
    import httpx

    expected = [min(d["expected"], 100) for d in queries["bboxes"]["100"]][:10]
    result: dict[str, Any] = {}
    tiles: list[list[bytes]] = []
    for base in bases:
        with httpx.Client(base_url=base, timeout=120) as c:
            got = [len(c.get(p).json()["features"]) for p in paths["items"][:10]]
            assert got == expected, (base, got, expected)
            answers = [c.get(p) for p in paths["tiles"]]
            assert all(r.status_code in (200, 204) for r in answers), base
            tiles.append([r.content for r in answers])
    assert tiles[0] == tiles[1], "the two instances drew different tiles"
    result["items_checked"] = len(expected)
    result["tiles_warmed_per_instance"] = len(tiles[0])
    return result


def wrk(base: str, paths: list[str], conc: int) -> dict[str, Any]:
    return run_wrk(base, paths, conc, DURATION, SHARED / "urls.lua", tag="instances_paths")


def load(bases: list[str], paths: list[str], conc: int) -> dict[str, Any]:
    """``conc`` connections spread evenly over the instances, all at once; summed."""
    each = max(1, conc // len(bases))
    results: list[dict[str, Any]] = [{} for _ in bases]

    def run(i: int) -> None:
        results[i] = wrk(bases[i], paths, each)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "rps": sum(r["rps"] for r in results),
        "requests": sum(r["requests"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "lat_p50_us": statistics.median(r["lat_p50_us"] for r in results),
        "lat_p95_us": max(r["lat_p95_us"] for r in results),
    }


def main() -> None:
    queries = json.loads((DATA / "L" / "queries.json").read_text())
    if QUICK:
        queries["bboxes"]["100"] = queries["bboxes"]["100"][:30]
        queries["tiles"]["12"] = queries["tiles"]["12"][:10]
        queries["tiles"]["14"] = queries["tiles"]["14"][:20]
    noise = Noise()
    paths = {kind: paths_for(kind, queries) for kind in KINDS}
    runs: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    with ExitStack() as stack:
        url = database(stack)
        ingest_s = build(url)
        log(f"catalogue: {LAYER} ingested into PostGIS in {ingest_s:.1f} s")
        env = {**os.environ, "LANDEXPLORER_DATABASE_URL": url}
        servers = []
        for port, folder in zip(PORTS, ("a", "b"), strict=True):
            data = CAT / folder / "data"
            cmd = [PY, "-m", "landexplorer.cli", "--data-dir", str(data), "serve",
                   "--port", str(port), "--workers", "1", "--log-level", "warning"]  # fmt: skip
            server = Server(f"landexplorer-{folder}", cmd, env, port, CAT / f"{folder}.log")
            server.start()
            stack.callback(server.stop)
            servers.append(server)
        bases = [f"http://127.0.0.1:{port}" for port in PORTS]
        for base in bases:
            assert wait_ready(base, f"/collections/{LAYER}")
        checks = check(bases, paths, queries)
        log("checks: " + json.dumps(checks))
        for r in range(ROUNDS):
            for kind in KINDS:
                for conc in CONCURRENCY:
                    order = list(INSTANCES) if r % 2 == 0 else list(INSTANCES)[::-1]
                    for n in order:
                        res = load(bases[:n], paths[kind], conc)
                        runs.setdefault((kind, n, conc), []).append(res)
                        log(
                            f"r{r} {kind} {n} instance(s) c{conc}: {res['rps']:.1f} req/s "
                            f"p50 {res['lat_p50_us'] / 1e3:.2f} ms errors {res['errors']}"
                        )

    rows, ratios = [], []
    for kind, kind_label in KINDS.items():
        for conc in CONCURRENCY:
            for n in INSTANCES:
                rr = runs[(kind, n, conc)]
                rps = [x["rps"] for x in rr]
                rows.append(
                    {
                        "tool": f"{kind_label}: {n} instance{'s' if n > 1 else ''}, c={conc}",
                        "median_s": statistics.median(x["lat_p50_us"] for x in rr) / 1e6,
                        "p95_s": statistics.median(x["lat_p95_us"] for x in rr) / 1e6,
                        "peak_rss_mb": None,
                        "rate": f"{statistics.median(rps):.1f} req/s",
                        "notes": f"req/s p25-p75 over {len(rr)} rounds {spread(rps)}; "
                        f"{sum(x['requests'] for x in rr)} requests, "
                        f"errors {sum(x['errors'] for x in rr)}",
                    }
                )
            per_round = [
                two["rps"] / one["rps"]
                for two, one in zip(runs[(kind, 2, conc)], runs[(kind, 1, conc)], strict=True)
            ]
            ratios.append(
                {
                    "what": f"two instances / one, req/s, {kind_label}, c={conc}; "
                    f"per-round p25-p75 {spread(per_round)}",
                    "value": round(statistics.median(per_round), 3),
                    "goal": "none (a figure for docs/deploy.md)",
                }
            )
    payload = {
        "workload": "instances",
        "title": "One and two landexplorer serve instances on one PostGIS catalogue",
        "command": COMMAND,
        "when": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "quick": QUICK,
        "rows": rows,
        "ratios": ratios,
        "notes": (
            "Each instance: `landexplorer serve --workers 1` with its own data folder, on "
            f"one PostGIS catalogue holding polys_100k as '{LAYER}'. {ROUNDS} rounds x "
            f"{DURATION} s per cell, wrk closed loop on the same 2 cores as PostgreSQL and the "
            "instances; with two instances one wrk per instance at half the connections, "
            "requests summed. Median: median of the per-round p50 latencies (of the two "
            "instances' medians); p95: the higher of the two. Tiles requested once from each "
            f"instance before timing (cache hits). Checks: {json.dumps(checks)}. Ingest: "
            f"{ingest_s:.1f} s. Noise: {json.dumps(noise.finish())}"
        ),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(payload, indent=1) + "\n")
    log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
