"""National size (issue 11): 5,000,000 flood polygons across England, on both stores.

    BENCH_ONLY=national bash bench/run.sh      # ~25 minutes on 2 cores
    BENCH_NATIONAL_STORES=gpkg ...             # one store only

The layer is made by ``bench/national_data.py`` (the peer harness's method on a grid over
England's extent) and kept between runs. For each store, from an empty catalogue:

1. ``landexplorer ingest --no-pyramid`` of the 5M layer and of the 100k layer, timed
   under ``/usr/bin/time`` (wall, peak resident memory): the memory must stay flat.
2. ``landexplorer tiles build`` of the 5M layer: what ``ingest`` does by default for a
   layer this size (the pyramid of the low zooms, by tippecanoe), timed.
3. Items by bbox: 30 fixed-seed places per layer, each with a box holding its ~100 (and
   ~1,000) nearest features, asked 3 times (``limit=1000``); the median latency of the
   5M layer against the 100k layer's, goal <= 2x.
4. Tiles cold: a fresh ``landexplorer serve`` (default workers, empty tile cache), then up
   to 30 fixed-seed random tiles per zoom over the layer's whole extent, z0-z14, each
   asked once (gzip), one at a time: p95 latency (goal < 300 ms) and the largest tile on
   the wire and unpacked (goal < 500 KB) per zoom.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", "/work/shared/bench"))
sys.path.insert(0, str(SHARED))
sys.path.insert(0, str(ROOT / "bench"))
from common import DATA, QUICK, WORK, Noise, Server, log, run_timed  # noqa: E402
from servers import wait_ready  # noqa: E402

from landexplorer.tiles.grid import tiles_covering  # noqa: E402

PY = sys.executable
CAT = WORK / "landexplorer_national"
PORT = int(os.environ.get("BENCH_NATIONAL_PORT", "18093"))
POLYS_100K = DATA / "L" / "polys_100k.gpkg"
STORES = os.environ.get("BENCH_NATIONAL_STORES", "gpkg postgis").split()
N_PLACES = 10 if QUICK else 30
N_TILES = 10 if QUICK else 30
REPEAT = 3
SEED = 20261204
OUT = (WORK / "national-smoke.json") if QUICK else (ROOT / "bench" / "results" / "national.json")
COMMAND = "BENCH_ONLY=national bash bench/run.sh"
ZOOMS = range(15)
TILE_GOAL_S, TILE_GOAL_BYTES = 0.300, 500_000


def cli_cmd(data: Path, *args: str) -> list[str]:
    return [PY, "-m", "landexplorer.cli", "--data-dir", str(data), *args]


def env_for(url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LANDEXPLORER_DATABASE_URL"}
    if url:
        env["LANDEXPLORER_DATABASE_URL"] = url
    return env


def timed(data: Path, url: str | None, *args: str) -> dict:
    res = run_timed(cli_cmd(data, *args), env=env_for(url), cwd=ROOT, timeout=7200)
    if res["rc"] != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed: {res['stderr_tail']}")
    return res


def boxes(data: Path, url: str | None, layer: str, wanted: int) -> list[tuple[float, ...]]:
    """For N_PLACES fixed-seed features of the layer, the box around its centre that
    holds its ``wanted`` nearest feature centres (Chebyshev distance)."""
    import numpy as np

    from landexplorer.catalog import open_store
    from landexplorer.settings import Settings

    store = open_store(Settings(data_dir=data, database_url=url))
    try:
        centres = store.feature_centres(store.get(layer))
    finally:
        store.close()
    rng = random.Random(SEED + wanted + len(centres))
    out = []
    for i in rng.sample(range(len(centres)), N_PLACES):
        cx, cy = centres[i]
        d = np.maximum(np.abs(centres[:, 0] - cx), np.abs(centres[:, 1] - cy))
        half = float(np.partition(d, wanted)[wanted])
        out.append((cx - half, cy - half, cx + half, cy + half))
    return out


def items_cell(base: str, layer: str, bbs: list[tuple[float, ...]]) -> dict:
    import httpx

    lat, counts = [], []
    with httpx.Client(base_url=base, timeout=300, headers={"Accept-Encoding": "gzip"}) as c:
        for _ in range(REPEAT):
            for bb in bbs:
                t = time.perf_counter()
                r = c.get(f"/collections/{layer}/items",
                          params={"bbox": ",".join(f"{v:.6f}" for v in bb), "limit": 1000})  # fmt: skip
                lat.append(time.perf_counter() - t)
                r.raise_for_status()
                counts.append(r.json()["numberReturned"])
    return {"median_s": statistics.median(lat), "p95_s": pctl(lat, 95),
            "features_median": statistics.median(counts)}  # fmt: skip


def pctl(values: list[float], q: float) -> float:
    xs = sorted(values)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def pick_tiles(bbox: tuple[float, ...], z: int) -> list[tuple[int, int]]:
    xmin, ymin, xmax, ymax = tiles_covering(bbox, z)
    w, h = xmax - xmin + 1, ymax - ymin + 1
    picks = random.Random(SEED + z).sample(range(w * h), min(N_TILES, w * h))
    return [(xmin + i % w, ymin + i // w) for i in picks]


def tiles_cold(base: str, layer: str, bbox: tuple[float, ...]) -> dict[int, dict]:
    import httpx

    out = {}
    with httpx.Client(base_url=base, timeout=600, headers={"Accept-Encoding": "gzip"}) as c:
        for z in ZOOMS:
            lat, wire, raw, pyramid, codes = [], [], [], 0, {}
            for x, y in pick_tiles(bbox, z):
                t = time.perf_counter()
                r = c.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt")
                lat.append(time.perf_counter() - t)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
                wire.append(r.num_bytes_downloaded)
                raw.append(len(r.content))
                pyramid += "-pyramid-" in r.headers.get("etag", "")
            out[z] = {"tiles": len(lat), "median_s": statistics.median(lat),
                      "p95_s": pctl(lat, 95), "max_s": max(lat), "max_wire_bytes": max(wire),
                      "max_raw_bytes": max(raw), "from_pyramid": pyramid, "codes": codes}  # fmt: skip
            log(f"  z{z}: {len(lat)} tiles, p95 {out[z]['p95_s'] * 1000:.0f} ms, largest "
                f"{max(wire) / 1024:.0f} KiB on the wire ({max(raw) / 1024:.0f} KiB unpacked), "
                f"{pyramid} from the pyramid, {codes}")  # fmt: skip
    return out


def server(data: Path, url: str | None) -> Server:
    cmd = cli_cmd(data, "serve", "--port", str(PORT), "--log-level", "warning")
    return Server("landexplorer-national", cmd, env_for(url), PORT, data.parent / "serve.log")


def layer_bbox(base: str, layer: str) -> tuple[float, ...]:
    import httpx

    doc = httpx.get(f"{base}/collections/{layer}", timeout=30).json()
    return tuple(doc["extent"]["spatial"]["bbox"][0])


def one_store(store: str, url: str | None, national: Path) -> dict:
    data = CAT / store / "data"
    shutil.rmtree(data.parent, ignore_errors=True)
    data.mkdir(parents=True)
    common = ("--licence", "OGL-UK-3.0", "--attribution", "bench", "--no-pyramid")
    log(f"{store}: ingest of the 5M layer")
    big = timed(data, url, "ingest", str(national), "--id", "flood_5m", *common)
    log(f"{store}: 5M stored in {big['wall_s']:.0f} s, peak {big['peak_rss_mb']:.0f} MB")
    small = timed(data, url, "ingest", str(POLYS_100K), "--id", "flood_100k", *common)
    log(f"{store}: pyramid of the 5M layer")
    built = timed(data, url, "tiles", "build", "flood_5m")
    log(f"{store}: {built['stdout'].strip()} (peak {built['peak_rss_mb']:.0f} MB)")
    shutil.rmtree(data / "tilecache", ignore_errors=True)
    srv = server(data, url)
    base = f"http://127.0.0.1:{PORT}"
    srv.start()
    try:
        assert wait_ready(base, "/collections/flood_5m"), "the server did not start"
        bbox = layer_bbox(base, "flood_5m")
        log(f"{store}: tiles cold, z0-z14 over {bbox}")
        tiles = tiles_cold(base, "flood_5m", bbox)
        items = {}
        for wanted in (100, 1000):
            for layer in ("flood_5m", "flood_100k"):
                cell = items_cell(base, layer, boxes(data, url, layer, wanted))
                items[(layer, wanted)] = cell
                log(f"{store}: items ~{wanted} {layer}: median {cell['median_s'] * 1000:.1f} ms "
                    f"({cell['features_median']:.0f} features)")  # fmt: skip
    finally:
        srv.stop()
    return {"ingest_5m": big, "ingest_100k": small, "pyramid": built, "tiles": tiles,
            "items": items}  # fmt: skip


def main() -> None:
    from national_data import main as make_national
    from pgdb import fresh_database

    noise = Noise()
    t0 = time.perf_counter()
    national = make_national()
    made_s = time.perf_counter() - t0
    rows, ratios, notes = [], [], []
    with ExitStack() as stack:
        for store in STORES:
            url = fresh_database(stack, "le_national") if store == "postgis" else None
            got = one_store(store, url, national)
            name = "GeoPackage" if store == "gpkg" else "PostGIS"
            for key, what in (("ingest_5m", "ingest of 5,000,000 polygons (--no-pyramid)"),
                              ("ingest_100k", "ingest of the 100,000 polygons (--no-pyramid)"),
                              ("pyramid", "tiles build: the 5M layer's pyramid (tippecanoe)")):  # fmt: skip
                res = got[key]
                rows.append({"tool": f"landexplorer ({name})", "size": what,
                             "median_s": round(res["wall_s"], 1), "p95_s": None,
                             "peak_rss_mb": round(res["peak_rss_mb"] or 0),
                             "rate": None, "notes": res["stdout"].strip()[-300:]})  # fmt: skip
            for wanted in (100, 1000):
                big, small = got["items"][("flood_5m", wanted)], got["items"][("flood_100k", wanted)]
                for layer, cell in (("5M", big), ("100k", small)):
                    rows.append({"tool": f"landexplorer ({name})",
                                 "size": f"items by bbox, ~{wanted} features, {layer} layer",
                                 "median_s": round(cell["median_s"], 4),
                                 "p95_s": round(cell["p95_s"], 4), "peak_rss_mb": None,
                                 "rate": None,
                                 "notes": f"{N_PLACES} places x {REPEAT}; median "
                                 f"{cell['features_median']:.0f} features returned"})  # fmt: skip
                ratios.append({"what": f"{name}: items by bbox (~{wanted}), 5M / 100k layer "
                               "median latency", "value": round(big["median_s"] / small["median_s"], 2),
                               "goal": "<= 2"})  # fmt: skip
            worst_p95 = max(t["p95_s"] for t in got["tiles"].values())
            worst_bytes = max(t["max_wire_bytes"] for t in got["tiles"].values())
            for z, t in got["tiles"].items():
                rows.append({"tool": f"landexplorer ({name}, default workers)", "mode": "cold",
                             "size": f"tiles z{z} of the 5M layer",
                             "median_s": round(t["median_s"], 4), "p95_s": round(t["p95_s"], 4),
                             "peak_rss_mb": None, "rate": None,
                             "notes": f"{t['tiles']} tiles once each, c=1; largest "
                             f"{t['max_wire_bytes'] / 1024:.0f} KiB on the wire, "
                             f"{t['max_raw_bytes'] / 1024:.0f} KiB unpacked; "
                             f"{t['from_pyramid']} from the pyramid; answers {t['codes']}"})  # fmt: skip
            ratios.append({"what": f"{name}: slowest zoom's p95, tiles z0-z14 cold (s)",
                           "value": round(worst_p95, 3), "goal": f"< {TILE_GOAL_S}"})  # fmt: skip
            ratios.append({"what": f"{name}: largest tile z0-z14 on the wire (bytes, gzip)",
                           "value": worst_bytes, "goal": f"< {TILE_GOAL_BYTES}"})  # fmt: skip
            ratios.append({"what": f"{name}: largest tile z0-z14 unpacked (bytes)",
                           "value": max(t["max_raw_bytes"] for t in got["tiles"].values()),
                           "goal": "report"})  # fmt: skip
    notes.append(f"the 5M layer: {national} (bench/national_data.py; made or found in "
                 f"{made_s:.0f} s). One run; everything on the same 2 shared cores.")  # fmt: skip
    payload = {
        "workload": "national",
        "title": "National size: 5,000,000 polygons across England (ingest, pyramid, items, "
        "tiles z0-z14)",
        "command": COMMAND,
        "when": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "rows": rows,
        "ratios": ratios,
        "notes": " ".join(notes) + f" Noise: {json.dumps(noise.finish())}",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(payload, indent=1) + "\n")
    log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
