// Find: features by attribute (through each layer's queryables and a CQL2 LIKE filter on the
// public items endpoint), a coordinate, or a British National Grid reference.
import { escapeHtml, getJSON, plain } from "./api.js";
import { bboxOfGeometry, bngToLonLat, parseCoordinates, parseGridRef } from "./geo.js";

const PER_LAYER = 5;

function likeFilter(columns, text) {
  const pattern = `%${text.replace(/'/g, "''")}%`;
  return columns.map((c) => `"${c.replace(/"/g, '""')}" LIKE '${pattern}'`).join(" OR ");
}

export function wireFind(map, layers) {
  const form = document.getElementById("find-form");
  const input = document.getElementById("find-text");
  const list = document.getElementById("find-results");
  let marker = null;

  const goTo = (lat, lon, zoom, label) => {
    map.setView([lat, lon], zoom);
    if (marker) marker.remove();
    marker = L.circleMarker([lat, lon], { radius: 8, color: "#e6550d", weight: 3, pmIgnore: true }).addTo(map);
    if (label) marker.bindTooltip(label).openTooltip();
  };

  const show = (items) => {
    list.innerHTML = "";
    for (const item of items) {
      const li = document.createElement("li");
      if (item.onClick) {
        const b = document.createElement("button");
        b.type = "button";
        b.innerHTML = item.html;
        b.addEventListener("click", item.onClick);
        li.appendChild(b);
      } else li.innerHTML = item.html;
      list.appendChild(li);
    }
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const ref = parseGridRef(text);
    if (ref) {
      const [lon, lat] = await bngToLonLat(ref.easting, ref.northing);
      goTo(lat, lon, ref.precision >= 1000 ? 14 : 16, `Grid reference ${text.toUpperCase()}`);
      show([{ html: `Grid reference ${escapeHtml(text.toUpperCase())}: ${lat.toFixed(5)}, ${lon.toFixed(5)}` }]);
      return;
    }
    const coords = parseCoordinates(text);
    if (coords) {
      let { lat, lon } = coords;
      if (coords.easting !== undefined) [lon, lat] = await bngToLonLat(coords.easting, coords.northing);
      goTo(lat, lon, 15, `${lat.toFixed(5)}, ${lon.toFixed(5)}`);
      show([{ html: `Went to ${lat.toFixed(5)}, ${lon.toFixed(5)}` }]);
      return;
    }
    show([{ html: "Searching…" }]);
    const targets = [...layers.states.values()].filter((s) => s.dataType === "vector");
    const results = [];
    const problems = [];
    await Promise.all(targets.map(async (s) => {
      try {
        const q = await getJSON(`/collections/${s.id}/queryables`);
        const columns = Object.entries(q.properties || {})
          .filter(([name, p]) => name !== "geometry" && p.type === "string" && !p.format)
          .map(([name]) => name);
        if (!columns.length) return;
        const url = `/collections/${s.id}/items?limit=${PER_LAYER}&filter-lang=cql2-text&filter=${encodeURIComponent(likeFilter(columns, text))}`;
        const fc = await getJSON(url, { headers: { Accept: "application/geo+json" } });
        for (const f of fc.features || []) {
          const hit = columns.find((c) => String(f.properties[c] ?? "").toLowerCase().includes(text.toLowerCase())) || columns[0];
          results.push({ state: s, feature: f, label: String(f.properties[hit]) });
        }
      } catch (error) {
        problems.push(`${s.title}: ${plain(error)}`);
      }
    }));
    if (!results.length) {
      show([{ html: problems.length ? escapeHtml(problems[0]) : `Nothing found for “${escapeHtml(text)}”.` }]);
      return;
    }
    show(results.map((r) => ({
      html: `${escapeHtml(r.label)} <span class="hint">(${escapeHtml(r.state.title)})</span>`,
      onClick: () => {
        if (!r.state.visible) layers.setVisible(r.state.id, true);
        const [minx, miny, maxx, maxy] = bboxOfGeometry(r.feature.geometry);
        map.fitBounds([[miny, minx], [maxy, maxx]], { maxZoom: 17 });
      },
    })));
  });
}
