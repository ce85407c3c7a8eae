"""Comparisons, overlay amounts and point counts as spatial SQL joins, run by a store that
can (``Store.sql()``: PostGIS) for ``landexplorer.analysis.compare``, ``overlay`` and
``counts``.

Same answers as the Python path: topological tests (intersects, within, contains) run in
the storage CRS, where a point stored on an edge is exactly on it; distances, areas and
lengths in the metric CRS the analysis chose (``ST_Transform`` to it, each feature once).
Candidate pairs come from the GiST indexes of the version tables; the exact test and the
measuring run on the transformed copies, joined back by ``fid``.

Identifiers come from the catalogue and go through ``quote_ident``; values are bound.
Anything unusual (a raster, an unknown column, a CRS without an EPSG code) returns None,
so the caller's Python path answers, with its own checks and messages.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from landexplorer.catalog import FID, BBox, LayerEntry, Query, SqlRunner, check_bbox
from landexplorer.catalog.pgquery import touches_box
from landexplorer.catalog.sql import GEOM_COLUMN
from landexplorer.errors import InputError


@dataclass(frozen=True)
class FeatureSummary:
    """What a bbox read of a layer would hold, worked out where the data is: how many
    features, their lon/lat bounds (None when none has a geometry) and their geometry type
    names as PostGIS spells them (``POLYGON``, ``MULTILINESTRING``, ...)."""

    count: int
    bounds: BBox | None
    geometry_types: frozenset[str]


@dataclass
class OverlayRows:
    """Overlay amounts measured in the database (see ``overlay_areas_sql``).

    ``per``: ``left_fid``, [``left_by``], [``class``], ``amount``, ``whole`` (the left
    feature's own area/length/count), one row per left feature and class with amount > 0;
    ``left_total``: the amount of every left feature read; ``group_totals``: ``left_by``
    and ``amount`` per non-null ``left_by`` value (when ``left_by`` was given)."""

    per: pa.Table
    left_total: float
    group_totals: pa.Table | None = None


#: Right polygons are cut into pieces of at most this many vertices before intersecting
#: (like the Python path's subdivision): each intersection then touches a small piece.
SUBDIVIDE_VERTICES = 256
#: Candidate pairs are found on boxes grown by this much (degrees, ~0.1 mm), so that a pair
#: meeting only after projection (nanometres apart in lon/lat) is not missed.
_SLACK_DEG = 1e-9
_KNOWN_TYPES = {
    "POINT",
    "MULTIPOINT",
    "LINESTRING",
    "MULTILINESTRING",
    "POLYGON",
    "MULTIPOLYGON",
}
_TOPOLOGY = {"intersects": "ST_Intersects", "within": "ST_Within", "contains": "ST_Contains"}
#: Bounds as plain numbers: comparing them is far cheaper than ``&&`` on geometries
_BOX = "ST_XMin(g) AS x0, ST_YMin(g) AS y0, ST_XMax(g) AS x1, ST_YMax(g) AS y1"
_MEASURE = {"polygon": "ST_Area({})", "line": "ST_Length({})", "point": "1.0::float8"}


def _srid(sql: SqlRunner, crs: str) -> int | None:
    """The SRID for ``EPSG:<code>`` when PostGIS knows it, else None (Python measures)."""
    m = re.fullmatch(r"EPSG:(\d+)", crs.strip(), flags=re.IGNORECASE)
    if m is None:
        return None
    code = int(m.group(1))
    rows = sql.fetch("SELECT 1 FROM spatial_ref_sys WHERE srid = %s", (code,))
    return code if rows else None


def _box(bbox: BBox | None) -> BBox | None:
    """A bbox checked and clamped to the world, as the analysis reads do."""
    if bbox is None:
        return None
    x0, y0, x1, y1 = check_bbox(bbox)
    return (max(x0, -180.0), max(y0, -90.0), min(x1, 180.0), min(y1, 90.0))


def _covers(outer: BBox, inner: Any) -> bool:
    return bool(
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
    )


def _where_box(alias: str, bbox: BBox | None) -> tuple[str, list[Any]]:
    if bbox is None:
        return "", []
    clause, params = touches_box(f"{alias}.{GEOM_COLUMN}", bbox)
    return clause, list(params)


def _vector_or_none(sql: SqlRunner, layer_id: str, columns: list[str]) -> LayerEntry | None:
    entry = sql.entry(layer_id)
    if entry.data_type != "vector":
        return None
    names = entry.column_names()
    if any(c not in names for c in columns):
        return None
    return entry


def summarise_features(
    sql: SqlRunner, layer_id: str, bbox: BBox | None = None
) -> FeatureSummary | None:
    """Count, lon/lat bounds and geometry types of a layer's features meeting ``bbox``."""
    entry = _vector_or_none(sql, layer_id, [])
    if entry is None:
        return None
    box = _box(bbox)
    kind = entry.geometry_type.upper()
    whole = box is None or (entry.bbox is not None and _covers(box, entry.bbox))
    if whole and kind in _KNOWN_TYPES and (entry.bbox or not entry.feature_count):
        # the whole layer: ingest worked out its count, bounds and (one) geometry type
        # from the stored features, so no scan of a million rows is needed
        bounds = tuple(float(v) for v in entry.bbox) if entry.bbox else None
        return FeatureSummary(entry.feature_count, bounds, frozenset({kind}))  # type: ignore[arg-type]

    def run(entry: LayerEntry) -> FeatureSummary:
        where, params = _where_box("t", box)
        # bounds from each geometry's exact extent (ST_Extent would use the cached
        # float4 boxes, a little larger)
        text = (
            f"SELECT count(*), min(ST_XMin(t.{GEOM_COLUMN})), min(ST_YMin(t.{GEOM_COLUMN})), "
            f"max(ST_XMax(t.{GEOM_COLUMN})), max(ST_YMax(t.{GEOM_COLUMN})), "
            f"array_agg(DISTINCT GeometryType(t.{GEOM_COLUMN})) FILTER "
            f"(WHERE t.{GEOM_COLUMN} IS NOT NULL) "
            f"FROM {sql.table(entry)} AS t" + (f" WHERE {where}" if where else "")
        )
        n, x0, y0, x1, y1, types = sql.fetch(text, params)[0]
        bounds = None if x0 is None else (float(x0), float(y0), float(x1), float(y1))
        return FeatureSummary(int(n), bounds, frozenset(types or ()))

    return sql.read(layer_id, run)


def overlay_areas_sql(
    sql: SqlRunner,
    left_id: str,
    right_id: str,
    *,
    crs: str,
    kind: str,
    by: str | None = None,
    left_by: str | None = None,
    bbox: BBox | None = None,
    right_bbox: BBox | None = None,
    dissolve: bool = True,
) -> OverlayRows | None:
    """Overlay amounts per left feature and right class in one SQL statement.

    Right polygons are transformed once and cut into small pieces (``ST_Subdivide``); each
    candidate pair from the GiST indexes is intersected in the metric CRS (no intersection
    where the piece covers the left feature). With ``dissolve``, the pieces of one left
    feature in one class coming from more than one right polygon are merged
    (``ST_Union``) before measuring, so overlapping polygons of a class count once; a
    point counts once per class however many polygons hold it.
    """
    if kind not in _MEASURE:
        return None
    left = _vector_or_none(sql, left_id, [left_by] if left_by else [])
    right = _vector_or_none(sql, right_id, [by] if by else [])
    srid = _srid(sql, crs)
    if left is None or right is None or srid is None:
        return None
    lb_expr, lb_type = sql.column(left, left_by) if left_by else ("NULL::text", pa.string())
    cls_expr, cls_type = sql.column(right, by) if by else ("NULL::text", pa.string())
    box, rbox = _box(bbox), _box(right_bbox)
    measure = _MEASURE[kind]
    L, R, g = sql.table(left), sql.table(right), GEOM_COLUMN

    lwhere, lparams = _where_box("t", box)
    cwhere, cparams = _where_box("lt", box)
    rwhere, rparams = _where_box("t", rbox)
    piece = (
        "l.g"
        if kind == "point"
        else "CASE WHEN ST_Covers(r.g, l.g) THEN l.g ELSE ST_Intersection(l.g, r.g) END"
    )
    head = (
        f"WITH l AS MATERIALIZED (SELECT t.{FID} AS fid, {lb_expr} AS lb, "
        f"ST_Transform(t.{g}, %s) AS g FROM {L} AS t{_and_where(lwhere)}), "
        f"lb AS MATERIALIZED (SELECT l.*, {_BOX} FROM l), "
        f"rs AS (SELECT t.{FID} AS fid, {cls_expr} AS cls, "
        f"ST_Subdivide(ST_Transform(t.{g}, %s), {SUBDIVIDE_VERTICES}) AS g "
        f"FROM {R} AS t{_and_where(rwhere)}), "
        f"r AS MATERIALIZED (SELECT rs.*, {_BOX} FROM rs), "
        f"c AS (SELECT lt.{FID} AS lf, rt.{FID} AS rf FROM {L} AS lt JOIN {R} AS rt "
        f"ON rt.{g} && ST_Expand(lt.{g}, {_SLACK_DEG}){_and_where(cwhere)}), "
        f"p AS MATERIALIZED (SELECT l.fid, l.lb, r.cls, r.fid AS rf, {piece} AS piece"
        + (", ST_Intersection(r.g, ST_Envelope(l.g)) AS zone" if kind == "line" else "")
        + " "
        "FROM c JOIN lb AS l ON l.fid = c.lf JOIN r ON r.fid = c.rf "
        # the boxes first: a big polygon's many pieces meet every pair of that polygon.
        # Areas and lengths need no ST_Intersects (about half the time): a pair that does
        # not meet measures 0 and is dropped with the other zero amounts
        "WHERE l.x0 <= r.x1 AND r.x0 <= l.x1 AND l.y0 <= r.y1 AND r.y0 <= l.y1"
        + (" AND ST_Intersects(l.g, r.g))" if kind == "point" else ")")
    )
    params: list[Any] = [srid, *lparams, srid, *rparams, *cparams]
    if kind == "point":
        amounts = "SELECT DISTINCT fid, lb, cls, 1.0 AS amount FROM p"
    elif not dissolve:
        amounts = f"SELECT fid, lb, cls, {measure.format('piece')} AS amount FROM p"
    else:
        # pieces from one right polygon tile it and never overlap: only pieces of two or
        # more polygons of a class are merged, the rest are summed as they are
        head += (
            ", q AS MATERIALIZED (SELECT p.*, min(rf) OVER w <> max(rf) OVER w AS several "
            "FROM p WINDOW w AS (PARTITION BY fid, cls))"
        )
        amounts = (
            f"SELECT fid, lb, cls, {measure.format('piece')} AS amount FROM q WHERE NOT several "
        )
        if kind == "polygon":
            amounts += (
                f"UNION ALL SELECT fid, lb, cls, {measure.format('ST_Union(piece)')} FROM q "
                "WHERE several GROUP BY fid, lb, cls"
            )
        else:
            # a line is cut by the merged polygons (near it), not by merging its pieces:
            # two pieces along one edge are not exactly the same line, so would not merge
            amounts += (
                "UNION ALL SELECT z.fid, z.lb, z.cls, ST_Length(ST_Intersection(l.g, z.zone)) "
                "FROM (SELECT fid, lb, cls, ST_Union(zone) AS zone FROM q WHERE several "
                "GROUP BY fid, lb, cls) AS z JOIN l ON l.fid = z.fid"
            )
    query = (
        f"{head}, a AS ({amounts}) "
        f"SELECT 0 AS tag, a.fid, a.lb, a.cls, sum(a.amount), min({measure.format('l.g')}) "
        "FROM a JOIN l ON l.fid = a.fid GROUP BY a.fid, a.lb, a.cls HAVING sum(a.amount) > 0 "
        f"UNION ALL SELECT 1, NULL, lb, NULL, sum({measure.format('g')}), NULL FROM l "
        "WHERE lb IS NOT NULL GROUP BY lb "
        f"UNION ALL SELECT 2, NULL, NULL, NULL, coalesce(sum({measure.format('g')}), 0), NULL "
        "FROM l ORDER BY 1, 2, 4"
    )

    def run(_entry: LayerEntry) -> OverlayRows:
        rows = sql.fetch(query, params, binary=True)
        per = [r for r in rows if r[0] == 0]
        groups = [r for r in rows if r[0] == 1]
        total = next(float(r[4]) for r in rows if r[0] == 2)
        cols: dict[str, pa.Array] = {"left_fid": pa.array([r[1] for r in per], pa.int64())}
        if left_by:
            cols["left_by"] = pa.array([r[2] for r in per], lb_type)
        if by:
            cols["class"] = pa.array([r[3] for r in per], cls_type)
        cols["amount"] = pa.array([float(r[4]) for r in per], pa.float64())
        cols["whole"] = pa.array([float(r[5]) for r in per], pa.float64())
        group_totals = None
        if left_by:
            group_totals = pa.table(
                {
                    "left_by": pa.array([r[2] for r in groups], lb_type),
                    "amount": pa.array([float(r[4]) for r in groups], pa.float64()),
                }
            )
        sql.pushdowns["overlay_areas"] += 1
        return OverlayRows(pa.table(cols), total, group_totals)

    return sql.read(left_id, run)


def compare_sql(
    sql: SqlRunner,
    left_id: str,
    right_id: str,
    *,
    crs: str,
    predicate: str,
    distance: float | None = None,
    bbox: BBox | None = None,
    right_bbox: BBox | None = None,
    overlap: bool = False,
) -> pa.Table | None:
    """Pairs of features meeting ``predicate`` as one indexed join, sorted by left then
    right fid: ``left_fid``, ``right_fid``, and ``distance_m`` (within-distance) or
    ``overlap`` (area for polygons, length for lines, of each pair's intersection in the
    metric CRS; null where the right side is not a polygon)."""
    left = _vector_or_none(sql, left_id, [])
    right = _vector_or_none(sql, right_id, [])
    srid = _srid(sql, crs)
    if left is None or right is None or srid is None:
        return None
    if predicate not in (*_TOPOLOGY, "within-distance"):
        return None
    box, rbox = _box(bbox), _box(right_bbox)
    L, R, g = sql.table(left), sql.table(right), GEOM_COLUMN
    where, params = _where_box("lt", box)
    rwhere, rparams = _where_box("rt", rbox)
    conds = [c for c in (where, rwhere) if c]
    params = [*params, *rparams]
    if predicate == "within-distance":
        if distance is None:
            return None
        dx, dy = _degrees_for(float(distance), box, left.bbox)
        on = f"rt.{g} && ST_Expand(lt.{g}, %s, %s)"
        params = [dx, dy, *params]
    else:
        on = f"{_TOPOLOGY[predicate]}(lt.{g}, rt.{g})"
    pairs = f"SELECT lt.{FID} AS lf, rt.{FID} AS rf FROM {L} AS lt JOIN {R} AS rt ON {on}" + (
        " WHERE " + " AND ".join(conds) if conds else ""
    )
    metric = predicate == "within-distance" or overlap
    if not metric:
        # sorted outside the join: with ORDER BY on the join itself PostgreSQL walks the
        # left table in fid order and probes the right index once per row (10x slower)
        text = f"WITH p AS MATERIALIZED ({pairs}) SELECT lf, rf FROM p ORDER BY 1, 2"
        names = ["left_fid", "right_fid"]
    else:
        head = (
            f"WITH p AS MATERIALIZED ({pairs}), "
            f"lm AS MATERIALIZED (SELECT t.{FID} AS fid, ST_Transform(t.{g}, %s) AS g "
            f"FROM {L} AS t WHERE t.{FID} IN (SELECT lf FROM p)), "
            f"rm AS MATERIALIZED (SELECT t.{FID} AS fid, ST_Transform(t.{g}, %s) AS g "
            f"FROM {R} AS t WHERE t.{FID} IN (SELECT rf FROM p)) "
        )
        params = [*params, srid, srid]
        body = "FROM p JOIN lm ON lm.fid = p.lf JOIN rm ON rm.fid = p.rf"
        if predicate == "within-distance":
            text = (
                f"{head}SELECT p.lf, p.rf, ST_Distance(lm.g, rm.g) {body} "
                "WHERE ST_DWithin(lm.g, rm.g, %s) ORDER BY 1, 2"
            )
            params.append(float(distance or 0.0))
            names = ["left_fid", "right_fid", "distance_m"]
        else:
            cut = "ST_Intersection(lm.g, rm.g)"
            text = (
                f"{head}SELECT p.lf, p.rf, CASE WHEN ST_Dimension(rm.g) = 2 THEN "
                f"CASE ST_Dimension(lm.g) WHEN 2 THEN ST_Area({cut}) "
                f"WHEN 1 THEN ST_Length({cut}) END END {body} ORDER BY 1, 2"
            )
            names = ["left_fid", "right_fid", "overlap"]

    def run(_entry: LayerEntry) -> pa.Table:
        rows = sql.fetch(text, params, binary=True)
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
        arrays = [pa.array(columns[0], pa.int64()), pa.array(columns[1], pa.int64())]
        arrays += [pa.array(c, pa.float64()) for c in columns[2:]]
        sql.pushdowns["compare"] += 1
        return pa.table(dict(zip(names, arrays, strict=True)))

    return sql.read(left_id, run)


def count_points_in_polygons(
    sql: SqlRunner,
    polygons_id: str,
    points_id: str,
    *,
    predicate: str = "intersects",
    bbox: BBox | None = None,
) -> pa.Table | None:
    """Points per polygon as one indexed join in PostGIS: the polygons that hold points
    are counted in a GROUP BY join that PostgreSQL can run in parallel, and the rest are
    filled in with zeros (faster than a count per polygon)."""
    test = {"intersects": "ST_Intersects", "contains": "ST_Contains"}.get(predicate)
    if test is None:
        raise InputError("Points can be counted with 'intersects' or 'contains'.")
    points = sql.vector(points_id)
    if "point" not in points.geometry_type.lower():
        raise InputError("The second layer must hold points to count.")
    if "polygon" not in sql.vector(polygons_id).geometry_type.lower():
        raise InputError("The first layer must hold polygons to count points in.")

    def run(polys: LayerEntry) -> pa.Table:
        where, params = sql.where(polys, Query(bbox=bbox), alias="p")
        inner, inner_params = sql.where(polys, Query(bbox=bbox), alias="q")
        table, pts = sql.table(polys), sql.table(points)
        text = (
            f"SELECT p.{FID}, coalesce(c.n, 0) FROM {table} AS p LEFT JOIN ("
            f"SELECT q.{FID}, count(*) AS n FROM {table} AS q JOIN {pts} AS t "
            f"ON {test}(q.{GEOM_COLUMN}, t.{GEOM_COLUMN}){inner} "
            f"GROUP BY q.{FID}) AS c ON c.{FID} = p.{FID}{where} ORDER BY p.{FID}"
        )
        params = [*inner_params, *params]
        rows = sql.fetch(text, params, binary=True)
        fids, counts = zip(*rows, strict=True) if rows else ((), ())
        return pa.table({FID: pa.array(fids, pa.int64()), "count": pa.array(counts, pa.int64())})

    return sql.read(polygons_id, run)


def _and_where(clause: str) -> str:
    return f" WHERE {clause}" if clause else ""


def _degrees_for(metres: float, box: BBox | None, layer_bbox: Any) -> tuple[float, float]:
    """Degrees of lon and lat that hold at least ``metres`` anywhere in the data (the same
    generous margins as the Python path's right-hand read box)."""
    # the layer's own bbox holds every left feature, also those only partly in ``box``
    extent = tuple(layer_bbox) if layer_bbox else (box or (-180.0, -89.0, 180.0, 89.0))
    dlat = metres / 110_574.0 * 1.01 + 1e-9
    lat = min(89.0, max(abs(extent[1]), abs(extent[3])) + dlat)
    dlon = metres / (111_320.0 * math.cos(math.radians(lat))) * 1.01 + 1e-9
    return dlon, dlat
