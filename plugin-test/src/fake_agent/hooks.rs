//! Claude Code's hooks, as the fake agent runs them: the groups of a `--settings` document's
//! `hooks` under each event name, each hook's `command` run with `sh -c` and the event as JSON
//! on stdin (its stdout discarded), in a group whose `matcher` matches.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use serde_json::{Map, Value};

/// The hooks of one settings document.
pub(crate) struct Hooks {
    /// Event name → its groups.
    events: Map<String, Value>,
    /// The `session_id` every event carries.
    session_id: String,
}

impl Hooks {
    /// The hooks of the settings document at `file` (none without one).
    pub(crate) fn load(file: Option<&str>, session_id: String) -> Result<Self, String> {
        let events = match file {
            None => Map::new(),
            Some(file) => {
                let text =
                    std::fs::read(file).map_err(|e| format!("reading --settings {file}: {e}"))?;
                let document: Value = serde_json::from_slice(&text)
                    .map_err(|e| format!("--settings {file} is not JSON: {e}"))?;
                match document.get("hooks") {
                    Some(Value::Object(events)) => events.clone(),
                    _ => Map::new(),
                }
            }
        };
        Ok(Self { events, session_id })
    }

    /// Runs the hooks of `event` whose matcher matches `subject` (a tool name, a notification
    /// type), one after another, each to its end. `fields` join the event's common ones.
    pub(crate) fn run(&self, event: &str, subject: Option<&str>, fields: Value) {
        let Some(groups) = self.events.get(event).and_then(Value::as_array) else {
            return;
        };
        let mut payload = Map::new();
        payload.insert("session_id".into(), self.session_id.clone().into());
        let cwd = std::env::current_dir().unwrap_or_default();
        payload.insert("cwd".into(), cwd.to_string_lossy().into_owned().into());
        payload.insert("hook_event_name".into(), event.into());
        if let Value::Object(fields) = fields {
            payload.extend(fields);
        }
        let payload = Value::Object(payload).to_string();
        for group in groups {
            let matcher = group.get("matcher").and_then(Value::as_str);
            if !matches(matcher, subject.unwrap_or("")) {
                continue;
            }
            let commands = group.get("hooks").and_then(Value::as_array);
            for command in commands.into_iter().flatten() {
                if let Some(command) = command.get("command").and_then(Value::as_str) {
                    run_hook(command, &payload);
                }
            }
        }
    }
}

/// Whether a group's matcher takes `subject`: no matcher, `""` and `*` take everything; else
/// one of its `|`-separated names must be `subject` whole (the only patterns ao-host writes).
fn matches(matcher: Option<&str>, subject: &str) -> bool {
    match matcher {
        None | Some("" | "*") => true,
        Some(names) => names.split('|').any(|name| name == subject),
    }
}

/// `sh -c COMMAND` with `payload` on stdin; its stderr is the agent's (the terminal).
fn run_hook(command: &str, payload: &str) {
    let Ok(mut child) = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
    else {
        return;
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its input is not an error.
        let _ = stdin.write_all(payload.as_bytes());
    }
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matcher_takes_whole_names_only() {
        assert!(matches(None, "Bash"));
        assert!(matches(Some("*"), "Bash"));
        assert!(matches(Some(""), ""));
        assert!(matches(
            Some("idle_prompt|permission_prompt"),
            "permission_prompt"
        ));
        assert!(!matches(Some("Bash"), "BashOutput"));
        assert!(!matches(Some("Bash"), ""));
    }
}
