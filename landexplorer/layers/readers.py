"""Readers for every vector format people bring, each streaming the data in batches.

A reader produces a :class:`VectorSource`: what the file declares (CRS, geometry type,
a feature-count hint) and a generator of :class:`RawBatch` - attribute columns plus
either WKB geometries or x/y coordinate arrays, still in the source CRS. Repair,
reprojection and checks happen in :mod:`landexplorer.layers.normalize`.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyproj import CRS

from landexplorer.crs import parse_crs
from landexplorer.errors import CRSError, EmptyInput, InputError, UnsupportedFormat
from landexplorer.layers.archive import RASTER_SUFFIXES, inspect_zip, vsizip


@dataclass
class ReadOptions:
    """What the user told us about the file (all optional)."""

    crs: str | None = None
    x: str | None = None
    y: str | None = None
    wkt: str | None = None
    layer: str | None = None
    batch_size: int = 65_536
    string_columns: set[str] = field(default_factory=set)
    #: Text encoding of a CSV file (None: UTF-8 unless its start says otherwise).
    encoding: str | None = None


@dataclass
class RawBatch:
    attributes: pa.RecordBatch
    wkb: pa.Array | None = None
    x: np.ndarray | None = None
    y: np.ndarray | None = None


@dataclass
class VectorSource:
    name: str
    format: str
    crs: CRS | None
    geometry_type: str
    batches: Callable[[], Iterator[RawBatch]]
    count_hint: int | None = None
    assumed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    layer: str | None = None


class SchemaDrift(Exception):
    """A CSV column changed type after the first block; read it again as text."""

    def __init__(self, column: str) -> None:
        super().__init__(column)
        self.column = column


class NotUtf8(Exception):
    """A CSV file read as ``tried`` turned out not to be in it; read it again as ``next``."""

    def __init__(self, tried: str, next: str) -> None:
        super().__init__(tried)
        self.tried = tried
        self.next = next


#: What people call the encodings a CSV file is read in, for messages.
ENCODING_NAMES = {
    "cp1252": "Windows-1252 (Western European, often called Latin-1)",
    "latin-1": "ISO-8859-1 (Latin-1)",
}


_LON = ("lon", "long", "lng", "longitude", "x_lon", "wgs84_lon", "decimallongitude")
_LAT = ("lat", "latitude", "y_lat", "wgs84_lat", "decimallatitude")
_EAST = ("easting", "eastings", "east", "x_coord", "xcoord", "bng_x", "os_x")
_NORTH = ("northing", "northings", "north", "y_coord", "ycoord", "bng_y", "os_y")
_X = ("x",)
_Y = ("y",)
_WKT = ("wkt", "geometry", "geom", "the_geom", "wkt_geom", "shape", "geometry_wkt")
_NULLS = ["", "NA", "N/A", "n/a", "NULL", "null", "None", "NaN", "nan", "-"]


def is_raster_path(path: Path) -> bool:
    """Does this file hold a raster (GeoTIFF, ASCII grid, or a zip of them)?"""
    low = path.name.lower()
    if low.endswith(RASTER_SUFFIXES):
        return True
    if low.endswith(".zip"):
        contents = inspect_zip(path)
        return bool(contents.rasters) and not contents.vectors
    return False


def open_vector(path: Path, options: ReadOptions) -> list[VectorSource]:
    """Open a vector file (or zip) and return one source per layer to ingest."""
    if not path.exists():
        raise InputError(f"There is no file at '{path}'.")
    if path.is_dir():
        raise InputError(f"'{path}' is a folder; give the path of one file.")
    if path.stat().st_size == 0:
        raise EmptyInput(f"'{path.name}' is empty (0 bytes): there is nothing in it to load.")
    low = path.name.lower()
    if low.endswith(".zip"):
        contents = inspect_zip(path)
        if not contents.vectors:
            raise UnsupportedFormat(
                f"'{path.name}' holds no map data landexplorer can read (looked for .shp, "
                ".gpkg, .geojson, .kml, .csv, .fgb and .parquet files)."
            )
        member = contents.vectors[0]
        if member.lower().endswith(".csv"):
            raise UnsupportedFormat("Please unzip the CSV file and load it directly.")
        if member.lower().endswith(".shp"):
            _check_shapefile_parts(path.name, member, contents.members)
        sources = _open_ogr(vsizip(path, member), Path(member).name, options)
        if len(contents.vectors) > 1:
            for s in sources:
                s.notes.append(
                    f"The zip holds {len(contents.vectors)} datasets; '{member}' was loaded."
                )
        return sources
    if low.endswith((".csv", ".tsv", ".txt")):
        return [_open_csv(path, options)]
    if low.endswith(".shp"):
        _check_shapefile_parts(path.name, path.name, [p.name for p in path.parent.iterdir()])
    if low.endswith((".parquet", ".geoparquet")):
        return [_open_parquet(path, options)]
    if low.endswith((".geojson", ".json", ".kml", ".gpkg", ".fgb", ".shp", ".gml", ".geojsonl")):
        return _open_ogr(str(path), path.name, options)
    _sniff_not_geodata(path)
    return _open_ogr(str(path), path.name, options)


def _check_shapefile_parts(where: str, shp: str, names: list[str]) -> None:
    """Refuse a shapefile whose .shx or .dbf is missing, saying what a shapefile needs."""
    stem = shp[: -len(".shp")].lower()
    present = {n.lower() for n in names}
    missing = [ext for ext in (".shx", ".dbf") if stem + ext not in present]
    if missing:
        base = Path(shp).name[: -len(".shp")]
        raise InputError(
            f"'{where}' holds the shapefile '{Path(shp).name}' without "
            + " and ".join(f"'{base}{ext}'" for ext in missing)
            + ". A shapefile is several files that belong together: at least .shp, .shx and "
            ".dbf with the same name (and .prj, which says its coordinate system). Put them "
            "all in one zip and load that."
        )


def _sniff_not_geodata(path: Path) -> None:
    head = path.open("rb").read(512)
    if head.startswith((b"%PDF", b"\x89PNG", b"\xff\xd8", b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise UnsupportedFormat(
            f"'{path.name}' is not map data (it looks like a document or picture). "
            "landexplorer reads CSV, GeoJSON, KML, GeoPackage, zipped shapefiles, FlatGeobuf "
            "and GeoParquet."
        )


# ----- OGR-backed formats ----------------------------------------------------------------------
def _open_ogr(uri: str, name: str, options: ReadOptions) -> list[VectorSource]:
    import pyogrio
    from pyogrio.errors import DataSourceError

    try:
        layers = pyogrio.list_layers(uri)
    except DataSourceError as exc:
        raise UnsupportedFormat(
            f"'{name}' could not be read as map data. landexplorer reads CSV, GeoJSON, KML, "
            "GeoPackage, zipped shapefiles, FlatGeobuf and GeoParquet; check that the file "
            "is complete and in one of these formats.",
            detail=str(exc),
        ) from exc
    spatial = [str(row[0]) for row in layers if row[1] is not None]
    if options.layer:
        if options.layer not in [str(r[0]) for r in layers]:
            raise InputError(
                f"'{name}' has no layer called '{options.layer}'. "
                f"Its layers are: {', '.join(str(r[0]) for r in layers)}."
            )
        chosen = [options.layer]
    else:
        chosen = spatial
    if not chosen:
        raise EmptyInput(f"'{name}' holds no layers with geometry.")
    return [_ogr_layer(uri, name, layer, options, len(chosen) > 1) for layer in chosen]


def _ogr_layer(uri: str, name: str, layer: str, options: ReadOptions, many: bool) -> VectorSource:
    import pyogrio

    try:
        info = pyogrio.read_info(uri, layer=layer)
    except Exception as exc:
        raise UnsupportedFormat(
            f"'{name}' could not be read as map data; it may be damaged or incomplete.",
            detail=str(exc),
        ) from exc
    crs: CRS | None = None
    assumed: list[str] = []
    if options.crs:
        crs = parse_crs(options.crs)
        if info.get("crs"):
            assumed.append(
                f"The file says its coordinates are in {info['crs']}; they were read as "
                f"{options.crs} as you asked."
            )
    elif info.get("crs"):
        crs = CRS.from_user_input(info["crs"])
    driver = info.get("driver") or "OGR"
    count = info.get("features")
    count_hint = int(count) if count is not None and int(count) >= 0 else None

    def batches() -> Iterator[RawBatch]:
        try:
            with pyogrio.open_arrow(
                uri,
                layer=layer,
                batch_size=min(options.batch_size, _MAX_OGR_BATCH),
                use_pyarrow=True,
            ) as (meta, reader):
                geom_name = meta.get("geometry_name") or "wkb_geometry"
                for batch in reader:
                    idx = batch.schema.get_field_index(geom_name)
                    if idx < 0:
                        raise EmptyInput(f"'{name}' has no geometry column.")
                    wkb = batch.column(idx)
                    attrs = batch.remove_column(idx)
                    yield RawBatch(attrs, wkb=wkb)
        except pyogrio.errors.DataSourceError as exc:
            raise UnsupportedFormat(
                f"'{name}' could not be read to the end; it may be damaged or incomplete.",
                detail=str(exc),
            ) from exc

    return VectorSource(
        name=f"{name}:{layer}" if many else name,
        format=str(driver),
        crs=crs,
        geometry_type=str(info.get("geometry_type") or "Unknown"),
        batches=batches,
        count_hint=count_hint,
        assumed=assumed,
        layer=layer,
    )


# ----- CSV ----------------------------------------------------------------------------------------
def _find(names: list[str], wanted: tuple[str, ...]) -> str | None:
    lowered = {re.sub(r"[\s\-]+", "_", n.strip().lower()): n for n in names}
    for w in wanted:
        if w in lowered:
            return lowered[w]
    return None


def _csv_encoding(path: Path) -> str:
    """'utf8', or the encoding the start of a file that is not UTF-8 must be in."""
    with path.open("rb") as fh:
        sample = fh.read(1024 * 1024)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf8"
    except UnicodeDecodeError:
        pass
    try:
        sample.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:  # bytes Windows-1252 leaves undefined
        return "latin-1"


def _csv_header(path: Path, encoding: str = "utf8") -> tuple[list[str], str]:
    with path.open("rb") as fh:
        head = fh.read(65_536)
    if b"\x00" in head:
        raise UnsupportedFormat(f"'{path.name}' is not a text CSV file.")
    text = head.decode("utf-8-sig" if encoding == "utf8" else encoding, errors="replace")
    first = text.splitlines()[0] if text.splitlines() else ""
    delimiter = max([",", ";", "\t", "|"], key=first.count)
    if first.count(delimiter) == 0:
        raise UnsupportedFormat(
            f"'{path.name}' does not look like a CSV table: its first line has no commas, "
            "semicolons or tabs between column names."
        )
    cells = next(csv.reader([first], delimiter=delimiter), [])
    return [c.strip().strip('"') for c in cells], delimiter


def _unique_names(names: list[str]) -> tuple[list[str], list[str]]:
    """Column names with repeats renamed (``lon``, ``lon_2``), and a note per rename."""
    seen = {n.lower() for n in names}
    out: list[str] = []
    notes: list[str] = []
    used: set[str] = set()
    for name in names:
        if name.lower() not in used:
            used.add(name.lower())
            out.append(name)
            continue
        n = 2
        while f"{name}_{n}".lower() in used or f"{name}_{n}".lower() in seen:
            n += 1
        new = f"{name}_{n}"
        used.add(new.lower())
        out.append(new)
        notes.append(
            f"The column name '{name}' appears more than once; column {len(out)} was renamed "
            f"'{new}' (the first '{name}' is the one used)."
        )
    return out, notes


_MAX_CSV_BLOCK = 512 * 1024
# Features per batch read through GDAL: GDAL's readers (GeoJSON in particular) hold a batch
# as features and as Arrow at once; 8192 keeps a 400 MB GeoJSON ingest under 300 MB.
_MAX_OGR_BATCH = 8192


def _row_bytes(path: Path) -> int:
    """Average length of a row in the first 64 KiB of a CSV file."""
    with path.open("rb") as fh:
        sample = fh.read(65_536)
    return max(8, len(sample) // max(1, sample.count(b"\n")))


def _open_csv(path: Path, options: ReadOptions) -> VectorSource:
    import pyarrow.csv as pacsv

    encoding = options.encoding or _csv_encoding(path)
    names, delimiter = _csv_header(path, encoding)
    names, renamed = _unique_names(names)
    assumed: list[str] = []
    if encoding != "utf8":
        assumed.append(
            f"'{path.name}' is not UTF-8 text, so it was read as {ENCODING_NAMES[encoding]}. "
            "If accented letters look wrong, save it as 'CSV UTF-8' and load it again."
        )
    x_col = y_col = wkt_col = None
    kind = ""
    if options.wkt:
        wkt_col, kind = options.wkt, "wkt"
    elif options.x or options.y:
        if not (options.x and options.y):
            raise InputError("Give both --x and --y (the two coordinate columns).")
        x_col, y_col, kind = options.x, options.y, "xy"
    else:
        for xs, ys, k in ((_LON, _LAT, "lonlat"), (_EAST, _NORTH, "en"), (_X, _Y, "xy")):
            x_col, y_col = _find(names, xs), _find(names, ys)
            if x_col and y_col:
                kind = k
                break
        else:
            x_col = y_col = None
            wkt_col = _find(names, _WKT)
            kind = "wkt" if wkt_col else ""
    for col in (x_col, y_col, wkt_col):
        if col and col not in names:
            raise InputError(
                f"'{path.name}' has no column called '{col}'. Its columns are: {', '.join(names)}."
            )
    if not kind:
        raise InputError(
            f"'{path.name}' has no coordinate columns that landexplorer recognises. Its columns "
            f"are: {', '.join(names)}. Name the columns holding the coordinates with --x and "
            "--y (for example --x lon --y lat), or a column of WKT shapes with --wkt."
        )
    crs: CRS | None = parse_crs(options.crs) if options.crs else None
    if crs is None:
        if kind == "lonlat":
            crs = parse_crs("EPSG:4326")
            assumed.append(
                f"Coordinates were read from the columns '{x_col}' and '{y_col}' as WGS84 "
                "longitude and latitude (EPSG:4326)."
            )
        elif kind == "en":
            raise CRSError(
                f"'{path.name}' has the columns '{x_col}' and '{y_col}' (eastings and "
                "northings) but does not say which coordinate system they are in. If they "
                "are British National Grid references, load it again with --crs EPSG:27700."
            )
        # x/y and WKT: decided from the values (see normalize), or refused there.
    convert = pacsv.ConvertOptions(
        null_values=_NULLS,
        strings_can_be_null=True,
        column_types={
            **{c: pa.string() for c in options.string_columns if c in names},
            # Coordinates are parsed as numbers by pyarrow's own reader threads (the fast
            # path). A cell that is not one number makes the read start again with the
            # column as text, and _coordinates then deals with each odd cell.
            **{
                c: pa.string() if c in options.string_columns else pa.float64()
                for c in (x_col, y_col)
                if c
            },
            **({wkt_col: pa.string()} if wkt_col else {}),
        },
    )
    # pyarrow reads CSV in blocks of bytes: size them so a block holds about batch_size rows,
    # but at most 512 KiB, because its streaming reader keeps up to 32 blocks read ahead in
    # its own threads (that read-ahead is what overlaps parsing with the GeoPackage write):
    # memory is then about 32 blocks, whatever the size of the file.
    block = max(64 * 1024, min(_MAX_CSV_BLOCK, options.batch_size * _row_bytes(path)))
    # The names are given (the header row skipped), so a name used twice is renamed.
    read = pacsv.ReadOptions(block_size=block, encoding=encoding, column_names=names, skip_rows=1)
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False)

    coordinates = (x_col, y_col) if x_col and y_col else ()

    def batches() -> Iterator[RawBatch]:
        try:
            reader = pacsv.open_csv(path, read, parse, convert)
        except pa.ArrowInvalid as exc:
            raise _csv_error(path, exc, coordinates, encoding) from exc
        except UnicodeDecodeError:
            raise NotUtf8(encoding, "latin-1") from None
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                raise _csv_error(path, exc, coordinates, encoding) from exc
            except UnicodeDecodeError:  # a byte Windows-1252 leaves undefined, further on
                raise NotUtf8(encoding, "latin-1") from None
            if kind == "wkt":
                assert wkt_col is not None
                idx = batch.schema.get_field_index(wkt_col)
                text = batch.column(idx)
                yield RawBatch(batch.remove_column(idx), wkb=_wkt_to_wkb(text))
            else:
                assert x_col is not None and y_col is not None
                xs = batch.column(x_col)
                ys = batch.column(y_col)
                x = _coordinates(xs, x_col, notes)
                y = _coordinates(ys, y_col, notes)
                keep = [i for i, n in enumerate(batch.schema.names) if n not in (x_col, y_col)]
                yield RawBatch(batch.select(keep), x=x, y=y)

    notes: list[str] = list(renamed)
    return VectorSource(
        name=path.name,
        format="CSV",
        notes=notes,
        crs=crs,
        geometry_type="Point" if kind != "wkt" else "Unknown",
        batches=batches,
        assumed=assumed,
    )


def _float_numpy(values: pa.Array) -> np.ndarray:
    """A float64 Arrow array as numpy, nulls as NaN.

    Done with the buffers because pyarrow's own null handling (``to_numpy`` with nulls,
    ``pa.scalar``) imports pandas, which costs an ingest a fifth of a second and 35 MB.
    """
    start, stop = values.offset, values.offset + len(values)
    data = np.frombuffer(values.buffers()[1], dtype=np.float64)[start:stop].copy()
    if values.null_count:
        bits = np.frombuffer(values.buffers()[0], dtype=np.uint8)
        valid = np.unpackbits(bits, bitorder="little")[start:stop].astype(bool)
        data[~valid] = np.nan
    return data


def _coordinates(values: pa.Array, column: str, notes: list[str]) -> np.ndarray:
    """Numbers from a coordinate column; cells that are not one number become NaN (and are
    reported), except a list of one number repeated, which is that number."""
    try:
        return _float_numpy(pc.cast(values, pa.float64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = np.full(len(values), np.nan)
    for i, cell in enumerate(values.to_pylist()):
        if cell is None:
            continue
        try:
            out[i] = float(cell)
            continue
        except ValueError:
            pass
        try:
            numbers = {float(v) for v in re.split(r"[,;\s]+", cell.strip()) if v}
        except ValueError:
            numbers = set()
        if len(numbers) == 1:
            out[i] = numbers.pop()
        elif len(notes) < 5:
            notes.append(
                f"A row's '{column}' holds '{cell[:60]}', which is not one number; "
                "that row was left out."
            )
    return out


def _wkt_to_wkb(text: pa.Array) -> pa.Array:
    import shapely

    values = text.to_numpy(zero_copy_only=False)
    geoms = shapely.from_wkt(values, on_invalid="ignore")
    return pa.array(shapely.to_wkb(geoms), type=pa.binary())


def _csv_error(
    path: Path,
    exc: pa.ArrowInvalid,
    coordinates: tuple[str | None, ...] = (),
    encoding: str = "utf8",
) -> Exception:
    message = str(exc)
    if "invalid UTF8" in message and encoding == "utf8":
        return NotUtf8(encoding, "cp1252")  # not UTF-8 after all, further on: read it again
    match = re.search(
        r"In CSV column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'", message
    )
    if match:
        names, _ = _csv_header(path, encoding)
        names, _ = _unique_names(names)
        index = int(match.group(1))
        column = names[index] if index < len(names) else f"#{index}"
        if column in coordinates:
            return SchemaDrift(column)  # read again as text; see _open_csv
        if match.group(2) in ("double", "float"):
            return InputError(
                f"The column '{column}' of '{path.name}' should hold numbers (coordinates) "
                f"but has the value '{match.group(3)}'. Fix that row and load the file again.",
                detail=message,
            )
        return SchemaDrift(column)
    if "Expected" in message and "columns" in message:
        return InputError(
            f"'{path.name}' has a row with a different number of columns than its header "
            "(often a comma inside a value without quotes). Fix that row and try again.",
            detail=message,
        )
    return InputError(f"'{path.name}' could not be read as CSV.", detail=message)


# ----- GeoParquet ------------------------------------------------------------------------------
def _open_parquet(path: Path, options: ReadOptions) -> VectorSource:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnsupportedFormat(
            f"'{path.name}' is not a readable (Geo)Parquet file.", detail=str(exc)
        ) from exc
    meta_raw = (pf.schema_arrow.metadata or {}).get(b"geo")
    if not meta_raw:
        raise UnsupportedFormat(
            f"'{path.name}' is a Parquet table without GeoParquet metadata, so landexplorer "
            "cannot tell which column holds the geometry."
        )
    geo = json.loads(meta_raw)
    column = geo.get("primary_column", "geometry")
    col_meta = geo.get("columns", {}).get(column, {})
    if col_meta.get("encoding", "WKB").upper() != "WKB":
        raise UnsupportedFormat(
            f"'{path.name}' stores geometry as '{col_meta.get('encoding')}'; landexplorer "
            "reads GeoParquet with WKB geometry."
        )
    crs: CRS | None
    if options.crs:
        crs = parse_crs(options.crs)
    elif "crs" in col_meta:
        crs = CRS.from_json_dict(col_meta["crs"]) if col_meta["crs"] else None
    else:
        crs = parse_crs("OGC:CRS84")  # the GeoParquet default
    types = col_meta.get("geometry_types") or []
    gtype = types[0].replace(" Z", "") if len(types) == 1 else "Unknown"

    def batches() -> Iterator[RawBatch]:
        for batch in pf.iter_batches(batch_size=options.batch_size):
            idx = batch.schema.get_field_index(column)
            yield RawBatch(batch.remove_column(idx), wkb=batch.column(idx))

    return VectorSource(
        name=path.name,
        format="GeoParquet",
        crs=crs,
        geometry_type=gtype,
        batches=batches,
        count_hint=pf.metadata.num_rows,
    )
