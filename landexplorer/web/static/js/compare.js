// Compare a community layer with an open layer (POST /analysis/compare): a table by class,
// the matching features highlighted on the map, CSV and GeoJSON downloads, what the result
// obliges (its inputs' licences), and "Keep as my layer" (POST /analysis/save: private to
// your group; the server refuses sharing it wider when an input's licence does not allow it).
import { downloadText, escapeHtml, getJSON, plain, postJSON, setMessage, toCSV } from "./api.js";
import { classColumnOf, rememberOwnLayer } from "./layers.js";

// A layer id from what someone typed: lower case, letters, digits and _ only.
function layerId(text) {
  const id = text.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "_").replace(/^[^a-z]+|_+$/g, "");
  return id.slice(0, 48).replace(/_+$/, "");
}

// "Made from A (OGL-UK-3.0) and B (ODbL-1.0): credit ...; share alike ..." - what the
// result obliges (the answer's licences block), and whether it may be published.
export function licenceLine(result, testid = "compare-licences") {
  const l = result && result.licences;
  if (!l || !l.summary) return "";
  const publish = l.may_publish ? "" : ` It may not be shared as a public layer: ${l.why_not}`;
  return `<p class="credit licences" data-testid="${testid}">${escapeHtml(l.summary + "." + publish)}</p>`;
}

export function wireCompare(layers) {
  const form = document.getElementById("compare-form");
  const left = document.getElementById("compare-left");
  const right = document.getElementById("compare-right");
  const by = document.getElementById("compare-by");
  const predicate = document.getElementById("compare-predicate");
  const distanceRow = document.getElementById("compare-distance-row");
  const message = document.getElementById("compare-message");
  const out = document.getElementById("compare-result");
  const section = document.getElementById("sec-compare");
  section.addEventListener("toggle", () => { if (section.open && by.options.length <= 1) fillColumns(); });

  const fill = () => {
    const vectors = [...layers.states.values()].filter((s) => s.dataType === "vector");
    const option = (s) => `<option value="${escapeHtml(s.id)}">${escapeHtml(s.title)}</option>`;
    const community = vectors.filter((s) => s.group === "community" || s.group === "own");
    const open = vectors.filter((s) => s.group !== "community" && s.group !== "own");
    left.innerHTML = (community.length ? community : vectors).map(option).join("");
    right.innerHTML = (open.length ? open : vectors).map(option).join("");
    // The class columns are asked for only when someone opens the comparison.
    if (section.open) fillColumns();
  };

  const fillColumns = async () => {
    by.innerHTML = `<option value="">(none)</option>`;
    if (!right.value) return;
    try {
      const q = await getJSON(`/collections/${right.value}/queryables`);
      const names = Object.entries(q.properties || {})
        .filter(([name, p]) => name !== "geometry" && p.type === "string" && !p.format).map(([name]) => name);
      by.innerHTML += names.map((n) => `<option value="${escapeHtml(n)}">${escapeHtml(n)}</option>`).join("");
      const state = layers.states.get(right.value);
      const preferred = classColumnOf(names, state ? state.style : {});
      if (preferred) by.value = preferred;
    } catch (error) {
      setMessage(message, plain(error), "error");
    }
  };

  right.addEventListener("change", fillColumns);
  predicate.addEventListener("change", () => { distanceRow.hidden = predicate.value !== "within-distance"; });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setMessage(message, "Comparing…");
    out.innerHTML = "";
    const body = { left: left.value, right: right.value, predicate: predicate.value };
    if (by.value) body.by = by.value;
    if (predicate.value === "within-distance") body.distance = Number(document.getElementById("compare-distance").value);
    try {
      const result = await postJSON("/analysis/compare", body);
      setMessage(message, `${result.left_matched.toLocaleString()} of ${result.left_total.toLocaleString()} features of the community layer match.`, "ok");
      render(result, body);
    } catch (error) {
      setMessage(message, plain(error), "error");
    }
  });

  const render = (result, request) => {
    const rows = result.summary || [];
    const cols = rows.length ? Object.keys(rows[0]) : [];
    out.innerHTML = `<h3>By ${escapeHtml(result.by || "class")}</h3>
      <table data-testid="compare-summary"><thead><tr>${cols.map((c) => `<th>${escapeHtml(c)}</th>`).join("")}</tr></thead>
      <tbody>${rows.map((r) => `<tr>${cols.map((c) => `<td class="${typeof r[c] === "number" ? "num" : ""}">${escapeHtml(r[c])}</td>`).join("")}</tr>`).join("")}</tbody></table>
      <p class="hint">Distances and areas in ${escapeHtml(result.crs)}.</p>
      <p class="credit">${(result.sources || []).map((s) => escapeHtml(`${s.title || s.id}: ${s.attribution} (${s.licence || s.license || ""})`)).join("<br>")}</p>
      ${licenceLine(result)}
      <button type="button" id="compare-csv">Download CSV</button>
      <button type="button" id="compare-geojson">Download GeoJSON</button>
      <p><label for="compare-keep-name">Keep the matches as a layer of yours (signed in), named</label>
      <input type="text" id="compare-keep-name" maxlength="48" value="${escapeHtml(layerId(`${request.left}_meeting_${request.right}`))}">
      <button type="button" id="compare-keep">Keep as my layer</button></p>
      <p id="compare-keep-message" class="message" role="status"></p>`;
    // The matches come back as GeoJSON (the community layer's geometry): draw them on top.
    const matches = result.matches || { type: "FeatureCollection", features: [] };
    if (!layers.states.get(request.left).visible) layers.setVisible(request.left, true);
    layers.showMatches(matches);
    document.getElementById("compare-csv").addEventListener("click", () => {
      const props = matches.features.map((f) => f.properties);
      downloadText("comparison.csv", toCSV(props.length ? props : rows), "text/csv");
    });
    document.getElementById("compare-geojson").addEventListener("click", () =>
      downloadText("comparison.geojson", JSON.stringify(matches), "application/geo+json"));
    document.getElementById("compare-keep").addEventListener("click", () => keep(request));
  };

  const keep = async (request) => {
    const note = document.getElementById("compare-keep-message");
    const id = layerId(document.getElementById("compare-keep-name").value);
    if (!id) { setMessage(note, "Give the new layer a name (letters and digits).", "error"); return; }
    setMessage(note, "Keeping the matches as a layer…");
    try {
      const saved = await postJSON("/analysis/save", { compare: request, id });
      rememberOwnLayer(saved.id);
      await layers.refresh();
      if (layers.states.has(saved.id)) layers.setVisible(saved.id, true);
      const l = saved.licences || {};
      const wider = l.may_publish
        ? `It may be shared with everyone under ${saved.licence}.`
        : `It cannot be shared with everyone: ${l.why_not}`;
      setMessage(note, `Kept as '${saved.id}' (${saved.features} features), seen only by you and your group's stewards until you share it. ${wider}`, "ok");
    } catch (error) {
      setMessage(note, plain(error), "error");
    }
  };

  return { fill };
}
