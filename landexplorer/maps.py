"""Maps as standalone HTML files (folium), styled by class, with popups, a legend and the
attribution and licence of every layer shown (and what they oblige together, in words),
that open without a network connection.

folium links Leaflet, jQuery and Bootstrap from CDNs. Here the links are dropped and the
Leaflet script and stylesheet installed by ``make install`` (npm, in
``landexplorer/web/node_modules/leaflet/dist``) are inlined, images included, so the file
works offline and on its own. Only Leaflet features are used (GeoJSON layers, circle
markers, layer control), so nothing needs the other libraries.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
from branca.element import Element, MacroElement
from jinja2 import Template

from landexplorer.access.licences import combine
from landexplorer.analysis.sources import geometry_kind, load
from landexplorer.catalog.base import Store
from landexplorer.errors import DataUnavailable, InputError

LEAFLET_DIST = Path(__file__).resolve().parent / "web" / "node_modules" / "leaflet" / "dist"
#: Colour-blind-safe qualitative palette (Okabe-Ito), then a few more.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
    "#999999",
    "#882255",
    "#44AA99",
    "#117733",
)
#: Classes with a natural order of severity get colours that say so.
KNOWN_COLOURS = {
    "High": "#B2182B",
    "Medium": "#EF8A62",
    "Low": "#FDDBC7",
    "Very Low": "#D1E5F0",
    "Grade 1": "#1A9641",
    "Grade 2": "#A6D96A",
    "Grade 3": "#FFFFBF",
    "Grade 4": "#FDAE61",
    "Grade 5": "#D7191C",
    "Urban": "#BDBDBD",
    "Non Agricultural": "#E0E0E0",
}
NO_MATCH = "#9E9E9E"
_CLASS_WORDS = ("band", "grade", "class", "category", "type", "designation", "form")


def leaflet_assets() -> tuple[str, str]:
    """Leaflet's JS and CSS (images inlined as data URIs), from the npm install."""
    js_path, css_path = LEAFLET_DIST / "leaflet.js", LEAFLET_DIST / "leaflet.css"
    if not js_path.exists() or not css_path.exists():
        raise DataUnavailable(
            "The map needs the Leaflet files installed by `make install` (npm ci in "
            "landexplorer/web); they are missing.",
            detail=str(LEAFLET_DIST),
        )
    css = css_path.read_text(encoding="utf-8")

    def inline(match: re.Match[str]) -> str:
        image = LEAFLET_DIST / match.group(1)
        if not image.exists():
            return "none"
        data = base64.b64encode(image.read_bytes()).decode("ascii")
        return f"url(data:image/png;base64,{data})"

    css = re.sub(r"url\((images/[^)]+\.png)\)", inline, css)
    return js_path.read_text(encoding="utf-8"), css


def offline_map(
    bounds: tuple[float, float, float, float] | None,
    basemap: str | None = None,
    basemap_attribution: str = "",
) -> folium.Map:
    """A folium map whose Leaflet is inlined; no basemap unless a tile URL is given."""
    m = folium.Map(tiles=None, control_scale=True, prefer_canvas=False)
    m.default_js = []
    m.default_css = []
    js, css = leaflet_assets()
    # the body's CSS must come first, and Leaflet must exist before folium's map script
    root: Any = m.get_root()  # a branca Figure
    root.header.add_child(Element(f"<style>{css}</style>"), name="leaflet_css")
    root.header.add_child(Element(f"<script>{js}</script>"), name="leaflet_js")
    if basemap:
        folium.TileLayer(basemap, attr=basemap_attribution or "basemap", name="basemap").add_to(m)
    if bounds is not None:
        m.fit_bounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]])
    return m


def colours_for(classes: Sequence[Any]) -> dict[Any, str]:
    """A colour per class: known classes (flood bands, land grades) get fixed ones."""
    out: dict[Any, str] = {}
    free = iter(PALETTE * 4)
    for cls in classes:
        out[cls] = KNOWN_COLOURS.get(str(cls)) or next(free)
    return out


def _class_column(frame: pd.DataFrame) -> str | None:
    for col in frame.columns:
        if col == "geometry" or not pd.api.types.is_string_dtype(frame[col]):
            continue
        if any(w in col.lower() for w in _CLASS_WORDS) and 1 <= frame[col].nunique() <= 12:
            return str(col)
    return None


def add_layer(
    m: folium.Map,
    frame: gpd.GeoDataFrame,
    name: str,
    *,
    by: str | None = None,
    colours: dict[Any, str] | None = None,
    fill_opacity: float = 0.5,
    default_colour: str = PALETTE[0],
) -> dict[Any, str]:
    """Add a GeoDataFrame (EPSG:4326) as a GeoJSON layer with popups; returns its legend."""
    frame = frame.copy()
    for col in frame.columns:
        if col != "geometry" and not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = frame[col].astype("object").where(frame[col].notna(), None)
            frame[col] = frame[col].map(lambda v: v if v is None else str(v))
    fields = [c for c in frame.columns if c != "geometry"][:8]
    legend: dict[Any, str] = {}
    if by and by in frame.columns:
        classes = sorted({str(v) for v in frame[by].dropna()})
        legend = colours or colours_for(classes)
        frame["_colour"] = frame[by].map(lambda v: legend.get(str(v), NO_MATCH))
    else:
        frame["_colour"] = default_colour
        legend = {name: default_colour}
    kind = geometry_kind(np.asarray(frame.geometry.values))

    def style(feature: dict[str, Any]) -> dict[str, Any]:
        colour = feature["properties"].get("_colour", default_colour)
        return {
            "color": colour,
            "fillColor": colour,
            "weight": 2 if kind == "line" else 1,
            "fillOpacity": fill_opacity,
        }

    popup = folium.GeoJsonPopup(fields=fields) if fields else None
    radius = 2 if len(frame) > 1000 else 4
    marker = folium.CircleMarker(radius=radius, fill=True) if kind == "point" else None
    folium.GeoJson(
        frame.to_json(default=str),
        name=name,
        style_function=style,
        popup=popup,
        marker=marker,
    ).add_to(m)
    return legend


def add_legend(m: folium.Map, title: str, entries: dict[Any, str], credits: list[str]) -> None:
    """A legend box (class colours); the credits of every layer go in Leaflet's
    attribution control."""
    rows = "".join(
        f'<div><span style="display:inline-block;width:12px;height:12px;margin-right:6px;'
        f'background:{colour};border:1px solid #555"></span>{html.escape(str(label))}</div>'
        for label, colour in entries.items()
    )
    box = (
        '<div style="position:fixed;bottom:24px;left:12px;z-index:9999;background:white;'
        "padding:8px 10px;border:1px solid #999;border-radius:4px;font:12px sans-serif;"
        f'max-width:320px"><b>{html.escape(title)}</b>{rows}</div>'
    )
    root: Any = m.get_root()  # a branca Figure
    root.html.add_child(Element(box))
    # the same credits in Leaflet's own attribution control (a child of the map, so its
    # script runs after the map exists)
    _Credits(" | ".join(html.escape(c) for c in credits)).add_to(m)


class _Credits(MacroElement):
    _template = Template(
        "{% macro script(this, kwargs) %}"
        "{{ this._parent.get_name() }}.attributionControl.addAttribution({{ this.text|tojson }});"
        "{% endmacro %}"
    )

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "Credits"
        self.text = text


def write_map(
    store: Store,
    layers: Sequence[str],
    out: Path,
    *,
    compare: tuple[str, str] | None = None,
    by: str | None = None,
    basemap: str | None = None,
) -> Path:
    """Write an offline HTML map of catalogue layers and, with ``compare=(left, right)``,
    of the left layer coloured by the class of ``right`` (column ``by``) it meets."""
    m = make_map(store, layers, compare=compare, by=by, basemap=basemap)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    m.save(str(out))
    return out


def make_map(
    store: Store,
    layers: Sequence[str],
    *,
    compare: tuple[str, str] | None = None,
    by: str | None = None,
    basemap: str | None = None,
) -> folium.Map:
    """The map :func:`write_map` writes, as a folium object (shows inline in notebooks)."""
    from landexplorer.analysis import compare as compare_layers

    frames: list[tuple[str, gpd.GeoDataFrame, str | None]] = []
    credits: list[str] = []
    inputs: list[Any] = []  # every layer the map is made from, for what they oblige
    bounds: list[tuple[float, float, float, float]] = []
    for layer_id in layers:
        entry = store.get(layer_id)
        if entry.data_type != "vector":
            raise InputError(f"'{layer_id}' is a raster; only feature layers can be mapped here.")
        feats = load(layer_id, store)
        frame = gpd.GeoDataFrame(feats.attrs.reset_index(), geometry=feats.geoms, crs="EPSG:4326")
        frames.append((entry.title or layer_id, frame, _class_column(frame)))
        credits.append(f"{entry.title}: {entry.attribution} ({entry.licence})")
        inputs.append(entry)
        if feats.bounds:
            bounds.append(feats.bounds)
    legend: dict[Any, str] = {}
    title = "Layers"
    comparison = None
    if compare is not None:
        left, right = compare
        comparison = compare_layers(left, right, store=store, by=by)
        title = f"{left} by {by or right}"
        for src in comparison.sources:
            credits.append(f"{src.title or src.id}: {src.attribution} ({src.licence})")
            inputs.append(src)
        lf = load(left, store)
        if lf.bounds:
            bounds.append(lf.bounds)
    box = None
    if bounds:
        arr = np.asarray(bounds)
        box = (arr[:, 0].min(), arr[:, 1].min(), arr[:, 2].max(), arr[:, 3].max())
    m = offline_map(box, basemap)
    palette = iter(PALETTE)
    for name, frame, cls in frames:
        colour = next(palette, PALETTE[-1])
        got = add_layer(m, frame, name, by=cls, default_colour=colour, fill_opacity=0.35)
        legend.update(got)
    if comparison is not None:
        left, right = compare  # type: ignore[misc]
        legend.update(_add_comparison(m, store, comparison, left, right, by))
    folium.LayerControl(collapsed=False).add_to(m)
    if inputs:  # what the layers together oblige, in words (access/licences.py)
        credits.append(combine(inputs).summary())
    add_legend(m, title, legend, list(dict.fromkeys(credits)))
    return m


def _add_comparison(
    m: folium.Map, store: Store, comparison: Any, left: str, right: str, by: str | None
) -> dict[Any, str]:
    """Right features near the left ones (by class), then left features coloured by the
    class they meet most (largest overlap, else nearest), grey where they meet none."""
    lf = load(left, store)
    matches = comparison.matches
    col = None
    if by:
        col = f"{by}_right" if f"{by}_right" in matches.columns else by
    classes = sorted({str(v) for v in matches[col].dropna()}) if col else []
    colours = colours_for(classes) if classes else {f"meets {right}": PALETTE[3]}
    rf = load(right, store, bbox=lf.bounds, columns=[by] if by else [])
    if len(rf):
        rframe = gpd.GeoDataFrame(rf.attrs.reset_index(), geometry=rf.geoms, crs="EPSG:4326")
        add_layer(
            m,
            rframe,
            f"{right}",
            by=by,
            colours=colours if by else None,
            default_colour=PALETTE[3],
            fill_opacity=0.25,
        )
    frame = gpd.GeoDataFrame(lf.attrs.reset_index(), geometry=lf.geoms, crs="EPSG:4326")
    label = "meets"
    if len(matches):
        order = matches
        for measure, ascending in (
            ("overlap_m2", False),
            ("overlap_m", False),
            ("distance_m", True),
        ):
            if measure in matches.columns:
                order = matches.sort_values(measure, ascending=ascending)
                break
        best = order.drop_duplicates("left_fid").set_index("left_fid")
        values = best[col].astype(str) if col else pd.Series(f"meets {right}", index=best.index)
        frame[label] = frame["fid"].map(values)
    else:
        frame[label] = None
    frame[label] = frame[label].where(frame[label].notna(), "none")
    legend = dict(colours)
    legend["none"] = NO_MATCH
    add_layer(m, frame, f"{left} (compared)", by=label, colours=legend, fill_opacity=0.7)
    return legend
