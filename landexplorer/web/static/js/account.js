// The person at the screen: signing in and out (a session cookie the page never sees, and
// the CSRF token /auth/me gives, sent with every write), the menu under their name, their
// access tokens and their password. My layers and My groups load when first opened.
import { ApiProblem, escapeHtml, getJSON, plain, sendJSON, setCsrf, setMessage } from "./api.js";
import { closeDialog, copyFrom, openDialog, when, wireDialogs } from "./dialog.js";

const SIGNED_OUT = { signed_in: false, groups: [] };

export class Account {
  constructor() {
    this.me = SIGNED_OUT;
    this.listeners = [];
  }

  get signedIn() { return Boolean(this.me.signed_in); }

  // The groups this person may add layers to (contributor or steward).
  writableGroups() {
    return (this.me.groups || []).filter((g) => g.role === "contributor" || g.role === "steward");
  }

  roleIn(group) {
    const found = (this.me.groups || []).find((g) => g.name === group);
    return found ? found.role : "";
  }

  onChange(listener) { this.listeners.push(listener); listener(this.me); }

  set(me) {
    this.me = me && me.signed_in ? { groups: [], ...me } : SIGNED_OUT;
    setCsrf(this.me.csrf || "");
    for (const listener of this.listeners) listener(this.me);
  }

  async load() {
    try {
      this.set(await getJSON("/auth/me", { headers: { Accept: "application/json" } }));
    } catch (_) {
      this.set(SIGNED_OUT); // the public map works without an answer here
    }
  }

  async signIn(name, password) {
    this.set(await sendJSON("POST", "/auth/login", { name, password }));
  }

  async signOut() {
    try {
      await sendJSON("POST", "/auth/logout");
    } finally {
      this.set(SIGNED_OUT);
    }
  }
}

// The words for a refused sign-in.
export function signInWords(error) {
  if (error instanceof ApiProblem && error.status === 401) {
    return "That name and password do not match an account here. Check both (capital letters count) and try again.";
  }
  if (error instanceof ApiProblem && error.status === 429) {
    const wait = (error.message.match(/wait (\d+) seconds/) || [])[1];
    return `Too many attempts to sign in. Please wait ${wait ? `${wait} seconds` : "a few minutes"} and try again.`;
  }
  return plain(error);
}

function wireSignIn(account) {
  const form = document.getElementById("sign-in-form");
  const name = document.getElementById("sign-in-name");
  const password = document.getElementById("sign-in-password");
  const message = document.getElementById("sign-in-message");
  const submit = document.getElementById("sign-in-submit");
  const open = () => {
    setMessage(message, "");
    password.value = "";
    openDialog("sign-in-dialog");
    (name.value ? password : name).focus();
  };
  document.getElementById("sign-in-open").addEventListener("click", open);
  document.getElementById("upload-sign-in").addEventListener("click", open);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!name.value.trim() || !password.value) {
      setMessage(message, "Type your name and your password.", "error");
      (name.value.trim() ? password : name).focus();
      return;
    }
    submit.disabled = true;
    setMessage(message, "Signing in…");
    try {
      await account.signIn(name.value.trim(), password.value);
      password.value = "";
      closeDialog("sign-in-dialog");
      document.getElementById("account-button").focus();
    } catch (error) {
      setMessage(message, signInWords(error), "error");
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
}

// The menu under the person's name: opens on click, Enter or Space; arrow keys move
// through it, Escape closes it.
function wireMenu(account, actions) {
  const button = document.getElementById("account-button");
  const menu = document.getElementById("account-menu");
  const items = () => [...menu.querySelectorAll("[role=menuitem]")].filter((e) => !e.closest("[hidden]"));
  const show = (open, focusFirst = false) => {
    menu.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open && focusFirst) items()[0].focus();
  };
  button.addEventListener("click", () => show(menu.hidden, true));
  button.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") { e.preventDefault(); show(true, true); }
  });
  menu.addEventListener("keydown", (e) => {
    const list = items();
    const at = list.indexOf(document.activeElement);
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const step = e.key === "ArrowDown" ? 1 : -1;
      list[(at + step + list.length) % list.length].focus();
    } else if (e.key === "Escape") {
      show(false);
      button.focus();
    } else if (e.key === "Tab") {
      show(false);
    }
  });
  document.addEventListener("click", (e) => {
    if (!menu.hidden && !menu.contains(e.target) && e.target !== button && !button.contains(e.target)) show(false);
  });
  for (const [id, run] of Object.entries(actions)) {
    document.getElementById(id).addEventListener("click", () => { show(false); run(); });
  }
}

function wireTokens() {
  const list = document.getElementById("tokens-list");
  const form = document.getElementById("token-form");
  const message = document.getElementById("token-message");
  const shown = document.getElementById("token-new");
  const value = document.getElementById("token-new-value");

  const load = async () => {
    list.innerHTML = "";
    const body = await getJSON("/auth/tokens");
    const live = (body.tokens || []).filter((t) => !t.revoked);
    if (!live.length) {
      list.innerHTML = `<tr><td colspan="5" class="hint">You have no access tokens.</td></tr>`;
      return;
    }
    for (const t of live) {
      const row = document.createElement("tr");
      row.dataset.token = t.id;
      row.innerHTML = `<td>${escapeHtml(t.name)}</td>
        <td>${t.scope === "write" ? "read and change" : "read only"}</td>
        <td>${escapeHtml(when(t.expires))}</td><td>${escapeHtml(when(t.last_used))}</td>
        <td><button type="button" class="token-revoke">Revoke</button></td>`;
      row.querySelector(".token-revoke").addEventListener("click", async () => {
        try {
          await sendJSON("DELETE", `/auth/tokens/${encodeURIComponent(t.id)}`);
          setMessage(message, `Revoked “${t.name}”: it stops working now.`, "ok");
          await load();
        } catch (error) {
          setMessage(message, plain(error), "error");
        }
      });
      list.appendChild(row);
    }
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = document.getElementById("token-name").value.trim();
    const days = Number(document.getElementById("token-days").value);
    if (!name) { setMessage(message, "Say what the token is for (for example “QGIS at home”).", "error"); return; }
    if (!Number.isInteger(days) || days < 1 || days > 366) {
      setMessage(message, "A token is valid for 1 to 366 days.", "error");
      return;
    }
    try {
      const made = await sendJSON("POST", "/auth/tokens", { name, scope: document.getElementById("token-scope").value, days });
      value.value = made.token;
      shown.hidden = false;
      setMessage(message, `Made “${made.name}”.`, "ok");
      document.getElementById("token-name").value = "";
      value.select();
      await load();
    } catch (error) {
      setMessage(message, plain(error), "error");
    }
  });
  document.getElementById("token-copy").addEventListener("click", (e) => copyFrom(value, e.currentTarget));
  return async () => {
    shown.hidden = true;
    value.value = "";
    setMessage(message, "");
    openDialog("tokens-dialog");
    try { await load(); } catch (error) { setMessage(message, plain(error), "error"); }
  };
}

function wirePassword(account) {
  const form = document.getElementById("password-form");
  const message = document.getElementById("password-message");
  const fields = ["password-current", "password-new", "password-again"].map((id) => document.getElementById(id));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [current, fresh, again] = fields.map((f) => f.value);
    if (!fresh) { setMessage(message, "Type the new password.", "error"); return; }
    if (fresh !== again) { setMessage(message, "The two new passwords are not the same.", "error"); return; }
    try {
      const me = await sendJSON("POST", "/auth/password", { current, new: fresh });
      for (const f of fields) f.value = "";
      account.set(me); // a new session: the other browsers signed in as you are signed out
      setMessage(message, "Your password is changed. Anywhere else you were signed in, you are now signed out.", "ok");
    } catch (error) {
      setMessage(message, plain(error), "error");
    }
  });
  return () => {
    setMessage(message, "");
    openDialog("password-dialog");
  };
}

// The header: "Sign in", or the person's name and their menu.
export function wireAccount(account, { layers, status }) {
  wireDialogs();
  wireSignIn(account);
  const openTokens = wireTokens();
  const openPassword = wirePassword(account);
  let myLayers = null;
  let groups = null;
  let audit = null;
  const report = (error) => { status.textContent = plain(error); };
  wireMenu(account, {
    "menu-my-layers": async () => {
      myLayers ||= import("./mylayers.js").then((m) => m.wireMyLayers(account, layers));
      (await myLayers)().catch(report);
    },
    "menu-my-groups": async () => {
      groups ||= import("./groups.js").then((m) => m.wireGroups(account));
      (await groups)().catch(report);
    },
    "menu-audit": async () => {
      audit ||= import("./audit.js").then((m) => m.wireAudit());
      (await audit)().catch(report);
    },
    "menu-tokens": () => openTokens(),
    "menu-password": () => openPassword(),
    "menu-sign-out": async () => {
      try {
        await account.signOut();
        status.textContent = "You are signed out.";
      } catch (error) {
        report(error);
      }
      document.getElementById("sign-in-open").focus();
    },
  });
  let first = true;
  account.onChange((me) => {
    document.getElementById("sign-in-open").hidden = Boolean(me.signed_in);
    document.getElementById("account-signed-in").hidden = !me.signed_in;
    document.getElementById("account-name").textContent = me.display || me.user || "";
    // the audit log is for admins and stewards
    document.getElementById("menu-audit-item").hidden = !(me.admin || (me.groups || []).some((g) => g.role === "steward"));
    document.body.dataset.signedIn = String(Boolean(me.signed_in));
    if (first) { first = false; return; } // the page's first catalogue already is this person's
    for (const d of document.querySelectorAll("dialog[open]")) if (d.id !== "sign-in-dialog") d.close();
    layers.refresh().catch(report);
  });
}
