"""Mapbox Vector Tile (MVT 2.1) encoding, vectorised with numpy and shapely.

Geometries arrive in tile units (0..extent, y down). Each family (points, lines,
polygons) is taken apart into coordinate arrays once; quantising, dropping repeated
points, fixing ring winding and building the command stream are array operations, so a
tile of 40,000 polygons costs tens of milliseconds rather than seconds. Only the final
assembly of each feature message is a Python loop.

The protobuf wire format is written by hand (it is five message types with a handful of
fields each), so no protobuf runtime is needed. It stays hand-written only while it
measures faster than the libraries on the same tiles (``bench/bench_encoders.py``:
mapbox-vector-tile and the vtzero binding, figures in docs/benchmarks.md), and its output
is read back by two independent decoders in the tests (mapbox-vector-tile and vtzero).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

POINT, LINESTRING, POLYGON = 1, 2, 3
_MOVE_TO, _LINE_TO, _CLOSE = 1, 2, 7
_CLOSE_CMD = _CLOSE | (1 << 3)
_MOVE_ONE = _MOVE_TO | (1 << 3)


# ----- protobuf primitives ------------------------------------------------------------------
def _varint_slow(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


#: Varints of small numbers (tags, key/value ids, short lengths) looked up, not built.
_SMALL = [_varint_slow(i) for i in range(1 << 14)]


def _varint(value: int) -> bytes:
    return _SMALL[value] if value < 16384 else _varint_slow(value)


def _field_bytes(field: int, payload: bytes) -> bytes:
    return _varint((field << 3) | 2) + _varint(len(payload)) + payload


def _zigzag(values: np.ndarray) -> np.ndarray:
    v = values.astype(np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def varints(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Encode unsigned integers as protobuf varints.

    Returns the bytes and the byte offset where each value starts (plus the total at the
    end), so callers can slice out runs of values.
    """
    v = values.astype(np.uint64)
    nbytes = np.ones(len(v), dtype=np.int64)
    for shift in (7, 14, 21, 28, 35):
        nbytes += v >= (np.uint64(1) << np.uint64(shift))
    offsets = np.zeros(len(v) + 1, dtype=np.int64)
    np.cumsum(nbytes, out=offsets[1:])
    out = np.zeros(int(offsets[-1]), dtype=np.uint8)
    for b in range(int(nbytes.max()) if len(v) else 0):
        mask = nbytes > b
        chunk = (v[mask] >> np.uint64(7 * b)) & np.uint64(0x7F)
        more = (nbytes[mask] > b + 1).astype(np.uint64) << np.uint64(7)
        out[offsets[:-1][mask] + b] = (chunk | more).astype(np.uint8)
    return out.tobytes(), offsets


# ----- geometry -> command streams -------------------------------------------------------------
@dataclass
class Encoded:
    """Command streams of one geometry family: feature ``rows`` (indexes into the input)
    and, for each, the range of values ``[starts[i], starts[i+1])`` in ``values``."""

    kind: int
    rows: np.ndarray
    values: np.ndarray
    starts: np.ndarray


def _dedupe(q: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Mask keeping points that differ from the previous point of the same group."""
    keep = np.ones(len(q), dtype=bool)
    if len(q) > 1:
        same = (q[1:] == q[:-1]).all(axis=1) & (group[1:] == group[:-1])
        keep[1:] = ~same
    return keep


def _group_starts(group: np.ndarray) -> np.ndarray:
    """Mask of the first element of each run of equal ``group`` values."""
    first = np.ones(len(group), dtype=bool)
    first[1:] = group[1:] != group[:-1]
    return first


def _stream(q: np.ndarray, ring: np.ndarray, feature: np.ndarray, closed: bool) -> tuple:
    """Interleave MoveTo/LineTo(/ClosePath) headers with zig-zag deltas.

    ``q``: int coordinates of the kept points; ``ring``: ring/line id per point (sorted,
    runs); ``feature``: feature row per point. Returns (values, feature row per ring,
    value start per ring).
    """
    first = _group_starts(ring)
    ring_first_idx = np.flatnonzero(first)
    counts = np.diff(np.append(ring_first_idx, len(q)))
    # the cursor carries across rings within a feature, and starts at 0,0 per feature
    prev = np.zeros_like(q)
    prev[1:] = q[:-1]
    feat_first = _group_starts(feature)
    prev[feat_first] = 0
    deltas = _zigzag(q - prev)
    per_ring = 2 * counts + (3 if closed else 2)
    ring_start = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(per_ring, out=ring_start[1:])
    out = np.zeros(int(ring_start[-1]), dtype=np.uint64)
    rs = ring_start[:-1]
    out[rs] = _MOVE_ONE
    out[rs + 3] = (_LINE_TO | ((counts - 1) << 3)).astype(np.uint64)
    if closed:
        out[rs + 2 * counts + 2] = _CLOSE_CMD
    local = np.arange(len(q)) - np.repeat(ring_first_idx, counts)
    base = np.repeat(rs, counts)
    pos = np.where(local == 0, base + 1, base + 2 + 2 * local)
    out[pos] = deltas[:, 0]
    out[pos + 1] = deltas[:, 1]
    return out, feature[ring_first_idx], rs, ring_start[-1]


def _per_feature(
    values: np.ndarray, ring_feature: np.ndarray, ring_start: np.ndarray, total: int, kind: int
) -> Encoded:
    fstart = _group_starts(ring_feature)
    rows = ring_feature[fstart]
    starts = np.append(ring_start[fstart], total)
    return Encoded(kind, rows, values, starts)


def _ragged(geoms: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Coordinates and offsets of same-family geometries, without making Python objects."""
    _, coords, offsets = shapely.to_ragged_array(geoms)
    return coords, list(offsets)


def _runs(offsets: np.ndarray) -> np.ndarray:
    """Owner index of each element, from an offsets array (owner i has [o[i], o[i+1]))."""
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def encode_polygons(geoms: np.ndarray, rows: np.ndarray) -> Encoded:
    """Polygons/MultiPolygons in tile units -> command streams (snapped to the integer grid)."""
    coords, offsets = _ragged(geoms)
    if len(coords) == 0:
        return _empty(POLYGON)
    if len(offsets) == 2:  # all Polygons: one part per feature
        ring_off, poly_off = offsets
        geom_off = np.arange(len(poly_off))
    else:
        ring_off, poly_off, geom_off = offsets
    cidx = _runs(ring_off)  # ring of each coordinate
    ridx = _runs(poly_off)  # polygon of each ring
    pidx = _runs(geom_off)  # feature (position in geoms) of each polygon
    n_rings, n_polys = len(ring_off) - 1, len(poly_off) - 1
    q = np.rint(coords).astype(np.int64)
    # drop each ring's closing point (ClosePath stands for it), then repeated points
    last = np.ones(len(cidx), dtype=bool)
    last[:-1] = cidx[1:] != cidx[:-1]
    q, cidx = q[~last], cidx[~last]
    keep = _dedupe(q, cidx)
    q, cidx = q[keep], cidx[keep]
    if len(q) == 0:
        return _empty(POLYGON)
    # a ring whose last point now equals its first: drop that point too
    first = _group_starts(cidx)
    firsts = np.flatnonzero(first)
    lasts = np.append(firsts[1:], len(q)) - 1
    wrap = (q[lasts] == q[firsts]).all(axis=1) & (lasts > firsts)
    if wrap.any():
        keep = np.ones(len(q), dtype=bool)
        keep[lasts[wrap]] = False
        q, cidx = q[keep], cidx[keep]
        first = _group_starts(cidx)
        firsts = np.flatnonzero(first)
    counts = np.diff(np.append(firsts, len(q)))
    # signed area (surveyor's formula, tile coordinates, y down) per ring
    nxt = np.arange(len(q)) + 1
    lasts = firsts + counts - 1
    nxt[lasts] = firsts
    cross = q[:, 0] * q[nxt, 1] - q[nxt, 0] * q[:, 1]
    area2 = np.add.reduceat(cross, firsts) if len(q) else np.zeros(0, dtype=np.int64)
    ring_ids = cidx[firsts]
    ok_ring = (counts >= 3) & (area2 != 0)
    # exterior = first ring of each polygon; a polygon whose exterior collapsed goes entirely
    exterior_of_ring = np.zeros(n_rings, dtype=bool)
    exterior_of_ring[_group_starts(ridx)] = True
    ring_alive = np.zeros(n_rings, dtype=bool)
    ring_alive[ring_ids[ok_ring]] = True
    poly_alive = np.zeros(n_polys, dtype=bool)
    poly_alive[ridx[exterior_of_ring & ring_alive]] = True
    ring_alive &= poly_alive[ridx]
    # MVT: exterior rings have positive area in tile coordinates, holes negative
    is_ext = exterior_of_ring[ring_ids]
    flip = ok_ring & ring_alive[ring_ids] & ((area2 > 0) != is_ext)
    if flip.any():
        # keep each flipped ring's first point and reverse the rest: same ring, other way round
        ring_of_pt = np.repeat(np.arange(len(firsts)), counts)
        local = np.arange(len(q)) - firsts[ring_of_pt]
        s, n = firsts[ring_of_pt], counts[ring_of_pt]
        order = np.where(flip[ring_of_pt] & (local > 0), s + n - local, np.arange(len(q)))
        q = q[order]
    keep_pt = ring_alive[cidx]
    q, cidx = q[keep_pt], cidx[keep_pt]
    if len(q) == 0:
        return _empty(POLYGON)
    feature = rows[pidx[ridx[cidx]]]
    values, ring_feature, ring_start, total = _stream(q, cidx, feature, closed=True)
    return _per_feature(values, ring_feature, ring_start, total, POLYGON)


def encode_lines(geoms: np.ndarray, rows: np.ndarray) -> Encoded:
    """LineStrings/MultiLineStrings in tile units -> command streams."""
    coords, offsets = _ragged(geoms)
    if len(coords) == 0:
        return _empty(LINESTRING)
    if len(offsets) == 1:  # all LineStrings: one part per feature
        line_off, geom_off = offsets[0], np.arange(len(offsets[0]))
    else:
        line_off, geom_off = offsets
    cidx = _runs(line_off)
    lidx = _runs(geom_off)
    q = np.rint(coords).astype(np.int64)
    keep = _dedupe(q, cidx)
    q, cidx = q[keep], cidx[keep]
    counts = np.bincount(cidx, minlength=len(line_off) - 1)
    keep = counts[cidx] >= 2
    q, cidx = q[keep], cidx[keep]
    if len(q) == 0:
        return _empty(LINESTRING)
    feature = rows[lidx[cidx]]
    values, ring_feature, ring_start, total = _stream(q, cidx, feature, closed=False)
    return _per_feature(values, ring_feature, ring_start, total, LINESTRING)


def encode_points(geoms: np.ndarray, rows: np.ndarray) -> Encoded:
    """Points/MultiPoints in tile units -> one MoveTo(n) per feature."""
    coords, cidx = shapely.get_coordinates(geoms, return_index=True)
    if len(coords) == 0:
        return _empty(POINT)
    q = np.rint(coords).astype(np.int64)
    first = _group_starts(cidx)
    firsts = np.flatnonzero(first)
    counts = np.diff(np.append(firsts, len(q)))
    prev = np.zeros_like(q)
    prev[1:] = q[:-1]
    prev[first] = 0
    deltas = _zigzag(q - prev)
    start = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(2 * counts + 1, out=start[1:])
    out = np.zeros(int(start[-1]), dtype=np.uint64)
    out[start[:-1]] = (_MOVE_TO | (counts << 3)).astype(np.uint64)
    local = np.arange(len(q)) - np.repeat(firsts, counts)
    pos = np.repeat(start[:-1], counts) + 1 + 2 * local
    out[pos] = deltas[:, 0]
    out[pos + 1] = deltas[:, 1]
    return Encoded(POINT, rows[cidx[firsts]], out, start)


def _empty(kind: int) -> Encoded:
    return Encoded(kind, np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(1, np.int64))


# ----- properties -> keys, values, tags ---------------------------------------------------------
def _varint_sizes(values: np.ndarray) -> np.ndarray:
    v = values.astype(np.uint64)
    n = np.ones(len(v), dtype=np.int64)
    for shift in (7, 14, 21, 28, 35, 42, 49, 56):
        n += v >= (np.uint64(1) << np.uint64(shift))
    return n


def _value_message(value: Any) -> bytes:
    """One Value message (string, double, int/uint or bool)."""
    if isinstance(value, bool | np.bool_):
        return b"\x38" + (b"\x01" if value else b"\x00")
    if isinstance(value, int | np.integer):
        v = int(value)
        if v >= 0:
            return b"\x28" + _varint(v)
        return b"\x30" + _varint((v << 1) ^ (v >> 63))
    if isinstance(value, float | np.floating):
        return b"\x19" + struct.pack("<d", float(value))
    text = str(value).encode("utf-8")
    return b"\x0a" + _varint(len(text)) + text


def _column_codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, bytes, int]:
    """Per-row value ids (-1 for null/NaN) and the layer's Value fields (field 4) of the
    distinct values, as bytes, with their count. Integers are encoded as one varint stream."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
    encoded = pc.dictionary_encode(column)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    codes = np.where(encoded.indices.is_null().to_numpy(zero_copy_only=False), -1, codes)
    dictionary = encoded.dictionary
    if pa.types.is_integer(dictionary.type) and len(dictionary):
        ints = dictionary.to_numpy().astype(np.int64)
        negative = ints < 0
        # field 4 (Value): 0x22, length, then uint_value (0x28 v) or sint_value (0x30 zigzag)
        payload = np.where(negative, _zigzag(ints), ints.astype(np.uint64))
        tokens = np.empty((len(ints), 4), dtype=np.uint64)
        tokens[:, 0] = 0x22
        tokens[:, 1] = (1 + _varint_sizes(payload)).astype(np.uint64)
        tokens[:, 2] = np.where(negative, 0x30, 0x28).astype(np.uint64)
        tokens[:, 3] = payload
        data, _ = varints(tokens.reshape(-1))
        return codes.astype(np.int64), data, len(ints)
    messages = [_field_bytes(4, _value_message(v)) for v in dictionary.to_pylist()]
    return codes.astype(np.int64), b"".join(messages), len(messages)


# ----- layer and tile -------------------------------------------------------------------------
def encode_layer(
    name: str,
    families: Sequence[Encoded],
    ids: np.ndarray,
    properties: dict[str, pa.ChunkedArray | pa.Array],
    extent: int = 4096,
) -> bytes:
    """One MVT layer message (without the enclosing Tile field), or b"" with no features.

    Every part of a feature message is a varint (field tags, lengths, ids, tag pairs,
    geometry commands), so all features are laid out as one integer stream with array
    arithmetic and varint-encoded in one pass.
    """
    families = [f for f in families if len(f.rows)]
    if not families:
        return b""
    keys = list(properties)
    rows = np.concatenate([f.rows for f in families])
    # values of the features drawn only, in drawing order
    taken = pa.array(rows)
    codes: list[np.ndarray] = []
    values: list[bytes] = []
    n_values = 0
    for key in keys:
        col_codes, fields, count = _column_codes(properties[key].take(taken))
        codes.append(np.where(col_codes >= 0, col_codes + n_values, -1))
        values.append(fields)
        n_values += count
    kinds = np.concatenate([np.full(len(f.rows), f.kind, dtype=np.uint64) for f in families])
    geom = np.concatenate([f.values for f in families])
    gcount = np.concatenate([np.diff(f.starts) for f in families])
    gbytes = np.add.reduceat(_varint_sizes(geom), np.concatenate([[0], np.cumsum(gcount)[:-1]]))
    n = len(rows)
    if keys:
        vid = np.stack(codes, axis=1)  # (n, keys)
        present = vid >= 0
        key_ids = np.broadcast_to(np.arange(len(keys)), vid.shape)
        pairs = np.stack([key_ids[present], vid[present]], axis=1).reshape(-1).astype(np.uint64)
        tcount = 2 * present.sum(axis=1)
        pair_sizes = _varint_sizes(pairs)
        tbytes = np.zeros(n, dtype=np.int64)
        nonzero = tcount > 0
        if nonzero.any():
            starts = np.concatenate([[0], np.cumsum(tcount)[:-1]])
            tbytes[nonzero] = np.add.reduceat(pair_sizes, starts[nonzero])
    else:
        pairs = np.zeros(0, dtype=np.uint64)
        tcount = np.zeros(n, dtype=np.int64)
        tbytes = np.zeros(n, dtype=np.int64)
    fid = ids[rows].astype(np.uint64)
    msg = (
        1 + _varint_sizes(fid)
        + 1 + _varint_sizes(tbytes) + tbytes
        + 2
        + 1 + _varint_sizes(gbytes) + gbytes
    )  # fmt: skip
    # token layout per feature: 0x12 msg 0x08 id 0x12 taglen tags.. 0x18 type 0x22 glen geom..
    per = 10 + tcount + gcount
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per, out=start[1:])
    tokens = np.zeros(int(start[-1]), dtype=np.uint64)
    s0 = start[:-1]
    tokens[s0] = 0x12
    tokens[s0 + 1] = msg.astype(np.uint64)
    tokens[s0 + 2] = 0x08
    tokens[s0 + 3] = fid
    tokens[s0 + 4] = 0x12
    tokens[s0 + 5] = tbytes.astype(np.uint64)
    if len(pairs):
        local = np.arange(len(pairs)) - np.repeat(np.cumsum(tcount) - tcount, tcount)
        tokens[np.repeat(s0 + 6, tcount) + local] = pairs
    after = s0 + 6 + tcount
    tokens[after] = 0x18
    tokens[after + 1] = kinds
    tokens[after + 2] = 0x22
    tokens[after + 3] = gbytes.astype(np.uint64)
    glocal = np.arange(len(geom)) - np.repeat(np.cumsum(gcount) - gcount, gcount)
    tokens[np.repeat(after + 4, gcount) + glocal] = geom
    features, _ = varints(tokens)
    parts = [b"\x78\x02", _field_bytes(1, name.encode("utf-8")), features]
    parts.extend(_field_bytes(3, k.encode("utf-8")) for k in keys)
    parts.extend(values)
    parts.append(b"\x28" + _varint(extent))
    return b"".join(parts)


def encode_tile(layers: Sequence[bytes]) -> bytes:
    """Wrap encoded layers into a Tile message (empty layers left out)."""
    return b"".join(_field_bytes(3, layer) for layer in layers if layer)
