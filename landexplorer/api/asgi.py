"""Entry point for ASGI servers: ``uvicorn --factory landexplorer.api.asgi:app_from_env``.

Worker processes build their own app from the settings in the environment
(``LANDEXPLORER_*``), which ``landexplorer serve`` sets before starting them.
"""

from __future__ import annotations

from fastapi import FastAPI

from landexplorer.api.app import create_app
from landexplorer.api.limits import limit_allocator_arenas
from landexplorer.api.supervised import end_with_supervisor
from landexplorer.settings import Settings


def app_from_env() -> FastAPI:
    """An app for the settings found in the environment."""
    # Few malloc arenas in a server process: with many worker threads glibc's default
    # (8 per core) lets memory that NumPy, GDAL and Arrow free sit in many arenas and the
    # resident size creep towards the memory ceiling.
    limit_allocator_arenas()
    # a worker of `landexplorer serve` ends with the process that supervises it
    end_with_supervisor()
    # a server process warms up before its first request (api/warmup.py)
    return create_app(Settings(), warm=True)
