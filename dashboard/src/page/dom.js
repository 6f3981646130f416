// Small DOM helpers. Everything the server sends (tasks, screens, branch names, errors) is
// hostile text: DOM is built with createElement and textContent only, never with HTML strings.

import { state } from "./state.js";

export const $ = (sel) => document.querySelector(sel);

// Bidi controls and marks can reverse or reorder what is shown around them ("Trojan Source"
// tasks, branch names that read as something else); they are shown as visible markers instead.
const BIDI_RE = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/g;

// Every text from the server goes through here before it reaches textContent, title or a dialog.
export function visible(text) {
  return String(text).replace(BIDI_RE, (c) => "⟪U+" + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0") + "⟫");
}

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = visible(text);
  return e;
}

// Only touch the DOM when the text changed, so hovered or selected rows do not flicker.
export function setText(e, text) {
  const shown = visible(text);
  if (e.textContent !== shown) e.textContent = shown;
}

export function setTitle(e, text) {
  const shown = visible(text);
  if (e.title !== shown) e.title = shown;
}

export function showMsg(e, text, isError) {
  e.textContent = visible(text || "");
  e.classList.toggle("error", !!isError);
  e.hidden = !text;
  delete e.dataset.authError;
}

// A refused token is marked on the error it left, so the first call the token passes clears it.
export function showError(e, err, prefix = "") {
  if (err.status === 401 && err.token !== state.token) return showMsg(e, ""); // answered an old token
  showMsg(e, prefix + err.message, true);
  if (err.status === 401) e.dataset.authError = "1";
}

function ago(ms) {
  if (!Number.isFinite(ms)) return "";
  const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

export const since = (s) => s.unreachable_since ?? s.activity_at ?? s.created_at;
export const sessionPath = (id) => "/api/sessions/" + encodeURIComponent(id);
export const sessionHash = (id) => "#/session/" + encodeURIComponent(id);

/** How a session is confined, as the CLI's SANDBOX column says it ("-": unconfined). */
export function sandboxText(sandbox) {
  if (!sandbox) return "-";
  return sandbox.network === "none" ? `${sandbox.plugin} (no network)` : sandbox.plugin;
}

export function firstLine(text, max) {
  if (!text || !text.trim()) return "-";
  const line = text.trim().split(/\r?\n/)[0];
  return line.length > max ? line.slice(0, max - 1) + "…" : line;
}

export function setStatus(e, status) {
  const cls = "badge status-" + String(status).replace(/[^a-z_]/g, "");
  if (e.className !== cls) e.className = cls;
  setText(e, String(status));
}

export function setAge(e, ms) {
  e.dataset.since = String(ms);
  setText(e, ago(ms));
}

export function refreshAges() {
  for (const e of document.querySelectorAll(".age[data-since]")) setText(e, ago(Number(e.dataset.since)));
}

export function flash(text) {
  const f = $("#flash");
  f.textContent = visible(text);
  f.hidden = false;
  clearTimeout(state.flashTimer);
  state.flashTimer = setTimeout(() => { f.hidden = true; }, 15000);
}

export function emptyRow(span, text) {
  const tr = el("tr", "empty");
  const td = el("td", null, text);
  td.colSpan = span;
  tr.append(td);
  return tr;
}
