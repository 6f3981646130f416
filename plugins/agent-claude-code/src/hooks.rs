//! Claude Code's hooks, pointed at ao-host: a settings file of the session's own, passed with
//! `--settings`, whose hooks run the host's event command. The operator's own settings files are
//! never written; Claude Code adds `--settings` hooks to theirs.
//!
//! Which hook means what (observed on 2.1.197 and 2.1.332 against a stand-in API):
//! - `SessionStart` (after any start-up dialog), `Stop`, `StopFailure`: idle;
//! - `UserPromptSubmit`: working; its `prompt` field is what the model gets, which the host
//!   compares with the task it sent;
//! - `PreToolUse`, `PostToolUse`: working (the latter also once a permission was granted);
//! - `PermissionRequest`: waiting for the operator, at once (the `Notification` for the same
//!   prompt comes 6 s later); the question is the tool and its command, file or address;
//! - `Notification`: `idle_prompt` (a minute after a turn) is idle; `permission_prompt`,
//!   `elicitation_dialog` and `agent_needs_input` (2.1.332's auto mode asking, which fires no
//!   `PermissionRequest`) are waiting, asking its `message`; other kinds change nothing;
//! - `SessionEnd`: exited (also fires when the terminal is killed), but not for `/clear` or
//!   `/resume`, which end a conversation and go on with another.
//!
//! Answering "No" to a permission prompt fires no hook at all; the host checks the screen of a
//! session that says it is waiting for that reason.

use ao_plugin_api::PluginResult;
use ao_plugin_kit::{shell, validate::validate_program_name};
use serde_json::{json, Value};

/// A hook group running the event command with `args` added.
fn group(event_command: &[String], matcher: Option<&str>, args: &[&str]) -> Value {
    let mut argv: Vec<&str> = event_command.iter().map(String::as_str).collect();
    argv.extend_from_slice(args);
    let hook = json!({ "type": "command", "command": shell::join(&argv), "timeout": 10 });
    match matcher {
        Some(matcher) => json!({ "matcher": matcher, "hooks": [hook] }),
        None => json!({ "hooks": [hook] }),
    }
}

/// The settings document for one session: hooks running `event_command` (none when it is
/// empty), and `allowed` commands the agent may run through its Bash tool without asking —
/// each as `Bash(<command>:*)`, nothing broader.
pub fn settings(event_command: &[String], allowed: &[String]) -> PluginResult<Value> {
    let mut document = if event_command.is_empty() {
        json!({})
    } else {
        hooks(event_command)
    };
    if !allowed.is_empty() {
        let rules = allowed
            .iter()
            .map(|command| {
                // A rule is a prefix of the command line.
                validate_program_name(command)?;
                Ok(format!("Bash({command}:*)"))
            })
            .collect::<PluginResult<Vec<_>>>()?;
        document["permissions"] = json!({ "allow": rules });
    }
    Ok(document)
}

/// The hooks of one session.
fn hooks(event_command: &[String]) -> Value {
    let status = |matcher: Option<&str>, status: &str| {
        vec![group(event_command, matcher, &["--status", status])]
    };
    json!({
        "hooks": {
            "SessionStart": status(None, "idle"),
            "UserPromptSubmit": [group(
                event_command,
                None,
                &["--status", "working", "--prompt-field", "prompt"],
            )],
            "PreToolUse": status(None, "working"),
            "PostToolUse": status(None, "working"),
            "PermissionRequest": [group(
                event_command,
                None,
                &[
                    "--status", "waiting_input",
                    "--waiting-for-field", "tool_name",
                    "--waiting-for-field", "/tool_input/command",
                    "--waiting-for-field", "/tool_input/file_path",
                    "--waiting-for-field", "/tool_input/url",
                ],
            )],
            "Notification": [
                group(event_command, Some("idle_prompt"), &["--status", "idle"]),
                group(
                    event_command,
                    Some("permission_prompt|elicitation_dialog|agent_needs_input"),
                    &["--status", "waiting_input", "--waiting-for-field", "message"],
                ),
            ],
            "Stop": status(None, "idle"),
            "StopFailure": status(None, "idle"),
            // `/clear` and `/resume` end a conversation, not the agent.
            "SessionEnd": [group(
                event_command,
                None,
                &["--status", "exited", "--unless", "reason=clear", "--unless", "reason=resume"],
            )],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_commands_become_prefix_rules_and_nothing_broader() {
        let document = settings(&[], &["ao-host".to_string()]).unwrap();
        assert_eq!(document["permissions"]["allow"], json!(["Bash(ao-host:*)"]));
        assert!(document.get("hooks").is_none());
        for hostile in ["", "ao host", "*", "ao-host;rm", "a(b)"] {
            assert!(
                settings(&[], &[hostile.to_string()]).is_err(),
                "{hostile:?}"
            );
        }
        let with_hooks = settings(&["ao-host".into(), "hook".into()], &[]).unwrap();
        assert!(with_hooks.get("permissions").is_none());
        assert!(with_hooks["hooks"]["Stop"].is_array());
    }
}
