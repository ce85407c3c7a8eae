"""SPDX licence expressions, read here: ids, ``LicenseRef-<name>``, ``+`` ("this version
or later"), ``WITH`` an exception, ``AND``, ``OR`` and brackets (``AND`` binds tighter).

:func:`parse` reads an expression into a small tree (:class:`Licence`, :class:`AllOf`,
:class:`AnyOf`) and :func:`normalise` writes it back as SPDX spells it. Operators may be
written in any case. The ids known are the SPDX licence list as the ``license-expression``
package (a dependency of landexplorer) carries it, with its aliases, plus the licences
open land data uses (``COMMON``); what they oblige is ``landexplorer.access.licences``'.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

#: Longest licence expression accepted.
MAX_CHARS = 200

_REF = re.compile(r"^(?:DocumentRef-[A-Za-z0-9.\-]+:)?LicenseRef-[A-Za-z0-9.\-]+$", re.I)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")
_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")
_OPERATORS = {"AND", "OR", "WITH"}


class LicenceError(ValueError):
    """An expression that is not a licence expression, in plain words. ``unknown`` is the
    id that is not known, when that is what is wrong."""

    def __init__(self, message: str, unknown: str = "") -> None:
        super().__init__(message)
        self.unknown = unknown


#: The licences open land data is published under (always known, whatever the list says).
COMMON: tuple[str, ...] = (
    "OGL-UK-3.0", "OGL-UK-2.0", "OGL-UK-1.0", "CC0-1.0", "PDDL-1.0", "CC-BY-4.0",
    "CC-BY-3.0", "CC-BY-SA-4.0", "CC-BY-SA-3.0", "CC-BY-NC-4.0", "CC-BY-ND-4.0",
    "CC-BY-NC-SA-4.0", "CC-BY-NC-ND-4.0", "ODbL-1.0", "ODC-By-1.0",
)  # fmt: skip


@functools.cache
def _known() -> dict[str, tuple[str, bool]]:
    """Every licence and exception id landexplorer accepts, by its lower-case spelling:
    (standard spelling, is an exception): the SPDX licence list as the
    ``license-expression`` package (a dependency) carries it, and ``COMMON``."""
    known: dict[str, tuple[str, bool]] = {}
    try:
        from license_expression import get_spdx_licensing

        for key, symbol in get_spdx_licensing().known_symbols.items():
            if key.startswith("LicenseRef-"):
                continue  # the package's own names, not SPDX ids
            for name in (key, *symbol.aliases):
                if not name.startswith("LicenseRef-"):
                    known.setdefault(name.lower(), (symbol.key, bool(symbol.is_exception)))
    except ImportError:  # pragma: no cover - a dependency, but COMMON is enough
        pass
    for key in COMMON:
        known[key.lower()] = (key, False)
    return known


# ------------------------------------------------------------------------ expressions
@dataclass(frozen=True)
class Licence:
    """One licence in an expression: an id (``+`` for "or later"), maybe ``WITH`` an exception."""

    id: str
    or_later: bool = False
    exception: str = ""

    def __str__(self) -> str:
        text = self.id + ("+" if self.or_later else "")
        return f"{text} WITH {self.exception}" if self.exception else text


@dataclass(frozen=True)
class AllOf:
    """``A AND B``: every part applies."""

    parts: tuple[Expression, ...]

    def __str__(self) -> str:
        return " AND ".join(f"({p})" if isinstance(p, AnyOf) else str(p) for p in self.parts)


@dataclass(frozen=True)
class AnyOf:
    """``A OR B``: the user chooses one part."""

    parts: tuple[Expression, ...]

    def __str__(self) -> str:
        return " OR ".join(str(p) for p in self.parts)


Expression = Licence | AllOf | AnyOf


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokens(text)
        self.at = 0

    @staticmethod
    def _tokens(text: str) -> list[str]:
        out: list[str] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:  # only trailing blanks are left
                break
            out.append(match.group(1))
            pos = match.end()
        return out

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise LicenceError(f"'{self.text}' ends too soon: a licence id is missing at the end.")
        self.at += 1
        return token

    def expression(self) -> Expression:
        parts = [self.all_of()]
        while (self.peek() or "").upper() == "OR":
            self.take()
            parts.append(self.all_of())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def all_of(self) -> Expression:
        parts = [self.one()]
        while (self.peek() or "").upper() == "AND":
            self.take()
            parts.append(self.one())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def one(self) -> Expression:
        token = self.take()
        if token == "(":
            inner = self.expression()
            if self.peek() != ")":
                raise LicenceError(f"'{self.text}' opens a bracket that is never closed.")
            self.take()
            return inner
        if token == ")" or token.upper() in _OPERATORS:
            raise LicenceError(f"'{self.text}' has '{token}' where a licence id should be.")
        licence = _licence(token, self.text)
        if (self.peek() or "").upper() == "WITH":
            self.take()
            exception = self.take()
            known = _known().get(exception.lower())
            if known is None or not known[1]:
                raise LicenceError(
                    f"'{exception}' is not a licence exception landexplorer knows (WITH is "
                    "followed by an exception such as Classpath-exception-2.0)."
                )
            licence = Licence(licence.id, licence.or_later, known[0])
        return licence


def _licence(token: str, text: str) -> Licence:
    if _REF.match(token):
        head, _, tail = token.rpartition(":")
        ref = "LicenseRef-" + tail[len("LicenseRef-") :]
        prefix = head[len("DocumentRef-") :] if head else ""
        return Licence(f"DocumentRef-{prefix}:{ref}" if head else ref)
    whole = _known().get(token.lower())  # some ids are written with '+' (GPL-2.0+)
    if whole is not None and not whole[1]:
        return Licence(whole[0])
    or_later = token.endswith("+")
    bare = token[:-1] if or_later else token
    if not _ID.match(bare):
        raise LicenceError(f"'{token}' in '{text}' is not written like a licence id.")
    known = _known().get(bare.lower())
    if known is None or known[1]:
        raise LicenceError(f"'{bare}' is not a licence id landexplorer knows.", unknown=bare)
    return Licence(known[0], or_later)


def parse(text: str) -> Expression:
    """An SPDX licence expression as a tree, or :class:`LicenceError` in plain words.

    >>> str(parse("ogl-uk-3.0 and (cc-by-4.0 or odbl-1.0)"))
    'OGL-UK-3.0 AND (CC-BY-4.0 OR ODbL-1.0)'
    """
    stripped = " ".join(text.split())
    if not stripped:
        raise LicenceError("The licence is blank.")
    if len(stripped) > MAX_CHARS:
        raise LicenceError(f"The licence is longer than {MAX_CHARS} characters.")
    parser = _Parser(stripped)
    tree = parser.expression()
    if parser.peek() is not None:
        extra = parser.peek()
        if extra == ")":
            raise LicenceError(f"'{stripped}' closes a bracket that was never opened.")
        raise LicenceError(
            f"'{stripped}' has '{extra}' where AND, OR or the end was expected "
            "(several licences are joined with AND or OR)."
        )
    return tree


def normalise(text: str) -> str:
    """``text`` in the standard SPDX spelling (ids as SPDX writes them, operators in
    capitals), or :class:`LicenceError`."""
    return str(parse(text))


def is_valid(text: str) -> bool:
    """Whether ``text`` is a licence expression landexplorer accepts."""
    try:
        parse(text)
    except LicenceError:
        return False
    return True
