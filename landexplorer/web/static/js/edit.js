// Editing features on the map, for the people who look after a layer (the server says who:
// each collection's "mayChange" comes from its access policy; the edit routes ask it again).
//
// Add a point, line or area; choose a feature and drag its handles; change its attributes
// in a form made from the layer's columns; delete it; undo your last change. Every save of
// an existing feature sends the ETag the page read it with as If-Match, so nobody
// overwrites a change they never saw: when someone else saved first, both versions are
// shown and the person chooses. Other people's edits arrive over each followed layer's
// live feed (Server-Sent Events) and the layer is drawn again.
//
// The handles are plain Leaflet markers (no drawing library): the feature's GeoJSON
// coordinates are changed in place, so what is saved is exactly what is shown.
import { ApiProblem, escapeHtml, getJSON, pageWords, plain, statusWords, withLink, writeHeaders } from "./api.js";

const GEOJSON = "application/geo+json";
const MINE = { color: "#e6550d", weight: 3, fillOpacity: 0.2 };
const THEIRS = { color: "#7b2cbf", weight: 3, dashArray: "6 6", fillOpacity: 0.1 };
const FLASH = { color: "#ffbf00", weight: 5, fillOpacity: 0.3 };
// Most vertices given handles: a larger shape is still saved whole, only its first
// vertices can be dragged (a public page must not make 100,000 markers).
const MAX_HANDLES = 500;
// Live feeds followed at once: each holds one of the browser's few connections to the
// server (six over HTTP/1.1), which the map's tiles need.
const MAX_FEEDS = 2;
const UNDO_DEPTH = 20;
// How long the page waits before asking again for a feed the server refused.
const FEED_RETRY_MS = 30000;

function dimensionOf(geometryType) {
  const g = (geometryType || "").toLowerCase();
  return g.includes("point") ? 0 : g.includes("line") ? 1 : 2;
}

const KIND_WORDS = ["point", "line", "area"];

// An empty geometry of the layer's type, to add vertices to.
function emptyGeometry(geometryType) {
  const multi = /^multi/i.test(geometryType || "");
  const dim = dimensionOf(geometryType);
  if (dim === 0) return { type: multi ? "MultiPoint" : "Point", coordinates: multi ? [] : null };
  if (dim === 1) return { type: multi ? "MultiLineString" : "LineString", coordinates: multi ? [[]] : [] };
  return { type: multi ? "MultiPolygon" : "Polygon", coordinates: multi ? [[[]]] : [[]] };
}

// The list a click adds a vertex to (the first line or the first ring), or null for a point.
function firstPath(geometry) {
  switch (geometry.type) {
    case "MultiPoint": case "LineString": return geometry.coordinates;
    case "MultiLineString": case "Polygon": return geometry.coordinates[0];
    case "MultiPolygon": return geometry.coordinates[0][0];
    default: return null;
  }
}

// Every ring of a polygon, to close (GeoJSON repeats the first vertex last) or open.
function ringsOf(geometry) {
  if (geometry.type === "Polygon") return geometry.coordinates;
  if (geometry.type === "MultiPolygon") return geometry.coordinates.flat();
  return [];
}

function closeRings(geometry) {
  for (const ring of ringsOf(geometry)) {
    const [a, b] = [ring[0], ring[ring.length - 1]];
    if (ring.length && (a[0] !== b[0] || a[1] !== b[1])) ring.push([...a]);
  }
  return geometry;
}

function openRings(geometry) {
  for (const ring of ringsOf(geometry)) {
    const [a, b] = [ring[0], ring[ring.length - 1]];
    if (ring.length > 1 && a[0] === b[0] && a[1] === b[1]) ring.pop();
  }
  return geometry;
}

// Enough vertices to save: a point placed, two for a line, three for an area.
function complete(geometry) {
  if (geometry.type === "Point") return Array.isArray(geometry.coordinates);
  const path = firstPath(geometry);
  const need = geometry.type === "MultiPoint" ? 1 : /Line/.test(geometry.type) ? 2 : 3;
  return path.length >= need;
}

// Each vertex as [array holding it, index]: what a handle moves.
function vertices(geometry) {
  const out = [];
  const walk = (coords, depth) => {
    if (depth === 0) { out.push(coords); return; }
    for (const c of coords) walk(c, depth - 1);
  };
  const depth = { Point: 0, MultiPoint: 1, LineString: 1, MultiLineString: 2, Polygon: 2, MultiPolygon: 3 }[geometry.type];
  if (geometry.type === "Point") return geometry.coordinates ? [geometry.coordinates] : [];
  walk(geometry.coordinates, depth);
  return out;
}

const clone = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

// ---- Talking to the edit routes: the answer's body and ETag, or an ApiProblem that keeps
// the body of a refusal (a 412 holds the feature as it is now).
async function send(method, url, { body, etag, json } = {}) {
  const headers = writeHeaders({ Accept: `${GEOJSON}, application/json` });
  if (etag) headers["If-Match"] = etag;
  if (body !== undefined) headers["Content-Type"] = json ? "application/json" : GEOJSON;
  let response;
  try {
    response = await fetch(withLink(url), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (_) {
    throw new ApiProblem(statusWords(0), 0);
  }
  let doc = null;
  if (response.status !== 204) {
    try { doc = await response.json(); } catch (_) { doc = null; }
  }
  if (!response.ok) {
    const text = doc && typeof doc.description === "string" ? pageWords(doc.description) : statusWords(response.status);
    const problem = new ApiProblem(text, response.status, (doc && doc.code) || "");
    problem.body = doc;
    problem.etag = response.headers.get("ETag");
    throw problem;
  }
  return { doc, etag: response.headers.get("ETag") };
}

const itemUrl = (layer, fid) => `/collections/${encodeURIComponent(layer)}/items${fid === undefined ? "" : `/${encodeURIComponent(fid)}`}`;

// ---- The attribute form, from the layer's schema (JSON Schema types and formats).
function fieldKind(spec) {
  if (spec.type === "integer") return "integer";
  if (spec.type === "number") return "number";
  if (spec.type === "boolean") return "boolean";
  if (spec.format === "date") return "date";
  if (spec.format === "date-time") return "datetime";
  if (spec.contentEncoding) return "binary";
  return "text";
}

function toInput(kind, value) {
  if (value === null || value === undefined) return "";
  if (kind === "datetime") return String(value).replace(/(Z|[+-]\d\d:?\d\d)$/, "").slice(0, 19);
  if (kind === "date") return String(value).slice(0, 10);
  return String(value);
}

export class Editor {
  constructor(map, { layers, status }) {
    this.map = map;
    this.layers = layers;
    this.status = status;
    this.section = document.getElementById("sec-edit");
    this.select = document.getElementById("edit-layer");
    this.form = document.getElementById("edit-form");
    this.fields = document.getElementById("edit-fields");
    this.what = document.getElementById("edit-what");
    this.addButton = document.getElementById("edit-add");
    this.pickButton = document.getElementById("edit-pick");
    this.undoButton = document.getElementById("edit-undo");
    this.conflictBox = document.getElementById("edit-conflict");
    this.mode = ""; // "", "add" (clicks add vertices) or "pick" (a click chooses a feature)
    this.open = null; // { layer, fid (undefined while new), etag, saved (the feature as read), geometry }
    this.drawn = L.layerGroup().addTo(map);
    this.handles = L.layerGroup().addTo(map);
    this.theirs = null;
    this.undo = [];
    this.schemas = new Map();
    this.feeds = new Map();
    this.flashes = L.layerGroup().addTo(map);
    this.busy = false;

    this.select.addEventListener("change", () => this.chooseLayer());
    this.addButton.addEventListener("click", () => this.toggleMode("add"));
    this.pickButton.addEventListener("click", () => this.toggleMode("pick"));
    this.undoButton.addEventListener("click", () => this.run(() => this.undoLast()));
    this.form.addEventListener("submit", (e) => { e.preventDefault(); this.run(() => this.save()); });
    document.getElementById("edit-delete").addEventListener("click", () => this.run(() => this.remove()));
    document.getElementById("edit-stop").addEventListener("click", () => { this.close(); this.say("Editing stopped; nothing more was saved."); });
    document.getElementById("edit-keep-theirs").addEventListener("click", () => this.keepTheirs().catch((error) => this.say(plain(error))));
    document.getElementById("edit-put-mine").addEventListener("click", () => this.run(() => this.putMine()));
    map.on("click", (e) => this.onMapClick(e));
  }

  // True while a map click belongs to the editor (inspect.js then leaves it alone).
  get takesClicks() { return this.mode !== ""; }

  say(text) { this.status.textContent = text; }

  async run(task) {
    if (this.busy) return;
    this.busy = true;
    try {
      await task();
    } catch (error) {
      this.say(plain(error));
      if (!(error instanceof ApiProblem)) console.warn(error);
    } finally {
      this.busy = false;
    }
  }

  // ---- Which layers: the panel's list changed (signing in, a layer shown or hidden).
  layersChanged() {
    const editable = [...this.layers.states.values()].filter((s) => s.mayChange && s.dataType === "vector");
    this.section.hidden = editable.length === 0;
    const chosen = this.select.value;
    const options = editable.map((s) => `<option value="${escapeHtml(s.id)}">${escapeHtml(s.title)}</option>`).join("");
    if (this.select.dataset.options !== options) {
      this.select.innerHTML = options;
      this.select.dataset.options = options;
      if (editable.some((s) => s.id === chosen)) this.select.value = chosen;
      this.labelAdd();
    }
    if (this.open && !editable.some((s) => s.id === this.open.layer)) {
      this.close();
      this.say("You can no longer edit that layer: editing stopped.");
    }
    this.followFeeds();
  }

  layer() { return this.layers.states.get(this.select.value) || null; }

  labelAdd() {
    const s = this.layer();
    const kind = s ? KIND_WORDS[dimensionOf(s.geometryType)] : "";
    this.addButton.textContent = s ? `Add ${kind === "area" ? "an" : "a"} ${kind}` : "Add a feature";
  }

  chooseLayer() {
    this.close();
    this.labelAdd();
    const s = this.layer();
    if (s && !s.visible) this.layers.setVisible(s.id, true);
  }

  toggleMode(mode) {
    const s = this.layer();
    if (!s) return;
    if (this.mode === mode) { this.setMode(""); return; }
    if (!s.visible) this.layers.setVisible(s.id, true);
    if (mode === "add") {
      this.close();
      this.setMode("add");
      this.startNew(s);
      const kind = KIND_WORDS[dimensionOf(s.geometryType)];
      this.say(kind === "point"
        ? "Click the map where the new point goes, fill in its details, then Save."
        : `Click the map to place each corner of the new ${kind}, fill in its details, then Save.`);
    } else {
      this.setMode("pick");
      this.say(`Click a feature of ${s.title} on the map to edit it.`);
    }
  }

  setMode(mode) {
    this.mode = mode;
    this.addButton.setAttribute("aria-pressed", String(mode === "add"));
    this.pickButton.setAttribute("aria-pressed", String(mode === "pick"));
    this.map.getContainer().classList.toggle("lx-drawing", mode !== "");
  }

  async onMapClick(e) {
    if (!this.mode) return;
    const { lng, lat } = e.latlng.wrap();
    const point = [Number(lng.toFixed(7)), Number(lat.toFixed(7))];
    if (this.mode === "add" && this.open && this.open.fid === undefined) {
      const g = this.open.geometry;
      if (g.type === "Point") g.coordinates = point;
      else firstPath(g).push(point);
      this.redraw();
      if (g.type === "Point" || g.type === "MultiPoint") this.setMode("");
      return;
    }
    if (this.mode === "pick") await this.run(() => this.pickAt(e));
  }

  // ---- Opening a feature: the one under the click, read with its ETag.
  async pickAt(e) {
    const s = this.layer();
    const p = e.containerPoint;
    const sw = this.map.containerPointToLatLng([p.x - 6, p.y + 6]);
    const ne = this.map.containerPointToLatLng([p.x + 6, p.y - 6]);
    const bbox = [sw.lng, sw.lat, ne.lng, ne.lat].map((v) => v.toFixed(7)).join(",");
    const { holds } = await import("./inspect.js");
    const fc = await getJSON(`${itemUrl(s.id)}?bbox=${bbox}&limit=10`, { headers: { Accept: GEOJSON } });
    const hit = (fc.features || []).find((f) => holds(f.geometry, e.latlng.lng, e.latlng.lat));
    if (!hit) { this.say(`No feature of ${s.title} there. Click on one, or zoom in.`); return; }
    this.setMode("");
    await this.openFeature(s, hit.id);
  }

  async openFeature(s, fid) {
    const { doc, etag } = await send("GET", itemUrl(s.id, fid));
    await this.show(s, { fid, etag, feature: doc });
    this.say(`Editing feature ${fid} of ${s.title}: drag its handles to move it, change its details, then Save.`);
  }

  startNew(s) {
    this.show(s, { fid: undefined, etag: null, feature: { type: "Feature", properties: {}, geometry: emptyGeometry(s.geometryType) } });
  }

  async show(s, { fid, etag, feature }) {
    this.hideConflict();
    const geometry = openRings(clone(feature.geometry));
    this.open = { layer: s.id, fid, etag, saved: clone(feature), geometry };
    await this.buildForm(s, feature.properties || {});
    this.what.textContent = fid === undefined ? `A new ${KIND_WORDS[dimensionOf(s.geometryType)]} of ${s.title}` : `Feature ${fid} of ${s.title}`;
    document.getElementById("edit-delete").hidden = fid === undefined;
    this.form.hidden = false;
    this.form.dataset.feature = fid === undefined ? "" : String(fid);
    this.redraw();
  }

  close() {
    this.setMode("");
    this.open = null;
    this.form.hidden = true;
    this.form.dataset.feature = "";
    this.drawn.clearLayers();
    this.handles.clearLayers();
    this.hideConflict();
  }

  // The feature as it is being edited, and a handle on each vertex.
  redraw() {
    this.drawn.clearLayers();
    this.handles.clearLayers();
    if (!this.open) return;
    const g = this.open.geometry;
    const shown = closeRings(clone(g));
    if (vertices(g).length) {
      L.geoJSON(shown, { pmIgnore: true, interactive: false, style: () => MINE, pointToLayer: (_f, ll) => L.circleMarker(ll, { ...MINE, radius: 7, pmIgnore: true }) }).addTo(this.drawn);
    }
    const icon = L.divIcon({ className: "edit-handle", iconSize: [14, 14] });
    vertices(g).slice(0, MAX_HANDLES).forEach((coord, i) => {
      const handle = L.marker([coord[1], coord[0]], {
        draggable: true, icon, pmIgnore: true, keyboard: true,
        title: `Vertex ${i + 1}: drag to move it`, alt: `Vertex ${i + 1}`,
      });
      handle.on("drag", (ev) => {
        const ll = ev.target.getLatLng();
        coord[0] = Number(ll.lng.toFixed(7));
        coord[1] = Number(ll.lat.toFixed(7));
        this.drawn.clearLayers();
        L.geoJSON(closeRings(clone(g)), { pmIgnore: true, interactive: false, style: () => MINE, pointToLayer: (_f, p) => L.circleMarker(p, { ...MINE, radius: 7, pmIgnore: true }) }).addTo(this.drawn);
      });
      handle.on("dragend", () => { this.form.dataset.moved = "true"; this.say("Moved. Save to keep it."); });
      handle.addTo(this.handles);
    });
  }

  async schemaOf(s) {
    if (!this.schemas.has(s.id) || this.schemas.get(s.id).version !== s.version) {
      const schema = await getJSON(`/collections/${encodeURIComponent(s.id)}/schema`);
      const columns = Object.entries(schema.properties || {})
        .filter(([name, spec]) => name !== "geometry" && spec["x-ogc-role"] !== "primary-geometry")
        .map(([name, spec]) => ({ name, kind: fieldKind(spec) }));
      this.schemas.set(s.id, { version: s.version, columns });
    }
    return this.schemas.get(s.id).columns;
  }

  async buildForm(s, properties) {
    const columns = await this.schemaOf(s);
    this.fields.innerHTML = "";
    columns.forEach(({ name, kind }, i) => {
      if (kind === "binary") return; // kept as it is: not something to type in
      const id = `edit-field-${i}`;
      const row = document.createElement("div");
      row.className = kind === "boolean" ? "edit-row check" : "edit-row";
      const input = document.createElement("input");
      input.id = id;
      input.dataset.column = name;
      input.dataset.kind = kind;
      const value = properties[name];
      if (kind === "boolean") { input.type = "checkbox"; input.checked = value === true; } else {
        input.type = { integer: "number", number: "number", date: "date", datetime: "datetime-local" }[kind] || "text";
        if (kind === "integer") input.step = "1";
        if (kind === "number") input.step = "any";
        if (kind === "datetime") input.step = "1";
        if (kind === "text") input.maxLength = 10000;
        input.value = toInput(kind, value);
      }
      const label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = name;
      row.append(label, input);
      this.fields.appendChild(row);
    });
  }

  // The form's values, typed as the columns are (an empty field is no value).
  formProperties() {
    const props = {};
    for (const input of this.fields.querySelectorAll("input[data-column]")) {
      const { column, kind } = input.dataset;
      if (kind === "boolean") { props[column] = input.checked; continue; }
      const text = input.value.trim();
      if (text === "") { props[column] = null; continue; }
      if (kind === "integer" || kind === "number") {
        const n = Number(text);
        if (!Number.isFinite(n) || (kind === "integer" && !Number.isInteger(n))) {
          input.focus();
          throw new ApiProblem(`“${column}” needs ${kind === "integer" ? "a whole number" : "a number"}; “${text.slice(0, 40)}” is not one.`, 400);
        }
        props[column] = n;
      } else if (kind === "datetime") {
        props[column] = text.length === 16 ? `${text}:00` : text;
      } else props[column] = text;
    }
    return props;
  }

  // The feature the page would save: the form's values over what was read (so a column
  // the form leaves out keeps its value), the geometry as moved.
  mine() {
    const properties = { ...((this.open.saved && this.open.saved.properties) || {}), ...this.formProperties() };
    return { type: "Feature", properties, geometry: closeRings(clone(this.open.geometry)) };
  }

  // ---- Saving, deleting, undoing.
  async save() {
    if (!this.open) return;
    const s = this.layers.states.get(this.open.layer);
    if (!complete(this.open.geometry)) {
      const kind = KIND_WORDS[dimensionOf(s.geometryType)];
      this.say(kind === "point" ? "Click the map to place the point first." : `Click the map to place at least ${kind === "line" ? "two" : "three"} corners of the ${kind} first.`);
      return;
    }
    const feature = this.mine();
    if (this.open.fid === undefined) {
      const { doc, etag } = await send("POST", itemUrl(s.id), { body: feature });
      this.pushUndo({ op: "create", layer: s.id, fid: doc.id, etag });
      await this.show(s, { fid: doc.id, etag, feature: doc });
      this.say(`Saved: feature ${doc.id} was added to ${s.title}.`);
    } else {
      await this.replace(s, feature, this.open.etag);
    }
    await this.refreshLayer(s.id);
  }

  async replace(s, feature, etag) {
    const before = this.open.saved;
    const fid = this.open.fid;
    try {
      const { doc, etag: next } = await send("PUT", itemUrl(s.id, fid), { body: { ...feature, id: fid }, etag });
      this.pushUndo({ op: "change", layer: s.id, fid, before, etag: next });
      await this.show(s, { fid, etag: next, feature: doc });
      this.say(`Saved: feature ${fid} of ${s.title} was changed.`);
    } catch (error) {
      if (error instanceof ApiProblem && error.status === 412) { this.showConflict(s, error, feature); return; }
      throw error;
    }
  }

  async remove() {
    if (!this.open || this.open.fid === undefined) return;
    const s = this.layers.states.get(this.open.layer);
    const fid = this.open.fid;
    if (!window.confirm(`Delete feature ${fid} of ${s.title}? You can undo it with “Undo my last change”.`)) return;
    try {
      await send("DELETE", itemUrl(s.id, fid), { etag: this.open.etag });
    } catch (error) {
      if (error instanceof ApiProblem && error.status === 412) { this.showConflict(s, error, null); return; }
      throw error;
    }
    this.pushUndo({ op: "delete", layer: s.id, fid, before: this.open.saved });
    this.close();
    this.say(`Deleted feature ${fid} of ${s.title}.`);
    await this.refreshLayer(s.id);
  }

  pushUndo(entry) {
    this.undo.push(entry);
    if (this.undo.length > UNDO_DEPTH) this.undo.shift();
    this.undoButton.disabled = false;
  }

  // Undo puts back the state before the page's last change, with the ETag that change
  // gave (so a later change by someone else is not overwritten: that is a 412 here too).
  async undoLast() {
    const last = this.undo[this.undo.length - 1];
    if (!last) return;
    const s = this.layers.states.get(last.layer);
    if (!s) { this.undo.pop(); this.undoButton.disabled = !this.undo.length; return; }
    try {
      if (last.op === "create") {
        await send("DELETE", itemUrl(s.id, last.fid), { etag: last.etag });
        if (this.open && this.open.fid === last.fid) this.close();
        this.say(`Undone: the feature ${last.fid} you added was taken away again.`);
      } else if (last.op === "change") {
        const { doc, etag } = await send("PUT", itemUrl(s.id, last.fid), { body: { ...last.before, id: last.fid }, etag: last.etag });
        await this.show(s, { fid: last.fid, etag, feature: doc });
        this.say(`Undone: feature ${last.fid} is back as it was before your change.`);
      } else {
        await this.restoreDeleted(s, last);
      }
    } catch (error) {
      if (error instanceof ApiProblem && error.status === 412) {
        throw new ApiProblem("Someone else changed this feature after your change, so it was not undone. Choose it on the map to see their version.", 412);
      }
      throw error;
    }
    this.undo.pop();
    this.undoButton.disabled = !this.undo.length;
    await this.refreshLayer(s.id);
  }

  // A deleted feature comes back under its own id by going back to the change before its
  // deletion in its history (a revert); one that has no such change (it came from the file)
  // is added again as a new feature.
  async restoreDeleted(s, last) {
    const history = await this.historyOf(s.id, last.fid);
    const deleted = history.length && history[history.length - 1].operation === "delete";
    const target = deleted && history.length > 1 ? history[history.length - 2] : null;
    if (target && target.after) {
      const { doc, etag } = await send("POST", `${itemUrl(s.id, last.fid)}/revert`, { body: { change: target.id }, json: true });
      await this.show(s, { fid: last.fid, etag, feature: doc });
      this.say(`Undone: feature ${last.fid} is back.`);
      return;
    }
    if (!deleted) throw new ApiProblem("This feature was changed again by someone else after you deleted it, so it was not undone.", 412);
    const { doc, etag } = await send("POST", itemUrl(s.id), { body: { type: "Feature", properties: last.before.properties, geometry: last.before.geometry } });
    await this.show(s, { fid: doc.id, etag, feature: doc });
    this.say(`Undone: the feature is back, as feature ${doc.id}.`);
  }

  // A feature's changes, oldest first (a page at a time, at most a few pages).
  async historyOf(layer, fid) {
    let url = `${itemUrl(layer, fid)}/history?limit=1000`;
    const changes = [];
    for (let page = 0; url && page < 20; page++) {
      const body = await getJSON(url);
      changes.push(...(body.changes || []).filter((c) => c.featureId === fid));
      const next = (body.links || []).find((l) => l.rel === "next");
      url = next ? new URL(next.href).pathname + new URL(next.href).search : null;
    }
    return changes;
  }

  // ---- Someone else saved first: both versions, and the person chooses.
  showConflict(s, error, mine) {
    const theirs = error.body ? error.body.feature : null;
    this.conflict = { layer: s.id, theirs, etag: error.etag, mine };
    const rows = document.getElementById("edit-conflict-rows");
    const text = document.getElementById("edit-conflict-text");
    if (!theirs) {
      text.textContent = `Someone else deleted feature ${this.open.fid} after you opened it, so your change was not saved. Keep theirs to leave it deleted, or put yours back as it is on your screen.`;
      rows.innerHTML = "";
    } else {
      text.textContent = `Someone else changed feature ${this.open.fid} after you opened it, so your change was not saved. Here are both versions: keep theirs, or put yours over theirs.`;
      const ours = (mine && mine.properties) || {};
      const names = [...new Set([...Object.keys(theirs.properties || {}), ...Object.keys(ours)])];
      const cell = (v) => escapeHtml(v === null || v === undefined ? "(empty)" : v);
      rows.innerHTML = names.map((n) => {
        const a = (theirs.properties || {})[n];
        const b = ours[n];
        const differs = JSON.stringify(a ?? null) !== JSON.stringify(b ?? null);
        return `<tr${differs ? ' class="differs"' : ""}><th scope="row">${escapeHtml(n)}</th><td data-side="theirs">${cell(a)}</td><td data-side="mine">${cell(b)}</td></tr>`;
      }).join("") + `<tr><th scope="row">shape</th><td data-side="theirs">${JSON.stringify(theirs.geometry) === JSON.stringify(mine && mine.geometry) ? "the same as yours" : "dashed purple on the map"}</td><td data-side="mine">orange on the map</td></tr>`;
      this.theirs = L.geoJSON(theirs, { pmIgnore: true, interactive: false, style: () => THEIRS, pointToLayer: (_f, ll) => L.circleMarker(ll, { ...THEIRS, radius: 9, pmIgnore: true }) }).addTo(this.map);
    }
    document.getElementById("edit-put-mine").hidden = !mine;
    this.conflictBox.hidden = false;
    this.say(text.textContent);
    document.getElementById("edit-keep-theirs").focus();
  }

  hideConflict() {
    this.conflictBox.hidden = true;
    if (this.theirs) { this.map.removeLayer(this.theirs); this.theirs = null; }
    this.conflict = null;
  }

  async keepTheirs() {
    const c = this.conflict;
    if (!c) return;
    const s = this.layers.states.get(c.layer);
    if (c.theirs) {
      // the form shows their version before the words say so
      await this.show(s, { fid: this.open.fid, etag: c.etag, feature: c.theirs });
      this.say(`Kept their version of feature ${this.open.fid}; your change was not saved.`);
    } else {
      this.close();
      this.say("Kept their change: the feature stays deleted.");
    }
    this.refreshLayer(s.id).catch((error) => this.say(plain(error)));
  }

  async putMine() {
    const c = this.conflict;
    if (!c || !c.mine) return;
    const s = this.layers.states.get(c.layer);
    this.hideConflict();
    if (c.theirs) {
      await this.replace(s, c.mine, c.etag);
    } else {
      const { doc, etag } = await send("POST", itemUrl(s.id), { body: { type: "Feature", properties: c.mine.properties, geometry: c.mine.geometry } });
      this.pushUndo({ op: "create", layer: s.id, fid: doc.id, etag });
      await this.show(s, { fid: doc.id, etag, feature: doc });
      this.say(`Saved yours as a new feature ${doc.id}.`);
    }
    await this.refreshLayer(s.id);
  }

  async refreshLayer(id) {
    await this.layers.reload(id);
    this.layersChanged();
  }

  // ---- Other people's edits, as they happen: each followed layer's live feed. The feed's
  // address comes from the layer's description (a link of type text/event-stream), so a
  // server without it is never asked.
  followFeeds() {
    if (typeof EventSource === "undefined") return;
    const wanted = [...this.layers.states.values()]
      .filter((s) => s.visible && s.feed)
      .sort((a, b) => Number(b.mayChange) - Number(a.mayChange))
      .slice(0, MAX_FEEDS);
    const ids = new Set(wanted.map((s) => s.id));
    for (const [id, feed] of [...this.feeds]) {
      if (!ids.has(id)) { feed.close(); this.feeds.delete(id); }
    }
    for (const s of wanted) {
      if (this.feeds.has(s.id)) continue;
      const source = new EventSource(withLink(s.feed));
      source.addEventListener("change", (ev) => this.onLiveChange(s.id, ev));
      // refused (the server follows as many feeds as it can, or this address has many
      // open): the browser gives up on that feed, so the page asks again a little later
      source.addEventListener("error", () => {
        if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects itself
        this.feeds.delete(s.id);
        clearTimeout(this.feedRetry);
        this.feedRetry = setTimeout(() => this.followFeeds(), FEED_RETRY_MS);
      });
      source.addEventListener("gone", () => {
        source.close();
        this.feeds.delete(s.id);
        this.layers.refresh().catch(() => {});
      });
      this.feeds.set(s.id, source);
    }
    document.body.dataset.liveFeeds = [...this.feeds.keys()].join(",");
  }

  onLiveChange(id, ev) {
    let change;
    try { change = JSON.parse(ev.data); } catch (_) { return; }
    if (!change || typeof change !== "object") return;
    const feature = change.after || change.before;
    if (feature && feature.geometry) this.flash(feature);
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => {
      this.refreshLayer(id).then(() => {
        document.body.dataset.liveChanges = String(Number(document.body.dataset.liveChanges || 0) + 1);
      }).catch(() => {});
    }, 150);
  }

  // Mark a feature someone changed, for a few seconds.
  flash(feature) {
    const shape = L.geoJSON(feature, { pmIgnore: true, interactive: false, style: () => FLASH, pointToLayer: (_f, ll) => L.circleMarker(ll, { ...FLASH, radius: 10, pmIgnore: true }) });
    shape.addTo(this.flashes);
    setTimeout(() => this.flashes.removeLayer(shape), 4000);
  }
}

export function wireEditor(map, layers, status) {
  const editor = new Editor(map, { layers, status });
  editor.layersChanged();
  return editor;
}
