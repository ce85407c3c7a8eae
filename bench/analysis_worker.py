#!/usr/bin/env python
"""One fresh-process run of an analysis workload, timed inside; prints one JSON line.

  analysis_worker.py join CATALOG                 count 1M points in 100k polygons (landexplorer)
  analysis_worker.py overlay-le CATALOG LEFT RIGHT BY LEFT_BY
  analysis_worker.py overlay-gpd LEFT.gpkg RIGHT.gpkg BY LEFT_BY   (geopandas.overlay peer)
  analysis_worker.py zonal CATALOG LAYER DEM OUT.npy     (landexplorer, coverage mean)
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def join(catalogue: str) -> dict:
    from landexplorer.analysis.counts import count_points_arrays
    from landexplorer.analysis.sources import load
    from landexplorer.catalog import open_store
    from landexplorer.settings import Settings

    store = open_store(Settings(data_dir=catalogue))
    t = time.perf_counter()
    polys = load("polys", store, columns=[])
    points = load("points", store, bbox=polys.bounds, columns=[])
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    counts = count_points_arrays(polys.geoms, points.geoms)
    join_s = time.perf_counter() - t
    return {"load_s": load_s, "join_s": join_s, "pairs": int(counts.sum()),
            "polys_hit": int((counts > 0).sum()), "n_points": len(points), "n_polys": len(polys)}


def overlay_le(catalogue: str, left: str, right: str, by: str, left_by: str) -> dict:
    from landexplorer.analysis import overlay_areas
    from landexplorer.catalog import open_store
    from landexplorer.settings import Settings

    store = open_store(Settings(data_dir=catalogue))
    t = time.perf_counter()
    result = overlay_areas(left, right, store=store, by=by, left_by=left_by)
    total_s = time.perf_counter() - t
    areas = {f"{k[0]}|{k[1]}": v for k, v in
             result.totals.set_index([left_by, "class"])["area_m2"].items()}
    return {"total_s": total_s, "areas": areas, "crs": result.crs}


def overlay_le_frames(left: str, right: str, by: str, left_by: str, dissolve: str = "1") -> dict:
    """landexplorer on the same inputs as the geopandas peer: frames in EPSG:27700."""
    import geopandas as gpd

    from landexplorer.analysis import overlay_areas

    t = time.perf_counter()
    f = gpd.read_file(left, columns=[left_by])
    a = gpd.read_file(right, columns=[by])
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    result = overlay_areas(f, a, by=by, left_by=left_by, dissolve=dissolve == "1")
    total_s = time.perf_counter() - t
    areas = {f"{k[0]}|{k[1]}": v for k, v in
             result.totals.set_index([left_by, "class"])["area_m2"].items()}
    return {"load_s": load_s, "total_s": total_s, "areas": areas, "crs": result.crs}


def overlay_gpd(left: str, right: str, by: str, left_by: str) -> dict:
    import geopandas as gpd

    t = time.perf_counter()
    f = gpd.read_file(left, columns=[left_by])
    a = gpd.read_file(right, columns=[by])
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    o = gpd.overlay(f, a, how="intersection", keep_geom_type=True)
    areas = o.assign(area=o.area).groupby([left_by, by])["area"].sum()
    total_s = time.perf_counter() - t
    return {"load_s": load_s, "total_s": total_s,
            "areas": {f"{k[0]}|{k[1]}": v for k, v in areas.items()}}


def zonal(catalogue: str, layer: str, dem: str, out: str) -> dict:
    from landexplorer.analysis import zonal_stats
    from landexplorer.catalog import open_store
    from landexplorer.settings import Settings

    store = open_store(Settings(data_dir=catalogue))
    t = time.perf_counter()
    result = zonal_stats(layer, dem, store=store, stats=["mean"])
    total_s = time.perf_counter() - t
    means = result.stats["mean"].to_numpy(dtype=float)
    np.save(out, means)
    return {"total_s": total_s, "n": len(means), "nan": int(np.isnan(means).sum())}


def zonal_compute(polys_gpkg: str, layer: str, dem: str, out: str) -> dict:
    """The same inputs as the peers' zonal_py.py (BNG GeoPackage), load timed apart."""
    import pyogrio
    import shapely

    from landexplorer.analysis.zonal import compute

    t = time.perf_counter()
    _, tbl = pyogrio.read_arrow(polys_gpkg, layer=layer, columns=[])
    geoms = shapely.from_wkb(tbl.column(tbl.schema.names[-1]).to_numpy(zero_copy_only=False))
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    means = compute(np.asarray(geoms, dtype=object), dem, ["mean"])["mean"]
    compute_s = time.perf_counter() - t
    np.save(out, means)
    return {"load_s": load_s, "compute_s": compute_s, "n": len(means),
            "nan": int(np.isnan(means).sum())}


def main() -> None:
    mode, *args = sys.argv[1:]
    fn = {"join": join, "overlay-le": overlay_le, "overlay-gpd": overlay_gpd,
          "overlay-le-frames": overlay_le_frames, "zonal": zonal,
          "zonal-compute": zonal_compute}[mode]
    print(json.dumps({"mode": mode, **fn(*args)}, default=float))


if __name__ == "__main__":
    main()
