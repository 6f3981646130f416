// The sessions list: the table, and waiting sessions in the title and as notifications.

import {
  $,
  el,
  emptyRow,
  firstLine,
  sessionHash,
  setAge,
  setStatus,
  setText,
  setTitle,
  sandboxText,
  since,
  visible,
} from "./dom.js";
import { state } from "./state.js";
import { renderWatcherNote, updatePrCell } from "./pr.js";

export function noticeWaiting(s) {
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

export function renderTitle() {
  let n = 0;
  for (const s of state.sessions.values()) if (s.status === "waiting_input") n++;
  const title = n ? `(${n}) ao-host` : "ao-host";
  if (document.title !== title) document.title = title;
}

export function updateNotifyButton() {
  $("#notify").hidden = !("Notification" in window) || Notification.permission !== "default";
}

export async function onNotify() {
  try { await Notification.requestPermission(); } catch { /* dismissed */ }
  updateNotifyButton();
}

// ---------------------------------------------------------------- sessions table

function sortedSessions() {
  const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  return [...state.sessions.values()].sort((a, b) => (a.created_at - b.created_at) || byId(a, b));
}

export function renderProblems() {
  $("#problems-list").replaceChildren(...state.problems.map((p) => el("li", null, String(p))));
  $("#problems").hidden = state.problems.length === 0;
}

// Diff rows by data-id: existing rows are updated in place and only moved when out of order.
export function renderTable() {
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
  renderWatcherNote();
  renderCostTotal(list);
}

// A session's cost as `session ls` prints it: `$0.42`, `$0.42+?` when a model has no price,
// its tokens when none has, `counting…`, `?` when unknown, `-` before the first reply.
function costText(usage) {
  if (!usage || usage.state === "none") return "-";
  if (usage.state === "counting") return "counting…";
  const models = Object.values(usage.models || {});
  if (usage.state === "unknown" && models.length === 0) return "?";
  if (usage.cost_usd === null || usage.cost_usd === undefined) {
    const tokens = models.reduce(
      (n, m) => n + m.input + m.output + m.cache_read + m.cache_write + m.reasoning, 0);
    return `${tokens} tok`;
  }
  return `$${usage.cost_usd.toFixed(2)}${usage.priced ? "" : "+?"}`;
}

function costTitle(usage) {
  if (!usage) return "";
  const lines = Object.entries(usage.models || {}).map(([model, m]) =>
    `${model}: ${m.replies} replies, in ${m.input}, out ${m.output}, cache read ${m.cache_read}, ` +
    `cache write ${m.cache_write}, reasoning ${m.reasoning}, ` +
    (m.cost_usd === null ? "price unknown" : `$${m.cost_usd.toFixed(4)}`));
  return [...lines, ...(usage.notes || [])].join("\n");
}

// The sum of the listed sessions' priced costs; marked partial when one is not whole.
function renderCostTotal(list) {
  let sum = 0;
  let whole = true;
  for (const s of list) {
    const u = s.usage;
    if (!u) {
      whole = false;
      continue;
    }
    if (typeof u.cost_usd === "number") sum += u.cost_usd;
    if (u.state !== "none" && (!u.priced || u.state === "counting")) whole = false;
  }
  setText($("#cost-total"), `$${sum.toFixed(2)}${whole ? "" : "+?"}`);
}

function renderEmptyRow(tbody, empty) {
  let row = tbody.querySelector("tr.empty");
  if (empty && !row) tbody.append((row = emptyRow(8, "")));
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
  tr.append(idCell, el("td", "project"), el("td", "host"), el("td", "sandbox"), status, el("td", "cost"), el("td", "branch"), el("td", "pr"), task);
  return tr;
}

function updateRow(tr, s) {
  const [, project, host, sandbox, status, cost, branch, pr, task] = tr.cells;
  tr.classList.toggle("waiting", s.status === "waiting_input");
  setText(project, s.project_id || "-");
  setText(host, s.host || "local");
  setText(sandbox, sandboxText(s.sandbox));
  setStatus(status.children[0], s.status);
  setAge(status.children[1], since(s));
  setText(status.children[2], s.status === "waiting_input" ? s.waiting_for || "" : "");
  setText(cost, costText(s.usage));
  setTitle(cost, costTitle(s.usage));
  setText(branch, s.branch || "-");
  updatePrCell(pr, s);
  setText(task.children[0], firstLine(s.task, 80));
  setTitle(task, s.task || "");
  setText(task.children[1], s.note || "");
}

export function onTableClick(ev) {
  if (ev.target.closest("a")) return; // the id link navigates by itself
  if (String(window.getSelection())) return; // selecting text is not a click on the row
  const tr = ev.target.closest("tr[data-id]");
  if (tr) location.hash = sessionHash(tr.dataset.id);
}
