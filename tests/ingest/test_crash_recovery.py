"""Crashes and full disks, for real: ``landexplorer ingest`` killed with SIGKILL at ten
moments of its run, and a catalogue on a small filesystem filled to the last byte.

After each kill, the next run of the program (``layers list``) finds the catalogue as it
was, or holding the complete new version, with nothing half-done left anywhere. On a full
disk the catalogue opens, lists and serves; writes are refused with ``DiskFull`` (how
much room is left, nothing lost); once space is freed the next write works.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from landexplorer.settings import Settings
from tests import live
from tests.crash import (
    SITES,
    TREES,
    WriteWatch,
    assert_clean,
    big_csv,
    cli,
    cli_cmd,
    cli_env,
    fill,
    layers_json,
    same_or_next,
    small_disk,
    wait_pg_idle,
)
from tests.people import bearer, make_token
from tests.pg import PgCluster

#: The ten moments each ingest is killed at: (phase, fraction). Phases are seen in the
#: catalogue, so the moments hold on a busy machine too: "start" is the time from the
#: start of the program to its first write (imports, reading the file); "write" is the
#: feature table being written batch by batch and indexed (staged); "after" is from its
#: commit to the end (the replaced version removed, the report printed).
MOMENTS = (
    ("start", 0.3),
    ("start", 0.8),
    ("write", 0.0),
    ("write", 0.2),
    ("write", 0.4),
    ("write", 0.6),
    ("write", 0.8),
    ("write", 0.95),
    ("after", 0.0),
    ("after", 0.5),
)


def _run(
    env: dict[str, str],
    watch: WriteWatch,
    args: list[str | Path],
    kill: tuple[str, float] | None,
    phases: dict[str, float] | None = None,
) -> tuple[dict[str, float], bool]:
    """Run ``landexplorer ARGS``, killing it at a moment (or not); returns how long each
    phase took and whether it was killed while writing."""
    proc = subprocess.Popen(
        cli_cmd(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    t0 = time.monotonic()
    began = ended = None
    try:
        while proc.poll() is None:
            now = time.monotonic()
            writing = watch()
            if writing and began is None:
                began = now
            if began is not None and not writing and ended is None:
                ended = now
            if kill is not None and phases is not None:
                phase, fraction = kill
                since = {"start": t0, "write": began, "after": ended}[phase]
                due = None if since is None else since + phases[phase] * fraction
                if due is not None and now >= due:
                    was_writing = watch()
                    proc.kill()
                    proc.wait(30)
                    return {}, was_writing
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
    end = time.monotonic()
    if kill is not None:
        return {}, False  # it finished before its moment came
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert began is not None and ended is not None, "the write was not seen"
    return {"start": began - t0, "write": ended - began, "after": end - ended}, False


def test_cli_ingest_killed_at_ten_moments(
    store_backend: str, settings: Settings, real_data: Path, tmp_path: Path
) -> None:
    env = cli_env(settings)
    big = tmp_path / "trees_x3.csv"
    rows = big_csv(real_data, big, copies=3)
    cli(env, "ingest", real_data.joinpath(*SITES), "--id", "sites", "--licence", "OGL-UK-3.0")
    cli(env, "ingest", real_data.joinpath(*TREES), "--id", "trees", "--licence", "OGL-UK-3.0")
    replace: list[str | Path] = ["ingest", big, "--id", "trees", "--replace"]
    watch = WriteWatch(settings)
    try:
        phases, _ = _run(env, watch, replace, None)  # one whole run, its phases timed
        before = layers_json(env)
        assert [e["version"] for e in before] == [1, 2]
        killed_writing = completed = kills = 0
        for phase, fraction in MOMENTS:
            # a write moment that a busy machine made miss the write is tried again earlier
            for _ in range(3):
                _, writing = _run(env, watch, replace, (phase, fraction), phases)
                kills += 1
                killed_writing += writing
                wait_pg_idle(settings.database_url)
                after = layers_json(env)  # the program started again
                completed += same_or_next(before, after, "trees", rows)
                assert_clean(settings)
                before = after
                if writing or phase != "write":
                    break
                fraction /= 2
    finally:
        watch.close()
    # the battery did hit the write itself, not only the start-up or the end
    assert killed_writing >= 3, killed_writing
    assert completed < kills
    # and the catalogue still takes a new version
    cli(env, "ingest", big, "--id", "trees", "--replace")
    assert layers_json(env)[1]["version"] == before[1]["version"] + 1
    assert_clean(settings)


# ---- a full disk ---------------------------------------------------------------------------
def _reachable_dir(tmp_path: Path) -> Path:
    """A folder for the small disk that the database server (another user, who cannot
    enter pytest's private folders) can reach too: under the system's temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="le-small-disk-"))
    folder.chmod(0o755)
    (tmp_path / "small-disk-is-at").write_text(str(folder))
    return folder


@contextlib.contextmanager
def _catalogue_on(
    disk: Path, store_backend: str, request: pytest.FixtureRequest
) -> Iterator[str | None]:
    """For PostGIS, a database whose layer tables go to ``disk`` (its default tablespace
    is there); None for the GeoPackage, which lives on ``disk`` anyway.

    PostgreSQL's own system catalogues stay on the cluster's disk: with them on a full disk,
    PostgreSQL itself refuses new connections whenever its relation-cache file has to be
    written again (FATAL "could not write init file", after autovacuum touched a catalogue),
    and no server in front of it can read anything then."""
    if store_backend != "postgis":
        yield None
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    space = disk / "pg"
    space.mkdir()
    if cluster.as_postgres:
        shutil.chown(space, "postgres")
    name = f"full_{int(time.time() * 1000) % 10**9}"
    cluster.sql("postgres", f"CREATE TABLESPACE {name} LOCATION '{space}'")
    cluster.sql("postgres", f"CREATE DATABASE {name} TEMPLATE le_template")
    cluster.sql("postgres", f"ALTER DATABASE {name} SET default_tablespace = {name}")
    try:
        yield cluster.url(name)
    finally:
        cluster.sql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cluster.sql("postgres", f"DROP TABLESPACE IF EXISTS {name}")


def test_full_disk_reads_serve_and_refuses_writes_in_words(
    store_backend: str, real_data: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with (
        small_disk(_reachable_dir(tmp_path), 48) as disk,
        _catalogue_on(disk, store_backend, request) as url,
    ):
        settings = Settings(data_dir=disk, demo_mirror=real_data, database_url=url)
        env = cli_env(settings)
        trees = real_data.joinpath(*TREES)
        cli(env, "ingest", real_data.joinpath(*SITES), "--id", "sites", "--licence", "OGL-UK-3.0")
        cli(env, "ingest", trees, "--id", "trees", "--licence", "OGL-UK-3.0")
        before = layers_json(env)
        admin = bearer(make_token(settings))  # made while there is room
        if store_backend == "gpkg":
            _leave_a_crashed_write(env, settings, real_data, tmp_path)
        filler = fill(disk)
        assert shutil.disk_usage(disk).free < 1024 * 1024

        # reading: list, show, and a server that starts and serves features and tiles
        assert layers_json(env) == before
        assert "sites" in cli(env, "layers", "show", "sites").stdout
        # reading may have rolled back what the killed write left (its journal): full again
        fill(disk)
        assert shutil.disk_usage(disk).free < 1024 * 1024
        with live.serve(disk, database_url=url) as base:
            page = httpx.get(f"{base}/collections/sites/items?limit=5", timeout=30)
            assert page.status_code == 200 and len(page.json()["features"]) == 5
            tile = httpx.get(f"{base}/tiles/trees/12/2021/1327.mvt", timeout=30)
            assert tile.status_code == 200 and tile.content  # rendered, if not cached
            upload = httpx.post(
                f"{base}/collections",
                headers=admin,
                files={"file": ("more_trees.csv", trees.read_bytes(), "text/csv")},
                data={"licence": "OGL-UK-3.0"},
                timeout=60,
            )
            assert upload.status_code == 507, upload.text
            body = upload.json()
            assert body["code"] == "disk-full"
            assert "is full" in body["description"] and "Nothing was lost" in body["description"]

        # writing: refused in plain words, nothing lost
        done = cli(env, "ingest", trees, "--id", "more_trees", check=False)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        text = " ".join(done.stderr.split())
        assert "is full" in text and "Nothing was lost" in text, text
        if store_backend == "gpkg":
            assert "The disk is full (0 MB free)" in text
            # (PostgreSQL rewrites a small row inside a page it has: that may still work)
            done = cli(env, "layers", "set", "sites", "--title", "Renamed", check=False)
            assert done.returncode == 1 and "is full" in " ".join(done.stderr.split())
        assert layers_json(env) == before

        # space freed: the next write works, and what the crash left is cleaned away
        filler.unlink()
        cli(env, "ingest", trees, "--id", "more_trees", "--licence", "OGL-UK-3.0")
        cli(env, "layers", "set", "sites", "--title", "Renamed")
        after = layers_json(env)
        assert [e["id"] for e in after] == ["more_trees", "sites", "trees"]
        assert after[1]["title"] == "Renamed" and after[2] == before[1]
        assert_clean(settings)


def _leave_a_crashed_write(
    env: dict[str, str], settings: Settings, real_data: Path, tmp_path: Path
) -> None:
    """An ingest killed while its table is being written: the staged table it leaves needs
    room to remove, which a full disk does not have (that used to stop every command)."""
    big = tmp_path / "big.csv"
    big_csv(real_data, big, copies=6)
    # On a quick machine the ingest may finish within the wait (or commit just before the
    # kill lands): then its layer is removed and it is stopped sooner, so that the crash
    # this test needs really happens.
    for wait in (0.3, 0.05, 0.0, 0.0, 0.0):
        proc = subprocess.Popen(cli_cmd("ingest", big, "--id", "big"), env=env)
        deadline = time.monotonic() + 60
        watch = WriteWatch(settings)
        while time.monotonic() < deadline and not watch():
            time.sleep(0.01)
        time.sleep(wait)
        proc.kill()
        proc.wait(30)
        if "big" not in [e["id"] for e in layers_json(env)]:
            return
        cli(env, "layers", "delete", "big", "--yes")
    raise AssertionError("the ingest always finished before it could be stopped mid-write")


def test_half_built_rasters_of_stopped_processes_are_removed(
    store_backend: str, settings: Settings
) -> None:
    """A raster ingest killed while it builds its COG leaves ``.incoming-*.tif`` beside the
    rasters; once that is older than any build takes, opening the catalogue removes it (a
    fresh one may belong to a build running now, and stays)."""
    from landexplorer.catalog import open_store

    settings.raster_dir.mkdir(parents=True)
    old = settings.raster_dir / ".incoming-abc123.tif"
    old.write_bytes(b"II*\0" + b"\0" * 4096)
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    fresh = settings.raster_dir / ".incoming-def456.tif"
    fresh.write_bytes(b"II*\0")
    open_store(settings).close()
    assert not old.exists()
    assert fresh.exists()
