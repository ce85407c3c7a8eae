"""Who is asking: a session cookie, a bearer token or a share link turned into an Actor.

The :class:`Identify` middleware runs before routing and puts the request's
:class:`~landexplorer.access.model.Actor` in ``request.state.actor``; everything after it
asks :func:`actor_of`. What the actor may do is decided by ``landexplorer.access.policy``
only (through the dependencies in ``api/deps.py``), never here.

* ``Authorization: Bearer lxt_...``: a personal access token (analysts' tools, GDAL,
  OWSLib, scripts). A token that is unknown, expired or revoked is a 401 at once: a
  client that sent credentials wants to know they did not work.
* Cookie ``lx_session``: the web page's session (HttpOnly, SameSite=Lax, Secure behind
  HTTPS). A session that has ended is simply anonymous. Writes made with the cookie need
  the session's CSRF token in ``X-CSRF-Token`` (another site cannot read it).
* Query parameter ``link=lxl_...``: a layer's share link; whoever holds it sees that layer.

Nothing is trusted for coming from loopback: behind a reverse proxy every request does.
Looked-up actors are cached for a moment (``ttl``) in this process. Any change to people,
groups, grants or links made in this process clears the cache at once; one made by another
worker or server instance clears it when the catalogue's change epoch moves
(``catalog.changes``: milliseconds on PostGIS, at most a quarter of a second on a
GeoPackage, and when the change cannot be followed, nothing is kept at all). A request
with no credentials and no share link never looks at the cache.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from landexplorer.access import secrets
from landexplorer.access.model import ANONYMOUS, Actor
from landexplorer.access.store import AccessStore
from landexplorer.api.errors import error_response
from landexplorer.catalog.base import ChangeEpoch

SESSION_COOKIE = "lx_session"
CSRF_HEADER = "x-csrf-token"
LINK_PARAM = "link"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
#: Writes that need no CSRF token: they carry their own proof (a password, a one-time
#: link) and check the Origin header instead.
CSRF_EXEMPT = ("/auth/login", "/auth/once/")
_MAX_LINKS = 8


#: A secret of ours as it appears in a logged request line: its prefix, then the random part.
_SECRET_TEXT = re.compile(r"\b(lx[tsol]_)[A-Za-z0-9_-]{8,}")


def hide_secrets(text: str) -> str:
    """``text`` with the random part of every secret replaced by ``[hidden]``."""
    return _SECRET_TEXT.sub(r"\1[hidden]", text)


class HideSecrets(logging.Filter):
    """Keeps share links (``?link=lxl_...``) and one-time sign-in links
    (``/auth/once/lxo_...``) out of the server's access log: whoever reads a log must not
    be able to open a private layer or sign in as someone with what they find there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = hide_secrets(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(hide_secrets(a) if isinstance(a, str) else a for a in record.args)
        return True


def hide_secrets_in_logs(names: Iterable[str] = ("uvicorn.access", "uvicorn.error")) -> None:
    """Put :class:`HideSecrets` on the server's loggers (once each)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, HideSecrets) for f in logger.filters):
            logger.addFilter(HideSecrets())


class Authenticator:
    """Secrets to actors, with a short per-process cache."""

    def __init__(
        self,
        access: AccessStore,
        ttl: float = 2.0,
        max_entries: int = 10_000,
        changes: ChangeEpoch | None = None,
    ) -> None:
        self.access = access
        #: the longest an answer is kept even when nothing moved (a token's expiry passing)
        self.ttl = ttl
        self.max_entries = max_entries
        #: the catalogue's change epoch: other processes' changes (None: this process only)
        self.changes = changes
        self._cache: dict[tuple[str, str], tuple[float, tuple[int, int], Any]] = {}
        self._lock = threading.Lock()

    def _stamp(self) -> tuple[int, int]:
        epoch = self.changes.epoch() if self.changes is not None else 0
        return self.access.generation, epoch

    def _cached(self, key: tuple[str, str], stamp: tuple[int, int]) -> tuple[bool, Any]:
        hit = self._cache.get(key)
        if hit is None:
            return False, None
        expires, seen, value = hit
        if expires < time.monotonic() or seen != stamp:
            return False, None
        return True, value

    def _remember(self, key: tuple[str, str], value: Any, stamp: tuple[int, int]) -> None:
        # ``stamp`` was taken before the lookup: a change committed meanwhile moves the
        # epoch past it, so the answer is looked up again next time
        with self._lock:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + self.ttl, stamp, value)

    def peek(self, kind: str, secret: str) -> tuple[bool, Actor | None]:
        """(known, actor) from the cache only: never touches the database."""
        return self._cached((kind, secrets.digest(secret)), self._stamp())

    def actor(self, kind: str, secret: str) -> Actor | None:
        """The actor of a session (``kind="session"``) or token (``"token"``), or None."""
        key = (kind, secrets.digest(secret))
        stamp = self._stamp()
        known, value = self._cached(key, stamp)
        if known:
            return value  # type: ignore[no-any-return]
        actor = self.access.actor_for_secret(secret, kind)
        self._remember(key, actor, stamp)
        return actor

    def links(self, given: Iterable[str]) -> frozenset[str]:
        """The layers whose live share links are in ``given``."""
        wanted = sorted({s for s in given if s.startswith(secrets.LINK_PREFIX)})[:_MAX_LINKS]
        if not wanted:
            return frozenset()
        key = ("links", secrets.digest("\n".join(wanted)))
        stamp = self._stamp()
        known, value = self._cached(key, stamp)
        if known:
            return value  # type: ignore[no-any-return]
        layers = self.access.link_layers(wanted)
        self._remember(key, layers, stamp)
        return layers


class Credentials:
    """What a request presents, read from its raw headers and query string."""

    def __init__(self, scope: Scope) -> None:
        self.bearer: str | None = None
        self.session: str | None = None
        self.csrf: str | None = None
        self.origin: str | None = None
        self.host: str | None = None
        cookie_header = ""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                text = value.decode("latin-1")
                if text[:7].lower() == "bearer ":
                    self.bearer = text[7:].strip()
                else:
                    self.bearer = ""  # another scheme: not a credential we know
            elif name == b"cookie":
                cookie_header += value.decode("latin-1") + ";"
            elif name == CSRF_HEADER.encode():
                self.csrf = value.decode("latin-1")
            elif name == b"origin":
                self.origin = value.decode("latin-1")
            elif name == b"host":
                self.host = value.decode("latin-1")
        if SESSION_COOKIE in cookie_header:
            try:
                jar: SimpleCookie = SimpleCookie()
                jar.load(cookie_header)
                morsel = jar.get(SESSION_COOKIE)
                self.session = morsel.value if morsel else None
            except CookieError:
                self.session = None
        query = scope.get("query_string", b"")
        self.links: list[str] = []
        if LINK_PARAM.encode() in query:
            self.links = [
                v for k, v in parse_qsl(query.decode("latin-1"))[:100] if k == LINK_PARAM
            ][:_MAX_LINKS]


def _refusal(status: int, code: str, text: str, headers: dict[str, str] | None = None) -> Any:
    return error_response(status, code, text, headers)


INVALID_TOKEN = (
    "That access token is not valid: it may have expired or been revoked, or it was copied "
    "incompletely. Make a new one on the web page (your name > Access tokens) or with "
    "`landexplorer users token`."
)
OTHER_SCHEME = (
    "Only bearer tokens are understood here: send 'Authorization: Bearer lxt_...' with a "
    "personal access token."
)
CSRF_FAILED = (
    "This change came without the page's security check. Reload the page and try again "
    "(if it keeps happening, sign out and in again)."
)


class Identify:
    """ASGI middleware: the request's actor into ``scope["state"]["actor"]``."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, *, threaded: bool) -> None:
        self.app = app
        self.auth = authenticator
        #: Look secrets up in a worker thread (PostgreSQL: a network round trip) rather
        #: than on the event loop (SQLite: a few microseconds).
        self.threaded = threaded
        # uvicorn has set up its loggers before it builds the app: filter them now
        hide_secrets_in_logs()

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self.threaded:
            return await anyio.to_thread.run_sync(fn, *args)
        return fn(*args)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Credentials(scope)
        actor = ANONYMOUS
        session_secret: str | None = None
        if given.bearer is not None:
            if not given.bearer:
                await _refusal(401, "not-signed-in", OTHER_SCHEME, {"WWW-Authenticate": "Bearer"})(
                    scope, receive, send
                )
                return
            found = None
            if given.bearer.startswith(secrets.TOKEN_PREFIX) and len(given.bearer) < 200:
                found = await self._run(self.auth.actor, "token", given.bearer)
            if found is None:
                await _refusal(
                    401,
                    "invalid-token",
                    INVALID_TOKEN,
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )(scope, receive, send)
                return
            actor = found
        elif (
            given.session
            and given.session.startswith(secrets.SESSION_PREFIX)
            and len(given.session) < 200
        ):
            found = await self._run(self.auth.actor, "session", given.session)
            if found is not None:
                actor, session_secret = found, given.session
        if given.links:
            layers = await self._run(self.auth.links, given.links)
            actor = actor.with_links(layers)
        if (
            session_secret is not None
            and scope["method"] not in _SAFE_METHODS
            and not scope["path"].startswith(CSRF_EXEMPT)
            and not (given.csrf and secrets.same(given.csrf, secrets.csrf_for(session_secret)))
        ):
            await _refusal(403, "csrf", CSRF_FAILED)(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["actor"] = actor
        state["session_secret"] = session_secret
        await self.app(scope, receive, send)


def actor_of(request: Request) -> Actor:
    """The request's actor (anonymous unless :class:`Identify` found credentials)."""
    actor = request.scope.get("state", {}).get("actor")
    return actor if isinstance(actor, Actor) else ANONYMOUS


def session_secret_of(request: Request) -> str | None:
    """The session secret the request was signed in with (for sign-out and the CSRF
    token), or None."""
    value = request.scope.get("state", {}).get("session_secret")
    return value if isinstance(value, str) else None


def access_of(request: Request) -> AccessStore:
    """The app's access store (built by ``create_app``)."""
    access: AccessStore = request.app.state.access
    return access


def authenticator_of(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


def same_origin(request: Request) -> bool:
    """Is the request from a page of this server (or from no page at all)? Browsers send
    ``Origin`` on every cross-site POST; scripts and tools usually send none."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host
