//! The Claude Code stand-in: its screen, the keys it takes and the hooks it fires (see the
//! module above for the contract).

use std::{
    ops::ControlFlow,
    time::{Duration, Instant},
};

use serde_json::json;

use super::{
    hooks::Hooks,
    record::Record,
    terminal::{self, Input, Reader},
    Switches,
};

/// How long a turn keeps the agent busy before its Stop hook.
const TURN: Duration = Duration::from_millis(300);
const PASTE_START: &[u8] = b"\x1b[200~";
const PASTE_END: &[u8] = b"\x1b[201~";
/// Down: from "1. Yes" onto "2. No" in a permission prompt.
const DOWN: &[u8] = b"\x1b[B";
/// The command every permission prompt asks about.
const COMMAND: &str = "touch approved";
/// How much of a message's first line the screen shows.
const SHOWN_CHARS: usize = 60;

/// The agent's state between keys.
pub(super) struct Agent {
    switches: Switches,
    hooks: Hooks,
    record: Record,
    /// `--resume` was given.
    resumed: bool,
    /// The argument after `--`: the first message.
    inline_prompt: Option<String>,
    /// The last message's first line, as the screen shows it.
    reply: String,
    /// The first hook spoils the agent-state file (`FAKE_AGENT_CORRUPT_STATE`).
    corrupt_state: bool,
    /// Busy with a turn until then; its Stop hook fires then.
    busy_until: Option<Instant>,
    /// A permission prompt is up.
    asking: bool,
    /// "2. No" is selected in the permission prompt.
    refusing: bool,
    /// The trust dialog is up.
    dialog: bool,
    /// The next Enter after a paste is dropped (`FAKE_AGENT_DROP_FIRST_ENTER`).
    drop_enter: bool,
}

impl Agent {
    pub(super) fn new(
        switches: Switches,
        hooks: Hooks,
        record: Record,
        resumed: bool,
        inline_prompt: Option<String>,
    ) -> Self {
        Self {
            corrupt_state: switches.corrupt_state,
            dialog: switches.trust_dialog,
            drop_enter: switches.drop_first_enter,
            switches,
            hooks,
            record,
            resumed,
            inline_prompt,
            reply: String::new(),
            busy_until: None,
            asking: false,
            refusing: false,
        }
    }

    /// Shows the trust dialog, the never-ready screen or the input box, then takes keys until
    /// the input ends, C-c or a hangup (SessionEnd has run then).
    pub(super) fn run(mut self, mut reader: Reader) {
        if self.dialog {
            terminal::draw(
                "\n Do you trust the files in this folder? Yes, I trust this folder\n ❯ 1. Yes\n   2. No\n",
            );
        } else if self.switches.never_ready {
            terminal::draw("\n starting forever...\n");
        } else {
            self.start();
        }
        let mut keys = Keys::default();
        loop {
            let wait = self
                .busy_until
                .map(|until| until.saturating_duration_since(Instant::now()));
            match reader.next(wait) {
                Input::Quiet => {
                    self.busy_until = None;
                    self.draw_box(&keys.shown, false);
                    self.hook("Stop", None, json!({}));
                }
                Input::Bytes(bytes) => {
                    // Recorded whatever the agent makes of them: a lost record is a lost key.
                    let _ = self.record.received(&bytes);
                    keys.pending.extend_from_slice(&bytes);
                    if self.take_keys(&mut keys).is_break() {
                        return;
                    }
                }
                Input::Hangup => return self.end_session(),
                Input::Ended => return,
            }
        }
    }

    /// After any start-up dialog: the session starts, with its prompt argument if it has one.
    fn start(&mut self) {
        let source = if self.resumed { "resume" } else { "startup" };
        self.hook("SessionStart", None, json!({ "source": source }));
        self.draw_box("", false);
        if let Some(prompt) = self.inline_prompt.clone() {
            let reported = self
                .switches
                .alter_prompt
                .then(|| prompt.replace('\t', "    "));
            self.submitted(&prompt, reported.as_deref());
        }
    }

    /// Handles the keys in `keys.pending`, leaving an incomplete paste marker there; breaks on
    /// C-c, once the session ended.
    fn take_keys(&mut self, keys: &mut Keys) -> ControlFlow<()> {
        let mut at = 0;
        let flow = loop {
            let rest = &keys.pending[at..];
            if rest.is_empty() {
                break ControlFlow::Continue(());
            }
            if keys.in_paste {
                let Some(end) = find(rest, PASTE_END) else {
                    // Keep a possible partial end marker for the next read.
                    let take = rest.len().saturating_sub(PASTE_END.len() - 1);
                    keys.buffer.extend_from_slice(&rest[..take]);
                    at += take;
                    break ControlFlow::Continue(());
                };
                keys.buffer.extend_from_slice(&rest[..end]);
                at += end + PASTE_END.len();
                keys.in_paste = false;
                keys.pastes += 1;
                let lines = keys.buffer.iter().filter(|&&b| b == b'\n').count();
                keys.shown = format!("[Pasted text #{} +{lines} lines]", keys.pastes);
                self.draw_box(&keys.shown, false);
                continue;
            }
            if rest.starts_with(PASTE_START) {
                keys.in_paste = true;
                at += PASTE_START.len();
                continue;
            }
            if PASTE_START.starts_with(rest) {
                break ControlFlow::Continue(()); // wait for the rest of the marker
            }
            if self.asking && rest.starts_with(DOWN) {
                self.refusing = true;
                at += DOWN.len();
                continue;
            }
            at += 1;
            match rest[0] {
                b'\r' => self.enter(keys),
                // C-u clears the input line.
                0x15 => {
                    keys.buffer.clear();
                    keys.shown.clear();
                }
                // C-c
                0x03 => {
                    self.end_session();
                    break ControlFlow::Break(());
                }
                0x1b => {}
                byte => keys.buffer.push(byte),
            }
        };
        keys.pending.drain(..at);
        flow
    }

    fn enter(&mut self, keys: &mut Keys) {
        if self.dialog {
            self.dialog = false;
            self.start();
        } else if self.asking {
            self.asking = false;
            if self.refusing {
                self.refusing = false;
                self.draw_box("", false);
            } else {
                self.hook("PostToolUse", Some("Bash"), bash_tool());
                self.draw_box("", true);
                self.busy_until = Some(Instant::now() + TURN);
            }
        } else if self.drop_enter && keys.pastes > 0 {
            self.drop_enter = false;
        } else if !keys.buffer.is_empty() {
            let message = String::from_utf8_lossy(&keys.buffer).into_owned();
            keys.buffer.clear();
            keys.shown.clear();
            self.submitted(&message, None);
        }
    }

    /// A message the agent took: recorded, reported to UserPromptSubmit (as `reported` when
    /// given), and worked on, or a permission prompt for it.
    fn submitted(&mut self, message: &str, reported: Option<&str>) {
        // A test reads the record; the agent goes on without it, as Claude Code would.
        let _ = self.record.message(message);
        self.reply = first_line(message);
        let prompt = reported.unwrap_or(message);
        self.hook("UserPromptSubmit", None, json!({ "prompt": prompt }));
        if self.switches.ask_permission {
            self.hook("PreToolUse", Some("Bash"), bash_tool());
            terminal::draw(&format!(
                "\x1b[2J\x1b[H Bash command\n\n   {COMMAND}\n\n Do you want to proceed?\n ❯ 1. Yes\n   2. No, and tell Claude what to do differently (esc)\n"
            ));
            self.hook("PermissionRequest", Some("Bash"), bash_tool());
            self.asking = true;
        } else {
            self.draw_box("", true);
            self.busy_until = Some(Instant::now() + TURN);
        }
    }

    /// Redraws the whole screen, as a TUI does: capture-pane then shows only the current state.
    /// Above the box: the last message's first line as submitted ("❯ <line>", as Claude Code
    /// shows it), and its answer, "⏺ got: <that line>" (the ⏺ green).
    fn draw_box(&self, content: &str, busy: bool) {
        let reply = &self.reply;
        let echo = if !reply.is_empty() && !self.switches.no_echo {
            format!("❯ {reply}\n")
        } else {
            String::new()
        };
        let spinner = if busy { "✻ Working…\n" } else { "" };
        let answer = if !reply.is_empty() && !busy {
            format!("\x1b[32m⏺\x1b[0m got: {reply}\n")
        } else {
            String::new()
        };
        let rule = "─".repeat(60);
        terminal::draw(&format!(
            "\x1b[2J\x1b[H{echo}{answer}{spinner}{rule}\n❯\u{a0}{content}\n{rule}\n  ? for shortcuts\n"
        ));
    }

    /// Runs `event`'s hooks, unless hooks are off; the first one spoils the agent-state file
    /// first when told to.
    fn hook(&mut self, event: &str, subject: Option<&str>, fields: serde_json::Value) {
        if self.switches.no_hooks {
            return;
        }
        if std::mem::take(&mut self.corrupt_state) {
            corrupt_agent_state();
        }
        self.hooks.run(event, subject, fields);
    }

    fn end_session(&mut self) {
        self.hook("SessionEnd", None, json!({ "reason": "other" }));
    }
}

/// What is typed but not submitted yet.
#[derive(Default)]
struct Keys {
    /// Read, not handled yet (a paste marker cut between two reads).
    pending: Vec<u8>,
    /// The message being typed or pasted.
    buffer: Vec<u8>,
    in_paste: bool,
    /// Pastes so far.
    pastes: usize,
    /// What the input box shows: a paste waits there, through a turn, until it is submitted.
    shown: String,
}

/// The event fields of the Bash tool running [`COMMAND`].
fn bash_tool() -> serde_json::Value {
    json!({ "tool_name": "Bash", "tool_input": { "command": COMMAND } })
}

/// Overwrites this session's agent-state file (under `$AO_DATA_DIR`) with garbage.
fn corrupt_agent_state() {
    let var = |name: &str| std::env::var_os(name).unwrap_or_default();
    let state = std::path::Path::new(&var("AO_DATA_DIR"))
        .join("agent-state")
        .join(var("AO_PROJECT_ID"))
        .join(var("AO_SESSION"))
        .join("state.json");
    let _ = std::fs::write(state, "not json");
}

/// The first line of `message` without surrounding whitespace, at most [`SHOWN_CHARS`]
/// characters (lines end where Python's `splitlines` ends them, as the first fake did).
fn first_line(message: &str) -> String {
    message
        .trim()
        .split([
            '\n', '\r', '\x0b', '\x0c', '\x1c', '\x1d', '\x1e', '\u{85}', '\u{2028}', '\u{2029}',
        ])
        .next()
        .unwrap_or_default()
        .chars()
        .take(SHOWN_CHARS)
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_screen_shows_the_first_line_trimmed_and_cut() {
        assert_eq!(first_line("  \n hello\r\nworld"), "hello");
        assert_eq!(first_line(&"x".repeat(80)), "x".repeat(60));
        assert_eq!(first_line(""), "");
    }
}
