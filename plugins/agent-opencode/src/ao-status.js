// ao-host's status plugin for OpenCode, written by the `opencode` agent plugin into the
// session's own folder and loaded through the session's own config (OPENCODE_CONFIG). It tells
// ao-host what the agent is doing by running ao-host's event command, by argv (never through a
// shell), with one JSON object on stdin:
//   { "event": <what happened>, "session_id": <OpenCode's session id, for `session restore`>,
//     "prompt": <a message the agent just took>, "question": <what it asks the operator> }
// Reports run one at a time, in the order of the events, so ao-host never records an older
// status over a newer one.

import { spawn } from "node:child_process";

/** ao-host's event command (argv), filled in by the agent plugin. */
const EVENT_COMMAND = __EVENT_COMMAND__;
/** Whether ao-host set `npm_config_offline` for OpenCode's own start-up install only. */
const NPM_OFFLINE_SET_BY_AO = __NPM_OFFLINE_SET_BY_AO__;
/** A report that takes longer than this is stopped, so later ones are not held up. */
const REPORT_TIMEOUT_MS = 10000;

export const AoHostStatus = async () => {
  if (NPM_OFFLINE_SET_BY_AO) {
    // OpenCode's install into its config folders has read it by now; the agent's own shell
    // commands (an `npm install` in the project) must not inherit it.
    delete process.env.npm_config_offline;
  }
  let queue = Promise.resolve();
  let last = "";
  /** Sessions OpenCode started for subagents (the task tool): not the conversation to resume. */
  const children = new Set();

  const run = (args, details) =>
    new Promise((resolve) => {
      let child;
      try {
        child = spawn(EVENT_COMMAND[0], [...EVENT_COMMAND.slice(1), ...args], {
          stdio: ["pipe", "ignore", "ignore"],
        });
      } catch {
        resolve();
        return;
      }
      const timer = setTimeout(() => child.kill("SIGKILL"), REPORT_TIMEOUT_MS);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      child.on("error", done);
      child.on("close", done);
      child.stdin.on("error", () => {});
      child.stdin.end(JSON.stringify(details));
    });

  /** Queues one report; the same status twice in a row is reported once (a prompt always). */
  const report = (status, details) => {
    const key = JSON.stringify([status, details.session_id, details.question]);
    if (details.prompt === undefined && key === last) return;
    last = key;
    const args = [
      "--status", status,
      "--conversation-field", "session_id",
      "--prompt-field", "prompt",
      "--waiting-for-field", "question",
    ];
    queue = queue.then(() => run(args, details)).catch(() => {});
  };

  const own = (sessionID) =>
    sessionID && !children.has(sessionID) ? { session_id: sessionID } : {};

  if (EVENT_COMMAND.length === 0) return {};
  report("idle", { event: "plugin.loaded" });
  return {
    event: async ({ event }) => {
      const p = event.properties ?? {};
      switch (event.type) {
        case "session.created":
        case "session.updated":
          if (p.info?.parentID) children.add(p.info.id);
          break;
        case "session.status": {
          if (children.has(p.sessionID)) break;
          const type = p.status?.type;
          if (type === "idle") report("idle", { event: event.type, ...own(p.sessionID) });
          else if (type === "busy" || type === "retry")
            report("working", { event: event.type, ...own(p.sessionID) });
          break;
        }
        case "permission.asked": {
          const command = p.metadata?.command;
          const what = typeof command === "string" ? command : (p.patterns ?? []).join(", ");
          report("waiting_input", {
            event: event.type,
            ...own(p.sessionID),
            question: what ? `${p.permission}: ${what}` : String(p.permission ?? "permission"),
          });
          break;
        }
        case "question.asked": {
          const questions = (p.questions ?? []).map((q) => q.question).filter(Boolean);
          report("waiting_input", {
            event: event.type,
            ...own(p.sessionID),
            question: questions.join(" / ") || "a question",
          });
          break;
        }
        case "permission.replied":
        case "question.replied":
        case "question.rejected":
          report("working", { event: event.type, ...own(p.sessionID) });
          break;
      }
    },
    "chat.message": async (input, output) => {
      if (children.has(input.sessionID)) return;
      const prompt = (output.parts ?? [])
        .filter((part) => part.type === "text" && !part.synthetic)
        .map((part) => part.text)
        .join("");
      report("working", { event: "chat.message", ...own(input.sessionID), prompt });
    },
  };
};
