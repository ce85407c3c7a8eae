// Sharing: the view (centre, zoom, visible layers with their opacity, drawn shapes) lives in
// the address, and "Save map" stores it server-side (POST /maps) under a short link.
import { escapeHtml, getJSON, plain, postJSON, setMessage } from "./api.js";

function encodeShapes(fc) {
  if (!fc || !fc.features.length) return "";
  const round = (c) => (typeof c[0] === "number" ? c.map((v) => Math.round(v * 1e6) / 1e6) : c.map(round));
  const slim = {
    type: "FeatureCollection",
    features: fc.features.map((f) => ({ type: "Feature", properties: {}, geometry: { type: f.geometry.type, coordinates: round(f.geometry.coordinates) } })),
  };
  const bytes = new TextEncoder().encode(JSON.stringify(slim));
  let text = "";
  bytes.forEach((b) => { text += String.fromCharCode(b); });
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeShapes(text) {
  try {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    const bytes = Uint8Array.from(raw, (c) => c.charCodeAt(0));
    const fc = JSON.parse(new TextDecoder().decode(bytes));
    return fc && fc.type === "FeatureCollection" ? fc : null;
  } catch (_) {
    return null;
  }
}

// The state in the address: #map=zoom/lat/lon&layers=id,id:opacity&shapes=...
export function readHash(hash = location.hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const out = {};
  const view = (params.get("map") || "").split("/").map(Number);
  if (view.length === 3 && view.every(Number.isFinite)) out.view = { zoom: view[0], center: [view[1], view[2]] };
  if (params.has("layers")) {
    out.layers = params.get("layers").split(",").filter(Boolean).map((part) => {
      const [id, opacity] = part.split(":");
      return { id, opacity: opacity === undefined ? undefined : Math.min(1, Math.max(0, Number(opacity) / 100)) };
    });
  }
  if (params.has("shapes")) out.shapes = decodeShapes(params.get("shapes"));
  return out;
}

export function writeHash(map, layers, draw) {
  const c = map.getCenter();
  const z = map.getZoom();
  const digits = Math.max(0, Math.ceil(Math.log2(Math.max(z, 1)) + 1));
  const parts = [`map=${z}/${c.lat.toFixed(digits + 1)}/${c.lng.toFixed(digits + 1)}`];
  const visible = [...layers.states.values()].filter((s) => s.visible)
    .map((s) => (s.opacity < 1 ? `${s.id}:${Math.round(s.opacity * 100)}` : s.id));
  parts.push(`layers=${visible.join(",")}`);
  const shapes = encodeShapes(draw.toGeoJSON());
  if (shapes) parts.push(`shapes=${shapes}`);
  history.replaceState(null, "", `${location.pathname}${location.search}#${parts.join("&")}`);
}

export function currentMap(map, layers, draw, title) {
  const c = map.getCenter();
  return {
    title,
    view: { center: [c.lat, c.lng], zoom: map.getZoom() },
    layers: [...layers.states.values()].filter((s) => s.visible).map((s) => ({ id: s.id, opacity: s.opacity })),
    shapes: draw.toGeoJSON(),
  };
}

// A saved map holds only the layers the viewer may see; the others are counted ("1 layer
// on this map is not available to you"), never named.
export async function loadSavedMap(id) {
  const saved = await getJSON(`/maps/${encodeURIComponent(id)}`);
  const status = document.getElementById("status");
  if (saved.unavailable_message && status) status.textContent = saved.unavailable_message;
  return saved;
}

export function wireSave(map, layers, draw) {
  const button = document.getElementById("share-save");
  const message = document.getElementById("share-message");
  const link = document.getElementById("share-link");
  button.addEventListener("click", async () => {
    setMessage(message, "Saving…");
    try {
      const title = document.getElementById("share-title").value.trim();
      const saved = await postJSON("/maps", currentMap(map, layers, draw, title));
      link.hidden = false;
      link.value = saved.url;
      link.select();
      message.innerHTML = `Saved. Share this link: <a href="${escapeHtml(saved.url)}" id="share-url">${escapeHtml(saved.url)}</a>` +
        (saved.licences && saved.licences.inputs.length ? `<br><span class="credit" data-testid="share-licences">${escapeHtml(saved.licences.summary)}.</span>` : "");
      message.className = "message ok";
    } catch (error) {
      setMessage(message, plain(error), "error");
    }
  });
}
