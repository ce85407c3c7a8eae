// Land Explorer's web map: starts the map, the layer panel and the tools, and keeps the view
// in the address so any map can be shared.
import { getJSON, plain, setShareLink } from "./api.js";
import { Account, wireAccount } from "./account.js";
import { wireInspect } from "./inspect.js";
import { DrawTools } from "./draw.js";
import { wireBasemaps } from "./basemaps.js";
import { LayerManager, rememberOwnLayer } from "./layers.js";
import { loadSavedMap, readHash, wireSave, writeHash } from "./share.js";
import { wireUpload } from "./upload.js";
import { wireEditor } from "./edit.js";

const status = document.getElementById("status");

function wirePanel(map) {
  const panel = document.getElementById("panel");
  const toggle = document.getElementById("panel-toggle");
  const phone = window.matchMedia("(max-width: 700px)");
  const set = (open) => {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    setTimeout(() => map.invalidateSize(), 0);
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

// The layers a first visit shows: those the server's configuration names (the demo's
// manifest), else the community's own layers, else the first layer of features.
function firstLayers(layers, config) {
  const named = (config.defaultLayers || []).filter((id) => layers.states.has(id));
  if (named.length) return named;
  const all = [...layers.states.values()];
  const own = all.filter((s) => s.group === "community" || s.group === "own").map((s) => s.id);
  if (own.length) return own.slice(0, 3);
  const vector = all.find((s) => s.dataType === "vector") || all[0];
  return vector ? [vector.id] : [];
}

async function start() {
  // Both requests start at once (the page's <link rel=preload> started them even earlier),
  // and the map is made while they travel: the first tiles are asked for as soon as the
  // catalogue is known.
  // A share link (?link=lxl_...) goes with every request and tile of this page while it is
  // open, so the shared layer shows for a visitor who is not signed in. It is not stored.
  const params = new URLSearchParams(location.search);
  setShareLink(params.get("link") || "");
  const account = new Account();
  const signedIn = account.load();
  const configReady = getJSON("/config.json");
  const collections = getJSON("/collections");
  collections.catch(() => {}); // reported by layers.load below
  const map = L.map("map", { zoomControl: true, worldCopyJump: true });
  wirePanel(map);
  map.attributionControl.setPrefix("Leaflet");
  L.control.scale({ imperial: false }).addTo(map);
  let config;
  try {
    config = await configReady;
  } catch (error) {
    status.textContent = plain(error);
    return;
  }
  let editor = null;
  const layers = new LayerManager(map, { styles: config.styles, onChange: () => { save(); if (editor) editor.layersChanged(); } });
  const draw = new DrawTools(map, { layers, onChange: () => save() });
  let restoring = true;
  const save = () => { if (!restoring) writeHash(map, layers, draw); };
  map.on("moveend", save);

  wireInspect(map, layers, draw, status);
  editor = wireEditor(map, layers, status);
  map.editor = editor;

  try {
    await layers.load(collections, { render: false });
  } catch (error) {
    status.textContent = plain(error);
  }

  // The state to open: a saved map (?map=id), else the address (#map=...), else the layers
  // a share link names (?layers=id), else the default.
  let state = readHash();
  if (!state.layers && params.get("layers")) {
    state.layers = params.get("layers").split(",").filter(Boolean).map((id) => ({ id }));
  }
  if (params.get("map")) {
    try {
      const saved = await loadSavedMap(params.get("map"));
      state = { view: saved.view, layers: saved.layers, shapes: saved.shapes };
      if (saved.title) { document.getElementById("share-title").value = saved.title; document.title = `${saved.title} – Land Explorer`; }
    } catch (error) {
      status.textContent = plain(error);
    }
  }
  if (params.get("link") && params.get("layers")) {
    const shared = params.get("layers").split(",").filter(Boolean);
    status.textContent = shared.every((id) => layers.states.has(id))
      ? "A layer shared with you by link is on the map."
      : "This share link no longer works: it was revoked, or the layer was deleted. Ask the person who sent it for a new one.";
  }
  const wanted = state.layers || firstLayers(layers, config).map((id) => ({ id }));
  // A shared map opens where it was shared; any other on the layers it shows.
  const extent = layers.extentOf(wanted.map((l) => l.id));
  if (state.view) map.setView(state.view.center, state.view.zoom);
  else if (extent) map.fitBounds(extent, { maxZoom: 17 });
  else map.setView([20, 0], 2);
  // Basemaps once the view is known: the one tile tried first is a tile of this view.
  wireBasemaps(map, config, (text) => { status.textContent = text; });
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
  await signedIn;
  wireAccount(account, { layers, status });
  wireUpload(map, layers, config, account, (collection) => {
    rememberOwnLayer(collection.id);
    layers.addCollection(collection, true);
    layers.render();
    layers.setVisible(collection.id, true);
    layers.zoomTo(collection.id);
    if (compare) compare.fill();
  });
  document.body.dataset.ready = "true";
  performance.mark("landexplorer:ready");
}

start().catch((error) => {
  status.textContent = plain(error);
  console.warn(error);
});
