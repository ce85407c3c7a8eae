#!/usr/bin/env python
"""Tiles: landexplorer's vector (MVT) and raster (PNG) tiles against tipg and rio-tiler.

Vector, over HTTP with wrk (the harness's urls.lua), for the harness's fixed tile lists
(z8: the 6 tiles touching the 100k-polygon layer, z12: 50, z14: 100), c=1 and c=8,
properties id + prob_4band, in interleaved rounds:
  - landexplorer: `landexplorer serve --workers 2` (uvicorn + uvloop/httptools) on a
    catalogue holding polys_100k.gpkg. Before EVERY landexplorer wrk run the layer is
    ingested again as a new version (`landexplorer ingest --replace`), so the run
    starts with no cached tile of that version: the first request of each tile after
    ingest is inside the timed run.
  - tipg 1.6 on the harness's PostGIS (ST_AsMVT per request, no cache), started by the
    shared harness (servers.tipg_server, max features per tile 200000 as in w3).
A cold pass (each tile requested once right after an ingest, c=1) is reported per zoom.

Raster: 256 px PNG tiles of the real OS Terrain 50 DEM (British National Grid GeoTIFF),
the harness's S_z12 and S_z14 lists; landexplorer drawing every tile (cache bypassed)
against rio-tiler reading the BNG GeoTIFF (dataset kept open, its faster mode in w5),
in-process, interleaved rounds. The one-off warp to web mercator is reported apart.

Run: bash bench/run.sh with BENCH_ONLY=tiles (needs the harness's PostGIS, pg_cluster.sh),
or .venv/bin/python bench/bench_tiles.py after it. Writes bench/results/tiles.json.
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

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", "/work/shared/bench"))
sys.path.insert(0, str(SHARED))
from common import DATA, PG_URL, QUICK, VENV, WORK, Noise, Server, log, rotate  # noqa: E402
from servers import TIPG_PORT, WORKERS, RssSampler, tipg_server, wait_ready, wrk  # noqa: E402

PY = sys.executable
LE_PORT = int(os.environ.get("BENCH_LE_PORT", "18060"))
ROUNDS = 1 if QUICK else int(os.environ.get("BENCH_TILES_ROUNDS", "3"))
DURATION = 3 if QUICK else int(os.environ.get("BENCH_TILES_DURATION", "6"))
GPKG = DATA / "L" / "polys_100k.gpkg"
DEM = Path(os.environ.get("BENCH_REAL", str(SHARED.parent / "data" / "real")))
DEM = DEM / "dem_os_terrain50" / "trafford_os_terrain50_dtm_50m_bng.tif"
CAT = WORK / "landexplorer_tiles"
OUT = ROOT / "bench" / "results" / "tiles.json"
PROPS = "id,prob_4band"
COMMAND = "BENCH_ONLY=tiles bash bench/run.sh"
#: tipg over HTTP with wrk in the peers' run (../shared/bench/results/peers-2026-11-28.md):
#: (zoom, connections, goal, tiles/s); z8 there was timed one request at a time only.
QUIET_TIPG = [("14", 1, 3, 348.4), ("14", 8, 5, 642.6), ("12", 1, 3, 194.0), ("12", 8, 5, 328.6),
              ("8", 1, 3, 6.9)]  # fmt: skip
# the harness's PostGIS (pg_cluster.sh) serves tipg: bench/run.sh starts and loads it
_PG = PG_URL


def cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [PY, "-m", "landexplorer.cli", "--data-dir", str(CAT / "data"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)


def ingest_flood() -> float:
    """(Re-)ingest the 100k polygons as layer 'flood'; returns the wall time in seconds."""
    t = time.perf_counter()
    cli(
        "ingest",
        str(GPKG),
        "--id",
        "flood",
        "--replace",
        "--licence",
        "OGL-UK-3.0",
        "--attribution",
        "bench",
    )
    return time.perf_counter() - t


def le_server() -> Server:
    d = CAT / "serve"
    d.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LANDEXPLORER_DATA_DIR=str(CAT / "data"))
    cmd = [
        PY,
        "-m",
        "landexplorer.cli",
        "--data-dir",
        str(CAT / "data"),
        "serve",
        "--port",
        str(LE_PORT),
        "--workers",
        str(WORKERS),
        "--log-level",
        "warning",
    ]
    return Server("landexplorer", cmd, env, LE_PORT, d / "server.log")


def cold_pass(base: str, paths: list[str]) -> list[float]:
    """Each tile once, in order, right after an ingest: the latency of first requests."""
    import httpx

    out = []
    with httpx.Client(base_url=base, timeout=300) as c:
        for p in paths:
            t = time.perf_counter()
            r = c.get(p)
            out.append(time.perf_counter() - t)
            assert r.status_code in (200, 204), (p, r.status_code, r.text[:200])
    return out


def pctl(values: list[float], q: float) -> float:
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


# ----- raster -------------------------------------------------------------------------------
RIO_TILER = r"""
import json, sys, time
from rio_tiler.io import Reader
from rio_tiler.colormap import cmap
tiles = json.loads(sys.argv[2])
cm = cmap.get("viridis")
out = []
with Reader(sys.argv[1]) as src:
    for z, x, y in tiles:
        t = time.perf_counter()
        img = src.tile(x, y, z, tilesize=256)
        img.rescale(in_range=((6.5, 86.0),))
        png = img.render(img_format="PNG", colormap=cm)
        out.append(time.perf_counter() - t)
print(json.dumps(out))
"""


def rio_tiler_round(tiles: list[list[int]]) -> list[float]:
    p = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", RIO_TILER, str(DEM), json.dumps(tiles)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(p.stdout.strip().splitlines()[-1])


def raster_bench(rounds: int) -> tuple[list[dict], list[dict], str]:
    from landexplorer.catalog import open_store
    from landexplorer.layers.ingest import IngestOptions, ingest
    from landexplorer.settings import Settings
    from landexplorer.tiles import TileService
    from landexplorer.tiles.raster import render_png
    from landexplorer.tiles.service import layer_generation

    q = json.loads((DATA / "L" / "queries.json").read_text())["raster_tiles"]
    lists = {"z12": q["S_z12"], "z14": q["S_z14"]}
    d = CAT / "raster"
    shutil.rmtree(d, ignore_errors=True)
    store = open_store(Settings(data_dir=d))
    ingest(store, DEM, IngestOptions(id="elevation", licence="OGL-UK-3.0", attribution="OS"))
    service = TileService(store, d / "tilecache")
    entry = service.layer("elevation")
    raster_path = store.raster_path(entry)
    t = time.perf_counter()
    service.rasters.get(entry.id, layer_generation(entry), raster_path)
    warp_s = time.perf_counter() - t

    def le_round(tiles: list[list[int]]) -> list[float]:
        out = []
        for z, x, y in tiles:
            t0 = time.perf_counter()
            _, ramp, (low, high) = service.raster_request(entry, z, x, y, "viridis")
            source = service.rasters.get(entry.id, layer_generation(entry), raster_path)
            render_png(source, z, x, y, low, high, ramp)  # drawn every time: no cache hit
            out.append(time.perf_counter() - t0)
        return out

    lat: dict[tuple[str, str], list[float]] = {}
    tools = {
        "landexplorer (in-memory web-mercator copy, paletted PNG)": le_round,
        "rio-tiler 9 (BNG GeoTIFF, dataset kept open)": rio_tiler_round,
    }
    for r in range(rounds):
        for name in rotate(list(tools), r):
            for zoom, tiles in lists.items():
                lat.setdefault((name, zoom), []).extend(tools[name](tiles))
    rows, ratios = [], []
    for (name, zoom), xs in lat.items():
        med = statistics.median(xs)
        rows.append(
            {
                "tool": name,
                "median_s": med,
                "p95_s": pctl(xs, 95),
                "peak_rss_mb": None,
                "rate": f"{len(xs) / sum(xs):,.0f} tiles/s",
                "notes": f"raster PNG {zoom}, {len(lists[zoom])} tiles x {rounds} rounds, "
                "in-process, viridis, rescale 6.5-86 m",
            }
        )
    for zoom in lists:
        le = statistics.median(lat[(next(iter(tools)), zoom)])
        rio = statistics.median(lat[(list(tools)[1], zoom)])
        ratios.append(
            {
                "what": f"rio-tiler / landexplorer time per raster PNG tile, {zoom}",
                "value": round(rio / le, 2),
                "goal": ">= 4",
            }
        )
    store.close()
    return (
        rows,
        ratios,
        f"one-off warp of the DEM to web mercator on first use: {warp_s * 1e3:.0f} ms",
    )


# ----- vector -------------------------------------------------------------------------------
def main() -> None:
    noise = Noise()
    q = json.loads((DATA / "L" / "queries.json").read_text())
    tiles = {z: [(d["z"], d["x"], d["y"]) for d in q["tiles"][z]] for z in ("8", "12", "14")}
    if QUICK:
        tiles = {"8": tiles["8"][:2], "12": tiles["12"][:10], "14": tiles["14"][:20]}
    shutil.rmtree(CAT, ignore_errors=True)
    ingest_s = [ingest_flood()]
    le, tipg = le_server(), tipg_server(max_features_per_tile=200000)
    runs: dict[tuple[str, str, int], list[dict]] = {}
    cold: dict[str, list[float]] = {}
    rss = {}
    try:
        le.start()
        tipg.start()
        assert wait_ready(f"http://127.0.0.1:{LE_PORT}", "/collections/flood")
        assert wait_ready(f"http://127.0.0.1:{TIPG_PORT}", "/collections/public.flood")
        samplers = {"landexplorer": RssSampler(le), "tipg": RssSampler(tipg)}
        for s in samplers.values():
            s.start()
        paths = {
            "landexplorer": {
                z: [
                    f"/collections/flood/tiles/WebMercatorQuad/{a}/{b}/{c}?properties={PROPS}"
                    for (a, b, c) in ts
                ]
                for z, ts in tiles.items()
            },
            "tipg": {
                z: [
                    f"/collections/public.flood/tiles/WebMercatorQuad/{a}/{b}/{c}?properties={PROPS}"
                    for (a, b, c) in ts
                ]
                for z, ts in tiles.items()
            },
        }
        ports = {"landexplorer": LE_PORT, "tipg": TIPG_PORT}
        # cold pass: each tile once right after an ingest
        for z in ("14", "12", "8"):
            ingest_s.append(ingest_flood())
            cold[z] = cold_pass(f"http://127.0.0.1:{LE_PORT}", paths["landexplorer"][z])
            med = statistics.median(cold[z]) * 1e3
            log(f"cold z{z}: median {med:.1f} ms, total {sum(cold[z]):.2f}s")
        cells = [(tool, conc) for tool in ("landexplorer", "tipg") for conc in (1, 8)]
        for r in range(ROUNDS):
            for z in ("14", "12", "8"):
                for tool, conc in rotate(cells, r):
                    if tool == "landexplorer":
                        ingest_s.append(ingest_flood())  # new version: nothing cached for it
                    res = wrk(
                        f"http://127.0.0.1:{ports[tool]}",
                        paths[tool][z],
                        conc,
                        DURATION,
                        timeout_s=120,
                    )
                    runs.setdefault((tool, z, conc), []).append(res)
                    log(
                        f"r{r} z{z} {tool} c{conc}: {res['rps']:.1f} tiles/s "
                        f"p50 {res['lat_p50_us'] / 1e3:.2f} ms errors {res['errors']}"
                    )
        rss = {k: s.stop() for k, s in samplers.items()}
    finally:
        le.stop()
        tipg.stop()

    rows, ratios = [], []
    labels = {
        "landexplorer": "landexplorer (GeoPackage, cached dynamic MVT)",
        "tipg": "tipg 1.6 (PostGIS ST_AsMVT)",
    }
    rate: dict[tuple[str, str, int], float] = {}
    for (tool, z, conc), rs in sorted(
        runs.items(), key=lambda kv: (-int(kv[0][1]), kv[0][2], kv[0][0])
    ):
        rps = [x["rps"] for x in rs]
        rate[(tool, z, conc)] = statistics.median(rps)
        errors = sum(x["errors"] for x in rs)
        kib = sum(x["bytes"] for x in rs) / max(1, sum(x["requests"] for x in rs)) / 1024
        rows.append(
            {
                "tool": labels[tool],
                "median_s": statistics.median(x["lat_p50_us"] for x in rs) / 1e6,
                "p95_s": statistics.median(x["lat_p95_us"] for x in rs) / 1e6,
                "peak_rss_mb": round(rss.get(tool) or 0, 1) or None,
                "rate": f"{rate[(tool, z, conc)]:,.1f} tiles/s",
                "notes": f"z{z} ({len(tiles[z])} tiles), c={conc}, wrk {len(rs)}x{DURATION}s, "
                f"{WORKERS} workers; {kib:.1f} KiB/resp; errors {errors}; tiles/s spread "
                f"{min(rps):,.1f}-{max(rps):,.1f}"
                + (
                    "; every run starts right after a fresh ingest (cold cache)"
                    if tool == "landexplorer"
                    else ""
                ),
            }
        )
    for z, xs in cold.items():
        rows.append(
            {
                "tool": "landexplorer, first request of each tile after ingest",
                "median_s": statistics.median(xs),
                "p95_s": pctl(xs, 95),
                "peak_rss_mb": None,
                "rate": f"{len(xs) / sum(xs):,.1f} tiles/s",
                "notes": f"z{z}: {len(xs)} tiles once each, c=1, httpx; whole list {sum(xs):.2f}s",
            }
        )
    for z in ("14", "12", "8"):
        for conc, goal in ((1, 3), (8, 5)):
            if ("tipg", z, conc) in rate and ("landexplorer", z, conc) in rate:
                ratios.append(
                    {
                        "what": f"landexplorer / tipg tiles/s, z{z}, c={conc}",
                        "value": round(
                            rate[("landexplorer", z, conc)] / rate[("tipg", z, conc)], 2
                        ),
                        "goal": f">= {goal}",
                    }
                )
    # the same landexplorer figures against tipg's on a quiet machine (the peers' own run,
    # results/peers-*.json): tipg slows down under the load of a shared machine too
    for z, conc, goal, quiet in QUIET_TIPG:
        if ("landexplorer", z, conc) in rate:
            ratios.append(
                {
                    "what": f"landexplorer (this run) / tipg in the peers' quiet run ({quiet:.0f} "
                    f"tiles/s), z{z}, c={conc}",
                    "value": round(rate[("landexplorer", z, conc)] / quiet, 2),
                    "goal": f">= {goal}",
                }
            )
    ingest_med = statistics.median(ingest_s)
    rows.append(
        {
            "tool": "landexplorer ingest (100k polygons, the ingest before each run)",
            "median_s": ingest_med,
            "p95_s": pctl(ingest_s, 95),
            "peak_rss_mb": None,
            "rate": None,
            "notes": f"{len(ingest_s)} ingests; no tile archive is built: "
            "tiles are drawn on first request and cached",
        }
    )
    r_rows, r_ratios, warp_note = raster_bench(ROUNDS)
    rows += r_rows
    ratios += r_ratios
    noise_info = noise.finish()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "workload": "tiles",
                "title": "Vector tiles (MVT, 100k polygons) and raster PNG tiles (DEM)",
                "command": COMMAND,
                "when": datetime.now(UTC).replace(microsecond=0).isoformat(),
                "rows": rows,
                "ratios": ratios,
                "notes": (
                    f"{ROUNDS} interleaved rounds; 2 CPU cores shared by the servers, PostgreSQL "
                    "and wrk. landexplorer's tile cache is keyed by layer version: each wrk run "
                    "starts right after the layer was ingested again, so every tile's first "
                    f"(uncached) request is inside the run. {warp_note}. "
                    f"Noise: {json.dumps(noise_info)}"
                ),
            },
            indent=1,
        )
    )
    log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
