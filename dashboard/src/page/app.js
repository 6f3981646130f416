// The ao-host dashboard. Hand-written, no libraries, no build step: ES modules served as they
// are (the server lists them in page.rs). This module wires the page up and starts it.

import { $, refreshAges } from "./dom.js";
import { state } from "./state.js";
import { onTokenSubmit, storage, takeTokenFromHash, TOKEN_KEY } from "./api.js";
import { connectEvents, setLive } from "./feed.js";
import { onNotify, onTableClick, renderTable, updateNotifyButton } from "./sessions.js";
import { loadProjects, onSpawn } from "./spawn.js";
import { onCopyAttach, onKill, onMessageKey, onSend } from "./session.js";
import { loadDoctor, loadPlugins } from "./checks.js";
import { onHashChange, route } from "./views.js";

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
