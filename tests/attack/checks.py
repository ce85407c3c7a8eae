"""What every answer to an attack must look like: no server error, and an error body in
plain words (``{"code", "description"}``, not an exception name)."""

from __future__ import annotations

import json
import re

import httpx

from tests.attack.raw import RawResponse

#: Words that mean an exception leaked into a description.
_LEAK = re.compile(
    r"Traceback|\b[A-Z][A-Za-z]*(Error|Exception)\b|did not expect|object has no attribute"
    r"|<[a-z_.]+ object at 0x"
)
#: 503/504 are right only where the time budget or the overload guard is the point.
BUDGET = frozenset({503, 504})


def describe(status: int | None, body: bytes, what: str) -> str:
    return f"{what}: {status} {body[:300]!r}"


def plain_error(
    status: int | None,
    body: bytes,
    what: str,
    *,
    allow: frozenset[int] = frozenset(),
) -> dict[str, str]:
    """An error answer (4xx, or one of ``allow``) with the one error body in words."""
    info = describe(status, body, what)
    assert status is not None, f"no answer at all: {info}"
    assert 400 <= status < 500 or status in allow, f"not a client error: {info}"
    try:
        doc = json.loads(body)
    except ValueError:
        raise AssertionError(f"the error body is not JSON: {info}") from None
    assert isinstance(doc, dict) and set(doc) == {"code", "description"}, info
    code, text = doc["code"], doc["description"]
    assert isinstance(code, str) and re.fullmatch(r"[a-z][a-z-]*", code), info
    assert isinstance(text, str) and len(text.split()) >= 3, f"not a sentence: {info}"
    assert not _LEAK.search(text), f"an exception leaked into the description: {info}"
    return doc


def no_server_error(
    status: int | None, body: bytes, what: str, *, allow: frozenset[int] = frozenset()
) -> None:
    """Any answer but a 5xx (outside ``allow``); an error answer must be in plain words."""
    info = describe(status, body, what)
    assert status is not None, f"no answer at all: {info}"
    assert status < 500 or status in allow, f"server error: {info}"
    if status >= 400 and status != 304:
        plain_error(status, body, what, allow=allow)


def ok_or_plain(r: httpx.Response | RawResponse, what: str, allow: frozenset[int] = BUDGET) -> None:
    """An httpx or raw answer: success, or an error in plain words (no unexpected 5xx)."""
    if isinstance(r, httpx.Response):
        no_server_error(r.status_code, r.content, what, allow=allow)
    else:
        no_server_error(r.status, r.body, what, allow=allow)
