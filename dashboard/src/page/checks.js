// The plugins and doctor views.

import { $, el, emptyRow, setTitle, showError, showMsg } from "./dom.js";
import { getJSON } from "./api.js";

export async function loadPlugins() {
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

export async function loadDoctor() {
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
