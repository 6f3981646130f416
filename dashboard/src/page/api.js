// The JSON API and its token.

import { $, showMsg } from "./dom.js";
import { state } from "./state.js";
import { connectEvents } from "./feed.js";
import { loadProjects } from "./spawn.js";
import { route } from "./views.js";

export const TOKEN_KEY = "ao-token";

export function storage(fn) {
  try { return fn(window.sessionStorage); } catch { return null; } // storage can be disabled
}

// A link like /#token=XYZ carries the token once; keep it for this tab and hide it from the URL.
export function takeTokenFromHash() {
  const token = tokenFromHash(location.hash);
  if (!token) return false;
  storage((s) => s.setItem(TOKEN_KEY, token));
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}

// The whole rest of the fragment is the token. Not URLSearchParams: it would turn "+" into a
// space and stop at "&". The server prints the token percent-encoded, so only %XX is decoded.
function tokenFromHash(hash) {
  if (!hash.startsWith("#token=")) return null;
  const raw = hash.slice("#token=".length);
  if (!/%[0-9A-Fa-f]{2}/.test(raw)) return raw;
  try { return decodeURIComponent(raw); } catch { return raw; } // a stray "%" is part of the token
}

export function authHeaders(extra) {
  const h = Object.assign({}, extra);
  if (state.token) h.Authorization = "Bearer " + state.token;
  return h;
}

async function errorMessage(res) {
  const text = await res.text().catch(() => "");
  try {
    const j = JSON.parse(text);
    if (j && typeof j.error === "string") return j.error;
  } catch { /* not JSON: fall through to the raw text */ }
  return text.trim().slice(0, 300) || "HTTP " + res.status;
}

// Errors carry the HTTP status and the token they were sent with, for showError and onKill.
export async function api(method, path, opts = {}) {
  const token = state.token;
  const headers = authHeaders(opts.type ? { "Content-Type": opts.type } : null);
  let res;
  try {
    res = await fetch(path, { method, headers, body: opts.body, cache: "no-store" });
  } catch (e) {
    throw new Error("cannot reach the server (" + e.message + ")");
  }
  if (res.ok) tokenWorked(token);
  else if (res.status === 401 && token === state.token) showTokenForm();
  if (!res.ok) throw Object.assign(new Error(await errorMessage(res)), { status: res.status, token });
  return res;
}

export const getJSON = async (path) => (await api("GET", path)).json();

export function showTokenForm() {
  const form = $("#token-form");
  if (!form.hidden) return;
  form.hidden = false;
  $("#token-input").focus();
}

// The server took the token: the bar asking for it and errors about a missing one are stale.
// An answer to a token replaced meanwhile says nothing about the current one.
export function tokenWorked(token) {
  if (token !== state.token) return;
  const form = $("#token-form");
  if (!form.hidden) form.hidden = true;
  clearAuthErrors();
}

function clearAuthErrors() {
  for (const e of document.querySelectorAll("[data-auth-error]")) showMsg(e, "");
}

export function onTokenSubmit(ev) {
  ev.preventDefault();
  const token = $("#token-input").value.trim();
  storage((s) => (token ? s.setItem(TOKEN_KEY, token) : s.removeItem(TOKEN_KEY)));
  state.token = token || null;
  $("#token-input").value = "";
  $("#token-form").hidden = true;
  clearAuthErrors();
  reloadAll();
}

export function reloadAll() {
  loadProjects();
  connectEvents();
  route();
}
