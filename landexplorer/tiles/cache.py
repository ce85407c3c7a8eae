"""The tile cache, keyed by layer id and version.

Two tiers: a bounded in-memory LRU per process, and files under the cache folder shared
by every worker process (and kept across restarts). The layer's generation (its version
plus a tag of when and from what it was made, so a layer deleted and loaded again under
the same id never meets the old tiles) is part of every key: a replaced layer is served
from new keys at once, and files of older generations are removed when a newer one is
first drawn.

A tile sent to a client that accepts gzip is sent compressed: the compressed copy is made
once per tile (``compressed``), kept beside the tile in both tiers (``<y>.mvt.gz``), and
removed with it. A tile first drawn for such a client has only its compressed copy written
to disk (one file created per drawing); a process that needs its plain bytes unpacks it.
Small tiles are sent as they are (compression would save nothing worth the client's
time); PNG is compressed already and never compressed again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

_STRIPES = 64
#: Byte slots of the ``.claims`` file: tiles sharing a slot wait for each other's drawing.
_CLAIM_SLOTS = 4096
#: Tiles smaller than this are sent uncompressed (the HTTP layer uses the same threshold).
GZIP_MIN_BYTES = 500
#: zlib's level for tiles and the HTTP layer alike (6: most of level 9's saving, far faster).
GZIP_LEVEL = 6
#: Tile extensions worth compressing (PNG is compressed already).
COMPRESSIBLE = ("mvt",)


def gzip_bytes(data: bytes) -> bytes:
    """``data`` as a gzip stream, exactly as the HTTP layer compresses a whole body (one
    zlib stream with the gzip wrapper, ``GZIP_LEVEL``): the same tile gives the same bytes
    whichever of the two sends it."""
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def generation(version: int, *identity: object) -> str:
    """The cache folder name of one layer version: ``v<version>-<tag>``; the tag is a hash of
    what identifies that version (e.g. its creation time, table and checksum)."""
    tag = hashlib.blake2b(repr(identity).encode(), digest_size=4).hexdigest()
    return f"v{version}-{tag}"


def _version_of(name: str) -> int:
    head = name.split("-", 1)[0]
    return int(head[1:]) if head.startswith("v") and head[1:].isdigit() else -1


@dataclass(frozen=True)
class TileKey:
    """What identifies one cached tile. ``variant`` names the rendering options."""

    layer_id: str
    generation: str
    variant: str
    z: int
    x: int
    y: int
    ext: str


def _packed_key(key: TileKey) -> TileKey:
    """Where the gzip copy of a tile is kept (``<y>.mvt.gz``)."""
    return dataclasses.replace(key, ext=key.ext + ".gz")


def _worth_packing(key: TileKey, data: bytes) -> bool:
    return key.ext in COMPRESSIBLE and len(data) >= GZIP_MIN_BYTES


def _claim_slot(key: TileKey) -> int:
    """The claim slot of a tile, the same in every process (``hash()`` of a string is not)."""
    name = f"{key.layer_id}/{key.generation}/{key.variant}/{key.z}/{key.x}/{key.y}.{key.ext}"
    return zlib.crc32(name.encode()) % _CLAIM_SLOTS


class TileCache:
    """Memory LRU (``max_bytes``) in front of a folder of tile files (``root``, optional)."""

    def __init__(self, root: Path | None, max_bytes: int = 128 * 2**20) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._mem: OrderedDict[TileKey, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._generations: dict[str, str] = {}
        self._claims = [threading.Lock() for _ in range(_STRIPES)]
        self._claims_handle: int | None = None
        self.hits = self.misses = 0

    def _path(self, key: TileKey) -> Path:
        return Path(self._name(key))

    def _name(self, key: TileKey) -> str:
        """The tile's file (a string: a miss costs one failed open, not a Path's making)."""
        assert self.root is not None
        return (
            f"{self.root}/{key.layer_id}/{key.generation}/{key.variant}/{key.z}/{key.x}/"
            f"{key.y}.{key.ext}"
        )

    def get(self, key: TileKey) -> bytes | None:
        """The cached tile (b"" for a known-empty tile) or None."""
        data = self._mem.get(key)
        if data is not None:
            with contextlib.suppress(KeyError):
                self._mem.move_to_end(key)
            self.hits += 1
            return data
        if self.root is not None:
            data = self._read(key)
            if data is None and key.ext in COMPRESSIBLE:
                # drawn for a client that takes gzip: only the compressed copy is on disk
                packed = self._read(_packed_key(key))
                if packed is not None:
                    with contextlib.suppress(zlib.error):
                        data = zlib.decompress(packed, 16 + zlib.MAX_WBITS)
                        self._remember(_packed_key(key), packed)
            if data is not None:
                self._remember(key, data)
                self.hits += 1
                return data
        self.misses += 1
        return None

    def _read(self, key: TileKey) -> bytes | None:
        try:
            with open(self._name(key), "rb") as fh:
                return fh.read()
        except OSError:
            return None

    @contextlib.contextmanager
    def claim(self, key: TileKey) -> Iterator[None]:
        """Hold the right to draw ``key``: one drawer per tile across threads (a lock) and
        across worker processes (a byte-range lock in one ``.claims`` file of the cache
        folder, at a slot from the tile's address), so concurrent first requests of a big
        tile wait for one drawing instead of each drawing it again. One file for every
        tile: a lock file per tile would be one more file created per drawing."""
        slot = _claim_slot(key)
        with self._claims[slot % _STRIPES]:
            handle = self._claims_file()
            if handle is None:
                yield
                return
            fcntl.lockf(handle, fcntl.LOCK_EX, 1, slot)
            try:
                yield
            finally:
                fcntl.lockf(handle, fcntl.LOCK_UN, 1, slot)

    def _claims_file(self) -> int | None:
        """The open ``.claims`` file (kept open: closing any handle of it would drop this
        process's locks on it), or None without a folder."""
        if self.root is None:
            return None
        with self._lock:
            if self._claims_handle is None:
                try:
                    self.root.mkdir(parents=True, exist_ok=True)
                    self._claims_handle = os.open(
                        self.root / ".claims", os.O_CREAT | os.O_RDWR, 0o644
                    )
                except OSError:
                    return None
            return self._claims_handle

    def compressed(self, key: TileKey, data: bytes) -> bytes | None:
        """The gzip copy of the tile ``data`` cached under ``key`` (made once, then kept in
        memory and on disk), or None when the tile is not worth compressing."""
        if not _worth_packing(key, data):
            return None
        packed_key = _packed_key(key)
        packed = self.get(packed_key)
        if packed is None:
            packed = gzip_bytes(data)
            self.put(packed_key, packed)
        return packed

    def get_or_make(self, key: TileKey, make: Callable[[], bytes], *, pack: bool = False) -> bytes:
        """The cached tile, or ``make()`` run once (whoever else asks meanwhile waits).

        ``pack`` (the asker takes gzip): a tile worth compressing is compressed now and only
        its compressed copy is written to disk (one file per tile drawn, not two); the
        plain bytes stay in memory, and another process that needs them unpacks the file."""
        data = self.get(key)
        if data is not None:
            return data
        with self.claim(key):
            data = self.get(key)  # drawn by another thread or worker while we waited
            if data is None:
                data = make()
                if pack and _worth_packing(key, data):
                    self._remember(key, data)
                    self.put(_packed_key(key), gzip_bytes(data))  # retires older generations
                else:
                    self.put(key, data)
        return data

    def remember(self, key: TileKey, data: bytes, packed: bytes | None = None) -> None:
        """Keep a tile (and its gzip copy) in memory only: for tiles kept on disk elsewhere."""
        self._remember(key, data)
        if packed is not None and _worth_packing(key, data):
            self._remember(_packed_key(key), packed)

    def put(self, key: TileKey, data: bytes) -> None:
        """Keep a tile in memory and (atomically) on disk."""
        self._retire_older(key.layer_id, key.generation)
        self._remember(key, data)
        if self.root is None:
            return
        name = self._name(key)
        folder = os.path.dirname(name)
        try:
            try:
                handle, tmp = tempfile.mkstemp(prefix=".t-", dir=folder)
            except FileNotFoundError:  # the first tile of its column
                os.makedirs(folder, exist_ok=True)
                handle, tmp = tempfile.mkstemp(prefix=".t-", dir=folder)
            with os.fdopen(handle, "wb") as fh:
                fh.write(data)
            os.replace(tmp, name)
        except OSError:
            pass  # a cache that cannot write still serves from memory

    def _remember(self, key: TileKey, data: bytes) -> None:
        with self._lock:
            old = self._mem.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._mem[key] = data
            self._size += len(data)
            while self._size > self.max_bytes and self._mem:
                _, dropped = self._mem.popitem(last=False)
                self._size -= len(dropped)

    def _retire_older(self, layer_id: str, generation: str) -> None:
        """Remove cached files of a layer's other generations that are not newer than
        ``generation`` (once per generation seen; a lagging worker never removes newer ones)."""
        if self._generations.get(layer_id) == generation:
            return
        self._generations[layer_id] = generation
        current = _version_of(generation)
        with self._lock:
            stale = [
                k
                for k in self._mem
                if k.layer_id == layer_id
                and k.generation != generation
                and _version_of(k.generation) <= current
            ]
            for k in stale:
                self._size -= len(self._mem.pop(k))
        if self.root is None:
            return
        folder = self.root / layer_id
        if not folder.is_dir():
            return
        for child in folder.iterdir():
            number = _version_of(child.name)
            if child.name != generation and 0 <= number <= current:
                shutil.rmtree(child, ignore_errors=True)

    def forget_layer(self, layer_id: str) -> None:
        """Drop everything cached for a layer (it was deleted)."""
        with self._lock:
            for key in [k for k in self._mem if k.layer_id == layer_id]:
                self._size -= len(self._mem.pop(key))
        if self.root is not None:
            shutil.rmtree(self.root / layer_id, ignore_errors=True)
