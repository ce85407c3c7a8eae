"""``landexplorer serve`` chooses its worker count from the machine when not told."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
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
    proc = _serve(tmp_path, free_port(), None)
    try:
        want = default_workers()
        assert f"with {want} worker" in (tmp_path / "serve.log").read_text()
        if want > 1:
            assert _workers_of(proc.pid) == want
    finally:
        _stop(proc)


def _serve(tmp_path: Path, port: int, workers: int | None) -> subprocess.Popen[bytes]:
    """``serve`` with ``workers`` (None: its default), once it answers and has them all."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "landexplorer.cli", "--data-dir", str(data), "serve",
           "--port", str(port), "--log-level", "warning"]  # fmt: skip
    if workers is not None:
        cmd += ["--workers", str(workers)]
    else:
        workers = default_workers()
    with (tmp_path / "serve.log").open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/conformance", timeout=2).is_success:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
        time.sleep(0.2)
    while workers > 1 and _workers_of(proc.pid) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def _connections_per_worker(pid: int, port: int) -> dict[int, int]:
    """Established connections each worker process of ``pid`` holds on ``port``."""
    out: dict[int, int] = {}
    for child in psutil.Process(pid).children():
        if b"spawn_main" not in Path(f"/proc/{child.pid}/cmdline").read_bytes():
            continue
        out[child.pid] = sum(
            1
            for c in child.net_connections(kind="tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
        )
    return out


def _listening_sockets(pid: int, port: int) -> dict[int, set[str]]:
    """The listening sockets (by inode) each worker process of ``pid`` holds on ``port``."""
    out: dict[int, set[str]] = {}
    for child in psutil.Process(pid).children():
        if b"spawn_main" not in Path(f"/proc/{child.pid}/cmdline").read_bytes():
            continue
        out[child.pid] = {
            os.readlink(f"/proc/{child.pid}/fd/{c.fd}")
            for c in child.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.fd >= 0
        }
    return out


def test_a_browsers_connections_land_on_every_worker(tmp_path: Path) -> None:
    """Each worker accepts on its own socket (SO_REUSEPORT): 16 connections opened at once
    are not all taken by one worker (the chance that they all hash to one of two sockets
    is 1 in 32,768)."""
    port = free_port()
    proc = _serve(tmp_path, port, 2)
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}") for _ in range(16)]
    try:
        # one socket each, not one shared by both
        (one, two) = _listening_sockets(proc.pid, port).values()
        assert len(one) == len(two) == 1 and one != two
        for client in clients:  # one kept-alive connection each
            assert client.get("/conformance").is_success
        per_worker = _connections_per_worker(proc.pid, port)
        assert len(per_worker) == 2, per_worker
        assert sum(per_worker.values()) == 16, per_worker
        assert all(n > 0 for n in per_worker.values()), per_worker
    finally:
        for client in clients:
            client.close()
        _stop(proc)
    assert _workers_of(proc.pid) == 0


def test_a_worker_that_dies_is_started_again(tmp_path: Path) -> None:
    port = free_port()
    proc = _serve(tmp_path, port, 2)
    try:
        before = {c.pid for c in psutil.Process(proc.pid).children()}
        victim = next(iter(_connections_per_worker(proc.pid, port)))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = set(_connections_per_worker(proc.pid, port))
            if len(workers) == 2 and victim not in workers:
                break
            time.sleep(0.2)
        else:
            raise AssertionError((tmp_path / "serve.log").read_text())
        assert workers - before  # a new process took the dead one's socket
        # every connection is answered, whichever socket it lands on
        for _ in range(20):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                assert client.get("/conformance", timeout=30).is_success
        assert "starting another" in (tmp_path / "serve.log").read_text()
    finally:
        _stop(proc)


def test_a_port_in_use_is_refused_in_words(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = tmp_path / "data"
        data.mkdir()
        cmd = [sys.executable, "-m", "landexplorer.cli", "--data-dir", str(data), "serve",
               "--port", str(port), "--workers", "2"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    said = " ".join((done.stdout + done.stderr).split())
    assert f"Cannot listen on 127.0.0.1 port {port}" in said
    assert "choose another port with --port" in said


def test_workers_end_with_a_supervisor_killed_outright(tmp_path: Path) -> None:
    """SIGKILL to ``serve`` (the OOM killer, say): its workers end too, so the port is
    free for the next start."""
    port = free_port()
    proc = _serve(tmp_path, port, 2)
    workers = [c.pid for c in psutil.Process(proc.pid).children()
               if b"spawn_main" in Path(f"/proc/{c.pid}/cmdline").read_bytes()]  # fmt: skip
    assert len(workers) == 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 30
    while any(psutil.pid_exists(w) and psutil.Process(w).status() != psutil.STATUS_ZOMBIE
              for w in workers) and time.monotonic() < deadline:  # fmt: skip
        time.sleep(0.2)
    assert not [w for w in workers if psutil.pid_exists(w)
                and psutil.Process(w).status() != psutil.STATUS_ZOMBIE]  # fmt: skip
    again = _serve(tmp_path, port, 2)  # the same port binds again
    _stop(again)
