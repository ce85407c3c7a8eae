"""API fixtures: a TestClient over the demo catalogue, and a live uvicorn server started by
``landexplorer serve`` on loopback for real clients (GDAL, OWSLib, schemathesis)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from landexplorer.api import create_app
from landexplorer.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "test-token-1234"


@pytest.fixture(scope="session")
def client(demo_settings: Settings) -> Iterator[TestClient]:
    """A TestClient over the (read-only) demo catalogue."""
    with TestClient(create_app(demo_settings)) as c:
        yield c


@pytest.fixture
def write_settings(settings: Settings) -> Settings:
    """Settings of a fresh, empty catalogue that accepts writes with ``TOKEN``."""
    return settings.model_copy(update={"write_token": TOKEN, "max_upload_mb": 5})


@pytest.fixture
def write_client(write_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(write_settings)) as c:
        yield c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(settings: Settings, **env_extra: str) -> Iterator[str]:
    """Run ``landexplorer serve`` on a free loopback port for ``settings``; yield its URL."""
    port = _free_port()
    env = {**os.environ, "LANDEXPLORER_DATA_DIR": str(settings.data_dir), **env_extra}
    if settings.database_url:  # the PostGIS run of the demo
        env["LANDEXPLORER_DATABASE_URL"] = settings.database_url
    cmd = [
        sys.executable, "-m", "landexplorer.cli", "--data-dir", str(settings.data_dir),
        "serve", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    log = Path(settings.data_dir).parent / f"serve-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/conformance", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def live_url(demo_settings: Settings) -> Iterator[str]:
    """``landexplorer serve`` on a free loopback port over the demo catalogue."""
    with serve(demo_settings) as url:
        yield url
