"""The HTTP API (FastAPI). Only this package imports fastapi."""

from __future__ import annotations

from landexplorer.api.app import create_app

__all__ = ["create_app"]
