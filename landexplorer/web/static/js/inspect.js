// Inspect: a click on the map asks the API what every visible layer holds at that spot:
// the features of each vector layer (a few pixels around it) and the value of each raster
// layer (/collections/{id}/value), so every layer answers - not only the one whose tile
// happens to be on top. The popup lists them in drawing order, the layer on top first.
import { escapeHtml, getJSON, plain } from "./api.js";

const TOLERANCE_PX = 4;
const PER_LAYER = 10;

function insideRing(x, y, ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

// Polygons must hold the clicked point; points and lines only need to be within the tolerance.
export function holds(geometry, lon, lat) {
  if (!geometry) return false;
  const polys = geometry.type === "Polygon" ? [geometry.coordinates]
    : geometry.type === "MultiPolygon" ? geometry.coordinates : null;
  if (!polys) return true;
  return polys.some((rings) => insideRing(lon, lat, rings[0]) && !rings.slice(1).some((r) => insideRing(lon, lat, r)));
}

function formatValue(value, unit) {
  const text = Number(value).toLocaleString(undefined, { maximumFractionDigits: 2 });
  return unit ? `${text} ${unit}` : text;
}

function popupHtml(hits) {
  return `<div class="popup">` + hits.map(({ state, feature, value }, i) => {
    if (value) {
      const unit = value.unit || (state.style && state.style.unit) || "";
      return `<h4>${escapeHtml(state.title)}</h4><table data-layer="${escapeHtml(state.id)}" data-kind="raster">` +
        `<tr><th>value</th><td data-value="${escapeHtml(value.value)}">${escapeHtml(formatValue(value.value, unit))}</td></tr></table>`;
    }
    const rows = Object.entries(feature.properties || {})
      .map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join("");
    const polygon = /polygon/i.test(feature.geometry && feature.geometry.type);
    return `<h4>${escapeHtml(state.title)}</h4><table data-layer="${escapeHtml(state.id)}">${rows}</table>` +
      (polygon ? `<button type="button" class="whats-here" data-layer="${escapeHtml(state.id)}" data-hit="${i}">What's here?</button>` : "");
  }).join("") + `</div>`;
}

export function wireInspect(map, layers, draw, status) {
  let asked = 0;
  map.on("click", async (e) => {
    if (map.editor && map.editor.takesClicks) return; // the click adds a vertex or picks a feature
    const pm = map.pm;
    if (pm && (pm.globalDrawModeEnabled() || pm.globalEditModeEnabled() || pm.globalRemovalModeEnabled())) return;
    const visible = layers.drawOrder(); // the layer drawn on top first
    if (!visible.length) return;
    const asking = ++asked;
    const p = e.containerPoint;
    const sw = map.containerPointToLatLng([p.x - TOLERANCE_PX, p.y + TOLERANCE_PX]);
    const ne = map.containerPointToLatLng([p.x + TOLERANCE_PX, p.y - TOLERANCE_PX]);
    const bbox = [sw.lng, sw.lat, ne.lng, ne.lat].map((v) => v.toFixed(7)).join(",");
    const hits = [];
    const { lng, lat } = e.latlng.wrap();
    const ask = (state) => (state.dataType === "raster"
      ? getJSON(`/collections/${state.id}/value?lon=${lng.toFixed(7)}&lat=${lat.toFixed(7)}`)
        .then((value) => ({ state, value }))
      : getJSON(`/collections/${state.id}/items?bbox=${bbox}&limit=${PER_LAYER}`, { headers: { Accept: "application/geo+json" } })
        .then((fc) => ({ state, fc })));
    try {
      const answers = await Promise.all(visible.map(ask));
      for (const { state, fc, value } of answers) {
        if (value) {
          if (value.value !== null && value.value !== undefined) hits.push({ state, value });
          continue;
        }
        for (const feature of fc.features || []) {
          if (holds(feature.geometry, e.latlng.lng, e.latlng.lat)) hits.push({ state, feature });
        }
      }
    } catch (error) {
      status.textContent = plain(error);
      return;
    }
    if (asking !== asked || !hits.length) return; // a newer click, or nothing there
    const popup = L.popup({ maxWidth: 340 }).setLatLng(e.latlng).setContent(popupHtml(hits)).openOn(map);
    popup.getElement().querySelectorAll(".whats-here").forEach((button) => {
      button.addEventListener("click", async () => {
        const { state, feature } = hits[Number(button.dataset.hit)];
        map.closePopup();
        document.getElementById("panel").hidden = false;
        document.getElementById("panel-toggle").setAttribute("aria-expanded", "true");
        await draw.report(feature.geometry, `this ${state.title.toLowerCase()} feature`);
      });
    });
  });
}
