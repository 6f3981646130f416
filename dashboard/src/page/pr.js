// Pull requests as the watcher stored them (the `pr`, `queued` and `watcher_running` fields of
// each session): a cell of the sessions table, the panel of the session view, and the note when
// no watcher keeps them fresh. Links are the forge's; only http(s) ones are made clickable.

import { $, el, setAge, setText } from "./dom.js";
import { state } from "./state.js";

const CI = { passing: "ci pass", failing: "ci fail", pending: "ci pending" };
const REVIEW = { approved: "approved", changes_requested: "changes", review_required: "review wanted" };

// A link to `url` when it is a web address, else its text.
function link(url, text) {
  let safe = null;
  try {
    const u = new URL(String(url));
    if (u.protocol === "https:" || u.protocol === "http:") safe = u.href;
  } catch { /* not a URL: shown as text */ }
  if (!safe) return el("span", null, text);
  const a = el("a", null, text);
  a.href = safe;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

function badge(cls, text) {
  return el("span", "badge pr-" + cls, text);
}

// Badges that say a pull request's state in a few words.
function badges(pr) {
  if (pr.state !== "open") return [badge(pr.state === "merged" ? "good" : "muted", pr.state)];
  const out = [];
  if (pr.draft) out.push(badge("muted", "draft"));
  if (CI[pr.ci]) out.push(badge(pr.ci === "failing" ? "bad" : pr.ci === "passing" ? "good" : "muted", CI[pr.ci]));
  if (REVIEW[pr.review]) out.push(badge(pr.review === "changes_requested" ? "bad" : pr.review === "approved" ? "good" : "muted", REVIEW[pr.review]));
  if (pr.mergeable === "conflicting") out.push(badge("bad", "conflict"));
  return out;
}

// What the sessions table shows in its `pr` column: rebuilt only when the facts changed.
export function updatePrCell(td, s) {
  const facts = JSON.stringify([s.pr && { ...s.pr, age_secs: 0 }, (s.queued || []).length, s.watch_note]);
  if (td.dataset.facts === facts) return;
  td.dataset.facts = facts;
  const parts = [];
  if (s.pr) parts.push(link(s.pr.url, "#" + s.pr.number), " ", ...badges(s.pr).flatMap((b) => [b, " "]));
  else parts.push(el("span", "muted", "-"), " ");
  if (s.queued && s.queued.length) parts.push(badge("queued", s.queued.length + " queued"));
  if (s.watch_note) parts.push(el("div", "note", s.watch_note));
  td.replaceChildren(...parts);
}

// The note above the table when some session's pull request is shown but no watcher runs.
export function renderWatcherNote() {
  let stale = false;
  for (const s of state.sessions.values()) if (!s.watcher_running && (s.pr || (s.queued && s.queued.length))) stale = true;
  $("#no-watcher").hidden = !stale;
}

function row(dl, term, ...value) {
  const dd = el("dd");
  dd.append(...value);
  dl.append(el("dt", null, term), dd);
}

// The session view's panel: the pull request in detail, its queue, and the watcher's word.
export function renderPrPanel(s) {
  const panel = $("#sv-pr");
  const facts = JSON.stringify([s.pr && { ...s.pr, age_secs: 0 }, s.queued, s.watch_note, s.watcher_running]);
  if (panel.dataset.facts === facts) return;
  panel.dataset.facts = facts;
  const parts = [el("h3", null, "pull request")];
  if (s.pr) {
    const pr = s.pr;
    const dl = el("dl", "meta");
    row(dl, "link", link(pr.url, "#" + pr.number + " " + pr.title));
    row(dl, "state", ...badges(pr).flatMap((b) => [b, " "]));
    const failed = el("ul", "plain");
    for (const c of pr.failed_checks || []) {
      const li = el("li");
      li.append(link(c.url, c.name));
      failed.append(li);
    }
    row(dl, "ci", el("span", null, pr.ci), failed);
    row(dl, "review", el("span", null, pr.review + ", " + pr.unresolved_comments + " unresolved comment(s)"));
    row(dl, "mergeable", el("span", null, pr.mergeable));
    const checked = el("span", "age");
    setAge(checked, pr.checked_at);
    row(dl, "checked", checked, " ago");
    parts.push(dl);
  } else {
    parts.push(el("p", "muted", "no pull request known for this branch"));
  }
  if (s.queued && s.queued.length) {
    const list = el("ul", "plain");
    for (const q of s.queued) {
      const li = el("li", null, q.reaction + ": " + q.summary + " (waiting ");
      const age = el("span", "age");
      setAge(age, q.queued_at);
      li.append(age, ")");
      list.append(li);
    }
    parts.push(el("h3", null, "queued until the agent is idle"), list);
  }
  if (s.watch_note) parts.push(el("p", "note-box", s.watch_note));
  if (!s.watcher_running && (s.pr || (s.queued && s.queued.length))) {
    parts.push(el("p", "note-box", "no watcher running (start `ao-host watch`): this may be old"));
  }
  panel.replaceChildren(...parts);
  panel.hidden = !s.pr && !(s.queued && s.queued.length) && !s.watch_note;
}
