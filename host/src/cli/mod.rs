//! Argument parsing and dispatch to one module per command group.

mod completions;
mod dashboard;
mod doctor;
mod gc;
mod hook;
mod open_files;
pub mod output;
mod plugins;
mod pull_request;
mod session;
mod transport;
mod usage;
mod watch;

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use ao_core::{
    config::{self, Config},
    lifecycle::Lifecycle,
    plugins::{discovery, PluginRegistry},
    timing::PhaseClock,
};
use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::errln;

/// `ao-host --version`: the release, and which plugin libraries it accepts (ABI level and
/// host features), which is what plugin authors and operators compare.
fn version_text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{} ({}; plugin interface revision {})",
            env!("CARGO_PKG_VERSION"),
            ao_core::plugins::library::host_abi_summary(),
            ao_plugin_api::INTERFACE_REVISION
        )
    })
}

#[derive(Debug, Parser)]
#[command(
    name = "ao-host",
    version = version_text(),
    about = "Run AI coding agents side by side through plugins"
)]
pub struct Args {
    /// Config file (default: $AO_CONFIG_PATH, else ./ao-rs.yaml, else built-in defaults).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Where sessions are stored (overrides `data_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Extra folder to load plugins from, searched first (repeatable).
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect plugin libraries.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Start a worker session on a task.
    Spawn(session::SpawnArgs),
    /// Start an orchestrator session that manages workers.
    Orchestrator(session::OrchestratorArgs),
    /// List and stop sessions.
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// Send a message to a session's agent.
    Send(session::SendArgs),
    /// Watch and type into a session (runs the runtime's attach command).
    Attach {
        /// The session's id (`session ls` lists them).
        id: String,
    },
    /// Check plugins, programs and folders; print the fix for each problem.
    Doctor {
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Reconcile session records with what plugins own: interrupted spawns, dead runtimes,
    /// orphan runtime sessions and workspaces, stale temporary files.
    Gc {
        /// Report what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also remove orphan workspaces that hold uncommitted changes.
        #[arg(long)]
        force: bool,
        /// Never call this plugin (repeatable): one that crashes must not stop the rest from
        /// being reconciled. Its sessions and what it owns are left alone.
        #[arg(long = "skip-plugin", value_name = "NAME")]
        skip_plugins: Vec<String>,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve the web dashboard and its JSON API until interrupted.
    Dashboard(dashboard::DashboardArgs),
    /// Watch the sessions' pull requests, CI and reviews, and react (one watcher per data dir).
    Watch(watch::WatchArgs),
    /// What sessions cost, live and killed: tokens and USD by session, project, UTC day or
    /// model.
    Usage(usage::UsageArgs),
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Record an agent's event (run by the agent's hooks, not by hand).
    #[command(hide = true)]
    Hook(hook::HookArgs),
    /// Carry one command line to a host over ssh (the head of the transport plugins get).
    #[command(hide = true)]
    Transport(transport::TransportArgs),
}

/// Whether `args` (without the program name) run the `hook` command: its first word that is
/// not a global option or an option's value.
pub fn is_hook_invocation(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let mut args = args;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--config" | "--data-dir" | "--plugin-dir") => {
                args.next();
            }
            Some(option) if option.starts_with('-') => {}
            word => return word == Some("hook"),
        }
    }
    false
}

pub use hook::discard_event as discard_hook_event;

/// Logs go to stderr so that `--json` output on stdout stays one clean document.
pub fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
}

/// What every command needs: the effective config and where plugins are searched.
pub struct AppContext {
    pub config: Config,
    pub cli_plugin_dirs: Vec<PathBuf>,
}

impl AppContext {
    /// Inside a session (`AO_SESSION` and `AO_DATA_DIR` set, as ao-host sets them for its
    /// agents), a bare `ao-host` acts on that session's data dir and config: the file named by
    /// `AO_CONFIG_PATH`, or the built-in defaults when the session was started without one —
    /// never a `./ao-rs.yaml` of the worktree it runs in. `--config` or `--data-dir` override.
    fn new(args: &Args) -> Result<Self> {
        let from_env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let session_data_dir = from_env("AO_SESSION")
            .and(from_env("AO_DATA_DIR"))
            .filter(|_| args.config.is_none());
        let path = match &session_data_dir {
            Some(_) => from_env(config::CONFIG_PATH_ENV).map(PathBuf::from),
            None => config::locate(args.config.as_deref()),
        };
        let mut config = Config::load(path.as_deref())?;
        if let Some(dir) = &args.data_dir {
            config.data_dir = std::path::absolute(dir)
                .with_context(|| format!("--data-dir {}", dir.display()))?;
        } else if let Some(dir) = session_data_dir {
            config.data_dir = PathBuf::from(dir);
            // The session's data dir was moved (or deleted) since its agent started: a new,
            // empty one there would take whatever this command makes.
            if !config.data_dir.exists() {
                anyhow::bail!(
                    "this session's data dir {} (AO_DATA_DIR) is gone, moved or deleted since its \
                     agent started; name where it is now with --data-dir",
                    config.data_dir.display()
                );
            }
        }
        Ok(Self {
            config,
            cli_plugin_dirs: args.plugin_dirs.clone(),
        })
    }

    pub fn search_dirs(&self) -> Vec<discovery::SearchDir> {
        discovery::search_dirs(
            &self.cli_plugin_dirs,
            &self.config.plugin_dirs,
            &self.config.data_dir,
        )
    }

    /// Discovers and loads every candidate library.
    pub fn load_plugins(&self) -> PluginRegistry {
        ao_core::plugins::load_configured(&discovery::candidates(&self.search_dirs()), &self.config)
    }

    /// The lifecycle service every session command goes through.
    fn lifecycle(&self) -> Result<Lifecycle> {
        let mut clock = PhaseClock::start();
        let mut lifecycle = Lifecycle::open(self.config.clone(), &self.cli_plugin_dirs)?;
        // Agents report their events by running this very program (`ao-host hook`).
        match std::env::current_exe() {
            // … and plugins send their lines to other hosts through it (`ao-host transport`).
            Ok(program) => {
                lifecycle = lifecycle
                    .with_transport_program(program.clone())
                    .with_event_program(program)
            }
            Err(e) => tracing::warn!("agents' events are not recorded (the path of ao-host is unknown: {e}); their screens are read instead"),
        }
        clock.lap("plugin-load");
        Ok(lifecycle)
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    // Needs neither config nor plugins: it must work where neither exists yet.
    let args = match args.command {
        Command::Completions(completions) => return completions::run(completions),
        // Runs on every event of every agent: no plugins, no config unless named.
        Command::Transport(transport) => return Ok(transport::run(transport)),
        Command::Hook(hook) => {
            return Ok(hook::run(
                args.config.as_deref(),
                args.data_dir.as_deref(),
                hook,
            ))
        }
        command => Args { command, ..args },
    };
    open_files::ensure_enough()?;
    // From here on plugins may be loaded and called: a crash in one of them says which.
    ao_core::plugins::crash::install();
    let mut clock = PhaseClock::start();
    let mut context = AppContext::new(&args)?;
    if let Command::Gc { skip_plugins, .. } = &args.command {
        // Not loaded at all: a library may crash in its own start-up code.
        context.config.plugin_skip = skip_plugins.clone();
    }
    clock.lap("config");
    let outcome = match args.command {
        Command::Plugins(command) => plugins::run(&context, command),
        command => {
            if command.changes_sessions() {
                finish_even_if_the_terminal_goes();
            }
            let lifecycle = context.lifecycle()?;
            let reactor = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let outcome = match command {
                Command::Dashboard(args) => {
                    reactor.block_on(dashboard::run(std::sync::Arc::new(lifecycle), args))
                }
                Command::Watch(args) => {
                    reactor.block_on(watch::run(std::sync::Arc::new(lifecycle), args))
                }
                command => reactor.block_on(run_async(&lifecycle, command)),
            };
            // A plugin call that timed out may still hold a blocking thread; do not wait for it.
            reactor.shutdown_background();
            outcome
        }
    };
    // Plugins can only say "ao-rs.yaml"; the operator is told the file actually in use.
    outcome.map_err(|error| anyhow::anyhow!(context.config.name_file_in(&format!("{error:#}"))))
}

impl Command {
    /// All but the two that are not the operator's commands: an isolated plugin's process sets
    /// up its own channel on the standard descriptors, and the probe agent talks to its
    /// terminal.
    pub fn writes_through_own_stdout(&self) -> bool {
        !matches!(
            self,
            Self::Plugins(
                plugins::PluginsCommand::Serve | plugins::PluginsCommand::ProbeAgent { .. }
            ) | Self::Transport(_)
        )
    }

    /// Commands that change sessions: once started, they must finish (or undo) their work.
    fn changes_sessions(&self) -> bool {
        matches!(
            self,
            Self::Spawn(_)
                | Self::Orchestrator(_)
                | Self::Send(_)
                | Self::Gc { .. }
                | Self::Session(session::SessionCommand::Kill { .. })
                | Self::Session(session::SessionCommand::Restore { .. })
        )
    }
}

/// Ignores SIGHUP. A command run inside a session's terminal (an orchestrator killing a worker,
/// or a session killing itself) gets SIGHUP when that terminal closes, half-way through; it
/// should finish what it started instead, with its messages going nowhere.
fn finish_even_if_the_terminal_goes() {
    // SAFETY: setting a signal's disposition to "ignore" runs no code in the handler context.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    // The host's own choice: plugin code that resets it gets it put back.
    ao_core::plugins::process_state::adopt(libc::SIGHUP);
}

/// On the first SIGINT or SIGTERM, says `doing` and runs `first` (a spawn stops and undoes
/// itself; a kill, send or gc finishes the step it is in); on the second, ends the process at
/// once, saying what that may leave. Without it, an interrupt between two steps of a kill leaves
/// a half-killed session and no word about it.
pub(super) fn on_interrupt(
    doing: &'static str,
    first: impl FnOnce() + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    // Registered here, before the command goes on, so that a signal that comes before the
    // watcher's first poll is not missed; and adopted as the host's own, so that plugin code
    // that ignores or resets them gets them put back when it returns.
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    for number in [libc::SIGINT, libc::SIGTERM] {
        ao_core::plugins::process_state::adopt(number);
    }
    tokio::spawn(async move {
        let mut interrupted = async || {
            tokio::select! {
                _ = next_signal(interrupt.as_mut()) => {}
                _ = next_signal(terminate.as_mut()) => {}
            }
        };
        interrupted().await;
        first();
        errln!("\nao-host: {doing} (interrupt again to quit at once)");
        interrupted().await;
        errln!("ao-host: quit half-way; `ao-host session ls` and `ao-host gc` show and reconcile what is left");
        output::exit(ExitCode::from(130));
    })
}

/// The next delivery of a signal `stream` listens for; never, without one.
async fn next_signal(stream: Option<&mut Signal>) {
    match stream {
        Some(stream) => {
            stream.recv().await;
        }
        None => std::future::pending().await,
    }
}

async fn run_async(lifecycle: &Lifecycle, command: Command) -> Result<ExitCode> {
    let finishing = match &command {
        Command::Send(_)
        | Command::Gc { .. }
        | Command::Session(session::SessionCommand::Kill { .. }) => Some(on_interrupt(
            "finishing what this command started first",
            || {},
        )),
        _ => None,
    };
    let outcome = run_command(lifecycle, command).await;
    if let Some(watcher) = finishing {
        watcher.abort();
    }
    outcome
}

async fn run_command(lifecycle: &Lifecycle, command: Command) -> Result<ExitCode> {
    match command {
        Command::Spawn(args) => session::spawn(lifecycle, args).await,
        Command::Orchestrator(args) => session::orchestrator(lifecycle, args).await,
        Command::Session(command) => session::run(lifecycle, command).await,
        Command::Send(args) => session::send(lifecycle, args).await,
        Command::Attach { id } => session::attach(lifecycle, &id).await,
        Command::Usage(args) => usage::run(lifecycle, args).await,
        Command::Doctor { json } => doctor::run(lifecycle, json).await,
        Command::Gc {
            dry_run,
            force,
            skip_plugins,
            json,
        } => gc::run(lifecycle, dry_run, force, &skip_plugins, json).await,
        Command::Dashboard(_) | Command::Watch(_) => {
            unreachable!("run with a shared lifecycle")
        }
        Command::Plugins(_)
        | Command::Completions(_)
        | Command::Hook(_)
        | Command::Transport(_) => {
            unreachable!("handled without a reactor")
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every option and argument a person can see says what it does (`--help`).
    #[test]
    fn every_visible_argument_has_help() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
                if arg.get_help().is_none() && !["help", "version"].contains(&arg.get_id().as_str())
                {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        check(&Args::command(), "ao-host", &mut missing);
        assert!(missing.is_empty(), "no help: {missing:?}");
    }

    #[test]
    fn no_prompt_is_refused_with_a_task() {
        for task in [["--task", "X"], ["--task-file", "t.md"]] {
            let mut argv = vec!["ao-host", "spawn", "--no-prompt"];
            argv.extend(task);
            let error = Args::try_parse_from(&argv).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{argv:?}"
            );
        }
        Args::try_parse_from(["ao-host", "spawn", "--no-prompt"]).unwrap();
    }
}
