//! Calling plugin instances from async host code.
//!
//! Plugin methods are synchronous and may block for seconds (a remote runtime, a slow `git`), so
//! every call runs on tokio's blocking pool under a per-call timeout. A call that times out keeps
//! its thread until the plugin returns; the host has stopped waiting, which is all it can do for
//! code it cannot cancel.

use std::{sync::Arc, time::Duration};

use super::successors;
use ao_plugin_api::{
    abi_stable::std_types::{ROption, RResult, RStr, RString, RVec},
    ffi::{AgentObject, RuntimeObject, SandboxObject, ScmObject, WorkspaceObject},
    sandbox::{
        ConfinedCommand, ConfinedLaunchPlan, ConfinedLaunchRequest, PathRule, SandboxRequest,
        WorkspaceConfinement, WorkspaceConfinementQuery,
    },
    scm::{
        Check, ChecksQuery, Fetched, MergeRequest, PullRequest, PullRequestQuery, RateLimit,
        ReviewFeedback, ReviewsQuery, WebhookDelivery, WebhookHint,
    },
    usage::{UsageQuery, UsageReport},
    Activity, AgentSession, DoctorCheck, EnvVar, ErrorKind, InterfaceKind, LaunchPlan,
    LaunchRequest, PluginError, PluginErrorKind, PluginFailure, Readiness, RepositoryInfo,
    RuntimeCreateRequest, WorkspaceCreateConfig,
};

/// A failed plugin call, naming the plugin and the method.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginCallError {
    #[error("{kind} plugin `{plugin}`: {method}: {}", error.message)]
    Plugin {
        kind: InterfaceKind,
        plugin: String,
        method: &'static str,
        error: PluginError,
    },
    /// A method added since 0.1.7 failed, with a kind that can grow.
    #[error("{kind} plugin `{plugin}`: {method}: {}", failure.message)]
    Failure {
        kind: InterfaceKind,
        plugin: String,
        method: &'static str,
        failure: PluginFailure,
    },
    #[error("{kind} plugin `{plugin}` did not finish `{method}` within {} ms; raise {setting} in ao-rs.yaml if it is just slow", timeout.as_millis())]
    Timeout {
        kind: InterfaceKind,
        plugin: String,
        method: &'static str,
        timeout: Duration,
        /// The setting that bounds this call.
        setting: &'static str,
    },
}

impl PluginCallError {
    /// What the plugin itself said, without naming the plugin and the method (for a message
    /// that names them its own way); a timeout's whole message.
    pub fn plugin_message(&self) -> String {
        match self {
            Self::Plugin { error, .. } => error.message.to_string(),
            Self::Failure { failure, .. } => failure.message.to_string(),
            other => other.to_string(),
        }
    }

    /// The plugin's own error kind; a timeout counts as [`PluginErrorKind::Failed`], and so
    /// does a kind that only [`PluginCallError::error_kind`] knows.
    pub fn kind(&self) -> PluginErrorKind {
        match self {
            Self::Plugin { error, .. } => error.kind,
            Self::Failure {
                plugin, failure, ..
            } => successors::plugin_error(failure.clone(), plugin).kind,
            Self::Timeout { .. } => PluginErrorKind::Failed,
        }
    }

    /// The plugin's own error kind in the enum that can grow (`RateLimited`, …); a timeout
    /// counts as [`ErrorKind::Failed`].
    pub fn error_kind(&self) -> ErrorKind {
        match self {
            Self::Plugin { error, .. } => error.kind.into(),
            Self::Failure {
                plugin, failure, ..
            } => successors::known(&failure.kind, plugin),
            Self::Timeout { .. } => ErrorKind::Failed,
        }
    }
}

/// What a plugin method fails with: [`PluginError`] (methods up to 0.1.7) or [`PluginFailure`]
/// (since), each kept as itself in the [`PluginCallError`].
pub(crate) trait MethodError: Send + 'static {
    fn into_call_error(
        self,
        kind: InterfaceKind,
        plugin: String,
        method: &'static str,
    ) -> PluginCallError;
}

impl MethodError for PluginError {
    fn into_call_error(
        self,
        kind: InterfaceKind,
        plugin: String,
        method: &'static str,
    ) -> PluginCallError {
        PluginCallError::Plugin {
            kind,
            plugin,
            method,
            error: self,
        }
    }
}

impl MethodError for PluginFailure {
    fn into_call_error(
        self,
        kind: InterfaceKind,
        plugin: String,
        method: &'static str,
    ) -> PluginCallError {
        PluginCallError::Failure {
            kind,
            plugin,
            method,
            failure: self,
        }
    }
}

/// What every instance handle shares: who it is and how long a call may take.
struct Caller<O> {
    kind: InterfaceKind,
    name: Arc<str>,
    timeout: Duration,
    object: Arc<O>,
}

// Not derived: cloning shares the instance, so `O` itself need not be `Clone`.
impl<O> Clone for Caller<O> {
    fn clone(&self) -> Self {
        Self {
            kind: self.kind,
            name: Arc::clone(&self.name),
            timeout: self.timeout,
            object: Arc::clone(&self.object),
        }
    }
}

impl<O: Send + Sync + 'static> Caller<O> {
    async fn call<T, E, F>(&self, method: &'static str, body: F) -> Result<T, PluginCallError>
    where
        T: Send + 'static,
        E: MethodError,
        F: FnOnce(&O) -> RResult<T, E> + Send + 'static,
    {
        self.call_within(method, self.timeout, "defaults.call_timeout_ms", body)
            .await
    }

    /// [`Caller::call`] with a bound of its own, named by `setting` in the timeout error.
    async fn call_within<T, E, F>(
        &self,
        method: &'static str,
        timeout: Duration,
        setting: &'static str,
        body: F,
    ) -> Result<T, PluginCallError>
    where
        T: Send + 'static,
        E: MethodError,
        F: FnOnce(&O) -> RResult<T, E> + Send + 'static,
    {
        let object = Arc::clone(&self.object);
        let (kind, name) = (self.kind, Arc::clone(&self.name));
        let task = tokio::task::spawn_blocking(move || {
            let _running = super::crash::enter(kind, &name, method);
            body(&object)
        });
        let failed = |error: E| error.into_call_error(self.kind, self.name.to_string(), method);
        match tokio::time::timeout(timeout, task).await {
            Err(_) => {
                super::process_state::put_back(&format!(
                    "when {kind} plugin `{}` overran its timeout in {method}",
                    self.name
                ));
                Err(PluginCallError::Timeout {
                    kind: self.kind,
                    plugin: self.name.to_string(),
                    method,
                    timeout,
                    setting,
                })
            }
            // The plugin side catches panics; this is a panic in the host's own glue.
            Ok(Err(join_error)) => Err(PluginError::new(
                PluginErrorKind::Panicked,
                format!("call aborted: {join_error}"),
            )
            .into_call_error(self.kind, self.name.to_string(), method)),
            Ok(Ok(result)) => result.into_result().map_err(failed),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

macro_rules! plugin_handle {
    ($(#[$doc:meta])* $handle:ident, $object:ty, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $handle(Caller<$object>);

        impl $handle {
            pub(crate) fn new(name: &str, object: $object, timeout: Duration) -> Self {
                Self(Caller {
                    kind: $kind,
                    name: Arc::from(name),
                    timeout,
                    object: Arc::new(object),
                })
            }

            /// The name the plugin is registered under.
            pub fn name(&self) -> &str {
                self.0.name()
            }
        }
    };
}

plugin_handle!(
    /// A runtime plugin instance.
    RuntimePlugin, RuntimeObject, InterfaceKind::Runtime
);
plugin_handle!(
    /// An agent plugin instance.
    AgentPlugin, AgentObject, InterfaceKind::Agent
);
plugin_handle!(
    /// A workspace plugin instance.
    WorkspacePlugin, WorkspaceObject, InterfaceKind::Workspace
);
plugin_handle!(
    /// An scm plugin instance: what a code host says about the sessions' branches. Its values
    /// hold the forge's enums as they crossed (`NonExhaustiveFor<…>`); read them with
    /// [`successors::known`], which names a state this build does not know and reads it as the
    /// enum's fallback.
    ScmPlugin, ScmObject, InterfaceKind::Scm
);
plugin_handle!(
    /// A sandbox plugin instance: turns a policy and an agent's argv into the argv that runs
    /// the agent confined, on the host it was built for (this one, or a `[remote]` one's).
    SandboxPlugin, SandboxObject, InterfaceKind::Sandbox
);

impl RuntimePlugin {
    pub async fn create(&self, request: RuntimeCreateRequest) -> Result<String, PluginCallError> {
        self.0
            .call("create", move |o| o.create(&request))
            .await
            .map(String::from)
    }

    /// Starts an agent whose whole environment is `request.env`; a runtime that cannot (built
    /// before `start` existed, 0.1.7, or not offering it) is given `create` with only `added`,
    /// the variables plugins set, on top of its own environment.
    pub async fn start(
        &self,
        request: RuntimeCreateRequest,
        added: Vec<EnvVar>,
    ) -> Result<String, PluginCallError> {
        let fallback = RuntimeCreateRequest {
            env: added.into(),
            ..request.clone()
        };
        match self.start_exactly(request).await {
            Err(e) if e.kind() == PluginErrorKind::Unsupported => {
                tracing::info!(
                    runtime = self.name(),
                    "the agent gets the runtime's environment, not this ao-host's: {e}"
                );
                self.create(fallback).await
            }
            other => other,
        }
    }

    /// `start` alone: Unsupported from a runtime that cannot start an agent with exactly
    /// `request.env`.
    pub async fn start_exactly(
        &self,
        request: RuntimeCreateRequest,
    ) -> Result<String, PluginCallError> {
        self.0
            .call("start", move |o| o.start(&request))
            .await
            .map(String::from)
    }

    pub async fn send_message(&self, handle: &str, text: &str) -> Result<(), PluginCallError> {
        let (handle, text) = (handle.to_string(), text.to_string());
        self.0
            .call("send_message", move |o| {
                o.send_message(RStr::from_str(&handle), RStr::from_str(&text))
            })
            .await
    }

    pub async fn send_keys(&self, handle: &str, keys: &[&str]) -> Result<(), PluginCallError> {
        let handle = handle.to_string();
        let keys: Vec<RString> = keys.iter().map(|k| RString::from(*k)).collect();
        self.0
            .call("send_keys", move |o| {
                o.send_keys(RStr::from_str(&handle), keys.as_slice().into())
            })
            .await
    }

    pub async fn capture_output(
        &self,
        handle: &str,
        lines: u32,
    ) -> Result<String, PluginCallError> {
        let handle = handle.to_string();
        self.0
            .call("capture_output", move |o| {
                o.capture_output(RStr::from_str(&handle), lines)
            })
            .await
            .map(String::from)
    }

    /// The screen with its colours as ANSI SGR sequences; a runtime built before
    /// `capture_styled` existed (0.1.5) gives its plain screen.
    pub async fn capture_styled(
        &self,
        handle: &str,
        lines: u32,
    ) -> Result<String, PluginCallError> {
        let owned = handle.to_string();
        let styled = self
            .0
            .call("capture_styled", move |o| {
                o.capture_styled(RStr::from_str(&owned), lines)
            })
            .await;
        match styled {
            Err(e) if e.kind() == PluginErrorKind::Unsupported => {
                self.capture_output(handle, lines).await
            }
            other => other.map(String::from),
        }
    }

    /// Several screens in one call, in the order of `handles`; each may fail on its own.
    pub async fn capture_outputs(
        &self,
        handles: Vec<String>,
        lines: u32,
    ) -> Result<Vec<Result<String, PluginError>>, PluginCallError> {
        let handles: Vec<RString> = handles.into_iter().map(RString::from).collect();
        self.0
            .call("capture_outputs", move |o| {
                o.capture_outputs(handles.as_slice().into(), lines)
            })
            .await
            .map(|screens| {
                screens
                    .into_iter()
                    .map(|screen| screen.into_result().map(String::from))
                    .collect()
            })
    }

    pub async fn is_alive(&self, handle: &str) -> Result<bool, PluginCallError> {
        let handle = handle.to_string();
        self.0
            .call("is_alive", move |o| o.is_alive(RStr::from_str(&handle)))
            .await
    }

    pub async fn destroy(&self, handle: &str) -> Result<(), PluginCallError> {
        let handle = handle.to_string();
        self.0
            .call("destroy", move |o| o.destroy(RStr::from_str(&handle)))
            .await
    }

    pub async fn attach_command(&self, handle: &str) -> Result<Vec<String>, PluginCallError> {
        let handle = handle.to_string();
        self.0
            .call("attach_command", move |o| {
                o.attach_command(RStr::from_str(&handle))
            })
            .await
            .map(|argv| argv.into_iter().map(String::from).collect())
    }

    pub async fn alive_handles(&self) -> Result<Vec<String>, PluginCallError> {
        self.0
            .call("alive_handles", |o| o.alive_handles())
            .await
            .map(|handles| handles.into_iter().map(String::from).collect())
    }

    /// What the runtime needs on this machine, for `ao-host doctor`.
    pub async fn doctor(&self) -> Result<Vec<DoctorCheck>, PluginCallError> {
        self.0.call("doctor", |o| o.doctor()).await.map(Vec::from)
    }

    /// Every session of this data dir that still exists, live or not, for `gc` (exited ones
    /// are orphans too). An older library answers `Unsupported`.
    pub async fn owned_handles(&self) -> Result<Vec<String>, PluginCallError> {
        self.0
            .call("owned_handles", |o| o.owned_handles())
            .await
            .map(|handles| handles.into_iter().map(String::from).collect())
    }

    /// What a confined agent must not reach of this runtime (its server's socket), as `Hidden`
    /// rules (see [`ao_plugin_api::Runtime::confinement`]). A library built before 0.1.9 names
    /// nothing.
    pub async fn confinement(&self) -> Result<Vec<PathRule>, PluginCallError> {
        self.0
            .call("confinement", |o| o.confinement())
            .await
            .map(Vec::from)
    }
}

impl AgentPlugin {
    /// How to start the agent. A library built before `launch` existed (0.1.4) gets the plan
    /// its `launch_command` makes: the host types the first message, reads the screen, and
    /// cannot resume.
    pub async fn launch(&self, request: &LaunchRequest) -> Result<LaunchPlan, PluginCallError> {
        let owned = request.clone();
        match self.0.call("launch", move |o| o.launch(&owned)).await {
            // Only a library without `launch` says unsupported to a fresh start.
            Err(e) if e.kind() == PluginErrorKind::Unsupported && request.resume.is_none() => {
                Ok(LaunchPlan {
                    argv: self
                        .launch_command(&request.session)
                        .await?
                        .into_iter()
                        .map(Into::into)
                        .collect(),
                    takes_first_message: false,
                    conversation_id: None.into(),
                    reports_events: false,
                })
            }
            other => other,
        }
    }

    /// Lets the plugin remove what it keeps for a session that is over. A library built before
    /// `forget` existed (0.1.6) has nothing it knows to remove.
    pub async fn forget(&self, session_id: &str) -> Result<(), PluginCallError> {
        let id = session_id.to_string();
        match self
            .0
            .call("forget", move |o| o.forget(id.as_str().into()))
            .await
        {
            Err(e) if e.kind() == PluginErrorKind::Unsupported => Ok(()),
            other => other,
        }
    }

    /// What may keep the agent from reporting events (see `Agent::silent_events_hint`); empty
    /// from a library built before the question existed (0.1.7).
    pub async fn silent_events_hint(&self) -> Result<String, PluginCallError> {
        match self
            .0
            .call("silent_events_hint", |o| o.silent_events_hint())
            .await
        {
            Err(e) if e.kind() == PluginErrorKind::Unsupported => Ok(String::new()),
            other => other.map(String::from),
        }
    }

    /// The session's token use so far, read on from `query.cursor` (see
    /// [`ao_plugin_api::Agent::usage`]). A library built before the question existed (0.1.9)
    /// answers `Unsupported`: its usage is unknown.
    pub async fn usage(&self, query: &UsageQuery) -> Result<UsageReport, PluginCallError> {
        let owned = query.clone();
        self.0.call("usage", move |o| o.usage(&owned)).await
    }

    /// How to start the agent confined by a sandbox (see
    /// [`ao_plugin_api::Agent::launch_confined`]): the launch, the CLI state the sandbox must
    /// let it use, and the operator's variables it needs. A library built before the question
    /// existed (0.1.9) answers `Unsupported`; without `unattended` it gets its plain
    /// [`AgentPlugin::launch`] with nothing more to allow (the sandbox is then only stricter:
    /// the agent's own state stays read-only), and with `unattended` the refusal stands.
    pub async fn launch_confined(
        &self,
        request: &ConfinedLaunchRequest,
    ) -> Result<ConfinedLaunchPlan, PluginCallError> {
        let owned = request.clone();
        match self
            .0
            .call("launch_confined", move |o| o.launch_confined(&owned))
            .await
        {
            Err(e) if e.error_kind() == ErrorKind::Unsupported && !request.unattended => {
                Ok(ConfinedLaunchPlan {
                    plan: self.launch(&request.launch).await?,
                    paths: RVec::new(),
                    pass_env: RVec::new(),
                    env: RVec::new(),
                })
            }
            other => other,
        }
    }

    pub async fn launch_command(
        &self,
        session: &AgentSession,
    ) -> Result<Vec<String>, PluginCallError> {
        let session = session.clone();
        self.0
            .call("launch_command", move |o| o.launch_command(&session))
            .await
            .map(|argv| argv.into_iter().map(String::from).collect())
    }

    pub async fn environment(
        &self,
        session: &AgentSession,
    ) -> Result<Vec<EnvVar>, PluginCallError> {
        let session = session.clone();
        self.0
            .call("environment", move |o| o.environment(&session))
            .await
            .map(Vec::from)
    }

    /// Whether the agent accepts a message now: its `readiness_state`, a state this build does
    /// not know read as `Starting`; from a library built before that (0.1.7), its `is_ready`.
    pub async fn is_ready(&self, output: &str) -> Result<Readiness, PluginCallError> {
        let owned = output.to_string();
        let plugin = self.name().to_string();
        let state = self
            .0
            .call("readiness_state", move |o| {
                o.readiness_state(RStr::from_str(&owned))
                    .map_err(|failure| successors::plugin_error(failure, &plugin))
            })
            .await;
        match state {
            Ok(state) => Ok(successors::readiness(successors::known(
                &state,
                self.name(),
            ))),
            Err(e) if e.kind() == PluginErrorKind::Unsupported => {
                let output = output.to_string();
                self.0
                    .call("is_ready", move |o| o.is_ready(RStr::from_str(&output)))
                    .await
            }
            Err(e) => Err(e),
        }
    }

    /// What the agent is doing: its `activity_state`, a state this build does not know read as
    /// `Working`; from a library built before that (0.1.7), its `activity`.
    pub async fn activity(&self, output: &str) -> Result<Activity, PluginCallError> {
        let owned = output.to_string();
        let plugin = self.name().to_string();
        let state = self
            .0
            .call("activity_state", move |o| {
                o.activity_state(RStr::from_str(&owned))
                    .map_err(|failure| successors::plugin_error(failure, &plugin))
            })
            .await;
        match state {
            Ok(state) => Ok(successors::activity(successors::known(&state, self.name()))),
            Err(e) if e.kind() == PluginErrorKind::Unsupported => {
                let output = output.to_string();
                self.0
                    .call("activity", move |o| o.activity(RStr::from_str(&output)))
                    .await
            }
            Err(e) => Err(e),
        }
    }

    pub async fn input_pending(&self, output: &str) -> Result<bool, PluginCallError> {
        let output = output.to_string();
        self.0
            .call("input_pending", move |o| {
                o.input_pending(RStr::from_str(&output))
            })
            .await
    }

    /// What the agent needs on this machine, for `ao-host doctor`.
    pub async fn doctor(&self) -> Result<Vec<DoctorCheck>, PluginCallError> {
        self.0.call("doctor", |o| o.doctor()).await.map(Vec::from)
    }
}

impl WorkspacePlugin {
    pub async fn create(&self, config: WorkspaceCreateConfig) -> Result<String, PluginCallError> {
        self.0
            .call("create", move |o| o.create(&config))
            .await
            .map(String::from)
    }

    /// [`WorkspacePlugin::create`] bounded by `timeout` (`defaults.workspace_timeout_ms`)
    /// instead of the call timeout: making a workspace runs the project's `post_create`.
    pub async fn create_within(
        &self,
        config: WorkspaceCreateConfig,
        timeout: Duration,
    ) -> Result<String, PluginCallError> {
        self.0
            .call_within(
                "create",
                timeout,
                "defaults.workspace_timeout_ms",
                move |o| o.create(&config),
            )
            .await
            .map(String::from)
    }

    pub async fn destroy(&self, path: &str, delete_branch: bool) -> Result<(), PluginCallError> {
        let path = path.to_string();
        self.0
            .call("destroy", move |o| {
                o.destroy(RStr::from_str(&path), delete_branch)
            })
            .await
    }

    pub async fn list_owned(&self) -> Result<Vec<String>, PluginCallError> {
        self.0
            .call("list_owned", |o| o.list_owned())
            .await
            .map(|paths| paths.into_iter().map(String::from).collect())
    }

    pub async fn has_unsaved_work(&self, path: &str) -> Result<bool, PluginCallError> {
        let path = path.to_string();
        self.0
            .call("has_unsaved_work", move |o| {
                o.has_unsaved_work(RStr::from_str(&path))
            })
            .await
    }

    /// How many commits the workspace at `path` has on top of `commit`; `None` when `commit`
    /// is not in its history.
    pub async fn commits_since(
        &self,
        path: &str,
        commit: &str,
    ) -> Result<Option<u32>, PluginCallError> {
        let (path, commit) = (path.to_string(), commit.to_string());
        self.0
            .call("commits_since", move |o| {
                o.commits_since(RStr::from_str(&path), RStr::from_str(&commit))
            })
            .await
            .map(ROption::into_option)
    }

    /// What a session confined to the workspace at `query.path` may write beyond it, must not
    /// change inside it, and must not see (see [`ao_plugin_api::Workspace::confinement`]). A
    /// library built before the question existed (0.1.9) answers `Unsupported`, and so does
    /// one that cannot say: the host then refuses to confine the session.
    pub async fn confinement(
        &self,
        query: &WorkspaceConfinementQuery,
    ) -> Result<WorkspaceConfinement, PluginCallError> {
        let owned = query.clone();
        self.0
            .call("confinement", move |o| o.confinement(&owned))
            .await
    }

    pub async fn exists(&self, path: &str) -> Result<bool, PluginCallError> {
        let path = path.to_string();
        self.0
            .call("exists", move |o| o.exists(RStr::from_str(&path)))
            .await
    }

    /// What the workspace plugin needs on this machine, for `ao-host doctor`.
    pub async fn doctor(&self) -> Result<Vec<DoctorCheck>, PluginCallError> {
        self.0.call("doctor", |o| o.doctor()).await.map(Vec::from)
    }

    /// Removes the merged ones of `branches` from `repo` (see
    /// [`ao_plugin_api::Workspace::remove_merged_branches`]).
    pub async fn remove_merged_branches(
        &self,
        repo: &str,
        branches: Vec<String>,
        dry_run: bool,
    ) -> Result<Vec<String>, PluginCallError> {
        let repo = repo.to_string();
        let branches: Vec<RString> = branches.into_iter().map(RString::from).collect();
        self.0
            .call("remove_merged_branches", move |o| {
                o.remove_merged_branches(RStr::from_str(&repo), branches.as_slice().into(), dry_run)
            })
            .await
            .map(|removed| removed.into_iter().map(String::from).collect())
    }

    /// What a session of `repo` branching from `default_branch` would start from (see
    /// [`ao_plugin_api::Workspace::base_of`]).
    pub async fn base_of(
        &self,
        repo: &str,
        default_branch: &str,
    ) -> Result<String, PluginCallError> {
        let (repo, default_branch) = (repo.to_string(), default_branch.to_string());
        self.0
            .call("base_of", move |o| {
                o.base_of(RStr::from_str(&repo), RStr::from_str(&default_branch))
            })
            .await
            .map(String::from)
    }

    /// The repository around `dir` and its default branch, when no project is configured.
    pub async fn discover_repository(&self, dir: &str) -> Result<RepositoryInfo, PluginCallError> {
        let dir = dir.to_string();
        self.0
            .call("discover_repository", move |o| {
                o.discover_repository(RStr::from_str(&dir))
            })
            .await
    }
}

/// A list answer as the host's code reads it.
fn fetched_vec<T>(fetched: Fetched<RVec<T>>) -> Fetched<Vec<T>> {
    match fetched {
        Fetched::Unchanged => Fetched::Unchanged,
        Fetched::Changed { value, validator } => Fetched::Changed {
            value: value.into(),
            validator,
        },
    }
}

impl ScmPlugin {
    /// The pull requests whose head is one of the query's branches (see
    /// [`ao_plugin_api::Scm::pull_requests`]).
    pub async fn pull_requests(
        &self,
        query: PullRequestQuery,
    ) -> Result<Fetched<Vec<PullRequest>>, PluginCallError> {
        self.0
            .call("pull_requests", move |o| o.pull_requests(&query))
            .await
            .map(fetched_vec)
    }

    /// The checks on one commit, with the log tail of each failed one.
    pub async fn checks(&self, query: ChecksQuery) -> Result<Fetched<Vec<Check>>, PluginCallError> {
        self.0
            .call("checks", move |o| o.checks(&query))
            .await
            .map(fetched_vec)
    }

    /// The reviews waiting for an answer, one entry per pull request asked about.
    pub async fn reviews(
        &self,
        query: ReviewsQuery,
    ) -> Result<Vec<ReviewFeedback>, PluginCallError> {
        self.0
            .call("reviews", move |o| o.reviews(&query))
            .await
            .map(Vec::from)
    }

    /// Merges a pull request at the head the caller saw green.
    pub async fn merge(&self, request: MergeRequest) -> Result<(), PluginCallError> {
        self.0.call("merge", move |o| o.merge(&request)).await
    }

    /// Verifies a webhook delivery and says what it concerns; a delivery that does not verify
    /// fails with [`ErrorKind::InvalidInput`].
    pub async fn webhook(&self, delivery: WebhookDelivery) -> Result<WebhookHint, PluginCallError> {
        self.0.call("webhook", move |o| o.webhook(&delivery)).await
    }

    /// The forge's rate limits as its last answers stated them.
    pub async fn rate_limits(&self) -> Result<Vec<RateLimit>, PluginCallError> {
        self.0
            .call("rate_limits", |o| o.rate_limits())
            .await
            .map(Vec::from)
    }

    /// What the plugin needs (a token, the forge answering), for `ao-host doctor`.
    pub async fn doctor(&self) -> Result<Vec<DoctorCheck>, PluginCallError> {
        self.0.call("doctor", |o| o.doctor()).await.map(Vec::from)
    }
}

impl SandboxPlugin {
    /// The argv that runs `request.argv` confined by the request's policy (see
    /// [`ao_plugin_api::Sandbox::confine`]): `Unavailable` when the tool cannot confine on this
    /// host, `Unsupported` naming a rule it cannot enforce exactly, `InvalidInput` for a
    /// request it refuses (a relative path, an empty argv).
    pub async fn confine(
        &self,
        request: &SandboxRequest,
    ) -> Result<ConfinedCommand, PluginCallError> {
        let owned = request.clone();
        self.0.call("confine", move |o| o.confine(&owned)).await
    }

    /// Whether the tool works on this plugin's host (installed, user namespaces on), for
    /// `ao-host doctor`.
    pub async fn doctor(&self) -> Result<Vec<DoctorCheck>, PluginCallError> {
        self.0.call("doctor", |o| o.doctor()).await.map(Vec::from)
    }
}
