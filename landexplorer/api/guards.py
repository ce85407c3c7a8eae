"""Checks made before a request body is read: is the caller signed in to write at all?
(sizes: ``api/limits.py``; who may change what: the policy, in the routes).

FastAPI parses a multipart body before any dependency runs, so without this a 200 MB
upload from someone not signed in would be received in full before being refused.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from landexplorer.access.model import ANONYMOUS, Actor
from landexplorer.api.errors import error_response
from landexplorer.api.routing import allowed_methods

_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class WriteGuard:
    """Refuse writes to ``/collections`` from callers who cannot write anything (401/403)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _WRITE_METHODS
            or not scope["path"].startswith("/collections")
            # no route takes this write: routing answers 404/405, no body is read
            or scope["method"] not in allowed_methods(scope.get("app"), scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        actor = scope.get("state", {}).get("actor", ANONYMOUS)
        if not isinstance(actor, Actor) or not actor.signed_in:
            response = error_response(
                401, "not-signed-in",
                "Changing layers needs signing in: sign in on the web page, or send a "
                "personal access token as 'Authorization: Bearer <token>'.",
                {"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
            await response(scope, receive, send)
            return
        if not actor.may_write:
            response = error_response(403, "forbidden", "A read-only token cannot change anything.")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
