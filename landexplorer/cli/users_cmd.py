"""``landexplorer users ...``, ``landexplorer groups ...`` and ``landexplorer audit``:
people, groups and the audit log from the command line.

Every change made here is written to the audit log as the operator (the person at the
server's command line, :data:`~landexplorer.access.model.OPERATOR`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.table import Table

from landexplorer.access.model import OPERATOR, ROLES
from landexplorer.access.store import AccessStore, Group
from landexplorer.cli.app import app, out, print_json, state
from landexplorer.errors import InputError
from landexplorer.settings import Settings

users_app = typer.Typer(
    help="Accounts: add, list, disable, enable, reset a password, make a token.",
    no_args_is_help=True,
)
groups_app = typer.Typer(
    help="Groups and their members (viewer, contributor, steward).", no_args_is_help=True
)
app.add_typer(users_app, name="users")
app.add_typer(groups_app, name="groups")

#: How long a one-time sign-in link printed here stays valid.
LINK_MINUTES = 60


def public_base(settings: Settings) -> str:
    """The server's address as people reach it: ``public_url`` when set, else
    ``http://<host>:<port>`` from the settings."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{settings.port}"


def sign_in_url(settings: Settings, access: AccessStore, user: str) -> str:
    """A fresh one-time sign-in link for ``user`` (valid for :data:`LINK_MINUTES`)."""
    secret = access.create_sign_in_link(user, LINK_MINUTES)
    access.audit(OPERATOR, "sign-in link made", user=user, minutes=LINK_MINUTES)
    return f"{public_base(settings)}/auth/once/{secret}"


def _access() -> AccessStore:
    return AccessStore.beside(state.store())


def _settings() -> Settings:
    assert state.settings is not None
    return state.settings


def _rows(title: str, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """A table on a terminal; plain aligned columns when piped or logged."""
    if not out.is_terminal:
        out.print(title, markup=False, highlight=False)
        lines = [header, *rows]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        for line in lines:
            text = "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
            out.print(text.rstrip(), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=title, title_justify="left")
    for col in header:
        table.add_column(col, no_wrap=col in ("name", "user", "id"), overflow="fold")
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _group(access: AccessStore, name: str) -> Group:
    group = access.get_group(name)
    if group is None:
        raise InputError(
            f"There is no group called '{name}'. `landexplorer groups list` shows the groups."
        )
    return group


def _role(role: str) -> str:
    if role not in ROLES:
        raise InputError(f"A member's role is one of {', '.join(ROLES)}, not '{role}'.")
    return role


# ------------------------------------------------------------------ users
@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Account name, e.g. sam or j.smith.")],
    admin: Annotated[bool, typer.Option("--admin", help="A site admin (may do anything).")] = False,
    display: Annotated[str, typer.Option(help="The name shown in the page.")] = "",
    password_prompt: Annotated[
        bool, typer.Option("--password-prompt", help="Type a password now (asked twice).")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add an account. Without a password, prints a one-time sign-in link instead: the
    person opens it, is signed in, and sets a password."""
    password: str | None = None
    if password_prompt:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    access = _access()
    user = access.add_user(name, password=password, admin=admin, display=display)
    access.audit(OPERATOR, "user added", user=user.name, admin=admin)
    what = "admin account" if admin else "account"
    out.print(f"Made {what} '{user.name}'.", markup=False)
    if password is None:
        url = sign_in_url(_settings(), access, user.name)
        out.print(
            f"It has no password yet. Sign in once with {url} (valid for {LINK_MINUTES} "
            "minutes), then set a password.",
            markup=False,
            soft_wrap=True,
        )


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List every account, with its groups."""
    access = _access()
    users = access.list_users()
    roles = {u.name: access.roles_of(u.name) for u in users}
    if as_json:
        print_json(
            [{**u.public(), "has_password": u.has_password, "groups": roles[u.name]} for u in users]
        )
        return
    if not users:
        out.print("No accounts yet. Add one with `landexplorer users add NAME`.", markup=False)
        return
    rows = [
        (
            u.name,
            u.display or "-",
            "yes" if u.admin else "",
            "disabled" if u.disabled else "enabled",
            "yes" if u.has_password else "not yet",
            ", ".join(f"{g} ({r})" for g, r in sorted(roles[u.name].items())) or "-",
            u.created,
        )
        for u in users
    ]
    header = ("name", "display", "admin", "state", "password", "groups", "created")
    _rows(f"{len(users)} account(s)", header, rows)


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument(help="The account.")]) -> None:
    """Disable an account: it can no longer sign in, and its sessions, tokens and sign-in
    links stop working at once."""
    access = _access()
    access.set_disabled(name, True)
    access.audit(OPERATOR, "user disabled", user=name)
    out.print(
        f"Disabled '{name}': signed out everywhere, and its tokens no longer work.", markup=False
    )


@users_app.command("enable")
def users_enable(name: Annotated[str, typer.Argument(help="The account.")]) -> None:
    """Enable a disabled account again (its old sessions and tokens stay ended)."""
    access = _access()
    access.set_disabled(name, False)
    access.audit(OPERATOR, "user enabled", user=name)
    out.print(f"Enabled '{name}'.", markup=False)


@users_app.command("reset-password")
def users_reset_password(name: Annotated[str, typer.Argument(help="The account.")]) -> None:
    """Print a one-time sign-in link for someone who lost their password; once signed in
    they set a new one."""
    access = _access()
    user = access.require_user(name)
    if user.disabled:
        raise InputError(
            f"The account '{name}' is disabled. Enable it first with "
            f"`landexplorer users enable {name}`."
        )
    url = sign_in_url(_settings(), access, name)
    out.print(
        f"Sign-in link for '{name}' (works once, for {LINK_MINUTES} minutes): {url}",
        markup=False,
        soft_wrap=True,
    )
    out.print("After signing in they choose a new password in the page.", markup=False)


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="The account the token acts for.")],
    token_name: Annotated[
        str, typer.Option("--name", help="What it is for, e.g. 'QGIS at the office'.")
    ],
    scope: Annotated[
        str, typer.Option(help="read (look only) or write (also upload and change).")
    ] = "read",
    days: Annotated[int, typer.Option(help="Days until it stops working (1 to 366).")] = 90,
) -> None:
    """Make a personal access token for QGIS, GDAL or a script. It is printed once and
    never again: keep it like a password."""
    access = _access()
    user = access.require_user(name)
    if user.disabled:
        raise InputError(f"The account '{name}' is disabled; enable it before making a token.")
    secret, info = access.create_token(name, token_name, scope, days)
    access.audit(
        OPERATOR, "token created", user=name, token=info.id, name=info.name, scope=info.scope
    )
    out.print(secret, markup=False, soft_wrap=True)
    sys.stderr.write(
        f"Token '{info.name}' for '{name}' ({info.scope}, until {info.expires}, id {info.id}). "
        "It is shown only now. Send it as the header 'Authorization: Bearer <token>'.\n"
    )


# ------------------------------------------------------------------ groups
@groups_app.command("add")
def groups_add(
    name: Annotated[str, typer.Argument(help="Group name, e.g. trafford-growers.")],
    title: Annotated[str, typer.Option(help="The group's name in words.")] = "",
) -> None:
    """Add a group (a community group, a council team)."""
    access = _access()
    group = access.add_group(name, title)
    access.audit(OPERATOR, "group added", group=group.name, title=title)
    out.print(
        f"Made group '{group.name}'. Add people with "
        f"`landexplorer groups member {group.name} USER --role steward`.",
        markup=False,
        soft_wrap=True,
    )


@groups_app.command("list")
def groups_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List every group."""
    access = _access()
    groups = [_group(access, g.name) for g in access.list_groups()]
    if as_json:
        print_json([{**g.public(), "members": g.members} for g in groups])
        return
    if not groups:
        out.print("No groups yet. Add one with `landexplorer groups add NAME --title ...`.")
        return
    rows = [(g.name, g.title or "-", str(len(g.members)), g.created) for g in groups]
    _rows(f"{len(groups)} group(s)", ("name", "title", "members", "created"), rows)


@groups_app.command("show")
def groups_show(
    name: Annotated[str, typer.Argument(help="The group.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a group's members and their roles."""
    access = _access()
    group = _group(access, name)
    if as_json:
        print_json({**group.public(), "members": group.members})
        return
    title = f"{group.name}: {group.title or group.name}, {len(group.members)} member(s)"
    _rows(title, ("user", "role"), sorted(group.members.items()))


@groups_app.command("member")
def groups_member(
    group: Annotated[str, typer.Argument(help="The group.")],
    user: Annotated[str, typer.Argument(help="The account.")],
    role: Annotated[str, typer.Option(help="viewer, contributor or steward.")],
) -> None:
    """Add someone to a group, or change their role in it."""
    access = _access()
    _group(access, group)
    access.require_user(user)
    access.set_member(group, user, _role(role))
    access.audit(OPERATOR, "member set", group=group, user=user, role=role)
    out.print(f"'{user}' is now a {role} of '{group}'.", markup=False)


@groups_app.command("remove")
def groups_remove(
    group: Annotated[str, typer.Argument(help="The group.")],
    user: Annotated[str, typer.Argument(help="The account.")],
) -> None:
    """Take someone out of a group."""
    access = _access()
    _group(access, group)
    access.require_user(user)
    if not access.remove_member(group, user):
        raise InputError(f"'{user}' is not a member of '{group}'.")
    access.audit(OPERATOR, "member removed", group=group, user=user)
    out.print(f"'{user}' is no longer a member of '{group}'.", markup=False)


# ------------------------------------------------------------------ audit
@app.command("audit")
def audit_command(
    layer: Annotated[str | None, typer.Option(help="Only events of this layer.")] = None,
    user: Annotated[
        str | None,
        typer.Option(help="Only events by this account ('operator (command line)' for the CLI)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many events.")] = 50,
    before: Annotated[
        int | None, typer.Option(help="Events older than this event id (the next page).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The audit log, newest first: who changed, shared or downloaded what, and when."""
    access = _access()
    events = access.read_audit(limit=limit, before=before, layer=layer, actor=user)
    if as_json:
        print_json([e.public() for e in events])
        return
    if not events:
        out.print("No events.", markup=False)
        return
    rows = [
        (
            str(e.id),
            e.at,
            e.actor,
            e.action,
            e.layer or "-",
            str(e.version) if e.version else "-",
            ", ".join(f"{k}={v}" for k, v in sorted(e.detail.items())),
        )
        for e in events
    ]
    header = ("id", "when", "who", "what", "layer", "version", "detail")
    _rows(f"{len(events)} event(s), newest first", header, rows)
    if len(events) == limit:
        out.print(f"Older events: add --before {events[-1].id}.", markup=False)
