"""``landexplorer serve`` chooses its worker count from the machine when not told."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from landexplorer.cli import app
from landexplorer.cli.serve_cmd import MAX_DEFAULT_WORKERS, default_workers
from tests.live import free_port


def test_the_default_follows_the_cores_within_bounds() -> None:
    cores = len(os.sched_getaffinity(0))
    assert default_workers() == max(1, min(cores, MAX_DEFAULT_WORKERS))
    shown = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    assert f"at most {MAX_DEFAULT_WORKERS} ({default_workers()} on this machine)" in shown


def _workers_of(pid: int) -> int:
    """Worker processes uvicorn started under ``pid`` (spawned children, not its helpers)."""
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and b"spawn_main" in cmdline:
            count += 1
    return count


def test_serve_without_workers_starts_the_default(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "landexplorer.cli", "--data-dir", str(data), "serve",
           "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/conformance", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        want = default_workers()
        assert f"with {want} worker" in log.read_text()
        if want > 1:
            while _workers_of(proc.pid) < want and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _workers_of(proc.pid) == want
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
