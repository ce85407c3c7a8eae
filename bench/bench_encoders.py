#!/usr/bin/env python
"""Tile encoders: the hand-written PNG and MVT writers against the libraries (issue 12).

PNG: the same 8-bit paletted tiles (the real OS Terrain 50 DEM, warped to web mercator,
classified through the default ramp exactly as ``tiles.raster.render_png`` does) written by
  - the hand-written writer tiles/png.py had until issue 12 (chunks by hand, zlib level 6,
    no row filter), kept here to compare,
  - Pillow (mode "P" with palette and tRNS, compress_level 6): tiles/png.py now,
  - GDAL's PNG driver through rasterio (colour table with alpha, ZLEVEL 6).
MVT: the same real tiles (Trafford flood-risk and woodland polygons, watercourses, street
trees; z10 to z14), cut as ``tiles.vector.render_vector_tile`` cuts them (projected to tile
units, clipped to the buffered tile, simplified), then encoded by
  - landexplorer.tiles.mvt (numpy, protobuf written by hand),
  - mapbox-vector-tile (pure Python on protobuf; it rounds and orients rings itself),
  - vtzero's Python binding (C++ builder; one call per vertex; only its builder calls
    are timed, with rings already rounded, de-duplicated and oriented outside the timing,
    and properties as strings, the only values the binding takes), when it is installed.
Only the encoding step is timed, in interleaved rounds, in this process.

Run: BENCH_ONLY=encoders BENCH_SKIP_SETUP=1 bash bench/run.sh (needs no peer harness), or
.venv/bin/python bench/bench_encoders.py. Writes bench/results/encoders.json.
"""

from __future__ import annotations

import json
import os
import statistics
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from landexplorer.tiles import colormap, grid, mvt, png  # noqa: E402
from landexplorer.tiles.raster import MercatorRaster, warp_to_mercator  # noqa: E402
from landexplorer.tiles.vector import _simplify, _to_tile_units  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK", "0") == "1"
ROUNDS = 1 if QUICK else int(os.environ.get("BENCH_ENCODERS_ROUNDS", "5"))
REAL = Path(os.environ.get("BENCH_REAL", str(ROOT.parent / "shared" / "data" / "real")))
if not REAL.is_dir():
    REAL = Path("/work/shared/data/real")
OUT = ROOT / "bench" / "results" / "encoders.json"
COMMAND = "BENCH_ONLY=encoders BENCH_SKIP_SETUP=1 bash bench/run.sh"
EXTENT, BUFFER = 4096, 256
DEM = REAL / "dem_os_terrain50" / "trafford_os_terrain50_dtm_50m_bng.tif"
LAYERS = {
    "flood": REAL / "flood_risk_rofrs" / "trafford_rofrs_2018.geojson",
    "woodland": REAL / "woodland" / "trafford_woodland.geojson",
    "watercourses": REAL / "watercourses" / "trafford_watercourses.geojson",
    "trees": REAL / "highways_trees" / "trafford_highways_trees.geojson",
}
ZOOMS = (10, 12) if QUICK else (10, 12, 14)


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), "[encoders]", *parts, file=sys.stderr, flush=True)


# ---- PNG ----------------------------------------------------------------------------------


def png_tiles() -> list[np.ndarray]:
    """Palette indices of every DEM tile at z12 and z13 (z12 only when quick)."""
    work = Path(tempfile.mkdtemp(prefix="bench-encoders-"))
    warped = warp_to_mercator(DEM, work / "mercator.tif")
    raster = MercatorRaster.from_file(warped)
    lo = float(np.nanpercentile(raster.levels[0].data, 2))
    hi = float(np.nanpercentile(raster.levels[0].data, 98))
    west, south = grid.mercator_to_lonlat(raster.left, raster.top - raster.height)
    east, north = grid.mercator_to_lonlat(raster.left + raster.width, raster.top)
    out = []
    for z in (12,) if QUICK else (12, 13):
        x0, y0, x1, y1 = grid.tiles_covering((west, south, east, north), z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                values = raster.sample(z, x, y)
                if values is not None:
                    out.append(colormap.classify(values, lo, hi))
    return out


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_hand(indices: np.ndarray, pal: np.ndarray, alpha: np.ndarray) -> bytes:
    """The hand-written writer tiles/png.py had before Pillow (kept here to compare)."""
    height, width = indices.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # filter byte 0 (None) per row
    rows[:, 1:] = indices
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"PLTE", pal.tobytes()),
            _chunk(b"tRNS", alpha.tobytes()),
            _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)),
            _chunk(b"IEND", b""),
        ]
    )


def png_pillow(indices: np.ndarray, pal: np.ndarray, alpha: np.ndarray) -> bytes:
    """What the server runs now: landexplorer.tiles.png (Pillow)."""
    return png.encode_indexed(indices, pal, alpha)


def png_gdal(indices: np.ndarray, pal: np.ndarray, alpha: np.ndarray) -> bytes:
    from rasterio.io import MemoryFile

    table = {i: (*map(int, pal[i]), int(alpha[i])) for i in range(len(pal))}
    h, w = indices.shape
    with MemoryFile() as mem:
        with mem.open(driver="PNG", width=w, height=h, count=1, dtype="uint8", ZLEVEL=6) as dst:
            dst.write(indices, 1)
            dst.write_colormap(1, table)
        return bytes(mem.read())


# ---- MVT ----------------------------------------------------------------------------------


def mvt_tiles() -> list[dict[str, Any]]:
    """Each tile of each layer at each zoom, cut as render_vector_tile cuts it."""
    import pyogrio

    tiles = []
    for name, path in LAYERS.items():
        frame = pyogrio.read_dataframe(path).to_crs(4326)
        columns = [c for c in frame.columns if c != "geometry"][:4]
        geoms_all = np.asarray(frame.geometry.values, dtype=object)
        tree = shapely.STRtree(geoms_all)
        bounds = tuple(frame.total_bounds)
        for z in ZOOMS:
            x0, y0, x1, y1 = grid.tiles_covering(bounds, z)
            candidates = [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
            # the most crowded tiles of the zoom (where the encoder's cost shows)
            counts = [
                (len(tree.query(shapely.box(*grid.tile_bounds_lonlat(z, x, y)))), x, y)
                for x, y in candidates
            ]
            for n, x, y in sorted(counts, reverse=True)[: 2 if QUICK else 4]:
                if n == 0:
                    continue
                hit = tree.query(shapely.box(*grid.tile_bounds_lonlat(z, x, y)))
                geoms = _to_tile_units(geoms_all[hit].copy(), z, x, y, EXTENT)
                lo, hi = -float(BUFFER), float(EXTENT + BUFFER)
                geoms = shapely.clip_by_rect(geoms, lo, lo, hi, hi)
                keep = ~shapely.is_empty(geoms)
                geoms, hit = geoms[keep], hit[keep]
                kind = shapely.get_type_id(geoms)
                if (kind == 0).all() or (kind == 4).all():
                    family = "point"
                elif np.isin(kind, (1, 5)).all():
                    family, geoms = "line", _simplify(geoms)
                else:
                    polys = np.isin(kind, (3, 6))
                    geoms, hit, family = _simplify(geoms[polys]), hit[polys], "polygon"
                props = {c: [str(v) for v in frame[c].iloc[hit]] for c in columns}
                tiles.append(
                    {
                        "layer": name, "z": z, "x": x, "y": y, "family": family,
                        "geoms": geoms, "ids": hit.astype(np.int64) + 1, "props": props,
                        "arrow": {k: pa.array(v, pa.string()) for k, v in props.items()},
                    }
                )  # fmt: skip
    return tiles


def mvt_hand(tile: dict[str, Any]) -> bytes:
    rows = np.arange(len(tile["geoms"]))
    encode = {"polygon": mvt.encode_polygons, "line": mvt.encode_lines}.get(
        tile["family"], mvt.encode_points
    )
    family = encode(tile["geoms"], rows)
    # the store hands the encoder Arrow columns, as here
    layer = mvt.encode_layer(tile["layer"], [family], tile["ids"], tile["arrow"], EXTENT)
    return mvt.encode_tile([layer])


def mvt_mapbox(tile: dict[str, Any]) -> bytes:
    import mapbox_vector_tile

    keys = list(tile["props"])
    features = [
        {"geometry": g, "id": int(i), "properties": {k: tile["props"][k][n] for k in keys}}
        for n, (g, i) in enumerate(zip(tile["geoms"], tile["ids"], strict=True))
    ]
    return bytes(
        mapbox_vector_tile.encode(
            [{"name": tile["layer"], "features": features}],
            default_options={"extents": EXTENT, "y_coord_down": True},
        )
    )


def vtzero_input(tile: dict[str, Any]) -> list[tuple[int, list[list[list[int]]], list]]:
    """Rounded, de-duplicated, oriented rings or lines per feature, the way a user of the
    binding would make them from the same geometries: the arrays with numpy, then the
    Python lists of points its builder takes."""
    family = tile["family"]
    g = tile["geoms"]
    if family == "polygon":
        g = shapely.orient_polygons(g, exterior_cw=False)  # y down: clockwise on screen
    keep = np.flatnonzero(~shapely.is_empty(g))
    _, coords, offsets = shapely.to_ragged_array(g[keep])
    xy = np.rint(coords).astype(np.int64)  # onto the tile grid, as the hand encoder does
    # parts (rings or lines) per feature; points: each point is a part of one vertex
    if family == "point":
        part_start = np.arange(len(xy) + 1)
        parts_of = offsets[0] if offsets else part_start
    elif family == "line":
        part_start = offsets[0]
        parts_of = offsets[1] if len(offsets) > 1 else np.arange(len(part_start))
    else:
        part_start = offsets[0]
        rings_of_poly = offsets[1]
        parts_of = rings_of_poly[offsets[2]] if len(offsets) > 2 else rings_of_poly
    # repeated points dropped with array operations; part starts moved to match
    dup = np.zeros(len(xy), dtype=bool)
    dup[1:] = (xy[1:] == xy[:-1]).all(axis=1)
    dup[part_start[:-1]] = False
    kept = np.concatenate([[0], np.cumsum(~dup)])
    part_start = kept[part_start]
    points = xy[~dup].tolist()
    sizes = np.diff(part_start).tolist()
    part_start = part_start.tolist()
    minimum = {"polygon": 4, "line": 2, "point": 1}[family]
    keys = list(tile["props"])
    out = []
    for n, fid_at in enumerate(keep):
        rings = [
            points[part_start[part] : part_start[part + 1]]
            for part in range(parts_of[n], parts_of[n + 1])
            if sizes[part] >= minimum
        ]
        if rings:
            attrs = [(k.encode(), str(tile["props"][k][fid_at]).encode()) for k in keys]
            out.append((int(tile["ids"][fid_at]), rings, attrs))
    return out


def mvt_vtzero(tile: dict[str, Any], prepared: list) -> bytes:
    from vtzero.tile import Layer, Linestring, Point, Polygon, Tile

    out = Tile()
    layer = Layer(out, tile["layer"].encode())
    for fid, parts, attrs in prepared:
        if tile["family"] == "polygon":
            f = Polygon(layer)
            f.set_id(fid)
            for ring in parts:
                f.add_ring(len(ring))
                for x, y in ring:
                    f.set_point(x, y)
        elif tile["family"] == "line":
            f = Linestring(layer)
            f.set_id(fid)
            for line in parts:
                f.add_linestring(len(line))
                for x, y in line:
                    f.set_point(x, y)
        else:
            f = Point(layer)
            f.set_id(fid)
            points = [p for part in parts for p in part]
            f.add_points(len(points))
            for x, y in points:
                f.set_point(x, y)
        for key, value in attrs:
            f.add_property(key, value)
        f.commit()
    return bytes(out.serialize())


# ---- timing -------------------------------------------------------------------------------


def timed(work: Callable[[], Any]) -> float:
    """CPU seconds of this process (every encoder here runs on one thread): steadier than
    wall time on a machine other work shares."""
    t0 = time.process_time()
    work()
    return time.process_time() - t0


def run_rounds(cases: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
    """Seconds per round for each case, the cases interleaved within every round."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for work in cases.values():
        work()  # warm-up (imports, caches) outside the timing
    for _ in range(ROUNDS):
        for name, work in cases.items():
            times[name].append(timed(work))
    return times


def row(tool: str, seconds: list[float], count: int, unit: str, notes: str) -> dict[str, Any]:
    med = statistics.median(seconds)
    return {
        "tool": tool,
        "median_s": med,
        "p95_s": max(seconds),
        "peak_rss_mb": None,
        "rate": f"{count / med:,.0f} {unit}/s" if med > 0 else "-",
        "notes": notes,
    }


def main() -> None:
    pal, alpha = colormap.palette(colormap.DEFAULT_RAMP)
    log("PNG: classifying the DEM tiles")
    tiles = png_tiles()
    sizes = {
        name: sum(len(f(t, pal, alpha)) for t in tiles)
        for name, f in (("hand", png_hand), ("pillow", png_pillow), ("gdal", png_gdal))
    }
    png_times = run_rounds(
        {
            "hand": lambda: [png_hand(t, pal, alpha) for t in tiles],
            "pillow": lambda: [png_pillow(t, pal, alpha) for t in tiles],
            "gdal": lambda: [png_gdal(t, pal, alpha) for t in tiles],
        }
    )
    log("MVT: cutting the tiles")
    vt = mvt_tiles()
    features = sum(len(t["geoms"]) for t in vt)
    try:
        import vtzero.tile  # noqa: F401

        prepared = [vtzero_input(t) for t in vt]
        have_vtzero = True
    except ImportError:
        prepared, have_vtzero = [], False
    cases: dict[str, Callable[[], Any]] = {
        "hand": lambda: [mvt_hand(t) for t in vt],
        "mapbox": lambda: [mvt_mapbox(t) for t in vt],
    }
    if have_vtzero:
        cases["vtzero"] = lambda: [mvt_vtzero(t, p) for t, p in zip(vt, prepared, strict=True)]
        cases["vtzero_prep"] = lambda: [mvt_vtzero(t, vtzero_input(t)) for t in vt]
    mvt_sizes = {name: sum(len(b) for b in work()) for name, work in cases.items()}
    mvt_times = run_rounds(cases)

    n = len(tiles)
    rows = [
        row("PNG: hand-written writer (before issue 12; zlib 6)", png_times["hand"], n, "tiles",
            f"{n} DEM tiles z12-13, {sizes['hand'] / n / 1024:.1f} KiB/tile"),
        row("PNG: Pillow (P + tRNS, level 6; tiles/png.py now)", png_times["pillow"], n, "tiles",
            f"{sizes['pillow'] / n / 1024:.1f} KiB/tile"),
        row("PNG: GDAL PNG driver via rasterio (ZLEVEL 6)", png_times["gdal"], n, "tiles",
            f"{sizes['gdal'] / n / 1024:.1f} KiB/tile"),
    ]  # fmt: skip
    m = len(vt)
    label = {
        "hand": "MVT: landexplorer.tiles.mvt (numpy, hand protobuf)",
        "mapbox": "MVT: mapbox-vector-tile",
        "vtzero": "MVT: vtzero binding, builder calls only (rings prepared untimed)",
        "vtzero_prep": "MVT: vtzero binding, with the rings made from the same geometries",
    }
    for name, seconds in mvt_times.items():
        rows.append(
            row(label[name], seconds, m, "tiles",
                f"{m} tiles, {features:,} features, {mvt_sizes[name] / m / 1024:.1f} KiB/tile")
        )  # fmt: skip
    hand_png = statistics.median(png_times["hand"])
    hand_mvt = statistics.median(mvt_times["hand"])

    def ratio(times: dict[str, list[float]], name: str, base: float) -> float:
        return statistics.median(times[name]) / base

    ratios = [
        {"what": "Pillow / hand PNG time", "value": ratio(png_times, "pillow", hand_png),
         "goal": "<= 1.5 (Pillow replaces the hand writer unless it costs more)"},
        {"what": "GDAL / hand PNG time", "value": ratio(png_times, "gdal", hand_png),
         "goal": "-"},
        {"what": "mapbox-vector-tile / hand MVT time",
         "value": ratio(mvt_times, "mapbox", hand_mvt),
         "goal": "> 1 (the hand encoder stays only while faster)"},
    ]  # fmt: skip
    if have_vtzero:
        ratios += [
            {"what": "vtzero (shapely to rounded rings + builder) / hand MVT time",
             "value": ratio(mvt_times, "vtzero_prep", hand_mvt),
             "goal": "> 1 (the hand encoder stays only while faster)"},
            {"what": "vtzero builder calls alone / hand MVT time (a lower bound)",
             "value": ratio(mvt_times, "vtzero", hand_mvt), "goal": "-"},
        ]  # fmt: skip
    result = {
        "workload": "encoders",
        "title": "Tile encoders: PNG (hand vs Pillow vs GDAL) and MVT (hand vs libraries)",
        "command": COMMAND,
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "rows": rows,
        "ratios": ratios,
        "notes": (
            f"{ROUNDS} interleaved round(s) in one process, encoding only (tiles cut "
            "beforehand), CPU time of the process. median = median round over all tiles; p95 "
            "column = slowest round. "
            + ("QUICK run (one round, fewer tiles): figures are a smoke test. " if QUICK else "")
            + "MVT outputs differ in bytes (mapbox-vector-tile rounds and orients itself; "
            "vtzero takes strings only), not in what they draw. Decision (issue 12): tiles/png.py "
            "writes with Pillow, a well-kept encoder, at about the hand writer's cost; "
            "tiles/mvt.py stays hand-written while it is faster than mapbox-vector-tile and "
            "than the vtzero binding fed from the same geometries (the binding takes one "
            "Python call per vertex: its builder calls alone are quicker, making its input "
            "is not)."
        ),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        log(f"{r['tool']}: {r['median_s'] * 1000:.1f} ms ({r['rate']}; {r['notes']})")
    for r in ratios:
        log(f"{r['what']}: {r['value']:.2f}")


if __name__ == "__main__":
    main()
