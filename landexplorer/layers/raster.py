"""Rasters: GeoTIFF and Esri ASCII grids (single files, or zips of grid tiles mosaicked
into one), stored as Cloud-Optimised GeoTIFF with overviews."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from landexplorer.crs import crs_name, epsg_code, parse_crs
from landexplorer.errors import CRSError, EmptyInput, InputError, UnsupportedFormat
from landexplorer.layers.archive import inspect_zip, vsizip


def raster_members(paths: Sequence[Path]) -> list[str]:
    """GDAL paths of every raster tile in the given files and zips."""
    members: list[str] = []
    for path in paths:
        if not path.exists():
            raise InputError(f"There is no file at '{path}'.")
        if path.stat().st_size == 0:
            raise EmptyInput(f"'{path.name}' is empty (0 bytes): there is nothing in it to load.")
        if path.name.lower().endswith(".zip"):
            contents = inspect_zip(path)
            if not contents.rasters:
                raise UnsupportedFormat(f"'{path.name}' holds no GeoTIFF or ASCII grid files.")
            members.extend(vsizip(path, m) for m in sorted(contents.rasters))
        else:
            members.append(str(path))
    return members


def build_cog(
    paths: Sequence[Path], out_dir: Path, crs_text: str | None = None
) -> tuple[Path, dict[str, Any], list[str]]:
    """Read (and mosaic) the rasters, write one COG in ``out_dir``.

    Returns the COG path, the catalogue's raster description and notes for the report.
    """
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.io import MemoryFile
    from rasterio.merge import merge
    from rasterio.shutil import copy as rio_copy
    from rasterio.warp import transform_bounds

    members = raster_members(paths)
    notes: list[str] = []
    try:
        datasets = [rasterio.open(m) for m in members]
    except RasterioIOError as exc:
        raise UnsupportedFormat(
            "The raster could not be read; it may be damaged or not a GeoTIFF/ASCII grid.",
            detail=str(exc),
        ) from exc
    try:
        first = datasets[0]
        if crs_text:
            crs = parse_crs(crs_text)
        elif first.crs is None:
            raise CRSError(
                "The raster does not say which coordinate system it uses. Load it again with "
                "--crs, for example --crs EPSG:27700 for British National Grid."
            )
        else:
            from pyproj import CRS

            crs = CRS.from_wkt(first.crs.to_wkt())
        code = epsg_code(crs)
        if code is not None:
            crs = parse_crs(f"EPSG:{code}")
        for ds in datasets[1:]:
            if ds.res != first.res or ds.count != first.count:
                raise InputError(
                    "The raster tiles do not fit together: they have different cell sizes or "
                    "band counts, so they cannot be joined into one layer."
                )
        nodata = first.nodata
        if len(datasets) > 1:
            fill = (
                nodata
                if nodata is not None
                else (-9999.0 if first.dtypes[0].startswith("float") else 0)
            )
            array, transform = merge(datasets, nodata=fill)
            nodata = fill
            notes.append(f"{len(datasets)} raster tiles were joined into one mosaic.")
        else:
            array = first.read()
            transform = first.transform
        descriptions = list(first.descriptions)
        units = list(first.units) if first.units else []
    finally:
        for ds in datasets:
            ds.close()

    count, height, width = array.shape
    dtype = str(array.dtype)
    # NaN cells hold no value whatever nodata says (and NaN is not valid JSON in the catalogue)
    valid = np.ma.masked_invalid(array[0]) if array.dtype.kind == "f" else np.ma.asarray(array[0])
    if nodata is not None and not math.isnan(nodata):
        valid = np.ma.masked_equal(valid, nodata)
    stats = {
        "min": float(np.ma.min(valid)) if np.ma.count(valid) else None,
        "max": float(np.ma.max(valid)) if np.ma.count(valid) else None,
        "mean": float(np.ma.mean(valid)) if np.ma.count(valid) else None,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=".incoming-", suffix=".tif", dir=out_dir)
    import os

    os.close(handle)
    Path(tmp_name).unlink()
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": dtype,
        "crs": crs.to_wkt(),
        "transform": transform,
        "nodata": nodata,
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(array)
            for i, text in enumerate(descriptions, start=1):
                if text:
                    dst.set_band_description(i, text)
        with mem.open() as src:
            rio_copy(
                src,
                tmp_name,
                driver="COG",
                COMPRESS="DEFLATE",
                PREDICTOR="YES",
                BLOCKSIZE=256,
                OVERVIEWS="AUTO",
                RESAMPLING="AVERAGE",
            )
    left, bottom, right, top = (
        transform.c,
        transform.f + transform.e * height,
        transform.c + transform.a * width,
        transform.f,
    )
    lon0, lat0, lon1, lat1 = transform_bounds(crs.to_wkt(), "EPSG:4326", left, bottom, right, top)
    description = {
        "width": width,
        "height": height,
        "bands": count,
        "dtype": dtype,
        "nodata": "NaN" if nodata is not None and math.isnan(nodata) else nodata,
        "crs": crs_name(crs),
        "resolution": [abs(transform.a), abs(transform.e)],
        "native_bounds": [left, bottom, right, top],
        "band_descriptions": [d or "" for d in descriptions],
        "units": [u or "" for u in units],
        "stats": stats,
    }
    return Path(tmp_name), {"bbox": (lon0, lat0, lon1, lat1), **description}, notes
