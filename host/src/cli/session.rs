//! Commands about sessions: `spawn`, `orchestrator`, `session ls|kill`, `send`, `attach`.
//! Parsing and printing only; the work is the lifecycle service's.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{atomic::Ordering, Arc},
};

use anyhow::{bail, Context, Result};
use ao_core::{
    lifecycle::{
        HostChoice, KillOutcome, Lifecycle, LifecycleError, RequestError, RestoreResult,
        SpawnParams, TextError,
    },
    session::{Session, SessionRole, MAX_TASK_BYTES},
    usage::UsageState,
    watch::shown::{ListedSession, NO_WATCHER},
};
use clap::{Args as ClapArgs, Subcommand};

use super::{
    output::{print_json, terminal_safe, Spinner},
    pull_request, usage,
};
use crate::{errln, outln};

#[derive(Debug, ClapArgs)]
pub struct SpawnArgs {
    /// Project id (default: the project of the current folder).
    pub project: Option<String>,
    /// What the agent should do; delivered byte-exact as its first message (it may start with
    /// `-`).
    #[arg(long, conflicts_with = "task_file", allow_hyphen_values = true)]
    pub task: Option<String>,
    /// Read the task from a file (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub task_file: Option<PathBuf>,
    /// Agent plugin to use instead of the project's.
    #[arg(long)]
    pub agent: Option<String>,
    /// Runtime plugin to use instead of the project's.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Workspace plugin to use instead of the project's.
    #[arg(long)]
    pub workspace: Option<String>,
    /// Start the agent with no first message (so with no task: one given would never reach it).
    #[arg(long, conflicts_with_all = ["task", "task_file"])]
    pub no_prompt: bool,
    /// Run on another machine: a host of `hosts:` in ao-rs.yaml (the project names its clone
    /// there under `projects.<id>.hosts`), or `any` for the one with the fewest live sessions.
    #[arg(long, value_name = "NAME|any")]
    pub host: Option<String>,
    /// Confine the agent with this sandbox plugin (with the project's `sandbox:` policy), or
    /// `off` to run it unconfined; default: the project's `sandbox.plugin`.
    #[arg(long, value_name = "NAME|off")]
    pub sandbox: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, ClapArgs)]
pub struct OrchestratorArgs {
    /// Project id (default: the project of the current folder).
    pub project: Option<String>,
    /// Start the orchestrator without sending it its prompt as the first message.
    #[arg(long)]
    pub no_prompt: bool,
    /// Confine the orchestrator with this sandbox plugin, or `off`; default: confined only
    /// when the project's `sandbox.orchestrator` is true.
    #[arg(long, value_name = "NAME|off")]
    pub sandbox: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List sessions with their live status.
    Ls {
        /// Only this project's sessions.
        project: Option<String>,
        /// List killed (archived) sessions instead.
        #[arg(long)]
        archived: bool,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stop a session: destroy its runtime and workspace, archive its record.
    Kill {
        /// The session's id (`session ls` lists them).
        id: String,
        /// Keep the worktree (and its uncommitted work) on disk.
        #[arg(long, conflicts_with = "force")]
        keep_workspace: bool,
        /// Remove the worktree even if it holds uncommitted changes or commits not pushed.
        #[arg(long)]
        force: bool,
    },
    /// Show a session's pull request, CI and review state as the watcher last stored it.
    Pr {
        /// The session's id (`session ls` lists them).
        id: String,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Relaunch exited sessions in their workspaces, resuming their agents' conversations.
    Restore {
        /// The session's id (`session ls` lists them).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every exited session that can be resumed.
        #[arg(long)]
        all: bool,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, ClapArgs)]
pub struct SendArgs {
    /// The session's id (`session ls` lists them).
    pub id: String,
    /// The message (it may start with `-`); `-` alone reads it from stdin.
    #[arg(
        conflicts_with = "file",
        required_unless_present = "file",
        allow_hyphen_values = true
    )]
    pub text: Option<String>,
    /// Read the message from a file.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Send it even though the session is over budget (`budgets:`).
    #[arg(long)]
    pub force: bool,
}

/// Reads text that must be UTF-8, naming its source when it is not. Reads at most one byte
/// more than a task or message may have, so `--task-file /dev/zero` is refused, not slurped.
fn read_text(source: &Path) -> Result<String> {
    let limit = MAX_TASK_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    if source == Path::new("-") {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut bytes)
            .context("reading stdin")?;
    } else {
        std::fs::File::open(source)
            .and_then(|file| file.take(limit).read_to_end(&mut bytes))
            .with_context(|| format!("reading {}", source.display()))?;
    }
    if bytes.len() > MAX_TASK_BYTES {
        bail!(
            "{} holds more than the {MAX_TASK_BYTES} bytes a task or message may have; put the details in a file in the repository and point the task at it",
            source.display()
        );
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (invalid byte at offset {}); convert it to UTF-8",
            source.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

fn print_session(session: &Session, json: bool) -> Result<()> {
    if json {
        print_json(session)
    } else {
        outln!("{}", session.id);
        errln!(
            "spawned {} on branch {} — watch it with `ao-host attach {}`",
            session.id,
            terminal_safe(&session.branch),
            session.id
        );
        if let Some(note) = &session.note {
            errln!("note: {}", terminal_safe(note));
        }
        Ok(())
    }
}

/// Checks and runs a spawn; the first Ctrl-C (or SIGTERM) asks it to stop and undo itself, so
/// an interrupted spawn leaves nothing behind; a second one ends the process at once.
async fn run_spawn(lifecycle: &Lifecycle, params: SpawnParams, json: bool) -> Result<ExitCode> {
    let stop = Arc::clone(&params.stop);
    let request = lifecycle.spawn_request(params).await.map_err(with_flags)?;
    let watcher = super::on_interrupt("stopping the spawn and removing what it made", move || {
        stop.store(true, Ordering::Relaxed)
    });
    let spinner = Spinner::start("reserving an id");
    let session = lifecycle
        .spawn(request, &|phase| spinner.set_phase(phase))
        .await;
    drop(spinner);
    watcher.abort();
    print_session(&session?, json)?;
    Ok(ExitCode::SUCCESS)
}

/// A refused spawn request, naming the flags that fix it where the refusal is about them.
fn with_flags(error: LifecycleError) -> anyhow::Error {
    let flags = match &error {
        LifecycleError::Request(RequestError::NoTask) => {
            "--task TEXT or --task-file FILE, or --no-prompt"
        }
        LifecycleError::Request(RequestError::Text(TextError::Empty { .. })) => {
            "with --task or --task-file"
        }
        LifecycleError::Request(RequestError::TaskWithoutPrompt) => {
            "--task or --task-file, or --no-prompt, not both"
        }
        _ => return error.into(),
    };
    anyhow::anyhow!("{error} ({flags})")
}

/// The project a command names, and the folder to find its repository from. Run inside a
/// session without a project, that session's project (`AO_PROJECT_ID`), found from the
/// session's own workspace wherever the command runs: an orchestrator's `ao-host spawn` starts
/// workers of its own project.
fn project_and_folder(
    lifecycle: &Lifecycle,
    given: &Option<String>,
) -> Result<(Option<String>, PathBuf)> {
    let cwd = std::env::current_dir().context("reading the current folder")?;
    if given.is_some() {
        return Ok((given.clone(), cwd));
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(session), Some(project)) = (var("AO_SESSION"), var("AO_PROJECT_ID")) else {
        return Ok((None, cwd));
    };
    let workspace = lifecycle
        .store()
        .find(&session)
        .ok()
        .and_then(|record| record.workspace_path)
        .map(PathBuf::from)
        .filter(|path| path.is_dir());
    Ok((Some(project), workspace.unwrap_or(cwd)))
}

pub async fn spawn(lifecycle: &Lifecycle, args: SpawnArgs) -> Result<ExitCode> {
    let task = match (args.task, &args.task_file) {
        (Some(task), _) => Some(task),
        (None, Some(file)) => Some(read_text(file)?),
        (None, None) => None,
    };
    let (project, folder) = project_and_folder(lifecycle, &args.project)?;
    let params = SpawnParams {
        project,
        task,
        no_prompt: args.no_prompt,
        agent: args.agent,
        runtime: args.runtime,
        workspace: args.workspace,
        host: args.host.as_deref().map(HostChoice::parse),
        sandbox: args.sandbox,
        ..SpawnParams::new(SessionRole::Worker, folder)
    };
    run_spawn(lifecycle, params, args.json).await
}

pub async fn orchestrator(lifecycle: &Lifecycle, args: OrchestratorArgs) -> Result<ExitCode> {
    let (project, folder) = project_and_folder(lifecycle, &args.project)?;
    let params = SpawnParams {
        project,
        no_prompt: args.no_prompt,
        sandbox: args.sandbox,
        ..SpawnParams::new(SessionRole::Orchestrator, folder)
    };
    run_spawn(lifecycle, params, args.json).await
}

pub async fn run(lifecycle: &Lifecycle, command: SessionCommand) -> Result<ExitCode> {
    match command {
        SessionCommand::Ls {
            project,
            archived,
            json,
        } => list(lifecycle, project.as_deref(), archived, json).await,
        SessionCommand::Kill {
            id,
            keep_workspace,
            force,
        } => kill(lifecycle, &id, keep_workspace, force).await,
        SessionCommand::Pr { id, json } => pull_request::show(lifecycle, &id, json),
        SessionCommand::Restore { id, all: _, json } => {
            restore(lifecycle, id.as_deref(), json).await
        }
    }
}

/// Restores one session, or (without `id`) every one that can be; exits non-zero if any
/// restore failed.
async fn restore(lifecycle: &Lifecycle, id: Option<&str>, json: bool) -> Result<ExitCode> {
    let spinner = Spinner::start("restoring");
    let progress = |phase: &str| spinner.set_phase(phase);
    let Some(id) = id else {
        let outcomes = lifecycle.restore_all(&progress).await;
        drop(spinner);
        let outcomes = outcomes.context("restoring sessions")?;
        let failed = outcomes
            .iter()
            .any(|o| matches!(o.result, RestoreResult::Failed { .. }));
        if json {
            print_json(&outcomes)?;
        } else if outcomes.is_empty() {
            errln!("no exited sessions to restore");
        }
        for outcome in &outcomes {
            match &outcome.result {
                RestoreResult::Restored { .. } if !json => outln!("restored {}", outcome.id),
                RestoreResult::Failed { error } => {
                    errln!("ao-host: {}", terminal_safe(error))
                }
                RestoreResult::Restored { .. } => {}
            }
        }
        return Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    };
    let restored = lifecycle.restore(id, &progress).await;
    drop(spinner);
    let session = restored?;
    if json {
        print_json(&session)?;
    } else {
        outln!("restored {id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Lists sessions. Records that could not be read are named on stderr and make the exit status
/// non-zero (after the listing): a script must never take a partial list for the whole.
async fn list(
    lifecycle: &Lifecycle,
    project: Option<&str>,
    archived: bool,
    json: bool,
) -> Result<ExitCode> {
    let listing = lifecycle.list(project, archived).await?;
    refuse_unknown_project(lifecycle, project, &listing.problems)?;
    for problem in &listing.problems {
        errln!("ao-host: {}", terminal_safe(problem));
    }
    print_listing(
        &lifecycle.with_pull_requests(listing.sessions),
        archived,
        json,
        caller(lifecycle).as_deref(),
    )?;
    if listing.problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        errln!(
            "ao-host: {} record(s) or folder(s) could not be read, so this list may be incomplete; fix or move them aside",
            listing.problems.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Refuses a `project` neither configured nor ever spawned in: a mistyped project must not read
/// as "no sessions". One whose records could not be read (`problems`) is no typo: the problems
/// name it and the fix.
pub(super) fn refuse_unknown_project(
    lifecycle: &Lifecycle,
    project: Option<&str>,
    problems: &[String],
) -> Result<()> {
    let Some(project) = project else {
        return Ok(());
    };
    let configured = lifecycle.config().projects.contains_key(project);
    let seen = lifecycle.store().projects().0.iter().any(|p| p == project);
    if !configured && !seen && problems.is_empty() {
        bail!(
            "no project `{project}`: none is configured under that name, and no session of it was ever spawned in {}",
            lifecycle.store().data_dir().display()
        );
    }
    Ok(())
}

/// The caller's own session, when run inside one of this data dir's sessions (a session of
/// another data dir may bear the same id).
fn caller(lifecycle: &Lifecycle) -> Option<String> {
    let id = std::env::var("AO_SESSION")
        .ok()
        .filter(|id| !id.is_empty())?;
    let data_dir = std::env::var_os("AO_DATA_DIR").map(PathBuf::from)?;
    let same = data_dir
        .canonicalize()
        .is_ok_and(|dir| dir == lifecycle.store().data_dir());
    same.then_some(id)
}

/// Lists sessions, marking `caller`'s own (see [`caller`]), with their pull requests.
fn print_listing(
    sessions: &[ListedSession],
    archived: bool,
    json: bool,
    caller: Option<&str>,
) -> Result<()> {
    let is_caller = |s: &ListedSession| caller == Some(s.session.id.as_str());
    if json {
        let mut listed = serde_json::to_value(sessions)?;
        if let Some(items) = listed.as_array_mut() {
            for (item, session) in items.iter_mut().zip(sessions) {
                item["caller"] = is_caller(session).into();
            }
        }
        return print_json(&listed);
    }
    if sessions.is_empty() {
        errln!(
            "no {} sessions",
            if archived { "archived" } else { "active" }
        );
        return Ok(());
    }
    // A HOST column only once some session runs elsewhere; a PR column once the watcher
    // stored something.
    let hosts = sessions.iter().any(|s| s.session.host.is_some());
    let host_of = |s: &Session| match (hosts, &s.host) {
        (false, _) => String::new(),
        (true, Some(host)) => format!("{:<12} ", terminal_safe(host)),
        (true, None) => format!("{:<12} ", "local"),
    };
    // A SANDBOX column once some session is confined.
    let confined = sessions.iter().any(|s| s.session.sandbox.is_some());
    let sandbox_of = |s: &Session| match (confined, &s.sandbox) {
        (false, _) => String::new(),
        (true, Some(sandbox)) => format!("{:<26} ", terminal_safe(&sandbox.describe())),
        (true, None) => format!("{:<26} ", "-"),
    };
    let prs = sessions
        .iter()
        .any(|s| s.pr.is_some() || !s.queued.is_empty());
    let pr_of = |s: &ListedSession| match prs {
        false => String::new(),
        true => format!("{:<30} ", pull_request::cell(s)),
    };
    outln!(
        "{:<28} {:<14} {:>10} {}{}{:<34} {}TASK",
        "ID",
        "STATUS",
        "COST",
        if hosts {
            format!("{:<12} ", "HOST")
        } else {
            String::new()
        },
        if confined {
            format!("{:<26} ", "SANDBOX")
        } else {
            String::new()
        },
        "BRANCH",
        if prs {
            format!("{:<30} ", "PR")
        } else {
            String::new()
        },
    );
    for listed in sessions {
        let s = &listed.session;
        let task = s.task_headline(60);
        let id = if is_caller(listed) {
            format!("{} (you)", s.id)
        } else {
            s.id.clone()
        };
        outln!(
            "{:<28} {:<14} {:>10} {}{}{:<34} {}{}",
            id,
            s.status.as_str(),
            usage::cost_cell(s.usage.as_ref()),
            host_of(s),
            sandbox_of(s),
            terminal_safe(&s.branch),
            pr_of(listed),
            terminal_safe(&task)
        );
        if let Some(question) = &s.waiting_for {
            outln!("    asks: {}", terminal_safe(question));
        }
        if let Some(note) = &s.note {
            outln!("    {}", terminal_safe(note));
        }
        if let Some(why) = s
            .usage
            .as_ref()
            .filter(|u| u.state == UsageState::Unknown || u.stale)
            .and_then(|u| u.notes.last())
        {
            outln!("    usage: {}", terminal_safe(why));
        }
        if let Some(note) = &listed.watch_note {
            outln!("    {}", terminal_safe(note));
        }
    }
    if sessions.iter().any(ListedSession::wants_watcher) {
        outln!("{NO_WATCHER}: PR and CI state may be old");
    }
    Ok(())
}

async fn kill(
    lifecycle: &Lifecycle,
    id: &str,
    keep_workspace: bool,
    force: bool,
) -> Result<ExitCode> {
    let spinner = Spinner::start("killing");
    let outcome = lifecycle
        .kill(id, keep_workspace, force, &|phase| spinner.set_phase(phase))
        .await;
    drop(spinner);
    match outcome.with_context(|| format!("killing {id}"))? {
        KillOutcome::Killed(_) => errln!("killed {id}"),
        KillOutcome::SpawnUndone => {
            errln!("killed {id}: it was still spawning; its spawn stopped and removed everything it had made")
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn send(lifecycle: &Lifecycle, args: SendArgs) -> Result<ExitCode> {
    let text = match (&args.text, &args.file) {
        (_, Some(file)) => read_text(file)?,
        (Some(text), None) if text == "-" => read_text(Path::new("-"))?,
        (Some(text), None) => text.clone(),
        (None, None) => unreachable!("clap requires TEXT or --file"),
    };
    let spinner = Spinner::start("sending");
    let sent = lifecycle
        .send(&args.id, &text, args.force, &|phase| {
            spinner.set_phase(phase)
        })
        .await;
    drop(spinner);
    let sent = sent.map_err(|error| match error {
        LifecycleError::Budget(_) => anyhow::anyhow!("{error} (`--force`)"),
        error => error.into(),
    });
    sent.with_context(|| format!("sending to {}", args.id))?;
    Ok(ExitCode::SUCCESS)
}

pub async fn attach(lifecycle: &Lifecycle, id: &str) -> Result<ExitCode> {
    let argv = lifecycle.attach_command(id).await?;
    let (program, args) = argv.split_first().expect("attach commands are never empty");
    super::output::give_back_stdout().context("giving the terminal back to the attach command")?;
    let error =
        std::os::unix::process::CommandExt::exec(std::process::Command::new(program).args(args));
    Err(error).with_context(|| format!("running {}", argv.join(" ")))
}
