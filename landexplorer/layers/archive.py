"""Zip files: refuse unsafe or broken archives, and find the dataset inside a safe one."""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from landexplorer.errors import EmptyInput, InputError, UnsafeArchive

VECTOR_SUFFIXES = (".shp", ".gpkg", ".geojson", ".json", ".kml", ".csv", ".fgb", ".parquet")
RASTER_SUFFIXES = (".tif", ".tiff", ".asc")
#: A zip may expand to at most this much (guards against zip bombs).
MAX_UNPACKED_BYTES = 8 * 1024**3


@dataclass
class ZipContents:
    path: Path
    vectors: list[str]
    rasters: list[str]
    #: Every file in the zip (a shapefile's .shx, .dbf and .prj too).
    members: list[str] = field(default_factory=list)


def inspect_zip(path: Path) -> ZipContents:
    """List the datasets in a zip, refusing archives that are broken or unsafe to unpack."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            bad = archive.testzip()
    except zipfile.BadZipFile as exc:
        raise InputError(
            f"'{path.name}' is not a readable zip file: it may be damaged or only partly "
            "downloaded. Please make the zip again and retry.",
            detail=str(exc),
        ) from exc
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise InputError(
            f"'{path.name}' could not be read as a zip file; it may be damaged.", detail=str(exc)
        ) from exc
    if bad is not None:
        raise InputError(
            f"'{path.name}' is damaged: the file '{bad}' inside it does not unpack correctly. "
            "Please make the zip again and retry."
        )
    total = 0
    names: list[str] = []
    for info in infos:
        name = info.filename
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or (len(name) > 1 and name[1] == ":"):
            raise UnsafeArchive(
                f"'{path.name}' contains a file with an unsafe path ('{name}') that would be "
                "unpacked outside its folder. landexplorer does not open such archives."
            )
        total += info.file_size
        if not info.is_dir() and not pure.name.startswith((".", "__MACOSX")):
            names.append(name)
    if total > MAX_UNPACKED_BYTES:
        raise UnsafeArchive(
            f"'{path.name}' would unpack to {total / 1024**3:.1f} GB, more than landexplorer "
            "accepts from one zip."
        )
    if not names:
        raise EmptyInput(f"'{path.name}' is an empty zip file: there is nothing in it to load.")
    lowered = [(n, n.lower()) for n in names if "__macosx" not in n.lower()]
    vectors = [n for n, low in lowered if low.endswith(VECTOR_SUFFIXES)]
    rasters = [n for n, low in lowered if low.endswith(RASTER_SUFFIXES)]
    # A shapefile is the .shp; its .dbf/.prj/.cpg siblings are read by GDAL with it.
    if any(v.lower().endswith(".shp") for v in vectors):
        vectors = [v for v in vectors if v.lower().endswith(".shp")] + [
            v for v in vectors if not v.lower().endswith((".shp", ".csv", ".json"))
        ]
    return ZipContents(path=path, vectors=vectors, rasters=rasters, members=names)


def vsizip(path: Path, member: str) -> str:
    """GDAL's path for a file inside a zip."""
    return f"/vsizip/{path.resolve()}/{member}"
