"""Who is asking (:class:`Actor`) and the words of the access model.

* A **user** is an account (name, password hash, admin flag, disabled flag).
* A **group** (a community group, a council team) has members, each in one role:
  ``viewer`` (sees the group's layers), ``contributor`` (also edits the features of the
  group's layers that are not private, uploads layers into the group and changes its
  own), ``steward`` (manages the group's layers, members and
  access requests). A site **admin** may do everything.
* A **layer** has an owner (a user name), an owning group and one visibility:
  ``private`` (owner, the group's stewards, admins), ``group`` (also every member),
  ``link`` (also anyone holding one of its share links) or ``public`` (everybody, once
  it has a licence).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: Member roles, weakest first.
ROLES: tuple[str, ...] = ("viewer", "contributor", "steward")
#: Layer visibilities, narrowest first.
VISIBILITIES: tuple[str, ...] = ("private", "group", "link", "public")
#: What a caller may ask to do with a layer. ``edit``: add, change and delete single
#: features (OGC API Features Part 4, the web page's editor); ``change``: the layer as a
#: whole (a new version from a file, its details).
ACTIONS: tuple[str, ...] = ("view", "download", "edit", "change", "manage")
#: Token scopes: ``read`` tokens never change anything.
SCOPES: tuple[str, ...] = ("read", "write")


def role_rank(role: str | None) -> int:
    """0 for no role, then 1 (viewer), 2 (contributor), 3 (steward)."""
    return ROLES.index(role) + 1 if role in ROLES else 0


def normalise_visibility(value: str) -> str:
    """A stored visibility in today's words (``hidden`` was the old name of private)."""
    return value if value in VISIBILITIES else "private"


@dataclass(frozen=True)
class Actor:
    """Who is asking, as far as access is concerned (built per request by the API)."""

    user: str = ""  # account name; "" for an anonymous caller
    admin: bool = False
    roles: Mapping[str, str] = field(default_factory=dict, hash=False)  # group -> role
    scope: str = "write"  # a ``read`` token may look but never change anything
    grants: frozenset[str] = frozenset()  # group layers granted by a steward (access requests)
    links: frozenset[str] = frozenset()  # layers whose share link came with the request
    via: str = "anonymous"  # "session", "token", "anonymous", "operator"

    @property
    def signed_in(self) -> bool:
        return bool(self.user) or self.via == "operator"

    @property
    def may_write(self) -> bool:
        return self.signed_in and self.scope == "write"

    def role_in(self, group: str) -> str | None:
        return self.roles.get(group) if group else None

    def with_links(self, layers: frozenset[str]) -> Actor:
        """The same actor holding share links of ``layers`` too."""
        if not layers:
            return self
        return Actor(
            user=self.user,
            admin=self.admin,
            roles=self.roles,
            scope=self.scope,
            grants=self.grants,
            links=self.links | layers,
            via=self.via,
        )

    def label(self) -> str:
        """How the audit log names this actor."""
        if self.via == "operator":
            return "operator (command line)"
        return self.user or "anonymous"


#: Someone on the internet without an account.
ANONYMOUS = Actor()
#: The person at the command line or in a notebook on the server itself: they hold the
#: catalogue's files, so they may do everything (the CLI has no HTTP in front of it).
OPERATOR = Actor(admin=True, via="operator")
