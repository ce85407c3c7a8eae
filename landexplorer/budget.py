"""The time budget of one piece of work (an HTTP request, usually).

The API opens a budget for each request (``with budget.limit(seconds):``); the context
variable travels with the request into worker threads, and long-running loops in the
other packages call ``budget.check()`` between chunks of work, so a request past its
budget stops at the next chunk with ``TimeBudgetExceeded`` instead of running on.
Databases are told the remaining time too (``remaining()``: SQLite's progress handler,
PostgreSQL's ``statement_timeout``), so one slow query is interrupted inside the engine.

Without an open budget (the CLI, notebooks) ``check()`` never fires: a person at a
terminal decides for themselves how long to wait.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

from landexplorer.errors import TimeBudgetExceeded

_deadline: ContextVar[float | None] = ContextVar("landexplorer_deadline", default=None)


@contextlib.contextmanager
def limit(seconds: float | None) -> Iterator[None]:
    """Give the work inside (and the threads it starts with the context) ``seconds``."""
    if seconds is None:
        yield
        return
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left in the current budget (never below 0), or None without a budget."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def expired() -> bool:
    """Is there a budget, and is it spent?"""
    deadline = _deadline.get()
    return deadline is not None and time.monotonic() >= deadline


def spent() -> TimeBudgetExceeded:
    """The error of a spent budget, for work stopped by its engine at the deadline."""
    return TimeBudgetExceeded(
        "This request took longer than the server allows and was stopped. Ask for less "
        "at once (a smaller area, fewer layers, a bounding box), or run it with the "
        "landexplorer command line, which has no time limit."
    )


def check() -> None:
    """Stop the work (``TimeBudgetExceeded``) when its budget is spent."""
    if expired():
        raise spent()
