"""Passwords (argon2id) and random secrets (tokens, sessions, share links).

Passwords are hashed with argon2id (``argon2-cffi``). Tokens, session ids and share
links are long random secrets, stored as their SHA-256: they are not guessable, so a
fast hash is enough, and the clear text is shown once and never kept.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: Prefixes that say what a secret is when someone finds one in a script or a log.
TOKEN_PREFIX = "lxt_"  # a personal access token
SESSION_PREFIX = "lxs_"  # a browser session (cookie)
ONCE_PREFIX = "lxo_"  # a one-time sign-in link
LINK_PREFIX = "lxl_"  # a layer's share link


@functools.lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with the library's recommended parameters


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Does ``password`` match ``stored``? Takes the same time when there is no account
    (``stored`` is None or blank), so a sign-in never reveals whether a name exists."""
    target = stored or _dummy_hash()
    try:
        ok = bool(_hasher().verify(target, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    return ok and bool(stored)


def new_secret(prefix: str) -> str:
    """A new random secret (256 bits) with its prefix."""
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What is stored of a secret: its SHA-256 in hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same(a: str, b: str) -> bool:
    """Compare two secrets (or digests) in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())


def csrf_for(session_secret: str) -> str:
    """The CSRF token of a session: derived from its secret, so nothing more is stored and
    only someone who can read the page's own answers (not another site) learns it."""
    return hashlib.sha256(b"csrf:" + session_secret.encode()).hexdigest()[:40]


def check_password_strength(password: str) -> str | None:
    """Why ``password`` is too weak, or None."""
    if len(password) < 10:
        return "A password needs at least 10 characters."
    if len(password) > 256:
        return "A password can have at most 256 characters."
    return None
