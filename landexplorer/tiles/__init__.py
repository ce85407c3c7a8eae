"""Tiles: vector (MVT) and raster (PNG) tiles of catalogue layers, TileJSON, and the
tile cache keyed by layer version. Knows nothing of HTTP."""

from __future__ import annotations

from landexplorer.tiles.service import TileService

__all__ = ["TileService"]
