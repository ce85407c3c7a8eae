"""PostgreSQL binary COPY from Arrow, vectorised with numpy (no Python loop over rows).

The binary COPY format is: a header, then per row a 16-bit field count followed by each
field as a 32-bit length (-1 for NULL) and its bytes, then a 16-bit -1 trailer. All
integers are big-endian. PostGIS's ``geometry`` accepts plain WKB as its binary input, and
a column declared ``geometry(Geometry, 4326)`` stamps SRID 4326 on it, so WKB from the
ingestion pipeline goes straight in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from landexplorer.catalog.base import FID, GEOMETRY
from landexplorer.catalog.sql import GEOM_COLUMN, quote_ident

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"

# PostgreSQL counts dates and timestamps from 2000-01-01.
_PG_EPOCH_DAYS = 10_957
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400 * 1_000_000


def pg_type(arrow_type: pa.DataType) -> str:
    """The PostgreSQL column type an Arrow attribute column is stored as."""
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "bigint"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "double precision"
    if pa.types.is_timestamp(arrow_type):
        return "timestamptz" if arrow_type.tz else "timestamp"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "bytea"
    return "text"


def _fixed(values: np.ndarray, valid: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Payload bytes and per-row lengths (-1 for NULL) of a fixed-width column."""
    width = np.dtype(dtype).itemsize
    payload = np.ascontiguousarray(values[valid].astype(dtype)).view(np.uint8)
    lengths = np.where(valid, width, -1).astype(np.int64)
    return payload, lengths


def _encode(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Encode one column: (payload bytes of the non-NULL rows, lengths with -1 for NULL)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    t = array.type
    valid = (
        np.ones(len(array), dtype=bool)
        if array.null_count == 0
        else (pc.is_valid(array).to_numpy(zero_copy_only=False))
    )
    if pa.types.is_boolean(t):
        values = pc.fill_null(array, False).to_numpy(zero_copy_only=False)
        return _fixed(values.astype(np.uint8), valid, "u1")
    if pa.types.is_integer(t):
        values = pc.fill_null(array.cast(pa.int64()), 0).to_numpy()
        return _fixed(values, valid, ">i8")
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = pc.fill_null(array.cast(pa.float64()), 0.0).to_numpy()
        return _fixed(values, valid, ">f8")
    if pa.types.is_date(t):
        days = pc.fill_null(array.cast(pa.date32()).cast(pa.int32()), 0).to_numpy()
        return _fixed(days.astype(np.int64) - _PG_EPOCH_DAYS, valid, ">i4")
    if pa.types.is_timestamp(t):
        micro = array.cast(pa.timestamp("us", tz=t.tz), safe=False).cast(pa.int64())
        values = pc.fill_null(micro, 0).to_numpy()
        return _fixed(values - _PG_EPOCH_US, valid, ">i8")
    if pa.types.is_large_binary(t):
        array = array.cast(pa.binary())
    elif not (pa.types.is_binary(t) or pa.types.is_string(t)):
        array = array.cast(pa.string())
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[
        array.offset : array.offset + len(array) + 1
    ].astype(np.int64)
    data = array.buffers()[2]
    raw = (
        np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]
        if data is not None
        else np.zeros(0, dtype=np.uint8)
    )
    lengths = np.diff(offsets)
    lengths[~valid] = -1  # NULL slots have zero length in Arrow, so the payload is unchanged
    return raw, lengths


def encode_batch(arrays: list[pa.Array]) -> bytes:
    """The binary COPY rows (no header/trailer) for columns of equal length."""
    n = len(arrays[0]) if arrays else 0
    if n == 0:
        return b""
    encoded = [_encode(a) for a in arrays]
    sizes = [4 + np.maximum(lengths, 0) for _, lengths in encoded]
    row_sizes = 2 + np.sum(sizes, axis=0)
    row_starts = np.zeros(n, dtype=np.int64)
    np.cumsum(row_sizes[:-1], out=row_starts[1:])
    buf = np.empty(int(row_starts[-1] + row_sizes[-1]), dtype=np.uint8)

    count = np.array([len(arrays)], dtype=">i2").view(np.uint8)
    buf[row_starts[:, None] + np.arange(2)] = count
    field_start = row_starts + 2
    for (payload, lengths), size in zip(encoded, sizes, strict=True):
        header = lengths.astype(">i4").view(np.uint8).reshape(n, 4)
        buf[field_start[:, None] + np.arange(4)] = header
        present = np.maximum(lengths, 0)
        if payload.size:
            # every payload byte goes to its row's field start + 4 + its position in the field
            src_starts = np.zeros(n, dtype=np.int64)
            np.cumsum(present[:-1], out=src_starts[1:])
            shift = np.repeat(field_start + 4 - src_starts, present)
            buf[np.arange(payload.size, dtype=np.int64) + shift] = payload
        field_start = field_start + size
    return buf.tobytes()


def fill_table(conn: Any, table: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> int:
    """Create a version table, binary-COPY the batches in, then key and index it."""
    names = [f.name for f in schema if f.name not in (GEOMETRY, FID)]
    given_fids = FID in schema.names
    qtable = quote_ident(table)
    # only a retired table of a deleted layer can have this name
    conn.execute(f"DROP TABLE IF EXISTS {qtable}")
    columns = [f"{FID} bigint NOT NULL"]
    columns += [f"{quote_ident(n)} {pg_type(schema.field(n).type)}" for n in names]
    columns.append(f"{GEOM_COLUMN} geometry(Geometry, 4326)")
    conn.execute(f"CREATE TABLE {qtable} ({', '.join(columns)})")
    target = ", ".join([FID, *(quote_ident(n) for n in names), GEOM_COLUMN])
    fid = 0
    with conn.cursor().copy(f"COPY {qtable} ({target}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(HEADER)
        for batch in batches:
            n = batch.num_rows
            if not n:
                continue
            if given_fids:
                arrays = [batch.column(FID)]
            else:
                arrays = [pa.array(range(fid + 1, fid + n + 1), type=pa.int64())]
            arrays += [batch.column(name) for name in names]
            arrays.append(batch.column(GEOMETRY))
            copy.write(encode_batch(arrays))
            fid += n
        copy.write(TRAILER)
    # key and index after the load: one sort instead of a million index updates
    conn.execute(f"ALTER TABLE {qtable} ADD PRIMARY KEY ({FID})")
    index = quote_ident(table + "_gix")
    conn.execute(f"CREATE INDEX {index} ON {qtable} USING gist ({GEOM_COLUMN})")
    conn.execute(f"ANALYZE {qtable}")
    return fid
