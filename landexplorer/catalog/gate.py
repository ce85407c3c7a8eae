"""One process, two SQLite libraries: a readers-writer gate per GeoPackage file.

Python's ``sqlite3`` and GDAL (inside pyogrio) each carry their own copy of SQLite. SQLite
keeps its locks as POSIX record locks, which belong to the *process*: two copies of the
library in one process do not see each other's locks at all, and closing any descriptor
of the file drops every lock the process holds on it. So while GDAL writes a layer into
the catalogue file, a read through ``sqlite3`` in another thread can see half-written
pages ("malformed database schema"), and a ``sqlite3`` write can collide with GDAL's.

The GeoPackage store no longer lets GDAL open its catalogue (``catalog.gpkgadopt``) and
runs it in WAL mode, so its readers take no gate; its writers still take the write side,
one at a time per file. The gate keeps the rule inside the process: any number of
readers, or one writer.
Each thread may re-enter what it already holds. Waiting writers go first (no starvation).
A wait longer than the timeout ends in ``StoreBusy`` ("busy, try again"), not an error.

Other processes are still kept apart by SQLite's own locks: ``landexplorer serve`` runs
one worker process per core by default, each with gates of its own, and a write in one
worker waits for a writer in another inside ``BEGIN IMMEDIATE`` (the store's busy timeout,
then ``StoreBusy`` in the same words), and its readers wait only as SQLite makes readers
wait for a writer of the file (``tests/deploy/test_instances.py`` sends two uploads to two
workers at once).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from landexplorer.errors import StoreBusy

_GATES: dict[str, FileGate] = {}
_GATES_LOCK = threading.Lock()


class FileGate:
    """A readers-writer lock for one file, re-entrant per thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer: int | None = None  # thread id
        self._writer_depth = 0
        self._waiting_writers = 0
        self._local = threading.local()
        #: Staged tables/files that a thread of this process is writing right now (a
        #: staged name of this process that is not here is an orphan of a failed write).
        self.writing: set[str] = set()

    def _reader_depth(self) -> int:
        return getattr(self._local, "depth", 0)  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def read(self, timeout: float, what: str = "") -> Iterator[None]:
        me = threading.get_ident()
        if self._writer == me or self._reader_depth() > 0:
            self._local.depth = self._reader_depth() + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._writer is not None or self._waiting_writers:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    raise StoreBusy(
                        "The catalogue is busy saving an upload. Please try again in a moment.",
                        detail=f"waited {timeout:.1f} s for a writer {what}".strip(),
                    )
            self._readers += 1
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def write(self, timeout: float, what: str = "") -> Iterator[None]:
        me = threading.get_ident()
        if self._writer == me:
            self._writer_depth += 1
            try:
                yield
            finally:
                self._writer_depth -= 1
            return
        if self._reader_depth() > 0:
            raise RuntimeError("a thread holding the read gate cannot take the write gate")
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiting_writers += 1
            try:
                while self._writer is not None or self._readers:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._cond.wait(left):
                        raise StoreBusy(
                            "The catalogue is busy saving another change. "
                            "Please try again in a moment.",
                            detail=f"waited {timeout:.1f} s for readers/writer {what}".strip(),
                        )
            finally:
                self._waiting_writers -= 1
                self._cond.notify_all()
            self._writer, self._writer_depth = me, 1
        try:
            yield
        finally:
            with self._cond:
                self._writer, self._writer_depth = None, 0
                self._cond.notify_all()


def gate_for(path: Path) -> FileGate:
    """The one gate of a file in this process (stores opened twice share it)."""
    key = str(Path(path).resolve())
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = FileGate()
        return gate
