"""Landing page and conformance (OGC API - Common / Features Part 1)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request

from landexplorer.api.deps import anyone
from landexplorer.api.responses import JSONResponse
from landexplorer.api.routing import get_and_head

#: Everything here is the same for every caller and names no layer.
router = APIRouter(tags=["Capabilities"], dependencies=[Depends(anyone)])

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
]


#: A Host header that is a plain host name or address with an optional port; anything
#: else (spaces, slashes, '@', quotes) is never copied into a link.
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$")
_LOCAL_NAMES = {"localhost", "127.0.0.1", "[::1]"}


def base_url(request: Request) -> str:
    """The service root for links in answers (no trailing slash).

    ``public_url`` from the settings when it is set (behind a proxy, the address the public
    uses). Otherwise the scheme the connection used (``X-Forwarded-Proto`` counts only from
    a trusted proxy: uvicorn applies it, or not, before we see the request) and the host the
    client asked for when it is localhost or one of ``allowed_hosts``; any other Host header
    is the client's say only, so links use the address the connection really arrived at.
    """
    settings = request.app.state.settings
    if settings.public_url:
        return str(settings.public_url).rstrip("/")
    scheme = request.url.scheme if request.url.scheme in ("http", "https") else "http"
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if not (
        _HOST.match(host)
        and (name.lower() in _LOCAL_NAMES or name.lower() in _allowed(settings.allowed_hosts))
    ):
        server = request.scope.get("server") or ("127.0.0.1", 80)
        address = f"[{server[0]}]" if ":" in str(server[0]) else str(server[0])
        default_port = {"http": 80, "https": 443}[scheme]
        host = address if server[1] in (None, default_port) else f"{address}:{server[1]}"
    root = request.scope.get("root_path", "").rstrip("/")
    return f"{scheme}://{host}{root}"


def _allowed(hosts: list[str]) -> set[str]:
    return {h.lower() for h in hosts}


def self_url(request: Request) -> str:
    """The address of this request for ``self`` links, built on ``base_url``."""
    query = request.url.query
    return f"{base_url(request)}{request.url.path}" + (f"?{query}" if query else "")


@get_and_head(router, "/", summary="Landing page")
def landing(request: Request) -> JSONResponse:
    """Links to the API description, conformance and the collections."""
    root = base_url(request)
    body: dict[str, Any] = {
        "title": request.app.title,
        "description": request.app.description,
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{root}/"},
            {
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.0",
                "href": f"{root}/openapi.json",
            },
            {"rel": "service-doc", "type": "text/html", "href": f"{root}/docs"},
            {"rel": "conformance", "type": "application/json", "href": f"{root}/conformance"},
            {"rel": "data", "type": "application/json", "href": f"{root}/collections"},
        ],
    }
    return JSONResponse(body)


@get_and_head(router, "/conformance", summary="Conformance classes")
def conformance() -> JSONResponse:
    """The conformance classes this server implements."""
    return JSONResponse({"conformsTo": CONFORMANCE})
