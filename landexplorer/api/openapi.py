"""The OpenAPI document, made to tell the truth about what the server answers.

FastAPI's own document lists a 200 and a 422 "Validation Error" for each route. This server
answers validation errors with 400 and the one error body (``api/errors.py``), refuses work
with 404/413/422/503/504/507, answers conditional requests with 304, serves HEAD beside
GET and chooses media types per request. ``install(app)`` replaces ``app.openapi`` with a
builder that starts from FastAPI's document and then, in one place:

- gives every operation a stable, unique ``operationId`` (GET and HEAD used to share one);
- documents HEAD wherever the server answers it (same parameters, no bodies);
- lists the statuses each operation can really answer, each error with the one
  ``{"code", "description"}`` body (``components/schemas/Error``);
- names the real media types (JSON Schema, tiles, the web map's files, the HTML page);
- documents the request bodies and query parameters that routes read by hand.

The rules are by method and path, so a new route gets sensible entries without an edit
here; the tables below name what a rule cannot see (which routes send ETags, say).
"""

from __future__ import annotations

import copy
import re
import warnings
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, routing
from fastapi.openapi.utils import get_openapi

Doc = dict[str, Any]

GEOJSON = "application/geo+json"
JSON = "application/json"
SCHEMA_JSON = "application/schema+json"
HTML = "text/html"
MVT = "application/vnd.mapbox-vector-tile"
PNG = "image/png"

#: Stable operation ids of the routes as they are today (method, path) -> id. A route not
#: listed keeps the ``operation_id`` its decorator gives, else the camelCase of its
#: function's name. HEAD takes the GET id with ``head`` for ``get`` (see ``head_id``).
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("get", "/"): "getLandingPage",
    ("get", "/conformance"): "getConformance",
    ("get", "/config.json"): "getWebConfig",
    ("get", "/web/{asset}"): "getWebAsset",
    ("get", "/collections"): "getCollections",
    ("post", "/collections"): "createCollection",
    ("get", "/collections/{collectionId}"): "getCollection",
    ("put", "/collections/{collectionId}"): "replaceCollection",
    ("patch", "/collections/{collectionId}"): "updateCollection",
    ("delete", "/collections/{collectionId}"): "deleteCollection",
    ("get", "/collections/{collectionId}/queryables"): "getQueryables",
    ("get", "/collections/{collectionId}/schema"): "getSchema",
    ("get", "/collections/{collectionId}/items"): "getFeatures",
    ("get", "/collections/{collectionId}/items/{featureId}"): "getFeature",
    ("get", "/collections/{collectionId}/export"): "getExport",
    ("get", "/jobs/{jobId}"): "getJob",
    ("post", "/analysis/compare"): "compareLayers",
    ("post", "/analysis/report"): "reportArea",
    ("post", "/analysis/zonal"): "zonalStatistics",
}

#: Routes that send an ETag and answer ``If-None-Match`` with 304.
CONDITIONAL = {
    "/",
    "/web/{asset}",
    "/collections/{collectionId}/items",
    "/collections/{collectionId}/items/{featureId}",
    "/collections/{collectionId}/tiles/WebMercatorQuad/{z}/{x}/{y}",
    "/tiles/{collectionId}/{z}/{x}/{y}.{fmt}",
}

#: Media types of successful answers where the route's response class cannot say.
MEDIA_TYPES: dict[tuple[str, str], list[str]] = {
    ("get", "/"): [JSON, HTML],
    ("get", "/collections/{collectionId}/queryables"): [SCHEMA_JSON],
    ("get", "/collections/{collectionId}/schema"): [SCHEMA_JSON],
    ("get", "/web/{asset}"): [
        HTML,
        "text/javascript",
        "text/css",
        PNG,
        "image/svg+xml",
        JSON,
        "image/vnd.microsoft.icon",
        "application/manifest+json",
    ],
}

_LINKS: Doc = {
    "type": "array",
    "items": {"type": "object", "required": ["href", "rel"]},
}
_FEATURE_COLLECTION: Doc = {
    "type": "object",
    "required": ["type", "features", "numberReturned", "links"],
    "properties": {
        "type": {"const": "FeatureCollection"},
        "features": {"type": "array", "items": {"$ref": "#/components/schemas/Feature"}},
        "numberMatched": {"type": "integer", "minimum": 0},
        "numberReturned": {"type": "integer", "minimum": 0},
        "links": _LINKS,
    },
}
#: What a successful answer always holds (the schemas of documents the routes build by
#: hand); schemathesis checks every answer against them.
SCHEMAS: dict[str, Doc] = {
    "Feature": {
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"const": "Feature"},
            "id": {"type": ["integer", "string"]},
            "geometry": {"type": ["object", "null"]},
            "properties": {"type": ["object", "null"]},
        },
    },
    "FeatureCollection": _FEATURE_COLLECTION,
    "LandingPage": {"type": "object", "required": ["links"], "properties": {"links": _LINKS}},
    "Conformance": {
        "type": "object",
        "required": ["conformsTo"],
        "properties": {"conformsTo": {"type": "array", "items": {"type": "string"}}},
    },
    "Collection": {
        "type": "object",
        "required": ["id", "links"],
        "properties": {"id": {"type": "string"}, "links": _LINKS},
    },
    "Collections": {
        "type": "object",
        "required": ["collections", "links"],
        "properties": {
            "collections": {"type": "array", "items": {"$ref": "#/components/schemas/Collection"}},
            "links": _LINKS,
        },
    },
    "Job": {
        "type": "object",
        "required": ["jobID", "status", "links"],
        "properties": {
            "jobID": {"type": "string"},
            "status": {"type": "string"},
            "links": _LINKS,
        },
    },
    "SavedMapLink": {
        "type": "object",
        "required": ["id", "url", "links"],
        "properties": {"id": {"type": "string"}, "url": {"type": "string"}, "links": _LINKS},
    },
}
#: (method, path, status) -> the schema of its JSON answers.
RESPONSE_SCHEMAS: dict[tuple[str, str, str], str] = {
    ("get", "/", "200"): "LandingPage",
    ("get", "/conformance", "200"): "Conformance",
    ("get", "/collections", "200"): "Collections",
    ("get", "/collections/{collectionId}", "200"): "Collection",
    ("get", "/collections/{collectionId}/items", "200"): "FeatureCollection",
    ("get", "/collections/{collectionId}/items/{featureId}", "200"): "Feature",
    ("get", "/jobs/{jobId}", "200"): "Job",
    ("post", "/collections", "202"): "Job",
    ("put", "/collections/{collectionId}", "202"): "Job",
    ("post", "/maps", "201"): "SavedMapLink",
}

#: How an answer leads to the next request (OpenAPI links): (method, path, status) -> links.
LINKS: dict[tuple[str, str, str], Doc] = {
    ("post", "/collections", "202"): {
        "getJob": {"operationId": "getJob", "parameters": {"jobId": "$response.body#/jobID"}}
    },
    ("put", "/collections/{collectionId}", "202"): {
        "getJob": {"operationId": "getJob", "parameters": {"jobId": "$response.body#/jobID"}}
    },
    ("post", "/maps", "201"): {
        "getMap": {"operationId": "getMap", "parameters": {"mapId": "$response.body#/id"}},
        "openMap": {"operationId": "openMap", "parameters": {"mapId": "$response.body#/id"}},
    },
}

#: Routes that answer with a redirect rather than a body: (method, path) -> status.
REDIRECTS: dict[tuple[str, str], int] = {("get", "/m/{mapId}"): 303}

#: Query parameters a route reads from the request itself rather than its signature.
EXTRA_QUERY: dict[tuple[str, str], list[Doc]] = {
    ("get", "/"): [
        {
            "name": "f",
            "in": "query",
            "required": False,
            "description": "html for the web map; anything else gives the landing page JSON.",
            "schema": {"type": "string"},
        }
    ],
}
_F_FEATURES = {
    "name": "f",
    "in": "query",
    "required": False,
    "description": "Output format (default: the Accept header, else GeoJSON).",
    "schema": {"type": "string", "enum": ["geojson", "json", GEOJSON, JSON]},
}
EXTRA_QUERY[("get", "/collections/{collectionId}/items")] = [_F_FEATURES]
EXTRA_QUERY[("get", "/collections/{collectionId}/items/{featureId}")] = [_F_FEATURES]

#: What each error status means, in plain words (the description in the document).
ERROR_WORDS: dict[int, str] = {
    400: "The request could not be used as it is: the description says what to change.",
    401: (
        "This needs signing in: sign in on the web page, or send a personal access token "
        "as 'Authorization: Bearer <token>'."
    ),
    404: "There is nothing at this address (or it is not shared with you).",
    406: "That format is not offered here.",
    409: "That conflicts with what the catalogue holds (a layer with that id exists).",
    412: "The feature changed since you read it (its ETag no longer matches If-Match).",
    413: "The request is larger than this server accepts; send less at once.",
    415: "That kind of file or body is not supported here.",
    422: "The request is well formed but asks for more work than this server allows; "
    "the description says how to narrow it.",
    428: "Changing a feature needs the ETag you read it with, sent as If-Match.",
    429: "Too many requests from you just now; try again after Retry-After seconds.",
    503: "The server is too busy (or the layer is being replaced); try again shortly.",
    504: "The work took longer than this server allows and was stopped; ask for less.",
    507: "The disk holding the catalogue is full; nothing was changed.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string"},
    }
}
_ERROR_HEADERS: dict[int, Doc] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}
ERROR_SCHEMA: Doc = {
    "title": "Error",
    "type": "object",
    "description": "Every error the API answers has this body.",
    "required": ["code", "description"],
    "properties": {
        "code": {"type": "string", "description": "A stable code, e.g. not-found, too-large."},
        "description": {"type": "string", "description": "What went wrong and how to fix it."},
    },
}
_ETAG = {"ETag": {"description": "The version of this answer.", "schema": {"type": "string"}}}
_LOCATION = {"Location": {"description": "Where the result is.", "schema": {"type": "string"}}}

_WRITES = {"post", "put", "patch", "delete"}
_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
#: Paths whose work reads the store: a busy store, the memory ceiling and the time budget
#: apply (503, 504).
_STORE_PATHS = ("/collections", "/tiles/", "/analysis/")


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) serve the corrected document."""

    def openapi() -> Doc:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    setattr(app, "openapi", openapi)  # noqa: B010 (a method replaced on purpose)


def build(app: FastAPI) -> Doc:
    """FastAPI's document for ``app``, corrected (see the module docstring)."""
    with warnings.catch_warnings():
        # FastAPI warns of the GET/HEAD operation ids it shares; they are replaced below.
        warnings.simplefilter("ignore", UserWarning)
        doc = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
            servers=app.servers,
        )
    routes = _routes(app)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas.update(copy.deepcopy(SCHEMAS))
    _hand_read_bodies(doc, schemas)
    for path, item in doc.get("paths", {}).items():
        if "get" in item and "head" not in item and ("head", path) in routes:
            item["head"] = copy.deepcopy(item["get"])
        for method in [m for m in _METHODS if m in item]:
            op = item[method]
            op["parameters"] = op.get("parameters", []) + [
                p
                for p in EXTRA_QUERY.get(("get" if method == "head" else method, path), [])
                if p["name"] not in {q["name"] for q in op.get("parameters", [])}
            ]
            if not op["parameters"]:
                del op["parameters"]
            _responses(method, path, op)
    _operation_ids(doc, routes)
    _drop_unused_schemas(doc)
    return doc


@dataclass(frozen=True)
class _Route:
    name: str
    operation_id: str | None


def _routes(app: FastAPI) -> dict[tuple[str, str], _Route]:
    """(method, path) -> the route that answers it (the first one, as routing picks).

    FastAPI >= 0.130 keeps included routers lazily (``iter_route_contexts`` flattens them
    with their prefixes); older versions list every route in ``app.routes``.
    """
    flatten = getattr(routing, "iter_route_contexts", None)
    out: dict[tuple[str, str], _Route] = {}
    found: Any = flatten(app.routes) if flatten is not None else app.routes
    for route in found:
        original = getattr(route, "original_route", route)
        if not isinstance(original, routing.APIRoute):
            continue
        entry = _Route(str(route.name), route.operation_id)
        for method in route.methods or ():
            out.setdefault((method.lower(), str(route.path_format)), entry)
    return out


def _hand_read_bodies(doc: Doc, schemas: Doc) -> None:
    """Request bodies that routes parse themselves (no model in their signature)."""
    from landexplorer.api.routers.maps import SavedMap

    op = doc.get("paths", {}).get("/maps", {}).get("post")
    if op is None or "requestBody" in op:
        return
    model = SavedMap.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(model.pop("$defs", {}))
    schemas["SavedMap"] = model
    op["requestBody"] = {
        "required": True,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/SavedMap"}}},
    }


def _is_validation_error(response: Doc) -> bool:
    schema = response.get("content", {}).get(JSON, {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def error_statuses(method: str, path: str, op: Doc) -> set[int]:
    """The error statuses an operation can answer, by what it takes and where it is."""
    statuses: set[int] = set()
    has_body = "requestBody" in op
    if has_body or any(_can_refuse(p) for p in op.get("parameters", [])):
        statuses.add(400)
    if "{" in path:
        statuses.add(404)
    if has_body:
        statuses.add(413)
    if path.startswith(_STORE_PATHS):
        statuses |= {503, 504}
    if method in _WRITES and path.startswith("/collections"):
        statuses |= {401, 503, 507}
    if method in ("post", "put") and re.fullmatch(r"/collections(/\{collectionId\})?", path):
        statuses |= {409, 415}
    if method in ("put", "patch", "delete") and "/items/{featureId}" in path:
        statuses |= {409, 412, 428}
    if path.startswith("/analysis/"):
        statuses |= {404, 422}  # the layers named in the body; work past the limits
    if path == "/collections/{collectionId}/items":
        statuses |= {413, 422}  # filters past their size or depth, pages past the work limit
    if (method, path) == ("post", "/maps"):
        statuses |= {429, 503, 507}
    return statuses


_CONSTRAINTS = {"maxLength", "minLength", "pattern", "enum", "minimum", "maximum", "format"}


def _can_refuse(parameter: Doc) -> bool:
    """Can a value of this parameter be refused (400)? A free string cannot, at this level;
    a typed or constrained one can, and so can every query parameter the route parses
    itself (bbox, crs, filter: their text has a meaning the schema cannot state)."""
    schema = parameter.get("schema", {})
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    if parameter.get("in") == "query" and parameter.get("name") != "f":
        return True
    return any(s.get("type", "string") != "string" or _CONSTRAINTS & s.keys() for s in options)


def _error_response(status: int, head: bool) -> Doc:
    response: Doc = {"description": ERROR_WORDS.get(status, "The request failed.")}
    if status in _ERROR_HEADERS:
        response["headers"] = copy.deepcopy(_ERROR_HEADERS[status])
    if not head:
        response["content"] = {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}
    return response


def _responses(method: str, path: str, op: Doc) -> None:
    """Replace FastAPI's guesses with the statuses and media types the server answers."""
    responses: Doc = op.setdefault("responses", {})
    for code in [c for c, r in responses.items() if c == "422" and _is_validation_error(r)]:
        del responses[code]
    head = method == "head"
    read = method in ("get", "head")
    media = MEDIA_TYPES.get(("get" if head else method, path))
    redirect = REDIRECTS.get(("get" if head else method, path))
    if redirect is not None and "200" in responses:
        del responses["200"]
        responses[str(redirect)] = {
            "description": "See the address in Location.",
            "headers": copy.deepcopy(_LOCATION),
        }
    for code, response in responses.items():
        if not code.startswith("2"):
            continue
        if code == "204" or head:
            response.pop("content", None)
            continue
        if media is not None:
            response["content"] = {m: {} for m in media}
        if (method, path, code) in LINKS:
            response["links"] = copy.deepcopy(LINKS[(method, path, code)])
        name = RESPONSE_SCHEMAS.get((method, path, code))
        if name is not None:
            for kind, entry in response.get("content", {}).items():
                if kind.endswith("json"):
                    entry["schema"] = {"$ref": f"#/components/schemas/{name}"}
    if read and path in CONDITIONAL:
        for code in ("200", "204"):
            if code in responses:
                responses[code].setdefault("headers", {}).update(copy.deepcopy(_ETAG))
        responses["304"] = {
            "description": "Not modified: the copy you hold (If-None-Match) is current.",
            "headers": copy.deepcopy(_ETAG),
        }
    for code in ("201", "202"):
        if code in responses:
            responses[code].setdefault("headers", {}).update(copy.deepcopy(_LOCATION))
    for status in sorted(error_statuses("get" if head else method, path, op)):
        responses.setdefault(str(status), _error_response(status, head))
    if head:  # HEAD answers carry no body, whatever the GET's entries (copied) say
        for response in responses.values():
            response.pop("content", None)
    op["responses"] = dict(sorted(responses.items()))


def head_id(get_id: str) -> str:
    """The HEAD twin of a GET operation id: getMap -> headMap, exportX -> headExportX."""
    if get_id.startswith("get") and get_id[3:4].isupper():
        return "head" + get_id[3:]
    return "head" + get_id[:1].upper() + get_id[1:]


def _camel(name: str) -> str:
    first, *rest = [w for w in re.split(r"[^A-Za-z0-9]+", name) if w]
    return first + "".join(w[:1].upper() + w[1:] for w in rest)


def _operation_ids(doc: Doc, routes: dict[tuple[str, str], _Route]) -> None:
    """Stable, unique ids: the table, else the route's own id, else its function's name."""
    seen: set[str] = set()
    for path, item in doc.get("paths", {}).items():
        for method in [m for m in _METHODS if m in item]:
            base = "get" if method == "head" else method
            route = routes.get((base, path)) or routes.get((method, path))
            name = OPERATION_IDS.get((base, path))
            if name is None and route is not None:
                name = route.operation_id or _camel(route.name)
            name = name or _camel(f"{base} {path}")
            if method == "head":
                name = head_id(name)
            if name in seen:  # never two alike: fall back on method and path
                name = _camel(f"{method} {path}")
            seen.add(name)
            item[method]["operationId"] = name


def _drop_unused_schemas(doc: Doc) -> None:
    """Remove FastAPI's validation-error schemas once nothing refers to them."""
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        users = [doc.get("paths", {})] + [v for k, v in schemas.items() if k != name]
        if name in schemas and f"#/components/schemas/{name}'" not in repr(users):
            del schemas[name]
