"""Licences as SPDX expressions: reading them, what each obliges, and what combining obliges.

A layer's licence is an SPDX licence expression: an id (``OGL-UK-3.0``), a licence of the
layer's own (``LicenseRef-<name>``), ``+`` for "this version or later", an exception
(``GPL-2.0-only WITH Classpath-exception-2.0``), and several joined with ``AND`` (all of
them apply), ``OR`` (the user chooses one) and parentheses. :func:`parse` reads one into a
small tree and :func:`normalise` writes it back in the standard spelling (both in
``landexplorer.access.spdx``).

:data:`TERMS` says what the licences open land data uses oblige: credit the source
(attribution), share what you make from it under the same licence (share-alike), no
commercial use (non-commercial), or no changed versions at all (no-derivatives).

:func:`combine` takes the inputs of a result (anything with ``id``, ``licence`` and
``attribution``: analysis sources, catalogue entries) and says, in plain words, what the
result obliges, whether it may be published as a new layer, under which licence, and if
not, why not. For ``OR`` it takes the least demanding choice; for ``AND`` all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from landexplorer.access.spdx import (
    MAX_CHARS,
    AllOf,
    AnyOf,
    Expression,
    Licence,
    LicenceError,
    is_valid,
    normalise,
    parse,
)

__all__ = [
    "MAX_CHARS", "TERMS", "AllOf", "AnyOf", "Combined", "Expression", "Input", "Licence",
    "LicenceError", "Terms", "chosen", "combine", "derived_change_refusal", "derived_licence",
    "is_derived", "is_valid", "normalise", "parse", "publish_refusal", "terms_of",
]  # fmt: skip


# ------------------------------------------------------------------ what licences oblige
@dataclass(frozen=True)
class Terms:
    """What one licence asks of someone who uses the data or makes something from it."""

    id: str
    name: str
    attribution: bool = False
    share_alike: bool = False
    non_commercial: bool = False
    no_derivatives: bool = False
    url: str = ""

    @property
    def weight(self) -> int:
        """How demanding it is (for choosing among ``OR`` alternatives)."""
        return (
            8 * self.no_derivatives
            + 4 * self.non_commercial
            + 2 * self.share_alike
            + 1 * self.attribution
        )


def _t(id: str, name: str, url: str, flags: str = "") -> Terms:
    return Terms(
        id=id,
        name=name,
        attribution="by" in flags.split(),
        share_alike="sa" in flags.split(),
        non_commercial="nc" in flags.split(),
        no_derivatives="nd" in flags.split(),
        url=url,
    )


_CC = "https://creativecommons.org/"
_CCL = _CC + "licenses/"
_ODC = "https://opendatacommons.org/licenses/"
_OGL = "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/"

#: The licences open land data is published under, and what each obliges.
TERMS: dict[str, Terms] = {
    t.id: t
    for t in (
        _t("OGL-UK-3.0", "Open Government Licence v3.0", _OGL + "3/", "by"),
        _t("OGL-UK-2.0", "Open Government Licence v2.0", _OGL + "2/", "by"),
        _t("OGL-UK-1.0", "Open Government Licence v1.0", _OGL + "1/", "by"),
        _t("CC0-1.0", "Creative Commons Zero (public domain)", _CC + "publicdomain/zero/1.0/"),
        _t("PDDL-1.0", "Open Data Commons Public Domain Dedication", _ODC + "pddl/1-0/"),
        _t("CC-BY-4.0", "Creative Commons Attribution 4.0", _CCL + "by/4.0/", "by"),
        _t("CC-BY-3.0", "Creative Commons Attribution 3.0", _CCL + "by/3.0/", "by"),
        _t("CC-BY-SA-4.0", "CC Attribution-ShareAlike 4.0", _CCL + "by-sa/4.0/", "by sa"),
        _t("CC-BY-SA-3.0", "CC Attribution-ShareAlike 3.0", _CCL + "by-sa/3.0/", "by sa"),
        _t("CC-BY-NC-4.0", "CC Attribution-NonCommercial 4.0", _CCL + "by-nc/4.0/", "by nc"),
        _t("CC-BY-ND-4.0", "CC Attribution-NoDerivatives 4.0", _CCL + "by-nd/4.0/", "by nd"),
        _t(
            "CC-BY-NC-SA-4.0", "CC Attribution-NonCommercial-ShareAlike 4.0",
            _CCL + "by-nc-sa/4.0/", "by nc sa",
        ),
        _t(
            "CC-BY-NC-ND-4.0", "CC Attribution-NonCommercial-NoDerivatives 4.0",
            _CCL + "by-nc-nd/4.0/", "by nc nd",
        ),
        _t("ODbL-1.0", "Open Data Commons Open Database Licence", _ODC + "odbl/1-0/", "by sa"),
        _t("ODC-By-1.0", "Open Data Commons Attribution Licence", _ODC + "by/1-0/", "by"),
    )
}  # fmt: skip


def terms_of(licence: Licence) -> Terms | None:
    """What ``licence`` obliges, when landexplorer knows (``+`` and exceptions keep the
    base licence's terms: they only ever give more freedom)."""
    return TERMS.get(licence.id)


def _cost(tree: Expression) -> tuple[int, int]:
    """(licences whose terms are unknown, how demanding): lower is less demanding."""
    chosen = _choose(tree)
    unknown = sum(1 for lic in chosen if terms_of(lic) is None)
    worst = max((t.weight for lic in chosen if (t := terms_of(lic)) is not None), default=0)
    return unknown, worst


def _choose(tree: Expression) -> list[Licence]:
    """The licences that apply: all parts of an AND, the least demanding part of an OR."""
    if isinstance(tree, Licence):
        return [tree]
    if isinstance(tree, AllOf):
        return [lic for part in tree.parts for lic in _choose(part)]
    best = min(tree.parts, key=_cost)
    return _choose(best)


def chosen(text: str) -> list[Licence]:
    """The licences of ``text`` that apply (OR: the least demanding choice)."""
    return _choose(parse(text))


# ---------------------------------------------------------------------------- combining
class Credited(Protocol):
    """An input of a result: a layer id, its licence (an SPDX expression or "") and credit."""

    @property
    def id(self) -> str: ...
    @property
    def licence(self) -> str: ...
    @property
    def attribution(self) -> str: ...


@dataclass(frozen=True)
class Input:
    """One input of a combined result as it is shown."""

    id: str
    title: str
    licence: str
    attribution: str
    applies: tuple[str, ...]  # the licences chosen from the expression

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "licence": self.licence,
            "attribution": self.attribution,
        }


@dataclass(frozen=True)
class Combined:
    """What a result made from several layers obliges, and whether it may be published."""

    inputs: tuple[Input, ...]
    attribution: bool
    share_alike: bool
    non_commercial: bool
    no_derivatives: bool
    obligations: tuple[str, ...]  # plain words, one line each
    licence: str | None  # the licence a derived layer gets (None: it may not be published)
    reasons: tuple[str, ...] = field(default=())  # why it may not be published, in words

    @property
    def publishable(self) -> bool:
        return self.licence is not None and not self.reasons

    @property
    def reason(self) -> str:
        return " ".join(self.reasons)

    def summary(self) -> str:
        """One line: "Made from A (OGL-UK-3.0) and B (ODbL-1.0): credit ...; share alike ..."."""
        if not self.inputs:
            return "Made from no layer"
        made = _and([f"{i.title or i.id} ({i.licence or 'no licence given'})" for i in self.inputs])
        return f"Made from {made}: " + "; ".join(self.obligations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [i.to_dict() for i in self.inputs],
            "attribution": self.attribution,
            "share_alike": self.share_alike,
            "non_commercial": self.non_commercial,
            "no_derivatives": self.no_derivatives,
            "obligations": list(self.obligations),
            "summary": self.summary(),
            "may_publish": self.publishable,
            "derived_licence": self.licence if self.publishable else None,
            "why_not": self.reason or None,
        }


def _and(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def combine(inputs: Iterable[Credited]) -> Combined:
    """What a result made from ``inputs`` obliges, in plain words, and whether (and under
    which licence) it may be published as a new layer.

    >>> from landexplorer.analysis.sources import Source
    >>> c = combine([Source("a", licence="OGL-UK-3.0", attribution="Council"),
    ...              Source("b", licence="ODbL-1.0", attribution="OpenStreetMap")])
    >>> c.licence, c.share_alike
    ('ODbL-1.0', True)
    """
    seen: dict[str, Input] = {}
    applying: list[tuple[Input, Licence]] = []
    reasons: list[str] = []
    unreadable: list[str] = []
    for item in inputs:
        if item.id in seen:
            continue
        text = item.licence or ""
        licences: list[Licence] = []
        if text:
            try:
                licences = chosen(text)
            except LicenceError:
                unreadable.append(item.id)
        shown = Input(
            id=item.id,
            title=str(getattr(item, "title", "") or ""),
            licence=text,
            attribution=item.attribution or "",
            applies=tuple(str(lic) for lic in licences),
        )
        seen[item.id] = shown
        applying.extend((shown, lic) for lic in licences)
        if not text:
            reasons.append(f"'{item.id}' has no licence, so nothing made from it may be published.")
    for layer in unreadable:
        reasons.append(f"The licence of '{layer}' cannot be read, so its terms are not known.")
    known = [(i, lic, t) for i, lic in applying if (t := terms_of(lic)) is not None]
    unknown = [(i, lic) for i, lic in applying if terms_of(lic) is None]
    attribution = any(t.attribution for _, _, t in known)
    share_alike = any(t.share_alike for _, _, t in known)
    non_commercial = any(t.non_commercial for _, _, t in known)
    no_derivatives = any(t.no_derivatives for _, _, t in known)

    obligations: list[str] = []
    asks_credit = {i.id for i, _, t in known if t.attribution}
    credit = [
        f'"{i.attribution}"' if i.attribution else f"the source of '{i.id}'"
        for i in seen.values()
        if i.attribution or i.id in asks_credit
    ]
    if credit:
        obligations.append(f"credit {_and(credit)} wherever you show or share it")
    if share_alike:
        sa = sorted({str(lic) for _, lic, t in known if t.share_alike})
        obligations.append(
            f"share alike: anything you make from it and share must be under {_or(sa)} too"
        )
    if non_commercial:
        nc = _and(sorted({i.id for i, _, t in known if t.non_commercial}))
        obligations.append(f"non-commercial: no commercial use ({nc})")
    if no_derivatives:
        nd = _and(sorted({i.id for i, _, t in known if t.no_derivatives}))
        obligations.append(f"no derivatives: changed versions of {nd} may not be shared")
    for i, lic in unknown:
        obligations.append(
            f"check the terms of {lic} ('{i.id}') yourself: landexplorer does not know them"
        )
    for i in seen.values():
        if not i.licence:
            obligations.append(f"'{i.id}' has no licence: ask its owner before using it elsewhere")
    if not obligations and seen:
        obligations.append("no conditions: the inputs are in the public domain")
    if not seen:
        reasons.append("It is made from no layer.")

    for i, _, t in known:
        if t.no_derivatives:
            reasons.append(
                f"'{i.id}' is under {t.id} ({t.name}), which does not allow sharing "
                "anything made from it."
            )
    for i, lic in unknown:
        reasons.append(
            f"'{i.id}' is under {lic}, whose terms landexplorer does not know, so it cannot "
            "tell whether a result may be published: ask the layer's owner."
        )
    sa_licences = {lic.id: lic for _, lic, t in known if t.share_alike}
    licence: str | None = None
    if len(sa_licences) > 1:
        reasons.append(
            "Share-alike licences that differ cannot be combined: "
            + _and(sorted(sa_licences))
            + " each require what is made from them to be under that same licence."
        )
    elif sa_licences:
        (target,) = sa_licences.values()
        target_terms = TERMS[target.id]
        for i, lic, t in known:
            if t.non_commercial and not target_terms.non_commercial:
                reasons.append(
                    f"'{i.id}' is non-commercial ({lic}) but the share-alike licence {target} "
                    "allows commercial use, so they cannot be combined."
                )
        licence = str(Licence(target.id))
    else:
        licence = _conjunction([lic for _, lic, _ in known])
    if reasons:
        licence = None
    return Combined(
        inputs=tuple(seen.values()),
        attribution=attribution,
        share_alike=share_alike,
        non_commercial=non_commercial,
        no_derivatives=no_derivatives,
        obligations=tuple(obligations),
        licence=licence,
        reasons=tuple(dict.fromkeys(reasons)),
    )


def _or(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


_PUBLIC_DOMAIN = ("CC0-1.0", "PDDL-1.0")


def _conjunction(licences: Sequence[Licence]) -> str | None:
    """The licence of something made from inputs under ``licences`` (none share-alike):
    every licence that asks for something, joined with AND; public domain alone stays so."""
    ids = list(dict.fromkeys(lic.id for lic in licences))
    if not ids:
        return None
    asking = [i for i in ids if i not in _PUBLIC_DOMAIN]
    return " AND ".join(asking) if asking else ids[0]


def publish_refusal(combined: Combined, visibility: str) -> str | None:
    """Why a derived layer with these inputs may not have ``visibility`` (None: it may).
    Public and link layers are published; private and group layers are not."""
    if visibility not in ("public", "link") or combined.publishable:
        return None
    who = "everyone" if visibility == "public" else "anyone with its link"
    return (
        f"This result cannot be shared with {who}: {combined.reason} Keep it private or "
        "within your group."
    )


#: How a layer made by landexplorer from other layers names them in its ``source``.
DERIVED_SOURCE = "made by landexplorer from: "


def derived_licence(combined: Combined) -> str | None:
    """The licence a layer made from these inputs is stored with: the combined licence
    when it may be published; otherwise every input's licence joined with AND, so the
    layer carries their terms (and a later change to public is refused for the same
    reason). None when an input has no licence: then the layer stays unlicensed."""
    if combined.publishable:
        return combined.licence
    if any(not i.licence for i in combined.inputs):
        return None
    parts = list(dict.fromkeys(i.licence for i in combined.inputs))
    if len(parts) == 1:
        return parts[0]
    return " AND ".join(f"({p})" if " OR " in p.upper() else p for p in parts)


def is_derived(source: str) -> bool:
    """Whether a layer's ``source`` says landexplorer made it from other layers."""
    return source.startswith(DERIVED_SOURCE)


def derived_change_refusal(layer: Credited, source: str, changes: dict[str, str]) -> str | None:
    """Why ``changes`` (licence, visibility) may not be made to a layer landexplorer made
    from other layers (None: they may, or the layer was not made so)."""
    if not is_derived(source):
        return None
    if "licence" in changes and changes["licence"] != layer.licence:
        made_from = source[len(DERIVED_SOURCE) :]
        return (
            f"'{layer.id}' was made from other layers ({made_from}), so its licence comes "
            f"from theirs ({layer.licence or 'none'}) and cannot be changed here."
        )
    visibility = changes.get("visibility", "")
    if visibility in ("public", "link"):
        return publish_refusal(combine([layer]), visibility)
    return None
