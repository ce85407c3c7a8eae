"""The refusals a people-and-sharing route can answer, for its OpenAPI ``responses=``.

Each is the one error body (``components/schemas/Error``) with what the status means
here, in plain words, so the document says what the route really answers.
"""

from __future__ import annotations

from typing import Any

_WORDS = {
    400: "The request's values could not be used: the description says what to change.",
    401: "This needs signing in (a session, or 'Authorization: Bearer <token>').",
    403: "You are signed in but may not do this: the description says who may.",
    404: "There is no such thing here, or you may not see it.",
    409: "That conflicts with how things are now (the description says why).",
    422: "The request is well formed but one of its values cannot be used.",
}


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for these error statuses (each with the Error body)."""
    return {
        status: {
            "description": _WORDS.get(status, "The request was refused."),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in statuses
    }


def answers(description: str, *statuses: int, code: int = 200) -> dict[int | str, Any]:
    """The success answer's words plus the refusals."""
    out: dict[int | str, Any] = {code: {"description": description}}
    out.update(refusals(*statuses))
    return out
