"""A throwaway PostgreSQL 15 + PostGIS cluster for the tests, on loopback, in a tmp dir.

``initdb`` refuses to run as root, so as root (CI) the cluster belongs to the ``postgres``
user and is started with ``runuser``; otherwise it runs as whoever runs the tests.
Every test that wants a fresh catalogue gets its own database, cloned from a template
that already has PostGIS (a clone takes a fraction of a second).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
TEMPLATE = "le_template"


def find_pg_bin() -> Path | None:
    """The folder with initdb/pg_ctl, or None when PostgreSQL is not installed."""
    env = os.environ.get("LANDEXPLORER_TEST_PG_BIN")
    for folder in ([env] if env else []) + list(PG_BIN_CANDIDATES):
        if folder and (Path(folder) / "initdb").exists():
            return Path(folder)
    return None


def postgis_installed() -> bool:
    return any(Path("/usr/share/postgresql").glob("*/extension/postgis.control"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One cluster: ``start()``, ``new_database()`` per test, ``stop()`` at the end."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="le-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        self.user = "postgres" if self.as_postgres else os.environ.get("USER", "postgres")
        self._names = itertools.count(1)
        self.started = False

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user,
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as fh:
            # a test cluster: durability is not needed, speed is
            fh.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\nshared_buffers = 128MB\njit = off\n"
            )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        self.started = True
        self.sql("postgres", f"CREATE DATABASE {TEMPLATE}")
        self.sql(TEMPLATE, "CREATE EXTENSION postgis")

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def sql(self, dbname: str, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(statement)

    def new_database(self, prefix: str = "t") -> str:
        """A fresh database with PostGIS; returns its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.sql("postgres", f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)
