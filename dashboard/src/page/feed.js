// The live feed of the session list (server-sent events read over fetch).

import { $, setText } from "./dom.js";
import { state } from "./state.js";
import { authHeaders, showTokenForm, tokenWorked } from "./api.js";
import { noticeWaiting, renderProblems, renderTable, renderTitle } from "./sessions.js";
import { markGone, renderSessionHead } from "./session.js";

export function setLive(on) {
  const e = $("#live");
  setText(e, on ? "live" : "reconnecting…");
  e.classList.toggle("on", on);
}

// EventSource cannot send an Authorization header, so the stream is read by hand.
export function connectEvents() {
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
export function upsert(s) {
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
