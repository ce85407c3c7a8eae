"""One error body for every error the API returns: ``{"code": ..., "description": ...}``.

Domain errors map to a status through ``landexplorer.errors.http_status``; FastAPI's own
404/405/422 and anything unexpected are reshaped into the same body so clients (and
volunteers reading a browser tab) only ever see one shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from landexplorer.api.responses import JSONResponse
from landexplorer.api.routing import allowed_methods
from landexplorer.errors import LandExplorerError, http_status

log = logging.getLogger("landexplorer.api")

#: Plain-words descriptions for HTTP statuses raised by the framework itself.
_STATUS_WORDS = {
    400: ("bad-request", "The request could not be understood."),
    401: ("permission-denied", "This needs a valid access token."),
    403: ("permission-denied", "You are not allowed to do this."),
    404: ("not-found", "There is nothing at this address."),
    405: ("method-not-allowed", "This address does not accept that kind of request."),
    406: ("not-acceptable", "That format is not available here; ask for JSON or GeoJSON."),
    413: ("too-large", "The upload is too large."),
    415: ("unsupported-format", "That kind of file or body is not supported here."),
    422: ("bad-request", "Some of the request's values are not valid."),
    500: ("server-error", "Something went wrong on the server. Please try again later."),
}


class ApiError(Exception):
    """An HTTP error raised by the API layer with its own code and plain-words text."""

    def __init__(
        self, status: int, code: str, description: str, headers: dict[str, str] | None = None
    ):
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description
        self.headers = headers


def error_body(code: str, description: str) -> dict[str, str]:
    """The one error body."""
    return {"code": code, "description": description}


def error_response(
    status: int, code: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, description), status_code=status, headers=headers)


def _validation_text(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body", "header")]
        where = ".".join(loc) or "request"
        parts.append(f"'{where}': {err.get('msg', 'not valid')}")
    return "Some of the request's values are not valid: " + "; ".join(parts) + "."


def register_error_handlers(app: FastAPI) -> None:
    """Make every error (domain, HTTP, validation, unexpected) use the one body."""

    @app.exception_handler(LandExplorerError)
    async def _domain(_: Request, exc: LandExplorerError) -> JSONResponse:
        status = http_status(exc)
        if status >= 500:
            log.error("%s: %s (%s)", type(exc).__name__, exc.public, exc.detail)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return error_response(status, exc.code, exc.public, headers)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.description, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, words = _STATUS_WORDS.get(exc.status_code, ("error", "The request failed."))
        detail = (
            exc.detail
            if isinstance(exc.detail, str) and exc.status_code not in (404, 405)
            else words
        )
        headers: dict[str, Any] | None = getattr(exc, "headers", None)
        if exc.status_code == 405:  # every method of the path, not one router's share
            allowed = sorted(allowed_methods(request.app, request.url.path))
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        return error_response(exc.status_code, code, detail, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "bad-request", _validation_text(exc))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        code, words = _STATUS_WORDS[500]
        return error_response(500, code, words)
