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
from landexplorer.catalog.diskspace import disk_full, free_mb, is_disk_full
from landexplorer.catalog.model import (
    KEPT_ON_REPLACE,
    KINDS,
    VISIBILITIES,
    IngestReport,
    LayerEntry,
    check_layer_id,
    normalise_licence,
    sibling_id,
    slugify,
    type_change_message,
)
from landexplorer.crs import crs_name
from landexplorer.errors import EmptyInput, InputError, LandExplorerError, LayerExists
from landexplorer.layers.normalize import LINE, POINT, POLYGON, Normalizer
from landexplorer.layers.raster import build_cog
from landexplorer.layers.readers import (
    NotUtf8,
    RawBatch,
    ReadOptions,
    SchemaDrift,
    VectorSource,
    is_raster_path,
    open_vector,
)

#: Called with the number of features stored so far.
Progress = Callable[[int], None]


#: Why a layer asked to be public without any licence is refused.
PUBLIC_NEEDS_LICENCE = (
    "A layer can be public only with a licence, and none was given. Give one (an SPDX id "
    "such as OGL-UK-3.0, CC-BY-4.0 or ODbL-1.0), or leave the visibility out (or make it "
    "private): the layer then stays private until a licence is set."
)


@dataclass
class IngestOptions:
    """Everything a steward or volunteer may say about a file they load.

    A detail left as None (a licence also as "") is not given: a new layer gets the
    default, and a replace keeps the value the layer has (see ``KEPT_ON_REPLACE``).
    """

    id: str | None = None
    title: str | None = None  # default: from the file name
    description: str | None = None  # default: ""
    kind: str | None = None  # default: community
    licence: str | None = None  # default: none (the layer stays private)
    attribution: str | None = None  # default: ""
    source: str | None = None  # default: the file name
    owner: str | None = None  # default: "" (an account name when uploaded by someone)
    group: str | None = None  # default: "" (the group the layer belongs to)
    visibility: str | None = None  # default: public when licensed, else private
    crs: str | None = None
    x: str | None = None
    y: str | None = None
    wkt: str | None = None
    layer: str | None = None
    replace: bool = False
    #: A replace may turn a raster layer into a vector one or back.
    allow_type_change: bool = False
    batch_size: int = 65_536
    extra_notes: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Refuse impossible details in plain words, and spell the licence the SPDX way."""
        if self.kind is not None and self.kind not in KINDS:
            raise InputError(f"The kind must be one of {', '.join(KINDS)}, not '{self.kind}'.")
        if self.visibility is not None and self.visibility not in VISIBILITIES:
            raise InputError(
                f"The visibility must be one of {', '.join(VISIBILITIES)}, not '{self.visibility}'."
            )
        if self.licence == "":
            self.licence = None  # not given (the web form's "not decided yet")
        if self.licence is not None:
            self.licence = normalise_licence(self.licence)
        elif self.visibility == "public" and not self.replace:
            raise InputError(PUBLIC_NEEDS_LICENCE)

    def given(self) -> set[str]:
        """The layer details this load sets; a replace keeps the others."""
        blank_is_none = ("title", "kind", "visibility", "licence", "source")
        return {
            name
            for name in KEPT_ON_REPLACE
            if getattr(self, name) is not None
            and not (name in blank_is_none and getattr(self, name) == "")
        }


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


def _base_entry(path: Path, options: IngestOptions, data_type: str, suffix: str = "") -> LayerEntry:
    """The new layer's details: those given, else the defaults. On a replace, the store
    takes the details not given (``entry.keep``) from the current version instead."""
    layer_id = options.id or slugify(path.name.split(".")[0])
    if suffix:
        layer_id = slugify(f"{layer_id}_{suffix}")
    licence = options.licence or ""
    visibility = options.visibility or ("public" if licence else "private")
    given = options.given()
    return LayerEntry(
        id=layer_id,
        title=(options.title or _title_from(path)) + (f" ({suffix})" if suffix else ""),
        description=options.description or "",
        kind=options.kind or "community",
        data_type=data_type,
        owner=options.owner or "",
        group=options.group or "",
        visibility=visibility,
        licence=licence,
        attribution=options.attribution or "",
        source=options.source or path.name,
        keep=tuple(name for name in KEPT_ON_REPLACE if name not in given),
        allow_type_change=options.allow_type_change,
    )


def _refuse_existing(store: Store, entry: LayerEntry, options: IngestOptions) -> None:
    """Refuse, before anything is read, a load that cannot be stored under this id."""
    check_layer_id(entry.id)
    if not store.exists(entry.id):
        return
    if not options.replace:
        raise LayerExists(
            f"A layer called '{entry.id}' already exists. Use --replace to store this file as "
            "its new version, or choose another id with --id."
        )
    current = store.get(entry.id)
    if current.data_type != entry.data_type and not options.allow_type_change:
        raise InputError(type_change_message(entry.id, current.data_type, entry.data_type))
    if options.visibility == "public" and options.licence is None and not current.licence:
        raise InputError(PUBLIC_NEEDS_LICENCE)


def _ingest_raster(store: Store, paths: list[Path], options: IngestOptions) -> LayerEntry:
    started = time.perf_counter()
    entry = _base_entry(paths[0], options, "raster")
    _refuse_existing(store, entry, options)
    out_dir = store.raster_dir
    try:
        cog, description, notes = build_cog(paths, out_dir, options.crs)
    except Exception as exc:
        # GDAL's TIFF writer does not always name the cause: no room left is the cause
        if not isinstance(exc, LandExplorerError) and (is_disk_full(exc) or free_mb(out_dir) == 0):
            raise disk_full(out_dir, exc) from exc
        raise
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
                _base_entry(path, options, "vector", suffix=(src.layer or "") if many else "")
                for src in sources
            ]
            ids = [e.id for e in entries]
            if len(set(ids)) < len(ids):
                raise InputError(
                    f"Two layers of '{path.name}' would get the same id; load them one at a "
                    "time with --layer and --id."
                )
            for entry in entries:
                _refuse_existing(store, entry, options)  # before reading anything
            items = _items(store, sources, entries, options, progress, checksum.result)
            return store.write_vectors(items, replace=options.replace)
        except NotUtf8 as wrong:
            if read_options.encoding == wrong.next:
                raise InputError(f"'{path.name}' could not be read as text.") from None
            read_options.encoding = wrong.next  # read it all again in that encoding
        except SchemaDrift as drift:
            if drift.column in read_options.string_columns:
                raise InputError(f"'{path.name}' has columns whose type keeps changing.") from None
            read_options.string_columns.add(drift.column)


#: Suffix of the layer holding a file's features of a family other than the main one.
FAMILY_SUFFIX = {POINT: "points", LINE: "lines", POLYGON: "polygons"}

Item = tuple[LayerEntry, pa.Schema, Iterator[pa.RecordBatch]]


def _items(
    store: Store,
    sources: list[VectorSource],
    entries: list[LayerEntry],
    options: IngestOptions,
    progress: Progress | None,
    checksum: Callable[[], str],
) -> Iterator[Item]:
    """The layers of one load, each as (entry, schema, batches), for ``write_vectors``.

    Lazy: which other geometry families a source holds is known once its main pass has
    been written (the store reads every batch of an item before it asks for the next),
    and each such family then follows as a layer of its own, read in another pass.
    """
    for source, entry in zip(sources, entries, strict=True):
        entry.report.assumed.extend(source.assumed)
        normalizer = Normalizer(source, entry.report)
        siblings: dict[str, str] = {}

        def plan(
            normalizer: Normalizer = normalizer,
            entry: LayerEntry = entry,
            siblings: dict[str, str] = siblings,
        ) -> None:
            # the main pass is done and its entry not yet committed: say where the rest goes
            families = sorted(normalizer.elsewhere, key=lambda f: -normalizer.elsewhere[f])
            for family in families:
                siblings[family] = sibling_id(entry.id, FAMILY_SUFFIX[family])
            entry.report.also_stored = {siblings[f]: normalizer.elsewhere[f] for f in families}

        yield _prepared(source, entry, normalizer, options, progress, checksum, plan)
        for family, layer_id in siblings.items():
            count = normalizer.elsewhere[family]
            check_layer_id(layer_id)
            if not options.replace and store.exists(layer_id):
                raise LayerExists(
                    f"'{source.name}' also holds {count:,} {FAMILY_SUFFIX[family]}, which would "
                    f"be stored as the layer '{layer_id}', but a layer of that name already "
                    "exists. Load it again with --replace to replace that layer too, or choose "
                    "another id with --id."
                )
            sibling = _sibling_entry(entry, layer_id, family, source)
            second = Normalizer(source, sibling.report, family=family, main=normalizer.family)
            second.crs = normalizer.crs  # the CRS the first pass read (or assumed)
            sibling.report.assumed.extend(entry.report.assumed)
            yield _prepared(source, sibling, second, options, progress, checksum)


def _sibling_entry(
    main: LayerEntry, layer_id: str, family: str, source: VectorSource
) -> LayerEntry:
    """The layer for a file's features of another family: the main layer's details as
    they were stored (kept ones included), a title of its own, and the same ``keep``, so
    a replace of an existing one keeps its own details."""
    entry = LayerEntry(
        id=layer_id,
        title=f"{main.title} ({FAMILY_SUFFIX[family]})",
        description=main.description,
        kind=main.kind,
        owner=main.owner,
        group=main.group,
        visibility=main.visibility,
        licence=main.licence,
        attribution=main.attribution,
        source=main.source,
        keep=main.keep,
        allow_type_change=main.allow_type_change,
    )
    entry.report.notes.append(
        f"These are the {FAMILY_SUFFIX[family]} of '{source.name}'; its other features are in "
        f"the layer '{main.id}'."
    )
    return entry


def _prepared(
    source: VectorSource,
    entry: LayerEntry,
    normalizer: Normalizer,
    options: IngestOptions,
    progress: Progress | None,
    checksum: Callable[[], str] | None = None,
    when_done: Callable[[], None] | None = None,
) -> Item:
    """A source's normalised batches, started (the first batch gives the schema)."""
    started = time.perf_counter()
    report = entry.report
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
        if when_done is not None:
            when_done()

    return entry, schema, everything()
