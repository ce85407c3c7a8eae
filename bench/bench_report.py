#!/usr/bin/env python
"""Area report: what every demo layer holds inside a 1 km² square, against the I/O floor
of reading those layers' features in the square's bbox with pyogrio (plus the raster
window with rasterio), same run.

The catalogue is the Trafford demo (13 layers: flood, land grade, allotments, 15,638
trees, greenspace, woodland, watercourses, designations, wards, borough, the DEM), loaded
from the real data. Ten fixed 1 km² squares spread over the borough; in-process, warm,
interleaved repetitions; per-square medians. The floor reads every column of every
vector layer (GDAL, R-tree bbox filter) and the DEM window; landexplorer reads, clips,
measures by class and summarises the raster.

Run: BENCH_ONLY=report bash bench/run.sh
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from analysis_common import QUICK, REAL, WORK, Noise, log, ratio, row, write

REPS = 3 if QUICK else 15
CAT = WORK / "landexplorer_report"
LE = "landexplorer area_report (every layer: counts, areas/shares by class, lengths, DEM stats)"
FLOOR = "pyogrio.read_arrow(bbox) of every vector layer + rasterio DEM window (I/O floor)"


def squares() -> list[dict]:
    """Ten 1 km x 1 km squares (BNG) on a grid across Trafford, as GeoJSON in lon/lat."""
    import shapely
    from pyproj import Transformer

    to_ll = Transformer.from_crs(27700, 4326, always_xy=True)
    out = []
    for e in np.linspace(371_000, 381_000, 5):
        for n in (388_500.0, 393_500.0):
            sq = shapely.box(e, n, e + 1000, n + 1000)
            ll = shapely.transform(sq, lambda xy: np.column_stack(to_ll.transform(xy[:, 0],
                                                                                   xy[:, 1])))
            out.append(shapely.geometry.mapping(ll))
    return out


def main() -> None:
    import pyogrio
    import rasterio
    import shapely
    from rasterio.windows import from_bounds

    from landexplorer.analysis import area_report
    from landexplorer.catalog import open_store
    from landexplorer.layers.demo import load_demo
    from landexplorer.settings import Settings

    settings = Settings(data_dir=CAT, demo_mirror=REAL)
    store = open_store(settings)
    load_demo(store, settings)
    areas = squares()
    entries = [e for e in store.list_layers() if e.is_public]
    vectors = [(e.id, store.table_name(e.id)) for e in entries if e.data_type == "vector"]
    rasters = [store.raster_path(e) for e in entries if e.data_type == "raster"]
    gpkg = str(store.path)
    from pyproj import Transformer

    to_raster = []  # built once: the floor should not pay for PROJ set-up on every read
    for path in rasters:
        with rasterio.open(path) as src:
            to_raster.append(Transformer.from_crs(4326, src.crs.to_wkt(), always_xy=True))

    def floor(area: dict) -> int:
        geom = shapely.geometry.shape(area)
        bbox = shapely.bounds(geom)
        n = 0
        for _, table in vectors:
            _, tbl = pyogrio.read_arrow(gpkg, layer=table, bbox=tuple(bbox))
            n += tbl.num_rows
        for path, t in zip(rasters, to_raster, strict=True):
            with rasterio.open(path) as src:
                x0, y0, x1, y1 = t.transform_bounds(*bbox)
                src.read(1, window=from_bounds(x0, y0, x1, y1, src.transform), masked=True)
        return n

    def report(area: dict) -> int:
        rep = area_report(store, area)
        return sum(layer.count for layer in rep.layers)

    noise = Noise()
    for area in areas[:2]:  # warm both paths
        floor(area)
        report(area)
    times: dict[str, list[float]] = {LE: [], FLOOR: []}
    per_square: dict[str, list[list[float]]] = {LE: [[] for _ in areas], FLOOR: [[] for _ in areas]}
    features = []
    for r in range(REPS):
        order = [(LE, report), (FLOOR, floor)] if r % 2 == 0 else [(FLOOR, floor), (LE, report)]
        for i, area in enumerate(areas):
            for name, fn in order:
                t = time.perf_counter()
                got = fn(area)
                dt = time.perf_counter() - t
                per_square[name][i].append(dt)
                if name == FLOOR and r == 0:
                    features.append(got)
    for name in times:
        times[name] = [statistics.median(xs) for xs in per_square[name]]
    med = {k: statistics.median(v) for k, v in times.items()}
    per_ratio = [statistics.median(a) / statistics.median(b)
                 for a, b in zip(per_square[LE], per_square[FLOOR], strict=True)]
    log(f"report {med[LE] * 1e3:.1f} ms, floor {med[FLOOR] * 1e3:.1f} ms")
    rows = [
        row(LE, times[LE], rate=f"{1 / med[LE]:,.1f} reports/s",
            notes=f"{len(areas)} squares of 1 km2, {len(entries)} layers; median over squares "
                  f"of per-square medians ({REPS} reps)"),
        row(FLOOR, times[FLOOR], rate=f"{1 / med[FLOOR]:,.1f} reads/s",
            notes=f"{min(features)}-{max(features)} features read per square (all columns)"),
    ]
    ratios = [
        ratio("landexplorer report / I/O floor (median over squares)", med[LE] / med[FLOOR],
              "<= 2.0"),
        ratio("worst square: landexplorer report / I/O floor", max(per_ratio), "<= 2.0"),
    ]
    write(
        "report",
        "Area report: a 1 km2 square against every demo layer",
        "BENCH_ONLY=report bash bench/run.sh",
        rows,
        ratios,
        f"In-process, warm; {REPS} interleaved repetitions over {len(areas)} squares. "
        "Shared machine: see the noise probe.",
        noise=noise.finish(),
    )


if __name__ == "__main__":
    main()
