"""Signing in and out, who am I, one-time sign-in links and personal access tokens.

* ``POST /auth/login`` (JSON name and password) starts a new session: a fresh secret
  every time, so a session id planted before sign-in is never promoted (fixation). The
  answer never says whether an account exists, and attempts are limited per address and
  per name.
* ``POST /auth/logout`` ends the session.
* ``GET /auth/me`` says who the caller is, their groups and (for the page) the CSRF token.
* ``GET``/``POST /auth/once/{secret}``: the one-time sign-in link printed by the command
  line (first run, new accounts, lost passwords, ``make demo``). GET shows a button and
  changes nothing (link previews must not use the link up); POST signs in.
* ``/auth/tokens``: personal access tokens for tools and scripts, shown once.
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from landexplorer.access import secrets
from landexplorer.api.auth import (
    SESSION_COOKIE,
    access_of,
    actor_of,
    same_origin,
    session_secret_of,
)
from landexplorer.api.deps import Anyone, SignedIn, SignedInWriter, settings_of
from landexplorer.api.errors import ApiError
from landexplorer.api.ratelimit import RateLimit
from landexplorer.api.responses import JSONResponse

router = APIRouter(tags=["Accounts"])

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string"},
    }
}
#: What the account routes' refusals mean, in plain words (their OpenAPI entries).
_REFUSALS: dict[int, dict[str, Any]] = {
    401: {"description": "Not signed in (or the name and password do not match)."},
    403: {
        "description": "Not allowed: a read-only token, a wrong current password, a "
        "request from another site, or a change without the page's security check."
    },
    429: {"description": "Too many attempts just now.", "headers": _RETRY_AFTER},
}


def _refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the refusals a route can answer, each with the one error body."""
    return {s: {**_REFUSALS[s], "content": _ERROR} for s in statuses}


SESSION_HOURS = 24 * 14
_BAD_SIGN_IN = "That name and password do not match an account here."
_NOT_FROM_HERE = "Signing in is only possible from this server's own page."


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(max_length=100)
    password: str = Field(max_length=256)


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(max_length=80, examples=["QGIS at home"])
    scope: str = Field(default="read", pattern="^(read|write)$")
    days: int = Field(default=90, ge=1, le=366)


class NewPassword(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    current: str = Field(max_length=256)
    new: str = Field(max_length=256)


def _limits(request: Request) -> tuple[RateLimit, RateLimit]:
    state = request.app.state
    if not hasattr(state, "login_rate"):
        # 10 tries per name and 30 per address in 5 minutes: enough for typing mistakes,
        # far too few for guessing (and argon2 makes each try cost the guesser too)
        state.login_rate = (RateLimit(10, 300.0), RateLimit(30, 300.0))
    limits: tuple[RateLimit, RateLimit] = state.login_rate
    return limits


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _https(request: Request) -> bool:
    public = settings_of(request).public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


def _set_session(request: Request, response: Response, secret: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=SESSION_HOURS * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_https(request),
    )


def _me(request: Request, secret: str | None = None) -> dict[str, Any]:
    actor = actor_of(request)
    if not actor.user:
        return {"signed_in": False}
    access = access_of(request)
    user = access.get_user(actor.user)
    groups = []
    for name, role in sorted(actor.roles.items()):
        group = access.get_group(name)
        groups.append({"name": name, "title": group.title if group else name, "role": role})
    doc: dict[str, Any] = {
        "signed_in": True,
        "user": actor.user,
        "display": (user.display if user else "") or actor.user,
        "admin": actor.admin,
        "via": actor.via,
        "scope": actor.scope,
        "groups": groups,
    }
    secret = secret or session_secret_of(request)
    if secret:
        doc["csrf"] = secrets.csrf_for(secret)
    return doc


@router.post(
    "/auth/login", summary="Sign in", operation_id="signIn", responses=_refusals(401, 403, 429)
)
async def sign_in(
    request: Request, _: Anyone, body: Annotated[Credentials, Body()]
) -> JSONResponse:
    """Check a name and password; on success a new session cookie (HttpOnly)."""
    if not same_origin(request):
        raise ApiError(403, "forbidden", _NOT_FROM_HERE)
    by_name, by_address = _limits(request)
    for limit, key in ((by_address, _client(request)), (by_name, body.name.lower()[:100])):
        wait = limit.allow(key)
        if wait:
            raise ApiError(
                429, "too-many-requests",
                f"Too many sign-in attempts. Please wait {int(wait) + 1} seconds and try "
                "again.",
                {"Retry-After": str(int(wait) + 1)},
            )  # fmt: skip
    access = access_of(request)
    user = await run_in_threadpool(access.check_password, body.name, body.password)
    if user is None:
        access.audit(body.name[:40] or "?", "sign-in refused", address=_client(request))
        raise ApiError(401, "not-signed-in", _BAD_SIGN_IN)
    secret = await run_in_threadpool(access.create_session, user.name, SESSION_HOURS)
    access.audit(user.name, "sign-in", via="password")
    request.scope.setdefault("state", {})["actor"] = access.actor_for_user(user.name)
    response = JSONResponse(_me(request, secret))
    _set_session(request, response, secret)
    return response


@router.post("/auth/logout", summary="Sign out", operation_id="signOut", responses=_refusals(403))
def sign_out(request: Request, _: Anyone) -> JSONResponse:
    """End this session (and forget the cookie)."""
    secret = session_secret_of(request)
    actor = actor_of(request)
    if secret:
        access_of(request).end_session(secret)
        access_of(request).audit(actor, "sign-out")
    response = JSONResponse({"signed_in": False})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/auth/me", summary="Who is signed in", operation_id="whoAmI")
def who_am_i(request: Request, _: Anyone) -> JSONResponse:
    """The signed-in account, its groups and roles, and the page's CSRF token."""
    return JSONResponse(_me(request), headers={"Cache-Control": "no-store"})


OnceSecret = Annotated[str, PathParam(alias="secret", max_length=200)]

_ONCE_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Sign in - Land Explorer</title>
<style>body{{font:16px system-ui,sans-serif;max-width:30em;margin:4em auto;padding:0 1em}}
button{{font-size:1.1em;padding:.5em 1.2em}}</style></head><body>
<h1>Sign in to Land Explorer</h1><p>{text}</p>{form}</body></html>"""


@router.get(
    "/auth/once/{secret}",
    summary="A one-time sign-in link",
    operation_id="signInLinkPage",
    response_class=HTMLResponse,
)
def sign_in_link_page(request: Request, _: Anyone, secret: OnceSecret) -> HTMLResponse:
    """The page a one-time link opens: one button that signs in (the link works once)."""
    form = (
        f'<form method="post" action="/auth/once/{html.escape(secret, quote=True)}">'
        '<button type="submit" id="sign-in-once">Sign in</button></form>'
    )
    text = "This link signs you in once. It stops working when used or after an hour."
    return HTMLResponse(
        _ONCE_PAGE.format(text=text, form=form),
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@router.post(
    "/auth/once/{secret}",
    summary="Sign in with a one-time link",
    operation_id="signInWithLink",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {
            "description": "Signed in (a new session cookie): on to the map at Location.",
            "headers": {
                "Location": {"description": "The map.", "schema": {"type": "string"}},
                "Set-Cookie": {"description": "The new session.", "schema": {"type": "string"}},
            },
        },
        400: {
            "description": "A link that has been used already or has expired: a page "
            "that says so (text/html); a link that cannot be one: the error body.",
            "content": {**_ERROR, "text/html": {"schema": {"type": "string"}}},
        },
        **_refusals(403, 429),
    },
)
async def sign_in_with_link(request: Request, _: Anyone, secret: OnceSecret) -> Response:
    """Use up a one-time link: a new session, then on to the map."""
    if not same_origin(request):
        raise ApiError(403, "forbidden", _NOT_FROM_HERE)
    wait = _limits(request)[1].allow(_client(request))
    if wait:
        raise ApiError(429, "too-many-requests", "Too many attempts. Please wait a minute.",
                       {"Retry-After": str(int(wait) + 1)})  # fmt: skip
    access = access_of(request)
    user = await run_in_threadpool(access.use_sign_in_link, secret)
    if user is None:
        return HTMLResponse(
            _ONCE_PAGE.format(
                text="This sign-in link has been used already or has expired. Ask the "
                "person who runs this server for a new one (<code>landexplorer users "
                "reset-password NAME</code> prints one).",
                form='<p><a href="/">Go to the map</a></p>',
            ),
            status_code=400,
            headers={"Cache-Control": "no-store"},
        )
    session = await run_in_threadpool(access.create_session, user, SESSION_HOURS)
    access.audit(user, "sign-in", via="one-time link")
    response = RedirectResponse("/", status_code=303)
    _set_session(request, response, session)
    return response


@router.post(
    "/auth/password",
    summary="Change my password",
    operation_id="changePassword",
    responses=_refusals(401, 403),
)
async def change_password(
    request: Request, actor: SignedInWriter, body: Annotated[NewPassword, Body()]
) -> JSONResponse:
    """Set a new password (the current one is needed unless the account has none yet,
    as after a one-time link). Other sessions end; this one goes on."""
    access = access_of(request)
    user = access.get_user(actor.user)
    if user is None:
        raise ApiError(403, "forbidden", "Only an account has a password.")
    if user.has_password:
        ok = await run_in_threadpool(access.check_password, actor.user, body.current)
        if ok is None:
            raise ApiError(403, "forbidden", "The current password is not right.")
    await run_in_threadpool(access.set_password, actor.user, body.new)
    access.audit(actor, "password changed")
    if not session_secret_of(request):
        return JSONResponse(_me(request) | {"password_changed": True})
    # set_password ended every session: this browser gets a new one
    fresh = await run_in_threadpool(access.create_session, actor.user, SESSION_HOURS)
    response = JSONResponse(_me(request, fresh) | {"password_changed": True})
    _set_session(request, response, fresh)
    return response


@router.get(
    "/auth/tokens",
    summary="My access tokens",
    operation_id="listTokens",
    responses=_refusals(401),
)
def list_tokens(request: Request, actor: SignedIn) -> JSONResponse:
    """Names, scopes, expiry and last use of the caller's tokens (never the secrets)."""
    tokens = access_of(request).list_tokens(actor.user)
    return JSONResponse({"tokens": [t.public() for t in tokens]})


@router.post(
    "/auth/tokens",
    status_code=201,
    summary="Make an access token",
    operation_id="createToken",
    responses=_refusals(401, 403),
)
def create_token(
    request: Request, actor: SignedInWriter, body: Annotated[NewToken, Body()]
) -> JSONResponse:
    """A new personal access token. The secret is in this answer only: copy it now."""
    if not actor.user:
        raise ApiError(403, "forbidden", "Only an account can have tokens.")
    access = access_of(request)
    secret, info = access.create_token(actor.user, body.name, body.scope, body.days)
    access.audit(actor, "token created", token=info.id, name=info.name, scope=info.scope)
    return JSONResponse(
        info.public() | {"token": secret},
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@router.delete(
    "/auth/tokens/{tokenId}",
    status_code=204,
    summary="Revoke an access token",
    operation_id="revokeToken",
    response_class=Response,
    responses=_refusals(401, 403),
)
def revoke_token(
    request: Request,
    actor: SignedInWriter,
    token_id: Annotated[str, PathParam(alias="tokenId", max_length=40)],
) -> Response:
    """Revoke one of the caller's tokens: it stops working at once."""
    access = access_of(request)
    if not access.revoke_token(actor.user, token_id):
        raise ApiError(404, "not-found", "You have no token with that id.")
    access.audit(actor, "token revoked", token=token_id)
    return Response(status_code=204)
