//! Gemini CLI's hooks, pointed at ao-host, and the commands an orchestrator may run unasked.
//! Both go into the session's own copy of the operator's settings ([`crate::home`]); Gemini CLI
//! adds hooks of every settings file together, so the operator's own hooks still run.
//!
//! What each hook means (observed on 0.61.0 against a stand-in API; every hook gets a JSON
//! object on stdin with `session_id`, `transcript_path`, `cwd`, `hook_event_name`, `timestamp`):
//! - `SessionStart` (`source`: startup, resume, clear): idle. Left out when the first message
//!   is given at launch: it runs at the same time as that turn's `BeforeAgent`, and the two
//!   hook processes may finish in either order;
//! - `BeforeAgent`: working; its `prompt` is what the model gets (the CLI trims it first), which
//!   the host compares with the task it sent;
//! - `AfterTool`: working (a tool ran, also once a permission was granted);
//! - `Notification` (`notification_type` ToolPermission; `message` "Tool Confirm Shell Command
//!   requires execution", `details` {type, title, command | filePath | toolName | urls}):
//!   waiting for the operator, asking the message and what the tool would act on;
//! - `AfterAgent`: idle, the turn is over;
//! - `SessionEnd` (`reason`: exit, clear, logout, …): exited, but not for `/clear` and `/logout`,
//!   after which the CLI goes on. It does not fire when the CLI is killed (SIGTERM, SIGHUP).
//!
//! Refusing a permission prompt (Esc) fires no hook at all: the host checks the screen of a
//! session that says it is waiting. A hook's command goes through `bash -c` after Gemini CLI
//! replaced `$GEMINI_PROJECT_DIR`, `$GEMINI_CWD`, `$GEMINI_PLANS_DIR`, `$GEMINI_SESSION_ID` and
//! `$CLAUDE_PROJECT_DIR` in it, even inside quotes; a hook that prints anything (stdout, or
//! stderr when stdout is empty) has it shown or acted upon, so the event command's stderr goes to
//! a log file in the session's folder.

use std::path::Path;

use ao_plugin_api::{PluginError, PluginResult};
use ao_plugin_kit::{shell, validate::validate_program_name};
use serde_json::{json, Value};

/// How long Gemini CLI waits for one hook, in milliseconds.
const HOOK_TIMEOUT_MS: u64 = 10_000;

/// What Gemini CLI replaces in a hook's command line, wherever it stands.
const EXPANDED: [&str; 2] = ["$GEMINI_", "$CLAUDE_PROJECT_DIR"];

/// The `hooks` settings for one session: each event runs `event_command` with what it means,
/// its stderr appended to `log`. `session_start`: report the session's start as idle.
pub fn hooks(event_command: &[String], log: &Path, session_start: bool) -> PluginResult<Value> {
    let command = |args: &[&str]| -> PluginResult<Value> {
        let mut argv: Vec<&str> = event_command.iter().map(String::as_str).collect();
        argv.extend_from_slice(args);
        let line = format!(
            "{} 2>>{}",
            shell::join(&argv),
            shell::join(&[log.display().to_string()])
        );
        if let Some(word) = EXPANDED.iter().find(|word| line.contains(*word)) {
            return Err(PluginError::invalid_input(format!(
                "the event command {argv:?} or the log path holds {word}, which Gemini CLI would \
                 replace in a hook's command; move the data dir or ao-host elsewhere"
            )));
        }
        Ok(json!([{ "hooks": [{
            "type": "command",
            "name": "ao-host",
            "command": line,
            "timeout": HOOK_TIMEOUT_MS,
        }] }]))
    };
    let mut hooks = json!({
        "BeforeAgent": command(&["--status", "working", "--prompt-field", "prompt"])?,
        "AfterTool": command(&["--status", "working"])?,
        "Notification": command(&[
            "--status", "waiting_input",
            "--waiting-for-field", "message",
            "--waiting-for-field", "/details/command",
            "--waiting-for-field", "/details/filePath",
            "--waiting-for-field", "/details/toolName",
            "--waiting-for-field", "/details/urls",
        ])?,
        "AfterAgent": command(&["--status", "idle"])?,
        "SessionEnd": command(&[
            "--status", "exited", "--unless", "reason=clear", "--unless", "reason=logout",
        ])?,
    });
    if session_start {
        hooks["SessionStart"] = command(&["--status", "idle"])?;
    }
    Ok(hooks)
}

/// A policy file (Gemini CLI's policy engine, TOML) letting the agent's shell tool run each of
/// `allowed` without asking: a rule per program, matched on the start of every command of a
/// command line, a word boundary after it (`ao-host; rm x` still asks for `rm`). Only plain
/// program names, so nothing in them needs quoting. (The older `tools.allowed` setting made
/// Gemini CLI 0.61 deny every other command that writes, instead of asking.)
pub fn policy(allowed: &[String]) -> PluginResult<Option<String>> {
    let mut rules = String::new();
    for command in allowed {
        validate_program_name(command)?;
        rules.push_str(&format!(
            "[[rule]]\ntoolName = \"run_shell_command\"\ncommandPrefix = \"{command}\"\n\
             decision = \"allow\"\npriority = 100\n\n"
        ));
    }
    Ok((!rules.is_empty()).then(|| format!("# Written by ao-host for this session.\n\n{rules}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_command() -> Vec<String> {
        [
            "/opt/ao host/ao-host",
            "--data-dir",
            "/d",
            "hook",
            "--session",
            "app-1",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn every_hook_runs_the_event_command_quoted_with_its_stderr_logged() {
        let hooks = hooks(&event_command(), Path::new("/d/it's.log"), true).unwrap();
        let line = hooks["BeforeAgent"][0]["hooks"][0]["command"]
            .as_str()
            .unwrap();
        assert_eq!(
            line,
            "'/opt/ao host/ao-host' --data-dir /d hook --session app-1 --status working \
             --prompt-field prompt 2>>'/d/it'\\''s.log'"
        );
        for event in [
            "SessionStart",
            "BeforeAgent",
            "AfterTool",
            "Notification",
            "AfterAgent",
            "SessionEnd",
        ] {
            let hook = &hooks[event][0]["hooks"][0];
            assert_eq!(hook["type"], "command", "{event}");
            assert_eq!(hook["name"], "ao-host", "{event}");
        }
        assert!(hooks["Notification"][0]["hooks"][0]["command"]
            .as_str()
            .unwrap()
            .contains(" /details/command "));
    }

    #[test]
    fn session_start_is_left_out_when_the_first_turn_starts_at_once() {
        let hooks = hooks(&event_command(), Path::new("/d/log"), false).unwrap();
        assert!(hooks.get("SessionStart").is_none());
        assert!(hooks.get("AfterAgent").is_some());
    }

    #[test]
    fn what_gemini_would_replace_in_a_command_is_refused() {
        let mut command = event_command();
        command[2] = "/data/$GEMINI_CWD".into();
        assert!(hooks(&command, Path::new("/d/log"), true).is_err());
        assert!(hooks(
            &event_command(),
            Path::new("/$CLAUDE_PROJECT_DIR/log"),
            true
        )
        .is_err());
    }

    #[test]
    fn allowed_commands_become_policy_rules_for_program_names_only() {
        let policy = policy(&["ao-host".to_string()]).unwrap().unwrap();
        assert!(policy.contains(
            "[[rule]]\ntoolName = \"run_shell_command\"\ncommandPrefix = \"ao-host\"\ndecision = \"allow\"\n"
        ));
        assert_eq!(self::policy(&[]).unwrap(), None);
        for hostile in ["", "ao host", "*", "ao-host;rm", "a(b)", "a\"b"] {
            assert!(self::policy(&[hostile.to_string()]).is_err(), "{hostile:?}");
        }
    }
}
