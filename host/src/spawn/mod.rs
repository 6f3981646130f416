//! The spawn routines: worker sessions and orchestrator sessions, through plugins only.
//!
//! One routine serves both roles; they differ in id, branch, prompt, `AO_CALLER_TYPE` and first
//! message. Order of work, and what a failure undoes:
//!
//! 1. reserve the id (the record, status `spawning`, created exclusively);
//! 2. create the workspace;
//! 3. start the agent in the runtime, with the agent's argv and environment plus `AO_*`;
//! 4. wait until the agent is ready (polling its screen; no fixed sleep);
//! 5. deliver the first message and confirm it was submitted;
//! 6. record the session as `working`.
//!
//! A failure after step 1 destroys what steps 2–3 made (the branch too: nothing was done on
//! it yet), deletes the record, and returns the original error.

mod deliver;
pub mod prompt;

use std::{path::PathBuf, time::Duration};

use ao_plugin_api::{
    abi_stable::std_types::ROption, AgentSession, EnvVar, RuntimeCreateRequest,
    WorkspaceCreateConfig,
};

pub use self::deliver::{deliver, screen_tail, wait_until_ready, DeliverError, SCREEN_LINES};
use self::prompt::{orchestrator_prompt, worker_prompt, PromptFacts};
use crate::{
    config::ProjectConfig,
    plugins::{PluginCallError, PluginSet},
    session::{now_ms, Session, SessionRole, SessionStatus, SessionStore, StoreError},
    timing::PhaseClock,
};

/// A task larger than this belongs in a file in the repository, with a task pointing to it.
pub const MAX_TASK_BYTES: usize = 1024 * 1024;

/// What to spawn.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    pub project: ProjectConfig,
    pub role: SessionRole,
    /// The worker's task, delivered byte-exact as its first message.
    pub task: Option<String>,
    /// Skip the first message (the task, or the orchestrator prompt).
    pub no_prompt: bool,
}

/// Host-wide facts a spawn needs.
#[derive(Debug, Clone)]
pub struct SpawnEnvironment {
    /// `AO_CONFIG_PATH`, when a config file was loaded.
    pub config_path: Option<PathBuf>,
    /// `AO_PORT`, also rendered into the orchestrator prompt.
    pub port: u16,
    pub ready_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{0}")]
    InvalidTask(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Not marked `#[source]`: the message already carries the step's error, and error-chain
    /// printers would repeat it.
    #[error("spawning {id}: {step} (the session's workspace, runtime and record were removed)")]
    Failed {
        id: String,
        step: Box<SpawnStepError>,
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
}

/// Refuses tasks that cannot be delivered as one message.
pub fn validate_task(task: &str) -> Result<(), SpawnError> {
    if task.trim().is_empty() {
        return Err(SpawnError::InvalidTask(
            "the task is empty; say what the agent should do with --task or --task-file".into(),
        ));
    }
    if task.len() > MAX_TASK_BYTES {
        return Err(SpawnError::InvalidTask(format!(
            "the task is {} bytes, more than the {MAX_TASK_BYTES} a message may have; put the details in a file in the repository and point the task at it",
            task.len()
        )));
    }
    if task.contains('\0') {
        return Err(SpawnError::InvalidTask(
            "the task contains a NUL byte".into(),
        ));
    }
    Ok(())
}

/// The `AO_*` variables every session gets.
fn ao_environment(session: &Session, store: &SessionStore, env: &SpawnEnvironment) -> Vec<EnvVar> {
    let mut vars = vec![
        EnvVar::new("AO_CALLER_TYPE", session.role.caller_type()),
        EnvVar::new("AO_SESSION", session.id.clone()),
        EnvVar::new("AO_SESSION_NAME", session.id.clone()),
        EnvVar::new("AO_DATA_DIR", store.data_dir().display().to_string()),
        EnvVar::new("AO_PROJECT_ID", session.project_id.clone()),
    ];
    if let Some(path) = &env.config_path {
        vars.push(EnvVar::new("AO_CONFIG_PATH", path.display().to_string()));
    }
    vars.push(EnvVar::new("AO_PORT", env.port.to_string()));
    vars
}

/// Spawns one session. See the module docs for the steps and what a failure undoes.
pub async fn spawn_session(
    request: SpawnRequest,
    plugins: &PluginSet,
    store: &SessionStore,
    env: &SpawnEnvironment,
) -> Result<Session, SpawnError> {
    if let Some(task) = &request.task {
        validate_task(task)?;
    }
    let project = &request.project;
    let default_branch = project
        .default_branch
        .clone()
        .unwrap_or_else(|| "main".into());
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
        spawned_by_pid: Some(std::process::id()),
        note: None,
    };
    let mut clock = PhaseClock::start();
    let mut session = store.reserve(&project.session_prefix, request.role, template)?;
    tracing::info!(id = %session.id, "reserved");
    clock.lap("reserve");

    let result = run_steps(
        &request,
        &default_branch,
        &mut session,
        plugins,
        store,
        env,
        &mut clock,
    )
    .await;
    match result {
        Ok(()) => Ok(session),
        Err(error) => {
            undo(&session, plugins, store).await;
            Err(SpawnError::Failed {
                id: session.id.clone(),
                step: Box::new(error),
            })
        }
    }
}

async fn run_steps(
    request: &SpawnRequest,
    default_branch: &str,
    session: &mut Session,
    plugins: &PluginSet,
    store: &SessionStore,
    env: &SpawnEnvironment,
    clock: &mut PhaseClock,
) -> Result<(), SpawnStepError> {
    let project = &request.project;
    let facts = PromptFacts {
        project,
        default_branch,
        port: env.port,
    };
    let system_prompt = match request.role {
        SessionRole::Worker => worker_prompt(&facts, &session.id, &session.branch),
        SessionRole::Orchestrator => orchestrator_prompt(&facts, &session.id),
    };
    let first_message = match request.role {
        _ if request.no_prompt => None,
        SessionRole::Worker => request.task.clone(),
        SessionRole::Orchestrator => Some(system_prompt.clone()),
    };

    let workspace_path = plugins
        .workspace
        .create(WorkspaceCreateConfig {
            project_id: project.id.as_str().into(),
            session_id: session.id.as_str().into(),
            branch: session.branch.as_str().into(),
            repo_path: project.repo.display().to_string().into(),
            default_branch: default_branch.into(),
            symlinks: project.symlinks.iter().map(|s| s.as_str().into()).collect(),
            post_create: project
                .post_create
                .iter()
                .map(|s| s.as_str().into())
                .collect(),
            reuse_branch: false,
        })
        .await?;
    session.workspace_path = Some(workspace_path.clone());
    store.save(session)?;
    tracing::info!(id = %session.id, path = %workspace_path, "workspace created");
    clock.lap("workspace");

    let agent_session = AgentSession {
        session_id: session.id.as_str().into(),
        project_id: project.id.as_str().into(),
        branch: session.branch.as_str().into(),
        workspace_path: workspace_path.as_str().into(),
        system_prompt: ROption::RSome(system_prompt.into()),
        agent_config: project.agent_config.as_str().into(),
    };
    let launch_command = plugins.agent.launch_command(&agent_session).await?;
    let mut environment = plugins.agent.environment(&agent_session).await?;
    environment.extend(ao_environment(session, store, env));
    let handle = plugins
        .runtime
        .create(RuntimeCreateRequest {
            session_id: session.id.as_str().into(),
            cwd: workspace_path.as_str().into(),
            launch_command: launch_command.into_iter().map(Into::into).collect(),
            env: environment.into(),
        })
        .await?;
    session.runtime_handle = Some(handle.clone());
    session.status = SessionStatus::Working;
    store.save(session)?;
    tracing::info!(id = %session.id, handle = %handle, "runtime started");
    clock.lap("runtime");

    wait_until_ready(&plugins.runtime, &plugins.agent, &handle, env.ready_timeout).await?;
    clock.lap("ready-wait");
    if let Some(message) = first_message {
        deliver(&plugins.runtime, &plugins.agent, &handle, &message).await?;
        tracing::info!(id = %session.id, "first message delivered");
    }
    session.spawned_by_pid = None;
    store.save(session)?;
    clock.lap("send");
    Ok(())
}

/// Best-effort cleanup of a failed spawn: secondary errors are logged, never returned, so the
/// operator sees what actually went wrong.
async fn undo(session: &Session, plugins: &PluginSet, store: &SessionStore) {
    if let Some(handle) = &session.runtime_handle {
        if let Err(e) = plugins.runtime.destroy(handle).await {
            tracing::warn!(id = %session.id, "cleanup: {e}");
        }
    }
    if let Some(path) = &session.workspace_path {
        if let Err(e) = plugins.workspace.destroy(path, true).await {
            tracing::warn!(id = %session.id, "cleanup: {e}");
        }
    }
    if let Err(e) = store.delete(&session.project_id, &session.id) {
        tracing::warn!(id = %session.id, "cleanup: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_huge_and_nul_tasks_are_refused() {
        assert!(validate_task("  \n")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let huge = "x".repeat(MAX_TASK_BYTES + 1);
        assert!(validate_task(&huge)
            .unwrap_err()
            .to_string()
            .contains("more than"));
        assert!(validate_task("a\0b")
            .unwrap_err()
            .to_string()
            .contains("NUL"));
        validate_task("fix the flaky test\nin `ci.yml`").unwrap();
    }
}
