// One session's view: its head, attach command, messages, kill, and its screen polled.

import {
  $,
  firstLine,
  flash,
  sessionPath,
  setAge,
  setStatus,
  setText,
  showError,
  showMsg,
  sandboxText,
  since,
  visible,
} from "./dom.js";
import { state } from "./state.js";
import { api, getJSON } from "./api.js";
import { ansiToFragment } from "./ansi.js";
import { renderPrPanel } from "./pr.js";

const SCREEN_LINES = 200;

export function openSession(id) {
  const head = $("#sv-id");
  if (head.dataset.id !== id) $("#message").value = ""; // a draft belongs to its session
  head.dataset.id = id; // the shown text may carry bidi markers, so the id is kept apart
  setText(head, id);
  for (const f of ["branch", "agent", "project", "host", "sandbox", "created", "workspace"]) $("#sv-" + f).textContent = "";
  setStatus($("#session-status"), "…");
  $("#sv-age").textContent = "";
  $("#sv-gone").hidden = true;
  $("#sv-pr").hidden = true;
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

export function renderSessionHead() {
  const s = state.sessions.get(state.view.id);
  if (!s) return;
  setStatus($("#session-status"), s.status);
  setAge($("#sv-age"), since(s));
  setText($("#sv-branch"), s.branch || "-");
  setText($("#sv-agent"), s.agent || "-");
  setText($("#sv-project"), s.project_id || "-");
  setText($("#sv-host"), s.host || "local");
  setText($("#sv-sandbox"), sandboxText(s.sandbox));
  setText($("#sv-created"), new Date(s.created_at).toLocaleString());
  setText($("#sv-workspace"), s.workspace_path || "-");
  const waiting = $("#sv-waiting");
  waiting.hidden = s.status !== "waiting_input";
  setText(waiting, "waiting: " + (s.waiting_for || "waiting for input"));
  const note = $("#sv-note");
  note.hidden = !s.note;
  setText(note, s.note || "");
  renderPrPanel(s);
  setText($("#sv-task-summary"), "task: " + firstLine(s.task, 100));
  setText($("#sv-task-text"), s.task || "(no task)");
}

// "this session is gone" explains it all: errors from asking for it just before are noise.
export function markGone() {
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

export async function onCopyAttach() {
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

export async function onSend(ev) {
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

export function onMessageKey(ev) {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    $("#message-form").requestSubmit();
  }
}

export async function onKill() {
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

export function stopScreen() {
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
