// Bring your own data (signed in): choose or drop a file, say title/licence/attribution, the
// group and who can see it; the upload goes with the session cookie and the CSRF header;
// follow the upload (bytes sent) and the ingestion (the job), then show the new layer.
import { escapeHtml, getJSON, pageWords, statusWords, writeHeaders } from "./api.js";

const DONE = new Set(["successful", "succeeded", "done", "finished", "completed", "complete"]);
const FAILED = new Set(["failed", "error", "dismissed", "cancelled"]);

function titleFromFile(name) {
  return name.replace(/\.[^.]+$/, "").replace(/[_-]+/g, " ").replace(/\s+/g, " ").trim();
}

function sendForm(form, onProgress, { method = "POST", url = "/collections" } = {}) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(writeHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      resolve({ status: xhr.status, body, location: xhr.getResponseHeader("Location") });
    });
    xhr.addEventListener("error", () => resolve({ status: 0, body: null }));
    xhr.send(form);
  });
}

function problemText(status, body) {
  if (body && typeof body.description === "string") return pageWords(body.description);
  if (status === 415) return "This kind of file cannot be added as a layer. Choose a CSV, GeoJSON, KML, zipped shapefile or GeoPackage.";
  return status >= 400 && status < 500 && status !== 413 ? `The upload was refused (${status}).` : statusWords(status);
}

// Did the API ask for the coordinate columns or system (words it writes for the CLI)?
const ASKS_COORDINATES = /--x\b|--y\b|--wkt\b|--crs\b/;

// The id the server gave (or would give) a file: in the 409's words, else from its name.
function takenId(body, name) {
  const quoted = body && typeof body.description === "string" && body.description.match(/'([a-z][a-z0-9_]{0,47})'/);
  if (quoted) return quoted[1];
  const slug = name.replace(/\.[^.]+$/, "").toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
  return /^[a-z]/.test(slug) ? slug.slice(0, 48) : `layer_${slug}`.slice(0, 48);
}

function jobUrl(response) {
  const b = response.body || {};
  const link = (b.links || []).find((l) => l.rel === "monitor" || l.rel === "status" || /\/jobs\//.test(l.href || ""));
  if (link) return link.href;
  if (response.location && /\/jobs\//.test(response.location)) return response.location;
  const id = b.jobID || b.jobId || b.job_id || (b.job && b.job.id);
  return id ? `/jobs/${encodeURIComponent(id)}` : null;
}

function layerIdOf(body) {
  if (!body) return null;
  if (Array.isArray(body.layers) && body.layers.length) return body.layers[0];
  if (body.layer && typeof body.layer === "object") return body.layer.id;
  return body.layer || body.layer_id || body.collection || body.collectionId || (body.itemType ? body.id : null);
}

export function wireUpload(map, layers, config, account, onAdded) {
  const form = document.getElementById("upload-form");
  const file = document.getElementById("upload-file");
  const title = document.getElementById("upload-title");
  const progress = document.getElementById("upload-progress");
  const message = document.getElementById("upload-message");
  const submit = document.getElementById("upload-submit");
  const drop = document.getElementById("drop-zone");
  const groupChoice = document.getElementById("upload-group");
  const visibility = document.getElementById("upload-visibility");
  const licence = document.getElementById("upload-licence");

  // Signed out: "Sign in to add your layers". Signed in: the groups this person may add
  // layers to (admins may also add a layer to no group).
  account.onChange((me) => {
    const groups = account.writableGroups();
    const may = me.signed_in && (groups.length > 0 || me.admin);
    document.getElementById("upload-signed-out").hidden = Boolean(me.signed_in);
    document.getElementById("upload-no-group").hidden = !me.signed_in || may;
    form.hidden = !may;
    const before = groupChoice.value;
    groupChoice.innerHTML = groups.map((g) => `<option value="${escapeHtml(g.name)}">${escapeHtml(g.title || g.name)}</option>`).join("") +
      (me.admin ? `<option value="">No group (site admins only)</option>` : "");
    if ([...groupChoice.options].some((o) => o.value === before)) groupChoice.value = before;
  });

  const say = (html, kind = "") => { message.innerHTML = html; message.className = `message ${kind}`.trim(); };

  file.addEventListener("change", () => {
    if (file.files[0] && !title.value) title.value = titleFromFile(file.files[0].name);
  });

  // Dropping a file on the map fills the form and opens it; the person still confirms the
  // licence and attribution, which travel with the data from here on.
  const mapEl = document.getElementById("map");
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
  mapEl.addEventListener("dragenter", (e) => { if (hasFiles(e)) { depth += 1; drop.hidden = false; e.preventDefault(); } });
  mapEl.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
  mapEl.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) drop.hidden = true; });
  mapEl.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    drop.hidden = true;
    const dt = new DataTransfer();
    dt.items.add(e.dataTransfer.files[0]);
    file.files = dt.files;
    file.dispatchEvent(new Event("change"));
    document.getElementById("sec-upload").open = true;
    document.getElementById("panel").hidden = false;
    if (form.hidden) { (account.signedIn ? document.querySelector("#sec-upload summary") : document.getElementById("upload-sign-in")).focus(); return; }
    title.focus();
    say("Check the title, licence and attribution, then press Upload.");
  });

  const more = document.getElementById("upload-more");
  const exists = document.getElementById("upload-exists");
  const existsText = document.getElementById("upload-exists-text");
  let taken = null; // {id, file}: the file whose layer name is taken, waiting for a choice

  const fields = (chosen, extra = {}) => {
    const data = new FormData();
    data.append("file", chosen, chosen.name);
    data.append("title", extra.title || title.value.trim() || titleFromFile(chosen.name));
    data.append("licence", document.getElementById("upload-licence").value);
    data.append("attribution", document.getElementById("upload-attribution").value.trim());
    data.append("visibility", visibility.value);
    if (groupChoice.options.length) data.append("group", groupChoice.value);
    data.append("kind", "community");
    for (const name of ["x", "y", "crs"]) {
      const value = document.getElementById(`upload-${name}`).value.trim();
      if (value) data.append(name, value);
    }
    if (extra.id) data.append("id", extra.id);
    return data;
  };

  // Send the file (a new layer, or a new version of ``replace``) and follow it until stored.
  const send = async (chosen, { replace = null, id = null, newTitle = null } = {}) => {
    const data = fields(chosen, { id, title: newTitle });
    if (replace) data.delete("kind"); // a new version keeps what the layer is
    submit.disabled = true;
    exists.hidden = true;
    progress.hidden = false;
    progress.max = 100;
    progress.value = 0;
    say(replace ? "Uploading the new version…" : "Uploading…");
    try {
      // The bytes sent are the first half of the bar; the rest is the layer being stored.
      const target = replace ? { method: "PUT", url: `/collections/${encodeURIComponent(replace)}` } : {};
      const response = await sendForm(data, (share) => { progress.value = Math.round(share * 50); }, target);
      if (response.status === 409 && !replace) return { taken: takenId(response.body, chosen.name) };
      if (response.status < 200 || response.status >= 300) {
        const text = problemText(response.status, response.body);
        say(escapeHtml(text), "error");
        if (ASKS_COORDINATES.test((response.body && response.body.description) || "")) more.open = true;
        progress.hidden = true;
        return null;
      }
      progress.value = 50;
      let result = response.body;
      const url = response.status === 202 || !layerIdOf(result) ? jobUrl(response) : null;
      if (url) {
        // Ingestion reports features stored, not a share of the whole: the bar runs
        // without a value (indeterminate) while the count goes up.
        progress.removeAttribute("value");
        result = await followJob(url, (stored, text) => {
          say(escapeHtml(text) + (stored ? ` ${Number(stored).toLocaleString()} features so far.` : ""));
        });
      }
      const layerId = layerIdOf(result);
      if (!layerId) { say("The file was uploaded but the new layer could not be found.", "error"); return null; }
      progress.value = 100; // the job says the layer is stored
      const collection = await getJSON(`/collections/${encodeURIComponent(layerId)}`, { headers: { Accept: "application/json" } });
      onAdded(collection);
      const count = collection.featureCount;
      const verb = replace ? "Replaced" : "Added";
      say(`${verb} “${escapeHtml(collection.title)}”: <span data-testid="upload-count">${Number(count).toLocaleString()}</span> features.`, "ok");
      return collection;
    } catch (error) {
      say(escapeHtml(pageWords(error.message) || "The upload failed."), "error");
      if (ASKS_COORDINATES.test(error.message || "")) more.open = true;
      return null;
    } finally {
      submit.disabled = false;
    }
  };

  const offerChoice = (chosen, id) => {
    taken = { id, file: chosen };
    const shown = layers.states.get(id);
    const name = shown ? `“${shown.title}”` : `called “${id}”`;
    existsText.textContent = `A layer ${name} is already on the map. Replace it with this file and the details above (a new version of that layer), or keep both as two layers?`;
    exists.hidden = false;
    progress.hidden = true;
    say("");
    document.getElementById("upload-replace").focus();
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = file.files[0];
    exists.hidden = true;
    taken = null;
    if (!chosen) { say("Choose a file first (or drop one onto the map).", "error"); return; }
    if (chosen.size > config.maxUploadMb * 1024 * 1024) {
      say(`The file is larger than this server accepts (${config.maxUploadMb} MB).`, "error");
      return;
    }
    if (visibility.value === "public" && !licence.value) {
      say("A layer everyone sees needs a licence, so that people know how they may use it: choose one above, or choose who can see it.", "error");
      licence.focus();
      return;
    }
    const outcome = await send(chosen);
    if (outcome && outcome.taken) offerChoice(chosen, outcome.taken);
  });

  document.getElementById("upload-replace").addEventListener("click", async () => {
    if (!taken) return;
    const { id, file: chosen } = taken;
    taken = null;
    await send(chosen, { replace: id });
  });

  document.getElementById("upload-keep-both").addEventListener("click", async () => {
    if (!taken) return;
    const { id, file: chosen } = taken;
    taken = null;
    // the next free name: id_2, id_3, ... (the server says when one is taken after all)
    const base = id.replace(/_\d+$/, "").slice(0, 44);
    const wanted = title.value.trim() || titleFromFile(chosen.name);
    for (let n = 2; n < 100; n++) {
      const next = `${base}_${n}`;
      if (layers.states.has(next)) continue;
      const outcome = await send(chosen, { id: next, newTitle: `${wanted} (${n})` });
      if (!(outcome && outcome.taken)) return;
    }
    say("Every name for this layer is taken; give the file another name and upload it again.", "error");
  });
}

async function followJob(url, onProgress) {
  const headers = { Accept: "application/json" };
  for (let attempt = 0; attempt < 1200; attempt++) {
    let job;
    try {
      job = await getJSON(url, { headers });
    } catch (error) {
      throw new Error(error.message);
    }
    const status = String(job.status || job.state || "").toLowerCase();
    onProgress(typeof job.progress === "number" ? job.progress : 0, job.message || "Adding the layer…");
    if (DONE.has(status)) return job.result || job;
    if (FAILED.has(status)) {
      const text = (job.error && job.error.description) || job.message || "The file could not be added.";
      throw new Error(text); // said in the page's words by the caller
    }
    await new Promise((r) => setTimeout(r, attempt < 20 ? 250 : 1000));
  }
  throw new Error("Adding the layer is taking very long; look for it in the layer list later.");
}
