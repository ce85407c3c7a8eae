"""Warming a new server process before it takes its first request.

A fresh worker pays once for work that has nothing to do with any layer: FastAPI works
out each route's parameters the first time a request is matched against it (about 70 ms
for this API), the middleware stack is assembled on the first call, and the tile code's
first run loads modules and fills caches (about 10 ms). Without this warm-up that cost
lands on the first visitor after every start or restart, in every worker.

The warm-up touches no layer: one request for an address no route has (so every route is
matched, and prepared, once; the answer is a 404) and one tile drawn from a made-up square
in memory, never stored. Nothing is read from or written to the catalogue, the tile
cache or the audit log.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio.to_thread
import numpy as np
import pyarrow as pa
import shapely
from starlette.types import ASGIApp, Message

from landexplorer.tiles import grid, mvt

log = logging.getLogger("landexplorer.warmup")

#: An address no route answers (a reserved prefix: never a layer id).
NO_ROUTE = "/landexplorer_warm_up/no-such-address"


async def _request(app: ASGIApp, path: str) -> int:
    """One GET through the whole application, in process; returns the status."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "state": {},
    }
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


def draw_made_up_tile() -> bytes:
    """A tile of one square and one point made up in memory (the steps a real tile takes:
    WKB, projection, clipping, simplifying, encoding)."""
    z, x, y = 10, 511, 340
    west, south, east, north = grid.tile_bounds_lonlat(z, x, y)
    square = shapely.box(west, south, (west + east) / 2, (south + north) / 2)
    wkb = shapely.to_wkb(np.array([square, shapely.Point(east, north)], dtype=object))
    geoms = shapely.from_wkb(wkb)
    units = shapely.transform(geoms, lambda c: grid.lonlat_to_tile_units(c, z, x, y, 4096))
    units = shapely.clip_by_rect(units, -256, -256, 4352, 4352)
    polygons = shapely.simplify(units[:1], 1.0, preserve_topology=False)
    families = [
        mvt.encode_polygons(polygons, np.array([0])),
        mvt.encode_points(units[1:], np.array([1])),
    ]
    props = {"name": pa.array(["square", "corner"])}
    layer = mvt.encode_layer("warm_up", families, np.array([1, 2]), props, 4096)
    return mvt.encode_tile([layer])


async def warm_up(app: ASGIApp) -> None:
    """Prepare the routes and the tile code (about 0.1 s, once per process)."""
    started = time.perf_counter()
    try:
        await _request(app, NO_ROUTE)
        await anyio.to_thread.run_sync(draw_made_up_tile)
    except Exception:  # a warm-up that fails must never stop the server starting
        log.exception("warming up failed (the first requests will be slower)")
        return
    log.debug("warmed up in %.0f ms", (time.perf_counter() - started) * 1000)
