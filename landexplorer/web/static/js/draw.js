// Draw and measure (polygon, line, marker; edit and delete) with Leaflet-Geoman, and the
// "What's here?" area report from POST /analysis/report.
import { downloadText, escapeHtml, plain, postJSON, toCSV } from "./api.js";
import { formatArea, formatLength, measure } from "./geo.js";
import { licenceLine } from "./compare.js";

const SHAPE_STYLE = { color: "#e6550d", weight: 3, fillOpacity: 0.15 };

// On a phone the panel covers the map: put it away so the person can draw.
function closePanelOnPhone() {
  const panel = document.getElementById("panel");
  if (window.matchMedia("(max-width: 700px)").matches && !panel.hidden) {
    document.getElementById("panel-toggle").click();
  }
}

export class DrawTools {
  constructor(map, { layers, onChange }) {
    this.map = map;
    this.layers = layers;
    this.onChange = onChange || (() => {});
    this.drawn = L.featureGroup().addTo(map);
    this.measureEl = document.getElementById("measure");
    this.reportEl = document.getElementById("report");
    this.lastReport = null;

    this.geoman = null;

    document.querySelectorAll("[data-draw]").forEach((button) => {
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", async () => {
        await this.ready();
        const shape = button.dataset.draw;
        const active = map.pm.globalDrawModeEnabled() && button.getAttribute("aria-pressed") === "true";
        map.pm.disableDraw();
        if (!active) {
          map.pm.enableDraw(shape);
          this.setPressed(button);
          closePanelOnPhone();
        } else this.setPressed(null);
      });
    });
    document.getElementById("draw-edit").addEventListener("click", async (e) => {
      await this.ready();
      map.pm.toggleGlobalEditMode();
      e.target.setAttribute("aria-pressed", String(map.pm.globalEditModeEnabled()));
    });
    document.getElementById("draw-download").addEventListener("click", () => {
      downloadText("shapes.geojson", JSON.stringify(this.toGeoJSON()), "application/geo+json");
    });
    document.getElementById("draw-delete").addEventListener("click", async (e) => {
      await this.ready();
      map.pm.toggleGlobalRemovalMode();
      e.target.setAttribute("aria-pressed", String(map.pm.globalRemovalModeEnabled()));
    });
  }

  // Leaflet-Geoman is loaded on first use: most visits never draw, and it is the largest
  // library of the page.
  ready() {
    if (!this.geoman) {
      this.geoman = new Promise((resolve, reject) => {
        const css = document.createElement("link");
        css.rel = "stylesheet";
        css.href = "/web/vendor/geoman/leaflet-geoman.css";
        document.head.appendChild(css);
        const script = document.createElement("script");
        script.src = "/web/vendor/geoman/leaflet-geoman.min.js";
        script.onerror = () => reject(new Error("The drawing tools did not load."));
        script.onload = () => {
          L.PM.reInitLayer(this.map);
          L.PM.reInitLayer(this.drawn);
          this.setup();
          resolve();
        };
        document.head.appendChild(script);
      });
    }
    return this.geoman;
  }

  setup() {
    const map = this.map;
    map.pm.setGlobalOptions({ layerGroup: this.drawn, pathOptions: SHAPE_STYLE, snappable: false });
    map.on("pm:create", (e) => {
      this.watch(e.layer);
      this.setPressed(null);
      this.describe(e.layer, true);
      this.onChange();
    });
    map.on("pm:remove", () => { this.measureEl.textContent = ""; this.onChange(); });
    // Interactive vector tiles take the clicks over them for their own features; while
    // drawing, every click must place a vertex instead.
    const container = map.getContainer();
    map.on("pm:drawstart", () => container.classList.add("lx-drawing"));
    map.on("pm:drawend", () => container.classList.remove("lx-drawing"));
  }

  setPressed(active) {
    document.querySelectorAll("[data-draw]").forEach((b) => b.setAttribute("aria-pressed", String(b === active)));
  }

  watch(layer) {
    layer.on("pm:edit", () => { this.describe(layer, false); this.onChange(); });
    layer.on("click", () => this.describe(layer, false));
  }

  // Measure a shape and, for an area, ask the API what each visible layer holds inside it.
  async describe(layer, runReport) {
    const geometry = layer.toGeoJSON().geometry;
    if (geometry.type === "Point") {
      const [lon, lat] = geometry.coordinates;
      this.measureEl.textContent = `Marker at ${lat.toFixed(5)}, ${lon.toFixed(5)}`;
      return;
    }
    try {
      const m = await measure(geometry);
      this.measureEl.innerHTML = m.area_m2 !== undefined
        ? `<strong>Area:</strong> <span data-testid="drawn-area" data-value="${m.area_m2}">${formatArea(m.area_m2)}</span><br><span class="hint">measured in ${escapeHtml(m.crs)}</span>`
        : `<strong>Length:</strong> <span data-testid="drawn-length" data-value="${m.length_m}">${formatLength(m.length_m)}</span><br><span class="hint">measured in ${escapeHtml(m.crs)}</span>`;
    } catch (_) {
      this.measureEl.textContent = "The shape could not be measured.";
    }
    if (runReport && (geometry.type === "Polygon" || geometry.type === "MultiPolygon")) {
      await this.report(geometry);
    }
  }

  async report(geometry, title = "the drawn area") {
    // An area picked on the map (not drawn) is outlined, so it is clear what was measured.
    if (this.outline) this.map.removeLayer(this.outline);
    this.outline = title === "the drawn area" ? null : L.geoJSON(geometry, {
      pmIgnore: true, interactive: false,
      style: () => ({ color: "#e6550d", weight: 3, dashArray: "6 4", fill: false }),
    }).addTo(this.map);
    const section = document.getElementById("sec-draw");
    section.open = true;
    const layers = this.layers.visibleIds();
    this.reportEl.innerHTML = `<p class="hint">Working out what is inside ${escapeHtml(title)}…</p>`;
    try {
      const body = await postJSON("/analysis/report", { area: geometry, layers });
      this.lastReport = body;
      this.renderReport(body, title);
    } catch (error) {
      this.reportEl.innerHTML = `<p class="message error">${escapeHtml(plain(error))}</p>`;
    }
  }

  renderReport(body, title) {
    const fmt = (v, digits = 0) => (v === null || v === undefined ? "–" : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits }));
    let html = `<h3>What's inside ${escapeHtml(title)}</h3>
      <p data-testid="report-area" data-value="${body.area_m2}">${formatArea(body.area_m2)}</p>
      <p class="hint">Areas computed in ${escapeHtml(body.crs)}.</p>`;
    for (const l of body.layers) {
      html += `<h3 data-layer="${escapeHtml(l.layer)}">${escapeHtml(l.title)}</h3>`;
      if (l.kind === "raster") {
        const s = l.stats || {};
        html += `<table data-testid="report-stats" data-layer="${escapeHtml(l.layer)}"><tbody>` +
          Object.entries(s).map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td class="num" data-stat="${escapeHtml(k)}" data-value="${escapeHtml(v)}">${fmt(v, 2)}</td></tr>`).join("") +
          `</tbody></table>`;
      } else {
        const unit = l.unit === "m2" ? "m²" : l.unit;
        html += `<p><span data-testid="report-count" data-layer="${escapeHtml(l.layer)}" data-value="${l.count}">${fmt(l.count)}</span> ${l.count === 1 ? "feature" : "features"}` +
          (l.amount !== null && l.amount !== undefined ? `, <span data-testid="report-amount" data-layer="${escapeHtml(l.layer)}" data-value="${l.amount}">${fmt(l.amount)}</span> ${escapeHtml(unit)}` : "") +
          (l.share !== null && l.share !== undefined ? ` (${fmt(l.share * 100, 1)}% of the area)` : "") + `</p>`;
        if (l.classes && l.classes.length) {
          const cols = Object.keys(l.classes[0]);
          html += `<table data-layer="${escapeHtml(l.layer)}"><thead><tr>${cols.map((c) => `<th>${escapeHtml(c)}</th>`).join("")}</tr></thead><tbody>` +
            l.classes.map((row) => `<tr>${cols.map((c) => typeof row[c] === "number"
              ? `<td class="num" data-col="${escapeHtml(c)}" data-value="${row[c]}">${fmt(row[c], c === "share" ? 3 : 0)}</td>`
              : `<td data-col="${escapeHtml(c)}">${escapeHtml(row[c])}</td>`).join("")}</tr>`).join("") +
            `</tbody></table>`;
        }
      }
      html += `<p class="credit">${escapeHtml(l.attribution)} ${l.licence ? `(${escapeHtml(l.licence)})` : ""}</p>`;
    }
    html += licenceLine(body, "report-licences");
    if (body.notes && body.notes.length) html += `<p class="hint">${body.notes.map(escapeHtml).join("<br>")}</p>`;
    html += `<button type="button" id="report-csv">Download CSV</button>`;
    this.reportEl.innerHTML = html;
    document.getElementById("report-csv").addEventListener("click", () => this.downloadReport());
    this.reportEl.scrollIntoView({ block: "nearest" });
  }

  downloadReport() {
    const body = this.lastReport;
    if (!body) return;
    const rows = [];
    for (const l of body.layers) {
      rows.push({ layer: l.layer, class: "", count: l.count, amount: l.amount, unit: l.unit, share: l.share, licence: l.licence, attribution: l.attribution });
      for (const c of l.classes || []) rows.push({ layer: l.layer, ...c, licence: l.licence, attribution: l.attribution });
      for (const [k, v] of Object.entries(l.stats || {})) rows.push({ layer: l.layer, class: k, amount: v });
    }
    downloadText("area-report.csv", toCSV(rows), "text/csv");
  }

  // Drawn shapes as GeoJSON (for the address and saved maps), and back.
  toGeoJSON() {
    return this.drawn.toGeoJSON();
  }

  async restore(collection) {
    this.drawn.clearLayers();
    if (!collection || !collection.features || !collection.features.length) return;
    await this.ready(); // so the restored shapes can be edited like drawn ones
    L.geoJSON(collection, {
      style: () => SHAPE_STYLE,
      onEachFeature: (_f, layer) => { this.drawn.addLayer(layer); this.watch(layer); },
    });
  }
}
