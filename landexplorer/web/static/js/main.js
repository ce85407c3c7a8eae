// Land Explorer's web map: starts the map, the layer panel and the tools, and keeps the view
// in the address so any map can be shared.
import { escapeHtml, getJSON, plain } from "./api.js";
import { wireInspect } from "./inspect.js";
import { DrawTools } from "./draw.js";
import { DEFAULT_VISIBLE, LayerManager, rememberOwnLayer } from "./layers.js";
import { loadSavedMap, readHash, wireSave, writeHash } from "./share.js";
import { wireUpload } from "./upload.js";

// Timings read by the benchmark (navigation -> first vector tile painted).
const metrics = (window.landexplorer = {
  firstVectorTile: null, firstLayerLoaded: null, vectorLoads: 0, loaded: {}, ready: false,
});
const status = document.getElementById("status");
const TRAFFORD = [[53.3574, -2.4784], [53.4804, -2.253]];

function wirePanel() {
  const panel = document.getElementById("panel");
  const toggle = document.getElementById("panel-toggle");
  const phone = window.matchMedia("(max-width: 700px)");
  const set = (open) => {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (window.lxMap) setTimeout(() => window.lxMap.invalidateSize(), 0);
  };
  set(!phone.matches);
  phone.addEventListener("change", (e) => set(!e.matches));
  toggle.addEventListener("click", () => set(panel.hidden));
}

// Run ``load`` once, the first time a panel section is opened.
function onFirstOpen(id, load) {
  const section = document.getElementById(id);
  const run = () => {
    if (!section.open) return;
    section.removeEventListener("toggle", run);
    load().catch((error) => { status.textContent = plain(error); });
  };
  section.addEventListener("toggle", run);
  run();
}

async function start() {
  wirePanel();
  // Both requests start at once (the page's <link rel=preload> started them even earlier),
  // and the map is made while they travel: the first tiles are asked for as soon as the
  // catalogue is known.
  const configReady = getJSON("/config.json");
  const collections = getJSON("/collections");
  collections.catch(() => {}); // reported by layers.load below
  const map = L.map("map", { zoomControl: true, worldCopyJump: true });
  window.lxMap = map;
  map.attributionControl.setPrefix("Leaflet");
  L.control.scale({ imperial: false }).addTo(map);
  let config;
  try {
    config = await configReady;
  } catch (error) {
    status.textContent = plain(error);
    return;
  }
  if (config.basemap) {
    L.tileLayer(config.basemap.url, { attribution: escapeHtml(config.basemap.attribution), maxZoom: config.basemap.maxZoom, zIndex: 1 }).addTo(map);
  } else {
    map.getContainer().classList.add("no-basemap");
  }

  const layers = new LayerManager(map, { metrics, onChange: () => save() });
  const draw = new DrawTools(map, { layers, onChange: () => save() });
  metrics.shapes = () => draw.toGeoJSON(); // for tests: exactly what the page sends
  let restoring = true;
  const save = () => { if (!restoring) writeHash(map, layers, draw); };
  map.on("moveend", save);

  wireInspect(map, layers, draw, status);

  try {
    await layers.load(collections, { render: false });
  } catch (error) {
    status.textContent = plain(error);
  }

  // The state to open: a saved map (?map=id), else the address (#map=...), else the default.
  const params = new URLSearchParams(location.search);
  let state = readHash();
  if (params.get("map")) {
    try {
      const saved = await loadSavedMap(params.get("map"));
      state = { view: saved.view, layers: saved.layers, shapes: saved.shapes };
      if (saved.title) { document.getElementById("share-title").value = saved.title; document.title = `${saved.title} – Land Explorer`; }
    } catch (error) {
      status.textContent = plain(error);
    }
  }
  const wanted = state.layers || DEFAULT_VISIBLE.filter((id) => layers.states.has(id)).map((id) => ({ id }));
  if (state.view) map.setView(state.view.center, state.view.zoom);
  else map.fitBounds(TRAFFORD);
  for (const l of wanted) {
    if (!layers.states.has(l.id)) continue;
    layers.setOpacity(l.id, l.opacity ?? layers.states.get(l.id).opacity);
    layers.setVisible(l.id, true);
  }
  layers.render(); // the panel after the layers: the map's first tiles are already asked for
  if (state.shapes) await draw.restore(state.shapes);
  restoring = false;
  save();

  // Compare and Find load when their section is first opened: most visits never use them.
  let compare = null;
  onFirstOpen("sec-compare", async () => {
    const { wireCompare } = await import("./compare.js");
    compare = wireCompare(layers);
    compare.fill();
  });
  document.getElementById("compare-form").addEventListener("submit", (e) => e.preventDefault());
  let findWired = false;
  let findLoading = null;
  const loadFind = () => (findLoading ||= import("./find.js").then(({ wireFind }) => {
    wireFind(map, layers);
    findWired = true;
  }));
  onFirstOpen("sec-find", loadFind);
  const findForm = document.getElementById("find-form");
  findForm.addEventListener("submit", async (e) => {
    e.preventDefault(); // the page never reloads; find.js answers once it is loaded
    if (!findWired) { await loadFind(); findForm.requestSubmit(); }
  });
  wireSave(map, layers, draw);
  wireUpload(map, layers, config, (collection) => {
    rememberOwnLayer(collection.id);
    layers.addCollection(collection, true);
    layers.render();
    layers.setVisible(collection.id, true);
    layers.zoomTo(collection.id);
    if (compare) compare.fill();
  });
  metrics.ready = true;
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  status.textContent = plain(error);
  console.warn(error);
});
