// Talking to the public API. Every failure becomes a plain sentence for the person at the
// screen (the API's own "description" when it gives one), never a stack trace.

export class ApiProblem extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function describe(response) {
  try {
    const body = await response.json();
    if (body && typeof body.description === "string") return body.description;
  } catch (_) {
    /* not JSON: fall through to the generic words */
  }
  if (response.status === 413) return "The file is too large for this server.";
  if (response.status >= 500) return "Something went wrong on the server. Please try again later.";
  return `The server refused the request (${response.status}).`;
}

export async function request(url, options = {}) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (_) {
    throw new ApiProblem("The server could not be reached. Check your connection.", 0);
  }
  if (!response.ok) throw new ApiProblem(await describe(response), response.status);
  return response;
}

export async function getJSON(url, options) {
  const response = await request(url, options);
  return response.status === 204 ? null : response.json();
}

export async function postJSON(url, body, headers = {}) {
  return getJSON(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", ...headers },
    body: JSON.stringify(body),
  });
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
