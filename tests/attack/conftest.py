"""The attack battery's fixtures: a live ``landexplorer serve`` over a private copy of the demo
catalogue, on each store in turn, with a memory ceiling, its resident memory sampled with
psutil for the whole run, and the catalogue compared before and after.

The server runs with the settings a public server would have, except for a few limits made
smaller so the battery stays short (``SERVER_ENV``). Every test in this folder takes
``target``; the autouse ``guard`` fails a test during which the server died or grew past the
ceiling (and starts it again, so the remaining cases still run).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from landexplorer.settings import Settings
from tests import live
from tests.conftest import STORE_BACKENDS
from tests.people import bearer, make_token
from tests.pg import PgCluster

#: The memory ceiling given to the server, and the most its RSS may reach during the run.
CEILING_MB = int(os.environ.get("LANDEXPLORER_ATTACK_CEILING_MB", "1024"))
#: Past this the sampler kills the server at once: an unfixed server grows to tens of GB,
#: and the machine is shared (the case then fails as a crash, with the size it reached).
HARD_CAP_MB = max(2 * CEILING_MB, 2048)
#: Smaller limits than the defaults where the default would only make the battery slower.
SERVER_ENV = {
    "LANDEXPLORER_MEMORY_LIMIT_MB": str(CEILING_MB),
    "LANDEXPLORER_MAX_UPLOAD_MB": "5",
    "LANDEXPLORER_REQUEST_TIMEOUT_S": "10",
}


#: The server's peak RSS on each store, for the summary at the end of the run.
PEAKS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for backend, mb in PEAKS.items():
        terminalreporter.write_line(
            f"attack battery, {backend}: server RSS peak {mb:.0f} MB (ceiling {CEILING_MB} MB)"
        )


class RssSampler(threading.Thread):
    """Samples a process's resident memory (with its children) every ``every`` seconds."""

    def __init__(self, proc: psutil.Process, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.proc, self.every = proc, every
        self.killed_at_mb = 0.0
        self.peak_mb = 0.0  # over the whole run
        self.window_mb = 0.0  # since the last reset()
        self.samples = 0
        self._halt = threading.Event()

    def rss_mb(self) -> float:
        total = 0
        with contextlib.suppress(psutil.Error):
            total += self.proc.memory_info().rss
            for child in self.proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
        return total / (1024 * 1024)

    def run(self) -> None:
        while not self._halt.is_set():
            mb = self.rss_mb()
            self.samples += 1
            self.peak_mb = max(self.peak_mb, mb)
            self.window_mb = max(self.window_mb, mb)
            if mb > HARD_CAP_MB and not self.killed_at_mb:
                self.killed_at_mb = mb
                with contextlib.suppress(psutil.Error):
                    self.proc.kill()
            self._halt.wait(self.every)

    def reset(self) -> None:
        self.window_mb = self.rss_mb()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def _server_process(port: int) -> psutil.Process:
    """The ``landexplorer serve`` child of this test process listening on ``port``."""
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmd = child.cmdline()
            if "serve" in cmd and str(port) in cmd:
                return child
    raise RuntimeError(f"no server process found for port {port}")


def cli_json(settings: Settings, *args: str) -> object:
    """Run the ``landexplorer`` command on ``settings``' catalogue; its --json output."""
    env = {**os.environ, "LANDEXPLORER_DATA_DIR": str(settings.data_dir)}
    env.pop("LANDEXPLORER_DATABASE_URL", None)
    if settings.database_url:
        env["LANDEXPLORER_DATABASE_URL"] = settings.database_url
    cmd = [sys.executable, "-m", "landexplorer.cli", "--data-dir", str(settings.data_dir), *args]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


def catalogue_state(settings: Settings) -> dict[str, object]:
    """What must not change: ``layers list --json`` and, on a GeoPackage, its integrity."""
    state: dict[str, object] = {"layers": cli_json(settings, "layers", "list", "--json")}
    if not settings.database_url:
        uri = f"file:{settings.catalog_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            state["integrity"] = [row[0] for row in db.execute("PRAGMA integrity_check")]
    return state


@dataclass
class Target:
    """The attacked server: its URL, process, memory sampler and catalogue settings, and
    ``auth``: bearer headers of a site admin's token (writes are part of the attack surface)."""

    settings: Settings
    backend: str
    auth: dict[str, str] = field(default_factory=dict)
    url: str = ""
    port: int = 0
    proc: psutil.Process | None = None
    sampler: RssSampler | None = None
    crashes: list[str] = field(default_factory=list)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def start(self) -> None:
        self._stack = contextlib.ExitStack()
        self.url = self._stack.enter_context(
            live.serve(
                self.settings.data_dir, database_url=self.settings.database_url, env=SERVER_ENV
            )
        )
        self.port = int(self.url.rsplit(":", 1)[1])
        self.proc = _server_process(self.port)
        self.sampler = RssSampler(self.proc)
        self.sampler.start()

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        self._stack.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_running() and self.proc.status() != "zombie"

    @property
    def log_path(self) -> Path:
        return self.settings.data_dir.parent / f"serve-{self.port}.log"

    def log_tail(self, chars: int = 3000) -> str:
        log = self.log_path
        return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        """What the server logged after ``offset`` bytes (a case's own warnings and errors)."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")

    @property
    def peak_mb(self) -> float:
        return self.sampler.peak_mb if self.sampler else 0.0


#: The demo's biggest point layer (street trees, 15,638) is too small to keep a server busy:
#: the battery adds this many random points in Trafford as ``many_points``.
MANY_POINTS = int(os.environ.get("LANDEXPLORER_ATTACK_POINTS", "500000"))


@pytest.fixture(scope="session")
def many_points_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import random

    rng = random.Random(20261203)
    path = tmp_path_factory.mktemp("many-points") / "many_points.csv"
    with path.open("w") as out:
        out.write("lon,lat,n\n")
        for i in range(MANY_POINTS):
            out.write(f"{rng.uniform(-2.48, -2.25):.6f},{rng.uniform(53.36, 53.48):.6f},{i}\n")
    return path


def _private_demo(
    backend: str, demo: Settings, folder: Path, points: Path, request: pytest.FixtureRequest
) -> Settings:
    """A copy of the session's demo catalogue that only the battery uses (it writes maps and
    jobs, and an attack that did change the catalogue must not spoil other tests), with the
    point layer ``many_points`` added."""
    data_dir = folder / "data"
    shutil.copytree(demo.data_dir, data_dir, ignore=shutil.ignore_patterns("maps", "jobs"))
    settings = demo.model_copy(update={"data_dir": data_dir})
    cmd = [sys.executable, "-m", "landexplorer.cli", "--data-dir", str(data_dir), "ingest",
           str(points), "--id", "many_points", "--licence", "OGL-UK-3.0"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "LANDEXPLORER_DATABASE_URL"}
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    if backend == "postgis":
        from landexplorer.catalog.gpkg import GeoPackageStore
        from landexplorer.catalog.migrate import migrate
        from landexplorer.catalog.postgis import PostGISStore

        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        url = cluster.new_database("attack")
        source = GeoPackageStore(settings.catalog_path, settings.raster_dir)
        target = PostGISStore(url, settings.raster_dir)
        report = migrate(source, target)
        source.close()
        target.close()
        assert report.ok, report
        settings = settings.model_copy(update={"database_url": url})
    return settings


@pytest.fixture(scope="session", params=STORE_BACKENDS)
def target(
    request: pytest.FixtureRequest,
    demo_gpkg_settings: Settings,
    many_points_csv: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Target]:
    """The live server under attack, on each store; after its last case the catalogue must
    be exactly as before and the memory never past the ceiling."""
    backend = str(request.param)
    folder = tmp_path_factory.mktemp(f"attack-{backend}")
    settings = _private_demo(backend, demo_gpkg_settings, folder, many_points_csv, request)
    auth = bearer(make_token(settings, "attack-admin"))
    before = catalogue_state(settings)
    t = Target(settings=settings, backend=backend, auth=auth)
    t.start()
    try:
        yield t
    finally:
        t.stop()
    PEAKS[backend] = t.peak_mb
    after = catalogue_state(settings)
    assert not t.crashes, f"the server died during: {t.crashes}"
    assert t.peak_mb < CEILING_MB, f"server RSS reached {t.peak_mb:.0f} MB"
    assert after == before, "the attacks changed the catalogue"


@pytest.fixture(autouse=True)
def guard(target: Target, request: pytest.FixtureRequest) -> Iterator[None]:
    """Each case: the server alive before and after, its RSS under the ceiling meanwhile."""
    assert target.sampler is not None
    # an earlier case killed it or left it swollen: start again, so this case is judged alone
    if not target.alive() or target.sampler.rss_mb() > CEILING_MB:
        target.stop()
        target.start()
    assert target.sampler is not None
    target.sampler.reset()
    logged = target.log_size()
    yield
    time.sleep(0.1)  # one more sample after the last answer
    peak = target.sampler.window_mb
    said = target.log_since(logged)
    if "Traceback" in said:
        # shown with the case's report if it fails (a 500's cause is only in the server log)
        print(f"the server logged during this case:\n{said[-6000:]}")
    if not target.alive():
        target.crashes.append(request.node.name)
        if target.sampler.killed_at_mb:
            pytest.fail(f"the server was killed at {target.sampler.killed_at_mb:.0f} MB RSS")
        pytest.fail(f"the server process died: {target.log_tail()}")
    assert peak < CEILING_MB, f"server RSS reached {peak:.0f} MB (ceiling {CEILING_MB} MB)"
