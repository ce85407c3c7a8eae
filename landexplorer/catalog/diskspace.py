"""A full disk, recognised wherever it shows up, and told in plain words.

SQLite says "database or disk is full", GDAL "No space left on device" (or the SQLite
text, through its own copy of SQLite), Python ``OSError(ENOSPC)`` (or ``EDQUOT`` for a
quota), PostgreSQL SQLSTATE 53100. Each becomes ``DiskFull`` with how much room is left,
so a volunteer knows that nothing was lost and that freeing space is the fix.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

from landexplorer.errors import DiskFull

_TEXTS = ("database or disk is full", "no space left on device", "disk quota exceeded")
_SQLITE_FULL = 13


def free_mb(path: Path) -> int | None:
    """Megabytes free on the filesystem holding ``path`` (or its nearest existing parent)."""
    here = Path(path)
    while not here.exists() and here != here.parent:
        here = here.parent
    try:
        return int(shutil.disk_usage(here).free // (1024 * 1024))
    except OSError:
        return None


def is_disk_full(exc: BaseException) -> bool:
    """Whether an exception (or what caused it) says the disk or a quota is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFull):
            return True
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(current, sqlite3.Error) and (
            getattr(current, "sqlite_errorcode", None) == _SQLITE_FULL
        ):
            return True
        if getattr(current, "sqlstate", None) == "53100":  # PostgreSQL disk_full
            return True
        if any(text in str(current).lower() for text in _TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def disk_full(path: Path | None, exc: BaseException | None = None) -> DiskFull:
    """The ``DiskFull`` to raise for a write under ``path`` that ran out of room."""
    if isinstance(exc, DiskFull):
        return exc
    free = free_mb(path) if path is not None else None
    room = f" ({free} MB free)" if free is not None else ""
    return DiskFull(
        f"The disk is full{room}, so this change could not be saved. Nothing was lost: "
        "the catalogue is as it was before. Free some space on the server (or ask whoever "
        "runs it to), then try again.",
        detail=f"{path}: {exc!r}" if exc is not None else str(path),
    )


def database_disk_full(exc: BaseException | None = None) -> DiskFull:
    """The ``DiskFull`` for a catalogue database whose own disk is full (PostGIS)."""
    return DiskFull(
        "The disk of the catalogue database is full, so this change could not be saved. "
        "Nothing was lost: the catalogue is as it was before. Ask whoever runs the database "
        "to free some space, then try again.",
        detail=repr(exc) if exc is not None else None,
    )
