// Basemaps: the small set this server offers (/config.json "basemaps"), switchable in the
// map's layers control (top right). Before a basemap's tiles are asked for, one tile is
// tried: a page that cannot reach its basemap (offline, a blocked server) says so once
// and shows the plain background, instead of logging an error for every tile.
import { escapeHtml } from "./api.js";

const KEY = "landexplorer.basemap";
const PROBE_TIMEOUT_MS = 8000;
const ERRORS_BEFORE_GIVING_UP = 4; // tiles failing in a row once a basemap is shown

function probeUrl(choice, map) {
  const z = Math.max(0, Math.min(Math.round(map.getZoom()), choice.maxZoom || 19));
  const p = map.project(map.getCenter(), z).divideBy(256).floor();
  const n = 2 ** z;
  const x = ((p.x % n) + n) % n;
  const y = Math.min(n - 1, Math.max(0, p.y));
  return L.Util.template(choice.url, { z, x, y, "-y": n - 1 - y, s: "a", r: "" });
}

// Does one tile of the basemap load? (an <img>, as the tiles themselves are loaded)
function reachable(url) {
  return new Promise((resolve) => {
    const img = new Image();
    const timer = setTimeout(() => { img.src = ""; resolve(false); }, PROBE_TIMEOUT_MS);
    img.onload = () => { clearTimeout(timer); resolve(true); };
    img.onerror = () => { clearTimeout(timer); resolve(false); };
    img.src = url;
  });
}

export function wireBasemaps(map, config, say) {
  const choices = (config.basemaps || []).filter((c) => c && c.id);
  const groups = new Map(); // id -> L.layerGroup (the tile layer goes in once reachable)
  const tiles = new Map(); // id -> L.tileLayer
  const failed = new Set();
  const container = map.getContainer();
  for (const c of choices) groups.set(c.id, L.layerGroup());
  const none = choices.find((c) => !c.url);
  let current = null;

  const cannotReach = (choice) => {
    if (failed.has(choice.id)) return;
    failed.add(choice.id);
    say(`The basemap “${choice.name}” cannot be reached from here (no connection to it?); the layers are drawn on a plain background.`);
  };

  const show = async (choice) => {
    current = choice.id;
    container.dataset.basemap = choice.id;
    container.classList.toggle("no-basemap", !choice.url);
    try { localStorage.setItem(KEY, choice.id); } catch (_) { /* private mode */ }
    if (!choice.url || tiles.has(choice.id)) return;
    let url = null;
    try { url = probeUrl(choice, map); } catch (_) { /* a placeholder Leaflet does not know */ }
    const ok = url !== null && !failed.has(choice.id) && await reachable(url);
    if (current !== choice.id) return; // switched again while the tile was tried
    if (!ok) {
      cannotReach(choice);
      container.classList.add("no-basemap");
      container.dataset.basemapState = "unreachable";
      return;
    }
    const layer = L.tileLayer(choice.url, {
      attribution: escapeHtml(choice.attribution), maxZoom: choice.maxZoom || 19, zIndex: 1,
    });
    let inARow = 0;
    layer.on("tileload", () => { inARow = 0; });
    layer.on("tileerror", () => {
      inARow += 1;
      if (inARow >= ERRORS_BEFORE_GIVING_UP && groups.get(choice.id).hasLayer(layer)) {
        groups.get(choice.id).removeLayer(layer); // stop asking for tiles that do not come
        container.classList.add("no-basemap");
        cannotReach(choice);
      }
    });
    tiles.set(choice.id, layer);
    groups.get(choice.id).addLayer(layer);
    container.dataset.basemapState = "shown";
  };

  let wanted = config.defaultBasemap;
  try { wanted = localStorage.getItem(KEY) || wanted; } catch (_) { /* private mode */ }
  const first = choices.find((c) => c.id === wanted) || choices.find((c) => c.id === config.defaultBasemap) || none;
  if (!choices.length || !first) {
    container.classList.add("no-basemap");
    return null;
  }
  groups.get(first.id).addTo(map);
  show(first);
  if (choices.length < 2) return null;
  const named = {};
  for (const c of choices) named[escapeHtml(c.name)] = groups.get(c.id);
  const control = L.control.layers(named, null, { position: "topright", collapsed: true }).addTo(map);
  control.getContainer().setAttribute("aria-label", "Basemap");
  map.on("baselayerchange", (e) => {
    const choice = choices.find((c) => groups.get(c.id) === e.layer);
    if (choice) show(choice);
  });
  return control;
}
