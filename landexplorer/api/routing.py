"""Route helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

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
