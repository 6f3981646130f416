//! The spawn routine: worker sessions and orchestrator sessions, through plugins only.
//!
//! One routine serves both roles; they differ in id, branch, prompt, `AO_CALLER_TYPE` and first
//! message. Order of work, and what a failure undoes:
//!
//! 1. reserve the id: take the session's lock, then create the record (`spawning`) exclusively;
//! 2. create the workspace;
//! 3. start the agent in the runtime, with the agent's argv, and this process's environment
//!    (see `environment`) with the agent's variables and `AO_*` over it; an agent that can takes
//!    its first message in that argv, never through a terminal's input box;
//! 4. wait until the agent is ready (polling its screen, answering start-up dialogs; no fixed
//!    sleep) — or, for a message given at launch, until the agent reports taking it, compared
//!    byte-exact with what was sent;
//! 5. otherwise deliver the first message by typing it, and confirm it was submitted;
//! 6. record the session as `working` and release the lock.
//!
//! The lock is held throughout, so `gc` never mistakes a spawn in progress for an interrupted one,
//! and a `session kill` arriving meanwhile asks the spawn to stop (checked between steps and while
//! waiting for the agent) instead of racing it.
//!
//! A failure after step 1 destroys what steps 2–3 made (the branch too: nothing was done on it
//! yet) and archives the record as `errored` with the reason, so the id (and branch name) is
//! never handed out again. If that undo is not total — a plugin call that timed out may still
//! finish later, a destroy may fail — the note says what is left, and `gc` finishes the job.

use std::{sync::atomic::Ordering, time::Duration};

use ao_plugin_api::{
    sandbox::ConfinedLaunchRequest, AgentSession, EnvVar, LaunchRequest, PluginErrorKind,
    RuntimeCreateRequest, WorkspaceCreateConfig,
};

use super::{
    confine::{ConfineError, ConfineInputs},
    deliver::{deliver, wait_until_ready, Confirmed, DeliverError, WaitFor, REPORT_GRACE},
    prompt::{orchestrator_prompt, worker_prompt, PromptFacts},
    request::SpawnRequest,
    Lifecycle, LifecycleError,
};
use crate::{
    plugins::{AgentPlugin, PluginCallError, PluginSet},
    session::{now_ms, Session, SessionRole, SessionStatus, StoreError},
    timing::PhaseClock,
};

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Setup(#[from] LifecycleError),
    /// Not marked `#[source]`: the message already carries the step's error, and error-chain
    /// printers would repeat it.
    #[error("spawning {id}: {step} ({undo})")]
    Failed {
        id: String,
        step: Box<SpawnStepError>,
        /// What happened to what the spawn had made.
        undo: String,
    },
}

/// Why a step of a spawn failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnStepError {
    #[error(transparent)]
    Plugin(#[from] PluginCallError),
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session's host did not give its login environment.
    #[error(transparent)]
    Host(#[from] crate::remote::HostError),
    /// Boxed: it carries a plugin's error and the step.
    #[error(transparent)]
    Confine(Box<ConfineError>),
    #[error("stopped by `ao-host session kill` or an interrupt")]
    Cancelled,
    /// The agent's program was not there to start (the exit status 127 of a command not found).
    #[error("the {agent} agent's program was not found when its session started: {fix}")]
    NotInstalled { agent: String, fix: String },
}

/// Whether an agent that exited at once left the signs of a program that is not there: the
/// exit status 127 (tmux's "Pane is dead (status 127, …)"), or what the launch script's shell
/// (`ao-launch`, see `ao_plugin_kit::launch`) says of it. A raw screen is no help; doctor's
/// install hint is.
fn program_not_found(output: &str) -> bool {
    let shell_says = output.contains("ao-launch: ")
        && (output.contains(": command not found")
            || output.contains(": No such file or directory"));
    shell_says || output.contains("(status 127")
}

/// What the agent plugin's own checks say to fix (its install hint), else where to look.
async fn install_hint(agent: &AgentPlugin) -> String {
    let failed: Vec<String> = agent
        .doctor()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|check| !check.ok)
        .map(|check| format!("{}: {}", check.what, check.detail))
        .collect();
    if failed.is_empty() {
        "check the agent's `command` setting; `ao-host doctor` checks every program".into()
    } else {
        failed.join("; ")
    }
}

impl From<ConfineError> for SpawnStepError {
    fn from(error: ConfineError) -> Self {
        Self::Confine(Box::new(error))
    }
}

impl SpawnStepError {
    /// A plugin call that timed out may still be working on its thread and make something after
    /// the undo ran.
    fn may_finish_later(&self) -> bool {
        matches!(self, Self::Plugin(PluginCallError::Timeout { .. }))
    }
}

/// The note of a session whose agent showed its task taken but reported no event, with `why`
/// (the agent plugin's guess, or the hook's own error; may be empty).
fn silent_events_note(why: &str) -> String {
    let what = format!(
        "its agent reported no event within {} s of showing its task taken, so the task was \
         confirmed on its screen and its status is read from its screen",
        REPORT_GRACE.as_secs()
    );
    if why.is_empty() {
        what
    } else {
        format!("{what}. {why}")
    }
}

/// Where a session's work starts: the repository (its clone on the session's host) and the
/// branch its own branch starts from.
struct Origin<'a> {
    default_branch: &'a str,
    repo: &'a str,
}

/// How to start an agent ([`Lifecycle::start_agent`]).
pub(super) struct AgentStart<'a> {
    pub workspace_path: &'a str,
    pub agent_config: &'a str,
    /// What ao-host tells the agent about its role; `None` keeps what it was told at spawn.
    pub system_prompt: Option<String>,
    pub first_message: Option<String>,
    /// The conversation to resume.
    pub resume: Option<String>,
}

/// An agent started in its runtime, and what its plugin said about it.
pub(super) struct StartedAgent {
    pub handle: String,
    pub conversation_id: Option<String>,
    pub reports_events: bool,
    pub takes_first_message: bool,
}

/// The phases a spawn reports to its caller (a spinner, a log).
pub const PHASES: [&str; 4] = [
    "creating the workspace",
    "starting the agent",
    "waiting for the agent",
    "sending the task",
];

impl Lifecycle {
    /// The `AO_*` variables every session gets.
    pub(super) fn ao_environment(&self, session: &Session) -> Vec<EnvVar> {
        let mut vars = vec![
            EnvVar::new("AO_CALLER_TYPE", session.role.caller_type()),
            EnvVar::new("AO_SESSION", session.id.clone()),
            EnvVar::new("AO_SESSION_NAME", session.id.clone()),
            EnvVar::new("AO_DATA_DIR", self.store.data_dir().display().to_string()),
            EnvVar::new("AO_PROJECT_ID", session.project_id.clone()),
        ];
        // Always set, empty without a file: over the spawner's own, and over the tmux
        // server's for a runtime built before `start`, which may hold another caller's.
        let config = self.config.path.as_ref().map(|p| p.display().to_string());
        vars.push(EnvVar::new("AO_CONFIG_PATH", config.unwrap_or_default()));
        vars.push(EnvVar::new("AO_PLUGIN_PATH", self.plugin_path.clone()));
        vars.push(EnvVar::new("AO_PORT", self.config.port.to_string()));
        vars
    }

    /// Removes what was kept for a session that is over (killed, collected, or its spawn
    /// undone): the agent plugin's files, and what the watcher stored and decided about its
    /// pull request. It is never launched again. A failure only
    /// costs disk space: logged.
    pub(super) async fn forget_session_files(&self, session: &Session, plugins: &PluginSet) {
        if let Err(e) = plugins.agent.forget(&session.id).await {
            tracing::warn!(id = %session.id, "removing the agent's files of the session: {e}");
        }
        self.usage_dir().remove(&session.project_id, &session.id);
        let watch = self.watch_dir();
        for removed in [
            watch.remove_session(&session.project_id, &session.id),
            watch.remove_ledger(&session.project_id, &session.id),
        ] {
            if let Err(e) = removed {
                tracing::warn!(id = %session.id, "removing what the watcher stored of the session: {e}");
            }
        }
    }

    /// Spawns one session. See the module docs for the steps and what a failure undoes;
    /// `progress` hears each phase as it starts.
    pub async fn spawn(
        &self,
        request: SpawnRequest,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Session, SpawnError> {
        let project = &request.project;
        // Another host is asked first, and its plugins built: a host that does not answer, or a
        // plugin that cannot work there, costs nothing anywhere.
        let placement = match &request.host {
            Some(choice) => Some(self.place(project, choice).await?),
            None => None,
        };
        let host = placement.as_ref().map(|p| p.host.as_str());
        let repo_path = match &placement {
            Some(placement) => placement.repo.clone(),
            None => project.repo.display().to_string(),
        };
        let plugins = self.plugin_set_on(&project.plugins, host).await?;
        let template = Session {
            id: String::new(),
            project_id: project.id.clone(),
            role: request.role,
            status: SessionStatus::Spawning,
            agent: plugins.agent.name().to_string(),
            runtime: plugins.runtime.name().to_string(),
            workspace: plugins.workspace.name().to_string(),
            branch: String::new(),
            workspace_path: None,
            runtime_handle: None,
            task: request.task.clone(),
            created_at: now_ms(),
            host: host.map(str::to_string),
            activity_at: None,
            waiting_for: None,
            conversation_id: None,
            reports_events: false,
            status_from_screen: false,
            usage: None,
            unreachable_since: None,
            sandbox: request.sandbox.clone(),
            note: None,
        };
        let mut clock = PhaseClock::start();
        let (mut session, lock) =
            self.store
                .reserve(&project.session_prefix, request.role, template)?;
        tracing::info!(id = %session.id, "reserved");
        clock.lap("reserve");

        let locks = self.store.locks();
        let cancelled = || {
            request.stop.load(Ordering::Relaxed) || locks.cancel_requested(&project.id, lock.id())
        };
        let result = self
            .run_steps(
                &request,
                Origin {
                    default_branch: &request.default_branch,
                    repo: &repo_path,
                },
                &mut session,
                &plugins,
                &cancelled,
                progress,
            )
            .await;
        let outcome = match result {
            Ok(()) => Ok(session),
            Err(error) => {
                let undo = self.undo(&session, &plugins, &error).await;
                Err(SpawnError::Failed {
                    id: session.id.clone(),
                    step: Box::new(error),
                    undo,
                })
            }
        };
        self.store.locks().clear_cancel(&project.id, lock.id());
        // A spawn undone is over (archived): its lock file goes with it.
        match outcome {
            Ok(_) => drop(lock),
            Err(_) => lock.remove(),
        }
        outcome
    }

    async fn run_steps(
        &self,
        request: &SpawnRequest,
        origin: Origin<'_>,
        session: &mut Session,
        plugins: &PluginSet,
        cancelled: &(dyn Fn() -> bool + Sync),
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<(), SpawnStepError> {
        let project = &request.project;
        let Origin {
            default_branch,
            repo: repo_path,
        } = origin;
        let mut clock = PhaseClock::start();
        let check = || {
            if cancelled() {
                Err(SpawnStepError::Cancelled)
            } else {
                Ok(())
            }
        };
        let facts = PromptFacts {
            project,
            default_branch,
            port: self.config.port,
        };
        let system_prompt = match request.role {
            SessionRole::Worker => worker_prompt(&facts, &session.id, &session.branch),
            SessionRole::Orchestrator => {
                let others: Vec<Session> = self
                    .store
                    .list(Some(&project.id), false)
                    .sessions
                    .into_iter()
                    .filter(|s| s.id != session.id)
                    .collect();
                orchestrator_prompt(&facts, &session.id, &others)
            }
        };
        let first_message = match request.role {
            _ if request.no_prompt => None,
            SessionRole::Worker => request.task.clone(),
            SessionRole::Orchestrator => Some(system_prompt.clone()),
        };

        check()?;
        progress(PHASES[0]);
        let workspace_timeout = Duration::from_millis(self.config.workspace_timeout_ms);
        let workspace_path = plugins
            .workspace
            .create_within(
                WorkspaceCreateConfig {
                    project_id: project.id.as_str().into(),
                    session_id: session.id.as_str().into(),
                    branch: session.branch.as_str().into(),
                    repo_path: repo_path.into(),
                    default_branch: default_branch.into(),
                    symlinks: project.symlinks.iter().map(|s| s.as_str().into()).collect(),
                    post_create: project
                        .post_create
                        .iter()
                        .map(|s| s.as_str().into())
                        .collect(),
                    reuse_branch: false,
                },
                workspace_timeout,
            )
            .await?;
        session.workspace_path = Some(workspace_path.clone());
        self.store.save(session)?;
        tracing::info!(id = %session.id, path = %workspace_path, "workspace created");
        clock.lap("workspace");

        check()?;
        progress(PHASES[1]);
        let started = self
            .start_agent::<SpawnStepError>(
                session,
                plugins,
                AgentStart {
                    workspace_path: &workspace_path,
                    agent_config: &project.agent_config,
                    system_prompt: Some(system_prompt),
                    first_message: first_message.clone(),
                    resume: None,
                },
            )
            .await?;
        let handle = started.handle;
        session.conversation_id = started.conversation_id;
        session.reports_events = started.reports_events;
        let inline = first_message.is_some() && started.takes_first_message;
        session.runtime_handle = Some(handle.clone());
        self.store.save(session)?;
        tracing::info!(id = %session.id, handle = %handle, "runtime started");
        clock.lap("runtime");

        progress(PHASES[2]);
        let ready_timeout = Duration::from_millis(self.config.ready_timeout_ms);
        let taken = || {
            self.agent_states
                .last_prompt(&project.id, &session.id)
                .ok()
                .flatten()
                .map(|(_, prompt)| prompt)
        };
        let until = match &first_message {
            Some(sent) if inline && session.reports_events => WaitFor::FirstMessage {
                sent,
                taken: &taken,
            },
            _ => WaitFor::Ready,
        };
        let hook_failure = || self.agent_states.hook_failure(&project.id, &session.id);
        let confirmed = match wait_until_ready(
            &plugins.runtime,
            &plugins.agent,
            &handle,
            until,
            ready_timeout,
            cancelled,
        )
        .await
        {
            Ok(confirmed) => confirmed,
            Err(DeliverError::Cancelled) => return Err(SpawnStepError::Cancelled),
            Err(DeliverError::Exited { output }) if program_not_found(&output) => {
                return Err(SpawnStepError::NotInstalled {
                    agent: plugins.agent.name().to_string(),
                    fix: self
                        .config
                        .name_file_in(&install_hint(&plugins.agent).await),
                })
            }
            // The hook's own error is the real cause, not the wait it left unanswered.
            Err(DeliverError::NotTaken { output, waited }) => {
                return Err(match hook_failure() {
                    Some(error) => DeliverError::HookFailed { error, output },
                    None => DeliverError::NotTaken { output, waited },
                }
                .into())
            }
            Err(other) => return Err(other.into()),
        };
        if confirmed == Confirmed::OnScreen {
            let why = match hook_failure() {
                Some(error) => format!("its hook failed: {error}"),
                None => plugins
                    .agent
                    .silent_events_hint()
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(id = %session.id, "asking why no event came: {e}");
                        String::new()
                    }),
            };
            let note = silent_events_note(&why);
            // Said once, by the command that asked for the spawn (and kept in the record).
            tracing::info!(id = %session.id, "{note}");
            session.status_from_screen = true;
            session.note = Some(note);
        }
        clock.lap("ready-wait");
        check()?;
        match first_message {
            Some(_) if inline => tracing::info!(id = %session.id, "first message taken at launch"),
            Some(message) => {
                progress(PHASES[3]);
                deliver(&plugins.runtime, &plugins.agent, &handle, &message).await?;
                tracing::info!(id = %session.id, "first message delivered");
            }
            None => {}
        }
        session.status = SessionStatus::Working;
        session.activity_at = Some(now_ms());
        self.store.save(session)?;
        clock.lap("send");
        Ok(())
    }

    /// Starts the session's agent in its runtime (a spawn, or a restore with `resume`): the agent
    /// plugin's plan, its environment plus `AO_*`, a fresh state for its events.
    pub(super) async fn start_agent<E>(
        &self,
        session: &Session,
        plugins: &PluginSet,
        start: AgentStart<'_>,
    ) -> Result<StartedAgent, E>
    where
        E: From<PluginCallError>
            + From<StoreError>
            + From<crate::remote::HostError>
            + From<ConfineError>,
    {
        let agent_session = AgentSession {
            session_id: session.id.as_str().into(),
            project_id: session.project_id.as_str().into(),
            branch: session.branch.as_str().into(),
            workspace_path: start.workspace_path.into(),
            system_prompt: start.system_prompt.map(Into::into).into(),
            agent_config: start.agent_config.into(),
        };
        let launch = LaunchRequest {
            session: agent_session.clone(),
            first_message: start.first_message.map(Into::into).into(),
            event_command: self
                .event_command(session)
                .into_iter()
                .map(Into::into)
                .collect(),
            resume: start.resume.map(Into::into).into(),
            allowed_commands: match (session.role, &self.event_program, &session.host) {
                (SessionRole::Orchestrator, Some(_), None) => vec!["ao-host".into()].into(),
                _ => Default::default(),
            },
        };
        let confined_launch = match &session.sandbox {
            Some(_) => {
                let unattended = self.sandbox_config_of(&session.project_id).0.unattended;
                Some(
                    plugins
                        .agent
                        .launch_confined(&ConfinedLaunchRequest {
                            launch: launch.clone(),
                            unattended,
                        })
                        .await
                        .map_err(ConfineError::step(format!(
                            "the {} agent plugin's confined launch",
                            plugins.agent.name()
                        )))?,
                )
            }
            None => None,
        };
        let plan = match &confined_launch {
            Some(confined) => confined.plan.clone(),
            None => plugins.agent.launch(&launch).await?,
        };
        let mut environment = plugins.agent.environment(&agent_session).await?;
        environment.extend(self.ao_environment(session));
        if let Some(confined) = &confined_launch {
            environment.extend(confined.env.iter().cloned());
        }
        if let Some(program) = self
            .event_program
            .as_ref()
            .filter(|_| session.host.is_none())
        {
            // The session can run the `ao-host` that started it, by name (its prompt says
            // `ao-host spawn …`) or by `$AO_HOST_BIN`, installed or not.
            let inherited = environment
                .iter()
                .rev()
                .find(|var| var.name.as_str() == "PATH")
                .map(|var| var.value.to_string())
                .or_else(|| std::env::var("PATH").ok())
                .unwrap_or_default();
            environment.retain(|var| var.name.as_str() != "PATH");
            if let Some(dir) = program.parent().map(|d| d.display().to_string()) {
                // Not again for a session spawned from inside one.
                let path = if inherited.split(':').next() == Some(dir.as_str()) {
                    inherited
                } else {
                    format!("{dir}:{inherited}")
                };
                environment.push(EnvVar::new("PATH", path));
            }
            environment.push(EnvVar::new("AO_HOST_BIN", program.display().to_string()));
        }
        self.agent_states.reset(
            &session.project_id,
            &session.id,
            self.event_program.as_deref(),
        )?;
        self.keep_budget_snapshot(session);
        let whole = self
            .agent_environment(session.host.as_deref(), &environment)
            .await?;
        let handle = match (&session.sandbox, &confined_launch) {
            (Some(sandbox), Some(launch)) => {
                let confined = self
                    .confine(ConfineInputs {
                        session,
                        sandbox,
                        plugins,
                        workspace_path: start.workspace_path,
                        launch,
                        set: &environment,
                        whole,
                    })
                    .await?;
                let request = RuntimeCreateRequest {
                    session_id: session.id.as_str().into(),
                    cwd: start.workspace_path.into(),
                    launch_command: confined.argv.into(),
                    env: confined.env.into(),
                };
                // Never the runtime's own environment: it would carry what the allow-list
                // keeps out.
                match plugins.runtime.start_exactly(request).await {
                    Err(e) if e.kind() == PluginErrorKind::Unsupported => {
                        return Err(ConfineError::ExactEnvironment {
                            runtime: plugins.runtime.name().to_string(),
                        }
                        .into())
                    }
                    other => other?,
                }
            }
            _ => {
                plugins
                    .runtime
                    .start(
                        RuntimeCreateRequest {
                            session_id: session.id.as_str().into(),
                            cwd: start.workspace_path.into(),
                            launch_command: plan.argv,
                            env: whole.into(),
                        },
                        environment,
                    )
                    .await?
            }
        };
        Ok(StartedAgent {
            handle,
            conversation_id: plan.conversation_id.into_option().map(Into::into),
            reports_events: plan.reports_events,
            takes_first_message: plan.takes_first_message,
        })
    }

    /// Undoes a failed spawn, best effort, and says what became of it. Secondary errors are
    /// logged and summed up, never returned: the operator must see what actually went wrong.
    ///
    /// The record is archived as `errored` with the reason, never deleted: an id is handed out
    /// once, so nothing that still refers to this attempt (a `session kill` waiting for it, a
    /// `gc` that listed its runtime session, a branch left behind) can ever meet a later session
    /// under the same id.
    async fn undo(&self, session: &Session, plugins: &PluginSet, error: &SpawnStepError) -> String {
        let mut leftovers = Vec::new();
        // Forgotten first, so the agent's last hooks change and notify nothing.
        self.agent_states.remove(&session.project_id, &session.id);
        self.forget_budget(session);
        if let Some(handle) = &session.runtime_handle {
            if let Err(e) = plugins.runtime.destroy(handle).await {
                tracing::warn!(id = %session.id, "cleanup: {e}");
                leftovers.push(format!("runtime session {handle}"));
            }
        }
        if let Some(path) = &session.workspace_path {
            if let Err(e) = plugins.workspace.destroy(path, true).await {
                tracing::warn!(id = %session.id, "cleanup: {e}");
                leftovers.push(format!("workspace {path}"));
            }
        }
        self.forget_session_files(session, plugins).await;
        if error.may_finish_later() {
            leftovers.push("whatever the timed-out call still makes".into());
        }
        let (note, summary) = if leftovers.is_empty() {
            (
                format!("spawn failed: {error}"),
                "its workspace and runtime were removed".to_string(),
            )
        } else {
            let left = format!(
                "could not remove {}; `ao-host gc` removes it",
                leftovers.join(", ")
            );
            (format!("spawn failed: {error}; {left}"), left)
        };
        if let Err(e) = self
            .store
            .archive(session, SessionStatus::Errored, Some(note))
        {
            tracing::warn!(id = %session.id, "cleanup: {e}");
        }
        format!("{summary}; the record is archived as errored")
    }
}
