"""People for tests: accounts, groups and tokens made through the access store itself
(the same calls ``landexplorer users`` makes), never by writing its tables by hand."""

from __future__ import annotations

from landexplorer.access.store import AccessStore
from landexplorer.catalog import open_store
from landexplorer.settings import Settings


def with_access(settings: Settings) -> tuple[AccessStore, object]:
    """The access store of ``settings``' catalogue (close both when done)."""
    store = open_store(settings)
    return AccessStore.beside(store), store


def make_token(
    settings: Settings,
    user: str = "test-admin",
    *,
    admin: bool = True,
    scope: str = "write",
    groups: dict[str, str] | None = None,
) -> str:
    """A personal access token of ``user`` (made, with its groups, when missing)."""
    access, store = with_access(settings)
    try:
        if access.get_user(user) is None:
            access.add_user(user, admin=admin)
        for group, role in (groups or {}).items():
            if access.get_group(group) is None:
                access.add_group(group, group.replace("-", " ").title())
            access.set_member(group, user, role)
        secret, _ = access.create_token(user, "tests", scope, 30)
        return secret
    finally:
        access.close()
        store.close()  # type: ignore[attr-defined]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
