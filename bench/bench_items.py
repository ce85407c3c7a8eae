#!/usr/bin/env python
"""Items: landexplorer's OGC API Features against tipg and pygeoapi, same run, same data.

Workload (the shared harness's w2): random bbox queries on the 100k-polygon layer
(/tmp/bench-data/L/polys_100k.gpkg) returning about 100 and about 1,000 features,
limit=2000, closed-loop wrk at concurrency 1 and 8, interleaved rounds (the first server
moves on by one each round), medians over rounds, p50/p95 latency from wrk.

  - landexplorer: `landexplorer serve --workers 2` (uvicorn + uvloop/httptools) on a fresh
    catalogue into which polys_100k.gpkg is ingested (GeoPackage store).
  - tipg 1.6 on the harness's PostGIS, pygeoapi 0.21 (OGR provider on the same
    GeoPackage, gunicorn), both started by /work/shared/bench/servers.py.
Feature counts of every server are checked against the query list's expected counts.

Run: BENCH_ONLY=items bash bench/run.sh  (starts the harness's PostGIS for tipg), or
.venv/bin/python bench/bench_items.py once that has run. Writes bench/results/items.json.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", "/work/shared/bench"))
sys.path.insert(0, str(SHARED))
# Ports of our own peer servers, apart from the harness defaults: another benchmark of the
# project (tiles) may run its own tipg at the same time, and two servers must not share one.
os.environ.setdefault("BENCH_TIPG_PORT", "18024")
os.environ.setdefault("BENCH_PYGEOAPI_PORT", "18014")
from common import DATA, PG_URL, QUICK, WORK, Noise, Server, log, rotate  # noqa: E402
from servers import (  # noqa: E402
    PYGEOAPI_PORT,
    TIPG_PORT,
    WORKERS,
    RssSampler,
    pygeoapi_server,
    tipg_server,
    wait_ready,
    warm,
    wrk,
)

PY = sys.executable
LE_PORT = int(os.environ.get("BENCH_LE_ITEMS_PORT", "18062"))
ROUNDS = 1 if QUICK else int(os.environ.get("BENCH_ITEMS_ROUNDS", "3"))
DURATION = 3 if QUICK else int(os.environ.get("BENCH_ITEMS_DURATION", "8"))
LIMIT = 2000
GPKG = DATA / "L" / "polys_100k.gpkg"
CAT = WORK / "landexplorer_items"
OUT = ROOT / "bench" / "results" / "items.json"
COMMAND = "BENCH_ONLY=items bash bench/run.sh"
_PG = PG_URL  # tipg reads the harness's PostGIS, which bench/run.sh starts and loads

LABELS = {
    "landexplorer": "landexplorer (GeoPackage, uvicorn 2 workers)",
    "tipg": "tipg 1.6 (PostGIS, uvicorn 2 workers)",
    "pygeoapi": "pygeoapi 0.21 (OGR/GeoPackage, gunicorn 2 workers)",
}
GOALS = {  # landexplorer / peer throughput
    ("tipg", "~100"): 2.0,
    ("tipg", "~1000"): 1.5,
    ("pygeoapi", "~100"): 3.0,
    ("pygeoapi", "~1000"): 3.0,
}


def fmt_bbox(b: list[float]) -> str:
    return ",".join(f"{v:.7f}" for v in b)


def paths_for(kind: str, bboxes: list[dict]) -> list[str]:
    if kind == "pygeoapi":
        return [
            "/collections/flood/items?"
            + urlencode({"f": "json", "bbox": fmt_bbox(d["bbox"]), "limit": LIMIT})
            for d in bboxes
        ]
    name = "public.flood" if kind == "tipg" else "flood"
    return [
        f"/collections/{name}/items?" + urlencode({"bbox": fmt_bbox(d["bbox"]), "limit": LIMIT})
        for d in bboxes
    ]


def ingest() -> float:
    """A fresh catalogue holding the 100k polygons as layer 'flood'; returns seconds."""
    shutil.rmtree(CAT, ignore_errors=True)
    (CAT / "data").mkdir(parents=True)
    t = time.perf_counter()
    subprocess.run(
        [PY, "-m", "landexplorer.cli", "--data-dir", str(CAT / "data"), "ingest", "--no-pyramid", str(GPKG),
         "--id", "flood", "--licence", "OGL-UK-3.0", "--attribution", "bench"],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    return time.perf_counter() - t


def le_server() -> Server:
    cmd = [PY, "-m", "landexplorer.cli", "--data-dir", str(CAT / "data"), "serve",
           "--port", str(LE_PORT), "--workers", str(WORKERS), "--log-level", "warning"]  # fmt: skip
    return Server("landexplorer", cmd, dict(os.environ), LE_PORT, CAT / "server.log")


def validate(base: str, paths: list[str], bboxes: list[dict], n: int = 5) -> dict:
    import httpx

    bad = []
    with httpx.Client(base_url=base, timeout=120) as c:
        for p, d in list(zip(paths, bboxes, strict=False))[:n]:
            r = c.get(p)
            r.raise_for_status()
            got = len(r.json()["features"])
            if got != d["expected"]:
                bad.append((got, d["expected"]))
    return {"checked": n, "mismatches": bad}


def main() -> None:
    q = json.loads((DATA / "L" / "queries.json").read_text())
    sizes = {"~100": q["bboxes"]["100"], "~1000": q["bboxes"]["1000"]}
    if QUICK:
        sizes = {k: v[:30] for k, v in sizes.items()}
    noise = Noise()
    ingest_s = ingest()
    log(f"ingested polys_100k into the catalogue in {ingest_s:.1f} s")
    servers = {"landexplorer": le_server(), "tipg": tipg_server(), "pygeoapi": pygeoapi_server()}
    base = {
        "landexplorer": f"http://127.0.0.1:{LE_PORT}",
        "tipg": f"http://127.0.0.1:{TIPG_PORT}",
        "pygeoapi": f"http://127.0.0.1:{PYGEOAPI_PORT}",
    }
    runs: dict[tuple[str, str, int], list[dict]] = {}
    checks: dict[str, dict] = {}
    rss: dict[str, float | None] = {}
    try:
        for s in servers.values():
            s.start()
        assert wait_ready(base["landexplorer"], "/collections/flood")
        assert wait_ready(base["tipg"], "/collections/public.flood")
        assert wait_ready(base["pygeoapi"], "/collections/flood?f=json")
        paths = {(k, sz): paths_for(k, bb) for k in servers for sz, bb in sizes.items()}
        for (k, sz), pl in paths.items():
            checks[f"{k} {sz}"] = validate(base[k], pl, sizes[sz])
            warm(base[k], pl, n=10)
        log("validation: " + json.dumps(checks))
        samplers = {k: RssSampler(s) for k, s in servers.items()}
        for smp in samplers.values():
            smp.start()
        for r in range(ROUNDS):
            for sz in sizes:
                for conc in (1, 8):
                    for k in rotate(list(servers), r):
                        res = wrk(base[k], paths[(k, sz)], conc, DURATION)
                        runs.setdefault((k, sz, conc), []).append(res)
                        log(
                            f"r{r} {k} {sz} c{conc}: {res['rps']:.1f} req/s "
                            f"p50 {res['lat_p50_us'] / 1e3:.1f} ms p95 "
                            f"{res['lat_p95_us'] / 1e3:.1f} ms errors {res['errors']}"
                        )
        for k, smp in samplers.items():
            rss[k] = smp.stop()
    finally:
        for s in servers.values():
            s.stop()

    rows, rps_of = [], {}
    for (k, sz, conc), rr in runs.items():
        rps = statistics.median(x["rps"] for x in rr)
        rps_of[(k, sz, conc)] = rps
        nreq = sum(x["requests"] for x in rr)
        errs = sum(x["errors"] for x in rr)
        kb = sum(x["bytes"] for x in rr) / max(1, nreq) / 1024
        rows.append(
            {
                "tool": f"{LABELS[k]}: {sz} features, c={conc}",
                "median_s": statistics.median(x["lat_p50_us"] for x in rr) / 1e6,
                "p95_s": statistics.median(x["lat_p95_us"] for x in rr) / 1e6,
                "peak_rss_mb": round(rss[k], 1) if rss.get(k) else None,
                "rate": f"{rps:.1f} req/s",
                "notes": f"{nreq} requests in {len(rr)}x{DURATION}s; {kb:.0f} KiB/response; "
                f"errors {errs}; req/s over rounds "
                f"{min(x['rps'] for x in rr):.1f}-{max(x['rps'] for x in rr):.1f}",
            }
        )
    ratios = []
    for (peer, sz), goal in GOALS.items():
        for conc in (1, 8):
            if ("landexplorer", sz, conc) in rps_of and (peer, sz, conc) in rps_of:
                ratios.append(
                    {
                        "what": f"landexplorer / {peer} throughput, {sz} features, c={conc}",
                        "value": round(
                            rps_of[("landexplorer", sz, conc)] / rps_of[(peer, sz, conc)], 2
                        ),
                        "goal": f">= {goal}",
                    }
                )
    payload = {
        "workload": "items",
        "title": "OGC API Features: bbox queries (~100 and ~1,000 of 100k polygons) -> GeoJSON",
        "command": COMMAND,
        "when": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "rows": rows,
        "ratios": ratios,
        "notes": (
            f"{ROUNDS} interleaved rounds x {DURATION} s per cell, wrk closed loop, limit={LIMIT}; "
            f"median of the per-round p50/p95 latencies and req/s. All servers on the same 2 cores "
            f"as wrk (and PostgreSQL for tipg). Catalogue ingest of polys_100k: {ingest_s:.1f} s. "
            f"Feature-count checks: {json.dumps(checks)}. Noise: {json.dumps(noise.finish())}"
        ),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(payload, indent=1) + "\n")
    log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
