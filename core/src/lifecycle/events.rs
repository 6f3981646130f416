//! Agent events: the protocol of the command an agent's hooks run (`ao-host hook`, whose argv
//! the lifecycle gives the agent plugin as `LaunchRequest::event_command`, the plugin adding
//! `--status` and the fields to read), what an event does to the session's state, and the
//! notifications a status change sets off.
//!
//! A hook passes what the event means (`--status`) and the event's JSON on stdin, from which
//! named fields are read: the question the agent asks, a prompt it took, its conversation id.
//! A garbled payload still says what it means; only its details are lost.
//!
//! An event is recorded without loading plugins or, unless asked, any config: a hook runs on
//! every tool call, and must be quick and unable to fail the agent. Notifications run the
//! operator's `notify.command` once per change (each process claims a change in the state file
//! before notifying), detached, so neither an agent nor a command ever waits for them.
//!
//! Detached means a session of its own (`setsid`): a notify command started by a hook shares
//! the agent's terminal otherwise, and the SIGHUP sent when the agent's pane closes kills it
//! mid-run — the `exited` notification above all.

use std::{
    io::Read,
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
};

use ao_plugin_api::PluginError;
use ao_plugin_kit::validate::validate_id;
use serde_json::Value;

use crate::{
    config::NotifyConfig,
    session::{
        agent_state::{AgentEvent, AgentStateDir, Change, ReportedStatus},
        StoreError, MAX_TASK_BYTES,
    },
};

/// The largest event read from stdin: a prompt of the largest task, JSON-escaped, and the rest.
const MAX_EVENT_BYTES: u64 = 6 * MAX_TASK_BYTES as u64 + 64 * 1024;
/// What is read and dropped past that, so a writer of a big event finishes; an endless one
/// (`/dev/zero`) does not keep the hook, and so the agent, waiting.
const MAX_DRAINED_BYTES: u64 = 64 * 1024 * 1024;

/// What one hook run reports, as its arguments give it.
#[derive(Debug, Clone, Default)]
pub struct HookReport {
    pub project: String,
    pub session: String,
    /// What the event means: working, idle, waiting_input or exited.
    pub status: String,
    /// Fields of the payload telling what the agent asks the operator: top-level names or JSON
    /// pointers (`/tool_input/command`); those present are joined with ": ".
    pub waiting_for_fields: Vec<String>,
    /// The field holding a prompt the agent just took.
    pub prompt_field: Option<String>,
    /// The field holding the agent's own conversation id, for an agent that chooses it itself.
    pub conversation_field: Option<String>,
    /// `FIELD=VALUE`: the event means nothing when that field holds that value (Claude Code's
    /// `SessionEnd` for `/clear` ends a conversation, not the agent).
    pub unless: Vec<String>,
}

/// Why a hook's report could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("--status {0:?}: expected working, idle, waiting_input or exited")]
    Status(String),
    #[error(transparent)]
    Id(#[from] PluginError),
    #[error("reading the event from stdin")]
    Read(#[source] std::io::Error),
    #[error("the event on stdin is larger than {MAX_EVENT_BYTES} bytes")]
    TooLarge,
    #[error("the event on stdin is not JSON")]
    NotJson(#[source] serde_json::Error),
}

impl HookReport {
    /// The status it reports, its ids checked: a report that fails here is not recorded.
    pub fn checked_status(&self) -> Result<ReportedStatus, EventError> {
        let status = ReportedStatus::parse(&self.status)
            .ok_or_else(|| EventError::Status(self.status.clone()))?;
        self.check_ids()?;
        Ok(status)
    }

    fn check_ids(&self) -> Result<(), PluginError> {
        validate_id("project", &self.project)?;
        validate_id("session id", &self.session)
    }

    /// The event it reports with `payload`, or `None` when an `unless` condition holds.
    pub fn event(&self, status: ReportedStatus, payload: Option<&Value>) -> Option<AgentEvent> {
        let field = |name: &str| -> Option<String> {
            let payload = payload?;
            let value = if name.starts_with('/') {
                payload.pointer(name)?
            } else {
                payload.get(name)?
            };
            match value {
                Value::String(text) => Some(text.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        };
        let ignored = self.unless.iter().any(|condition| {
            condition
                .split_once('=')
                .is_some_and(|(name, value)| field(name).as_deref() == Some(value))
        });
        if ignored {
            return None;
        }
        let question: Vec<String> = self
            .waiting_for_fields
            .iter()
            .filter_map(|name| field(name))
            .filter(|text| !text.trim().is_empty())
            .collect();
        Some(AgentEvent {
            status,
            waiting_for: (!question.is_empty()).then(|| question.join(": ")),
            prompt: self.prompt_field.as_deref().and_then(field),
            conversation: self.conversation_field.as_deref().and_then(field),
        })
    }

    /// Keeps why this report failed beside the session's state, where a spawn waiting for its
    /// event reads it; nothing is kept for a report whose ids are invalid.
    pub fn keep_failure(&self, data_dir: &Path, error: &str) -> Result<(), StoreError> {
        if self.check_ids().is_err() {
            return Ok(());
        }
        AgentStateDir::new(data_dir).record_failure(&self.project, &self.session, error)
    }
}

/// The event's JSON payload from `input`; `None` when it is blank. Everything is read (up to a
/// bound), so an agent writing a large event never meets a closed pipe.
pub fn read_payload(input: impl Read) -> Result<Option<Value>, EventError> {
    let mut bytes = Vec::new();
    let mut limited = input.take(MAX_EVENT_BYTES + 1);
    limited.read_to_end(&mut bytes).map_err(EventError::Read)?;
    if bytes.len() as u64 > MAX_EVENT_BYTES {
        drain(limited.into_inner());
        return Err(EventError::TooLarge);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .or_else(|_| serde_json::from_slice(&without_lone_surrogates(&bytes)))
        .map(Some)
        .map_err(EventError::NotJson)
}

/// Reads and drops a payload (up to a bound), for a hook run that fails before reading it: the
/// agent writing it must never meet a closed pipe.
pub fn drain(input: impl Read) {
    let _ = std::io::copy(&mut input.take(MAX_DRAINED_BYTES), &mut std::io::sink());
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

/// Records `event` for session `project_id`/`id` under `data_dir`, then notifies if it changed
/// the status and `notify` asks for that status, and returns the change. `seen`: see
/// [`AgentStateDir::record`].
pub fn record_event(
    data_dir: &Path,
    project_id: &str,
    id: &str,
    event: AgentEvent,
    seen: Option<u64>,
    notify: Option<&NotifyConfig>,
) -> Result<Option<Change>, StoreError> {
    let states = AgentStateDir::new(data_dir);
    let change = states.record(project_id, id, event, seen)?;
    if let (Some(change), Some(notify)) = (&change, notify) {
        notify_change(&states, notify, project_id, id, change)?;
    }
    Ok(change)
}

/// Runs `notify.command` for `change` unless it is not wanted or another process already did.
pub(crate) fn notify_change(
    states: &AgentStateDir,
    notify: &NotifyConfig,
    project_id: &str,
    id: &str,
    change: &Change,
) -> Result<(), StoreError> {
    // The first status after a launch is news to nobody: the operator just started it.
    if change.first
        || !notify.on.contains(&change.status)
        || !states.claim_notification(project_id, id, change.number)?
    {
        return Ok(());
    }
    let message = match (change.status, &change.waiting_for) {
        (ReportedStatus::WaitingInput, Some(question)) => {
            format!("{id} is waiting for you: {question}")
        }
        (ReportedStatus::WaitingInput, None) => format!("{id} is waiting for you"),
        (ReportedStatus::Idle, _) => format!("{id} finished its turn"),
        (ReportedStatus::Working, _) => format!("{id} is working"),
        (ReportedStatus::Exited, _) => format!("{id} exited"),
    };
    run_notify(notify, project_id, id, change.status.as_str(), &message);
    Ok(())
}

/// Runs `notify.command` with `AO_SESSION`, `AO_PROJECT_ID`, `AO_EVENT` and `AO_MESSAGE` set,
/// detached: nobody waits for it, and a command that does not start is only logged.
pub(crate) fn run_notify(
    notify: &NotifyConfig,
    project_id: &str,
    id: &str,
    event: &str,
    message: &str,
) {
    // A NUL cannot cross into a process environment; it must not cost the notification.
    let message = message.replace('\0', "\\0");
    let (program, args) = notify
        .command
        .split_first()
        .expect("notify.command is checked non-empty when the config is read");
    let mut command = Command::new(program);
    // SAFETY: the closure runs in the forked child before exec and calls only `setsid`, which
    // is async-signal-safe and cannot fail in a fresh child (it is no group leader).
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let spawned = command
        .args(args)
        .env("AO_SESSION", id)
        .env("AO_PROJECT_ID", project_id)
        .env("AO_EVENT", event)
        .env("AO_MESSAGE", &message)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        // Reaped on a thread of its own, so a long-lived process collects no zombies and
        // nothing waits for it.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => tracing::warn!("notify.command {program:?} did not start: {e}"),
    }
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

    fn report(status: &str) -> HookReport {
        HookReport {
            project: "app".into(),
            session: "app-1".into(),
            status: status.into(),
            waiting_for_fields: vec!["tool_name".into(), "/tool_input/command".into()],
            prompt_field: Some("prompt".into()),
            conversation_field: Some("session_id".into()),
            unless: vec!["reason=clear".into()],
        }
    }

    #[test]
    fn an_event_reads_its_fields_from_the_payload_unless_told_to_ignore_it() {
        let payload = serde_json::json!({
            "tool_name": "Bash",
            "tool_input": {"command": "rm -rf build"},
            "prompt": "fix it",
            "session_id": 7,
        });
        let status = report("waiting_input").checked_status().unwrap();
        let event = report("waiting_input")
            .event(status, Some(&payload))
            .unwrap();
        assert_eq!(event.waiting_for.as_deref(), Some("Bash: rm -rf build"));
        assert_eq!(event.prompt.as_deref(), Some("fix it"));
        assert_eq!(event.conversation.as_deref(), Some("7"));
        let cleared = serde_json::json!({"reason": "clear"});
        assert!(report("exited")
            .event(ReportedStatus::Exited, Some(&cleared))
            .is_none());
        let bare = report("idle").event(ReportedStatus::Idle, None).unwrap();
        assert_eq!(bare.waiting_for, None);
    }

    #[test]
    fn a_report_with_a_bad_status_or_id_is_refused() {
        assert!(matches!(
            report("sleeping").checked_status(),
            Err(EventError::Status(given)) if given == "sleeping"
        ));
        let escaping = HookReport {
            session: "../x".into(),
            ..report("idle")
        };
        assert!(matches!(escaping.checked_status(), Err(EventError::Id(_))));
    }

    #[test]
    fn payloads_are_bounded_blank_is_none_and_garbage_is_not_json() {
        assert!(read_payload(&b"  \n"[..]).unwrap().is_none());
        assert!(matches!(
            read_payload(&b"{nope"[..]),
            Err(EventError::NotJson(_))
        ));
        let huge = vec![b' '; MAX_EVENT_BYTES as usize + 1];
        assert!(matches!(read_payload(&huge[..]), Err(EventError::TooLarge)));
        assert_eq!(
            read_payload(&br#"{"a": "\ud800"}"#[..]).unwrap(),
            Some(serde_json::json!({"a": "\u{fffd}"}))
        );
    }
}
