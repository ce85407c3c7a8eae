"""Route helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import fastapi.routing
from fastapi import APIRouter

F = TypeVar("F", bound=Callable[..., Any])


def get_and_head(router: APIRouter, path: str, **kwargs: Any) -> Callable[[F], F]:
    """Register a GET route and the same endpoint for HEAD (GDAL sends HEAD first).

    HEAD is left out of the OpenAPI document: one operation per method with the same
    operation id would make the document invalid, and HEAD is implied by GET anyway.
    """

    def decorate(endpoint: F) -> F:
        router.add_api_route(path, endpoint, methods=["GET"], **kwargs)
        router.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False, **kwargs)
        return endpoint

    return decorate


def allowed_methods(app: Any, path: str) -> set[str]:
    """Every method some route of ``app`` answers at ``path`` (for ``Allow``, and to tell
    a write to a real route from one that routing will refuse with 404/405).

    FastAPI >= 0.130 keeps included routers lazily (``iter_route_contexts`` flattens them);
    older versions list every route in ``app.routes``.
    """
    if not hasattr(app, "routes"):  # not an app: assume anything may be answered
        return {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: Any = flatten(app.routes) if flatten is not None else app.routes
    methods: set[str] = set()
    for route in routes:
        regex, found = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and found and regex.match(path):
            methods |= set(found)
    return methods
