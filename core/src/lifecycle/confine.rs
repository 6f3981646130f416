//! Starting a session's agent confined: the step of [`Lifecycle::start_agent`] (spawn and
//! restore alike) that asks the workspace plugin what a commit on the session's branch needs,
//! builds the policy (`crate::sandbox`), narrows the environment to its allow-list and has the
//! session's sandbox plugin wrap the agent's argv. A failure here is a failure of the start:
//! the spawn undoes its workspace and runtime as for any other step.

use ao_plugin_api::{
    sandbox::{ConfinedLaunchPlan, SandboxRequest, WorkspaceConfinementQuery},
    EnvVar,
};

use super::{Lifecycle, LifecycleError};
use crate::{
    config::SandboxConfig,
    plugins::{PluginCallError, PluginSet},
    remote::HostError,
    sandbox::{build_policy, confined_environment, DataDirAccess, PolicyError, PolicyInputs},
    session::{Session, SessionSandbox},
};

/// Why a confined agent could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// A plugin's part failed; `step` says which (the sandbox plugin's message names its fix,
    /// such as installing bubblewrap).
    #[error("confining the agent: {step}: {error}")]
    Step {
        step: String,
        #[source]
        error: PluginCallError,
    },
    #[error("confining the agent: {0}")]
    Policy(#[from] PolicyError),
    #[error("confining the agent: {0}")]
    Choice(Box<LifecycleError>),
    #[error("confining the agent: {0}")]
    Host(#[from] HostError),
    #[error("confining the agent: $HOME is not set, so the secrets under it cannot be hidden; run ao-host with HOME set")]
    NoHome,
    /// A runtime that cannot start a program with exactly the environment it is given would
    /// hand the agent its own (a tmux server's), secrets included.
    #[error("confining the agent: the {runtime} runtime cannot start an agent with exactly the environment it is given, so the sandbox's allow-list would not hold; use a runtime that can (tmux), or spawn without a sandbox")]
    ExactEnvironment { runtime: String },
}

impl ConfineError {
    pub(super) fn step(step: impl Into<String>) -> impl FnOnce(PluginCallError) -> Self {
        let step = step.into();
        move |error| Self::Step { step, error }
    }
}

/// The agent's argv and environment, ready for the runtime.
pub(super) struct Confined {
    pub argv: Vec<ao_plugin_api::abi_stable::std_types::RString>,
    pub env: Vec<EnvVar>,
}

/// What the confinement step needs of the start.
pub(super) struct ConfineInputs<'a> {
    pub session: &'a Session,
    pub sandbox: &'a SessionSandbox,
    pub plugins: &'a PluginSet,
    pub workspace_path: &'a str,
    pub launch: &'a ConfinedLaunchPlan,
    /// What the host and plugins set for the agent (kept whole).
    pub set: &'a [EnvVar],
    /// The environment an unconfined agent would get.
    pub whole: Vec<EnvVar>,
}

impl Lifecycle {
    /// The sandbox settings of `project_id`'s sessions: its own, else `defaults.sandbox`.
    pub(super) fn sandbox_config_of(&self, project_id: &str) -> (SandboxConfig, String) {
        match self.config.projects.get(project_id) {
            Some(project) => (
                project.sandbox.clone(),
                format!("projects.{project_id}.sandbox"),
            ),
            None => (self.config.sandbox.clone(), "defaults.sandbox".into()),
        }
    }

    /// The confined argv and environment of a session (see the module docs).
    pub(super) async fn confine(
        &self,
        inputs: ConfineInputs<'_>,
    ) -> Result<Confined, ConfineError> {
        let ConfineInputs {
            session,
            sandbox,
            plugins,
            workspace_path,
            launch,
            set,
            whole,
        } = inputs;
        let (config, setting) = self.sandbox_config_of(&session.project_id);
        let host = session.host.as_deref();
        let plugin = self
            .sandbox(&sandbox.plugin, host, &format!("{setting}.plugin"))
            .await
            .map_err(|e| ConfineError::Choice(Box::new(e)))?;
        let workspace = plugins
            .workspace
            .confinement(&WorkspaceConfinementQuery {
                path: workspace_path.into(),
                branch: session.branch.as_str().into(),
            })
            .await
            .map_err(ConfineError::step(format!(
                "the {} workspace plugin's rules",
                plugins.workspace.name()
            )))?;
        let home = match host {
            Some(name) => self.reached(name).await?.home,
            None => std::env::var("HOME")
                .ok()
                .filter(|home| !home.is_empty())
                .ok_or(ConfineError::NoHome)?,
        };
        let agent_state = self.agent_states.folder(&session.project_id, &session.id);
        let mut hook_reads: Vec<std::path::PathBuf> = self
            .search_dirs
            .iter()
            .map(|dir| dir.path.clone())
            .collect();
        hook_reads.extend(self.config.path.clone());
        hook_reads.extend(self.event_program.clone());
        let data_dir = self.store.data_dir();
        let runtime = plugins
            .runtime
            .confinement()
            .await
            .map_err(ConfineError::step(format!(
                "the {} runtime plugin's rules",
                plugins.runtime.name()
            )))?;
        // Another host's sockets are its own, unknown here: its runtime names its server.
        let sockets = if host.is_none() {
            agent_sockets()
        } else {
            Vec::new()
        };
        let paths = build_policy(&PolicyInputs {
            config: &config,
            setting: &setting,
            home: std::path::Path::new(&home),
            local: host.is_none(),
            worktree: workspace_path,
            workspace: &workspace.paths,
            workspace_plugin: plugins.workspace.name(),
            agent: &launch.paths,
            agent_plugin: plugins.agent.name(),
            data_dir: host.is_none().then_some(DataDirAccess {
                data_dir,
                agent_state: &agent_state,
                hook_reads: &hook_reads,
            }),
            runtime: &runtime,
            runtime_plugin: plugins.runtime.name(),
            sockets: &sockets,
            repository: host
                .is_none()
                .then(|| self.config.projects.get(&session.project_id))
                .flatten()
                .map(|project| project.repo.as_path()),
        })?;
        let pass_env: Vec<String> = launch.pass_env.iter().map(|n| n.to_string()).collect();
        let env = confined_environment(whole, set, &pass_env, &config.env);
        let confined = plugin
            .confine(&SandboxRequest {
                session_id: session.id.as_str().into(),
                argv: launch.plan.argv.clone(),
                cwd: workspace_path.into(),
                paths: paths.into(),
                network: sandbox.network,
            })
            .await
            .map_err(ConfineError::step(format!(
                "the {} sandbox plugin",
                sandbox.plugin
            )))?;
        for note in workspace.notes.iter().chain(confined.notes.iter()) {
            tracing::info!(id = %session.id, "sandbox: {note}");
        }
        Ok(Confined {
            argv: confined.argv.into_iter().collect(),
            env,
        })
    }
}

/// The operator's agent sockets on this machine, which a confined agent must not use: the
/// runtime folder of its login (`$XDG_RUNTIME_DIR`: D-Bus, the keyring, gpg-agent, often
/// ssh-agent) and the ssh-agent's socket (`$SSH_AUTH_SOCK`), which would sign with a key the
/// agent cannot read.
fn agent_sockets() -> Vec<std::path::PathBuf> {
    ["XDG_RUNTIME_DIR", "SSH_AUTH_SOCK"]
        .into_iter()
        .filter_map(std::env::var_os)
        .map(std::path::PathBuf::from)
        .filter(|path| path.is_absolute() && path.exists())
        .collect()
}
