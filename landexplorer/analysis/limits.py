"""How much work one analysis call may do, and sizing the work before it runs.

A public server cannot let one request grow without bound, so the API hands the analysis
functions a ``Limits`` built from its settings: request geometries are counted on the raw
GeoJSON before shapely builds anything, and comparisons, zonal statistics and area
reports estimate their work (pairs, raster cells, features) cheaply first. Over a limit
the call is refused in plain words that say how to ask for less, or to run the same thing
with the ``landexplorer`` command line. The CLI and notebooks pass no limits: a person at
their own computer decides for themselves how much to wait for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from landexplorer.errors import InputError, TooLarge, WorkTooLarge

if TYPE_CHECKING:
    from landexplorer.settings import Settings


@dataclass(frozen=True)
class Limits:
    """The most work one call may do; ``None`` for a field means no limit."""

    #: vertices of a request geometry (GeoJSON given by the caller)
    geojson_vertices: int | None = None
    #: polygons, lines, rings (and features) of a request geometry
    geojson_parts: int | None = None
    #: feature pairs a comparison may produce
    compare_pairs: int | None = None
    #: raster cells a zonal query (or the raster part of a report) may read
    zonal_cells: int | None = None
    #: features an area report may measure, all layers together
    report_features: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits a server runs with (see ``Settings``)."""
        return cls(
            geojson_vertices=settings.max_geojson_vertices,
            geojson_parts=settings.max_geojson_parts,
            compare_pairs=settings.max_compare_pairs,
            zonal_cells=settings.max_zonal_cells,
            report_features=settings.max_report_features,
        )


#: No limits at all (the command line, notebooks).
UNLIMITED = Limits()


def limits_or_none(limits: Limits | None) -> Limits:
    return UNLIMITED if limits is None else limits


def n(value: float) -> str:
    """A count as people write it: 2,000,000."""
    return f"{round(value):,}"


# ---- request geometries ----------------------------------------------------------------

#: How deep each GeoJSON geometry type nests its coordinates (0: one position).
_NESTING = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}
#: JSON arrays (tuples too: ``shapely.geometry.mapping`` gives them)
_LIST = (list, tuple)
#: GeometryCollections inside GeometryCollections: RFC 7946 says not to; a few are allowed.
_MAX_COLLECTION_DEPTH = 4


@dataclass
class GeoJSONSize:
    """What a GeoJSON object holds: vertices (positions) and parts (polygons, rings,
    lines, features and collection members)."""

    vertices: int = 0
    parts: int = 0


def check_geojson(obj: Any, limits: Limits | None = None, *, what: str = "The area") -> GeoJSONSize:
    """Count and check a GeoJSON geometry, Feature or FeatureCollection (a parsed JSON
    value) before anything is built from it.

    Too many vertices or parts for ``limits``: ``TooLarge`` (413). A malformed structure,
    a coordinate that is not a finite number, or one outside longitude -180..180 /
    latitude -90..90: ``InputError`` (400). Counting looks only at list lengths and stops
    as soon as a limit is passed, so an oversized body costs next to nothing; the
    coordinates are checked one by one only once the counts are known to be acceptable.
    """
    lim = limits_or_none(limits)
    size = GeoJSONSize()
    arrays = _coordinate_arrays(obj, what, size, lim)
    check_size(size, lim, what)
    for coords, depth in arrays:
        _check_positions(coords, depth, what)
    return size


def _coordinate_arrays(
    obj: Any, what: str, size: GeoJSONSize, lim: Limits
) -> list[tuple[Any, int]]:
    """The coordinate arrays of every geometry in ``obj`` (with their nesting), counting
    vertices and parts into ``size`` from list lengths only."""
    out: list[tuple[Any, int]] = []
    # (object, what it may be: "any" at the top, "feature" in a collection, "geometry"
    # under a feature; how many geometry collections it is inside)
    todo: list[tuple[Any, str, int]] = [(obj, "any", 0)]
    while todo:
        item, role, collections = todo.pop()
        if not isinstance(item, Mapping):
            raise InputError(f"{what} is not GeoJSON: expected an object with a 'type'.")
        kind = item.get("type")
        if role == "feature" and kind != "Feature":
            raise InputError(f"{what} is a FeatureCollection holding something not a Feature.")
        if kind == "FeatureCollection" and role == "any":
            features = item.get("features")
            if not isinstance(features, _LIST):
                raise InputError(f"{what} is a FeatureCollection without a list of features.")
            size.parts += len(features)
            check_size(size, lim, what)
            todo.extend((f, "feature", 0) for f in features)
        elif kind == "Feature" and role in ("any", "feature"):
            geometry = item.get("geometry")
            if geometry is not None:
                todo.append((geometry, "geometry", 0))
        elif kind == "GeometryCollection":
            if collections >= _MAX_COLLECTION_DEPTH:
                raise InputError(f"{what} nests geometry collections too deeply.")
            members = item.get("geometries")
            if not isinstance(members, _LIST):
                raise InputError(f"{what} is a GeometryCollection without a list of geometries.")
            size.parts += len(members)
            check_size(size, lim, what)
            todo.extend((g, "geometry", collections + 1) for g in members)
        elif isinstance(kind, str) and kind in _NESTING:
            coords = item.get("coordinates")
            nesting = _NESTING[kind]
            _count(coords, nesting, kind, what, size, lim)
            out.append((coords, nesting))
        else:
            raise InputError(
                f"{what} is not GeoJSON that can be read: "
                f"'{str(kind)[:40]}' is not a GeoJSON type here."
            )
    return out


def _count(coords: Any, nesting: int, kind: str, what: str, size: GeoJSONSize, lim: Limits) -> None:
    """Add the vertices and parts of one geometry's coordinates (list lengths only),
    stopping as soon as a limit is passed."""
    if nesting == 0:
        if not isinstance(coords, _LIST):
            raise InputError(f"{what} has a {kind} whose coordinates are not a position.")
        size.vertices += 1
        check_size(size, lim, what)
        return
    if not isinstance(coords, _LIST):
        raise InputError(f"{what} has a {kind} whose coordinates are not a list.")
    if nesting == 1:
        size.vertices += len(coords)
        size.parts += 1 if kind == "LineString" else 0
        check_size(size, lim, what)
        if kind == "LineString" and len(coords) < 2:
            raise InputError(f"{what} has a line with fewer than two points.")
        return
    polygons = coords if nesting == 3 else [coords]
    size.parts += len(polygons) if kind != "MultiLineString" else 0
    for rings in polygons:
        if not isinstance(rings, _LIST):
            raise InputError(f"{what} has a {kind} whose coordinates are not nested lists.")
        size.parts += len(rings)
        for ring in rings:
            if not isinstance(ring, _LIST):
                raise InputError(f"{what} has a {kind} whose coordinates are not nested lists.")
            size.vertices += len(ring)
            if kind != "MultiLineString" and len(ring) < 4:
                raise InputError(
                    f"{what} has a polygon ring of {len(ring)} points; a ring needs at least "
                    "four (the first repeated at the end)."
                )
        check_size(size, lim, what)


def check_size(size: GeoJSONSize, lim: Limits, what: str = "The area") -> None:
    """Too many vertices or parts for ``lim``: ``TooLarge`` in plain words."""
    if lim.geojson_vertices is not None and size.vertices > lim.geojson_vertices:
        raise TooLarge(
            f"{what} has more than {n(lim.geojson_vertices)} points in its outlines, more "
            "than this server reads in one request. Simplify it or draw a smaller area "
            "(or run it with the landexplorer command line, which has no such limit).",
            detail=f"vertices counted so far: {size.vertices}",
        )
    if lim.geojson_parts is not None and size.parts > lim.geojson_parts:
        raise TooLarge(
            f"{what} is made of more than {n(lim.geojson_parts)} pieces (polygons, rings "
            "or features), more than this server reads in one request. Merge the pieces "
            "into fewer shapes or draw a simpler area (or run it with the landexplorer "
            "command line, which has no such limit).",
            detail=f"parts counted so far: {size.parts}",
        )


def _check_positions(coords: Any, nesting: int, what: str) -> None:
    """Every position is two or three finite numbers, lon/lat in range."""
    stack: list[tuple[Any, int]] = [(coords, nesting)]
    while stack:
        item, level = stack.pop()
        if level == 0:
            _check_position(item, what)
        elif level == 1:
            if not isinstance(item, _LIST):
                raise InputError(f"{what} has coordinates that are not nested lists.")
            for position in item:
                _check_position(position, what)
        else:
            if not isinstance(item, _LIST):
                raise InputError(f"{what} has coordinates that are not nested lists.")
            stack.extend((sub, level - 1) for sub in item)


def _check_position(position: Any, what: str) -> None:
    if not isinstance(position, _LIST) or not 2 <= len(position) <= 3:
        raise InputError(f"{what} has a position that is not [longitude, latitude].")
    for value in position:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{what} has a coordinate that is not a number: {str(value)[:20]}.")
        if not math.isfinite(value):
            raise InputError(
                f"{what} has a coordinate that is not a number (NaN or infinity). "
                "Every point needs a real longitude and latitude."
            )
    x, y = position[0], position[1]
    if not (-180.0 <= x <= 180.0 and -90.0 <= y <= 90.0):
        raise InputError(
            f"{what} has a point ({x:g}, {y:g}) outside longitude -180..180 / latitude "
            "-90..90. GeoJSON areas are given in longitude and latitude (EPSG:4326), "
            "longitude first."
        )


def check_coordinates(geoms: Any, what: str = "The area") -> None:
    """The same coordinate checks for shapely geometries given directly."""
    import numpy as np
    import shapely

    xy = shapely.get_coordinates(np.asarray(geoms, dtype=object).ravel())
    if len(xy) == 0:
        return
    if not np.isfinite(xy).all():
        raise InputError(
            f"{what} has a coordinate that is not a number (NaN or infinity). "
            "Every point needs a real longitude and latitude."
        )
    if (np.abs(xy[:, 0]) > 180.0).any() or (np.abs(xy[:, 1]) > 90.0).any():
        raise InputError(
            f"{what} has points outside longitude -180..180 / latitude -90..90. Areas are "
            "given in longitude and latitude (EPSG:4326), longitude first."
        )


# ---- refusals for too much work ----------------------------------------------------------


@dataclass(frozen=True)
class PairLimit:
    """The pairs a comparison may produce, and the words to refuse it with."""

    most: int
    #: what the comparison is, e.g. "Comparing street_trees with watercourses within 50 m"
    doing: str
    #: how to narrow it, e.g. "a smaller distance, a bounding box or an area"
    narrow: str
    #: the same comparison on the command line
    cli: str

    def refuse(self, estimate: float) -> WorkTooLarge:
        return WorkTooLarge(
            f"{self.doing} would produce about {n(estimate)} pairs of features; this server "
            f"works out at most {n(self.most)} in one request. Narrow it with {self.narrow}, "
            f"or run it with the landexplorer command line, which has no such limit: "
            f"{self.cli}",
            detail=f"estimated pairs {estimate:.0f} > max_compare_pairs {self.most}",
        )


def too_many_cells(estimate: float, most: int, doing: str, cli: str) -> WorkTooLarge:
    return WorkTooLarge(
        f"{doing} would read about {n(estimate)} raster cells; this server reads at most "
        f"{n(most)} in one request. Narrow it with a bounding box (bbox), fewer or smaller "
        f"polygons, or run it with the landexplorer command line, which has no such limit: "
        f"{cli}",
        detail=f"estimated cells {estimate:.0f} > max_zonal_cells {most}",
    )


def too_many_features(estimate: float, most: int, biggest: list[tuple[str, int]]) -> WorkTooLarge:
    shown = ", ".join(f"{layer} {n(count)}" for layer, count in biggest[:3])
    return WorkTooLarge(
        f"The area holds about {n(estimate)} features in the layers asked for ({shown}); "
        f"this server measures at most {n(most)} in one report. Draw a smaller area, ask "
        "for fewer layers, or run it with the landexplorer command line, which has no "
        "such limit: landexplorer report AREA.geojson --layers ...",
        detail=f"estimated features {estimate:.0f} > max_report_features {most}",
    )
