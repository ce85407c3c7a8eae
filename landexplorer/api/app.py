"""The FastAPI application factory.

``create_app(settings)`` builds the store once (``app.state.store``), registers the one
error map and includes the routers. Each router is one resource; the work happens in the
other packages (catalog, layers, analysis, tiles).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from landexplorer.access.store import AccessStore
from landexplorer.api.auth import Authenticator, Identify
from landexplorer.api.cors import PublicCORS
from landexplorer.api.errors import register_error_handlers
from landexplorer.api.guards import WriteGuard
from landexplorer.api.jobs import Jobs
from landexplorer.api.limits import RequestLimits
from landexplorer.api.openapi import install as install_openapi
from landexplorer.api.ratelimit import RateLimit
from landexplorer.api.tilefast import CachedTiles
from landexplorer.api.warmup import warm_up
from landexplorer.catalog import open_store
from landexplorer.settings import Settings
from landexplorer.tiles.cache import GZIP_LEVEL, GZIP_MIN_BYTES
from landexplorer.tiles.service import TileService

TITLE = "Land Explorer"


def create_app(settings: Settings | None = None, *, warm: bool = False) -> FastAPI:
    """Build the HTTP application for one catalogue (``warm``: prepare the routes and the
    tile code when it starts, as a server process does; see ``api/warmup.py``)."""
    settings = settings or Settings()
    store = open_store(settings)
    # people, groups, tokens, links and the audit log, kept beside the catalogue
    access = AccessStore.beside(store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Every blocking piece of work (queries, analysis, rendering) runs in this one
        # bounded pool of threads, never on the event loop.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.work_threads
        if warm:
            await warm_up(app)
        yield
        app.state.jobs.close()
        access.close()
        store.close()

    app = FastAPI(
        title=TITLE,
        description="Community land data beside open flood, soil and designation layers "
        "(OGC API - Features, tiles, analysis).",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # /docs is served by the web router, with local scripts
        redoc_url=None,  # ReDoc would load its script from a CDN: /docs is the API page
    )
    app.state.settings = settings
    app.state.store = store
    app.state.access = access
    # actors looked up are kept a moment, until another process changes people or links
    app.state.auth = Authenticator(access, changes=store.changes())
    # upload jobs and upload folders that a stopped server left are finished first
    app.state.jobs = Jobs.start(settings.data_dir / "jobs", store)
    # ... and the low-zoom tiles of big layers are made after an upload's job, and again
    # when feature edits pause
    app.state.jobs.pyramid_dir = settings.pyramid_dir
    app.state.jobs.pyramids_after_upload = settings.pyramids_after_upload
    app.state.jobs.refresh_after_s = settings.pyramid_refresh_after_s
    # the tile service and its cache folder (beside the catalogue unless tile_cache_dir says
    # otherwise; cached tiles are answered before routing by CachedTiles, which reads the
    # same service)
    app.state.tiles = TileService(store, settings.tile_cache_path, pyramid_dir=settings.pyramid_dir)
    # saved maps a client may create per minute (counted in this process)
    app.state.maps_rate = RateLimit(settings.maps_per_minute, 60.0)
    register_error_handlers(app)
    install_openapi(app)  # the OpenAPI document as the server really answers
    # Body sizes counted as they stream, the time budget, the memory ceiling.
    app.add_middleware(RequestLimits, settings=settings)
    # Writes from callers who cannot write anything are refused before their body is
    # read (outside the limits: such a caller learns nothing more).
    app.add_middleware(WriteGuard)
    # Cached tiles answered before routing (falls through to the tiles router otherwise),
    # inside Identify: a tile of a layer that is not public goes to those the policy lets
    # see it only.
    app.add_middleware(CachedTiles)
    # Who is asking (session cookie, bearer token, share links), before everything that
    # asks the policy; inside CORS so that refusals carry CORS headers.
    app.add_middleware(Identify, authenticator=app.state.auth, threaded=store.backend == "postgis")
    # CORS: public reads for every site, writes and the token only for cors_origins.
    app.add_middleware(PublicCORS, settings=settings)
    # Answers compressed as the client accepts (JSON, vector tiles; never PNG, zip or a
    # live feed), with the cached tiles' own threshold and level (tiles/cache.py).
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES, compresslevel=GZIP_LEVEL)
    # ... and public layers' cached tiles before anything at all (as fast as can be).
    app.add_middleware(CachedTiles, public_only=True)

    # ---- Routers are included HERE, one line each. Add yours (e.g. tiles) to this list.
    from landexplorer.api.routers import (
        access_requests,
        account,
        analysis,
        audit,
        collections,
        edit,
        exports,
        groups,
        history,
        items,
        landing,
        live,
        maps,
        sharing,
        tiles,
        uploads,
        values,
        web,
    )

    routers = [
        web.router,  # before landing: it shares "/" (HTML for browsers, JSON otherwise)
        # early: a map asks for tiles most, and a request is matched route by route (each
        # miss costs a few microseconds; tile paths share no pattern with the routers after)
        tiles.router,
        maps.router,
        landing.router,
        collections.router,
        items.router,
        edit.router,  # feature edits (OGC API - Features Part 4) and their history
        history.router,
        live.router,  # the change list, live (Server-Sent Events)
        exports.router,
        uploads.router,
        analysis.router,
        values.router,
        account.router,
        groups.router,
        sharing.router,
        access_requests.router,
        audit.router,
    ]
    for router in routers:
        app.include_router(router)
    return app
