"""Limits applied to every request before (and while) its body is read.

``RequestLimits`` is the outermost middleware of the app:

- **Bodies are counted as they stream.** A declared ``Content-Length`` over the limit is
  refused at once; a body without one (chunked) is counted chunk by chunk and refused the
  moment it passes the limit, so nothing past the limit is ever buffered. Uploads (POST/PUT
  to ``/collections``) may be ``max_upload_mb``; every other body ``max_json_kb``.
- **A time budget per request** (``landexplorer.budget``): the work of the request, in
  whatever worker thread it runs, checks it between chunks and stops when it is spent.
- **A memory ceiling.** Heavy routes (features, tiles, exports, analysis, uploads) are
  refused with 503 while the process's resident memory is above ``memory_limit_mb``, so an
  unlucky mix of requests slows the server down instead of getting it killed.

Request line and header sizes are limited in the HTTP protocol itself
(``landexplorer.api.httpproto``), before any of this runs.
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from landexplorer import budget
from landexplorer.api.errors import error_response
from landexplorer.settings import Settings

#: Routes whose work can take memory: refused while the process is over its ceiling.
_HEAVY_PREFIXES = ("/collections/", "/tiles/", "/analysis/", "/exports/")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: The multipart envelope (boundaries, part headers, form fields) adds a little to a file.
_MULTIPART_SLACK = 64 * 1024


def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: no trimming, the ceiling still applies
        return None


_LIBC = _libc()


def release_free_memory() -> None:
    """Hand memory that is free inside the allocator back to the system (glibc only)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def limit_allocator_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for this process (``M_ARENA_MAX``), where it is glibc."""
    if _LIBC is not None:
        _LIBC.mallopt(-8, arenas)  # -8 is M_ARENA_MAX in malloc.h


def resident_mb() -> float:
    """This process's resident memory in MB (from /proc: no extra dependency, ~10 µs)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * _PAGE / (1024 * 1024)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its limit.

    An ``HTTPException`` so that FastAPI's body parsing passes it on unchanged (it turns
    other errors met while reading a body into a 400) and the one error map answers 413.
    """

    def __init__(self, words: str) -> None:
        super().__init__(413, words, {"Connection": "close"})


class RequestLimits:
    """Body size, time budget and memory ceiling for every HTTP request."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.upload_limit = settings.max_upload_mb * 1024 * 1024 + _MULTIPART_SLACK
        self.upload_mb = settings.max_upload_mb
        self.json_limit = settings.max_json_kb * 1024
        self.json_kb = settings.max_json_kb
        self.timeout = settings.request_timeout_s
        self.memory_mb = settings.memory_limit_mb
        self._trimmed = 0.0

    def _limit_for(self, scope: Scope) -> tuple[int, str]:
        method, path = scope["method"], scope["path"]
        if method in ("POST", "PUT") and path.startswith("/collections"):
            return self.upload_limit, (
                f"The file is larger than this server accepts ({self.upload_mb} MB). "
                "Split it into smaller files, or ask the server's administrator to load it "
                "with the landexplorer command line."
            )
        return self.json_limit, (
            f"The request is larger than this server accepts ({self.json_kb:,} KB). "
            "Send less at once: a simpler shape, fewer layers or fewer drawn features."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._over_memory(scope):
            response = error_response(
                503, "overloaded",
                "The server is very busy just now. Please try again in a minute.",
                {"Retry-After": "30"},
            )  # fmt: skip
            await response(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b""):
            # no value of ours can hold a NUL (PostgreSQL text cannot): refuse it plainly
            response = error_response(
                400, "bad-request", "The address contains a NUL character (%00), which no "
                "value here can hold. Remove it and try again.",
            )  # fmt: skip
            await response(scope, receive, send)
            return
        limit, words = self._limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, send, words)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(words)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with budget.limit(self.timeout):
            try:
                await self.app(scope, counting_receive, watching_send)
            except BodyTooLarge:
                if not started:
                    await _refuse(scope, send, words)

    def _over_memory(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if not path.startswith(_HEAVY_PREFIXES) or resident_mb() <= self.memory_mb:
            return False
        # Memory freed by finished requests may still sit in the allocator: give it back
        # (at most once a second) before deciding, so a process is not refused for good.
        now = time.monotonic()
        if now - self._trimmed > 1.0:
            self._trimmed = now
            release_free_memory()
            return resident_mb() > self.memory_mb
        return True


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(scope: Scope, send: Send, words: str) -> None:
    """413, and the connection closed: the rest of the body is never read."""
    response = error_response(413, "too-large", words, {"Connection": "close"})

    async def no_body() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)
