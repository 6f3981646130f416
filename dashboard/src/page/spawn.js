// The spawn form.

import { $, el, showError, showMsg } from "./dom.js";
import { state } from "./state.js";
import { api, getJSON } from "./api.js";
import { upsert } from "./feed.js";

export async function loadProjects() {
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

export async function onSpawn(ev) {
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
