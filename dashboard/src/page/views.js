// Which view shows: the sessions list, one session, plugins or doctor, from the URL's fragment.

import { $ } from "./dom.js";
import { state } from "./state.js";
import { reloadAll, storage, takeTokenFromHash, TOKEN_KEY } from "./api.js";
import { openSession, stopScreen } from "./session.js";
import { loadDoctor, loadPlugins } from "./checks.js";

function parseHash() {
  const h = location.hash.replace(/^#\/?/, "");
  if (h.startsWith("session/")) {
    const raw = h.slice("session/".length);
    try { return { name: "session", id: decodeURIComponent(raw) }; } catch { return { name: "session", id: raw }; }
  }
  if (h === "plugins" || h === "doctor") return { name: h, id: null };
  return { name: "sessions", id: null };
}

export function route() {
  const v = parseHash();
  stopScreen();
  state.view = { name: v.name, id: v.id };
  for (const name of ["sessions", "session", "plugins", "doctor"]) $(`#${name}-view`).hidden = name !== v.name;
  const tab = v.name === "session" ? "sessions" : v.name;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === tab);
  if (v.name === "session") openSession(v.id);
  else if (v.name === "plugins") loadPlugins();
  else if (v.name === "doctor") loadDoctor();
}

export function onHashChange() {
  if (takeTokenFromHash()) {
    state.token = storage((s) => s.getItem(TOKEN_KEY));
    reloadAll();
  } else {
    route();
  }
}
