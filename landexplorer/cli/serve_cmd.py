"""``landexplorer serve``: the HTTP API (and web map) on uvicorn with uvloop/httptools."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from landexplorer.cli.app import app, err, state


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the catalogue over HTTP (OGC API - Features, tiles, analysis, uploads)."""
    import uvicorn

    settings = state.settings
    assert settings is not None
    host = host or settings.host
    port = port or settings.port
    # Worker processes build their app from the environment: hand them our data folder.
    os.environ["LANDEXPLORER_DATA_DIR"] = str(settings.data_dir.resolve())
    shown = f"[{host}]" if ":" in host else host
    err.print(f"Serving {settings.catalog_path} at [bold]http://{shown}:{port}/[/] (Ctrl-C stops)")
    uvicorn.run(
        "landexplorer.api.asgi:app_from_env",
        factory=True,
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
