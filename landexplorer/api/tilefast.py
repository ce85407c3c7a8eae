"""A fast path for cached tiles, in front of the FastAPI stack.

A map pans by asking for dozens of tiles a second, and most are already in the tile
cache. For a plain GET of a cached tile this ASGI middleware answers straight from the
cache, skipping routing, dependency injection and validation (about a third of the cost
of such a request). Anything else - a tile not drawn yet, a conditional or ranged
request, unusual query parameters, any error - goes on to the tiles router unchanged,
which gives the same bytes and headers for the same tile.

It stands in two places. In front of everything (``public_only``) it answers a public
layer's tile to a request without a token or an ``Origin``, exactly as fast as before
(``Identify`` costs a few microseconds even without credentials, a few per cent of such a
tile). Inside ``Identify`` and CORS it answers the rest: a public layer's tile to anyone,
and any other layer's tile only when the policy lets the actor ``Identify`` found see the
layer, with ``Cache-Control: private``; anyone else is left to the router (its 404). The
policy is asked before the cache is, so a cached tile is never handed to someone who may
not see its layer, whoever drew it first.

A vector tile goes out gzip-compressed to a client that accepts it (``Vary:
Accept-Encoding``), from the compressed copy the cache keeps (compressed once, when the
tile is drawn for such a client or first asked for compressed; never per request), the
same bytes as the router sends.

It keeps nothing of its own between requests: the layer's entry (its version, who may
see it) is read from the catalogue once on every request (the instance in front hands it
to the one inside in the request's state), so with several server processes a
change made through any of them is followed at once (docs/deploy.md).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from landexplorer.access.model import Actor
from landexplorer.access.policy import decide
from landexplorer.errors import LandExplorerError

_OGC = re.compile(r"^/collections/([a-z][a-z0-9_]{0,47})/tiles/WebMercatorQuad/(\d+)/(\d+)/(\d+)$")
_XYZ = re.compile(r"^/tiles/([a-z][a-z0-9_]{0,47})/(\d+)/(\d+)/(\d+)\.(mvt|pbf|png)$")
_SKIP_HEADERS = (b"if-none-match", b"range")
#: In front of Identify and CORS, also: a token (Identify checks it, a bad one is a 401)
#: and an Origin (CORS adds its headers).
_SKIP_HEADERS_PUBLIC = (*_SKIP_HEADERS, b"authorization", b"origin")
#: Query parameters the router ignores too: the web page's version stamp (``v``, so that a
#: new version is a new address) and a share link (read by ``Identify``).
_IGNORED = ("v", "link")
#: Where the instance in front leaves, for the one inside, the layer entry it read and
#: whether the tile was missing from the cache (one catalogue read per request, not two).
_SEEN = "cached_tiles_seen"


class CachedTiles:
    """ASGI middleware: serve cached tiles without entering the framework (public layers
    only with ``public_only``: it then stands in front of ``Identify``)."""

    def __init__(self, app: ASGIApp, public_only: bool = False) -> None:
        self.app = app
        self.public_only = public_only
        self.skip = _SKIP_HEADERS_PUBLIC if public_only else _SKIP_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            answer = self._cached(scope)
            if answer is not None:
                status, headers, body = answer
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _cached(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        path: str = scope["path"]
        match = _XYZ.match(path) or _OGC.match(path)
        if match is None:
            return None
        app: Any = scope.get("app")
        service = getattr(getattr(app, "state", None), "tiles", None)
        if service is None:
            return None
        if any(name in self.skip for name, _ in scope["headers"]):
            return None
        layer_id, z, x, y = (
            match.group(1),
            int(match.group(2)),
            int(match.group(3)),
            int(match.group(4)),
        )
        ext = match.group(5) if match.re is _XYZ else None
        query = [
            (k, v)
            for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"))
            if k not in _IGNORED
        ]
        state = scope.setdefault("state", {})
        seen = None if self.public_only else state.pop(_SEEN, None)
        try:
            if seen is not None and seen[0] == layer_id:
                entry, missed = seen[1], seen[2]  # read by the instance in front
                if missed:
                    return None  # not in the cache a moment ago either
            else:
                entry = service.store.get(layer_id)
            public = entry.is_public
            if not public:
                if self.public_only:
                    state[_SEEN] = (layer_id, entry, False)
                    return None  # asked again inside Identify, who knows the actor
                actor = scope.get("state", {}).get("actor")
                if not isinstance(actor, Actor) or not decide(actor, "view", entry).allowed:
                    return None  # the router answers (404: not revealed)
            if z > 24:
                return None
            if entry.data_type == "vector" and ext in (None, "mvt", "pbf"):
                if any(k != "properties" for k, _ in query) or len(query) > 1:
                    return None
                names = None
                if query:
                    names = [p.strip() for p in query[0][1].split(",") if p.strip()] or None
                key, _ = service.vector_request(entry, z, x, y, names)
                media = b"application/vnd.mapbox-vector-tile"
            elif entry.data_type == "raster" and ext in (None, "png") and not query:
                key, _, _ = service.raster_request(entry, z, x, y)
                media = b"image/png"
            else:
                return None
        except LandExplorerError:
            return None  # the router gives the proper error
        data = service.cache.get(key)
        if data is None:
            if self.public_only:
                state[_SEEN] = (layer_id, entry, True)
            return None
        from landexplorer.api.routers.tiles import cache_control, etag_of

        headers = [
            (b"etag", etag_of(key).encode()),
            (b"cache-control", cache_control(public).encode()),
        ]
        if not data:
            return 204, headers, b""
        packed = service.cache.compressed(key, data)
        if packed is not None:
            if accepts_gzip(scope):
                data = packed
                headers += [(b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding")]
            elif self.public_only:  # inside, the HTTP layer's compression adds it
                headers.append((b"vary", b"Accept-Encoding"))
        headers += [(b"content-length", str(len(data)).encode()), (b"content-type", media)]
        return 200, headers, data


def accepts_gzip(scope: Scope) -> bool:
    """Whether the request's Accept-Encoding takes gzip (``gzip``, or ``*``, not ``q=0``)."""
    for name, value in scope["headers"]:
        if name != b"accept-encoding":
            continue
        for part in value.decode("latin-1").lower().split(","):
            coding, _, params = part.partition(";")
            if coding.strip() not in ("gzip", "x-gzip", "*"):
                continue
            q = params.strip()
            if q.startswith("q="):
                try:
                    if float(q[2:]) <= 0:
                        continue
                except ValueError:
                    continue
            return True
    return False
