"""Comparing layers: joins, overlay areas, zonal statistics and area reports.

Functions take catalogue layer ids (with ``store=``) or GeoDataFrames and return
GeoDataFrames and plain data classes. They never know about HTTP. Areas and distances are
measured in a metric CRS chosen for the data, named in every result, and results carry
the licences and attributions of their inputs.
"""

from __future__ import annotations

from landexplorer.analysis.compare import PREDICATES, compare
from landexplorer.analysis.counts import count_points
from landexplorer.analysis.overlay import overlay_areas
from landexplorer.analysis.report import area_report
from landexplorer.analysis.results import (
    AreaReport,
    Comparison,
    LayerInArea,
    Overlay,
    Zonal,
)
from landexplorer.analysis.sources import Source, load
from landexplorer.analysis.zonal import sample_points, zonal_stats

__all__ = [
    "PREDICATES",
    "AreaReport",
    "Comparison",
    "LayerInArea",
    "Overlay",
    "Source",
    "Zonal",
    "area_report",
    "compare",
    "count_points",
    "load",
    "overlay_areas",
    "sample_points",
    "zonal_stats",
]
