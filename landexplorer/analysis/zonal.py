"""Raster statistics under polygons (zonal statistics) and raster values at points.

Two ways to decide which cells belong to a polygon:

* ``coverage`` (the default): every cell the polygon touches counts, weighted by the
  fraction of the cell it covers (the exactextract definition). Polygons smaller than a
  cell still get a value; the count is the covered area in cells.
* ``centre``: cells whose centre falls inside the polygon, each with weight 1 (the
  rasterstats / rasterio.mask definition). Small polygons may get no value.

Coverage fractions are exact: small polygons are intersected with each cell of their
bounding box in one vectorised GEOS call; large polygons are rasterised, and only the
cells along their boundary are intersected, after cutting the polygon into blocks so
that no intersection walks the whole outline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from landexplorer import budget
from landexplorer.analysis import metric
from landexplorer.analysis.coverage import coverage_fractions
from landexplorer.analysis.limits import Limits, limits_or_none, too_many_cells
from landexplorer.analysis.results import Zonal
from landexplorer.analysis.sources import LayerLike, Source, geometry_kind, load
from landexplorer.analysis.stats import is_percentile as _is_percentile
from landexplorer.analysis.stats import statistics as _statistics
from landexplorer.catalog.base import BBox, Store
from landexplorer.crs import crs_name
from landexplorer.errors import InputError

STATS = (
    "count",
    "cells",
    "sum",
    "mean",
    "min",
    "max",
    "std",
    "median",
    "majority",
    "minority",
    "unique",
    "pNN (e.g. p10, p90)",
)
DEFAULT_STATS = ("count", "mean", "min", "max")
_SMALL_CELLS = 256  # polygons whose bbox spans at most this many cells go the vectorised way
_EDGE_CELLS = 50_000_000  # cells in a bbox above which a polygon is rasterised instead
_ZONES_PER_PASS = 5_000
_BLOCK = 16  # cells per side of the blocks large polygons are cut into
_GROUP_CELLS = 2048  # polygons are handled in groups whose bboxes start in one such tile


@dataclass
class RasterInfo:
    path: Path
    source: Source
    crs: CRS


def raster_of(raster: str | Path, store: Store | None) -> RasterInfo:
    """The file and provenance of a raster layer id, or of a raster file path."""
    if isinstance(raster, str) and store is not None and store.exists(raster):
        entry = store.get(raster)
        if entry.data_type != "raster":
            raise InputError(f"'{raster}' is a layer of features, not a raster.")
        path = store.raster_path(entry)
        source = Source(entry.id, entry.title, entry.licence, entry.attribution)
    else:
        path = Path(raster)
        if not path.exists():
            raise InputError(f"There is no raster layer or file called '{raster}'.")
        source = Source(path.stem, path.name)
    stat = path.stat()
    crs = _raster_crs(str(path), stat.st_mtime_ns, stat.st_size)
    if crs is None:
        raise InputError(f"The raster '{source.id}' has no coordinate system.")
    return RasterInfo(path, source, crs)


@lru_cache(maxsize=64)
def _raster_crs(path: str, mtime_ns: int, size: int) -> CRS | None:
    """A raster file's CRS (remembered per file version: catalogue rasters never change
    in place, a new version is a new file)."""
    import rasterio

    with rasterio.open(path) as src:
        return None if src.crs is None else CRS.from_wkt(src.crs.to_wkt())


def zonal_stats(
    layer: LayerLike,
    raster: str | Path,
    *,
    store: Store | None = None,
    stats: Sequence[str] = DEFAULT_STATS,
    method: str = "coverage",
    by: str | None = None,
    bbox: BBox | None = None,
    band: int = 1,
    limits: Limits | None = None,
) -> Zonal:
    """Statistics of ``raster`` (a raster layer id or a file) under each polygon of ``layer``.

    ``stats``: any of count, cells, sum, mean, min, max, std, median, majority, minority,
    unique and percentiles as ``p10``, ``p90`` ... ``method``: ``coverage`` (default,
    coverage-weighted) or ``centre``. ``by`` dissolves the polygons by a column first and
    gives one row per class. Nodata cells are left out; a polygon with no valid cell gets
    count 0 and empty statistics. ``limits`` (None: none) bounds the raster cells the
    polygons' bounding boxes cover, worked out from their bounds before any cell is read.

    >>> zonal_stats("allotments", "elevation", store=store).stats[["fid", "mean"]]
    """
    stats = [s.strip().lower() for s in stats if s.strip()]
    for s in stats:
        if s not in STATS[:-1] and not _is_percentile(s):
            raise InputError(f"'{s}' is not a statistic landexplorer knows: {', '.join(STATS)}.")
    if method not in ("coverage", "centre", "center"):
        raise InputError("The method must be 'coverage' (weighted) or 'centre'.")
    method = "centre" if method == "center" else method
    info = raster_of(raster, store)
    feats = load(layer, store, bbox=bbox, columns=[by] if by else None)
    kind = geometry_kind(feats.geoms)
    if kind not in ("polygon", "empty"):
        raise InputError(
            "Zonal statistics need polygons; for points use sample_points (values at points)."
        )
    zones = metric.project_features(feats, info.crs)
    if by:
        labels = feats.attrs[by].astype("object").where(feats.attrs[by].notna(), "(none)")
        frame = pd.DataFrame({"z": zones, "label": labels.to_numpy()})
        grouped = frame.groupby("label", sort=True)["z"]
        keys = list(grouped.groups)
        zones = np.asarray(
            [shapely.union_all(grouped.get_group(k).to_numpy()) for k in keys], dtype=object
        )
        out = pd.DataFrame({by: keys})
    else:
        out = feats.attrs.reset_index()
    layer_name = layer if isinstance(layer, str) else "LAYER"
    values = compute(
        zones, info.path, stats, method, band, max_cells=limits_or_none(limits).zonal_cells,
        doing=f"Zonal statistics of '{info.source.id}' under '{layer_name}'",
        cli=f"landexplorer zonal {layer_name} {info.source.id} --stats {','.join(stats)}",
    )  # fmt: skip
    for name, column in values.items():
        out[name] = column
    return Zonal(
        stats=out,
        method=method,
        raster=info.source.id,
        crs=crs_name(info.crs),
        sources=[feats.source, info.source],
        notes=list(feats.notes),
    )


def compute(
    zones: np.ndarray,
    path: Path,
    stats: Sequence[str],
    method: str = "coverage",
    band: int = 1,
    *,
    max_cells: int | None = None,
    doing: str = "These zonal statistics",
    cli: str = "landexplorer zonal ...",
) -> dict[str, np.ndarray]:
    """Statistics per zone (shapely polygons in the raster's CRS), one array per stat.

    With ``max_cells``, the cells of the zones' bounding boxes (and of the windows read
    for them) are counted from the bounds first; more than that is ``WorkTooLarge``
    (``doing`` and ``cli`` name the work in the message)."""
    import rasterio
    from rasterio.windows import Window

    n = len(zones)
    zone_ids: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    with rasterio.open(path) as src:
        t = src.transform
        if t.b != 0 or t.d != 0 or t.e >= 0:
            raise InputError("Rasters that are rotated or flipped are not supported here.")
        dx, dy = t.a, -t.e
        nodata = src.nodatavals[band - 1]
        bounds = shapely.bounds(zones) if n else np.zeros((0, 4))
        ok = ~np.isnan(bounds[:, 0]) if n else np.zeros(0, bool)
        c0 = np.floor((bounds[:, 0] - t.c) / dx)
        c1 = np.ceil((bounds[:, 2] - t.c) / dx)
        r0 = np.floor((t.f - bounds[:, 3]) / dy)
        r1 = np.ceil((t.f - bounds[:, 1]) / dy)
        c0 = np.clip(np.nan_to_num(c0), 0, src.width).astype(np.int64)
        c1 = np.clip(np.nan_to_num(c1), 0, src.width).astype(np.int64)
        r0 = np.clip(np.nan_to_num(r0), 0, src.height).astype(np.int64)
        r1 = np.clip(np.nan_to_num(r1), 0, src.height).astype(np.int64)
        ok &= (c1 > c0) & (r1 > r0)
        todo = np.flatnonzero(ok)
        tile = (r0[todo] // _GROUP_CELLS) * (src.width // _GROUP_CELLS + 1) + c0[todo] // (
            _GROUP_CELLS
        )
        if max_cells is not None:
            cells = _cells_to_read(todo, tile, c0, c1, r0, r1)
            if cells > max_cells:
                raise too_many_cells(cells, max_cells, doing, cli)
        for group in np.unique(tile):
            budget.check()  # between windows: a request past its time budget stops here
            members = todo[tile == group]
            wc0, wc1 = int(c0[members].min()), int(c1[members].max())
            wr0, wr1 = int(r0[members].min()), int(r1[members].max())
            window = Window(wc0, wr0, wc1 - wc0, wr1 - wr0)
            data = src.read(band, window=window, masked=True).astype(np.float64)
            valid = ~np.ma.getmaskarray(data)
            arr = np.ma.getdata(data)
            if nodata is not None and not np.isnan(nodata):
                valid &= arr != nodata
            valid &= ~np.isnan(arr)
            origin = (t.c + wc0 * dx, t.f - wr0 * dy)
            # a few thousand zones at a time keeps the per-cell arrays small
            for part in np.array_split(members, -(-len(members) // _ZONES_PER_PASS)):
                budget.check()
                z, r, c, w = _cells(
                    zones[part],
                    c0[part] - wc0,
                    c1[part] - wc0,
                    r0[part] - wr0,
                    r1[part] - wr0,
                    origin,
                    dx,
                    dy,
                    method,
                )
                keep = valid[r, c] & (w > 0)
                zone_ids.append(part[z[keep]])
                vals.append(arr[r[keep], c[keep]])
                weights.append(w[keep])
    zi = np.concatenate(zone_ids) if zone_ids else np.zeros(0, np.int64)
    v = np.concatenate(vals) if vals else np.zeros(0)
    w = np.concatenate(weights) if weights else np.zeros(0)
    return _statistics(n, zi, v, w, stats)


def _cells_to_read(
    todo: np.ndarray,
    tile: np.ndarray,
    c0: np.ndarray,
    c1: np.ndarray,
    r0: np.ndarray,
    r1: np.ndarray,
) -> int:
    """Cells the zones ``todo`` make ``compute`` handle: those of every zone's bounding box
    (each weighed or rasterised) or of the windows read for the groups of zones, whichever
    is more, from bounds arithmetic alone."""
    if not len(todo):
        return 0
    zone_cells = int(((c1[todo] - c0[todo]) * (r1[todo] - r0[todo])).sum())
    frame = pd.DataFrame(
        {"t": tile, "c0": c0[todo], "c1": c1[todo], "r0": r0[todo], "r1": r1[todo]}
    )
    w = frame.groupby("t").agg(
        c0=("c0", "min"), c1=("c1", "max"), r0=("r0", "min"), r1=("r1", "max")
    )
    window_cells = int(((w["c1"] - w["c0"]) * (w["r1"] - w["r0"])).sum())
    return max(zone_cells, window_cells)


def _cells(
    zones: np.ndarray,
    c0: np.ndarray,
    c1: np.ndarray,
    r0: np.ndarray,
    r1: np.ndarray,
    origin: tuple[float, float],
    dx: float,
    dy: float,
    method: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(zone index, row, col, weight) for every cell each zone touches (window coords)."""
    ncols = c1 - c0
    ncells = ncols * (r1 - r0)
    # the edge method holds one number per cell of the bbox: fine unless it is huge
    easy = ncells <= (_SMALL_CELLS if method == "centre" else _EDGE_CELLS)
    small = np.flatnonzero(easy)
    parts = [_small_cells(zones, small, c0, r0, ncols, ncells, origin, dx, dy, method)]
    for i in np.flatnonzero(~easy):
        parts.append(
            _large_cells(
                zones[i],
                int(i),
                int(c0[i]),
                int(c1[i]),
                int(r0[i]),
                int(r1[i]),
                origin,
                dx,
                dy,
                method,
            )
        )
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(4))  # type: ignore[return-value]


def _small_cells(
    zones: np.ndarray,
    idx: np.ndarray,
    c0: np.ndarray,
    r0: np.ndarray,
    ncols: np.ndarray,
    ncells: np.ndarray,
    origin: tuple[float, float],
    dx: float,
    dy: float,
    method: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    counts = ncells[idx]
    z = np.repeat(idx, counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    k = np.arange(len(z)) - starts
    cols = c0[z] + k % ncols[z]
    rows = r0[z] + k // ncols[z]
    if method == "centre":
        return z, rows, cols, _weights(zones[z], rows, cols, origin, dx, dy, method)
    weights = coverage_fractions(
        zones[idx], c0[idx], r0[idx], ncols[idx], counts // ncols[idx], origin, dx, dy
    )
    return z, rows, cols, weights


def _weights(
    geoms: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    origin: tuple[float, float],
    dx: float,
    dy: float,
    method: str,
) -> np.ndarray:
    x0 = origin[0] + cols * dx
    y1 = origin[1] - rows * dy
    if method == "centre":
        return shapely.contains_xy(geoms, x0 + dx / 2, y1 - dy / 2).astype(np.float64)
    boxes = shapely.box(x0, y1 - dy, x0 + dx, y1)
    # Most (polygon, cell) pairs are settled by cheap prepared predicates: the polygon is
    # wholly in the cell, the cell wholly in the polygon, or they do not meet. Only the
    # rest need a GEOS intersection.
    shapely.prepare(geoms)
    weights = np.zeros(len(geoms))
    meets = shapely.intersects(geoms, boxes)
    idx = np.flatnonzero(meets)
    within = shapely.covered_by(geoms[idx], boxes[idx])
    weights[idx[within]] = shapely.area(geoms[idx[within]])
    idx = idx[~within]
    full = shapely.covers(geoms[idx], boxes[idx])
    weights[idx[full]] = dx * dy
    idx = idx[~full]
    weights[idx] = shapely.area(shapely.intersection(geoms[idx], boxes[idx]))
    return weights / (dx * dy)


def _large_cells(
    zone: shapely.Geometry,
    i: int,
    c0: int,
    c1: int,
    r0: int,
    r1: int,
    origin: tuple[float, float],
    dx: float,
    dy: float,
    method: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from affine import Affine
    from rasterio.features import rasterize

    shape = (r1 - r0, c1 - c0)
    transform = Affine(dx, 0, origin[0] + c0 * dx, 0, -dy, origin[1] - r0 * dy)
    inside = rasterize(
        [(zone, 1)], out_shape=shape, transform=transform, fill=0, all_touched=False, dtype="uint8"
    ).astype(bool)
    if method == "centre":
        rows, cols = np.nonzero(inside)
        w = np.ones(len(rows))
        return np.full(len(rows), i), rows + r0, cols + c0, w
    edge = rasterize(
        [(shapely.boundary(zone), 1)],
        out_shape=shape,
        transform=transform,
        fill=0,
        all_touched=True,
        dtype="uint8",
    ).astype(bool)
    # one cell of margin: a boundary running just along a cell edge may be missed by GDAL
    grown = edge.copy()
    grown[1:, :] |= edge[:-1, :]
    grown[:-1, :] |= edge[1:, :]
    grown[:, 1:] |= edge[:, :-1]
    grown[:, :-1] |= edge[:, 1:]
    full_r, full_c = np.nonzero(inside & ~grown)
    edge_r, edge_c = np.nonzero(grown)
    # Cut the polygon into blocks so each boundary cell is clipped from a small piece.
    br, bc = edge_r // _BLOCK, edge_c // _BLOCK
    block_key = br * (shape[1] // _BLOCK + 1) + bc
    keys, inverse = np.unique(block_key, return_inverse=True)
    kr, kc = keys // (shape[1] // _BLOCK + 1), keys % (shape[1] // _BLOCK + 1)
    bx0 = origin[0] + (c0 + kc * _BLOCK) * dx
    by1 = origin[1] - (r0 + kr * _BLOCK) * dy
    blocks = shapely.box(bx0, by1 - _BLOCK * dy, bx0 + _BLOCK * dx, by1)
    pieces = shapely.intersection(zone, blocks)
    w_edge = _weights(pieces[inverse], edge_r + r0, edge_c + c0, origin, dx, dy, "coverage")
    rows = np.concatenate([full_r, edge_r]) + r0
    cols = np.concatenate([full_c, edge_c]) + c0
    w = np.concatenate([np.ones(len(full_r)), w_edge])
    return np.full(len(rows), i), rows, cols, w


def sample_points(
    layer: LayerLike,
    raster: str | Path,
    *,
    store: Store | None = None,
    bbox: BBox | None = None,
    band: int = 1,
) -> Zonal:
    """The raster's value at each point of ``layer`` (NaN outside it or on nodata)."""
    import rasterio

    info = raster_of(raster, store)
    feats = load(layer, store, bbox=bbox)
    if geometry_kind(feats.geoms) not in ("point", "empty"):
        raise InputError("Sampling needs points; for polygons use zonal statistics.")
    pts = metric.project_features(feats, info.crs)
    x, y = shapely.get_x(pts), shapely.get_y(pts)
    values = np.full(len(pts), np.nan)
    with rasterio.open(info.path) as src:
        rows, cols = rasterio.transform.rowcol(src.transform, x, y, op=np.floor)
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        inside = (rows >= 0) & (rows < src.height) & (cols >= 0) & (cols < src.width)
        if inside.any():
            data = src.read(band, masked=True)
            got = data[rows[inside], cols[inside]]
            vals = np.ma.filled(got.astype(np.float64), np.nan)
            nodata = src.nodatavals[band - 1]
            if nodata is not None:
                vals[vals == nodata] = np.nan
            values[inside] = vals
    out = feats.attrs.reset_index()
    out["value"] = values
    return Zonal(
        stats=out,
        method="point",
        raster=info.source.id,
        crs=crs_name(info.crs),
        sources=[feats.source, info.source],
        notes=list(feats.notes),
    )
