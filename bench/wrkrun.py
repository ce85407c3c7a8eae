"""wrk, closed loop over a list of paths (the harness's urls.lua), for the benches that
drive a running ``landexplorer serve``: one place for the command line and its figures."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from common import WORK, pct  # the harness's (bench/run.sh puts it on the path)

_ERRORS = ("errors_connect", "errors_read", "errors_write", "errors_status", "errors_timeout")


def wrk(
    base: str,
    paths: list[str],
    conc: int,
    duration: int,
    urls_lua: Path,
    *,
    threads: int = 1,
    headers: dict[str, str] | None = None,
    tag: str = "paths",
) -> dict[str, Any]:
    """``conc`` connections on ``threads`` wrk threads for ``duration`` s over ``paths``;
    wrk's JSON line with ``rps`` and the summed ``errors`` added."""
    lst = WORK / f"{tag}_{abs(hash((paths[0], len(paths))))}.txt"
    lst.write_text("\n".join(paths) + "\n")
    cmd = ["wrk", "-t", str(min(threads, conc)), "-c", str(conc), "-d", f"{duration}s",
           "--timeout", "60s", "-s", str(urls_lua)]  # fmt: skip
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    cmd += [base, "--", str(lst)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    line = [x for x in p.stdout.splitlines() if x.startswith("{")]
    if not line:
        raise RuntimeError(f"wrk gave no result: {p.stdout[-500:]} {p.stderr[-500:]}")
    r: dict[str, Any] = json.loads(line[-1])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = sum(r[k] for k in _ERRORS)
    return r


def spread(values: list[float]) -> str:
    """The 25th to 75th percentile of ``values``, as the results files write it."""
    return f"{pct(values, 25):.2f}-{pct(values, 75):.2f}"
