"""Where people, groups, tokens, share links, grants, access requests and the audit log
are kept: beside the catalogue, in the same kind of store.

* With the GeoPackage catalogue: ``access.sqlite`` in the data folder (WAL mode). People
  are not layers, and a separate file means a long layer write never delays a sign-in.
* With PostGIS: tables ``access_*`` in the catalogue's database, so that every server
  on one database shares accounts, sessions and the audit log.

The same SQL runs on both (``?`` placeholders are turned into ``%s`` for PostgreSQL).
Secrets are stored as digests only (see :mod:`landexplorer.access.secrets`). The audit
log is append-only: triggers refuse UPDATE and DELETE on it.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets as _random
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from landexplorer.access import secrets
from landexplorer.access.model import ROLES, SCOPES, Actor
from landexplorer.catalog.diskspace import disk_full, is_disk_full
from landexplorer.errors import InputError

NAME = re.compile(r"^[a-z][a-z0-9_.-]{1,39}$")
NAME_RULE = (
    "2 to 40 characters: lower-case letters, digits, '.', '-' or '_', starting with a letter"
)


def now_iso(delta: timedelta | None = None) -> str:
    moment = datetime.now(UTC) + (delta or timedelta())
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InputError(f"A {what} name must be {NAME_RULE}.")
    return name


@dataclass
class User:
    name: str
    display: str = ""
    admin: bool = False
    disabled: bool = False
    created: str = ""
    has_password: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display": self.display or self.name,
            "admin": self.admin,
            "disabled": self.disabled,
            "created": self.created,
        }


@dataclass
class Group:
    name: str
    title: str = ""
    created: str = ""
    members: dict[str, str] = field(default_factory=dict)  # user -> role

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title or self.name, "created": self.created}


@dataclass
class TokenInfo:
    """A personal access token as its owner sees it later (never the secret)."""

    id: str
    user: str
    name: str
    scope: str
    created: str
    expires: str
    revoked: bool = False
    last_used: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "created": self.created,
            "expires": self.expires,
            "revoked": self.revoked,
            "last_used": self.last_used or None,
        }


@dataclass
class LinkInfo:
    id: str
    layer: str
    created_by: str
    created: str
    revoked: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_by": self.created_by,
            "created": self.created,
            "revoked": self.revoked,
        }


@dataclass
class AccessRequest:
    id: str
    layer: str
    user: str
    message: str
    status: str  # pending, granted, refused
    created: str
    decided_by: str = ""
    decided: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "layer": self.layer,
            "user": self.user,
            "message": self.message,
            "status": self.status,
            "created": self.created,
            "decided_by": self.decided_by or None,
            "decided": self.decided or None,
        }


@dataclass
class AuditEvent:
    id: int
    at: str
    actor: str
    action: str
    layer: str
    version: int
    detail: dict[str, Any]

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "layer": self.layer or None,
            "version": self.version or None,
            "detail": self.detail,
        }


class Cursor(Protocol):
    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class _Db(Protocol):
    dialect: str

    def tx(self) -> contextlib.AbstractContextManager[Cursor]: ...

    def close(self) -> None: ...


_TABLES = """
CREATE TABLE IF NOT EXISTS access_users (
  name TEXT PRIMARY KEY, display TEXT NOT NULL, password TEXT NOT NULL,
  admin INTEGER NOT NULL, disabled INTEGER NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS access_groups (
  name TEXT PRIMARY KEY, title TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS access_members (
  grp TEXT NOT NULL, user_name TEXT NOT NULL, role TEXT NOT NULL, since TEXT NOT NULL,
  PRIMARY KEY (grp, user_name));
CREATE INDEX IF NOT EXISTS access_members_user ON access_members (user_name);
CREATE TABLE IF NOT EXISTS access_secrets (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,
  user_name TEXT NOT NULL, name TEXT NOT NULL, scope TEXT NOT NULL, created TEXT NOT NULL,
  expires TEXT NOT NULL, revoked INTEGER NOT NULL, last_used TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS access_secrets_user ON access_secrets (user_name, kind);
CREATE TABLE IF NOT EXISTS access_links (
  id TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, layer TEXT NOT NULL,
  created_by TEXT NOT NULL, created TEXT NOT NULL, revoked INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS access_links_layer ON access_links (layer);
CREATE TABLE IF NOT EXISTS access_grants (
  layer TEXT NOT NULL, user_name TEXT NOT NULL, granted_by TEXT NOT NULL,
  created TEXT NOT NULL, PRIMARY KEY (layer, user_name));
CREATE INDEX IF NOT EXISTS access_grants_user ON access_grants (user_name);
CREATE TABLE IF NOT EXISTS access_requests (
  id TEXT PRIMARY KEY, layer TEXT NOT NULL, user_name TEXT NOT NULL, message TEXT NOT NULL,
  status TEXT NOT NULL, created TEXT NOT NULL, decided_by TEXT NOT NULL,
  decided TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS access_requests_layer ON access_requests (layer, status);
"""

_AUDIT_SQLITE = """
CREATE TABLE IF NOT EXISTS access_audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, layer TEXT NOT NULL, version INTEGER NOT NULL, detail TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS access_audit_no_update BEFORE UPDATE ON access_audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS access_audit_no_delete BEFORE DELETE ON access_audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

_AUDIT_PG = """
CREATE TABLE IF NOT EXISTS access_audit (
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, at TEXT NOT NULL,
  actor TEXT NOT NULL, action TEXT NOT NULL, layer TEXT NOT NULL, version INTEGER NOT NULL,
  detail TEXT NOT NULL);
CREATE OR REPLACE FUNCTION access_audit_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END; $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS access_audit_no_change ON access_audit;
CREATE TRIGGER access_audit_no_change BEFORE UPDATE OR DELETE ON access_audit
FOR EACH ROW EXECUTE FUNCTION access_audit_append_only();
"""


class _SqliteCursor:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, tuple(params)).fetchall()


class SqliteDb:
    """``access.sqlite`` beside the GeoPackage (one connection per thread, WAL)."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        #: connections opened read-only because the disk was full (see ``_conn``)
        self._read_only: set[sqlite3.Connection] = set()
        self._lock = threading.Lock()
        with self.tx() as cur:
            for statement in (_TABLES + _AUDIT_SQLITE).split(";\n"):
                if statement.strip():
                    cur.run(statement)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        reading_only = conn is not None and conn in self._read_only and not conn.in_transaction
        if conn is not None and reading_only and self._has_room():
            self._forget(conn)  # room again: a connection that writes and sees changes
            conn = None
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.OperationalError:
                conn.close()
                if self._has_room() or not self.path.exists():
                    raise
                # A full disk: SQLite cannot make the WAL index it needs even to read.
                # Read the file as it is; every write says the disk is full.
                conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro&immutable=1",
                    uri=True,
                    timeout=10.0,
                    isolation_level=None,
                    check_same_thread=False,
                )
                self._read_only.add(conn)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _has_room(self) -> bool:
        try:
            return shutil.disk_usage(self.path.parent).free >= 1 << 20
        except OSError:
            return False

    def _forget(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._read_only.discard(conn)
            if conn in self._all:
                self._all.remove(conn)
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        self._local.conn = None

    @contextlib.contextmanager
    def tx(self) -> Iterator[Cursor]:
        conn = self._conn()
        if conn.in_transaction:  # nested: part of the outer transaction
            yield _SqliteCursor(conn)
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield _SqliteCursor(conn)
        except BaseException as exc:
            conn.execute("ROLLBACK")
            if conn in self._read_only and "readonly" in str(exc):
                raise disk_full(self.path, exc) from exc  # read only while the disk is full
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
            self._read_only.clear()


class _PgCursor:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), tuple(params))
            return list(cur.fetchall()) if cur.description else []


class PostgresDb:
    """The ``access_*`` tables in the PostGIS catalogue's database (its connection pool)."""

    dialect = "postgresql"

    def __init__(self, transaction: Any) -> None:
        self._transaction = transaction  # the PostGIS store's transaction() context
        try:
            with self._transaction() as conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(7236712)")  # one creator at a time
                cur.execute(_TABLES)
                cur.execute(_AUDIT_PG)
        except Exception as exc:
            # a full disk refuses even the DDL that changes nothing: with the tables there,
            # the server still starts (reads and sign-ins work, writes say the disk is full)
            if not (is_disk_full(exc) and self._tables_exist()):
                raise

    def _tables_exist(self) -> bool:
        with self._transaction() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename = ANY(%s)",
                (list(AccessStore.TABLES),),
            )
            row = cur.fetchone()
        return bool(row and row[0] == len(AccessStore.TABLES))

    @contextlib.contextmanager
    def tx(self) -> Iterator[Cursor]:
        with self._transaction() as conn:
            yield _PgCursor(conn)

    def close(self) -> None:  # the pool belongs to the catalogue store
        pass


def _flag(value: Any) -> bool:
    return bool(int(value))


class AccessStore:
    """Accounts, groups, secrets, links, grants, requests and the audit log."""

    def __init__(self, db: _Db) -> None:
        self.db = db
        #: Bumped on every change that can change what someone may do (caches check it).
        self.generation = 0

    @classmethod
    def beside(cls, store: Any) -> AccessStore:
        """The access store that goes with catalogue ``store``."""
        if getattr(store, "backend", "") == "postgis":
            return cls(PostgresDb(store.transaction))
        return cls(SqliteDb(Path(store.path).parent / "access.sqlite"))

    def close(self) -> None:
        self.db.close()

    def _changed(self) -> None:
        self.generation += 1

    # ---------------------------------------------------------------- users
    def add_user(
        self, name: str, *, password: str | None = None, admin: bool = False, display: str = ""
    ) -> User:
        check_name(name, "user")
        if password is not None:
            weak = secrets.check_password_strength(password)
            if weak:
                raise InputError(weak)
        stored = secrets.hash_password(password) if password else ""
        created = now_iso()
        with self.db.tx() as cur:
            if cur.run("SELECT 1 FROM access_users WHERE name = ?", (name,)):
                raise InputError(f"There is already an account called '{name}'.")
            cur.run(
                "INSERT INTO access_users (name, display, password, admin, disabled, created) "
                "VALUES (?, ?, ?, ?, 0, ?)",
                (name, display[:100], stored, int(admin), created),
            )
        self._changed()
        return User(name, display, admin, False, created, bool(stored))

    def _user_row(self, cur: Cursor, name: str) -> tuple[Any, ...] | None:
        rows = cur.run(
            "SELECT name, display, admin, disabled, created, password FROM access_users "
            "WHERE name = ?",
            (name,),
        )
        return rows[0] if rows else None

    @staticmethod
    def _user(row: tuple[Any, ...]) -> User:
        return User(row[0], row[1], _flag(row[2]), _flag(row[3]), row[4], bool(row[5]))

    def get_user(self, name: str) -> User | None:
        with self.db.tx() as cur:
            row = self._user_row(cur, name)
        return self._user(row) if row else None

    def require_user(self, name: str) -> User:
        user = self.get_user(name)
        if user is None:
            raise InputError(f"There is no account called '{name}'.")
        return user

    def list_users(self) -> list[User]:
        with self.db.tx() as cur:
            rows = cur.run(
                "SELECT name, display, admin, disabled, created, password FROM access_users "
                "ORDER BY name"
            )
        return [self._user(r) for r in rows]

    def has_admin(self) -> bool:
        with self.db.tx() as cur:
            return bool(cur.run("SELECT 1 FROM access_users WHERE admin = 1 AND disabled = 0"))

    def set_password(self, name: str, password: str) -> None:
        weak = secrets.check_password_strength(password)
        if weak:
            raise InputError(weak)
        stored = secrets.hash_password(password)
        with self.db.tx() as cur:
            self._require(cur, name)
            cur.run("UPDATE access_users SET password = ? WHERE name = ?", (stored, name))
            # a new password ends every session: whoever knew the old one is signed out
            cur.run(
                "UPDATE access_secrets SET revoked = 1 WHERE user_name = ? AND kind = 'session'",
                (name,),
            )
        self._changed()

    def set_disabled(self, name: str, disabled: bool = True) -> None:
        with self.db.tx() as cur:
            self._require(cur, name)
            cur.run("UPDATE access_users SET disabled = ? WHERE name = ?", (int(disabled), name))
            if disabled:
                cur.run("UPDATE access_secrets SET revoked = 1 WHERE user_name = ?", (name,))
        self._changed()

    def set_admin(self, name: str, admin: bool = True) -> None:
        with self.db.tx() as cur:
            self._require(cur, name)
            cur.run("UPDATE access_users SET admin = ? WHERE name = ?", (int(admin), name))
        self._changed()

    def _require(self, cur: Cursor, name: str) -> None:
        if not cur.run("SELECT 1 FROM access_users WHERE name = ?", (name,)):
            raise InputError(f"There is no account called '{name}'.")

    def check_password(self, name: str, password: str) -> User | None:
        """The account when ``name`` and ``password`` match an enabled account, else None.
        Costs one argon2 verification whether or not the account exists."""
        with self.db.tx() as cur:
            row = self._user_row(cur, name) if isinstance(name, str) else None
        stored = row[5] if row else None
        ok = secrets.verify_password(stored, password)
        if not ok or row is None or _flag(row[3]):
            return None
        return self._user(row)

    # ---------------------------------------------------------------- groups
    def add_group(self, name: str, title: str = "") -> Group:
        check_name(name, "group")
        created = now_iso()
        with self.db.tx() as cur:
            if cur.run("SELECT 1 FROM access_groups WHERE name = ?", (name,)):
                raise InputError(f"There is already a group called '{name}'.")
            cur.run(
                "INSERT INTO access_groups (name, title, created) VALUES (?, ?, ?)",
                (name, title[:200], created),
            )
        self._changed()
        return Group(name, title, created)

    def get_group(self, name: str) -> Group | None:
        with self.db.tx() as cur:
            rows = cur.run("SELECT name, title, created FROM access_groups WHERE name = ?", (name,))
            if not rows:
                return None
            members = cur.run(
                "SELECT user_name, role FROM access_members WHERE grp = ? ORDER BY user_name",
                (name,),
            )
        name_, title, created = rows[0]
        return Group(name_, title, created, members=dict(members))

    def list_groups(self) -> list[Group]:
        with self.db.tx() as cur:
            rows = cur.run("SELECT name, title, created FROM access_groups ORDER BY name")
        return [Group(*r) for r in rows]

    def set_member(self, group: str, user: str, role: str) -> None:
        if role not in ROLES:
            raise InputError(f"A member's role is one of {', '.join(ROLES)}, not '{role}'.")
        with self.db.tx() as cur:
            if not cur.run("SELECT 1 FROM access_groups WHERE name = ?", (group,)):
                raise InputError(f"There is no group called '{group}'.")
            self._require(cur, user)
            cur.run(
                "INSERT INTO access_members (grp, user_name, role, since) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (grp, user_name) DO UPDATE SET role = excluded.role",
                (group, user, role, now_iso()),
            )
        self._changed()

    def remove_member(self, group: str, user: str) -> bool:
        with self.db.tx() as cur:
            found = cur.run(
                "SELECT 1 FROM access_members WHERE grp = ? AND user_name = ?", (group, user)
            )
            cur.run("DELETE FROM access_members WHERE grp = ? AND user_name = ?", (group, user))
        self._changed()
        return bool(found)

    def roles_of(self, user: str) -> dict[str, str]:
        with self.db.tx() as cur:
            rows = cur.run("SELECT grp, role FROM access_members WHERE user_name = ?", (user,))
        return dict(rows)

    def members_of(self, group: str) -> list[dict[str, str]]:
        """The members of ``group`` (user, display name, role, since), by name."""
        with self.db.tx() as cur:
            rows = cur.run(
                "SELECT m.user_name, u.display, m.role, m.since FROM access_members m "
                "JOIN access_users u ON u.name = m.user_name WHERE m.grp = ? "
                "ORDER BY m.user_name",
                (group,),
            )
        return [{"user": r[0], "display": r[1] or r[0], "role": r[2], "since": r[3]} for r in rows]

    def actors(self) -> list[Actor]:
        """The actor of every enabled account, with its roles and grants: what the API asks
        the policy with when an owner wants to know who can see a layer."""
        with self.db.tx() as cur:
            users = cur.run("SELECT name, admin FROM access_users WHERE disabled = 0 ORDER BY name")
            members = cur.run("SELECT user_name, grp, role FROM access_members")
            granted = cur.run("SELECT user_name, layer FROM access_grants")
        roles: dict[str, dict[str, str]] = {}
        for user, group, role in members:
            roles.setdefault(user, {})[group] = role
        grants: dict[str, set[str]] = {}
        for user, layer in granted:
            grants.setdefault(user, set()).add(layer)
        return [
            Actor(
                user=name,
                admin=_flag(admin),
                roles=roles.get(name, {}),
                grants=frozenset(grants.get(name, ())),
                via="session",
            )
            for name, admin in users
        ]

    # ---------------------------------------------------------------- secrets
    def _new_secret(
        self, kind: str, prefix: str, user: str, name: str, scope: str, lifetime: timedelta
    ) -> tuple[str, TokenInfo]:
        secret = secrets.new_secret(prefix)
        info = TokenInfo(
            id=_random.token_hex(6),
            user=user,
            name=name,
            scope=scope,
            created=now_iso(),
            expires=now_iso(lifetime),
        )
        with self.db.tx() as cur:
            self._require(cur, user)
            cur.run(
                "INSERT INTO access_secrets (id, kind, digest, user_name, name, scope, created, "
                "expires, revoked, last_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, '')",
                (
                    info.id,
                    kind,
                    secrets.digest(secret),
                    user,
                    name,
                    scope,
                    info.created,
                    info.expires,
                ),
            )
        return secret, info

    def create_token(
        self, user: str, name: str, scope: str = "read", days: int = 90
    ) -> tuple[str, TokenInfo]:
        """A personal access token: the secret (show it once) and what is kept of it."""
        if scope not in SCOPES:
            raise InputError(f"A token's scope is 'read' or 'write', not '{scope}'.")
        name = (name or "").strip()
        if not name or len(name) > 80:
            raise InputError("Give the token a name (up to 80 characters), e.g. 'QGIS at home'.")
        if not 1 <= days <= 366:
            raise InputError("A token lasts from 1 to 366 days.")
        return self._new_secret(
            "token", secrets.TOKEN_PREFIX, user, name, scope, timedelta(days=days)
        )

    def list_tokens(self, user: str) -> list[TokenInfo]:
        with self.db.tx() as cur:
            rows = cur.run(
                "SELECT id, user_name, name, scope, created, expires, revoked, last_used "
                "FROM access_secrets WHERE user_name = ? AND kind = 'token' ORDER BY created",
                (user,),
            )
        return [TokenInfo(r[0], r[1], r[2], r[3], r[4], r[5], _flag(r[6]), r[7]) for r in rows]

    def revoke_token(self, user: str, token_id: str) -> bool:
        with self.db.tx() as cur:
            found = cur.run(
                "SELECT 1 FROM access_secrets WHERE id = ? AND user_name = ? AND kind = 'token'",
                (token_id, user),
            )
            cur.run(
                "UPDATE access_secrets SET revoked = 1 WHERE id = ? AND user_name = ? "
                "AND kind = 'token'",
                (token_id, user),
            )
        self._changed()
        return bool(found)

    def create_session(self, user: str, hours: float = 24 * 14) -> str:
        secret, _ = self._new_secret(
            "session", secrets.SESSION_PREFIX, user, "browser", "write", timedelta(hours=hours)
        )
        return secret

    def end_session(self, secret: str) -> None:
        with self.db.tx() as cur:
            cur.run(
                "UPDATE access_secrets SET revoked = 1 WHERE digest = ? AND kind = 'session'",
                (secrets.digest(secret),),
            )
        self._changed()

    def create_sign_in_link(self, user: str, minutes: int = 60) -> str:
        """A one-time sign-in secret for ``user`` (first run, new accounts, lost passwords)."""
        secret, _ = self._new_secret(
            "once", secrets.ONCE_PREFIX, user, "sign-in link", "write", timedelta(minutes=minutes)
        )
        return secret

    def use_sign_in_link(self, secret: str) -> str | None:
        """The account a one-time link signs in, using it up; None when it is not valid."""
        with self.db.tx() as cur:
            rows = cur.run(
                "SELECT s.id, s.user_name FROM access_secrets s JOIN access_users u ON "
                "u.name = s.user_name WHERE s.digest = ? AND s.kind = 'once' AND s.revoked = 0 "
                "AND s.expires > ? AND u.disabled = 0",
                (secrets.digest(secret), now_iso()),
            )
            if not rows:
                return None
            cur.run("UPDATE access_secrets SET revoked = 1 WHERE id = ?", (rows[0][0],))
        return str(rows[0][1])

    def actor_for_secret(self, secret: str, kind: str) -> Actor | None:
        """The actor a session secret or token stands for, or None (unknown, expired,
        revoked, or a disabled account)."""
        stamp = now_iso()
        with self.db.tx() as cur:
            rows = cur.run(
                "SELECT s.id, s.user_name, s.scope, u.admin, s.last_used, s.digest "
                "FROM access_secrets s JOIN access_users u ON u.name = s.user_name "
                "WHERE s.digest = ? AND s.kind = ? AND s.revoked = 0 AND s.expires > ? "
                "AND u.disabled = 0",
                (secrets.digest(secret), kind, stamp),
            )
            if not rows or not secrets.same(rows[0][5], secrets.digest(secret)):
                return None
            secret_id, user, scope, admin, last_used, _ = rows[0]
            roles = dict(
                cur.run("SELECT grp, role FROM access_members WHERE user_name = ?", (user,))
            )
            grants = frozenset(
                r[0]
                for r in cur.run("SELECT layer FROM access_grants WHERE user_name = ?", (user,))
            )
        if kind == "token" and last_used[:13] != stamp[:13]:  # at most hourly
            try:
                with self.db.tx() as cur:
                    cur.run(
                        "UPDATE access_secrets SET last_used = ? WHERE id = ?", (stamp, secret_id)
                    )
            except Exception as exc:
                # "last used" is bookkeeping: a full disk must not stop anyone signing in
                if not is_disk_full(exc):
                    raise
        return Actor(
            user=user,
            admin=_flag(admin),
            roles=roles,
            scope=scope,
            grants=grants,
            via="token" if kind == "token" else "session",
        )

    def actor_for_user(self, user: str) -> Actor:
        """The actor of account ``user`` (for the command line acting as someone)."""
        record = self.require_user(user)
        return Actor(
            user=user,
            admin=record.admin,
            roles=self.roles_of(user),
            grants=frozenset(self.grants_of(user)),
            via="session",
        )

    # ---------------------------------------------------------------- share links
    def create_link(self, layer: str, by: str) -> tuple[str, LinkInfo]:
        secret = secrets.new_secret(secrets.LINK_PREFIX)
        info = LinkInfo(_random.token_hex(6), layer, by, now_iso())
        with self.db.tx() as cur:
            cur.run(
                "INSERT INTO access_links (id, digest, layer, created_by, created, revoked) "
                "VALUES (?, ?, ?, ?, ?, 0)",
                (info.id, secrets.digest(secret), layer, by, info.created),
            )
        self._changed()
        return secret, info

    def list_links(self, layer: str) -> list[LinkInfo]:
        with self.db.tx() as cur:
            rows = cur.run(
                "SELECT id, layer, created_by, created, revoked FROM access_links "
                "WHERE layer = ? ORDER BY created",
                (layer,),
            )
        return [LinkInfo(r[0], r[1], r[2], r[3], _flag(r[4])) for r in rows]

    def revoke_link(self, layer: str, link_id: str) -> bool:
        with self.db.tx() as cur:
            found = cur.run(
                "SELECT 1 FROM access_links WHERE id = ? AND layer = ?", (link_id, layer)
            )
            cur.run(
                "UPDATE access_links SET revoked = 1 WHERE id = ? AND layer = ?", (link_id, layer)
            )
        self._changed()
        return bool(found)

    def link_layers(self, secrets_given: Sequence[str]) -> frozenset[str]:
        """The layers whose live share links are among ``secrets_given``."""
        found: set[str] = set()
        with self.db.tx() as cur:
            for secret in secrets_given[:8]:
                rows = cur.run(
                    "SELECT layer FROM access_links WHERE digest = ? AND revoked = 0",
                    (secrets.digest(secret),),
                )
                found.update(r[0] for r in rows)
        return frozenset(found)

    # ---------------------------------------------------------------- grants, requests
    def request_access(self, layer: str, user: str, message: str = "") -> AccessRequest:
        message = (message or "").strip()[:1000]
        with self.db.tx() as cur:
            pending = cur.run(
                "SELECT id, created FROM access_requests WHERE layer = ? AND user_name = ? "
                "AND status = 'pending'",
                (layer, user),
            )
            if pending:
                return AccessRequest(pending[0][0], layer, user, message, "pending", pending[0][1])
            req = AccessRequest(_random.token_hex(8), layer, user, message, "pending", now_iso())
            cur.run(
                "INSERT INTO access_requests (id, layer, user_name, message, status, created, "
                "decided_by, decided) VALUES (?, ?, ?, ?, 'pending', ?, '', '')",
                (req.id, layer, user, message, req.created),
            )
        return req

    def get_request(self, request_id: str) -> AccessRequest | None:
        with self.db.tx() as cur:
            rows = cur.run(
                "SELECT id, layer, user_name, message, status, created, decided_by, decided "
                "FROM access_requests WHERE id = ?",
                (request_id,),
            )
        return AccessRequest(*rows[0]) if rows else None

    def list_requests(
        self, layers: Sequence[str] | None = None, user: str | None = None, status: str = ""
    ) -> list[AccessRequest]:
        sql = (
            "SELECT id, layer, user_name, message, status, created, decided_by, decided "
            "FROM access_requests WHERE 1 = 1"
        )
        params: list[Any] = []
        if user is not None:
            sql += " AND user_name = ?"
            params.append(user)
        if status:
            sql += " AND status = ?"
            params.append(status)
        with self.db.tx() as cur:
            rows = cur.run(sql + " ORDER BY created DESC", params)
        wanted = set(layers) if layers is not None else None
        return [AccessRequest(*r) for r in rows if wanted is None or r[1] in wanted]

    def decide_request(self, request_id: str, grant: bool, by: str) -> AccessRequest:
        with self.db.tx() as cur:
            rows = cur.run(
                "SELECT id, layer, user_name, message, status, created, decided_by, decided "
                "FROM access_requests WHERE id = ?",
                (request_id,),
            )
            if not rows:
                raise InputError("There is no such access request.")
            req = AccessRequest(*rows[0])
            if req.status != "pending":
                raise InputError(f"That request was already {req.status}.")
            req.status = "granted" if grant else "refused"
            req.decided_by, req.decided = by, now_iso()
            cur.run(
                "UPDATE access_requests SET status = ?, decided_by = ?, decided = ? WHERE id = ?",
                (req.status, by, req.decided, request_id),
            )
            if grant:
                self._grant(cur, req.layer, req.user, by)
        self._changed()
        return req

    def _grant(self, cur: Cursor, layer: str, user: str, by: str) -> None:
        cur.run(
            "INSERT INTO access_grants (layer, user_name, granted_by, created) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (layer, user_name) DO NOTHING",
            (layer, user, by, now_iso()),
        )

    def grant(self, layer: str, user: str, by: str) -> None:
        with self.db.tx() as cur:
            self._require(cur, user)
            self._grant(cur, layer, user, by)
        self._changed()

    def revoke_grant(self, layer: str, user: str) -> bool:
        with self.db.tx() as cur:
            found = cur.run(
                "SELECT 1 FROM access_grants WHERE layer = ? AND user_name = ?", (layer, user)
            )
            cur.run("DELETE FROM access_grants WHERE layer = ? AND user_name = ?", (layer, user))
        self._changed()
        return bool(found)

    def grants_of(self, user: str) -> set[str]:
        with self.db.tx() as cur:
            rows = cur.run("SELECT layer FROM access_grants WHERE user_name = ?", (user,))
        return {r[0] for r in rows}

    def grants_for(self, layer: str) -> list[tuple[str, str, str]]:
        """(user, granted_by, when) of every grant on ``layer``."""
        with self.db.tx() as cur:
            rows = cur.run(
                "SELECT user_name, granted_by, created FROM access_grants WHERE layer = ? "
                "ORDER BY user_name",
                (layer,),
            )
        return [(r[0], r[1], r[2]) for r in rows]

    def forget_layer(self, layer: str) -> None:
        """A deleted layer's links, grants and pending requests go with it (the audit log
        keeps the record)."""
        with self.db.tx() as cur:
            cur.run("UPDATE access_links SET revoked = 1 WHERE layer = ?", (layer,))
            cur.run("DELETE FROM access_grants WHERE layer = ?", (layer,))
            cur.run(
                "UPDATE access_requests SET status = 'refused', decided_by = 'layer deleted', "
                "decided = ? WHERE layer = ? AND status = 'pending'",
                (now_iso(), layer),
            )
        self._changed()

    # ---------------------------------------------------------------- audit
    def audit(
        self,
        actor: Actor | str,
        action: str,
        layer: str = "",
        version: int = 0,
        **detail: Any,
    ) -> None:
        """Append one event to the audit log (never a secret in ``detail``)."""
        who = actor.label() if isinstance(actor, Actor) else str(actor)
        with self.db.tx() as cur:
            cur.run(
                "INSERT INTO access_audit (at, actor, action, layer, version, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    now_iso(),
                    who,
                    action,
                    layer,
                    int(version or 0),
                    json.dumps(detail, default=str, sort_keys=True),
                ),
            )

    def read_audit(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        layer: str | None = None,
        layers: Sequence[str] | None = None,
        actor: str | None = None,
        groups: Sequence[str] | None = None,
    ) -> list[AuditEvent]:
        """Newest first; ``before`` pages back (an event id). ``layers`` and ``groups``
        restrict to the events of those layers and those naming one of those groups
        (members set and removed, layers uploaded into them)."""
        where, params = "id < ?", []
        if layer is not None:
            where += " AND layer = ?"
            params.append(layer)
        if actor is not None:
            where += " AND actor = ?"
            params.append(actor)
        wanted = set(layers) if layers is not None else None
        teams = set(groups) if groups is not None else None

        def kept(row: tuple[Any, ...]) -> bool:
            if wanted is None and teams is None:
                return True
            if wanted is not None and row[4] in wanted:
                return True
            return (
                teams is not None
                and '"group"' in row[6]
                and (json.loads(row[6]).get("group") in teams)
            )

        out: list[AuditEvent] = []
        cursor_id = before if before is not None else 2**62
        with self.db.tx() as cur:
            while len(out) < limit:  # page until enough events in the allowed layers
                rows = cur.run(
                    "SELECT id, at, actor, action, layer, version, detail FROM access_audit "
                    f"WHERE {where} ORDER BY id DESC LIMIT 500",
                    [cursor_id, *params],
                )
                for r in rows:
                    if kept(r):
                        out.append(
                            AuditEvent(
                                int(r[0]), r[1], r[2], r[3], r[4], int(r[5]), json.loads(r[6])
                            )
                        )
                        if len(out) >= limit:
                            break
                if len(rows) < 500:
                    break
                cursor_id = int(rows[-1][0])
        return out

    # ---------------------------------------------------------------- migrate
    TABLES = (
        "access_users",
        "access_groups",
        "access_members",
        "access_secrets",
        "access_links",
        "access_grants",
        "access_requests",
        "access_audit",
    )

    def dump(self) -> dict[str, list[list[Any]]]:
        """Every row of every access table (for ``migrate``)."""
        out: dict[str, list[list[Any]]] = {}
        with self.db.tx() as cur:
            for table in self.TABLES:
                order = "id" if table == "access_audit" else "1"
                out[table] = [list(r) for r in cur.run(f"SELECT * FROM {table} ORDER BY {order}")]
        return out

    def load(self, rows: dict[str, list[list[Any]]]) -> dict[str, int]:
        """Add the rows of :meth:`dump` (rows already here are left as they are)."""
        counts: dict[str, int] = {}
        with self.db.tx() as cur:
            for table in self.TABLES:
                counts[table] = 0
                for row in rows.get(table, []):
                    marks = ", ".join("?" for _ in row)
                    cur.run(f"INSERT INTO {table} VALUES ({marks}) ON CONFLICT DO NOTHING", row)
                    counts[table] += 1
            if self.db.dialect == "postgresql":
                cur.run(
                    "SELECT setval(pg_get_serial_sequence('access_audit', 'id'), "
                    "COALESCE((SELECT max(id) FROM access_audit), 0) + 1, false)"
                )
        self._changed()
        return counts
