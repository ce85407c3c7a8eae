"""The tile cache: generations retire older ones, and a tile is drawn once however many ask."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

from landexplorer.tiles.cache import TileCache, TileKey, generation


def _key(gen: str, x: int = 1) -> TileKey:
    return TileKey("layer", gen, "mvt", 14, x, 2, "mvt")


def test_new_generation_retires_older_ones(tmp_path: Path) -> None:
    cache = TileCache(tmp_path)
    v1, v2 = generation(1, "a"), generation(2, "b")
    assert v1.startswith("v1-") and v1 != generation(1, "other")
    cache.put(_key(v1), b"old")
    assert cache.get(_key(v1)) == b"old"
    cache.put(_key(v2), b"new")
    assert cache.get(_key(v1)) is None  # neither in memory nor on disk
    assert [p.name for p in (tmp_path / "layer").iterdir()] == [v2]
    # another process (a fresh cache over the same folder) finds the file
    assert TileCache(tmp_path).get(_key(v2)) == b"new"


def test_memory_is_bounded(tmp_path: Path) -> None:
    cache = TileCache(None, max_bytes=1000)
    for x in range(10):
        cache.put(_key("v1-x", x), b"x" * 300)
    kept = [x for x in range(10) if cache.get(_key("v1-x", x)) is not None]
    assert kept == [7, 8, 9]


def test_a_tile_is_drawn_once_for_concurrent_askers(tmp_path: Path) -> None:
    cache = TileCache(tmp_path)
    calls = []

    def draw() -> bytes:
        calls.append(1)
        time.sleep(0.2)
        return b"tile"

    results: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_make(_key("v1-a"), draw)))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [b"tile"] * 6
    assert len(calls) == 1


def _draw_in_another_process(root: str, log: str, start_at: float) -> bytes:
    """Ask for the same tile as the test, from a process of its own, at ``start_at``."""
    cache = TileCache(Path(root))

    def draw() -> bytes:
        with open(log, "a") as fh:
            fh.write("drawn\n")
        time.sleep(0.5)
        return b"tile"

    time.sleep(max(0.0, start_at - time.time()))
    return cache.get_or_make(_key("v1-a"), draw)


def test_a_tile_is_drawn_once_across_processes(tmp_path: Path) -> None:
    """Worker processes that ask for the same new tile at once wait for one drawing (the
    slot of the tile in the cache folder's claims file), and no lock file is left per tile."""
    log = tmp_path / "draws.log"
    start_at = time.time() + 1.5  # after the processes have started
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        results = pool.starmap(
            _draw_in_another_process, [(str(tmp_path / "cache"), str(log), start_at)] * 3
        )
    assert results == [b"tile"] * 3
    assert log.read_text().splitlines() == ["drawn"]
    files = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert files == [".claims", "2.mvt"]
