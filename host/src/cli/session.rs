//! Commands about sessions: `spawn`, `orchestrator`, `session ls|kill`, `send`, `attach`.

use std::{
    collections::{HashMap, HashSet},
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use ao_host::{
    config::PluginChoice,
    plugins::PluginSet,
    session::{Session, SessionRole, SessionStatus, SessionStore},
    spawn::{self, SpawnEnvironment, SpawnRequest, SCREEN_LINES},
};
use ao_plugin_api::Activity;
use clap::{Args as ClapArgs, Subcommand};

use super::{print_json, AppContext};

#[derive(Debug, ClapArgs)]
pub struct SpawnArgs {
    /// Project id (default: the project of the current folder).
    pub project: Option<String>,
    /// What the agent should do; delivered byte-exact as its first message.
    #[arg(long, conflicts_with = "task_file")]
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
    /// Start the agent without sending the task.
    #[arg(long)]
    pub no_prompt: bool,
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
        #[arg(long)]
        json: bool,
    },
    /// Stop a session: destroy its runtime and workspace, archive its record.
    Kill {
        id: String,
        /// Keep the worktree (and its uncommitted work) on disk.
        #[arg(long)]
        keep_workspace: bool,
    },
}

#[derive(Debug, ClapArgs)]
pub struct SendArgs {
    pub id: String,
    /// The message; `-` reads it from stdin.
    #[arg(conflicts_with = "file", required_unless_present = "file")]
    pub text: Option<String>,
    /// Read the message from a file.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Reads text that must be UTF-8, naming its source when it is not.
fn read_text(source: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    if source == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading stdin")?;
    } else {
        bytes = std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (invalid byte at offset {}); convert it to UTF-8",
            source.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

pub(super) fn open_store(context: &AppContext) -> Result<SessionStore> {
    Ok(SessionStore::open(&context.config.data_dir)?)
}

fn spawn_environment(context: &AppContext) -> SpawnEnvironment {
    SpawnEnvironment {
        config_path: context.config.path.clone(),
        port: context.config.port,
        ready_timeout: Duration::from_millis(context.config.ready_timeout_ms),
    }
}

fn print_session(session: &Session, json: bool) -> Result<()> {
    if json {
        print_json(session)
    } else {
        println!("{}", session.id);
        eprintln!(
            "spawned {} on branch {} — watch it with `ao-host attach {}`",
            session.id, session.branch, session.id
        );
        Ok(())
    }
}

pub async fn spawn(context: &AppContext, args: SpawnArgs) -> Result<ExitCode> {
    let task = match (&args.task, &args.task_file) {
        (Some(task), _) => Some(task.clone()),
        (None, Some(file)) => Some(read_text(file)?),
        (None, None) if args.no_prompt => None,
        (None, None) => {
            bail!("say what the agent should do: --task TEXT or --task-file FILE (or --no-prompt)")
        }
    };
    if let Some(task) = &task {
        spawn::validate_task(task)?;
    }
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let mut project = context
        .config
        .resolve_project(args.project.as_deref(), &cwd)?;
    let choice = &mut project.plugins;
    for (field, chosen) in [
        (&mut choice.agent, &args.agent),
        (&mut choice.runtime, &args.runtime),
        (&mut choice.workspace, &args.workspace),
    ] {
        if let Some(name) = chosen {
            *field = name.clone();
        }
    }
    let plugins = context.plugin_set(&project.plugins)?;
    let store = open_store(context)?;
    let request = SpawnRequest {
        project,
        role: SessionRole::Worker,
        task,
        no_prompt: args.no_prompt,
    };
    let session =
        spawn::spawn_session(request, &plugins, &store, &spawn_environment(context)).await?;
    print_session(&session, args.json)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn orchestrator(context: &AppContext, args: OrchestratorArgs) -> Result<ExitCode> {
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let project = context
        .config
        .resolve_project(args.project.as_deref(), &cwd)?;
    let plugins = context.plugin_set(&project.plugins)?;
    let store = open_store(context)?;
    let request = SpawnRequest {
        project,
        role: SessionRole::Orchestrator,
        task: None,
        no_prompt: args.no_prompt,
    };
    let session =
        spawn::spawn_session(request, &plugins, &store, &spawn_environment(context)).await?;
    print_session(&session, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Plugin sets by choice, built once per command, and each runtime's live handles, asked once.
pub(super) struct PluginCache<'a> {
    context: &'a AppContext,
    built: HashMap<(String, String, String), Result<PluginSet, String>>,
    alive: HashMap<String, Result<HashSet<String>, String>>,
}

impl<'a> PluginCache<'a> {
    pub(super) fn new(context: &'a AppContext) -> Self {
        Self {
            context,
            built: HashMap::new(),
            alive: HashMap::new(),
        }
    }

    /// Whether `handle` is alive in `set`'s runtime (one `alive_handles` call per runtime).
    pub(super) async fn is_alive(&mut self, set: &PluginSet, handle: &str) -> Result<bool, String> {
        let name = set.runtime.name().to_string();
        if !self.alive.contains_key(&name) {
            let handles = set
                .runtime
                .alive_handles()
                .await
                .map(|h| h.into_iter().collect())
                .map_err(|e| e.to_string());
            self.alive.insert(name.clone(), handles);
        }
        match &self.alive[&name] {
            Ok(handles) => Ok(handles.contains(handle)),
            Err(e) => Err(e.clone()),
        }
    }

    pub(super) fn for_session(&mut self, session: &Session) -> Result<PluginSet, String> {
        let key = (
            session.runtime.clone(),
            session.agent.clone(),
            session.workspace.clone(),
        );
        self.built
            .entry(key)
            .or_insert_with(|| {
                let choice = PluginChoice {
                    runtime: session.runtime.clone(),
                    agent: session.agent.clone(),
                    workspace: session.workspace.clone(),
                };
                self.context
                    .plugin_set(&choice)
                    .map_err(|e| format!("{e:#}"))
            })
            .clone()
    }
}

/// The session with its status read from the runtime and agent now, not as last recorded.
async fn live(session: Session, plugins: &mut PluginCache<'_>) -> Session {
    let mut session = session;
    if let Some(pid) = session.interrupted_spawner() {
        session.status = SessionStatus::Errored;
        session.note = Some(format!(
            "its spawn was interrupted (ao-host process {pid} is gone); `ao-host gc` cleans it up"
        ));
        return session;
    }
    if session.status == SessionStatus::Spawning {
        return session;
    }
    let Some(handle) = session.runtime_handle.clone() else {
        return session;
    };
    let set = match plugins.for_session(&session) {
        Ok(set) => set,
        Err(reason) => {
            session.note = Some(format!("status not checked: {reason}"));
            return session;
        }
    };
    match plugins.is_alive(&set, &handle).await {
        Ok(false) => session.status = SessionStatus::Exited,
        Ok(true) => {
            let activity = match set.runtime.capture_output(&handle, SCREEN_LINES).await {
                Ok(screen) => set.agent.activity(&screen).await,
                Err(e) => Err(e),
            };
            match activity {
                Ok(Activity::Idle) => session.status = SessionStatus::Idle,
                Ok(Activity::Working) => session.status = SessionStatus::Working,
                Ok(Activity::WaitingInput) => session.status = SessionStatus::WaitingInput,
                Ok(Activity::Exited) => session.status = SessionStatus::Exited,
                Err(e) => session.note = Some(format!("status not checked: {e}")),
            }
        }
        Err(e) => session.note = Some(format!("status not checked: {e}")),
    }
    session
}

pub async fn run(context: &AppContext, command: SessionCommand) -> Result<ExitCode> {
    match command {
        SessionCommand::Ls {
            project,
            archived,
            json,
        } => list(context, project.as_deref(), archived, json).await,
        SessionCommand::Kill { id, keep_workspace } => kill(context, &id, keep_workspace).await,
    }
}

async fn list(
    context: &AppContext,
    project: Option<&str>,
    archived: bool,
    json: bool,
) -> Result<ExitCode> {
    let store = open_store(context)?;
    let listing = store.list(project, archived);
    for problem in &listing.problems {
        tracing::warn!("{problem}");
    }
    let mut sessions = Vec::with_capacity(listing.sessions.len());
    let mut plugins = PluginCache::new(context);
    for session in listing.sessions {
        sessions.push(if archived {
            session
        } else {
            live(session, &mut plugins).await
        });
    }
    if json {
        print_json(&sessions)?;
    } else if sessions.is_empty() {
        eprintln!(
            "no {} sessions",
            if archived { "archived" } else { "active" }
        );
    } else {
        println!("{:<28} {:<14} {:<34} TASK", "ID", "STATUS", "BRANCH");
        for s in &sessions {
            let status = serde_json::to_value(s.status)?;
            let task = s
                .task
                .as_deref()
                .unwrap_or("-")
                .lines()
                .next()
                .unwrap_or("");
            let task: String = task.chars().take(60).collect();
            println!(
                "{:<28} {:<14} {:<34} {task}",
                s.id,
                status.as_str().unwrap_or("?"),
                s.branch
            );
            if let Some(note) = &s.note {
                println!("    {note}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn kill(context: &AppContext, id: &str, keep_workspace: bool) -> Result<ExitCode> {
    let store = open_store(context)?;
    let session = store.find(id)?;
    let plugins = PluginCache::new(context)
        .for_session(&session)
        .map_err(|reason| anyhow::anyhow!("cannot kill {id}: {reason}"))?;
    if let Some(handle) = &session.runtime_handle {
        plugins
            .runtime
            .destroy(handle)
            .await
            .with_context(|| format!("killing {id}'s runtime"))?;
    }
    if let (Some(path), false) = (&session.workspace_path, keep_workspace) {
        plugins
            .workspace
            .destroy(path, false)
            .await
            .with_context(|| format!("removing {id}'s workspace"))?;
    }
    store.archive(&session)?;
    eprintln!("killed {id}");
    Ok(ExitCode::SUCCESS)
}

/// The session and its plugins, for commands that talk to a live session.
fn live_target(context: &AppContext, id: &str) -> Result<(Session, PluginSet, String)> {
    let store = open_store(context)?;
    let session = store.find(id)?;
    let plugins = PluginCache::new(context)
        .for_session(&session)
        .map_err(|reason| anyhow::anyhow!("{id}: {reason}"))?;
    let handle = session.runtime_handle.clone().ok_or_else(|| {
        anyhow::anyhow!("{id} has no runtime yet (its spawn did not get that far)")
    })?;
    Ok((session, plugins, handle))
}

pub async fn send(context: &AppContext, args: SendArgs) -> Result<ExitCode> {
    let text = match (&args.text, &args.file) {
        (_, Some(file)) => read_text(file)?,
        (Some(text), None) if text == "-" => read_text(Path::new("-"))?,
        (Some(text), None) => text.clone(),
        (None, None) => unreachable!("clap requires TEXT or --file"),
    };
    spawn::validate_task(&text).context("message refused")?;
    let (_, plugins, handle) = live_target(context, &args.id)?;
    if !plugins.runtime.is_alive(&handle).await? {
        bail!(
            "{} is not running any more; `ao-host session kill {}` archives it",
            args.id,
            args.id
        );
    }
    spawn::deliver(&plugins.runtime, &plugins.agent, &handle, &text)
        .await
        .with_context(|| format!("sending to {}", args.id))?;
    Ok(ExitCode::SUCCESS)
}

pub async fn attach(context: &AppContext, id: &str) -> Result<ExitCode> {
    let (_, plugins, handle) = live_target(context, id)?;
    let argv = plugins.runtime.attach_command(&handle).await?;
    let Some((program, args)) = argv.split_first() else {
        bail!(
            "the {} runtime gave no attach command",
            plugins.runtime.name()
        );
    };
    let error =
        std::os::unix::process::CommandExt::exec(std::process::Command::new(program).args(args));
    Err(error).with_context(|| format!("running {}", argv.join(" ")))
}
