"use strict";

// The ao-host dashboard. Hand-written, no libraries. Everything the server sends (tasks,
// screens, branch names, errors) is hostile text: DOM is built with createElement and
// textContent only, never with HTML strings.

const $ = (sel) => document.querySelector(sel);

const SCREEN_LINES = 200;
const TOKEN_KEY = "ao-token";

const state = {
  token: null,
  sessions: new Map(), // id -> session object, as the live feed last told us
  problems: [],
  loaded: false, // a snapshot has arrived at least once
  view: { name: "sessions", id: null },
  events: { gen: 0, abort: null, timer: null, backoff: 1000 },
  screen: { gen: 0, timer: null, text: null },
  flashTimer: null,
};

// ---------------------------------------------------------------- small helpers

// Bidi controls and marks can reverse or reorder what is shown around them ("Trojan Source"
// tasks, branch names that read as something else); they are shown as visible markers instead.
const BIDI_RE = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/g;

// Every text from the server goes through here before it reaches textContent, title or a dialog.
function visible(text) {
  return String(text).replace(BIDI_RE, (c) => "⟪U+" + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0") + "⟫");
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = visible(text);
  return e;
}

// Only touch the DOM when the text changed, so hovered or selected rows do not flicker.
function setText(e, text) {
  const shown = visible(text);
  if (e.textContent !== shown) e.textContent = shown;
}

function setTitle(e, text) {
  const shown = visible(text);
  if (e.title !== shown) e.title = shown;
}

function showMsg(e, text, isError) {
  e.textContent = visible(text || "");
  e.classList.toggle("error", !!isError);
  e.hidden = !text;
  delete e.dataset.authError;
}

// A refused token is marked on the error it left, so the first call the token passes clears it.
function showError(e, err, prefix = "") {
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

const since = (s) => s.unreachable_since ?? s.activity_at ?? s.created_at;
const sessionPath = (id) => "/api/sessions/" + encodeURIComponent(id);
const sessionHash = (id) => "#/session/" + encodeURIComponent(id);

function firstLine(text, max) {
  if (!text || !text.trim()) return "-";
  const line = text.trim().split(/\r?\n/)[0];
  return line.length > max ? line.slice(0, max - 1) + "…" : line;
}

function setStatus(e, status) {
  const cls = "badge status-" + String(status).replace(/[^a-z_]/g, "");
  if (e.className !== cls) e.className = cls;
  setText(e, String(status));
}

function setAge(e, ms) {
  e.dataset.since = String(ms);
  setText(e, ago(ms));
}

function refreshAges() {
  for (const e of document.querySelectorAll(".age[data-since]")) setText(e, ago(Number(e.dataset.since)));
}

function flash(text) {
  const f = $("#flash");
  f.textContent = visible(text);
  f.hidden = false;
  clearTimeout(state.flashTimer);
  state.flashTimer = setTimeout(() => { f.hidden = true; }, 15000);
}

// ---------------------------------------------------------------- API and token

function storage(fn) {
  try { return fn(window.sessionStorage); } catch { return null; } // storage can be disabled
}

// A link like /#token=XYZ carries the token once; keep it for this tab and hide it from the URL.
function takeTokenFromHash() {
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

function authHeaders(extra) {
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
async function api(method, path, opts = {}) {
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

const getJSON = async (path) => (await api("GET", path)).json();

function showTokenForm() {
  const form = $("#token-form");
  if (!form.hidden) return;
  form.hidden = false;
  $("#token-input").focus();
}

// The server took the token: the bar asking for it and errors about a missing one are stale.
// An answer to a token replaced meanwhile says nothing about the current one.
function tokenWorked(token) {
  if (token !== state.token) return;
  const form = $("#token-form");
  if (!form.hidden) form.hidden = true;
  clearAuthErrors();
}

function clearAuthErrors() {
  for (const e of document.querySelectorAll("[data-auth-error]")) showMsg(e, "");
}

function onTokenSubmit(ev) {
  ev.preventDefault();
  const token = $("#token-input").value.trim();
  storage((s) => (token ? s.setItem(TOKEN_KEY, token) : s.removeItem(TOKEN_KEY)));
  state.token = token || null;
  $("#token-input").value = "";
  $("#token-form").hidden = true;
  clearAuthErrors();
  reloadAll();
}

function reloadAll() {
  loadProjects();
  connectEvents();
  route();
}

// ---------------------------------------------------------------- live feed (SSE over fetch)

function setLive(on) {
  const e = $("#live");
  setText(e, on ? "live" : "reconnecting…");
  e.classList.toggle("on", on);
}

// EventSource cannot send an Authorization header, so the stream is read by hand.
function connectEvents() {
  const ev = state.events;
  if (ev.abort) ev.abort.abort();
  clearTimeout(ev.timer);
  const gen = ++ev.gen;
  ev.abort = new AbortController();
  readEvents(ev.abort.signal)
    .catch(() => {})
    .finally(() => {
      if (gen !== ev.gen) return; // a newer connection replaced this one
      setLive(false);
      ev.timer = setTimeout(connectEvents, ev.backoff);
      ev.backoff = Math.min(ev.backoff * 2, 10000);
    });
}

async function readEvents(signal) {
  const token = state.token;
  const res = await fetch("/api/events", { headers: authHeaders(), signal, cache: "no-store" });
  if (res.status === 401 && token === state.token) showTokenForm();
  if (!res.ok || !res.body) throw new Error("HTTP " + res.status);
  tokenWorked(token);
  setLive(true);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const feed = sseParser(handleEvent);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    feed(decoder.decode(value, { stream: true }));
  }
}

function sseParser(onEvent) {
  let buf = "", type = "", data = [];
  return (chunk) => {
    buf += chunk;
    const lines = buf.split("\n");
    buf = lines.pop(); // an incomplete line waits for the next chunk
    for (let line of lines) {
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        if (data.length) onEvent(type || "message", data.join("\n"));
        type = "";
        data = [];
      } else if (line[0] !== ":") { // ":" lines are keep-alive comments
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        let value = i < 0 ? "" : line.slice(i + 1);
        if (value[0] === " ") value = value.slice(1);
        if (field === "event") type = value;
        else if (field === "data") data.push(value);
      }
    }
  };
}

function handleEvent(type, raw) {
  let data;
  try { data = JSON.parse(raw); } catch { return; }
  if (!data) return;
  if (type === "snapshot") applySnapshot(data);
  else if (type === "session") upsert(data);
  else if (type === "removed") removeSession(data.id);
  else if (type === "problems") setProblems(data.problems);
}

function applySnapshot(data) {
  const list = Array.isArray(data.sessions) ? data.sessions.filter((s) => s && s.id) : [];
  list.forEach(noticeWaiting);
  state.sessions = new Map(list.map((s) => [s.id, s]));
  state.problems = Array.isArray(data.problems) ? data.problems : [];
  state.loaded = true;
  state.events.backoff = 1000;
  renderAll();
  if (state.view.name === "session" && !state.sessions.has(state.view.id)) markGone();
}

// The feed leaves `task` out when it did not change since it last sent this session (tasks can
// be long); every other field is always present, so only the task is carried over.
function upsert(s) {
  if (!s || !s.id) return;
  const before = state.sessions.get(s.id);
  if (before && !("task" in s)) s = Object.assign({}, s, { task: before.task });
  noticeWaiting(s);
  state.sessions.set(s.id, s);
  renderAll();
}

// The current list of unreadable records, replacing the one from the snapshot.
function setProblems(problems) {
  state.problems = Array.isArray(problems) ? problems : [];
  renderProblems();
}

function removeSession(id) {
  state.sessions.delete(id);
  renderAll();
  if (state.view.name === "session" && state.view.id === id) markGone();
}

function renderAll() {
  renderProblems();
  renderTable();
  renderTitle();
  if (state.view.name === "session") renderSessionHead();
}

// ---------------------------------------------------------------- waiting sessions: title, notifications

function noticeWaiting(s) {
  const before = state.sessions.get(s.id);
  // The first snapshot only tells what already waits; notify for changes seen after it.
  if (state.loaded && s.status === "waiting_input" && (!before || before.status !== "waiting_input")) notify(s);
}

function notify(s) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    const n = new Notification(visible(s.id) + " needs you", { body: visible(s.waiting_for || "waiting for input") });
    n.onclick = () => { window.focus(); location.hash = sessionHash(s.id); };
  } catch { /* some browsers only allow notifications from a service worker */ }
}

function renderTitle() {
  let n = 0;
  for (const s of state.sessions.values()) if (s.status === "waiting_input") n++;
  const title = n ? `(${n}) ao-host` : "ao-host";
  if (document.title !== title) document.title = title;
}

function updateNotifyButton() {
  $("#notify").hidden = !("Notification" in window) || Notification.permission !== "default";
}

async function onNotify() {
  try { await Notification.requestPermission(); } catch { /* dismissed */ }
  updateNotifyButton();
}

// ---------------------------------------------------------------- sessions table

function sortedSessions() {
  const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  return [...state.sessions.values()].sort((a, b) => (a.created_at - b.created_at) || byId(a, b));
}

function renderProblems() {
  $("#problems-list").replaceChildren(...state.problems.map((p) => el("li", null, String(p))));
  $("#problems").hidden = state.problems.length === 0;
}

// Diff rows by data-id: existing rows are updated in place and only moved when out of order.
function renderTable() {
  const tbody = $("#sessions tbody");
  const list = sortedSessions();
  const rows = new Map([...tbody.querySelectorAll("tr[data-id]")].map((tr) => [tr.dataset.id, tr]));
  for (const [id, tr] of rows) if (!state.sessions.has(id)) tr.remove();
  renderEmptyRow(tbody, list.length === 0);
  let prev = null;
  for (const s of list) {
    const tr = rows.get(s.id) || buildRow(s.id);
    updateRow(tr, s);
    const want = prev ? prev.nextElementSibling : tbody.firstElementChild;
    if (tr !== want) tbody.insertBefore(tr, want);
    prev = tr;
  }
}

function renderEmptyRow(tbody, empty) {
  let row = tbody.querySelector("tr.empty");
  if (empty && !row) tbody.append((row = emptyRow(6, "")));
  if (!empty && row) row.remove();
  if (empty) setText(row.firstChild, state.loaded ? "no sessions yet — spawn one above" : "loading…");
}

function buildRow(id) {
  const tr = el("tr");
  tr.dataset.id = id;
  const link = el("a", null, id);
  link.href = sessionHash(id);
  const idCell = el("td", "id");
  idCell.append(link);
  const status = el("td", "status");
  status.append(el("span", "badge"), " ", el("span", "age"), el("div", "waiting-for"));
  const task = el("td", "task");
  task.append(el("div", "task-line"), el("div", "note"));
  tr.append(idCell, el("td", "project"), el("td", "host"), status, el("td", "branch"), task);
  return tr;
}

function updateRow(tr, s) {
  const [, project, host, status, branch, task] = tr.cells;
  tr.classList.toggle("waiting", s.status === "waiting_input");
  setText(project, s.project_id || "-");
  setText(host, s.host || "local");
  setStatus(status.children[0], s.status);
  setAge(status.children[1], since(s));
  setText(status.children[2], s.status === "waiting_input" ? s.waiting_for || "" : "");
  setText(branch, s.branch || "-");
  setText(task.children[0], firstLine(s.task, 80));
  setTitle(task, s.task || "");
  setText(task.children[1], s.note || "");
}

function onTableClick(ev) {
  if (ev.target.closest("a")) return; // the id link navigates by itself
  if (String(window.getSelection())) return; // selecting text is not a click on the row
  const tr = ev.target.closest("tr[data-id]");
  if (tr) location.hash = sessionHash(tr.dataset.id);
}

function emptyRow(span, text) {
  const tr = el("tr", "empty");
  const td = el("td", null, text);
  td.colSpan = span;
  tr.append(td);
  return tr;
}

// ---------------------------------------------------------------- spawn form

async function loadProjects() {
  try {
    const p = await getJSON("/api/projects");
    const option = (value, label) => { const o = el("option", null, label); o.value = value; return o; };
    $("#spawn-projects").replaceChildren(...(p.projects || []).map((name) => option(name)));
    const input = $("#spawn-project");
    if (!input.value && p.default_project) input.value = p.default_project;
    const select = $("#spawn-agent"), current = select.value;
    select.replaceChildren(option("", "project default"), ...(p.agents || []).map((a) => option(a, a)));
    select.value = (p.agents || []).includes(current) ? current : "";
  } catch (e) {
    showError($("#spawn-result"), e, "cannot load projects: ");
  }
}

async function onSpawn(ev) {
  ev.preventDefault();
  const button = $("#spawn-submit"), out = $("#spawn-result"), taskBox = $("#spawn-task");
  if (button.disabled) return;
  if (!taskBox.value.trim()) return showMsg(out, "write a task first", true);
  const body = { project: $("#spawn-project").value.trim() || null, task: taskBox.value };
  const agent = $("#spawn-agent").value;
  if (agent) body.agent = agent;
  button.disabled = true;
  showMsg(out, "spawning…"); // can take 5–30 s; the row shows up as spawning meanwhile
  try {
    const res = await api("POST", "/api/sessions", { body: JSON.stringify(body), type: "application/json" });
    const s = await res.json();
    // The feed is authoritative; only fill in a row it has not delivered yet.
    if (s && s.id && !state.sessions.has(s.id)) upsert(s);
    taskBox.value = "";
    showMsg(out, "spawned " + (s && s.id));
  } catch (e) {
    showError(out, e);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- views and routing

function parseHash() {
  const h = location.hash.replace(/^#\/?/, "");
  if (h.startsWith("session/")) {
    const raw = h.slice("session/".length);
    try { return { name: "session", id: decodeURIComponent(raw) }; } catch { return { name: "session", id: raw }; }
  }
  if (h === "plugins" || h === "doctor") return { name: h, id: null };
  return { name: "sessions", id: null };
}

function route() {
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

function onHashChange() {
  if (takeTokenFromHash()) {
    state.token = storage((s) => s.getItem(TOKEN_KEY));
    reloadAll();
  } else {
    route();
  }
}

// ---------------------------------------------------------------- session view

function openSession(id) {
  const head = $("#sv-id");
  if (head.dataset.id !== id) $("#message").value = ""; // a draft belongs to its session
  head.dataset.id = id; // the shown text may carry bidi markers, so the id is kept apart
  setText(head, id);
  for (const f of ["branch", "agent", "project", "host", "created", "workspace"]) $("#sv-" + f).textContent = "";
  setStatus($("#session-status"), "…");
  $("#sv-age").textContent = "";
  $("#sv-gone").hidden = true;
  $("#sv-task-summary").textContent = "task";
  $("#sv-task-text").textContent = "";
  $("#screen").replaceChildren();
  state.screen.text = null;
  showMsg($("#screen-error"), "");
  showMsg($("#send-result"), "");
  showMsg($("#kill-result"), "");
  loadAttach(id);
  if (state.loaded && !state.sessions.has(id)) return markGone();
  renderSessionHead();
  startScreen(id);
}

function renderSessionHead() {
  const s = state.sessions.get(state.view.id);
  if (!s) return;
  setStatus($("#session-status"), s.status);
  setAge($("#sv-age"), since(s));
  setText($("#sv-branch"), s.branch || "-");
  setText($("#sv-agent"), s.agent || "-");
  setText($("#sv-project"), s.project_id || "-");
  setText($("#sv-host"), s.host || "local");
  setText($("#sv-created"), new Date(s.created_at).toLocaleString());
  setText($("#sv-workspace"), s.workspace_path || "-");
  const waiting = $("#sv-waiting");
  waiting.hidden = s.status !== "waiting_input";
  setText(waiting, "waiting: " + (s.waiting_for || "waiting for input"));
  const note = $("#sv-note");
  note.hidden = !s.note;
  setText(note, s.note || "");
  setText($("#sv-task-summary"), "task: " + firstLine(s.task, 100));
  setText($("#sv-task-text"), s.task || "(no task)");
}

// "this session is gone" explains it all: errors from asking for it just before are noise.
function markGone() {
  stopScreen();
  $("#sv-gone").hidden = false;
  for (const sel of ["#screen-error", "#send-result", "#kill-result"]) {
    const e = $(sel);
    if (e.classList.contains("error")) showMsg(e, "");
  }
}

async function loadAttach(id) {
  const code = $("#attach-command");
  code.textContent = "…";
  try {
    const a = await getJSON(sessionPath(id) + "/attach");
    // Copy takes the shown text: a command with bidi markers fails instead of running a spoof.
    if (state.view.id === id) setText(code, a.command || (a.argv || []).join(" "));
  } catch (e) {
    if (state.view.id === id) setText(code, "(" + e.message + ")");
  }
}

async function onCopyAttach() {
  const code = $("#attach-command"), button = $("#copy-attach");
  try {
    await navigator.clipboard.writeText(code.textContent);
    button.textContent = "Copied";
  } catch {
    // No clipboard API (plain http, or permission denied): select it for Ctrl+C instead.
    const range = document.createRange();
    range.selectNodeContents(code);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    button.textContent = "Press Ctrl+C";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
}

async function onSend(ev) {
  ev.preventDefault();
  const id = state.view.id, box = $("#message"), button = $("#send"), out = $("#send-result");
  if (button.disabled) return;
  if (box.value === "") return showMsg(out, "nothing to send", true);
  button.disabled = box.disabled = true;
  showMsg(out, "sending…");
  try {
    // The message goes byte-exact: no trimming.
    await api("POST", sessionPath(id) + "/messages", { body: box.value, type: "text/plain; charset=utf-8" });
    if (state.view.id === id) box.value = "";
    showMsg(out, "sent");
  } catch (e) {
    showError(out, e);
  } finally {
    button.disabled = box.disabled = false;
    box.focus();
  }
}

function onMessageKey(ev) {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    $("#message-form").requestSubmit();
  }
}

async function onKill() {
  const id = state.view.id, button = $("#kill"), out = $("#kill-result");
  if (button.disabled) return;
  if (!window.confirm(`Kill ${visible(id)}? This stops the agent and ends its session.`)) return;
  button.disabled = true;
  showMsg(out, "");
  try {
    if (!(await killSession(id))) return showMsg(out, "not killed: the worktree and its changes are kept");
    flash("killed " + id);
    if (state.view.id === id) location.hash = "#/";
  } catch (e) {
    if (state.view.id === id) showError(out, e);
  } finally {
    button.disabled = false;
  }
}

// The server refuses (409) to remove a worktree with uncommitted changes unless forced; losing
// them needs its own yes. False when the user keeps them.
async function killSession(id) {
  try {
    await api("DELETE", sessionPath(id));
  } catch (e) {
    if (e.status !== 409 || !/uncommitted/i.test(e.message)) throw e;
    const question = `${visible(id)} has uncommitted changes in its worktree. Remove it anyway? (the changes are lost; Cancel keeps everything)`;
    if (!window.confirm(question)) return false;
    await api("DELETE", sessionPath(id) + "?force=1");
  }
  return true;
}

// ---------------------------------------------------------------- screen polling

// One request at a time: the next one is scheduled only after the previous one finished.
function startScreen(id) {
  const sc = state.screen;
  const gen = ++sc.gen;
  const tick = async () => {
    if (!document.hidden) await refreshScreen(id, gen); // a background tab does not poll
    if (gen === sc.gen) sc.timer = setTimeout(tick, 1000);
  };
  tick();
}

function stopScreen() {
  state.screen.gen++;
  clearTimeout(state.screen.timer);
}

async function refreshScreen(id, gen) {
  try {
    const res = await api("GET", `${sessionPath(id)}/screen?ansi=1&lines=${SCREEN_LINES}`);
    const text = (await res.text()).replace(/\s+$/, "");
    if (gen !== state.screen.gen) return;
    showMsg($("#screen-error"), "");
    if (text !== state.screen.text) paintScreen(text); // unchanged: keep the user's selection
  } catch (e) {
    if (gen === state.screen.gen) showError($("#screen-error"), e);
  }
}

function paintScreen(text) {
  const pre = $("#screen");
  // Follow new output, unless the user scrolled up to read something.
  const pinned = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
  state.screen.text = text;
  pre.replaceChildren(ansiToFragment(text));
  if (pinned) pre.scrollTop = pre.scrollHeight;
}

// ---------------------------------------------------------------- ANSI SGR → spans

// Any escape sequence: CSI (params, intermediates, final; possibly cut off), OSC up to BEL or
// ST, DCS/SOS/PM/APC up to ST, or a short ESC sequence. Only CSI … m is interpreted.
const ESC_RE = /\x1b(?:\[([0-?]*)[ -/]*([@-~])?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[ -/]*[0-~]?)/g;
const CTRL_RE = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g; // keeps \t and \n
const BASE16 = [
  "#3b4048", "#e06c75", "#98c379", "#d19a66", "#61afef", "#c678dd", "#56b6c2", "#c8ccd4",
  "#5c6370", "#ff7b86", "#b5e890", "#e5c07b", "#82c4ff", "#de9bf0", "#7fd8e3", "#ffffff",
];

const plainStyle = () => ({ bold: false, dim: false, italic: false, underline: false, inverse: false, strike: false, fg: null, bg: null });

function ansiToFragment(text) {
  const frag = document.createDocumentFragment();
  const st = plainStyle();
  let last = 0, m;
  ESC_RE.lastIndex = 0;
  while ((m = ESC_RE.exec(text))) {
    emitText(frag, text.slice(last, m.index), st);
    last = ESC_RE.lastIndex;
    if (m[2] === "m" && /^[\d;:]*$/.test(m[1])) applySgr(st, m[1]);
  }
  emitText(frag, text.slice(last), st);
  return frag;
}

function emitText(frag, raw, st) {
  const text = visible(raw.replace(CTRL_RE, ""));
  if (!text) return;
  if (Object.values(st).every((v) => !v)) return frag.append(text);
  const span = el("span", null, text);
  let fg = st.fg, bg = st.bg;
  if (st.inverse) [fg, bg] = [bg || "var(--screen-bg)", fg || "var(--screen-fg)"];
  if (fg) span.style.color = fg;
  if (bg) span.style.backgroundColor = bg;
  if (st.bold) span.style.fontWeight = "bold";
  if (st.dim) span.style.opacity = "0.6";
  if (st.italic) span.style.fontStyle = "italic";
  const deco = [st.underline && "underline", st.strike && "line-through"].filter(Boolean).join(" ");
  if (deco) span.style.textDecoration = deco;
  frag.append(span);
}

function applySgr(st, params) {
  const parts = params === "" ? ["0"] : params.split(";");
  for (let i = 0; i < parts.length; i++) {
    const sub = parts[i].split(":").map(Number); // "4:3", "38:2::r:g:b" sub-parameters
    const n = sub[0];
    if (n === 38 || n === 48) {
      let nums;
      if (sub.length > 1) {
        nums = sub.slice(1);
        if (nums[0] === 2 && nums.length > 4) nums = [2, ...nums.slice(-3)]; // skip colour-space id
      } else {
        nums = parts.slice(i + 1, i + 5).map(Number);
        i += nums[0] === 5 ? 2 : nums[0] === 2 ? 4 : parts.length;
      }
      const color = extendedColor(nums);
      if (color) st[n === 38 ? "fg" : "bg"] = color;
    } else {
      applySgrCode(st, n, sub);
    }
  }
}

// The on/off attributes; colours are handled below.
const SGR_ATTRS = {
  1: { bold: true }, 2: { dim: true }, 3: { italic: true }, 4: { underline: true }, 7: { inverse: true },
  9: { strike: true }, 22: { bold: false, dim: false }, 23: { italic: false }, 24: { underline: false },
  27: { inverse: false }, 29: { strike: false }, 39: { fg: null }, 49: { bg: null },
};

function applySgrCode(st, n, sub) {
  if (n === 0) Object.assign(st, plainStyle());
  else if (n === 4 && sub[1] === 0) st.underline = false; // "4:0" is underline off
  else if (SGR_ATTRS[n]) Object.assign(st, SGR_ATTRS[n]);
  else if (n >= 30 && n <= 37) st.fg = BASE16[n - 30];
  else if (n >= 90 && n <= 97) st.fg = BASE16[n - 90 + 8];
  else if (n >= 40 && n <= 47) st.bg = BASE16[n - 40];
  else if (n >= 100 && n <= 107) st.bg = BASE16[n - 100 + 8];
}

function extendedColor(nums) {
  if (nums[0] === 5 && nums.length >= 2) return palette256(nums[1]);
  if (nums[0] === 2 && nums.length >= 4) return rgb(nums[1], nums[2], nums[3]);
  return null;
}

function palette256(n) {
  if (!(n >= 0 && n <= 255)) return null;
  if (n < 16) return BASE16[n];
  if (n < 232) {
    const level = [0, 95, 135, 175, 215, 255];
    n -= 16;
    return rgb(level[Math.floor(n / 36)], level[Math.floor(n / 6) % 6], level[n % 6]);
  }
  const g = 8 + 10 * (n - 232);
  return rgb(g, g, g);
}

function rgb(r, g, b) {
  const c = (v) => Math.max(0, Math.min(255, v | 0));
  return `rgb(${c(r)}, ${c(g)}, ${c(b)})`;
}

// ---------------------------------------------------------------- plugins and doctor

async function loadPlugins() {
  const err = $("#plugins-error");
  showMsg(err, "");
  try {
    const data = await getJSON("/api/plugins");
    $("#plugin-dirs").replaceChildren(...(data.search_dirs || []).map((d) => el("li", null, d)));
    const rows = [];
    for (const p of data.plugins || []) {
      rows.push(pluginRow(p));
      if (!p.reason) continue;
      const reason = emptyRow(6, p.reason);
      reason.className = "reason plugin-" + p.status;
      rows.push(reason);
    }
    $("#plugins tbody").replaceChildren(...(rows.length ? rows : [emptyRow(6, "no plugins found")]));
  } catch (e) {
    showError(err, e);
  }
}

function pluginRow(p) {
  const tr = el("tr", "plugin plugin-" + p.status);
  const cells = [["kind", p.kind], ["name", p.name], ["version", p.version], ["api", p.api_version], ["status", p.status], ["path", p.path]];
  for (const [cls, value] of cells) tr.append(el("td", cls, value == null || value === "" ? "-" : String(value)));
  if (p.digest) setTitle(tr, "digest " + p.digest);
  return tr;
}

async function loadDoctor() {
  const err = $("#doctor-error"), list = $("#doctor-list");
  showMsg(err, "");
  list.replaceChildren(el("li", "muted", "checking…"));
  try {
    const checks = await getJSON("/api/doctor");
    list.replaceChildren(...checks.map((c) => {
      const li = el("li", c.ok ? "check ok" : "check fix");
      li.append(el("span", "verdict", c.ok ? "ok" : "FIX"), el("span", "what", c.what), el("div", "detail", c.detail || ""));
      return li;
    }));
  } catch (e) {
    list.replaceChildren();
    showError(err, e);
  }
}

// ---------------------------------------------------------------- start

function init() {
  takeTokenFromHash();
  state.token = storage((s) => s.getItem(TOKEN_KEY));
  $("#token-form").addEventListener("submit", onTokenSubmit);
  $("#notify").addEventListener("click", onNotify);
  $("#spawn-form").addEventListener("submit", onSpawn);
  $("#sessions tbody").addEventListener("click", onTableClick);
  $("#copy-attach").addEventListener("click", onCopyAttach);
  $("#message-form").addEventListener("submit", onSend);
  $("#message").addEventListener("keydown", onMessageKey);
  $("#kill").addEventListener("click", onKill);
  $("#plugins-refresh").addEventListener("click", loadPlugins);
  $("#doctor-refresh").addEventListener("click", loadDoctor);
  window.addEventListener("hashchange", onHashChange);
  setInterval(refreshAges, 10000);
  updateNotifyButton();
  setLive(false);
  renderTable();
  loadProjects();
  connectEvents();
  route();
}

init();
