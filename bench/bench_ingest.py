#!/usr/bin/env python
"""Ingest benchmark (issue 2): a 1,000,000-point CSV into the catalogue with
``landexplorer ingest`` against ogr2ogr (Debian GDAL) and pyogrio's Arrow paths, then the
same command on a 10,000,000-point CSV and a GeoJSON of several hundred MB (memory must
stay flat).

Every run is a fresh process under ``/usr/bin/time -v`` (wall time, peak RSS, CPU); the
tools run in interleaved rounds (the first tool rotates each round). Every output is
checked: feature count, R-tree rows, and for landexplorer the catalogue entry and bbox
against the input. Writes bench/results/ingest.json.

    BENCH_ONLY=ingest make bench            # or: .venv/bin/python bench/bench_ingest.py
    BENCH_QUICK=1 ...                       # smoke run: 1 round, 2M points, 1-copy GeoJSON
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED") or ROOT.parent / "shared" / "bench")
if not SHARED.is_dir():
    SHARED = Path("/work/shared/bench")
sys.path.insert(0, str(SHARED))
from common import (  # noqa: E402  (the peer harness, imported by path)
    DATA,
    QUICK,
    VENV,
    WORK,
    Noise,
    env_info,
    log,
    rotate,
    run_timed,
    summarize,
)

CSV_1M = DATA / "L" / "points_1m.csv"
POLYS = DATA / "L" / "polys_100k.gpkg"
SCRATCH = WORK / "landexplorer_ingest"
LANDEXPLORER = Path(sys.executable).parent / "landexplorer"
PEER_PY = str(VENV / "bin" / "python")
ROUNDS = 1 if QUICK else int(os.environ.get("BENCH_INGEST_ROUNDS", "3"))
BIG_COPIES = 2 if QUICK else int(os.environ.get("BENCH_INGEST_BIG_COPIES", "10"))
GEOJSON_COPIES = 1 if QUICK else int(os.environ.get("BENCH_INGEST_GEOJSON_COPIES", "8"))
RESULT = ROOT / "bench" / "results" / "ingest.json"
COMMAND = "BENCH_ONLY=ingest make bench"
# which parts run (1m, big, geojson); the others are taken from the last results file
PARTS = os.environ.get("BENCH_INGEST_PARTS", "1m big geojson").split()
_ID = re.compile(r'"id": (\d+)')

# the catalogue must be the GeoPackage one, whatever the caller's environment says
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("LANDEXPLORER_")}


# ----- workload data (made once, kept in the scratch folder) ---------------------------------
def make_big_csv(copies: int) -> Path:
    """The 1M-point CSV repeated ``copies`` times, each copy with new ids and its points
    moved by up to +-0.0001 degrees (about 10 m), seeded, so no two rows are the same."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    out = SCRATCH / f"points_{copies}m.csv"
    if out.exists():
        return out
    started = time.perf_counter()
    table = pacsv.read_csv(CSV_1M)
    n = table.num_rows
    rng = np.random.default_rng(20261128)
    ids = table.column("id").to_numpy()
    lon = table.column("lon").to_numpy()
    lat = table.column("lat").to_numpy()
    part_path = out.with_suffix(".part")
    with pa.OSFile(str(part_path), "wb") as sink:
        for k in range(copies):
            jitter = rng.uniform(-1e-4, 1e-4, (n, 2))
            part = table
            for name, values in (
                ("id", ids + k * n),
                ("lon", np.round(lon + jitter[:, 0], 7)),
                ("lat", np.round(lat + jitter[:, 1], 7)),
            ):
                part = part.set_column(part.schema.get_field_index(name), name, pa.array(values))
            pacsv.write_csv(part, sink, pacsv.WriteOptions(include_header=k == 0))
    part_path.rename(out)
    log(
        f"wrote {out}: {copies * n:,} rows, {out.stat().st_size / 2**20:.0f} MiB "
        f"({time.perf_counter() - started:.1f}s)"
    )
    return out


def make_big_geojson(copies: int) -> Path:
    """The 100k flood polygons as one GeoJSON FeatureCollection, repeated ``copies`` times."""
    out = SCRATCH / f"polys_{copies}x100k_v2.geojson"
    if out.exists():
        return out
    one = SCRATCH / "polys_100k.geojson"
    if not one.exists():
        res = run_timed(
            ["ogr2ogr", "-f", "GeoJSON", str(one), str(POLYS), "flood", "-lco", "RFC7946=YES"],
            timeout=600,
        )
        if res["rc"] != 0:
            raise SystemExit(f"ogr2ogr could not write {one}: {res['stderr_tail']}")
    # ogr2ogr writes one feature per line between the header and the closing lines
    lines = one.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith('{ "type": "Feature"'))
    last = max(i for i, line in enumerate(lines) if line.startswith('{ "type": "Feature"'))
    features = [line.rstrip(",") for line in lines[first : last + 1]]
    part_path = out.with_suffix(".part")
    with part_path.open("w") as fh:
        fh.write("\n".join(lines[:first]) + "\n")
        for k in range(copies):
            for i, feature in enumerate(features):
                tail = "" if (k == copies - 1 and i == len(features) - 1) else ","
                # ids stay unique across copies: ogr2ogr takes the "id" property as the FID
                feature = _ID.sub(
                    lambda m, k=k: f'"id": {int(m.group(1)) + k * 100_000}', feature, count=1
                )
                fh.write(feature + tail + "\n")
        fh.write("\n".join(lines[last + 1 :]) + "\n")
    part_path.rename(out)
    log(f"wrote {out}: {copies * len(features):,} polygons, {out.stat().st_size / 2**20:.0f} MiB")
    return out


# ----- checks ----------------------------------------------------------------------------------
def check_peer_gpkg(path: Path, layer: str) -> tuple[int, int]:
    """Feature count and R-tree rows of a layer written by a peer."""
    con = sqlite3.connect(path)
    try:
        n = con.execute(f'SELECT count(*) FROM "{layer}"').fetchone()[0]
        ext = con.execute(
            "SELECT table_name, column_name FROM gpkg_extensions "
            "WHERE extension_name = 'gpkg_rtree_index'"
        ).fetchall()
        rt = con.execute(f'SELECT count(*) FROM "rtree_{ext[0][0]}_{ext[0][1]}"').fetchone()[0]
    finally:
        con.close()
    return n, rt


def check_catalogue(catdir: Path, layer_id: str) -> dict:
    """What landexplorer stored: the catalogue entry, table rows, R-tree rows and extent."""
    con = sqlite3.connect(catdir / "landexplorer.gpkg")
    try:
        entry = json.loads(
            con.execute(
                "SELECT entry FROM landexplorer_layers WHERE id = ?", (layer_id,)
            ).fetchone()[0]
        )
        table = entry["storage"]
        n = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        rt, x0, x1, y0, y1 = con.execute(
            f'SELECT count(*), min(minx), max(maxx), min(miny), max(maxy) FROM "rtree_{table}_geom"'
        ).fetchone()
        registered = con.execute(
            "SELECT count(*) FROM gpkg_extensions WHERE extension_name = 'gpkg_rtree_index' "
            "AND table_name = ?",
            (table,),
        ).fetchone()[0]
    finally:
        con.close()
    report = entry.get("report", {})
    dropped = sum(int(report.get(k, 0)) for k in ("dropped_empty", "dropped_no_coordinates"))
    return {
        "features": n,
        "rtree_rows": rt,
        "catalogue_count": entry["feature_count"],
        "rows_read": report.get("rows_read"),
        "dropped": dropped,
        "rtree_registered": registered,
        "rtree_bbox": [x0, y0, x1, y1],
        "entry_bbox": entry["bbox"],
        "checksum": entry["checksum"],
    }


def csv_extent(path: Path) -> tuple[int, list[float]]:
    """Rows and lon/lat extent of a points CSV, read with pyarrow (the reference)."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(include_columns=["lon", "lat"]))
    lon, lat = pc.min_max(t.column("lon")), pc.min_max(t.column("lat"))
    return t.num_rows, [
        lon["min"].as_py(),
        lat["min"].as_py(),
        lon["max"].as_py(),
        lat["max"].as_py(),
    ]


# ----- the tools ---------------------------------------------------------------------------
def landexplorer_tool(src: Path, tag: str, expected: int, extent: list[float] | None) -> dict:
    catdir = SCRATCH / f"catalogue_{tag}"

    def prepare() -> None:
        import shutil

        shutil.rmtree(catdir, ignore_errors=True)

    def check() -> dict:
        got = check_catalogue(catdir, "trees")
        # every row read is stored or counted as dropped; stored ones are all in the R-tree
        ok = (
            got["rows_read"] == expected
            and got["features"]
            == got["rtree_rows"]
            == got["catalogue_count"]
            == expected - got["dropped"]
            and got["rtree_registered"] == 1
        )
        if extent is not None:  # the points CSVs have no row to drop
            ok = ok and got["dropped"] == 0
        if extent is not None:
            # the R-tree stores float32 bounds rounded outwards: compare to 1e-5 degrees
            ok = ok and all(
                abs(a - b) < 1e-5 for a, b in zip(got["rtree_bbox"], extent, strict=True)
            )
            ok = ok and all(
                abs(a - b) < 1e-9 for a, b in zip(got["entry_bbox"], extent, strict=True)
            )
        if not ok:
            raise AssertionError(f"landexplorer output wrong: {got}, expected {expected} {extent}")
        return {
            "features": got["features"],
            "rtree_rows": got["rtree_rows"],
            "dropped": got["dropped"],
        }

    return {
        "cmd": [
            str(LANDEXPLORER),
            "--data-dir",
            str(catdir),
            "ingest", "--no-pyramid",
            str(src),
            "--id",
            "trees",
            "--licence",
            "OGL-UK-3.0",
        ],
        "prepare": prepare,
        "check": check,
        "notes": "landexplorer ingest CLI: validation, normalisation, GPKG + R-tree, catalogue "
        "entry with SHA-256",
    }


def peer_tools(src: Path, expected: int) -> dict[str, dict]:
    out = SCRATCH / "peers"
    out.mkdir(parents=True, exist_ok=True)

    def tool(target: Path, cmd: list[str], notes: str, layer: str = "trees") -> dict:
        def prepare() -> None:
            target.unlink(missing_ok=True)

        def check() -> dict:
            n, rt = check_peer_gpkg(target, layer)
            if not n == rt == expected:
                raise AssertionError(f"{target}: {n} rows, {rt} R-tree rows, expected {expected}")
            return {"features": n, "rtree_rows": rt}

        return {"cmd": cmd, "prepare": prepare, "check": check, "notes": notes}

    ogr = out / "ogr2ogr.gpkg"
    return {
        "ogr2ogr (Debian GDAL 3.6)": tool(
            ogr,
            [
                "ogr2ogr",
                "-f",
                "GPKG",
                str(ogr),
                str(src),
                "-oo",
                "X_POSSIBLE_NAMES=lon",
                "-oo",
                "Y_POSSIBLE_NAMES=lat",
                "-oo",
                "KEEP_GEOM_COLUMNS=NO",
                "-oo",
                "AUTODETECT_TYPE=YES",
                "-a_srs",
                "EPSG:4326",
                "-nln",
                "trees",
                "-lco",
                "SPATIAL_INDEX=YES",
            ],
            "same command as the peer harness (w1_ingest.py)",
        ),
        "pyogrio read_arrow + write_arrow (GDAL 3.12)": tool(
            out / "pyogrio_gdal.gpkg",
            [
                PEER_PY,
                str(SHARED / "ingest_py.py"),
                "pyogrio_gdal",
                str(src),
                str(out / "pyogrio_gdal.gpkg"),
            ],
            "pyogrio's bare Arrow path: GDAL CSV driver -> Arrow -> GPKG (ingest_py.py)",
        ),
        "pyogrio write_arrow (pyarrow.csv + shapely)": tool(
            out / "pyogrio_arrow.gpkg",
            [
                PEER_PY,
                str(SHARED / "ingest_py.py"),
                "pyogrio_arrow",
                str(src),
                str(out / "pyogrio_arrow.gpkg"),
            ],
            "pyarrow.csv.read_csv, shapely points -> WKB, pyogrio.write_arrow (ingest_py.py)",
        ),
    }


def geojson_peer(src: Path, expected: int) -> dict:
    target = SCRATCH / "peers" / "ogr2ogr_geojson.gpkg"

    def prepare() -> None:
        target.unlink(missing_ok=True)

    def check() -> dict:
        n, rt = check_peer_gpkg(target, "flood")
        if not n == rt == expected:
            raise AssertionError(f"{target}: {n} rows, {rt} R-tree rows, expected {expected}")
        return {"features": n, "rtree_rows": rt}

    return {
        "cmd": [
            "ogr2ogr",
            "-f",
            "GPKG",
            str(target),
            str(src),
            "-nln",
            "flood",
            "-nlt",
            "PROMOTE_TO_MULTI",
            "-lco",
            "SPATIAL_INDEX=YES",
        ],
        "prepare": prepare,
        "check": check,
        "notes": "ogr2ogr GeoJSON -> GPKG (no validity repair)",
    }


# ----- running -------------------------------------------------------------------------------
def run_rounds(tools: dict[str, dict], rounds: int) -> dict[str, list[dict]]:
    """Run every tool once per round, fresh process each, first tool rotating."""
    runs: dict[str, list[dict]] = {name: [] for name in tools}
    names = list(tools)
    for r in range(rounds):
        for name in rotate(names, r):
            t = tools[name]
            t["prepare"]()
            res = run_timed(t["cmd"], env=CLEAN_ENV, timeout=1800)
            if res["rc"] != 0:
                log(f"FAILED {name}: {res['stderr_tail'][-600:]}")
                runs[name].append({"error": res["stderr_tail"][-600:]})
                continue
            rec = {k: res[k] for k in ("wall_s", "peak_rss_mb", "user_s", "sys_s")}
            rec.update(t["check"]())
            runs[name].append(rec)
            log(f"round {r} {name}: {rec['wall_s']:.2f}s rss={rec['peak_rss_mb']:.0f}MB")
    return runs


def make_row(tool: str, size: str, n: int, recs: list[dict], notes: str) -> dict:
    ok = [x for x in recs if "wall_s" in x]
    if not ok:
        return {
            "tool": tool,
            "size": size,
            "median_s": None,
            "p95_s": None,
            "peak_rss_mb": None,
            "rate": None,
            "notes": "FAILED: " + recs[0]["error"][-200:],
        }
    w = summarize([x["wall_s"] for x in ok])
    rss = summarize([x["peak_rss_mb"] for x in ok])
    cpu = summarize([(x["user_s"] or 0) + (x["sys_s"] or 0) for x in ok])
    return {
        "tool": tool,
        "size": size,
        "median_s": round(w["median"], 3),
        "p95_s": round(w["p95"], 3),
        "peak_rss_mb": round(rss["max"], 1),
        "rate": f"{n / w['median']:,.0f} features/s",
        "notes": f"{notes}; {len(ok)} runs, wall min-max {w['min']:.2f}-{w['max']:.2f} s, "
        f"CPU (user+sys) median {cpu['median']:.2f} s, RSS median {rss['median']:.0f} MB "
        f"(column shows the max); output checked: {ok[0]['features']:,} rows, "
        f"{ok[0]['rtree_rows']:,} R-tree rows"
        + (
            f" ({ok[0]['dropped']:,} empty after repair, dropped and reported)"
            if ok[0].get("dropped")
            else ""
        ),
        "runs": len(ok),
        "cpu_s": round(cpu["median"], 3),
    }


def runs_for(part: str, tools: dict[str, dict], previous: dict) -> dict[str, list[dict]]:
    """Run a part now, or take its runs from the last results file (BENCH_INGEST_PARTS)."""
    if part in PARTS:
        return run_rounds(tools, ROUNDS)
    if part not in previous.get("runs", {}):
        raise SystemExit(f"part '{part}' was not run and no earlier result holds it")
    log(f"part '{part}': runs taken from {RESULT} ({previous.get('when')})")
    return previous["runs"][part]


def main() -> None:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    if not CSV_1M.exists():
        raise SystemExit(f"{CSV_1M} is missing: run bench/run.sh (it makes the peer data).")
    noise = Noise()
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    rows: list[dict] = []
    n1, extent1 = csv_extent(CSV_1M)

    # 1. the goal workload: 1M points, landexplorer and the peers interleaved
    tools = {"landexplorer ingest": landexplorer_tool(CSV_1M, "1m", n1, extent1)}
    tools.update(peer_tools(CSV_1M, n1))
    previous = json.loads(RESULT.read_text()) if RESULT.exists() else {}
    runs_1m = runs_for("1m", tools, previous)
    for name, recs in runs_1m.items():
        rows.append(make_row(name, "1M points CSV (70 MB)", n1, recs, tools[name]["notes"]))

    # 2. memory with input size: the same command on a CSV 2x (quick) or 10x as large
    big = make_big_csv(BIG_COPIES)
    nb, extent_b = csv_extent(big)
    big_tools = {"landexplorer ingest": landexplorer_tool(big, "big", nb, extent_b)}
    runs_big = runs_for("big", big_tools, previous)
    size_b = f"{nb / 1e6:.0f}M points CSV ({big.stat().st_size / 2**20:.0f} MB)"
    rows.append(
        make_row(
            "landexplorer ingest",
            size_b,
            nb,
            runs_big["landexplorer ingest"],
            "same command, larger input",
        )
    )

    # 3. a GeoJSON of several hundred MB (polygons: validity checks, Multi promotion)
    gj = make_big_geojson(GEOJSON_COPIES)
    ng = 100_000 * GEOJSON_COPIES
    gj_tools = {
        "landexplorer ingest": {**landexplorer_tool(gj, "geojson", ng, None)},
        "ogr2ogr (Debian GDAL 3.6)": geojson_peer(gj, ng),
    }
    runs_gj = runs_for("geojson", gj_tools, previous)
    size_g = f"{ng / 1e3:.0f}k polygons GeoJSON ({gj.stat().st_size / 2**20:.0f} MB)"
    for name, recs in runs_gj.items():
        rows.append(make_row(name, size_g, ng, recs, gj_tools[name]["notes"]))

    def median(recs: list[dict], key: str = "wall_s") -> float | None:
        vals = [x[key] for x in recs if key in x]
        return summarize(vals)["median"] if vals else None

    def cpu(recs: list[dict]) -> float | None:
        vals = [(x["user_s"] or 0) + (x["sys_s"] or 0) for x in recs if "user_s" in x]
        return summarize(vals)["median"] if vals else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    le = runs_1m["landexplorer ingest"]
    le_wall = median(le)
    le_rss_max = max((x["peak_rss_mb"] for x in le if "peak_rss_mb" in x), default=None)
    big_rss_max = max(
        (x["peak_rss_mb"] for x in runs_big["landexplorer ingest"] if "peak_rss_mb" in x),
        default=None,
    )
    gj_rss_max = max(
        (x["peak_rss_mb"] for x in runs_gj["landexplorer ingest"] if "peak_rss_mb" in x),
        default=None,
    )
    ratios = [
        {
            "what": "landexplorer / ogr2ogr wall time (1M points)",
            "value": ratio(le_wall, median(runs_1m["ogr2ogr (Debian GDAL 3.6)"])),
            "goal": "<= 0.35",
        },
        {
            "what": "landexplorer / pyogrio read_arrow+write_arrow wall time (1M points)",
            "value": ratio(
                le_wall, median(runs_1m["pyogrio read_arrow + write_arrow (GDAL 3.12)"])
            ),
            "goal": "<= 1.0",
        },
        {
            "what": "landexplorer / pyogrio write_arrow (pyarrow.csv) wall time (1M points)",
            "value": ratio(le_wall, median(runs_1m["pyogrio write_arrow (pyarrow.csv + shapely)"])),
            "goal": "<= 1.0",
        },
        {
            "what": "landexplorer / ogr2ogr CPU time, user+sys (1M points; steadier under load)",
            "value": ratio(cpu(le), cpu(runs_1m["ogr2ogr (Debian GDAL 3.6)"])),
            "goal": "report",
        },
        {
            "what": "landexplorer / pyogrio read_arrow+write_arrow CPU time (1M points)",
            "value": ratio(cpu(le), cpu(runs_1m["pyogrio read_arrow + write_arrow (GDAL 3.12)"])),
            "goal": "report",
        },
        {
            "what": "landexplorer peak RSS, 1M points (MB, max of runs)",
            "value": le_rss_max,
            "goal": "< 300",
        },
        {
            "what": f"landexplorer peak RSS, {size_b} (MB, max of runs)",
            "value": big_rss_max,
            "goal": "< 300",
        },
        {
            "what": f"landexplorer peak RSS {size_b} / 1M points",
            "value": ratio(big_rss_max, le_rss_max),
            "goal": "<= 1.15 (flat)",
        },
        {
            "what": f"landexplorer peak RSS, {size_g} (MB, max of runs)",
            "value": gj_rss_max,
            "goal": "< 300",
        },
    ]
    n = noise.finish()
    result = {
        "workload": "ingest", "--no-pyramid",
        "title": "Ingest: CSV and GeoJSON into the catalogue (fresh process per run)",
        "command": COMMAND + (" (BENCH_QUICK=1)" if QUICK else ""),
        "when": started,
        "rows": rows,
        "ratios": ratios,
        "notes": (
            f"{ROUNDS} interleaved round(s); wall time and peak RSS from /usr/bin/time -v; "
            f"noise: CPU probe {n['probe_before_ms']} ms -> {n['probe_after_ms']} ms, load "
            f"average {n['loadavg_before'][0]} -> {n['loadavg_after'][0]}, steal "
            f"{n['steal_pct']} %. The machine is shared with other engineers' runs: quote "
            "medians and compare tools within the run, not across runs."
            + (
                ""
                if set(PARTS) >= {"1m", "big", "geojson"}
                else f" Parts run at {started}: {', '.join(PARTS)}; the others are from the "
                f"run of {previous.get('when')} (noise then: {previous.get('noise_text', '-')})."
            )
        ),
        "noise_text": (
            f"CPU probe {n['probe_before_ms']} -> {n['probe_after_ms']} ms, load average "
            f"{n['loadavg_before'][0]} -> {n['loadavg_after'][0]}"
        ),
        "env": env_info(),
        "runs": {"1m": runs_1m, "big": runs_big, "geojson": runs_gj},
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=1, default=str) + "\n")
    log(f"wrote {RESULT}")
    for r in ratios:
        log(f"{r['what']}: {r['value']} (goal {r['goal']})")


if __name__ == "__main__":
    main()
