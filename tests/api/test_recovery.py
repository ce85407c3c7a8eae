"""A server that stopped without warning (kill -9, power cut, out of memory): on the next
start every upload job it left gets a final state, and its upload folders are removed.

Recovery only touches the work of processes that are gone: a live process's job and
folder are left alone, and several workers starting at once finish each job once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import httpx

from landexplorer.api.jobs import INTERRUPTED, Job
from landexplorer.catalog import Store
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings
from tests import live
from tests.crash import SITES, TREES, assert_clean, big_csv, cli, cli_env, layers_json, same_or_next
from tests.people import bearer, make_token

_TAG = "from landexplorer.catalog.owners import this_process; print(this_process(), flush=True)"


def _dead_owner() -> str:
    """The owner tag of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", _TAG], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@contextlib.contextmanager
def _live_owner() -> Iterator[str]:
    """The owner tag of a process that runs for the length of the block."""
    code = _TAG + "; import time; time.sleep(120)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait(10)


def _record(folder: Path, **fields: object) -> Job:
    job = Job(id=uuid.uuid4().hex, kind="upload", **fields)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{job.id}.json").write_text(json.dumps(asdict(job)))
    return job


def _upload_folder(uploads: Path, owner: str) -> Path:
    folder = uploads / owner.replace(":", "+") / f"up-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    (folder / "orchards.csv").write_bytes(b"x" * (1 << 20))
    return folder


def test_jobs_a_stopped_server_left_get_their_final_state(
    store: Store, settings: Settings, real_data: Path
) -> None:
    sites = ingest(store, real_data.joinpath(*SITES), IngestOptions(id="sites"))[0]
    store.close()
    admin = bearer(make_token(settings))  # jobs are their uploader's and the admins' to follow
    jobs, uploads = settings.data_dir / "jobs", settings.data_dir / "uploads"
    dead = _dead_owner()
    started = "2000-01-01T00:00:00Z"
    with _live_owner() as alive:
        # its version committed, then the server died before writing "successful"
        stored = _record(
            jobs, layer_id="sites", status="running", owner=dead, started=started,
            checksum=sites.checksum, expect_version=1,
        )  # fmt: skip
        # died while loading: nothing stored
        lost = _record(
            jobs, layer_id="orchards", status="running", owner=dead, started=started,
            checksum="sha256:" + "0" * 64, expect_version=1,
        )  # fmt: skip
        # the same file as 'sites', but for a version that never came (the id's version is 1)
        not_yet = _record(
            jobs, layer_id="sites", status="running", owner=dead, started=started,
            checksum=sites.checksum, expect_version=2,
        )  # fmt: skip
        queued = _record(jobs, layer_id="woods", status="accepted", owner=dead)
        legacy = _record(jobs, layer_id="old", status="running")  # from before owners
        running = _record(jobs, layer_id="trees", status="running", owner=alive)
        done = _record(jobs, layer_id="x", status="failed", owner=dead, message="As it was.")
        # stored, and its low-zoom tiles were being made when the server died
        making = {"status": "making", "zooms": "0-9", "message": "Making the tiles."}
        tiles_dead = _record(jobs, layer_id="sites", status="successful", owner=dead,
                             layers=["sites"], tiles={"sites": dict(making)})  # fmt: skip
        tiles_alive = _record(jobs, layer_id="trees", status="successful", owner=alive,
                              layers=["trees"], tiles={"trees": dict(making)})  # fmt: skip
        dead_folder = _upload_folder(uploads, dead)
        live_folder = _upload_folder(uploads, alive)
        half_record = jobs / f".{lost.id}~{dead.replace(':', '+')}.tmp"
        half_record.write_text('{"id": "')

        # three workers start at once, each recovering
        with live.serve(settings.data_dir, database_url=settings.database_url, workers=3) as url:

            def status(job: Job) -> dict[str, object]:
                r = httpx.get(f"{url}/jobs/{job.id}", headers=admin, timeout=30)
                assert r.status_code == 200, r.text
                return r.json()  # type: ignore[no-any-return]

            assert status(stored)["status"] == "successful"
            assert status(stored)["layers"] == ["sites"]
            assert "stored (sites version 1)" in str(status(stored)["message"])
            for job in (lost, not_yet, queued, legacy):
                doc = status(job)
                assert doc["status"] == "failed", doc
                assert doc["message"] == INTERRUPTED
                assert doc["error"] == {"code": "interrupted", "description": INTERRUPTED}
            assert status(running)["status"] == "running"  # its process still runs
            assert status(done)["message"] == "As it was."
            tiles = status(tiles_dead)["tiles"]["sites"]
            assert tiles["status"] == "stopped", tiles
            assert "'landexplorer tiles build sites'" in tiles["message"]
            assert status(tiles_alive)["tiles"]["trees"]["status"] == "making"  # still at it
            assert not dead_folder.exists() and not dead_folder.parent.exists()
            assert live_folder.exists()
            assert not half_record.exists()
            # every record is whole JSON, finished once
            for record in jobs.glob("*.json"):
                json.loads(record.read_text())
        assert live_folder.exists()


# ---- the server killed mid-upload -------------------------------------------------------
@contextlib.contextmanager
def _server(settings: Settings) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``landexplorer serve`` as a process of our own, so that it can be killed."""
    port = live.free_port()
    env = cli_env(settings)
    log = settings.data_dir.parent / f"serve-{port}.log"
    cmd = [
        sys.executable, "-m", "landexplorer.cli", "serve", "--port", str(port),
        "--log-level", "warning",
    ]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/conformance", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _version(settings: Settings, layer_id: str) -> int:
    """The catalogued version of a layer, read straight from the store's tables."""
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT version FROM landexplorer_layers WHERE id = %s", (layer_id,)
            ).fetchone()
    else:
        uri = f"file:{settings.catalog_path}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=0.2)) as conn:
                row = conn.execute(
                    "SELECT version FROM landexplorer_layers WHERE id = ?", (layer_id,)
                ).fetchone()
        except sqlite3.OperationalError:
            return -1  # locked by a writer this very moment
    return int(row[0]) if row else 0


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _replace(url: str, auth: dict[str, str], big: Path) -> str:
    r = httpx.put(
        f"{url}/collections/trees",
        headers=auth,
        files={"file": (big.name, big.read_bytes(), "text/csv")},
        timeout=60,
    )
    assert r.status_code == 202, r.text
    return str(r.json()["jobID"])


def _wait(until: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not until():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the moment did not come"
        time.sleep(0.005)


def test_server_killed_mid_upload_at_three_moments(
    store_backend: str, settings: Settings, real_data: Path, tmp_path: Path
) -> None:
    env = cli_env(settings)
    big = tmp_path / "trees_x4.csv"
    rows = big_csv(real_data, big, copies=4)
    cli(env, "ingest", real_data.joinpath(*SITES), "--id", "sites", "--licence", "OGL-UK-3.0")
    cli(env, "ingest", real_data.joinpath(*TREES), "--id", "trees", "--licence", "OGL-UK-3.0")
    before = layers_json(env)
    auth = bearer(make_token(settings))
    jobs: list[str] = []

    def check_after_restart(url: str) -> None:
        nonlocal before
        after = layers_json(env)
        new_version = same_or_next(before, after, "trees", rows)
        for job_id in jobs:
            doc = httpx.get(f"{url}/jobs/{job_id}", headers=auth, timeout=30).json()
            assert doc["status"] in ("successful", "failed"), doc
        if jobs:
            last = httpx.get(f"{url}/jobs/{jobs[-1]}", headers=auth, timeout=30).json()
            # the job says what happened to its version
            assert (last["status"] == "successful") == new_version, (last, new_version)
            if not new_version:
                assert last["message"] == INTERRUPTED
        assert_clean(settings)
        before = after

    # 1. while the file is still being received
    with _server(settings) as (proc, url):
        body_sent = threading.Event()

        def body() -> Iterator[bytes]:
            boundary = b"--le-boundary\r\n"
            yield boundary + b'Content-Disposition: form-data; name="file"; filename="t.csv"\r\n'
            yield b"Content-Type: text/csv\r\n\r\n"
            data = big.read_bytes()
            for i in range(0, len(data) // 2, 1 << 16):
                yield data[i : i + (1 << 16)]
            body_sent.set()
            time.sleep(30)  # the server dies meanwhile
            yield b""

        def send() -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.put(
                    f"{url}/collections/trees",
                    headers={**auth, "Content-Type": "multipart/form-data; boundary=le-boundary"},
                    content=body(),
                    timeout=60,
                )

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        assert body_sent.wait(60)
        _kill(proc)
    # 2. while the job is loading features
    with _server(settings) as (proc, url):
        check_after_restart(url)
        jobs.append(_replace(url, auth, big))

        def loading() -> bool:
            doc = httpx.get(f"{url}/jobs/{jobs[-1]}", headers=auth, timeout=30).json()
            return doc["status"] == "running" and doc["progress"] >= 10_000

        _wait(loading)
        _kill(proc)
    # 3. the moment its version is committed, before the job can say so
    with _server(settings) as (proc, url):
        check_after_restart(url)
        version = _version(settings, "trees")
        jobs.append(_replace(url, auth, big))
        _wait(lambda: _version(settings, "trees") > version)
        _kill(proc)
    with _server(settings) as (proc, url):
        check_after_restart(url)
        assert before[1]["version"] == version + 1
        last = httpx.get(f"{url}/jobs/{jobs[-1]}", headers=auth, timeout=30).json()
        assert last["status"] == "successful"
