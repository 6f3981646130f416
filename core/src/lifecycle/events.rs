//! Agent events: what `ao-host hook` does with one (an agent's hook runs it), and the
//! notifications a status change sets off.
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
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
};

use crate::{
    config::NotifyConfig,
    session::{
        agent_state::{AgentEvent, AgentStateDir, Change, ReportedStatus},
        StoreError,
    },
};

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
        .env("AO_EVENT", change.status.as_str())
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
    Ok(())
}
