#!/usr/bin/env python
"""Access: what the access checks cost a signed-in reader, against anonymous public reads.

Goal (issue 13): items and cached tiles read by a signed-in user with 50 group memberships
on a group layer are within 10% of anonymous reads of a public layer of the same data.

Workload: the shared harness's 100k polygons (/tmp/bench-data/L/polys_100k.gpkg) ingested
twice into one fresh GeoPackage catalogue, as ``flood_public`` (public, OGL-UK-3.0) and
``flood_group`` (visibility ``group``, group ``g25``). The reader ``member`` is a viewer of
50 groups (g00..g49) and presents a session cookie (``lx_session``) made by the access
store, as the web page does after signing in. One ``landexplorer serve --workers 2``.

  - items: /collections/<id>/items?bbox=...&limit=100 over the harness's 200 random
    bboxes of about 100 features;
  - cached tiles: /collections/<id>/tiles/WebMercatorQuad/z/x/y?properties=id,prob_4band
    over the harness's z12 (50) and z14 (100) tiles, every tile requested once by its
    reader before timing, so the timed requests are cache hits;
  - cached tiles as the web map asks for them: /tiles/<id>/z/x/y.mvt?v=<version>.

Each cell is closed-loop wrk (the harness's urls.lua, with ``-H Cookie: ...`` for the
signed-in reader) at c=1 and c=8; rounds interleave anonymous and signed-in, the one that
goes first alternating each round. Figures: median over rounds of req/s with its p25-p75,
the median of the per-round p50/p95 latencies, and the median of the per-round ratios
(signed-in / anonymous req/s) with their p25-p75. Counts and refusals are checked first:
the same features for both readers, 404 for an anonymous reader of the group layer.

Run: BENCH_ONLY=access BENCH_SKIP_SETUP=1 bash bench/run.sh (the workload data must
exist: a full `make bench` makes it), or .venv/bin/python bench/bench_access.py.
Writes bench/results/access.json.
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
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", "/work/shared/bench"))
sys.path.insert(0, str(SHARED))
sys.path.insert(0, str(ROOT))
from common import DATA, QUICK, WORK, Noise, Server, log  # noqa: E402
from servers import WORKERS, wait_ready  # noqa: E402
from wrkrun import spread  # noqa: E402
from wrkrun import wrk as run_wrk  # noqa: E402

PY = sys.executable
PORT = int(os.environ.get("BENCH_LE_ACCESS_PORT", "18066"))
ROUNDS = 1 if QUICK else int(os.environ.get("BENCH_ACCESS_ROUNDS", "6"))
DURATION = 2 if QUICK else int(os.environ.get("BENCH_ACCESS_DURATION", "4"))
CONCURRENCY = (1, 8)
GPKG = DATA / "L" / "polys_100k.gpkg"
CAT = WORK / "landexplorer_access"
OUT = ROOT / "bench" / "results" / "access.json"
COMMAND = "BENCH_ONLY=access BENCH_SKIP_SETUP=1 bash bench/run.sh"
PUBLIC, GROUP_LAYER, GROUP = "flood_public", "flood_group", "g25"
GROUPS = [f"g{i:02d}" for i in range(50)]
PROPS = "id,prob_4band"
GOAL = 0.90  # signed-in / anonymous throughput
READERS = {
    "anonymous": f"anonymous, public layer '{PUBLIC}'",
    "member": f"signed in (session cookie, 50 groups), group layer '{GROUP_LAYER}'",
}
KINDS = {
    "items": "items, limit=100, bbox of ~100 of 100k polygons",
    "tiles": "cached MVT tiles z12+z14 (OGC path, properties=id,prob_4band)",
    "webtiles": "cached MVT tiles z12+z14 (web map's /tiles/..mvt?v=version)",
}


def cli(*args: str) -> None:
    subprocess.run(
        [PY, "-m", "landexplorer.cli", "--data-dir", str(CAT / "data"), *args],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip


def build() -> tuple[str, dict[str, int], float]:
    """The catalogue, the people and the reader's session: (session secret, versions, s)."""
    from landexplorer.access.store import AccessStore
    from landexplorer.catalog import open_store
    from landexplorer.settings import Settings

    shutil.rmtree(CAT, ignore_errors=True)
    (CAT / "data").mkdir(parents=True)
    t = time.perf_counter()
    for layer in (PUBLIC, GROUP_LAYER):
        cli("ingest", "--no-pyramid", str(GPKG), "--id", layer, "--licence", "OGL-UK-3.0", "--attribution", "bench")
    ingest_s = time.perf_counter() - t
    store = open_store(Settings(data_dir=CAT / "data"))
    access = AccessStore.beside(store)
    try:
        access.add_user("steward")
        access.add_user("member")
        for g in GROUPS:
            access.add_group(g, f"Group {g}")
            access.set_member(g, "member", "viewer")
        access.set_member(GROUP, "steward", "steward")
        store.update_metadata(PUBLIC, visibility="public")
        store.update_metadata(GROUP_LAYER, owner="steward", group=GROUP, visibility="group")
        assert len(access.roles_of("member")) == 50
        session = access.create_session("member", hours=12)
        versions = {e.id: e.version for e in store.list_layers()}
    finally:
        access.close()
        store.close()
    return session, versions, ingest_s


def paths_for(kind: str, layer: str, version: int, queries: dict[str, Any]) -> list[str]:
    if kind == "items":
        return [
            f"/collections/{layer}/items?"
            + urlencode({"bbox": ",".join(f"{v:.7f}" for v in d["bbox"]), "limit": 100})
            for d in queries["bboxes"]["100"]
        ]
    tiles = queries["tiles"]["12"] + queries["tiles"]["14"]
    if kind == "tiles":
        return [
            f"/collections/{layer}/tiles/WebMercatorQuad/{t['z']}/{t['x']}/{t['y']}"
            f"?properties={PROPS}"
            for t in tiles
        ]
    return [f"/tiles/{layer}/{t['z']}/{t['x']}/{t['y']}.mvt?v={version}" for t in tiles]


def headers_of(reader: str, session: str) -> dict[str, str]:
    return {"Cookie": f"lx_session={session}"} if reader == "member" else {}


def check(base: str, session: str, paths: dict[tuple[str, str], list[str]], queries: dict) -> dict:
    """Both readers get the same features and tiles; an anonymous reader of the group
    layer gets 404. Fails (no figures) otherwise. Also warms the tile cache."""
    import httpx

    result: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=120) as c:
        expected = [min(d["expected"], 100) for d in queries["bboxes"]["100"]]
        for reader in READERS:
            got = [
                len(c.get(p, headers=headers_of(reader, session)).json()["features"])
                for p in paths[("items", reader)][:10]
            ]
            assert got == expected[:10], (reader, got, expected[:10])
        result["items_checked"] = 10
        refused = c.get(paths[("items", "member")][0])
        assert refused.status_code == 404, refused.status_code
        assert c.get(paths[("tiles", "member")][0]).status_code == 404
        result["anonymous_on_group_layer"] = 404
        for kind in ("tiles", "webtiles"):
            sizes: dict[str, list[int]] = {}
            for reader in READERS:
                sizes[reader] = []
                for p in paths[(kind, reader)]:
                    r = c.get(p, headers=headers_of(reader, session))
                    assert r.status_code in (200, 204), (p, r.status_code, r.text[:200])
                    sizes[reader].append(len(r.content))
            # the same data under another layer name: the same tiles, give or take the name
            nonempty = [
                (a, b) for a, b in zip(sizes["anonymous"], sizes["member"], strict=True) if a
            ]
            assert all(abs(a - b) <= 64 for a, b in nonempty), nonempty[:5]
            result[f"{kind}_warmed"] = len(sizes["member"])
        # private answers are marked so: no shared cache hands them on
        r = c.get(paths[("tiles", "member")][0], headers=headers_of("member", session))
        result["group_tile_cache_control"] = r.headers.get("cache-control")
        r = c.get(paths[("tiles", "anonymous")][0])
        result["public_tile_cache_control"] = r.headers.get("cache-control")
    return result


def wrk(base: str, paths: list[str], conc: int, headers: dict[str, str]) -> dict[str, Any]:
    return run_wrk(base, paths, conc, DURATION, SHARED / "urls.lua", threads=2, headers=headers,
                   tag="access_paths")  # fmt: skip


def main() -> None:
    queries = json.loads((DATA / "L" / "queries.json").read_text())
    if QUICK:
        queries["bboxes"]["100"] = queries["bboxes"]["100"][:30]
    noise = Noise()
    session, versions, ingest_s = build()
    log(f"catalogue: {PUBLIC} and {GROUP_LAYER} ingested in {ingest_s:.1f} s")
    layer_of = {"anonymous": PUBLIC, "member": GROUP_LAYER}
    paths = {
        (kind, reader): paths_for(kind, layer_of[reader], versions[layer_of[reader]], queries)
        for kind in KINDS
        for reader in READERS
    }
    cmd = [PY, "-m", "landexplorer.cli", "--data-dir", str(CAT / "data"), "serve",
           "--port", str(PORT), "--workers", str(WORKERS), "--log-level", "warning"]  # fmt: skip
    server = Server("landexplorer", cmd, dict(os.environ), PORT, CAT / "server.log")
    base = f"http://127.0.0.1:{PORT}"
    runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    try:
        server.start()
        assert wait_ready(base, f"/collections/{PUBLIC}")
        checks = check(base, session, paths, queries)
        log("checks: " + json.dumps(checks))
        for r in range(ROUNDS):
            for kind in KINDS:
                for conc in CONCURRENCY:
                    order = list(READERS) if r % 2 == 0 else list(READERS)[::-1]
                    for reader in order:
                        res = wrk(base, paths[(kind, reader)], conc, headers_of(reader, session))
                        runs.setdefault((kind, reader, conc), []).append(res)
                        log(
                            f"r{r} {kind} {reader} c{conc}: {res['rps']:.1f} req/s "
                            f"p50 {res['lat_p50_us'] / 1e3:.2f} ms errors {res['errors']}"
                        )
    finally:
        server.stop()

    rows, ratios = [], []
    for kind, kind_label in KINDS.items():
        for conc in CONCURRENCY:
            for reader, reader_label in READERS.items():
                rr = runs[(kind, reader, conc)]
                rps = [x["rps"] for x in rr]
                rows.append(
                    {
                        "tool": f"{kind_label}: {reader_label}, c={conc}",
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
                m["rps"] / a["rps"]
                for m, a in zip(
                    runs[(kind, "member", conc)], runs[(kind, "anonymous", conc)], strict=True
                )
            ]
            ratios.append(
                {
                    "what": f"signed-in (50 groups, group layer) / anonymous (public layer) "
                    f"req/s, {kind_label}, c={conc}; per-round p25-p75 {spread(per_round)}",
                    "value": round(statistics.median(per_round), 3),
                    "goal": f">= {GOAL}",
                }
            )
    payload = {
        "workload": "access",
        "title": "Access checks: a signed-in reader with 50 groups vs anonymous public reads",
        "command": COMMAND,
        "when": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "rows": rows,
        "ratios": ratios,
        "notes": (
            f"One `landexplorer serve --workers {WORKERS}` (GeoPackage store) over a catalogue "
            f"holding polys_100k twice ({PUBLIC}: public; {GROUP_LAYER}: group {GROUP}); the "
            f"signed-in reader is a viewer of 50 groups with a session cookie. {ROUNDS} rounds "
            f"x {DURATION} s per cell, wrk closed loop on the same 2 cores as the server; the "
            "reader that goes first alternates each round. Median: median of the per-round "
            "p50 latencies; p95 likewise; the ratio is the median of the per-round ratios. "
            f"Tiles were requested once by each reader before timing (cache hits). Checks: "
            f"{json.dumps(checks)}. Ingest of both layers: {ingest_s:.1f} s. "
            f"Noise: {json.dumps(noise.finish())}"
        ),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(payload, indent=1) + "\n")
    log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
