// My groups (GET /groups) and a group's page (GET /groups/{group}): its members and their
// roles; a steward (or an admin) changes roles, adds and removes members, and answers requests
// for access (Grant / Refuse). Anyone signed in asks to see a layer here
// (POST /collections/{id}/requests) and follows their requests (GET /requests).
import { escapeHtml, getJSON, plain, sendJSON, setMessage } from "./api.js";
import { openDialog, when } from "./dialog.js";

const STATUS_WORDS = { pending: "waiting for an answer", granted: "granted", refused: "refused" };
const ROLE_WORDS = { viewer: "viewer", contributor: "contributor", steward: "steward" };
const at = (group) => `/groups/${encodeURIComponent(group)}`;

export function wireGroups(account) {
  const list = document.getElementById("groups-list");
  const message = document.getElementById("groups-message");
  const page = document.getElementById("group-page");
  const title = document.getElementById("group-title");
  const members = document.getElementById("group-members");
  const addForm = document.getElementById("group-add");
  const requestsWrap = document.getElementById("group-requests-wrap");
  const requests = document.getElementById("group-requests");
  const ask = document.getElementById("ask-access");
  const askForm = document.getElementById("ask-form");
  const mine = document.getElementById("my-requests");
  let shown = null; // the group on the page

  const say = (text, kind = "") => setMessage(message, text, kind);
  const steward = (group) => account.me.admin || account.roleIn(group) === "steward";

  const loadMine = async () => {
    const body = await getJSON("/requests?status=all");
    const asked = body.mine || [];
    mine.innerHTML = asked.length ? "" : `<li class="hint">You have not asked for any layer.</li>`;
    for (const r of asked) {
      const li = document.createElement("li");
      li.dataset.request = r.id;
      li.dataset.status = r.status;
      const by = r.decided_by ? ` by ${escapeHtml(r.decided_by)}` : "";
      li.innerHTML = `<span><strong>${escapeHtml(r.layer_title || r.layer)}</strong>:
        ${escapeHtml(STATUS_WORDS[r.status] || r.status)}${r.status === "pending" ? "" : by}
        <span class="hint">(asked ${escapeHtml(when(r.created))})</span></span>`;
      mine.appendChild(li);
    }
  };

  const loadList = async () => {
    page.hidden = true;
    list.hidden = false;
    ask.hidden = false;
    shown = null;
    loadMine().catch((e) => say(plain(e), "error"));
    const body = await getJSON("/groups");
    const groups = body.groups || [];
    list.innerHTML = groups.length ? "" : `<li class="hint">You are not in any group yet. A group's steward can add you.</li>`;
    for (const g of groups) {
      const li = document.createElement("li");
      const role = g.role || account.roleIn(g.name);
      li.innerHTML = `<button type="button" class="group-open" data-group="${escapeHtml(g.name)}">${escapeHtml(g.title || g.name)}</button>
        <span class="hint">${role ? `you are ${escapeHtml(ROLE_WORDS[role] || role)}` : ""}</span>`;
      li.querySelector("button").addEventListener("click", () => openGroup(g.name).catch((e) => say(plain(e), "error")));
      list.appendChild(li);
    }
  };

  const act = async (run, done) => {
    try {
      await run();
      await openGroup(shown, false); // the page shows the change before saying it is done
      if (done) say(done, "ok");
    } catch (error) {
      say(plain(error), "error");
    }
  };

  const renderMembers = (group, body, canManage) => {
    members.innerHTML = "";
    for (const m of body.members || []) {
      const user = m.user || m.name;
      const row = document.createElement("tr");
      row.dataset.member = user;
      const name = m.display && m.display !== user ? `${escapeHtml(m.display)} (${escapeHtml(user)})` : escapeHtml(user);
      if (canManage) {
        const options = Object.keys(ROLE_WORDS).map((r) => `<option value="${r}" ${r === m.role ? "selected" : ""}>${r}</option>`).join("");
        row.innerHTML = `<td>${name}</td><td><select aria-label="Role of ${escapeHtml(user)}">${options}</select></td>
          <td><button type="button" class="member-remove">Remove</button></td>`;
        row.querySelector("select").addEventListener("change", (e) => act(
          () => sendJSON("PUT", `${at(group)}/members/${encodeURIComponent(user)}`, { role: e.target.value }),
          `${user} is now ${e.target.value}.`,
        ));
        row.querySelector(".member-remove").addEventListener("click", () => {
          if (!window.confirm(`Remove ${user} from the group? They stop seeing its layers.`)) return;
          act(() => sendJSON("DELETE", `${at(group)}/members/${encodeURIComponent(user)}`), `${user} is no longer in the group.`);
        });
      } else {
        row.innerHTML = `<td>${name}</td><td>${escapeHtml(ROLE_WORDS[m.role] || m.role)}</td><td></td>`;
      }
      members.appendChild(row);
    }
  };

  const renderRequests = (body, canManage) => {
    const pending = (body.requests || []).filter((r) => !r.status || r.status === "pending");
    requestsWrap.hidden = !canManage;
    requests.innerHTML = pending.length ? "" : `<li class="hint">Nobody is waiting for access.</li>`;
    for (const r of pending) {
      const li = document.createElement("li");
      li.dataset.request = r.id;
      const note = r.message ? `: “${escapeHtml(r.message)}”` : "";
      li.innerHTML = `<span><strong>${escapeHtml(r.user)}</strong> asks to see
        <strong>${escapeHtml(r.layer_title || r.layer)}</strong>${note}
        <span class="hint">(${escapeHtml(when(r.created))})</span></span>
        <button type="button" class="request-grant">Grant</button>
        <button type="button" class="request-refuse">Refuse</button>`;
      const id = encodeURIComponent(r.id);
      li.querySelector(".request-grant").addEventListener("click", () => act(
        () => sendJSON("POST", `/requests/${id}/grant`, {}), `${r.user} may now see that layer.`));
      li.querySelector(".request-refuse").addEventListener("click", () => act(
        () => sendJSON("POST", `/requests/${id}/refuse`, {}), `The request of ${r.user} is refused.`));
      requests.appendChild(li);
    }
  };

  const openGroup = async (group, clear = true) => {
    if (clear) say("");
    const body = await getJSON(at(group));
    shown = group;
    list.hidden = true;
    ask.hidden = true;
    page.hidden = false;
    page.dataset.group = group;
    title.textContent = body.title || group;
    const canManage = steward(group);
    renderMembers(group, body, canManage);
    addForm.hidden = !canManage;
    renderRequests(body, canManage);
  };

  addForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = document.getElementById("group-add-name").value.trim();
    const role = document.getElementById("group-add-role").value;
    if (!name) { say("Type the account name of the person to add.", "error"); return; }
    act(async () => {
      await sendJSON("PUT", `${at(shown)}/members/${encodeURIComponent(name)}`, { role });
      document.getElementById("group-add-name").value = "";
    }, `${name} is now ${role} of the group.`);
  });
  askForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const layer = document.getElementById("ask-layer").value.trim();
    const note = document.getElementById("ask-message").value.trim();
    if (!layer) { say("Type the name of the layer you would like to see.", "error"); return; }
    try {
      await sendJSON("POST", `/collections/${encodeURIComponent(layer)}/requests`, { message: note });
      document.getElementById("ask-layer").value = "";
      document.getElementById("ask-message").value = "";
      await loadMine();
      say("Asked: the people who look after that layer will answer.", "ok");
    } catch (error) {
      say(plain(error), "error");
    }
  });
  document.getElementById("group-back").addEventListener("click", () => loadList().catch((e) => say(plain(e), "error")));

  return async () => {
    say("");
    openDialog("groups-dialog");
    try { await loadList(); } catch (error) { say(plain(error), "error"); }
  };
}
