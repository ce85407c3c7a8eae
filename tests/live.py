"""A live ``landexplorer serve`` on a free loopback port, for tests with real clients
(GDAL, OWSLib, schemathesis, Chromium)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(
    data_dir: Path | str,
    *,
    database_url: str | None = None,
    workers: int = 1,
    env: dict[str, str] | None = None,
    ready_path: str = "/conformance",
) -> Iterator[str]:
    """Run the server over the catalogue in ``data_dir``; yield its URL; stop it after."""
    port = free_port()
    data_dir = str(data_dir)
    environ = {**os.environ, "LANDEXPLORER_DATA_DIR": data_dir, **(env or {})}
    if database_url:
        environ["LANDEXPLORER_DATABASE_URL"] = database_url
    cmd = [
        sys.executable, "-m", "landexplorer.cli", "--data-dir", data_dir, "serve",
        "--port", str(port), "--workers", str(workers), "--log-level", "warning",
    ]  # fmt: skip
    log = Path(data_dir).parent / f"serve-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=environ, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + ready_path, timeout=2).status_code == 200:
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
