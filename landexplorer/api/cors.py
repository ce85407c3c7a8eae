"""Cross-origin reading (CORS): public answers for any web site, the rest for listed ones.

A web page on another site may read what anyone may read: ``GET`` and ``HEAD`` answers to
requests without credentials carry ``Access-Control-Allow-Origin: *`` by default (as tipg
and pygeoapi do). Without the token a request only ever sees public, licensed layers, so
such an answer holds nothing private.

Writes (every other method), requests carrying the token (``Authorization``) or cookies,
and preflights that ask for them are shared only with the origins in ``cors_origins``
(``*`` there means every origin): a page elsewhere cannot make a visitor's browser change
layers, nor read what the token shows.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from landexplorer.api.errors import error_response
from landexplorer.settings import Settings

_READ_METHODS = {"GET", "HEAD"}
_ALL_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
#: The one request header a page elsewhere may not send: the token. (Browsers never let a
#: page set ``Cookie``.) Any other header on a read changes nothing private.
_CREDENTIALS = "authorization"
#: Response headers pages may read: caching, the CRS of features, licence links, new ids.
EXPOSE = (
    "ETag, Content-Crs, Link, Location, Retry-After, Content-Disposition, Landexplorer-Change-Id"
)
_MAX_AGE = "600"


class PublicCORS:
    """``Access-Control-*`` headers on every answer that may have them (see module doc)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.origins = set(settings.cors_origins)
        self.any_origin = "*" in self.origins

    def _listed(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        method = scope["method"]
        if origin is None:
            await self.app(scope, receive, send)
            return
        if method == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(scope, receive, send, headers, origin)
            return
        public = method in _READ_METHODS and _CREDENTIALS not in headers and "cookie" not in headers
        if self._listed(origin):
            allow = origin
        elif public:
            allow = "*"
        else:
            await self.app(scope, receive, send)  # answered, but not shared with that page
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = allow
                out["Access-Control-Expose-Headers"] = EXPOSE
                if allow != "*":
                    out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, origin: str
    ) -> None:
        method = headers["access-control-request-method"].upper()
        asked = [
            h.strip().lower()
            for h in headers.get("access-control-request-headers", "").split(",")
            if h.strip()
        ]
        if self._listed(origin):
            allowed = {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": _ALL_METHODS,
                "Access-Control-Max-Age": _MAX_AGE,
                "Vary": "Origin",
            }
            if asked:
                allowed["Access-Control-Allow-Headers"] = ", ".join(asked)
        elif method in _READ_METHODS and _CREDENTIALS not in asked:
            allowed = {
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "GET, HEAD",
                "Access-Control-Max-Age": _MAX_AGE,
            }
            if asked:
                allowed["Access-Control-Allow-Headers"] = ", ".join(asked)
        else:
            what = "with an access token" if _CREDENTIALS in asked else f"with {method}"
            response = error_response(
                403,
                "permission-denied",
                f"This server shares public, read-only answers with every web site, but "
                f"not requests {what}. To let the site {origin} change layers or use the "
                "access token, add it to the server's LANDEXPLORER_CORS_ORIGINS.",
                {"Vary": "Origin"},
            )
            await response(scope, receive, send)
            return
        await Response(status_code=200, headers=allowed)(scope, receive, send)
