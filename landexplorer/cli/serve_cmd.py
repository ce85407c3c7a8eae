"""``landexplorer serve``: the HTTP API (and web map) on uvicorn with uvloop/httptools."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from landexplorer.access.model import OPERATOR
from landexplorer.access.store import AccessStore
from landexplorer.cli.app import app, err, state
from landexplorer.cli.users_cmd import LINK_MINUTES, sign_in_url  # also registers `users`
from landexplorer.cli.workers import Workers, listening_sockets, spreads_connections
from landexplorer.errors import InputError

#: The most worker processes chosen by default: each holds its own tile memory (128 MB) and,
#: on PostGIS, up to 11 database connections (its pool and its change watcher), so that
#: two or three instances stay within PostgreSQL's default of 100 connections.
MAX_DEFAULT_WORKERS = 4
#: The ASGI application each worker builds from the environment.
APP = "landexplorer.api.asgi:app_from_env"


def default_workers() -> int:
    """One worker process per CPU core this process may use, at most ``MAX_DEFAULT_WORKERS``.

    Several workers are safe: the GeoPackage's writers are kept apart across processes by
    SQLite's own locks (``catalog/gate.py`` does it between threads of one process), the
    tile cache's files are shared and written atomically, upload jobs are files any worker
    reads, and people's changes reach every worker within a second (``catalog/changes.py``).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def first_run_admin(access: AccessStore) -> str | None:
    """When no enabled admin account exists, make one without a password and return its
    name ('admin', or 'admin-2', ... when that name is taken); otherwise None."""
    if access.has_admin():
        return None
    taken = {u.name for u in access.list_users()}
    name = next(n for n in ("admin", *(f"admin-{i}" for i in range(2, 100))) if n not in taken)
    access.add_user(name, admin=True, display="Administrator")
    access.audit(OPERATOR, "user added", user=name, admin=True, first_run=True)
    return name


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes. Default: one per CPU core, at most "
            f"{MAX_DEFAULT_WORKERS} ({default_workers()} on this machine). Login and "
            "saved-map rate limits are counted per worker.",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    sign_in_link: Annotated[
        str | None,
        typer.Option(
            "--sign-in-link",
            metavar="USER",
            help="Print a fresh one-time sign-in link for USER before serving.",
        ),
    ] = None,
) -> None:
    """Serve the catalogue over HTTP (OGC API - Features, tiles, analysis, uploads)."""
    import uvicorn

    settings = state.settings
    assert settings is not None
    host = host or settings.host
    port = port or settings.port
    workers = workers or default_workers()
    # Worker processes build their app from the environment: hand them our data folder.
    os.environ["LANDEXPLORER_DATA_DIR"] = str(settings.data_dir.resolve())
    if settings.tile_cache_dir is not None:
        os.environ["LANDEXPLORER_TILE_CACHE_DIR"] = str(settings.tile_cache_dir.resolve())
    shown = f"[{host}]" if ":" in host else host
    served = settings.model_copy(update={"host": host, "port": port})
    access = AccessStore.beside(state.store())
    made = first_run_admin(access)
    if made is not None:
        url = sign_in_url(served, access, made)
        err.print(
            f"No admin account yet: made '{made}'. Sign in once with {url} (valid for "
            f"{LINK_MINUTES} minutes), then set a password.",
            markup=False,
        )
    if sign_in_link is not None:
        user = access.require_user(sign_in_link)
        if user.disabled:
            raise InputError(f"The account '{sign_in_link}' is disabled; no sign-in link made.")
        url = sign_in_url(served, access, sign_in_link)
        err.print(
            f"Sign in as '{sign_in_link}' once with {url} (valid for {LINK_MINUTES} minutes).",
            markup=False,
        )
    access.close()
    state.store().close()
    state._store = None
    # Several workers each accept on their own socket (cli/workers.py): made here, before
    # anything is served, so that a port in use is a clear error.
    spread = workers > 1 and spreads_connections()
    sockets = listening_sockets(host, port, workers) if spread else []
    where = "the PostGIS catalogue" if settings.database_url else str(settings.catalog_path)
    err.print(
        f"Serving {where} at [bold]http://{shown}:{port}/[/] with {workers} worker"
        f"{'s' if workers > 1 else ''} (Ctrl-C stops)",
        markup=True,
        highlight=False,
    )
    options: dict[str, Any] = dict(
        host=host,
        port=port,
        workers=workers,
        # uvloop + httptools (uvicorn[standard]) set TCP_NODELAY: without them small
        # keep-alive responses stall ~40 ms under several workers (Nagle + delayed ACK).
        loop="uvloop",
        # httptools with a cap on the request head (431 past max_header_kb): uvicorn caps
        # heads only in its h11 protocol, whose setting this protocol reads too.
        http="landexplorer.api.httpproto:LimitedHttpToolsProtocol",
        h11_max_incomplete_event_size=settings.max_header_kb * 1024,
        log_level=log_level,
        # X-Forwarded-For/-Proto are believed only from the proxies named in the settings
        # (uvicorn's default would believe any client on loopback).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
        server_header=False,
        # uvicorn closes a kept-alive connection after 5 s idle by default; a busy client
        # that sends its next request just then gets a reset (seen under the load benchmark:
        # 4 of 4,447 requests). 20 s makes that race rare; connections stay bounded by
        # the clients themselves.
        timeout_keep_alive=20,
    )
    if spread:
        Workers(uvicorn.Config(APP, factory=True, **options), sockets).run()
    else:
        uvicorn.run(APP, factory=True, **options)
