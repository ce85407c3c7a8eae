#!/usr/bin/env python
"""Tiles: landexplorer's vector (MVT) and raster (PNG) tiles against tipg, PMTiles and rio-tiler.

Vector (MVT, the 100k-polygon layer 'flood', properties id + prob_4band), over HTTP:
  - Tile lists: for z8, z10, z12 and z14, a fixed-seed random sample of N distinct tiles
    drawn from the whole extent of the layer (landexplorer.tiles.grid.tiles_covering of the
    layer's bbox, from GET /collections/flood), N = min(tiles in the extent, 200), 40 with
    BENCH_QUICK=1. Empty tiles are kept (204 answers count).
  - cold: each tile once after a fresh start, empty tile cache. For every (zoom, c in 1 and
    8) cell and round, landexplorer is stopped, its tile cache (<data_dir>/tilecache) is
    deleted and it is started again with its DEFAULT worker count (`landexplorer serve`
    without --workers: what users get); tipg 1.6 (PostGIS ST_AsMVT per request, no cache,
    the shared harness's tipg_server, max features per tile 200000 as in w3) is restarted
    before each of its cells as well. Each tile of the list is requested once.
  - warm: same tiles again, cache filled: right after landexplorer's cold cell the same list
    is requested again, and the harness's PMTiles FastAPI server (servers.pmtiles_server,
    the tippecanoe archive of w3 in $BENCH_DATA/work/tiles/flood.pmtiles) gets the same
    list with the same client and c. If the archive is missing the results say so.
  - Client: one asyncio httpx.AsyncClient per cell, max_connections=c, Accept-Encoding: gzip,
    c workers taking the next tile of the list; per-request latency, wall time of the whole
    list (tiles/s), status codes (anything but 200/204 fails the run) and bytes on the wire
    per tile (httpx's num_bytes_downloaded: the body as sent, before any decoding).
  - ROUNDS rounds (3, 1 quick), the order of the cells rotating each round; medians with the
    min-max spread over the rounds, ratios landexplorer/tipg (cold) and
    landexplorer/PMTiles (warm) per zoom and c, all from this run.

Raster: 256 px PNG tiles of the real OS Terrain 50 DEM (British National Grid GeoTIFF),
the harness's S_z12 and S_z14 lists; landexplorer drawing every tile once from an empty
tile cache, against rio-tiler reading and warping a window of the BNG GeoTIFF per tile, in-process
after imports, interleaved rounds. Both start from the stored GeoTIFF: landexplorer with an
empty tile cache in a fresh TileService (its first tile warps the whole DEM to web mercator,
which later tiles reuse), rio-tiler with opening the file. Ratio on the time for each list.

Run: bash bench/run.sh with BENCH_ONLY=tiles (needs the harness's PostGIS, pg_cluster.sh),
or .venv/bin/python bench/bench_tiles.py after it. Writes bench/results/tiles.json; a quick
run (BENCH_QUICK=1) writes $BENCH_DATA/work/tiles-smoke.json instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
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
from servers import (  # noqa: E402
    TIPG_PORT,
    RssSampler,
    pmtiles_server,
    tipg_server,
    wait_ready,
)

from landexplorer.tiles.grid import tiles_covering  # noqa: E402

PY = sys.executable
LE_PORT = int(os.environ.get("BENCH_LE_PORT", "18060"))
PMTILES_PORT = int(os.environ.get("BENCH_TILES_PMTILES_PORT", "18062"))
ROUNDS = 1 if QUICK else int(os.environ.get("BENCH_TILES_ROUNDS", "3"))
ZOOMS = (8, 10, 12, 14)
CONCURRENCY = (1, 8)
N_TILES = 40 if QUICK else 200
SEED = 20261204
GPKG = DATA / "L" / "polys_100k.gpkg"
HARNESS_PMTILES = WORK / "tiles" / "flood.pmtiles"  # where the harness's w3 builds it
PMTILES = Path(os.environ.get("BENCH_TILES_PMTILES", str(HARNESS_PMTILES)))
DEM = Path(os.environ.get("BENCH_REAL", str(SHARED.parent / "data" / "real")))
DEM = DEM / "dem_os_terrain50" / "trafford_os_terrain50_dtm_50m_bng.tif"
CAT = WORK / "landexplorer_tiles"
DATA_DIR = CAT / "data"
TILECACHE = DATA_DIR / "tilecache"  # TileService(store, settings.data_dir / "tilecache")
OUT = WORK / "tiles-smoke.json" if QUICK else ROOT / "bench" / "results" / "tiles.json"
PROPS = "id,prob_4band"
COMMAND = ("BENCH_QUICK=1 " if QUICK else "") + "BENCH_ONLY=tiles bash bench/run.sh"
COLD = "cold: each tile once after a fresh start, empty tile cache"
WARM = "warm: same tiles again, cache filled"
#: A warm cell requests its list over and over until it has made at least this many
#: requests (both sides alike): one pass of z8's 6 tiles lasts ~20 ms, too short to time
#: on a shared machine (one run's spread was 119-798 tiles/s).
WARM_REQUESTS = 200


def warm_list(paths: list[str]) -> list[str]:
    """The list a warm cell requests: ``paths`` repeated to at least WARM_REQUESTS."""
    return paths * max(1, -(-WARM_REQUESTS // max(1, len(paths))))

# the harness's PostGIS (pg_cluster.sh) serves tipg: bench/run.sh starts and loads it
_PG = PG_URL


def cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [PY, "-m", "landexplorer.cli", "--data-dir", str(DATA_DIR), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)


def ingest_flood() -> float:
    """Ingest the 100k polygons as layer 'flood'; returns the wall time in seconds."""
    t = time.perf_counter()
    cli(
        "ingest", "--no-pyramid",
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
    """`landexplorer serve` with its default worker count (no --workers)."""
    d = CAT / "serve"
    d.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LANDEXPLORER_DATA_DIR=str(DATA_DIR))
    cmd = [
        PY,
        "-m",
        "landexplorer.cli",
        "--data-dir",
        str(DATA_DIR),
        "serve",
        "--port",
        str(LE_PORT),
        "--log-level",
        "warning",
    ]
    return Server("landexplorer", cmd, env, LE_PORT, d / "server.log")


def pctl(values: list[float], q: float) -> float:
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


# ----- raster -------------------------------------------------------------------------------
# Both sides go from the stored GeoTIFF to PNGs, timed after imports: rio-tiler opens the
# BNG GeoTIFF and reads and warps a window per tile; landexplorer starts with an empty tile
# cache in a fresh TileService, so its first tile warps the whole raster to web mercator
# (kept for later tiles) and every tile is drawn, never a cache hit.
RIO_TILER = r"""
import json, sys, time
from rio_tiler.io import Reader
from rio_tiler.colormap import cmap
tiles = json.loads(sys.argv[2])
low, high = json.loads(sys.argv[3])
cm = cmap.get("viridis")
out = []
t = time.perf_counter()
with Reader(sys.argv[1]) as src:
    opened = time.perf_counter() - t
    for z, x, y in tiles:
        t = time.perf_counter()
        img = src.tile(x, y, z, tilesize=256)
        img.rescale(in_range=((low, high),))
        png = img.render(img_format="PNG", colormap=cm)
        out.append(time.perf_counter() - t)
out[0] += opened  # the first tile pays for opening the file, as landexplorer's pays the warp
print(json.dumps(out))
"""
RESCALE = (6.5, 86.0)


def rio_tiler_round(tiles: list[list[int]]) -> list[float]:
    p = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            RIO_TILER,
            str(DEM),
            json.dumps(tiles),
            json.dumps(RESCALE),
        ],
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

    q = json.loads((DATA / "L" / "queries.json").read_text())["raster_tiles"]
    lists = {"z12": q["S_z12"], "z14": q["S_z14"]}
    d = CAT / "raster"
    shutil.rmtree(d, ignore_errors=True)
    store = open_store(Settings(data_dir=d))
    t = time.perf_counter()
    ingest(store, DEM, IngestOptions(id="elevation", licence="OGL-UK-3.0", attribution="OS"))
    ingest_s = time.perf_counter() - t
    warps: list[float] = []

    def le_round(tiles: list[list[int]]) -> list[float]:
        cache = d / "tilecache"
        shutil.rmtree(cache, ignore_errors=True)  # no warped copy, no tile drawn before
        service = TileService(store, cache)
        out = []
        for z, x, y in tiles:
            t0 = time.perf_counter()
            service.raster_tile("elevation", z, x, y, "viridis", RESCALE)
            out.append(time.perf_counter() - t0)
        warps.append(out[0])
        return out

    lat: dict[tuple[str, str], list[float]] = {}
    lists_s: dict[tuple[str, str], list[float]] = {}
    tools = {
        "landexplorer (GET path, empty tile cache: first tile warps the DEM, all drawn)": le_round,
        "rio-tiler 9 (BNG GeoTIFF opened, a window read and warped per tile)": rio_tiler_round,
    }
    for r in range(rounds):
        for name in rotate(list(tools), r):
            for zoom, tiles in lists.items():
                xs = tools[name](tiles)
                lat.setdefault((name, zoom), []).extend(xs)
                lists_s.setdefault((name, zoom), []).append(sum(xs))
    rows, ratios = [], []
    for (name, zoom), xs in lat.items():
        per_list = lists_s[(name, zoom)]
        n = len(lists[zoom])
        rates = sorted(n / s for s in per_list)
        rows.append(
            {
                "tool": f"{name}, {zoom}",
                "median_s": statistics.median(xs),
                "p95_s": pctl(xs, 95),
                "peak_rss_mb": None,
                "rate": f"{statistics.median(rates):,.0f} tiles/s "
                f"(rounds {rates[0]:,.0f}-{rates[-1]:,.0f})",
                "notes": f"raster PNG {zoom}, {n} tiles x {rounds} rounds, in-process after "
                f"imports, viridis, rescale {RESCALE[0]}-{RESCALE[1]} m; tiles/s = tiles / "
                "time for the whole list from the stored GeoTIFF",
            }
        )
    for zoom in lists:
        le = statistics.median(lists_s[(next(iter(tools)), zoom)])
        rio = statistics.median(lists_s[(list(tools)[1], zoom)])
        ratios.append(
            {
                "what": f"landexplorer / rio-tiler raster PNG tiles/s, cold, warp counted, "
                f"{zoom} ({len(lists[zoom])} tiles)",
                "value": round(rio / le, 2),
                "goal": ">= 2",
            }
        )
    store.close()
    warps.sort()
    return (
        rows,
        ratios,
        f"raster: ingest of the DEM (COG written) {ingest_s:.2f} s; landexplorer's first tile "
        f"(warp of the whole DEM to web mercator, kept on disk and in memory) median "
        f"{statistics.median(warps) * 1e3:.0f} ms (rounds {warps[0] * 1e3:.0f}-"
        f"{warps[-1] * 1e3:.0f} ms)",
    )


# ----- vector -------------------------------------------------------------------------------
def layer_bbox() -> tuple[float, float, float, float]:
    """The layer's lon/lat bbox as landexplorer publishes it (extent.spatial.bbox[0])."""
    import httpx

    r = httpx.get(f"http://127.0.0.1:{LE_PORT}/collections/flood", timeout=60)
    r.raise_for_status()
    b = r.json()["extent"]["spatial"]["bbox"][0]
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def pick_tiles(bbox: tuple[float, float, float, float], z: int, n: int) -> list[tuple[int, int]]:
    """n distinct (x, y) tiles at zoom z, fixed-seed random over the whole extent."""
    xmin, ymin, xmax, ymax = tiles_covering(bbox, z)
    w, h = xmax - xmin + 1, ymax - ymin + 1
    rng = random.Random(SEED + z)
    picks = rng.sample(range(w * h), min(n, w * h))
    return [(xmin + i % w, ymin + i // w) for i in picks]


async def _fetch(base: str, paths: list[str], c: int) -> dict:
    import httpx

    lat = [0.0] * len(paths)
    nbytes = [0] * len(paths)
    codes: dict[int, int] = {}
    bad: list[tuple[str, int]] = []
    nxt = iter(range(len(paths)))
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(
        base_url=base, limits=limits, headers={"Accept-Encoding": "gzip"}, timeout=300
    ) as client:

        async def worker() -> None:
            for i in nxt:
                t = time.perf_counter()
                async with client.stream("GET", paths[i]) as r:
                    async for _ in r.aiter_raw():  # as sent: not decoded
                        pass
                lat[i] = time.perf_counter() - t
                nbytes[i] = r.num_bytes_downloaded
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
                if r.status_code not in (200, 204):
                    bad.append((paths[i], r.status_code))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        wall = time.perf_counter() - t0
    if bad:
        raise RuntimeError(f"{base}: {len(bad)} answers not 200/204, e.g. {bad[:3]}")
    return {
        "lat": lat,
        "bytes": nbytes,
        "codes": codes,
        "wall_s": wall,
        "rps": len(paths) / wall,
    }


def fetch_list(base: str, paths: list[str], c: int) -> dict:
    """Every path once with c concurrent requests on one AsyncClient (max_connections=c)."""
    return asyncio.run(_fetch(base, paths, c))


def cache_size(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    from landexplorer.cli.serve_cmd import default_workers

    noise = Noise()
    shutil.rmtree(CAT, ignore_errors=True)
    ingest_s = ingest_flood()
    le_workers = default_workers()
    le, tipg = le_server(), tipg_server(max_features_per_tile=200000)
    le_base = f"http://127.0.0.1:{LE_PORT}"
    tipg_base = f"http://127.0.0.1:{TIPG_PORT}"
    pm_base = f"http://127.0.0.1:{PMTILES_PORT}"
    pm_build = ""
    if not PMTILES.exists() and PMTILES == HARNESS_PMTILES:
        # the harness's own build (GeoPackage -> FlatGeobuf -> tippecanoe -Z8 -z14
        # --drop-densest-as-needed), timed by it; its time is reported, never counted
        from w3_tiles import build_pmtiles

        recs, _ = build_pmtiles()
        pm_build = (
            f"; archive built for this run by the harness's build_pmtiles: export "
            f"{statistics.median(r['export_s'] for r in recs):.1f} s + tippecanoe "
            f"{statistics.median(r['tippecanoe_s'] for r in recs):.1f} s, "
            f"{recs[-1]['pmtiles_mb']:.1f} MB"
        )
    pm = pmtiles_server("fastapi", PMTILES_PORT, PMTILES) if PMTILES.exists() else None
    if pm is None:
        log(f"no PMTiles archive at {PMTILES}: the warm rows have no PMTiles peer")
    runs: dict[tuple[str, str, int, int], list[dict]] = {}
    peak: dict[str, float] = {}
    started: list[Server] = []

    def start(server: Server, base: str, ready: str) -> RssSampler:
        server.start()
        started.append(server)
        assert wait_ready(base, ready), f"{server.name} not ready"
        s = RssSampler(server)
        s.start()
        return s

    def stop(server: Server, sampler: RssSampler | None, tool: str) -> None:
        if sampler is not None:
            peak[tool] = max(peak.get(tool, 0.0), sampler.stop())
        server.stop()
        if server in started:
            started.remove(server)

    try:
        # the layer's extent as landexplorer publishes it, then the tile lists
        start(le, le_base, "/collections/flood").stop()
        bbox = layer_bbox()
        stop(le, None, "landexplorer")
        tiles = {z: pick_tiles(bbox, z, N_TILES) for z in ZOOMS}
        for z in ZOOMS:
            log(f"z{z}: {len(tiles[z])} tiles from the extent {bbox}")
        q = f"?properties={PROPS}"
        paths = {
            "landexplorer": {
                z: [f"/collections/flood/tiles/WebMercatorQuad/{z}/{x}/{y}{q}" for x, y in ts]
                for z, ts in tiles.items()
            },
            "tipg": {
                z: [
                    f"/collections/public.flood/tiles/WebMercatorQuad/{z}/{x}/{y}{q}" for x, y in ts
                ]
                for z, ts in tiles.items()
            },
            "pmtiles": {z: [f"/tiles/{z}/{x}/{y}.pbf" for x, y in ts] for z, ts in tiles.items()},
        }
        pm_sampler = None
        if pm is not None:
            pm.start()
            started.append(pm)
            # its directories are parsed on first use: read every list once, untimed
            for z in ZOOMS:
                fetch_list(pm_base, paths["pmtiles"][z], 8)
            pm_sampler = RssSampler(pm)
            pm_sampler.start()
        cells = [(tool, c) for tool in ("landexplorer", "tipg") for c in CONCURRENCY]
        for r in range(ROUNDS):
            for z in ZOOMS:
                for tool, c in rotate(cells, r):
                    if tool == "landexplorer":
                        shutil.rmtree(TILECACHE, ignore_errors=True)  # server is stopped
                        s = start(le, le_base, "/collections/flood")
                        cold = fetch_list(le_base, paths["landexplorer"][z], c)
                        n_files, n_bytes = cache_size(TILECACHE)
                        warm = fetch_list(le_base, warm_list(paths["landexplorer"][z]), c)
                        stop(le, s, "landexplorer")
                        runs.setdefault(("landexplorer", COLD, z, c), []).append(cold)
                        runs.setdefault(("landexplorer", WARM, z, c), []).append(warm)
                        msg = (
                            f"r{r} z{z} c{c} landexplorer cold {cold['rps']:.1f} tiles/s, "
                            f"warm {warm['rps']:.1f} tiles/s (cache {n_files} files, "
                            f"{n_bytes / 2**20:.1f} MiB after the cold pass)"
                        )
                        if pm is not None:
                            pmr = fetch_list(pm_base, warm_list(paths["pmtiles"][z]), c)
                            runs.setdefault(("pmtiles", WARM, z, c), []).append(pmr)
                            msg += f", pmtiles {pmr['rps']:.1f} tiles/s"
                        log(msg + f" codes {cold['codes']}")
                    else:
                        s = start(tipg, tipg_base, "/collections/public.flood")
                        cold = fetch_list(tipg_base, paths["tipg"][z], c)
                        stop(tipg, s, "tipg")
                        runs.setdefault(("tipg", COLD, z, c), []).append(cold)
                        log(
                            f"r{r} z{z} c{c} tipg cold {cold['rps']:.1f} tiles/s "
                            f"codes {cold['codes']}"
                        )
        if pm is not None and pm_sampler is not None:
            stop(pm, pm_sampler, "pmtiles")
        # The default for a layer this size: landexplorer ingest would have made its low
        # zooms ahead of time. Made now (timed), then those zooms asked cold from it:
        # tippecanoe's tiles (densest features dropped, every column), not tipg's work.
        t0 = time.perf_counter()
        said = cli("tiles", "build", "flood")
        pyramid_s = time.perf_counter() - t0
        top = re.search(r"zooms 0-(\d+)", said.stdout)
        pyramid_top = int(top.group(1)) if top else -1
        log(f"pyramid: zooms 0-{pyramid_top} in {pyramid_s:.1f} s: {said.stdout.strip()}")
        for r in range(ROUNDS):
            for z in [z for z in ZOOMS if z <= pyramid_top]:
                for c in CONCURRENCY:
                    shutil.rmtree(TILECACHE, ignore_errors=True)
                    s = start(le, le_base, "/collections/flood")
                    whole = [p.split("?")[0] for p in paths["landexplorer"][z]]
                    cold = fetch_list(le_base, whole, c)
                    stop(le, s, "landexplorer")
                    runs.setdefault(("pyramid", COLD, z, c), []).append(cold)
                    log(f"r{r} z{z} c{c} landexplorer from the pyramid, cold "
                        f"{cold['rps']:.1f} tiles/s codes {cold['codes']}")  # fmt: skip
    finally:
        for server in list(started):
            server.stop()

    labels = {
        "landexplorer": f"landexplorer (GeoPackage, dynamic MVT + tile cache, {le_workers} "
        "workers: the default; layer loaded with --no-pyramid: every tile drawn on request)",
        "tipg": "tipg 1.6 (PostGIS ST_AsMVT, no cache)",
        "pmtiles": "PMTiles archive behind FastAPI (harness, tippecanoe, precomputed)",
        "pyramid": f"landexplorer (GeoPackage, {le_workers} workers), tiles of zooms "
        f"0-{pyramid_top} from the pyramid made ahead (tippecanoe; every column)",
    }
    rows, ratios = [], []
    rate: dict[tuple[str, str, int, int], float] = {}
    kib: dict[tuple[str, str, int, int], float] = {}
    order = {"landexplorer": 0, "tipg": 1, "pmtiles": 2, "pyramid": 3}
    for key in sorted(runs, key=lambda k: (k[1] != COLD, k[2], k[3], order[k[0]])):
        tool, mode, z, c = key
        rs = runs[key]
        lat = [x for res in rs for x in res["lat"]]
        nb = [b for res in rs for b in res["bytes"]]
        rps = [res["rps"] for res in rs]
        codes: dict[int, int] = {}
        for res in rs:
            for code, n in res["codes"].items():
                codes[code] = codes.get(code, 0) + n
        rate[key] = statistics.median(rps)
        kib[key] = statistics.median(nb) / 1024
        rows.append(
            {
                "tool": labels[tool],
                "mode": mode,
                "size": f"z{z}, c={c}",
                "median_s": statistics.median(lat),
                "p95_s": pctl(lat, 95),
                "peak_rss_mb": round(peak.get(tool) or 0, 1) or None,
                "rate": f"{rate[key]:,.1f} tiles/s",
                "tiles_per_s": rps,
                "bytes_per_tile_median": statistics.median(nb),
                "notes": f"{len(tiles[z])} tiles"
                + (f" (list requested {len(rs[0]['lat']) // max(1, len(tiles[z]))} times)"
                   if mode == WARM else "")
                + f" x {len(rs)} rounds; tiles/s median "
                f"{rate[key]:,.1f} (spread {min(rps):,.1f}-{max(rps):,.1f}); wall per list "
                f"{statistics.median(res['wall_s'] for res in rs):.2f} s; "
                f"{kib[key]:.1f} KiB/tile on the wire (median, gzip asked); answers "
                + ", ".join(f"{n}x{code}" for code, n in sorted(codes.items())),
            }
        )
    for z in ZOOMS:
        for c in CONCURRENCY:
            le_k, tipg_k = ("landexplorer", COLD, z, c), ("tipg", COLD, z, c)
            if le_k in rate and tipg_k in rate:
                ratios.append(
                    {
                        "what": f"landexplorer / tipg tiles/s, {COLD}, z{z}, c={c}",
                        "value": round(rate[le_k] / rate[tipg_k], 2),
                        "goal": ">= 2",  # issue 11: twice tipg, cold
                    }
                )
    if pm is None:
        ratios.append(
            {
                "what": f"landexplorer / PMTiles tiles/s, {WARM}, every zoom and c",
                "value": f"not measured: no PMTiles archive at {PMTILES} "
                "(the harness's w3_tiles builds it)",
                "goal": None,
            }
        )
    for z in ZOOMS:
        for c in CONCURRENCY:
            le_k, pm_k = ("landexplorer", WARM, z, c), ("pmtiles", WARM, z, c)
            if le_k in rate and pm_k in rate:
                ratios.append(
                    {
                        "what": f"landexplorer / PMTiles tiles/s, {WARM}, z{z}, c={c}",
                        "value": round(rate[le_k] / rate[pm_k], 2),
                        "goal": ">= 1",
                    }
                )
    for z in ZOOMS:
        for c in CONCURRENCY:
            py_k, tipg_k = ("pyramid", COLD, z, c), ("tipg", COLD, z, c)
            if py_k in rate and tipg_k in rate:
                ratios.append(
                    {
                        "what": f"landexplorer from its pyramid / tipg tiles/s, {COLD}, z{z}, "
                        f"c={c} (not the same tiles: tippecanoe drops features)",
                        "value": round(rate[py_k] / rate[tipg_k], 2),
                        "goal": "report",
                    }
                )
    for z in ZOOMS:
        # the same tiles whatever c: the c=1 cells' bytes stand for the zoom
        le_k, tipg_k = ("landexplorer", COLD, z, 1), ("tipg", COLD, z, 1)
        if le_k in kib and tipg_k in kib:
            ratios.append(
                {
                    "what": f"bytes per tile on the wire (median), landexplorer / tipg, z{z} "
                    f"({kib[le_k]:.1f} / {kib[tipg_k]:.1f} KiB)",
                    "value": round(kib[le_k] / kib[tipg_k], 2) if kib[tipg_k] else None,
                    "goal": None,
                }
            )
    rows.append(
        {
            "tool": "landexplorer ingest (100k polygons, once before the tile runs)",
            "median_s": ingest_s,
            "p95_s": None,
            "peak_rss_mb": None,
            "rate": None,
            "notes": "1 ingest with --no-pyramid: every tile of the rows above is drawn on "
            "its first request and cached",
        }
    )
    rows.append(
        {
            "tool": f"landexplorer tiles build (the pyramid of zooms 0-{pyramid_top}, made by "
            "tippecanoe; what landexplorer ingest does by default for this layer)",
            "median_s": pyramid_s,
            "p95_s": None,
            "peak_rss_mb": None,
            "rate": None,
            "notes": "1 build, after the live rows; the 'pyramid' rows read from it",
        }
    )
    r_rows, r_ratios, warp_note = raster_bench(ROUNDS)
    rows += r_rows
    ratios += r_ratios
    noise_info = noise.finish()
    pm_note = (
        f"PMTiles peer: the harness's FastAPI app on {PMTILES} (directories read once before "
        f"the timed runs){pm_build}"
        if pm is not None
        else f"PMTiles peer not measured: no archive at {PMTILES}"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "workload": "tiles",
                "title": "Vector tiles (MVT, 100k polygons): cold and warm; raster PNG tiles (DEM)",
                "command": COMMAND,
                "when": datetime.now(UTC).replace(microsecond=0).isoformat(),
                "rows": rows,
                "ratios": ratios,
                "tile_lists": {
                    f"z{z}": {"seed": SEED + z, "tiles": [list(t) for t in tiles[z]]} for z in ZOOMS
                },
                "layer_bbox": list(bbox),
                "notes": (
                    f"{ROUNDS} round(s), the order of the (tool, c) cells rotating each round; "
                    "2 CPU cores shared by the servers, PostgreSQL and the client. Tile lists: "
                    f"up to {N_TILES} distinct tiles per zoom, fixed-seed random over the "
                    f"layer's whole extent {tuple(round(v, 3) for v in bbox)}. {COLD}: "
                    "landexplorer stopped, its tile cache deleted, started again with its "
                    f"default worker count ({le_workers} here); tipg restarted before each of "
                    f"its cells. {WARM}: the same list right after landexplorer's cold pass, "
                    f"requested over and over to at least {WARM_REQUESTS} requests (the "
                    "PMTiles peer likewise). "
                    "Client: one httpx.AsyncClient per list, max_connections=c, "
                    "Accept-Encoding: gzip; bytes are as sent on the wire. "
                    f"{pm_note}. {warp_note}. Noise: {json.dumps(noise_info)}"
                ),
            },
            indent=1,
        )
    )
    log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
