#!/usr/bin/env python
"""Join: count 1,000,000 points in each of 100,000 polygons (intersects), landexplorer
against geopandas.sjoin, a bulk shapely STRtree join and PostGIS, in the same run.

Data: the harness's L workload (/tmp/bench-data/L/points_1m.csv, polys_100k.gpkg), loaded
once into a landexplorer GeoPackage catalogue (ingest not timed). Every run is a fresh
process under /usr/bin/time -v (peak RSS), rounds interleaved with the first tool moving on
by one each round. Every tool is timed end to end, from its own store to the counts: the
Python peers read the CSV and the GeoPackage (and make frames, for geopandas), then join;
PostGIS runs the query on its tables; landexplorer reads both layers from its catalogue,
then joins. The reading and the join alone are in each row's notes. landexplorer runs
`landexplorer.analysis.counts.count_points_arrays` on the layers read from its catalogue.

Run: BENCH_ONLY=join bash bench/run.sh   (starts the harness's PostGIS for the SQL peer)
"""

from __future__ import annotations

import statistics

from analysis_common import (
    DATA, PEER_PY, QUICK, SHARED, WORK, Noise, ingest, log, ratio, rotate, row, run_timed,
    worker, write,
)

ROUNDS = 1 if QUICK else 3
CATALOGUE = WORK / "landexplorer_join"
JOIN_PY = str(SHARED / "join_py.py")
PG_DSN = "host=127.0.0.1 port=55432 user=postgres dbname=bench"
SQL_JOIN = ("SELECT f.id, count(*) FROM flood f JOIN trees t ON ST_Intersects(f.geom, t.geom) "
            "GROUP BY f.id")
PEERS = {
    "geopandas.sjoin (+groupby count)": [PEER_PY, JOIN_PY, "sjoin"],
    "shapely STRtree(points).query(polygons)": [PEER_PY, JOIN_PY, "strtree_points"],
    "PostGIS JOIN + GROUP BY (GiST, 2 workers)": [PEER_PY, JOIN_PY, "postgis", PG_DSN, SQL_JOIN],
}
LE = "landexplorer count_points (STRtree on the points, bulk query by polygons)"


def end_to_end(rec: dict) -> float:
    """Seconds from the tool's own store to the answer: reading (and framing) plus the
    join; PostGIS's query reads its tables itself."""
    return (rec.get("load_s") or 0) + (rec.get("frame_s") or 0) + rec["join_s"]


def main() -> None:
    ingest(CATALOGUE, DATA / "L" / "polys_100k.gpkg", "polys")
    ingest(CATALOGUE, DATA / "L" / "points_1m.csv", "points")
    noise = Noise()
    runs: dict[str, list[dict]] = {name: [] for name in [LE, *PEERS]}
    failed: dict[str, str] = {}
    for r in range(ROUNDS):
        for name in rotate(list(runs), r):
            if name in failed:
                continue
            try:
                if name == LE:
                    rec = worker(["join", str(CATALOGUE)])
                else:
                    res = run_timed(PEERS[name], timeout=900)
                    if res["rc"] != 0:
                        raise RuntimeError(res["stderr_tail"][-300:])
                    import json

                    rec = json.loads(res["stdout"].strip().splitlines()[-1])
                    rec["peak_rss_mb"] = res["peak_rss_mb"]
            except Exception as exc:  # noqa: BLE001 - one failing peer must not stop the rest
                failed[name] = str(exc)[-300:]
                log(f"FAILED {name}: {failed[name]}")
                continue
            runs[name].append(rec)
            log(f"r{r} {name}: join {rec['join_s']:.3f}s pairs {rec['pairs']}")
    rows = []
    med: dict[str, float] = {}
    for name, recs in runs.items():
        if not recs:
            rows.append({"tool": name, "median_s": None, "p95_s": None, "peak_rss_mb": None,
                         "rate": None, "notes": f"FAILED: {failed.get(name, '')}"})
            continue
        # end to end: from the tool's store (catalogue, files, tables) to the counts
        secs = [end_to_end(x) for x in recs]
        med[name] = statistics.median(secs)
        load = statistics.median([(x.get("load_s") or 0) + (x.get("frame_s") or 0) for x in recs])
        notes = f"{recs[0]['pairs']} pairs, {recs[0]['polys_hit']} polygons hit"
        join_only = statistics.median([x["join_s"] for x in recs])
        if load:
            notes += f"; of which reading {load:.2f}s and the join {join_only:.2f}s"
        if name == LE:
            notes += " (reading = both layers from the GeoPackage catalogue)"
        elif "PostGIS" not in name:
            notes += " (reading = the CSV and the GeoPackage files, into frames where used)"
        if "PostGIS" in name:
            notes += "; prebuilt GiST; RSS is the client's"
        rows.append(row(name, secs, rss=[x["peak_rss_mb"] for x in recs],
                        rate=f"{1e6 / med[name]:,.0f} points/s", notes=notes))
    pairs = {name: {x["pairs"] for x in recs} for name, recs in runs.items() if recs}
    agree = len({p for s in pairs.values() for p in s}) == 1
    ratios = [
        ratio("landexplorer / geopandas.sjoin, end to end (store to counts)",
              med.get(LE, 0) / med["geopandas.sjoin (+groupby count)"]
              if "geopandas.sjoin (+groupby count)" in med and LE in med else None, "<= 0.2"),
        ratio("landexplorer / PostGIS JOIN, end to end (store to counts)",
              med.get(LE, 0) / med["PostGIS JOIN + GROUP BY (GiST, 2 workers)"]
              if "PostGIS JOIN + GROUP BY (GiST, 2 workers)" in med and LE in med else None,
              "<= 0.5"),
    ]
    write(
        "join",
        "Join: 1,000,000 points x 100,000 polygons, intersects, count per polygon",
        "BENCH_ONLY=join bash bench/run.sh",
        rows,
        ratios,
        f"{ROUNDS} interleaved rounds, fresh process per run (/usr/bin/time -v). All tools "
        f"{'agree' if agree else 'DISAGREE'} on the pairs ({sorted({p for s in pairs.values() for p in s})}). "
        "The machine is shared: read differences under ~10-15% as noise; see the noise probe. "
        "landexplorer's count_points uses the same algorithm as the 'STRtree(points)' peer "
        "(tree on the points, one bulk query by the prepared polygons), on points read from "
        "its catalogue (WKB) rather than made from CSV coordinates; the two rows differ by "
        "noise only.",
        noise=noise.finish(),
    )


if __name__ == "__main__":
    main()
