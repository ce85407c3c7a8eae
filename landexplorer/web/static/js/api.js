// Talking to the public API. Every failure becomes a plain sentence for the person at the
// screen (the API's own "description" when it gives one), never a stack trace.

export class ApiProblem extends Error {
  constructor(message, status, code = "") {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// The API speaks to every client (the command line, scripts, QGIS): a few of its sentences
// name command-line options or HTTP requests. Said here in the page's own words, naming
// the form fields a person can use instead.
const PAGE_WORDS = [
  [/--x\b|--y\b|--wkt\b/, "The coordinates were not found in this file. Open “Coordinate columns” below and say which columns hold them (for example lon and lat, or easting and northing)."],
  [/--crs\b/, "The coordinate system of this file could not be worked out. Open “Coordinate columns” below and choose its coordinate system (British National Grid for eastings and northings in Great Britain)."],
  [/Authorization: Bearer|needs signing in|needs the access token/i, "Sign in first (the “Sign in” button at the top of the page), then try again."],
  [/no write token is configured|switched off on this server/i, "Adding layers from the web page is switched off on this server."],
  [/allow[-_]type[-_]change/, "The layer of that name holds a different kind of data (a grid of values or features): keep both instead, to add the file as a layer of its own."],
  [/PUT \/collections|already exists|--replace|--id\b/, "A layer of that name is already on the map: replace it or keep both."],
];

export function pageWords(text) {
  if (typeof text !== "string") return text;
  for (const [pattern, words] of PAGE_WORDS) if (pattern.test(text)) return words;
  return text;
}

async function describe(response) {
  try {
    const body = await response.json();
    if (body && typeof body.description === "string") return { text: pageWords(body.description), code: body.code || "" };
  } catch (_) {
    /* not JSON: fall through to the generic words */
  }
  return { text: statusWords(response.status), code: "" };
}

export function statusWords(status) {
  if (status === 0) return "The server could not be reached. Check your connection.";
  if (status === 413) return "The file is too large for this server.";
  if (status >= 500) return "Something went wrong on the server. Please try again later.";
  return `The server refused the request (${status}).`;
}

// What this page holds for its lifetime only (never stored): the CSRF token of the
// signed-in session (from /auth/me; the session itself is an HttpOnly cookie the page never
// sees) and the share link the page was opened with (?link=lxl_...).
const held = { csrf: "", link: "" };

export function setCsrf(token) { held.csrf = token || ""; }
export function setShareLink(secret) { held.link = secret || ""; }
export function shareLink() { return held.link; }

// ``url`` with the page's share link as query parameter (this server's addresses only).
export function withLink(url) {
  if (!held.link || typeof url !== "string" || !url.startsWith("/") || url.startsWith("//")) return url;
  return `${url}${url.includes("?") ? "&" : "?"}link=${encodeURIComponent(held.link)}`;
}

// The headers every write of the page carries: the session's CSRF token.
export function writeHeaders(headers = {}) {
  return held.csrf ? { ...headers, "X-CSRF-Token": held.csrf } : { ...headers };
}

export async function request(url, options = {}) {
  let response;
  const method = (options.method || "GET").toUpperCase();
  const opts = method === "GET" || method === "HEAD" ? options : { ...options, headers: writeHeaders(options.headers || {}) };
  try {
    response = await fetch(withLink(url), opts);
  } catch (_) {
    throw new ApiProblem("The server could not be reached. Check your connection.", 0);
  }
  if (!response.ok) {
    const { text, code } = await describe(response);
    throw new ApiProblem(text, response.status, code);
  }
  return response;
}

export async function getJSON(url, options) {
  const response = await request(url, options);
  return response.status === 204 ? null : response.json();
}

export async function postJSON(url, body, headers = {}) {
  return sendJSON("POST", url, body, headers);
}

// A write with a JSON body (or none): POST, PUT, PATCH, DELETE.
export async function sendJSON(method, url, body, headers = {}) {
  const options = { method, headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  return getJSON(url, options);
}

// Plain-words text of any error (ours or the browser's).
export function plain(error) {
  if (error instanceof ApiProblem) return error.message;
  return "Something went wrong in the page. Please reload and try again.";
}

export function escapeHtml(value) {
  return String(value ?? "")
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

export function downloadText(filename, text, type) {
  const blob = new Blob([text], { type });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 0);
}

export function toCSV(rows, columns) {
  const cols = columns || [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v) => {
    if (v === null || v === undefined) return "";
    const s = typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [cols.join(","), ...rows.map((r) => cols.map((c) => cell(r[c])).join(","))].join("\n") + "\n";
}

export function setMessage(el, text, kind = "") {
  el.textContent = text;
  el.className = `message ${kind}`.trim();
}
