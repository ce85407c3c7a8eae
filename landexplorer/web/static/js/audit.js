// The audit log (GET /audit) for admins (everything) and stewards (their groups' layers and
// members): who did what, to which layer, when; filtered by layer and by person, a page at a
// time ("Older entries").
import { escapeHtml, getJSON, plain, setMessage } from "./api.js";
import { openDialog, when } from "./dialog.js";

const PAGE = 50;

// An event's details in a line of words: "user: cai, role: viewer".
export function detailWords(detail) {
  return Object.entries(detail || {})
    .filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${k.replace(/_/g, " ")}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(", ");
}

export function wireAudit() {
  const list = document.getElementById("audit-list");
  const message = document.getElementById("audit-message");
  const scope = document.getElementById("audit-scope");
  const form = document.getElementById("audit-filter");
  const layerInput = document.getElementById("audit-layer");
  const userInput = document.getElementById("audit-user");
  const more = document.getElementById("audit-more");
  let next = null; // the address of the page before, when there is one

  const render = (events, append) => {
    if (!append) list.innerHTML = "";
    for (const e of events) {
      const row = document.createElement("tr");
      row.dataset.event = String(e.id);
      row.dataset.action = e.action;
      const version = e.version ? ` (version ${escapeHtml(e.version)})` : "";
      row.innerHTML = `<td>${escapeHtml(when(e.at))}</td><td>${escapeHtml(e.actor)}</td>
        <td>${escapeHtml(e.action)}</td><td>${escapeHtml(e.layer || "")}${version}</td>
        <td class="audit-detail">${escapeHtml(detailWords(e.detail))}</td>`;
      list.appendChild(row);
    }
    if (!append && !events.length) {
      list.innerHTML = `<tr><td colspan="5" class="hint">Nothing recorded that matches.</td></tr>`;
    }
  };

  const load = async (append = false) => {
    let url = next;
    if (!append) {
      const query = new URLSearchParams({ limit: String(PAGE) });
      const layer = layerInput.value.trim();
      const user = userInput.value.trim();
      if (layer) query.set("layer", layer);
      if (user) query.set("user", user);
      url = `/audit?${query}`;
    }
    const body = await getJSON(url);
    scope.textContent = body.scope === "everything"
      ? "Everything that happened on this server, newest first."
      : "What happened to the layers and members of your groups, newest first.";
    render(body.events || [], append);
    next = body.next || null;
    more.hidden = !next;
  };

  const run = (append) => load(append).catch((error) => setMessage(message, plain(error), "error"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setMessage(message, "");
    run(false);
  });
  more.addEventListener("click", () => run(true));

  return async () => {
    setMessage(message, "");
    openDialog("audit-dialog");
    await run(false);
  };
}
