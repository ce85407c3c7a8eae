"""CQL2 (text and JSON) to the store's safe ``Filter`` tree.

Parsing is done by the ``cql2`` package (a real CQL2 parser); this module walks the
parsed JSON tree and accepts only what it knows: comparisons, LIKE, IN, BETWEEN,
IS NULL, AND/OR/NOT and S_INTERSECTS with a literal geometry. Property names must be
queryables of the layer (its catalogued columns); values stay values and are bound as
SQL parameters by the store. Anything else is refused with a plain-words 400.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import shapely

from landexplorer.catalog import GEOMETRY, Filter
from landexplorer.errors import InputError

#: Default limits (the API passes the ones in ``Settings``): a filter is sized on its raw
#: text before the parser sees it, because the parser recurses on nesting and a few
#: thousand brackets or NOTs are enough to exhaust its stack and kill the process.
MAX_FILTER_CHARS = 20_000
MAX_FILTER_DEPTH = 20
MAX_FILTER_NODES = 1_000
MAX_FILTER_VERTICES = 100_000

_COMPARE = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SWAP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "<>": "<>"}
_GEOM_PROPS = {GEOMETRY, "geom", "geometry"}
_SPATIAL = {"s_intersects"}


def parse_filter(
    text: str,
    lang: str | None,
    columns: Sequence[str],
    to_crs84: Callable[[Any], Any] | None = None,
    *,
    max_chars: int = MAX_FILTER_CHARS,
    max_depth: int = MAX_FILTER_DEPTH,
    max_nodes: int = MAX_FILTER_NODES,
    max_vertices: int = MAX_FILTER_VERTICES,
) -> Filter:
    """Parse a CQL2 filter (``lang`` 'cql2-text' or 'cql2-json') into one safe ``Filter``.

    ``columns`` are the layer's queryable columns; ``to_crs84`` reprojects a literal
    geometry given in ``filter-crs`` (default: geometries are CRS84 already). The text is
    sized first (characters, nesting, conditions) and refused in plain words past the
    limits, before the parser sees it.
    """
    import cql2

    if len(text) > max_chars:
        raise InputError(f"The filter is too long (more than {max_chars:,} characters).")
    lang = (lang or "cql2-text").lower()
    if lang not in ("cql2-text", "cql2-json"):
        raise InputError("filter-lang must be 'cql2-text' or 'cql2-json'.")
    depth, nodes = _measure_json(text) if lang == "cql2-json" else _measure_text(text)
    if depth > max_depth:
        raise InputError(
            f"The filter is nested too deeply (more than {max_depth} levels of brackets or "
            "NOTs). Write it with fewer levels, for example a = 1 AND b = 2 AND c = 3."
        )
    if nodes > max_nodes:
        raise InputError(
            f"The filter has too many conditions and values (more than {max_nodes:,}). "
            "Split it into several requests, or use a bbox to narrow the features first."
        )
    try:
        if lang == "cql2-json":
            tree = cql2.parse_json(text).to_json()
        else:
            tree = cql2.parse_text(text).to_json()
    except Exception as exc:  # the parser's own errors are not domain errors
        raise InputError(
            "The filter could not be read as CQL2. Check quotes around text values and the "
            "spelling of operators (for example: prob_4band = 'High' AND area > 100).",
            detail=str(exc),
        ) from exc
    return _Walker(columns, to_crs84, max_depth, max_vertices).node(tree, 0)


_GEOMETRY_WORDS = {
    "POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING", "MULTIPOLYGON",
    "GEOMETRYCOLLECTION", "BBOX", "ENVELOPE",
}  # fmt: skip


def _measure_text(text: str) -> tuple[int, int]:
    """Nesting depth and node count of CQL2 text, read without parsing it.

    Depth counts open brackets plus a run of NOTs (each nests one level in the parser);
    nodes are the words, operators, text literals and numbers outside geometry literals
    (a polygon's coordinates do not count: their size is checked as vertices).
    """
    depth = best = nodes = 0
    nots = 0  # NOTs in a row, each one more level
    geometry_depth: int | None = None  # bracket depth where a geometry literal began
    pending_geometry = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            end = i + 1
            while end < n:
                if text[end] == c:
                    if end + 1 < n and text[end + 1] == c:  # '' is a quote inside text
                        end += 2
                        continue
                    break
                end += 1
            nodes += 1
            nots = 0
            i = end + 1
            continue
        if c == "(":
            depth += 1
            best = max(best, depth + nots)
            if pending_geometry:
                geometry_depth, pending_geometry = depth, False
        elif c == ")":
            if geometry_depth is not None and depth == geometry_depth:
                geometry_depth = None
            depth = max(0, depth - 1)
            nots = 0
        elif c.isalpha() or c == "_":
            end = i
            while end < n and (text[end].isalnum() or text[end] in "_:."):
                end += 1
            word = text[i:end].upper()
            if geometry_depth is None:
                nodes += 1
                if word == "NOT":
                    nots += 1
                    best = max(best, depth + nots)
                else:
                    nots = 0
                pending_geometry = word in _GEOMETRY_WORDS
            i = end
            continue
        elif c.isdigit() or c in "+-.":
            end = i + 1
            while end < n and (text[end].isalnum() or text[end] in ".+-"):
                end += 1
            if geometry_depth is None:
                nodes += 1
            i = end
            continue
        elif c in "=<>!":
            nodes += 1
            nots = 0
        i += 1
    return best, nodes


def _measure_json(text: str) -> tuple[int, int]:
    """Nesting depth (in CQL2 levels) and node count of CQL2 JSON, read without parsing.

    Each CQL2 level is an object plus its ``args`` array, so the JSON depth is halved; a
    geometry's coordinate arrays add up to four more levels, allowed on top. Nodes are
    the ``"op"`` keys, properties and other strings; numbers inside geometries do not count.
    """
    depth = best = nodes = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            nodes += 1
            i = end + 1
            continue
        if c in "[{":
            depth += 1
            best = max(best, depth)
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    return max(0, best - 5) // 2 + 1, nodes // 2


class _Walker:
    def __init__(
        self,
        columns: Sequence[str],
        to_crs84: Callable[[Any], Any] | None,
        max_depth: int,
        max_vertices: int,
    ) -> None:
        self.columns = set(columns)
        self.to_crs84 = to_crs84
        self.max_depth = max_depth
        self.max_vertices = max_vertices

    def node(self, tree: Any, depth: int) -> Filter:
        if depth > self.max_depth:
            raise InputError("The filter is nested too deeply.")
        if isinstance(tree, bool):
            return Filter("", "and", ()) if tree else Filter("", "not", (Filter("", "and", ()),))
        if not isinstance(tree, dict) or "op" not in tree:
            raise InputError("The filter must be a condition, such as name = 'Oak'.")
        op = str(tree["op"]).lower()
        args = tree.get("args") or []
        if not isinstance(args, list):
            raise InputError("The filter is not well formed.")
        if op in ("and", "or"):
            return Filter("", op, tuple(self.node(a, depth + 1) for a in args))
        if op == "not":
            if len(args) != 1:
                raise InputError("NOT takes exactly one condition.")
            return Filter("", "not", (self.node(args[0], depth + 1),))
        if op in _COMPARE:
            return self.compare(_COMPARE[op], args)
        if op == "like":
            prop, value = self.prop_value(args, "LIKE")
            if not isinstance(value, str):
                raise InputError("LIKE compares text with a pattern in quotes, e.g. 'Oak%'.")
            return Filter(prop, "like", value)
        if op == "in":
            if len(args) != 2 or not isinstance(args[1], list):
                raise InputError("IN needs a property and a list of values.")
            prop = self.prop(args[0])
            return Filter(prop, "in", tuple(self.literal(v) for v in args[1]))
        if op == "between":
            if len(args) != 3:
                raise InputError("BETWEEN needs a property and two values.")
            prop = self.prop(args[0])
            return Filter(prop, "between", (self.literal(args[1]), self.literal(args[2])))
        if op == "isnull":
            if len(args) != 1:
                raise InputError("IS NULL takes one property.")
            return Filter(self.prop(args[0]), "isnull")
        if op in _SPATIAL:
            return self.spatial(args)
        raise InputError(
            f"The filter uses '{tree['op']}', which this server does not support. Supported: "
            "comparisons, LIKE, IN, BETWEEN, IS NULL, AND, OR, NOT and S_INTERSECTS."
        )

    def prop(self, arg: Any) -> str:
        if not isinstance(arg, dict) or "property" not in arg:
            raise InputError("A condition must start with a property name.")
        name = str(arg["property"])
        if name not in self.columns:
            raise InputError(
                f"'{name}' is not a queryable property of this collection. "
                f"Queryables: {', '.join(sorted(self.columns)) or 'none'}."
            )
        return name

    def literal(self, value: Any) -> Any:
        if isinstance(value, bool | int | float | str) or value is None:
            return value
        if isinstance(value, dict) and "date" in value:
            return str(value["date"])
        if isinstance(value, dict) and "timestamp" in value:
            return str(value["timestamp"])
        raise InputError("Only numbers, text, true/false and dates can be compared.")

    def prop_value(self, args: list[Any], what: str) -> tuple[str, Any]:
        if len(args) != 2:
            raise InputError(f"{what} compares one property with one value.")
        return self.prop(args[0]), self.literal(args[1])

    def compare(self, op: str, args: list[Any]) -> Filter:
        if len(args) == 2 and isinstance(args[1], dict) and "property" in args[1]:
            if isinstance(args[0], dict) and "property" in args[0]:
                raise InputError("Comparing two properties is not supported; compare with a value.")
            args, op = [args[1], args[0]], _SWAP[op]  # 5 < x  ->  x > 5
        prop, value = self.prop_value(args, "A comparison")
        if value is None:
            raise InputError("Compare with IS NULL to find missing values.")
        return Filter(prop, op, value)

    def spatial(self, args: list[Any]) -> Filter:
        if len(args) != 2:
            raise InputError("S_INTERSECTS needs the geometry property and a geometry.")
        first, second = args
        if isinstance(second, dict) and second.get("property") in _GEOM_PROPS:
            first, second = second, first
        if not (isinstance(first, dict) and first.get("property") in _GEOM_PROPS):
            raise InputError("S_INTERSECTS compares the 'geometry' property with a geometry.")
        geom = _geometry(second)
        if shapely.get_num_coordinates(geom) > self.max_vertices:
            raise InputError(
                f"The geometry in the filter has more than {self.max_vertices:,} points. "
                "Simplify it, or use a bbox instead."
            )
        if self.to_crs84 is not None:
            geom = self.to_crs84(geom)
        return Filter(GEOMETRY, "intersects", shapely.to_wkb(geom))


def _geometry(value: Any) -> Any:
    import orjson

    if isinstance(value, dict) and "bbox" in value:
        box = value["bbox"]
        if len(box) == 6:
            box = [box[0], box[1], box[3], box[4]]
        if len(box) != 4:
            raise InputError("An envelope needs four numbers: west, south, east, north.")
        x0, y0, x1, y1 = (float(v) for v in box)
        return shapely.box(x0, y0, x1, y1)
    if not isinstance(value, dict) or "type" not in value:
        raise InputError("S_INTERSECTS needs a literal geometry, e.g. POINT(-2.3 53.4).")
    try:
        geom = shapely.from_geojson(orjson.dumps(value))
    except Exception as exc:
        raise InputError("The geometry in the filter is not valid.", detail=str(exc)) from exc
    if geom.is_empty or not shapely.is_valid_input(geom):
        raise InputError("The geometry in the filter is empty or not valid.")
    return geom
