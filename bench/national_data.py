"""The national-size workload: 5,000,000 flood polygons across England's extent.

Made by the peer harness's method (``../shared/bench/make_data.py``: copies of the real
Trafford RoFRS polygons on a grid, a seeded shift of each copy by up to COPY_SHIFT and of
each polygon by up to POLY_JITTER, the harness's SEED), on a grid that covers England's
bounding box in British National Grid (E 85-655 km, N 10-657 km): 3,347 copies of the
1,494 real polygons, the last copy cut to make exactly 5,000,000. The copies overlap (the
step is about 10.4 km by 10.6 km; Trafford's polygons span about 15 km by 14 km), which makes the
layer about as dense as the 100k one is across Greater Manchester, six times over.

Written in EPSG:4326 (as the 100k layer), a grid row at a time, so memory stays flat:
``$BENCH_DATA/work/national/flood_5m.gpkg`` (about 1.8 GB). Kept between runs (the file
says how it was made in its name; delete it to make it again).

    .venv/bin/python bench/national_data.py          # ~2-4 minutes on 2 cores
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("BENCH_SHARED", "/work/shared/bench"))
sys.path.insert(0, str(SHARED))
from common import REAL, WORK, log  # noqa: E402
from make_data import COPY_SHIFT, POLY_JITTER, SEED  # noqa: E402

N_POLYS = 5_000_000
WEST, EAST = 85_000.0, 655_000.0  # England's bounding box, BNG metres
SOUTH, NORTH = 10_000.0, 657_000.0
OUT = WORK / "national" / "flood_5m.gpkg"


def grid_steps(n_source: int) -> tuple[int, int]:
    """Columns and rows of a square-stepped grid over the box holding enough copies."""
    copies = math.ceil(N_POLYS / n_source)
    aspect = (EAST - WEST) / (NORTH - SOUTH)
    cols = math.ceil(math.sqrt(copies * aspect))
    rows = math.ceil(copies / cols)
    return cols, rows


def main() -> Path:
    import geopandas as gpd
    import pandas as pd
    import pyogrio
    import shapely

    if OUT.exists():
        log(f"national: {OUT} exists ({OUT.stat().st_size / 2**30:.2f} GiB), kept")
        return OUT
    OUT.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    src = gpd.read_file(REAL / "flood_risk_rofrs/trafford_rofrs_2018.geojson").to_crs(27700)
    geoms = shapely.force_2d(src.geometry.values)
    geoms = np.array(
        [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in geoms],
        dtype=object,
    )
    n0 = len(geoms)
    # the source sits at its own place: move it so that copy (0, 0) starts at the south-west
    x0, y0 = shapely.total_bounds(geoms)[:2]
    cols, rows = grid_steps(n0)
    step_x, step_y = (EAST - WEST) / cols, (NORTH - SOUTH) / rows
    counts = shapely.get_num_coordinates(geoms)
    rng = np.random.default_rng(SEED + 5)
    tmp = OUT.with_suffix(".partial.gpkg")
    tmp.unlink(missing_ok=True)
    written = 0
    for j in range(rows):
        parts, attrs = [], []
        for i in range(cols):
            if written + sum(len(p) for p in parts) >= N_POLYS:
                break
            sx, sy = rng.uniform(-COPY_SHIFT, COPY_SHIFT, 2)
            ox, oy = WEST + i * step_x - x0 + sx, SOUTH + j * step_y - y0 + sy
            jit = rng.uniform(-POLY_JITTER, POLY_JITTER, (n0, 2))
            off = np.repeat(jit + [ox, oy], counts, axis=0)
            parts.append(shapely.transform(geoms, lambda c, off=off: c + off))
            attrs.append(j * cols + i)
        if not parts:
            break
        moved = np.concatenate(parts)
        copy_no = np.repeat(np.asarray(attrs, dtype=np.int32), n0)
        take = min(len(moved), N_POLYS - written)
        moved, copy_no = moved[:take], copy_no[:take]
        src_idx = np.tile(np.arange(n0), len(parts))[:take]
        a = src.iloc[src_idx].reset_index(drop=True)
        df = pd.DataFrame({
            "id": np.arange(written + 1, written + take + 1, dtype=np.int64),
            "prob_4band": a["prob_4band"].astype(str).values,
            "suitabilit": a["suitabilit"].astype(str).values,
            "pub_date": "2018-03-28",
            "area_code": a["area_code"].astype(str).values,
            "copy_no": copy_no,
        })  # fmt: skip
        frame = gpd.GeoDataFrame(df, geometry=moved, crs=27700)
        frame["st_area_sh"] = frame.geometry.area.round(2)
        pyogrio.write_dataframe(
            frame.to_crs(4326), tmp, layer="flood", driver="GPKG", promote_to_multi=True,
            append=written > 0, layer_options={"SPATIAL_INDEX": "YES", "FID": "fid"},
        )  # fmt: skip
        written += take
        log(f"national: row {j + 1}/{rows}, {written:,} polygons")
        if written >= N_POLYS:
            break
    tmp.rename(OUT)
    log(f"national: wrote {OUT}: {written:,} polygons on a {cols} x {rows} grid "
        f"({step_x / 1000:.1f} x {step_y / 1000:.1f} km steps), "
        f"{OUT.stat().st_size / 2**30:.2f} GiB, {time.perf_counter() - started:.0f} s")  # fmt: skip
    return OUT


if __name__ == "__main__":
    main()
