"""Response classes encoding with orjson (fast, NaN-safe: NaN/inf become null)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(content: Any) -> bytes:
    """JSON bytes; numpy values accepted, non-finite floats written as null."""
    return orjson.dumps(content, option=_OPTS, default=str)


class JSONResponse(Response):
    """``application/json`` encoded with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return dumps(content)


class GeoJSONResponse(JSONResponse):
    """``application/geo+json`` encoded with orjson."""

    media_type = "application/geo+json"
