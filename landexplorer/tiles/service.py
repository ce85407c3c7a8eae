"""Tiles for the catalogue: the entry point the API uses.

``TileService`` turns (layer id, z, x, y) into tile bytes through the cache: the layer's
current version is looked up in the catalogue on every request (a cheap, cached read),
so a replaced layer is drawn from new cache keys at once, in every worker, without a
restart.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from pathlib import Path

from landexplorer.catalog.base import Store
from landexplorer.catalog.model import LayerEntry
from landexplorer.errors import InputError, LayerNotFound
from landexplorer.tiles import colormap, grid
from landexplorer.tiles.cache import TileCache, TileKey, generation
from landexplorer.tiles.edits import EditIndex
from landexplorer.tiles.pyramid import Pyramids
from landexplorer.tiles.raster import RasterSources, render_png
from landexplorer.tiles.vector import TileOptions, check_properties, render_vector_tile

#: The variant of tiles read from a layer's pyramid (all columns, no edit since it was made).
PYRAMID_VARIANT = "pyramid"


def _variant(prefix: str, *parts: object) -> str:
    if not any(p is not None for p in parts):
        return prefix
    text = repr(parts).encode()
    return f"{prefix}-{hashlib.sha1(text).hexdigest()[:12]}"


def layer_generation(entry: LayerEntry) -> str:
    """The cache generation of a layer's current version (see ``tiles.cache.generation``).
    A vector layer's follows its table (``<id>_v<n>``): feature edits do not move it, they
    are in the keys of the tiles they touched (``tiles.edits``)."""
    version = entry.version
    head, _, tail = entry.storage.rpartition("_v")
    if entry.data_type == "vector" and head and tail.isdigit():
        version = int(tail)
    return generation(version, entry.created, entry.storage, entry.checksum)


class TileService:
    """Vector and raster tiles of catalogue layers, cached by layer version."""

    def __init__(
        self,
        store: Store,
        cache_dir: Path | None,
        max_memory_mb: int = 128,
        pyramid_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.cache = TileCache(cache_dir, max_bytes=max_memory_mb * 2**20)
        #: low-zoom tiles of big layers, made when they were written (tiles/pyramid.py)
        self.pyramids = Pyramids(pyramid_dir)
        self.rasters = RasterSources(cache_dir or Path(".landexplorer-tiles"))
        #: which tiles feature edits touched, per layer (read from the history)
        self.edits = EditIndex(store)

    # ----- lookups ---------------------------------------------------------------------------
    def layer(self, layer_id: str) -> LayerEntry:
        """A layer anybody may see: public and licensed (others do not exist to viewers)."""
        entry = self.store.get(layer_id)
        if not entry.is_public:
            raise LayerNotFound(f"There is no layer called '{layer_id}' in the catalogue.")
        return entry

    @staticmethod
    def check_type(entry: LayerEntry, data_type: str) -> None:
        """Refuse vector tiles of a raster layer and PNG tiles of a vector layer."""
        if entry.data_type != data_type:
            layer_id = entry.id
            kind = "vector (features)" if entry.data_type == "vector" else "raster (grid)"
            raise InputError(
                f"'{layer_id}' is a {kind} layer; ask for its "
                + ("vector tiles (.mvt)." if entry.data_type == "vector" else "PNG tiles (.png).")
            )

    @staticmethod
    def check_tile(z: int, x: int, y: int) -> None:
        """Refuse tiles outside the WebMercatorQuad grid (a 404: no such tile)."""
        try:
            grid.check_tile(z, x, y)
        except ValueError as exc:
            raise LayerNotFound(f"There is no such tile: {exc}.") from exc

    # ----- vector ---------------------------------------------------------------------------
    def vector_request(
        self, entry: LayerEntry, z: int, x: int, y: int, properties: Sequence[str] | None = None
    ) -> tuple[TileKey, tuple[str, ...] | None]:
        """Check a tile request for a vector layer; returns the cache key and the properties."""
        self.check_tile(z, x, y)
        self.check_type(entry, "vector")
        props = check_properties(entry, properties)
        variant = _variant("mvt", props)
        edited = self.edits.revision(entry, z, x, y)  # the latest edit that reached this tile
        gen = layer_generation(entry)
        built = self.pyramids.find(entry, gen) if props is None else None
        if (
            built is not None
            and z <= built.max_zoom
            and (edited <= built.edits_included or (z, x, y) in built.heavy)
        ):
            # made ahead (tiles.pyramid), with every edit that reached this tile; or a tile
            # too big to draw on request, which shows later edits once it is made again
            variant = f"{PYRAMID_VARIANT}-{built.edits_included}-{built.stamp[1]}"
        elif edited:
            variant += f"-e{edited}"
        key = TileKey(entry.id, gen, variant, z, x, y, "mvt")
        return key, props

    def cached(self, key: TileKey) -> bytes | None:
        """A cached tile (b"" for an empty one) or None."""
        return self.cache.get(key)

    def render_vector(
        self,
        entry: LayerEntry,
        key: TileKey,
        props: tuple[str, ...] | None,
        *,
        pack: bool = False,
    ) -> bytes:
        """The tile for ``key``: drawn once (concurrent askers wait for it) and kept
        (``pack``: for a client that takes gzip, kept compressed; ``TileCache.get_or_make``).
        A pyramid's tile is read from it and kept in memory only (it is on disk already)."""
        if key.variant.startswith(PYRAMID_VARIANT):
            built = self.pyramids.find(entry, key.generation)
            if built is not None:
                packed = self.pyramids.packed_tile(built, key.z, key.x, key.y)
                data = gzip.decompress(packed) if packed else b""
                self.cache.remember(key, data, packed or None)
                return data
        return self.cache.get_or_make(
            key,
            lambda: render_vector_tile(
                self.store, entry, key.z, key.x, key.y, TileOptions(properties=props)
            ),
            pack=pack,
        )

    def vector_tile(
        self, layer_id: str, z: int, x: int, y: int, properties: Sequence[str] | None = None
    ) -> bytes:
        """MVT bytes of one tile (b"" when empty), from the cache or drawn now."""
        entry = self.layer(layer_id)
        key, props = self.vector_request(entry, z, x, y, properties)
        data = self.cache.get(key)
        return data if data is not None else self.render_vector(entry, key, props)

    # ----- raster ---------------------------------------------------------------------------
    @staticmethod
    def default_rescale(entry: LayerEntry) -> tuple[float, float]:
        """The layer's value range (from ingest statistics): the default colour stretch."""
        stats = (entry.raster or {}).get("stats") or {}
        low, high = stats.get("min"), stats.get("max")
        if low is None or high is None:
            return 0.0, 1.0
        return float(low), float(high)

    def raster_request(
        self,
        entry: LayerEntry,
        z: int,
        x: int,
        y: int,
        ramp: str | None = None,
        rescale: tuple[float, float] | None = None,
    ) -> tuple[TileKey, str, tuple[float, float]]:
        """Check a raster tile request; returns the cache key, ramp and value range."""
        self.check_tile(z, x, y)
        self.check_type(entry, "raster")
        ramp_name = ramp or colormap.DEFAULT_RAMP
        colormap.palette(ramp_name)  # refuses unknown names in plain words
        if rescale is not None and not rescale[0] < rescale[1]:
            raise InputError("rescale needs two numbers, the lower first, e.g. rescale=0,100.")
        variant = _variant("png", ramp, rescale)
        key = TileKey(entry.id, layer_generation(entry), variant, z, x, y, "png")
        return key, ramp_name, rescale or self.default_rescale(entry)

    def render_raster(
        self, entry: LayerEntry, key: TileKey, ramp: str, value_range: tuple[float, float]
    ) -> bytes:
        """The PNG for ``key``: drawn once (warping the raster on its first use) and kept."""

        def draw() -> bytes:
            source = self.rasters.get(entry.id, key.generation, self.store.raster_path(entry))
            return render_png(source, key.z, key.x, key.y, value_range[0], value_range[1], ramp)

        return self.cache.get_or_make(key, draw)

    def raster_tile(
        self,
        layer_id: str,
        z: int,
        x: int,
        y: int,
        ramp: str | None = None,
        rescale: tuple[float, float] | None = None,
    ) -> bytes:
        """PNG bytes of one raster tile, from the cache or drawn now."""
        entry = self.layer(layer_id)
        key, ramp_name, value_range = self.raster_request(entry, z, x, y, ramp, rescale)
        data = self.cache.get(key)
        return data if data is not None else self.render_raster(entry, key, ramp_name, value_range)
