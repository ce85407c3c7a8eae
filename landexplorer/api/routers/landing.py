"""Landing page and conformance (OGC API - Common / Features Part 1)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from landexplorer.api.responses import JSONResponse
from landexplorer.api.routing import get_and_head

router = APIRouter(tags=["Capabilities"])

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
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


def base_url(request: Request) -> str:
    """The service root as the client sees it (no trailing slash)."""
    return str(request.base_url).rstrip("/")


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
