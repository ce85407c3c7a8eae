"""Checks made before a request body is read: the write token (sizes: ``api/limits.py``).

FastAPI parses a multipart body before any dependency runs, so without this a 200 MB
upload from someone without the token would be received in full before being refused.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from landexplorer.api.errors import error_response
from landexplorer.api.routing import allowed_methods
from landexplorer.settings import Settings

_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class WriteGuard:
    """Refuse writes to ``/collections`` without the token (401)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.token = settings.write_token

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
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        if not self.token:
            response = error_response(
                401, "permission-denied",
                "Changing layers over the web is switched off on this server "
                "(no write token is configured).",
            )  # fmt: skip
            await response(scope, receive, send)
            return
        if not (
            auth.lower().startswith("bearer ")
            and hmac.compare_digest(auth[7:].strip().encode(), self.token.encode())
        ):
            response = error_response(
                401, "permission-denied",
                "Changing layers needs the access token: "
                "send it as 'Authorization: Bearer <token>'.",
                {"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
