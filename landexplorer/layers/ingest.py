"""Ingestion: from a file on disk to a catalogued layer, streamed, checked and atomic."""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from landexplorer.catalog.base import Store
from landexplorer.catalog.model import (
    KINDS,
    VISIBILITIES,
    IngestReport,
    LayerEntry,
    check_layer_id,
    slugify,
)
from landexplorer.errors import EmptyInput, InputError, LayerExists
from landexplorer.layers.crs import crs_name
from landexplorer.layers.normalize import Normalizer
from landexplorer.layers.raster import build_cog
from landexplorer.layers.readers import (
    RawBatch,
    ReadOptions,
    SchemaDrift,
    VectorSource,
    is_raster_path,
    open_vector,
)

#: Called with the number of features stored so far.
Progress = Callable[[int], None]


@dataclass
class IngestOptions:
    """Everything a steward or volunteer may say about a file they load."""

    id: str | None = None
    title: str | None = None
    description: str = ""
    kind: str = "community"
    licence: str = ""
    attribution: str = ""
    source: str | None = None
    owner: str = ""
    visibility: str | None = None  # default: public when licensed, else private
    crs: str | None = None
    x: str | None = None
    y: str | None = None
    wkt: str | None = None
    layer: str | None = None
    replace: bool = False
    batch_size: int = 65_536
    extra_notes: list[str] = field(default_factory=list)

    def check(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"The kind must be one of {', '.join(KINDS)}, not '{self.kind}'.")
        if self.visibility is not None and self.visibility not in VISIBILITIES:
            raise InputError(
                f"The visibility must be one of {', '.join(VISIBILITIES)}, not '{self.visibility}'."
            )


def import_gdal_lean() -> None:
    """Import GDAL's bindings (pyogrio) without their optional pandas/geopandas probe.

    For a process that only ingests, such as the ``landexplorer ingest`` command: at import
    time pyogrio imports geopandas and pandas to learn their versions, which costs an ingest
    about a quarter of a second and 35 MB, and ingestion never uses them. Afterwards
    pyogrio's GeoDataFrame helpers (``read_dataframe``) do not work in that process, so a
    server or a notebook must not call this. Does nothing once pyogrio is imported.
    """
    if "pyogrio" in sys.modules:
        return
    blocked = [name for name in ("geopandas", "pandas") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # importing it raises ImportError
    try:
        import pyogrio  # noqa: F401
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def file_checksum(paths: Sequence[Path]) -> str:
    """SHA-256 of the input file(s), so a later load of the same data can be recognised."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            while chunk := fh.read(4 * 1024 * 1024):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


#: Geometry bytes (WKB) normalised at a time. Repair and reprojection hold several copies
#: of a batch's geometries as shapely objects, so batches of large polygons are cut to this
#: size to keep memory flat whatever the file holds (points are never cut).
MAX_BATCH_WKB_BYTES = 2 * 1024 * 1024


def _bounded(batch: RawBatch) -> Iterator[RawBatch]:
    """The batch itself, or zero-copy slices of it holding at most MAX_BATCH_WKB_BYTES of WKB."""
    wkb = batch.wkb
    if wkb is None or len(wkb) < 2 or wkb.nbytes <= MAX_BATCH_WKB_BYTES:
        yield batch
        return
    # end of each geometry, in bytes from the start of the batch (from the Arrow offsets)
    width = np.int64 if pa.types.is_large_binary(wkb.type) else np.int32
    raw = np.frombuffer(wkb.buffers()[1], dtype=width)[wkb.offset : wkb.offset + len(wkb) + 1]
    offsets = raw[1:].astype(np.int64) - int(raw[0])
    start = 0
    while start < len(wkb):
        base = offsets[start - 1] if start else 0
        stop = int(np.searchsorted(offsets, base + MAX_BATCH_WKB_BYTES, side="right"))
        stop = max(stop, start + 1)  # one geometry larger than the limit goes alone
        yield RawBatch(
            batch.attributes.slice(start, stop - start), wkb=wkb.slice(start, stop - start)
        )
        start = stop


#: Bytes of normalised rows handed to the store at a time (with at most batch_size rows).
MAX_WRITE_BATCH_BYTES = 4 * 1024 * 1024


def _coalesced(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Small batches joined into batches of up to ``rows`` rows or MAX_WRITE_BATCH_BYTES.

    The readers hand over small batches to keep their memory bounded, but GDAL commits a
    GeoPackage transaction (four fsyncs) per batch it is given: 70 batches for a 1M-row CSV
    cost more in fsyncs than the rest of the write on a busy disk.
    """
    pending: list[pa.RecordBatch] = []
    count = size = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        size += batch.nbytes
        if count >= rows or size >= MAX_WRITE_BATCH_BYTES:
            yield _join(pending)
            pending, count, size = [], 0, 0
    if pending:
        yield _join(pending)


def _join(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    table = pa.Table.from_batches(batches).combine_chunks()
    return table.to_batches(max_chunksize=table.num_rows)[0]


class _BackgroundChecksum:
    """SHA-256 of the input computed in a thread, so that it overlaps reading and writing
    (hashlib and file reads release the GIL; a 10-million-row CSV takes about a second)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._value: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(list(paths),), name="landexplorer-checksum", daemon=True
        )
        self._thread.start()

    def _run(self, paths: list[Path]) -> None:
        try:
            self._value = file_checksum(paths)
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self) -> str:
        """The checksum, once the thread has finished (waits for it)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def _title_from(path: Path) -> str:
    stem = path.name.split(".")[0]
    return stem.replace("_", " ").replace("-", " ").strip().capitalize() or "Untitled layer"


def ingest(
    store: Store,
    paths: Path | Sequence[Path],
    options: IngestOptions | None = None,
    progress: Progress | None = None,
) -> list[LayerEntry]:
    """Load a file (or, for raster tiles, several files) into the catalogue.

    Returns one entry per layer stored: a GeoPackage with several layers and no
    ``layer`` option gives several. On any error nothing is stored and the
    catalogue (including an earlier version of the layer) is left as it was.

    >>> ingest(store, Path("orchards.csv"), IngestOptions(licence="OGL-UK-3.0"))  # doctest: +SKIP
    """
    options = options or IngestOptions()
    options.check()
    path_list = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    if not path_list:
        raise InputError("Give at least one file to load.")
    for path in path_list:
        if not path.exists():
            raise InputError(f"There is no file at '{path}'.")
        if path.is_dir():
            raise InputError(f"'{path}' is a folder; give the path of one file.")
    if len(path_list) > 1 or is_raster_path(path_list[0]):
        if not all(is_raster_path(p) for p in path_list):
            raise InputError("Several files can be loaded together only as tiles of one raster.")
        return [_ingest_raster(store, path_list, options)]
    return _ingest_vector(store, path_list[0], options, progress)


def _base_entry(path: Path, options: IngestOptions, suffix: str = "") -> LayerEntry:
    layer_id = options.id or slugify(path.name.split(".")[0])
    if suffix:
        layer_id = slugify(f"{layer_id}_{suffix}")
    visibility = options.visibility or ("public" if options.licence else "private")
    return LayerEntry(
        id=layer_id,
        title=(options.title or _title_from(path)) + (f" ({suffix})" if suffix else ""),
        description=options.description,
        kind=options.kind,
        owner=options.owner,
        visibility=visibility,
        licence=options.licence,
        attribution=options.attribution,
        source=options.source or path.name,
    )


def _refuse_existing(store: Store, layer_id: str, options: IngestOptions) -> None:
    check_layer_id(layer_id)
    if not options.replace and store.exists(layer_id):
        raise LayerExists(
            f"A layer called '{layer_id}' already exists. Use --replace to store this file as "
            "its new version, or choose another id with --id."
        )


def _ingest_raster(store: Store, paths: list[Path], options: IngestOptions) -> LayerEntry:
    started = time.perf_counter()
    entry = _base_entry(paths[0], options)
    _refuse_existing(store, entry.id, options)
    out_dir = getattr(store, "raster_dir", Path(".")) or Path(".")
    cog, description, notes = build_cog(paths, out_dir, options.crs)
    try:
        entry.bbox = description.pop("bbox")
        entry.raster = description
        entry.source_crs = description["crs"]
        entry.geometry_type = ""
        entry.checksum = file_checksum(paths)
        entry.report = IngestReport(notes=notes + options.extra_notes)
        entry.report.seconds = round(time.perf_counter() - started, 3)
        return store.write_raster(entry, cog, replace=options.replace)
    finally:
        cog.unlink(missing_ok=True)


def _ingest_vector(
    store: Store, path: Path, options: IngestOptions, progress: Progress | None
) -> list[LayerEntry]:
    read_options = ReadOptions(
        crs=options.crs,
        x=options.x,
        y=options.y,
        wkt=options.wkt,
        layer=options.layer,
        batch_size=options.batch_size,
    )
    checksum = _BackgroundChecksum([path])  # hashed while the layer is read and written
    # A CSV column whose type changes after the first block is read again as text; each
    # retry turns one more column into text, so this ends.
    while True:
        try:
            sources = open_vector(path, read_options)
            many = len(sources) > 1
            entries = [
                _base_entry(path, options, suffix=(src.layer or "") if many else "")
                for src in sources
            ]
            for entry in entries:
                _refuse_existing(store, entry.id, options)  # before reading anything
            return [
                _write_source(store, src, entry, options, progress, checksum.result)
                for src, entry in zip(sources, entries, strict=True)
            ]
        except SchemaDrift as drift:
            if drift.column in read_options.string_columns:
                raise InputError(f"'{path.name}' has columns whose type keeps changing.") from None
            read_options.string_columns.add(drift.column)


def _write_source(
    store: Store,
    source: VectorSource,
    entry: LayerEntry,
    options: IngestOptions,
    progress: Progress | None,
    checksum: Callable[[], str] | None = None,
) -> LayerEntry:
    started = time.perf_counter()
    report = IngestReport()
    report.assumed.extend(source.assumed)
    normalizer = Normalizer(source, report)
    raw = source.batches()

    def normalized() -> Iterator[pa.RecordBatch]:
        for batch in raw:
            for piece in _bounded(batch):
                out = normalizer(piece)
                if out is not None and out.num_rows:
                    if progress is not None:
                        progress(report.features_stored)
                    yield out

    stream = _coalesced(normalized(), options.batch_size)
    first = next(stream, None)
    if first is None:
        if report.rows_read == 0:
            raise EmptyInput(f"'{source.name}' has no features in it: there is nothing to load.")
        raise EmptyInput(
            f"None of the {report.rows_read:,} rows of '{source.name}' has a usable geometry "
            "(all were empty or had no coordinates); nothing was loaded."
        )
    schema = first.schema
    entry.geometry_type = normalizer.geometry_type

    def everything() -> Iterator[pa.RecordBatch]:
        yield first
        yield from stream
        # the stream is done: the store reads these when it commits the version
        entry.feature_count = report.features_stored
        entry.bbox = tuple(float(v) for v in normalizer.bounds)  # type: ignore[assignment]
        entry.source_crs = crs_name(normalizer.crs) if normalizer.crs is not None else ""
        if checksum is not None:
            entry.checksum = checksum()
        report.notes.extend(source.notes + options.extra_notes)
        if normalizer.had_z:
            report.notes.append("Heights (Z values) in the geometries were left out.")
        report.seconds = round(time.perf_counter() - started, 3)
        entry.report = report

    return store.write_vector(entry, schema, everything(), replace=options.replace)
