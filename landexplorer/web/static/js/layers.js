// The layer panel and the layers on the map: vector layers from the vector tiles (so a
// 100,000-feature layer pans smoothly), rasters from PNG tiles, a legend per layer, and the
// licence and attribution of every layer on screen in the attribution line.
import { escapeHtml, getJSON, withLink } from "./api.js";

// ---- How layers are drawn. A layer's own style comes with the server's configuration
// (/config.json "styles": a colour, a class column and its class colours in legend order);
// any other layer gets a colour of its own from its id, and class colours from the values.

// Columns that usually hold classes, in the order they are preferred.
export const CLASS_COLUMNS = ["prob_4band", "grade", "site_type", "band", "class", "category", "type", "kind"];

const QUALITATIVE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
  "#a6761d", "#1f78b4", "#b2df8a", "#fb9a99", "#cab2d6", "#8dd3c7"];

function hash(text) {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
  return Math.abs(h);
}

const isColour = (c) => typeof c === "string" && /^#[0-9a-f]{3,8}$/i.test(c);

export function layerColour(state) {
  const own = state.style && state.style.colour;
  return isColour(own) ? own : QUALITATIVE[hash(state.id) % QUALITATIVE.length];
}

export function classColumnOf(columns, style = {}) {
  if (style.classColumn && columns.includes(style.classColumn)) return style.classColumn;
  return CLASS_COLUMNS.find((c) => columns.includes(c)) || null;
}

function styleClasses(state) {
  const classes = state.style && state.style.classColumn === state.classColumn && state.style.classes;
  return classes && typeof classes === "object" ? classes : {};
}

// Classes in the order a legend should list them: the style's order where there is one.
export function sortClasses(state, values) {
  const fixed = Object.keys(styleClasses(state));
  const rank = (v) => (fixed.includes(v) ? fixed.indexOf(v) : fixed.length);
  return [...values].sort((a, b) => rank(a) - rank(b) || String(a).localeCompare(String(b)));
}

export function classColour(state, value) {
  const own = styleClasses(state)[value];
  return isColour(own) ? own : QUALITATIVE[hash(String(value)) % QUALITATIVE.length];
}

// The ramp the raster tiles are drawn with ("terrain"), as a CSS gradient for the legend.
export const TERRAIN_GRADIENT =
  "linear-gradient(to right, rgb(0,97,71), rgb(84,166,83), rgb(232,214,125), rgb(163,113,64), rgb(245,240,235))";

// A VectorGrid style function for one layer.
export function vectorStyle(state) {
  const base = layerColour(state);
  const g = (state.geometryType || "").toLowerCase();
  // VectorGrid passes no geometry type to style functions: the layer's own type decides.
  const dimension = g.includes("point") ? 1 : g.includes("line") ? 2 : 3;
  return (props) => {
    let colour = base;
    if (state.classColumn && props[state.classColumn] !== undefined) {
      const value = props[state.classColumn];
      colour = classColour(state, value);
      if (!state.seen.has(value)) {
        state.seen.set(value, colour);
        state.onNewClass && state.onNewClass();
      }
    }
    // Opacity is set on the whole layer (GridLayer.setOpacity), not per feature.
    if (dimension === 1) {
      return { radius: 4, weight: 1, color: "#ffffff", opacity: 1, fill: true, fillColor: colour, fillOpacity: 0.9 };
    }
    if (dimension === 2) return { weight: 2, color: colour, opacity: 1 };
    return { weight: 1, color: colour, opacity: 0.9, fill: true, fillColor: colour, fillOpacity: 0.55 };
  };
}

// ---- The panel and the layers on the map.
const GROUPS = [
  ["open", "Open layers"],
  ["community", "Community layers"],
  ["own", "Your layers"],
  ["reference", "Boundaries and reference"],
];
const OWN_KEY = "landexplorer.ownLayers";

// What the page tells whoever watches it (tests, the benchmark, a performance panel):
// User Timing marks, e.g. "landexplorer:first-tile", "landexplorer:drawn:<layer id>".
let firstTileMarked = false;
function mark(name, detail) {
  try { performance.mark(`landexplorer:${name}`, detail === undefined ? undefined : { detail }); } catch (_) { /* old browser */ }
}


export function ownLayerIds() {
  try { return JSON.parse(localStorage.getItem(OWN_KEY) || "[]"); } catch (_) { return []; }
}

export function rememberOwnLayer(id) {
  const ids = new Set(ownLayerIds());
  ids.add(id);
  try { localStorage.setItem(OWN_KEY, JSON.stringify([...ids])); } catch (_) { /* private mode */ }
}

// Drawing order: rasters, then areas, lines, points. Among areas, layers of a few large
// polygons (land classes, boundaries) go under layers of many small ones, and the
// community's own layers go on top of the open ones.
function zIndexFor(state) {
  const g = (state.geometryType || "").toLowerCase();
  if (state.dataType === "raster") return 100;
  if (g.includes("point")) return 400;
  if (g.includes("line")) return 300;
  const many = Math.min(40, Math.round(Math.log2((state.featureCount || 0) + 1) * 3));
  const community = state.group === "community" || state.group === "own" ? 50 : 0;
  return 200 + many + community;
}

function attributionOf(state) {
  const licence = state.licence ? ` (${state.licence})` : "";
  return `${escapeHtml(state.title)}: ${escapeHtml(state.attribution || "no attribution given")}${escapeHtml(licence)}`;
}

// The address of a collection's live feed of changes (its link of type text/event-stream).
function liveFeedOf(c) {
  const link = (c.links || []).find((l) => l && l.type === "text/event-stream" && typeof l.href === "string");
  if (!link) return "";
  try {
    const url = new URL(link.href, location.href);
    return url.origin === location.origin ? url.pathname + url.search : "";
  } catch (_) { return ""; }
}

export class LayerManager {
  constructor(map, { onChange, styles }) {
    this.map = map;
    this.states = new Map();
    this.onChange = onChange || (() => {});
    this.styles = styles || {};
    this.added = 0;
    this.container = document.getElementById("layer-groups");
  }

  // ``pending`` is the /collections request the page started before the map existed.
  async load(pending, { render = true } = {}) {
    const body = await (pending || getJSON("/collections"));
    const own = new Set(ownLayerIds());
    for (const c of body.collections) this.addCollection(c, own.has(c.id));
    if (render) this.render();
  }

  // Read the catalogue again (after signing in or out, or a layer's visibility changed):
  // layers no longer listed for this visitor leave the map, new ones join the panel, and
  // the layers shown stay shown.
  async refresh() {
    const body = await getJSON("/collections");
    const own = new Set(ownLayerIds());
    const listed = new Set(body.collections.map((c) => c.id));
    for (const [id, state] of [...this.states]) {
      if (listed.has(id)) continue;
      if (state.layer) this.map.removeLayer(state.layer);
      this.states.delete(id);
    }
    for (const c of body.collections) {
      const old = this.states.get(c.id);
      if (old && old.version === c.layerVersion && old.licence === (c.license || "")) {
        old.mayChange = Boolean(c.mayChange); // signing in or out changes who may edit
        continue;
      }
      const state = this.addCollection(c, own.has(c.id));
      if (old && old.visible) { state.opacity = old.opacity; this.setVisible(c.id, true); }
    }
    this.render();
    this.onChange();
  }

  addCollection(c, own = false) {
    const bbox = c.extent && c.extent.spatial && c.extent.spatial.bbox && c.extent.spatial.bbox[0];
    const kind = (c.keywords && c.keywords[0]) || "open";
    const state = {
      id: c.id,
      title: c.title || c.id,
      group: own ? "own" : (GROUPS.some(([g]) => g === kind) ? kind : "open"),
      dataType: c.itemType === "coverage" ? "raster" : "vector",
      geometryType: c.geometryType || "",
      featureCount: c.featureCount,
      licence: c.license || "",
      attribution: c.attribution || "",
      bbox: bbox || null,
      visible: false,
      // a raster covers everything under it: start it see-through
      opacity: c.itemType === "coverage" ? 0.6 : 1,
      classColumn: undefined,
      seen: new Map(),
      layer: null,
      version: c.layerVersion,
      // the server's word (from its access policy) that this visitor may edit the features
      mayChange: Boolean(c.mayChange),
      // the layer's live feed of changes, when the server has one (Server-Sent Events)
      feed: liveFeedOf(c),
      style: (this.styles[c.id] && typeof this.styles[c.id] === "object") ? this.styles[c.id] : {},
      order: 0, // when it was last put on the map: of equal z-index, the later is on top
    };
    state.onNewClass = () => this.scheduleLegend(state);
    const old = this.states.get(c.id);
    if (old && old.layer) this.map.removeLayer(old.layer);
    this.states.set(c.id, state);
    return state;
  }

  // Read one layer's description again and, when its version moved (a feature was edited
  // here or by someone else), draw it anew: the tile addresses carry the version, so no
  // tile of the old version is taken from the browser's cache.
  async reload(id) {
    const old = this.states.get(id);
    if (!old) return null;
    const c = await getJSON(`/collections/${encodeURIComponent(id)}`);
    if (c.layerVersion === old.version) {
      old.mayChange = Boolean(c.mayChange);
      return old;
    }
    const state = this.addCollection(c, old.group === "own");
    state.opacity = old.opacity;
    if (old.visible) this.setVisible(id, true);
    const count = document.querySelector(`.layer[data-layer="${CSS.escape(id)}"] .count`);
    if (count && state.dataType !== "raster") count.textContent = (state.featureCount ?? "").toLocaleString();
    return state;
  }

  visibleIds() {
    return [...this.states.values()].filter((s) => s.visible).map((s) => s.id);
  }

  makeLayer(state) {
    const bounds = state.bbox ? L.latLngBounds([state.bbox[1], state.bbox[0]], [state.bbox[3], state.bbox[2]]) : undefined;
    const common = {
      attribution: attributionOf(state),
      bounds: bounds ? bounds.pad(0.02) : undefined,
      zIndex: zIndexFor(state),
      opacity: state.opacity,
    };
    const drawn = () => {
      mark(`drawn:${state.id}`);
      if (!this.firstDrawn) { this.firstDrawn = true; mark("first-layer", state.id); }
    };
    if (state.dataType === "raster") {
      const grid = L.tileLayer(withLink(`/tiles/${state.id}/{z}/{x}/{y}.png?v=${state.version}`), { ...common, maxZoom: 19 });
      grid.on("load", drawn);
      return grid;
    }
    const styleFn = vectorStyle(state);
    const layer = L.vectorGrid.protobuf(withLink(`/tiles/${state.id}/{z}/{x}/{y}.mvt?v=${state.version}`), {
      ...common,
      rendererFactory: L.canvas.tile,
      // Clicks go to the map (inspect.js asks the API what is there): interactive tiles
      // would keep them for their own layer only.
      interactive: false,
      maxZoom: 22,
      vectorTileLayerStyles: {
        [state.id]: (props, zoom) => {
          if (state.classColumn === undefined) state.classColumn = classColumnOf(Object.keys(props), state.style);
          return styleFn(props, zoom);
        },
      },
    });
    // VectorGrid fires tileload after a tile is drawn, and load when every tile of the view is
    layer.on("tileload", () => {
      if (!firstTileMarked) { firstTileMarked = true; mark("first-tile", state.id); }
    });
    layer.on("load", drawn);
    return layer;
  }

  setVisible(id, visible) {
    const state = this.states.get(id);
    if (!state) return;
    state.visible = visible;
    if (visible) {
      if (!state.layer) state.layer = this.makeLayer(state);
      state.order = ++this.added;
      state.layer.addTo(this.map);
    } else if (state.layer) {
      this.map.removeLayer(state.layer);
    }
    const box = document.getElementById(`layer-${id}`);
    if (box) box.checked = visible;
    const tools = document.getElementById(`tools-${id}`);
    if (tools) tools.hidden = !visible;
    this.renderLegend(state);
    this.onChange();
  }

  setOpacity(id, opacity) {
    const state = this.states.get(id);
    if (!state) return;
    state.opacity = opacity;
    if (state.layer) state.layer.setOpacity(opacity);
    const slider = document.getElementById(`opacity-${id}`);
    if (slider) slider.value = String(Math.round(opacity * 100));
    this.onChange();
  }

  // The layers shown, the one drawn on top first (z-index, then the later put on the map).
  drawOrder() {
    return [...this.states.values()].filter((s) => s.visible)
      .sort((a, b) => zIndexFor(b) - zIndexFor(a) || b.order - a.order);
  }

  // The bounds holding every layer of ``ids`` (every layer when none has a box), or null.
  extentOf(ids) {
    const boxes = (list) => list.map((s) => s && s.bbox).filter((b) => b && b.every(Number.isFinite));
    let found = boxes(ids.map((id) => this.states.get(id)));
    if (!found.length) found = boxes([...this.states.values()]);
    if (!found.length) return null;
    const bounds = L.latLngBounds([]);
    for (const b of found) bounds.extend([[b[1], b[0]], [b[3], b[2]]]);
    return bounds;
  }

  zoomTo(id) {
    const state = this.states.get(id);
    if (state && state.bbox) {
      this.map.fitBounds([[state.bbox[1], state.bbox[0]], [state.bbox[3], state.bbox[2]]], { maxZoom: 17 });
    }
  }

  render() {
    this.container.innerHTML = "";
    for (const [group, label] of GROUPS) {
      const members = [...this.states.values()].filter((s) => s.group === group);
      if (!members.length) continue;
      const section = document.createElement("section");
      section.setAttribute("aria-label", label);
      section.innerHTML = `<h2 class="group-title">${escapeHtml(label)}</h2>`;
      for (const s of members) section.appendChild(this.renderLayer(s));
      this.container.appendChild(section);
    }
  }

  renderLayer(s) {
    const div = document.createElement("div");
    div.className = "layer";
    div.dataset.layer = s.id;
    const count = s.dataType === "raster" ? "grid" : (s.featureCount ?? "").toLocaleString();
    div.innerHTML = `
      <div class="layer-head">
        <input type="checkbox" id="layer-${s.id}" ${s.visible ? "checked" : ""}>
        <label for="layer-${s.id}">${escapeHtml(s.title)}</label>
        <span class="count" title="features">${escapeHtml(count)}</span>
      </div>
      <div class="layer-tools" id="tools-${s.id}" ${s.visible ? "" : "hidden"}>
        <label for="opacity-${s.id}">Opacity</label>
        <input type="range" id="opacity-${s.id}" min="0" max="100" value="${Math.round(s.opacity * 100)}">
        <button type="button" class="zoom-to" aria-label="Zoom to ${escapeHtml(s.title)}">Zoom to</button>
      </div>
      <ul class="legend" id="legend-${s.id}" aria-label="Legend of ${escapeHtml(s.title)}"></ul>`;
    div.querySelector("input[type=checkbox]").addEventListener("change", (e) => this.setVisible(s.id, e.target.checked));
    div.querySelector("input[type=range]").addEventListener("input", (e) => this.setOpacity(s.id, Number(e.target.value) / 100));
    div.querySelector(".zoom-to").addEventListener("click", () => this.zoomTo(s.id));
    queueMicrotask(() => this.renderLegend(s));
    return div;
  }

  scheduleLegend(state) {
    if (state.legendTimer) return;
    state.legendTimer = setTimeout(() => { state.legendTimer = null; this.renderLegend(state); }, 150);
  }

  renderLegend(s) {
    const ul = document.getElementById(`legend-${s.id}`);
    if (!ul) return;
    if (!s.visible) { ul.innerHTML = ""; return; }
    if (s.dataType === "raster") {
      ul.innerHTML = `<li>lower <span class="ramp" style="background:${TERRAIN_GRADIENT}"></span> higher</li>`;
      return;
    }
    if (s.classColumn && s.seen.size) {
      const items = sortClasses(s, s.seen.keys());
      ul.innerHTML = `<li class="hint">${escapeHtml(s.classColumn)}</li>` + items.slice(0, 12).map((v) =>
        `<li><span class="swatch" style="background:${classColour(s, v)}"></span>${escapeHtml(v ?? "(empty)")}</li>`).join("") +
        (items.length > 12 ? `<li class="hint">and ${items.length - 12} more</li>` : "");
      return;
    }
    const g = s.geometryType.toLowerCase();
    const words = g.includes("point") ? "points" : g.includes("line") ? "lines" : g ? "areas" : "features";
    ul.innerHTML = `<li><span class="swatch" style="background:${layerColour(s)}"></span>${words}</li>`;
  }

  // Highlight features (e.g. the matches of a comparison) above every layer.
  showMatches(collection) {
    if (this.matchLayer) this.map.removeLayer(this.matchLayer);
    this.matchLayer = L.geoJSON(collection, {
      pmIgnore: true,
      interactive: false,
      style: () => ({ color: "#ff00aa", weight: 3, fillOpacity: 0.35 }),
      pointToLayer: (_f, latlng) => L.circleMarker(latlng, { radius: 6, pmIgnore: true }),
    }).addTo(this.map);
    return this.matchLayer;
  }
}
