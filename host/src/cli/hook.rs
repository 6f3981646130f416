//! `ao-host hook`: the command an agent's hooks run to report an event (see
//! `ao_plugin_api::LaunchRequest::event_command`). It prints nothing and always exits 0: its
//! stdout may become part of the agent's prompt, and a failing hook may stop what the agent was
//! doing. Problems go to stderr.

use std::{
    io::{IsTerminal, Read},
    path::Path,
    process::ExitCode,
};

use anyhow::{bail, Context, Result};
use ao_core::{
    config::Config,
    lifecycle::events::record_event,
    session::{AgentEvent, AgentStateDir, ReportedStatus, MAX_TASK_BYTES},
};
use ao_plugin_kit::validate::validate_id;
use clap::Args;

/// What a hook passes.
#[derive(Debug, Args)]
pub struct HookArgs {
    #[arg(long)]
    project: String,
    #[arg(long)]
    session: String,
    /// What the event means: working, idle, waiting_input or exited.
    #[arg(long)]
    status: String,
    /// A field of the event's JSON (on stdin) telling what the agent asks the operator: a
    /// top-level name, or a JSON pointer (`/tool_input/command`). Repeatable: the fields
    /// present are joined with ": ".
    #[arg(long, value_name = "FIELD")]
    waiting_for_field: Vec<String>,
    /// The field of the event's JSON holding a prompt the agent just took.
    #[arg(long, value_name = "FIELD")]
    prompt_field: Option<String>,
    /// The field of the event's JSON holding the agent's own conversation id, for an agent that
    /// chooses it itself: `session restore` resumes that conversation.
    #[arg(long, value_name = "FIELD")]
    conversation_field: Option<String>,
    /// `FIELD=VALUE`: the event means nothing when that field holds that value (Claude Code's
    /// `SessionEnd` for `/clear` ends a conversation, not the agent). Repeatable.
    #[arg(long, value_name = "FIELD=VALUE")]
    unless: Vec<String>,
}

/// The largest event read from stdin: a prompt of the largest task, JSON-escaped, and the rest.
const MAX_EVENT_BYTES: u64 = 6 * MAX_TASK_BYTES as u64 + 64 * 1024;
/// What is read and dropped past that, so a writer of a big event finishes; an endless one
/// (`/dev/zero`) does not keep the hook, and so the agent, waiting.
const MAX_DRAINED_BYTES: u64 = 64 * 1024 * 1024;

/// `config` and `data_dir` are the global `--config` and `--data-dir`. An error goes to stderr,
/// which the agent may not show anyone, and is kept beside the session's state, where a spawn
/// waiting for this event reads it.
pub fn run(config: Option<&Path>, data_dir: Option<&Path>, args: HookArgs) -> ExitCode {
    if let Err(error) = record(config, data_dir, &args) {
        crate::errln!("ao-host hook: {error:#}");
        let valid = validate_id("project", &args.project).is_ok()
            && validate_id("session id", &args.session).is_ok();
        if let (Some(data_dir), true) = (data_dir, valid) {
            let kept = AgentStateDir::new(data_dir).record_failure(
                &args.project,
                &args.session,
                &format!("{error:#}"),
            );
            if let Err(e) = kept {
                crate::errln!("ao-host hook: keeping that error for the spawn: {e}");
            }
        }
    }
    ExitCode::SUCCESS
}

fn record(config: Option<&Path>, data_dir: Option<&Path>, args: &HookArgs) -> Result<()> {
    // Read first, whatever comes next: an agent writing its event must never meet a closed pipe.
    let payload = read_event();
    let Some(data_dir) = data_dir else {
        bail!("--data-dir is required: the agent's hook names the data dir of its session");
    };
    let Some(status) = ReportedStatus::parse(&args.status) else {
        bail!(
            "--status {:?}: expected working, idle, waiting_input or exited",
            args.status
        );
    };
    validate_id("project", &args.project)?;
    validate_id("session id", &args.session)?;
    // A garbled event still says what it means (`--status`); only its details are lost.
    let payload = payload.unwrap_or_else(|e| {
        crate::errln!("ao-host hook: {e:#}; recording the status without the event's details");
        None
    });
    let field = |name: &str| -> Option<String> {
        let payload = payload.as_ref()?;
        let value = if name.starts_with('/') {
            payload.pointer(name)?
        } else {
            payload.get(name)?
        };
        match value {
            serde_json::Value::String(text) => Some(text.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    };
    let ignored = args.unless.iter().any(|condition| {
        condition
            .split_once('=')
            .is_some_and(|(name, value)| field(name).as_deref() == Some(value))
    });
    if ignored {
        return Ok(());
    }
    let question: Vec<String> = args
        .waiting_for_field
        .iter()
        .filter_map(|name| field(name))
        .filter(|text| !text.trim().is_empty())
        .collect();
    let event = AgentEvent {
        status,
        waiting_for: (!question.is_empty()).then(|| question.join(": ")),
        prompt: args.prompt_field.as_deref().and_then(field),
        conversation: args.conversation_field.as_deref().and_then(field),
    };
    // Only a config named on the command line: the hook runs in the session's worktree, where
    // `./ao-rs.yaml` may be any branch's copy.
    let notify = match config {
        Some(path) => match Config::load(Some(path)) {
            Ok(config) => config.notify,
            Err(e) => {
                crate::errln!("ao-host hook: no notification: {e}");
                None
            }
        },
        None => None,
    };
    record_event(
        data_dir,
        &args.project,
        &args.session,
        event,
        None,
        notify.as_ref(),
    )
    .map(drop)
    .context("recording the agent's event")
}

/// Reads and drops the event on stdin, for a hook run that fails before it reads it: the agent
/// writing it must never meet a closed pipe.
pub fn discard_event() {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let _ = std::io::copy(
            &mut stdin.lock().take(MAX_DRAINED_BYTES),
            &mut std::io::sink(),
        );
    }
}

/// The event's JSON from stdin, when one is piped in. Everything is read (up to a bound), so an
/// agent writing a large event never meets a closed pipe.
fn read_event() -> Result<Option<serde_json::Value>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    let mut limited = stdin.lock().take(MAX_EVENT_BYTES + 1);
    limited
        .read_to_end(&mut bytes)
        .context("reading the event from stdin")?;
    if bytes.len() as u64 > MAX_EVENT_BYTES {
        let rest = limited.into_inner().take(MAX_DRAINED_BYTES);
        std::io::copy(&mut { rest }, &mut std::io::sink()).ok();
        bail!("the event on stdin is larger than {MAX_EVENT_BYTES} bytes");
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .or_else(|_| serde_json::from_slice(&without_lone_surrogates(&bytes)))
        .map(Some)
        .context("the event on stdin is not JSON")
}

/// `bytes` with every `\uXXXX` escape of a lone UTF-16 surrogate replaced by `\ufffd`: a
/// JavaScript agent's `JSON.stringify` writes them (a cut emoji), serde_json refuses them, and
/// one such character must not cost the whole event.
fn without_lone_surrogates(bytes: &[u8]) -> Vec<u8> {
    let escape_at = |i: usize| -> Option<u16> {
        let hex = bytes.get(i..i + 6)?;
        if &hex[..2] != b"\\u" {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match escape_at(i) {
            Some(0xD800..=0xDBFF)
                if escape_at(i + 6).is_some_and(|low| (0xDC00..=0xDFFF).contains(&low)) =>
            {
                out.extend_from_slice(&bytes[i..i + 12]);
                i += 12;
            }
            Some(0xD800..=0xDFFF) => {
                out.extend_from_slice(b"\\ufffd");
                i += 6;
            }
            // Any other escape, `\\` included, is copied whole so the next byte is not
            // mistaken for the start of one.
            _ => {
                let len = if bytes.get(i + 1) == Some(&b'u') {
                    6
                } else {
                    2
                };
                let end = (i + len).min(bytes.len());
                out.extend_from_slice(&bytes[i..end]);
                i = end;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_are_replaced_and_pairs_and_escaped_backslashes_kept() {
        let fixed = |text: &str| {
            let bytes = without_lone_surrogates(text.as_bytes());
            serde_json::from_slice::<String>(&bytes).unwrap()
        };
        assert_eq!(fixed(r#""a\ud800b""#), "a\u{fffd}b");
        assert_eq!(fixed(r#""\udc00""#), "\u{fffd}");
        assert_eq!(fixed(r#""\ud83c\udf89""#), "🎉");
        assert_eq!(fixed(r#""\\ud800""#), "\\ud800");
        assert_eq!(fixed(r#""\ud800\ud800\udc00""#), "\u{fffd}\u{10000}");
    }
}
