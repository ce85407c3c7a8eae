"""ETag and Cache-Control for read responses.

An ETag is a hash of the layer id, its version and the normalised request (path, sorted
query, media type), so it can be checked before any feature is read: replacing a layer
bumps its version and changes every tag at once.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from landexplorer.catalog import LayerEntry

CACHE_CONTROL = "public, max-age=60"


def etag_for(entry: LayerEntry, request: Request, media: str) -> str:
    """A strong ETag for this layer version and request."""
    items = sorted(request.query_params.multi_items())
    parts = (entry.id, entry.version, entry.updated, request.url.path, items, media)
    key = "\x00".join(str(part) for part in parts)
    return '"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'


def not_modified(request: Request, etag: str) -> Response | None:
    """A 304 when the client already holds this version, else None."""
    match = request.headers.get("if-none-match")
    if match and (
        match.strip() == "*" or etag in [m.strip().removeprefix("W/") for m in match.split(",")]
    ):
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})
    return None


def cache_headers(entry: LayerEntry, etag: str) -> dict[str, str]:
    """Headers for a cacheable response (private layers are not cached by shared caches)."""
    control = CACHE_CONTROL if entry.is_public else "private, max-age=60"
    return {"ETag": etag, "Cache-Control": control}
