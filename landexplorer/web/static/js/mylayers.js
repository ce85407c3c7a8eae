// My layers (GET /me/layers) and the share dialog of one layer: who sees it (visibility,
// group, licence: PATCH /collections/{id}), share links made and revoked, and who can see
// it and why (GET /collections/{id}/access).
import { escapeHtml, getJSON, plain, sendJSON, setMessage } from "./api.js";
import { copyFrom, openDialog, when } from "./dialog.js";

export const VISIBILITY_WORDS = {
  private: "private (only the owner)",
  group: "the group",
  link: "people with a share link",
  public: "everyone",
};

// What the caller may do with a layer of /me/layers: "view", "download", "change", "manage".
export function mayDo(layer, action) {
  for (const key of ["may", "can", "actions", "allowed"]) {
    const given = layer[key];
    if (Array.isArray(given)) return given.includes(action);
    if (given && typeof given === "object") return Boolean(given[action]);
  }
  return false;
}

// How many can see a layer of /me/layers, in words: " · 4 people · 1 live link".
export function reachWords(layer) {
  const parts = [];
  if (typeof layer.viewers === "number") parts.push(`${layer.viewers} ${layer.viewers === 1 ? "person" : "people"}`);
  if (layer.live_links) parts.push(`${layer.live_links} live ${layer.live_links === 1 ? "link" : "links"}`);
  return parts.length ? ` · ${parts.join(" · ")}` : "";
}

const licenceOf = (layer) => layer.licence ?? layer.license ?? "";
const at = (id) => `/collections/${encodeURIComponent(id)}`;

function whoRows(body) {
  const rows = body.who || body.can_see || body.seen_by || body.viewers || [];
  return (Array.isArray(rows) ? rows : []).map((r) => (typeof r === "string"
    ? { who: r, why: "" }
    : { who: r.who || r.name || r.user || r.group || "", why: r.why || r.reason || r.because || "" }));
}

export function wireMyLayers(account, layers) {
  const list = document.getElementById("my-layers-list");
  const message = document.getElementById("my-layers-message");
  const share = wireShareDialog(account, layers, () => load());

  const load = async () => {
    const body = await getJSON("/me/layers");
    const mine = body.layers || body.collections || [];
    list.innerHTML = "";
    if (!mine.length) {
      list.innerHTML = `<p class="hint">You have no layers yet. Add one under “Bring your own data”.</p>`;
      return;
    }
    const table = document.createElement("table");
    table.className = "table";
    table.innerHTML = `<thead><tr><th scope="col">Layer</th><th scope="col">Who sees it</th>
      <th scope="col">Group</th><th scope="col">Licence</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>`;
    const rows = document.createElement("tbody");
    for (const layer of mine) {
      const row = document.createElement("tr");
      row.dataset.layer = layer.id;
      row.innerHTML = `<td>${escapeHtml(layer.title || layer.id)}</td>
        <td>${escapeHtml(VISIBILITY_WORDS[layer.visibility] || layer.visibility || "")}${escapeHtml(reachWords(layer))}</td>
        <td>${escapeHtml(layer.group || "none")}</td>
        <td>${escapeHtml(licenceOf(layer) || "not set yet")}</td><td></td>`;
      if (mayDo(layer, "manage")) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "share-layer";
        button.textContent = "Share";
        button.setAttribute("aria-label", `Share ${layer.title || layer.id}`);
        button.addEventListener("click", () => share(layer).catch((e) => setMessage(message, plain(e), "error")));
        row.lastElementChild.appendChild(button);
      }
      rows.appendChild(row);
    }
    table.appendChild(rows);
    list.appendChild(table);
  };

  return async () => {
    setMessage(message, "");
    openDialog("my-layers-dialog");
    try { await load(); } catch (error) { setMessage(message, plain(error), "error"); }
  };
}

function wireShareDialog(account, layers, onChanged) {
  const heading = document.getElementById("share-heading");
  const form = document.getElementById("share-layer-form");
  const visibility = document.getElementById("share-visibility");
  const group = document.getElementById("share-group");
  const licence = document.getElementById("share-licence");
  const message = document.getElementById("share-layer-message");
  const linksList = document.getElementById("share-links");
  const who = document.getElementById("share-who");
  const fresh = document.getElementById("share-new-link");
  const freshUrl = document.getElementById("share-new-link-url");
  let current = null; // the layer's access document

  const fillGroups = (chosen) => {
    const names = new Set((account.me.groups || []).map((g) => g.name));
    if (chosen) names.add(chosen);
    group.innerHTML = `<option value="">No group</option>` + [...names].sort().map((n) => {
      const g = (account.me.groups || []).find((x) => x.name === n);
      return `<option value="${escapeHtml(n)}">${escapeHtml(g ? g.title : n)}</option>`;
    }).join("");
    group.value = chosen || "";
  };

  const renderLinks = (id, links) => {
    linksList.innerHTML = "";
    const live = (links || []).filter((l) => !l.revoked);
    if (!live.length) { linksList.innerHTML = `<li class="hint">No share links.</li>`; return; }
    for (const link of live) {
      const li = document.createElement("li");
      li.dataset.link = link.id;
      const by = link.created_by ? ` by ${escapeHtml(link.created_by)}` : "";
      li.innerHTML = `<span>Link made ${escapeHtml(when(link.created))}${by}</span>
        <button type="button" class="link-revoke">Revoke</button>`;
      li.querySelector(".link-revoke").addEventListener("click", async () => {
        try {
          await sendJSON("DELETE", `${at(id)}/links/${encodeURIComponent(link.id)}`);
          fresh.hidden = true;
          setMessage(message, "The link is revoked: it no longer shows this layer to anyone.", "ok");
          await reload(id);
        } catch (error) {
          setMessage(message, plain(error), "error");
        }
      });
      linksList.appendChild(li);
    }
  };

  const renderWho = (id, body) => {
    const rows = whoRows(body);
    const grants = (body.grants || []).filter((g) => !g.revoked);
    who.innerHTML = rows.length
      ? `<ul class="plain-list">${rows.map((r) => `<li><strong>${escapeHtml(r.who)}</strong>${r.why ? `: ${escapeHtml(r.why)}` : ""}</li>`).join("")}</ul>`
      : `<p class="hint">Only the owner and the site's admins.</p>`;
    if (!grants.length) return;
    const list = document.createElement("ul");
    list.className = "plain-list";
    list.innerHTML = `<li class="hint">Let in one by one (after asking for access):</li>`;
    for (const g of grants) {
      const user = g.user || g.name;
      const li = document.createElement("li");
      li.dataset.grant = user;
      li.innerHTML = `<span>${escapeHtml(user)}</span> <button type="button">Remove</button>`;
      li.querySelector("button").addEventListener("click", async () => {
        try {
          await sendJSON("DELETE", `${at(id)}/grants/${encodeURIComponent(user)}`);
          await reload(id);
        } catch (error) {
          setMessage(message, plain(error), "error");
        }
      });
      list.appendChild(li);
    }
    who.appendChild(list);
  };

  // The form waits, switched off, until the layer's access is read: a choice made before
  // would be overwritten by what the server says.
  const reload = async (id) => {
    for (const el of form.elements) el.disabled = true;
    try {
      current = await getJSON(`${at(id)}/access`);
      current.id = id;
      visibility.value = current.visibility || "private";
      fillGroups(current.group || "");
      licence.value = licenceOf(current);
      renderLinks(id, current.links);
      renderWho(id, current);
    } finally {
      for (const el of form.elements) el.disabled = false;
    }
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!current) return;
    const wanted = { visibility: visibility.value, group: group.value, licence: licence.value.trim() };
    const changes = {};
    if (wanted.visibility !== (current.visibility || "private")) changes.visibility = wanted.visibility;
    if (wanted.group !== (current.group || "")) changes.group = wanted.group;
    if (wanted.licence !== licenceOf(current)) changes.licence = wanted.licence;
    if (wanted.visibility === "public" && !wanted.licence) {
      setMessage(message, "A layer everyone sees needs a licence, so that people know how they may use it: choose one (for example OGL-UK-3.0 or CC-BY-4.0).", "error");
      licence.focus();
      return;
    }
    if (!Object.keys(changes).length) { setMessage(message, "Nothing to save: nothing was changed."); return; }
    try {
      await sendJSON("PATCH", at(current.id), changes);
      setMessage(message, "Saved.", "ok");
      await reload(current.id);
      onChanged();
      layers.refresh().catch(() => {});
    } catch (error) {
      setMessage(message, plain(error), "error");
    }
  });

  document.getElementById("share-make-link").addEventListener("click", async () => {
    if (!current) return;
    try {
      const made = await sendJSON("POST", `${at(current.id)}/links`, {});
      freshUrl.value = new URL(made.url, location.origin).href;
      fresh.hidden = false;
      freshUrl.select();
      const works = current.visibility === "link";
      setMessage(message, works
        ? "A new share link: send it to whoever should see this layer."
        : current.visibility === "public"
          ? "A new share link. The layer is public, so everyone sees it anyway."
          : "A new share link. It works only while “Who can see it” is “People with a share link”: choose that above and press Save.",
      works ? "ok" : "");
      await reload(current.id);
    } catch (error) {
      setMessage(message, plain(error), "error");
    }
  });
  document.getElementById("share-copy-link").addEventListener("click", (e) => copyFrom(freshUrl, e.currentTarget));

  return async (layer) => {
    heading.textContent = `Share “${layer.title || layer.id}”`;
    fresh.hidden = true;
    freshUrl.value = "";
    setMessage(message, "");
    current = null; // nothing is done to the layer shown before while this one loads
    openDialog("share-dialog");
    await reload(layer.id);
  };
}
