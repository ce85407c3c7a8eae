"""Helpers shared by the analysis benchmarks (bench_join/overlay/zonal/report): paths,
the catalogues they build once, result rows and the results file in the convention's shape.

Timing statistics, the noise probe and /usr/bin/time parsing come from the shared peer
harness (common.py), imported by path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", "/work/shared/bench"))
sys.path.insert(0, str(SHARED))
from common import DATA, QUICK, REAL, VENV, WORK, Noise, log, rotate, run_timed, summarize  # noqa: E402,F401

PY = sys.executable  # the project venv
PEER_PY = str(VENV / "bin" / "python")  # the harness venv (rasterstats, exactextract, psycopg)
WORKER = str(ROOT / "bench" / "analysis_worker.py")
RESULTS = ROOT / "bench" / "results"


def ingest(catalogue: Path, path: Path, layer_id: str, *extra: str) -> None:
    """Load a file into a benchmark catalogue once (kept between runs)."""
    from landexplorer.catalog import open_store
    from landexplorer.settings import Settings

    settings = Settings(data_dir=catalogue)
    store = open_store(settings)
    try:
        if store.exists(layer_id):
            return
    finally:
        store.close()
    log(f"ingesting {path.name} as {layer_id} into {catalogue}")
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "landexplorer"), "--data-dir", str(catalogue), "ingest", "--no-pyramid",
         str(path), "--id", layer_id, "--licence", "OGL-UK-3.0", *extra],
        check=True, stdout=subprocess.DEVNULL,
    )


def row(tool: str, seconds: list[float], *, rss: list[float] | None = None,
        rate: str | None = None, notes: str = "") -> dict[str, Any]:
    s = summarize(seconds)
    peak = [r for r in (rss or []) if r is not None]
    return {
        "tool": tool,
        "median_s": round(s["median"], 6) if s.get("n") else None,
        "p95_s": round(s["p95"], 6) if s.get("n") else None,
        "peak_rss_mb": round(sorted(peak)[len(peak) // 2], 1) if peak else None,
        "rate": rate,
        "notes": notes + (f"; n={s['n']}, cv {s['cv']:.3f}" if s.get("n") else ""),
    }


def ratio(what: str, value: float | None, goal: str) -> dict[str, Any]:
    return {"what": what, "value": None if value is None else float(f"{value:.4g}"), "goal": goal}


def write(name: str, title: str, command: str, rows: list[dict], ratios: list[dict],
          notes: str, noise: dict | None = None, extra: dict | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "workload": name,
        "title": title,
        "command": command,
        "when": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "rows": rows,
        "ratios": ratios,
        "notes": notes,
    }
    if noise:
        payload["noise"] = noise
    if extra:
        payload.update(extra)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    log(f"wrote {path}")
    return path


def worker(args: list[str], python: str = PY, timeout: int = 900) -> dict[str, Any]:
    """One fresh-process run of bench/analysis_worker.py under /usr/bin/time -v."""
    res = run_timed([python, WORKER, *args], timeout=timeout)
    if res["rc"] != 0:
        raise RuntimeError(f"worker {args} failed: {res['stderr_tail']}")
    rec = json.loads(res["stdout"].strip().splitlines()[-1])
    rec["wall_s"] = res["wall_s"]
    rec["peak_rss_mb"] = res["peak_rss_mb"]
    return rec
