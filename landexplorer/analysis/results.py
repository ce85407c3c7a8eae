"""What analysis functions return: plain data classes that name the metric CRS used and
carry the licences and attributions of their inputs, with ``to_dict`` for JSON.

Every ``to_dict`` has a ``licences`` block (``landexplorer.access.licences.combine``):
each input's licence and attribution, what the result obliges in plain words
(attribution, share-alike, non-commercial, no-derivatives) and whether it may be
published as a new layer, under which licence."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from landexplorer.access.licences import combine
from landexplorer.analysis.sources import Source

if TYPE_CHECKING:
    import geopandas as gpd


def clean(value: Any) -> Any:
    """A JSON-safe Python value: NaN/inf become None, numpy scalars become Python ones."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a (non-geometry) frame as JSON-safe dicts."""
    cols = [c for c in frame.columns if c != "geometry"]
    return [
        {str(c): clean(v) for c, v in zip(cols, row, strict=True)}
        for row in frame[cols].itertuples(index=False, name=None)
    ]


def credits(sources: list[Source]) -> list[dict[str, str]]:
    """Licence and attribution of each input, once per layer."""
    seen: dict[str, dict[str, str]] = {}
    for s in sources:
        seen.setdefault(s.id, s.to_dict())
    return list(seen.values())


def licences(sources: list[Source]) -> dict[str, Any]:
    """The ``licences`` block of a result made from ``sources``."""
    return combine(sources).to_dict()


@dataclass
class Comparison:
    """Pairs of features of two layers meeting a predicate, and a summary by class."""

    matches: gpd.GeoDataFrame  # one row per (left, right) pair; left geometry, EPSG:4326
    summary: pd.DataFrame  # class, left_features, pairs
    predicate: str
    left_total: int
    left_matched: int
    crs: str
    sources: list[Source]
    by: str | None = None
    distance_m: float | None = None
    k: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self, *, with_matches: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "predicate": self.predicate,
            "distance_m": self.distance_m,
            "k": self.k,
            "by": self.by,
            "left_total": self.left_total,
            "left_matched": self.left_matched,
            "pairs": len(self.matches),
            "summary": records(self.summary),
            "crs": self.crs,
            "sources": credits(self.sources),
            "licences": licences(self.sources),
            "notes": self.notes,
        }
        if with_matches:
            out["matches"] = records(self.matches)
        return out


@dataclass
class Overlay:
    """How much of each left feature (and of the whole left layer) falls in each class of
    the right layer: areas for polygons, lengths for lines, counts for points."""

    per_feature: pd.DataFrame  # left_fid, [left_by], class, amount, share
    totals: pd.DataFrame  # [left_by], class, features, amount, share
    measure: str  # "area" | "length" | "count"
    unit: str  # "m2" | "m" | "features"
    left_total: float  # total area/length/count of the left features considered
    crs: str
    sources: list[Source]
    by: str | None = None
    left_by: str | None = None
    pieces: gpd.GeoDataFrame | None = None  # the intersections, EPSG:4326, when asked for
    notes: list[str] = field(default_factory=list)

    def to_dict(self, *, with_features: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "measure": self.measure,
            "unit": self.unit,
            "by": self.by,
            "left_by": self.left_by,
            "left_total": clean(self.left_total),
            "totals": records(self.totals),
            "crs": self.crs,
            "sources": credits(self.sources),
            "licences": licences(self.sources),
            "notes": self.notes,
        }
        if with_features:
            out["per_feature"] = records(self.per_feature)
        return out


@dataclass
class Zonal:
    """Raster statistics for each polygon of a layer (or each class, when dissolved)."""

    stats: pd.DataFrame  # one row per polygon: fid/class, attributes, one column per stat
    method: str  # "coverage" (coverage-weighted) or "centre" (cells whose centre is inside)
    raster: str
    crs: str  # the raster's CRS: polygons are projected to it
    sources: list[Source]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "raster": self.raster,
            "crs": self.crs,
            "stats": records(self.stats),
            "sources": credits(self.sources),
            "licences": licences(self.sources),
            "notes": self.notes,
        }


@dataclass
class LayerInArea:
    """What one layer holds inside the report's area."""

    layer: str
    title: str
    kind: str  # "point" | "line" | "polygon" | "raster" | "empty"
    count: int = 0  # features meeting the area (points: inside it)
    amount: float | None = None  # polygons: m2 inside; lines: m inside; rasters: cells
    unit: str = ""
    share: float | None = None  # polygons: share of the area covered
    by: str | None = None
    classes: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)  # rasters
    licence: str = ""
    attribution: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "title": self.title,
            "kind": self.kind,
            "count": self.count,
            "amount": clean(self.amount),
            "unit": self.unit,
            "share": clean(self.share),
            "by": self.by,
            "classes": [{k: clean(v) for k, v in c.items()} for c in self.classes],
            "stats": {k: clean(v) for k, v in self.stats.items()},
            "licence": self.licence,
            "attribution": self.attribution,
        }


@dataclass
class AreaReport:
    """What every visible layer holds inside one polygon."""

    area_m2: float
    crs: str
    bbox: tuple[float, float, float, float]
    layers: list[LayerInArea]
    notes: list[str] = field(default_factory=list)

    @property
    def sources(self) -> list[Source]:
        """The layers the report read, with their licences and attributions."""
        return [
            Source(id=x.layer, title=x.title, licence=x.licence, attribution=x.attribution)
            for x in self.layers
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "area_m2": self.area_m2,
            "area_ha": self.area_m2 / 10_000,
            "crs": self.crs,
            "bbox": list(self.bbox),
            "layers": [layer.to_dict() for layer in self.layers],
            "licences": licences(self.sources),
            "notes": self.notes,
        }
