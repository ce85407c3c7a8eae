// Bring your own data: choose or drop a file, say title/licence/attribution/visibility,
// follow the upload (bytes sent) and the ingestion (the job), then show the new layer.
import { escapeHtml, getJSON } from "./api.js";

const TOKEN_KEY = "landexplorer.token";
const DONE = new Set(["successful", "succeeded", "done", "finished", "completed", "complete"]);
const FAILED = new Set(["failed", "error", "dismissed", "cancelled"]);

function titleFromFile(name) {
  return name.replace(/\.[^.]+$/, "").replace(/[_-]+/g, " ").replace(/\s+/g, " ").trim();
}

function sendForm(form, token, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/collections");
    xhr.setRequestHeader("Accept", "application/json");
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
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
  if (body && typeof body.description === "string") return body.description;
  if (status === 0) return "The server could not be reached. Check your connection.";
  if (status === 413) return "The file is too large for this server.";
  if (status >= 500) return "Something went wrong on the server. Please try again later.";
  return `The upload was refused (${status}).`;
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

export function wireUpload(map, layers, config, onAdded) {
  const form = document.getElementById("upload-form");
  const file = document.getElementById("upload-file");
  const title = document.getElementById("upload-title");
  const token = document.getElementById("upload-token");
  const tokenRow = document.getElementById("upload-token-row");
  const progress = document.getElementById("upload-progress");
  const message = document.getElementById("upload-message");
  const submit = document.getElementById("upload-submit");
  const drop = document.getElementById("drop-zone");
  tokenRow.hidden = !config.uploadsNeedToken;
  try { token.value = sessionStorage.getItem(TOKEN_KEY) || ""; } catch (_) { /* private mode */ }

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
    title.focus();
    say("Check the title, licence and attribution, then press Upload.");
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = file.files[0];
    if (!chosen) { say("Choose a file first (or drop one onto the map).", "error"); return; }
    if (chosen.size > config.maxUploadMb * 1024 * 1024) {
      say(`The file is larger than this server accepts (${config.maxUploadMb} MB).`, "error");
      return;
    }
    try { sessionStorage.setItem(TOKEN_KEY, token.value); } catch (_) { /* private mode */ }
    const data = new FormData();
    data.append("file", chosen, chosen.name);
    data.append("title", title.value.trim() || titleFromFile(chosen.name));
    data.append("licence", document.getElementById("upload-licence").value);
    data.append("attribution", document.getElementById("upload-attribution").value.trim());
    data.append("visibility", document.getElementById("upload-visibility").value);
    data.append("kind", "community");
    submit.disabled = true;
    progress.hidden = false;
    progress.max = 100;
    progress.value = 0;
    say("Uploading…");
    try {
      const response = await sendForm(data, token.value.trim(), (share) => { progress.value = Math.round(share * 100); });
      if (response.status < 200 || response.status >= 300) {
        say(escapeHtml(problemText(response.status, response.body)), "error");
        return;
      }
      let result = response.body;
      const url = response.status === 202 || !layerIdOf(result) ? jobUrl(response) : null;
      if (url) {
        // Ingestion reports features stored, not a share of the whole: the bar runs
        // without a value (indeterminate) while the count goes up.
        progress.removeAttribute("value");
        result = await followJob(url, token.value.trim(), (stored, text) => {
          say(escapeHtml(text) + (stored ? ` ${Number(stored).toLocaleString()} features so far.` : ""));
        });
      }
      const layerId = layerIdOf(result);
      if (!layerId) { say("The file was uploaded but the new layer could not be found.", "error"); return; }
      progress.max = 100;
      progress.value = 100;
      const headers = { Accept: "application/json" };
      if (token.value.trim()) headers.Authorization = `Bearer ${token.value.trim()}`;
      const collection = await getJSON(`/collections/${encodeURIComponent(layerId)}`, { headers });
      onAdded(collection);
      const count = collection.featureCount;
      say(`Added “${escapeHtml(collection.title)}”: <span data-testid="upload-count">${Number(count).toLocaleString()}</span> features.`, "ok");
    } catch (error) {
      say(escapeHtml(error.message || "The upload failed."), "error");
    } finally {
      submit.disabled = false;
    }
  });
}

async function followJob(url, token, onProgress) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
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
      throw new Error(text);
    }
    await new Promise((r) => setTimeout(r, attempt < 20 ? 250 : 1000));
  }
  throw new Error("Adding the layer is taking very long; look for it in the layer list later.");
}
