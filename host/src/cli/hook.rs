//! `ao-host hook`: the command an agent's hooks run to report an event (see
//! `ao_plugin_api::LaunchRequest::event_command`; the protocol is `lifecycle::events`). It prints
//! nothing and always exits 0: its stdout may become part of the agent's prompt, and a failing
//! hook may stop what the agent was doing. Problems go to stderr.

use std::{io::IsTerminal, path::Path, process::ExitCode};

use anyhow::{bail, Context, Result};
use ao_core::{
    config::Config,
    lifecycle::{
        events::{self, record_event, HookReport},
        Lifecycle,
    },
    session::ReportedStatus,
};
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

impl From<HookArgs> for HookReport {
    fn from(args: HookArgs) -> Self {
        Self {
            project: args.project,
            session: args.session,
            status: args.status,
            waiting_for_fields: args.waiting_for_field,
            prompt_field: args.prompt_field,
            conversation_field: args.conversation_field,
            unless: args.unless,
        }
    }
}

/// `config` and `data_dir` are the global `--config` and `--data-dir`. An error goes to stderr,
/// which the agent may not show anyone, and is kept beside the session's state, where a spawn
/// waiting for this event reads it.
pub fn run(config: Option<&Path>, data_dir: Option<&Path>, args: HookArgs) -> ExitCode {
    let report = HookReport::from(args);
    if let Err(error) = record(config, data_dir, &report) {
        crate::errln!("ao-host hook: {error:#}");
        if let Some(data_dir) = data_dir {
            if let Err(e) = report.keep_failure(data_dir, &format!("{error:#}")) {
                crate::errln!("ao-host hook: keeping that error for the spawn: {e}");
            }
        }
    }
    ExitCode::SUCCESS
}

fn record(config: Option<&Path>, data_dir: Option<&Path>, report: &HookReport) -> Result<()> {
    // Read first, whatever comes next: an agent writing its event must never meet a closed pipe.
    let stdin = std::io::stdin();
    let payload = if stdin.is_terminal() {
        Ok(None)
    } else {
        events::read_payload(stdin.lock())
    };
    let Some(data_dir) = data_dir else {
        bail!("--data-dir is required: the agent's hook names the data dir of its session");
    };
    let status = report.checked_status()?;
    let payload = payload.unwrap_or_else(|e| {
        crate::errln!(
            "ao-host hook: {:#}; recording the status without the event's details",
            anyhow::Error::from(e)
        );
        None
    });
    let Some(event) = report.event(status, payload.as_ref()) else {
        return Ok(());
    };
    // Only a config named on the command line: the hook runs in the session's worktree, where
    // `./ao-rs.yaml` may be any branch's copy.
    let config = match config {
        Some(path) => match Config::load(Some(path)) {
            Ok(config) => Some(config),
            Err(e) => {
                crate::errln!("ao-host hook: no notification or budget check: {e}");
                None
            }
        },
        None => None,
    };
    record_event(
        data_dir,
        &report.project,
        &report.session,
        event,
        None,
        config.as_ref().and_then(|c| c.notify.as_ref()),
    )
    .context("recording the agent's event")?;
    // Budgets are checked between model requests (a tool's event) and at the end of a turn,
    // and only for a session whose spawn left a budget snapshot: without budgets the hook
    // loads no plugin.
    let boundary = matches!(status, ReportedStatus::Idle | ReportedStatus::Working);
    if let Some(config) = config.filter(|_| {
        boundary && Lifecycle::has_budget_snapshot(data_dir, &report.project, &report.session)
    }) {
        let working = status == ReportedStatus::Working;
        check_budget(config, data_dir, report, working).context("checking the session's budget")?;
    }
    Ok(())
}

/// Reads the session's usage through its agent plugin and enforces its budgets (see
/// `ao_core::budget`): a warning once per threshold, an interrupt when one runs out.
fn check_budget(
    mut config: Config,
    data_dir: &Path,
    report: &HookReport,
    working: bool,
) -> Result<()> {
    ao_core::plugins::crash::install();
    config.data_dir = data_dir.to_path_buf();
    let lifecycle = Lifecycle::open_for_session(config, &report.project, &report.session)?;
    let reactor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let checked =
        reactor.block_on(lifecycle.check_budget_of(&report.project, &report.session, working));
    reactor.shutdown_background();
    Ok(checked?)
}

/// Reads and drops the event on stdin, for a hook run that fails before it reads it: the agent
/// writing it must never meet a closed pipe.
pub fn discard_event() {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        events::drain(stdin.lock());
    }
}
