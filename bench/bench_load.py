#!/usr/bin/env python
"""Load: a public server under ordinary load, first alone, then with attacks mixed in.

A real `landexplorer serve` with its default settings (one worker, every public limit at
its default) on the Trafford demo catalogue, plus the harness's 100k-polygon layer
(/tmp/bench-data/L/polys_100k.gpkg, as `polys_100k`) when it has been made. 50 clients in
closed loop for 60 s (BENCH_LOAD_DURATION) mix:
  - items pages (limit 100 at a random offset, or a random bbox) of the vector layers,
  - vector tiles at random z13-z18 addresses inside Trafford (cold: almost never repeated),
  - raster PNG tiles of the elevation layer at random z11-z15 addresses,
  - analysis calls: a report of a random ~300 m square, allotments x flood_risk compare,
    zonal statistics of allotments over elevation.
Phase 1 runs that alone; phase 2, on a freshly started server, runs it again with 5 attack
requests per second (BENCH_LOAD_ATTACKS_PER_S) from the attack battery (tests/attack):
deep CQL2, 5,000-square reports, a 100 km self-compare of street trees, endless chunked
bodies, a 2 GB Content-Length, a 4 MB header, NaN coordinates, odd addresses, 900-vertex
S_INTERSECTS filters. The ordinary clients run in a process of their own (the attackers
do not share its interpreter); the server's RSS (with children) is sampled every 0.1 s.

Reported per phase: requests/s, p50, p95, p99 of ordinary requests, their errors (any
answer but 200/204, or no answer), server RSS max, and the spread over the run (requests/s
and p99 of each 5 s window). Goals: 0 errors among ordinary requests; their p99 with
attacks at most 2x without; RSS at most 1 GB throughout.

Run: BENCH_ONLY=load bash bench/run.sh, or .venv/bin/python bench/bench_load.py.
Writes bench/results/load.json; a short run (BENCH_QUICK=1, or a duration under 60 s) is a
smoke run and writes $BENCH_DATA/work/load-smoke.json instead, leaving the results alone.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", "/work/shared/bench"))
sys.path.insert(0, str(SHARED))
sys.path.insert(0, str(ROOT))
from common import DATA, QUICK, WORK, Noise, Server, log, pct  # noqa: E402

PY = sys.executable
PORT = int(os.environ.get("BENCH_LE_LOAD_PORT", "18066"))
DURATION = int(os.environ.get("BENCH_LOAD_DURATION", "5" if QUICK else "60"))
CLIENTS = int(os.environ.get("BENCH_LOAD_CLIENTS", "50"))
ATTACKS_PER_S = float(os.environ.get("BENCH_LOAD_ATTACKS_PER_S", "5"))
WINDOW_S = 5
SMOKE = QUICK or DURATION < 60
POLYS = DATA / "L" / "polys_100k.gpkg"
REAL = Path(os.environ.get("BENCH_REAL", str(SHARED.parent / "data" / "real")))
CAT = WORK / "landexplorer_load"
OUT = WORK / "load-smoke.json" if SMOKE else ROOT / "bench" / "results" / "load.json"
COMMAND = "BENCH_ONLY=load bash bench/run.sh"
#: Trafford, lon/lat: where the ordinary clients look.
WEST, SOUTH, EAST, NORTH = -2.48, 53.36, -2.25, 53.48
VECTOR = ["flood_risk", "street_trees", "woodland", "greenspace", "allotments"]


# ---- the catalogue and the server -----------------------------------------------------------
def cli(*args: str) -> None:
    env = dict(os.environ, LANDEXPLORER_DEMO_MIRROR=str(REAL))
    env.pop("LANDEXPLORER_DATABASE_URL", None)
    cmd = [PY, "-m", "landexplorer.cli", "--data-dir", str(CAT / "data"), *args]
    subprocess.run(cmd, env=env, check=True, cwd=ROOT, capture_output=True, text=True)


def prepare() -> list[str]:
    """The demo catalogue (loaded once), plus polys_100k when the harness has made it."""
    layers = list(VECTOR)
    if not (CAT / "data" / "landexplorer.gpkg").exists():
        log("loading the demo catalogue")
        CAT.mkdir(parents=True, exist_ok=True)
        cli("demo")
    if POLYS.exists():
        cli("ingest", "--no-pyramid", str(POLYS), "--id", "polys_100k", "--replace", "--licence", "OGL-UK-3.0")
        layers.append("polys_100k")
    return layers


def server() -> Server:
    d = CAT / "serve"
    d.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDEXPLORER_")}
    env["LANDEXPLORER_DATA_DIR"] = str(CAT / "data")
    cmd = [PY, "-m", "landexplorer.cli", "--data-dir", str(CAT / "data"), "serve",
           "--port", str(PORT), "--log-level", "warning"]  # fmt: skip
    return Server("landexplorer", cmd, env, PORT, d / "server.log")


def wait_ready(base: str, timeout: float = 60) -> None:
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(base + "/conformance", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not answer /conformance")


class Rss(threading.Thread):
    """The server's RSS (process and children) every 0.1 s: peak and per-window peaks."""

    def __init__(self, srv: Server) -> None:
        super().__init__(daemon=True)
        self.srv, self.samples = srv, []  # (seconds since start, MB)
        self._halt = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self._halt.is_set():
            mb = self.srv.rss_mb()
            if mb:
                self.samples.append((time.monotonic() - self.t0, mb))
            self._halt.wait(0.1)

    def stop(self) -> list[tuple[float, float]]:
        self._halt.set()
        self.join(2)
        return self.samples


# ---- the ordinary clients (in a process of their own) ---------------------------------------
def _tile(z: int) -> tuple[int, int]:
    lon, lat = random.uniform(WEST, EAST), random.uniform(SOUTH, NORTH)
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def _square(size: float = 0.004) -> dict[str, Any]:
    x, y = random.uniform(WEST, EAST - size), random.uniform(SOUTH, NORTH - size)
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def ordinary_request(layers: list[str]) -> tuple[str, str, str, Any]:
    """(kind, method, path, json body) of one ordinary request, drawn at random."""
    r = random.random()
    if r < 0.35:
        layer = random.choice(layers)
        if random.random() < 0.5:
            offset = random.randint(0, 400)
            return "items", "GET", f"/collections/{layer}/items?limit=100&offset={offset}", None
        x, y = random.uniform(WEST, EAST - 0.02), random.uniform(SOUTH, NORTH - 0.02)
        bbox = f"{x:.5f},{y:.5f},{x + 0.02:.5f},{y + 0.02:.5f}"
        return "items", "GET", f"/collections/{layer}/items?limit=100&bbox={bbox}", None
    if r < 0.65:
        z = random.randint(13, 18)
        x, y = _tile(z)
        return "vector tile", "GET", f"/tiles/{random.choice(layers)}/{z}/{x}/{y}.mvt", None
    if r < 0.85:
        z = random.randint(11, 15)
        x, y = _tile(z)
        return "raster tile", "GET", f"/tiles/elevation/{z}/{x}/{y}.png", None
    a = random.random()
    if a < 0.6:
        body = {"area": _square(), "layers": ["allotments", "flood_risk", "street_trees"]}
        return "analysis", "POST", "/analysis/report", body
    if a < 0.8:
        body = {"left": "allotments", "right": "flood_risk", "by": "prob_4band", "matches": False}
        return "analysis", "POST", "/analysis/compare", body
    body = {"layer": "allotments", "raster": "elevation", "stats": ["mean", "max"]}
    return "analysis", "POST", "/analysis/zonal", body


async def _clients(base: str, layers: list[str], clients: int, duration: float) -> list[tuple]:
    import httpx

    out: list[tuple] = []  # (start offset s, latency s, kind, status or error name)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        t0 = time.monotonic()

        async def one() -> None:
            while (start := time.monotonic()) - t0 < duration:
                kind, method, path, body = ordinary_request(layers)
                try:
                    r = await client.request(method, path, json=body)
                    await r.aread()
                    status: Any = r.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                out.append((start - t0, time.monotonic() - start, kind, status, path))

        await asyncio.gather(*(one() for _ in range(clients)))
    return out


def _client_process(base: str, layers: list[str], clients: int, duration: float, q: Any) -> None:
    random.seed(os.getpid())
    q.put(asyncio.run(_clients(base, layers, clients, duration)))


# ---- the attackers (threads in this process) ------------------------------------------------
def attack_battery() -> list[tuple[str, Any]]:
    """The battery's cases as (name, callable(base) -> status or None)."""
    import httpx

    from tests.attack import raw

    square = [[-2.35, 53.42], [-2.349, 53.42], [-2.349, 53.421], [-2.35, 53.421], [-2.35, 53.42]]
    parens = quote("(" * 2000 + "name = 'x'" + ")" * 2000, safe="()'=")
    nots = quote("NOT " * 4000 + "name = 'x'", safe="'=").replace("%20", "+")
    squares = json.dumps({"area": {"type": "MultiPolygon", "coordinates": [[square]] * 5000}})
    compare = {"left": "street_trees", "right": "street_trees",
               "predicate": "within-distance", "distance": 100_000}  # fmt: skip
    nan = (
        '{"area": {"type": "Polygon", "coordinates": ['
        + json.dumps(square).replace("53.421", "NaN", 1)
        + "]}}"
    )
    ring = []
    for i in range(901):
        a = 2 * math.pi * i / 900
        r = 4000 * (1.0 if i % 2 else 0.6)
        ring.append(f"{round(378000 + r * math.cos(a))} {round(394000 + r * math.sin(a))}")
    ring[-1] = ring[0]
    s_int = quote(f"S_INTERSECTS(geometry,POLYGON(({','.join(ring)})))", safe=",()").replace(
        "%20", "+"
    )
    big_header = b"GET /conformance HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 << 20) + b"\r\n\r\n"

    def get(path: str) -> Any:
        return lambda base: httpx.get(base + path, timeout=60).status_code

    def post(path: str, content: str) -> Any:
        headers = {"Content-Type": "application/json"}
        return lambda base: (
            httpx.post(base + path, content=content, headers=headers, timeout=60).status_code
        )

    def chunked(base: str) -> Any:
        body = raw.repeat(b"a" * 65536, 2 << 30)
        r = raw.stream(base, "POST", "/maps", {"Content-Type": "application/json"}, body,
                       stop_after=16 << 20, timeout=20)  # fmt: skip
        return r.status

    def declared(base: str) -> Any:
        headers = {"Content-Type": "application/json", "Content-Length": str(2 << 30)}
        return raw.stream(base, "POST", "/analysis/report", headers, iter([b"{"]),
                          chunked=False, timeout=20).status  # fmt: skip

    return [
        ("cql2 2,000 parentheses", get(f"/collections/allotments/items?filter={parens}")),
        ("cql2 4,000 NOTs", get(f"/collections/allotments/items?filter={nots}")),
        ("report 5,000 squares", post("/analysis/report", squares)),
        ("compare street_trees x itself 100 km", post("/analysis/compare", json.dumps(compare))),
        ("2 GB chunked to /maps", chunked),
        ("Content-Length 2 GB", declared),
        ("4 MB header", lambda base: raw.send(base, big_header, timeout=20).status),
        ("NaN in a report polygon", post("/analysis/report", nan)),
        ("items/%C2%B2", get("/collections/allotments/items/%C2%B2")),
        ("/web/a%00.js", get("/web/a%00.js")),
        ("900-vertex S_INTERSECTS", get(
            "/collections/street_trees/items?limit=1000&filter-crs="
            f"http://www.opengis.net/def/crs/EPSG/0/27700&filter={s_int}"
        )),
    ]  # fmt: skip


def attack(base: str, duration: float, rate: float) -> Counter:
    """``rate`` attacks a second, each started on time (up to 32 in flight), round robin."""
    cases = attack_battery()
    seen: Counter = Counter()

    def run(name: str, fn: Any) -> None:
        try:
            status = fn(base)
        except Exception as exc:  # an attack the server cut short
            status = type(exc).__name__
        seen[f"{name}: {status}"] += 1

    t0 = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        i = 0
        while time.monotonic() - t0 < duration:
            name, fn = cases[i % len(cases)]
            pool.submit(run, name, fn)
            i += 1
            time.sleep(max(0.0, i / rate - (time.monotonic() - t0)))
    return seen


def warm_up(base: str, layers: list[str]) -> None:
    """One request of every route before the clock starts (imports, first connections)."""
    import httpx

    random.seed(1)
    seen: set[str] = set()
    with httpx.Client(base_url=base, timeout=120) as client:
        for _ in range(200):
            _, method, path, body = ordinary_request(layers)
            route = path.split("?")[0].rsplit("/", 3)[0]
            if route not in seen:
                seen.add(route)
                client.request(method, path, json=body)


# ---- one phase ----------------------------------------------------------------------------
def phase(layers: list[str], with_attacks: bool) -> dict[str, Any]:
    srv = server()
    srv.start()
    base = f"http://127.0.0.1:{PORT}"
    try:
        wait_ready(base)
        warm_up(base, layers)
        rss = Rss(srv)
        rss.start()
        q: Any = mp.get_context("spawn").Queue()
        proc = mp.get_context("spawn").Process(
            target=_client_process, args=(base, layers, CLIENTS, DURATION, q)
        )
        proc.start()
        attacks = attack(base, DURATION, ATTACKS_PER_S) if with_attacks else Counter()
        results = q.get(timeout=DURATION + 180)
        proc.join(30)
        samples = rss.stop()
    finally:
        srv.stop()
    return summarise(results, samples, attacks)


def summarise(results: list[tuple], samples: list[tuple], attacks: Counter) -> dict[str, Any]:
    lat = [r[1] for r in results]
    errors = [r for r in results if r[3] not in (200, 204)]
    windows: dict[int, list[float]] = {}
    for start, seconds, *_ in results:
        windows.setdefault(int(start // WINDOW_S), []).append(seconds)
    full = [w for k, w in sorted(windows.items()) if (k + 1) * WINDOW_S <= DURATION] or list(
        windows.values()
    )
    rates = [len(w) / WINDOW_S for w in full]
    p99s = [pct(w, 99) for w in full]
    kinds: dict[str, list[float]] = {}
    for _, seconds, kind, *_ in results:
        kinds.setdefault(kind, []).append(seconds)
    return {
        "requests": len(results),
        "rate": len(results) / DURATION,
        "p50": statistics.median(lat) if lat else None,
        "p95": pct(lat, 95),
        "p99": pct(lat, 99),
        "errors": len(errors),
        "error_examples": Counter(f"{e[3]} {e[4][:80]}" for e in errors).most_common(5),
        "rss_max": max((mb for _, mb in samples), default=None),
        "rss_samples": len(samples),
        "rate_spread": (min(rates), max(rates)) if rates else None,
        "p99_spread": (min(p99s), max(p99s)) if p99s else None,
        "by_kind": {k: (len(v), pct(v, 50), pct(v, 99)) for k, v in sorted(kinds.items())},
        "attacks": dict(attacks),
    }


def row(name: str, s: dict[str, Any]) -> dict[str, Any]:
    kinds = "; ".join(
        f"{k} n={n:,} p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms"
        for k, (n, p50, p99) in s["by_kind"].items()
    )
    lo, hi = s["rate_spread"] or (0, 0)
    p_lo, p_hi = s["p99_spread"] or (0, 0)
    notes = (
        f"{CLIENTS} clients, {DURATION} s, {s['requests']:,} ordinary requests, errors "
        f"{s['errors']}; req/s per {WINDOW_S} s window {lo:,.0f}-{hi:,.0f}, p99 per window "
        f"{p_lo * 1000:.0f}-{p_hi * 1000:.0f} ms; RSS sampled {s['rss_samples']}x; {kinds}"
    )
    if s["error_examples"]:
        notes += f"; errors seen: {s['error_examples']}"
    if s["attacks"]:
        total = sum(s["attacks"].values())
        notes += f"; {total} attacks, answers: " + ", ".join(
            f"{k} x{v}" for k, v in sorted(s["attacks"].items())
        )
    return {
        "tool": name,
        "median_s": s["p50"],
        "p95_s": s["p95"],
        "p99_s": s["p99"],
        "peak_rss_mb": round(s["rss_max"], 1) if s["rss_max"] else None,
        "rate": f"{s['rate']:,.1f} req/s",
        "notes": notes,
    }


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    layers = prepare()
    noise = Noise()
    log(f"load: {CLIENTS} clients x {DURATION} s, alone (layers {layers})")
    alone = phase(layers, with_attacks=False)
    log(f"alone: {alone['rate']:.1f} req/s p99 {alone['p99']:.3f} s errors {alone['errors']}")
    log(f"load: again with {ATTACKS_PER_S:g} attacks/s")
    attacked = phase(layers, with_attacks=True)
    log(f"attacked: {attacked['rate']:.1f} req/s p99 {attacked['p99']:.3f} s "
        f"errors {attacked['errors']}")  # fmt: skip
    ratio = attacked["p99"] / alone["p99"] if alone["p99"] else None
    rss_max = max(x for x in (alone["rss_max"], attacked["rss_max"]) if x is not None)
    payload = {
        "workload": "load",
        "title": "Load: ordinary requests alone and with attacks mixed in (public defaults)",
        "command": COMMAND + (f"  # smoke run: BENCH_LOAD_DURATION={DURATION}" if SMOKE else ""),
        "when": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "rows": [
            row("landexplorer serve (defaults), ordinary load alone", alone),
            row(f"landexplorer serve (defaults), with {ATTACKS_PER_S:g} attacks/s", attacked),
        ],
        "ratios": [
            {
                "what": "errors among ordinary requests, alone",
                "value": alone["errors"],
                "goal": "== 0",
            },
            {
                "what": "errors among ordinary requests, with attacks",
                "value": attacked["errors"],
                "goal": "== 0",
            },
            {"what": "ordinary p99 with attacks / without", "value": ratio, "goal": "<= 2"},
            {"what": "server RSS max (MB), both phases", "value": rss_max, "goal": "<= 1024"},
        ],
        "notes": (
            "One `landexplorer serve` with its default settings (1 worker) on the Trafford "
            "demo catalogue"
            + (" + polys_100k" if "polys_100k" in layers else "")
            + "; load generator (httpx, asyncio) and attackers on the same 2-core machine. "
            f"A new server for each phase. Noise: {json.dumps(noise.finish())}"
        ),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(payload, indent=1) + "\n")
    log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
