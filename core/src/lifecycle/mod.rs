//! The session lifecycle: the one service every front end (the CLI today, the dashboard next)
//! calls to spawn, list, message, kill and reconcile sessions.
//!
//! [`Lifecycle::open`] loads the plugin registry once; plugin instances are built on first use,
//! under the call timeout, and shared by everything the service does afterwards. Every operation
//! that changes a session holds that session's lock ([`crate::session::lock`]) while it acts, so
//! two `ao-host` processes (or a CLI and a dashboard) never act on one session at once.

mod budget;
mod confine;
mod deliver;
pub mod doctor;
mod environment;
mod errors;
pub mod events;
pub mod gc;
mod hosts;
mod operate;
pub mod prompt;
mod request;
mod restore;
mod spawn;
mod status;
mod usage;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use ao_plugin_api::{InterfaceKind, PluginErrorKind};
use tokio::sync::OnceCell;

pub use self::{
    budget::{BudgetRefusal, Spending},
    deliver::{first_difference, screen_tail, DeliverError, SCREEN_LINES},
    errors::{ErrorClass, NotBuilt, PluginUnavailable},
    hosts::HostChoice,
    operate::KillOutcome,
    request::{
        validate_message, validate_task, RequestError, SpawnParams, SpawnRequest, TextError,
    },
    restore::{RestoreOutcome, RestoreResult},
    spawn::{SpawnError, SpawnStepError},
    status::SessionListing,
    usage::{LISTING_READ_BYTES, WATCH_READ_BYTES},
};
use crate::{
    config::{
        folder_id, Config, ConfigError, Discovered, PluginChoice, ProjectConfig, RepositoryFacts,
    },
    plugins::{
        check_plugin_choice, discovery,
        registry::{PluginInstance, PluginListing},
        set::plugin_context,
        AgentPlugin, PluginCallError, PluginChoiceError, PluginRegistry, PluginSet, RegistryError,
        RuntimePlugin, SandboxPlugin, ScmPlugin, WorkspacePlugin,
    },
    remote::{health::HealthNotes, HostError, Reached, SshHost},
    session::{project_ids, AgentStateDir, LockError, Session, SessionStore, StoreError},
};

/// Why [`Lifecycle::commits_since`] could not tell.
pub(crate) enum CommitsUnknown {
    /// The session's workspace plugin predates the question.
    Unsupported,
    /// Asking failed (its host, its plugin, its workspace): ask again later.
    Failed(String),
}

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Plugin(#[from] PluginCallError),
    /// A plugin could not be built (not loaded, constructor failed, panicked or hung).
    #[error(transparent)]
    Unavailable(#[from] PluginUnavailable),
    /// A request refused before anything was made.
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Host(#[from] HostError),
    /// An exhausted budget (`budgets:`) refused it.
    #[error(transparent)]
    Budget(#[from] BudgetRefusal),
    /// A setting names a plugin that is not a loaded plugin of the kind it wants (boxed: it
    /// carries the setting, the file, the name and what is loaded).
    #[error(transparent)]
    PluginChoice(Box<PluginChoiceError>),
    /// A confined agent could not be started (restore); boxed, as it carries a plugin's error.
    #[error(transparent)]
    Confine(Box<confine::ConfineError>),
    /// A kill stopped the agent but could not remove its workspace: the record is kept as
    /// `killing`, saying what is left.
    #[error("{id}: its agent is stopped, but its workspace {path} could not be removed: {error}; the session is kept as `killing` until `ao-host session kill {id}` or `ao-host gc` finishes the kill")]
    KillUnfinished {
        id: String,
        path: String,
        error: Box<PluginCallError>,
    },
}

impl From<confine::ConfineError> for LifecycleError {
    fn from(error: confine::ConfineError) -> Self {
        Self::Confine(Box::new(error))
    }
}

impl From<PluginChoiceError> for LifecycleError {
    fn from(error: PluginChoiceError) -> Self {
        Self::PluginChoice(Box::new(error))
    }
}

/// A plugin instance's kind, name and host (`None`: this machine).
type InstanceKey = (InterfaceKind, String, Option<String>);
/// A plugin instance, or why it could not be built.
type BuiltInstance = Result<PluginInstance, Arc<NotBuilt>>;

/// The service. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Lifecycle {
    config: Config,
    registry: Arc<PluginRegistry>,
    store: SessionStore,
    /// Built plugin instances (or why they could not be built), by kind and name; each built
    /// once, several at a time (an isolated plugin's child process takes milliseconds to start).
    instances: std::sync::Mutex<HashMap<InstanceKey, Arc<OnceCell<BuiltInstance>>>>,
    /// What the agents report their events to.
    agent_states: AgentStateDir,
    /// The `ao-host` executable agents' hooks run ([`Lifecycle::with_event_program`]); without
    /// one, agents are read from their screens.
    event_program: Option<PathBuf>,
    /// `AO_PLUGIN_PATH` for sessions (see [`Lifecycle::open`]).
    plugin_path: String,
    /// Where the registry's libraries were looked for.
    search_dirs: Vec<discovery::SearchDir>,
    /// `hosts:` of the config, as ssh reaches them.
    hosts: std::collections::BTreeMap<String, SshHost>,
    /// What each host said the last time it answered (where this data dir lives there).
    reached: std::sync::Mutex<HashMap<String, Reached>>,
    /// What commands noted of hosts that did not answer.
    health: HealthNotes,
}

impl Lifecycle {
    /// Opens the service for `config`: creates and canonicalises the data dir (plugins tag what
    /// they make with it, so it must be spelled the same way by every process), loads every
    /// candidate plugin library once.
    pub fn open(mut config: Config, extra_plugin_dirs: &[PathBuf]) -> Result<Self, LifecycleError> {
        let store = SessionStore::open(&config.data_dir)?;
        config.data_dir = store.data_dir().to_path_buf();
        let search =
            discovery::search_dirs(extra_plugin_dirs, &config.plugin_dirs, &config.data_dir);
        let registry = crate::plugins::load_configured(&discovery::candidates(&search), &config);
        // Where a session's own `ao-host` looks for plugins: this process's `--plugin-dir`s,
        // then `$AO_PLUGIN_PATH` (set whole, also for a runtime built before `start`, whose
        // agents get its own environment rather than this process's).
        let mut plugin_path: Vec<PathBuf> = extra_plugin_dirs
            .iter()
            .map(|dir| std::path::absolute(dir).unwrap_or_else(|_| dir.clone()))
            .collect();
        if let Some(value) = std::env::var_os(discovery::PLUGIN_PATH_ENV) {
            plugin_path.extend(std::env::split_paths(&value));
        }
        let hosts = config
            .hosts
            .values()
            .map(|host| {
                (
                    host.name.clone(),
                    SshHost::new(host.clone(), &config.data_dir, store.earlier_paths()),
                )
            })
            .collect();
        Ok(Self {
            hosts,
            reached: std::sync::Mutex::new(HashMap::new()),
            health: HealthNotes::new(store.data_dir()),
            config,
            registry: Arc::new(registry),
            agent_states: AgentStateDir::new(store.data_dir()),
            store,
            instances: std::sync::Mutex::new(HashMap::new()),
            event_program: None,
            plugin_path: std::env::join_paths(plugin_path)
                .map(|joined| joined.to_string_lossy().into_owned())
                .unwrap_or_default(),
            search_dirs: search,
        })
    }

    /// Lets agents report their state by running `program` (an `ao-host` executable) with the
    /// `hook` command, instead of having their screens read.
    pub fn with_event_program(mut self, program: PathBuf) -> Self {
        self.event_program = Some(program);
        self
    }

    /// Lets plugins for other hosts send their command lines through `program` (an `ao-host`
    /// executable, see [`crate::remote::SshHost::with_wrapper`]): whatever the login shell
    /// there, over one connection per host, within its session bound.
    pub fn with_transport_program(mut self, program: PathBuf) -> Self {
        self.hosts = std::mem::take(&mut self.hosts)
            .into_iter()
            .map(|(name, host)| (name, host.with_wrapper(program.clone())))
            .collect();
        self
    }

    /// The argv an agent runs to report an event of session `session` (see
    /// `ao_plugin_api::LaunchRequest::event_command`); empty without an event program.
    fn event_command(&self, session: &Session) -> Vec<String> {
        // On another host there is no `ao-host` to run, nor this data dir to report to: those
        // sessions are read from their screens.
        let Some(program) = self
            .event_program
            .as_ref()
            .filter(|_| session.host.is_none())
        else {
            return Vec::new();
        };
        let mut argv = vec![program.display().to_string()];
        if let Some(config) = &self.config.path {
            argv.extend(["--config".into(), config.display().to_string()]);
        }
        argv.extend([
            "--data-dir".into(),
            self.store.data_dir().display().to_string(),
            "hook".into(),
            "--project".into(),
            session.project_id.clone(),
            "--session".into(),
            session.id.clone(),
        ]);
        argv
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn registry(&self) -> &PluginRegistry {
        &self.registry
    }

    pub fn store(&self) -> &SessionStore {
        &self.store
    }

    /// Every candidate plugin library, as `ao-host plugins list` shows them.
    pub fn plugin_listing(&self) -> PluginListing {
        self.registry.listing(&self.search_dirs)
    }

    /// The agent's conversation to resume: the id its plugin gave at launch, else the one the
    /// agent reported in an event (an agent that chooses its id itself).
    fn conversation_of(&self, session: &Session) -> Option<String> {
        session.conversation_id.clone().or_else(|| {
            self.agent_states
                .read(&session.project_id, &session.id)
                .ok()
                .flatten()
                .and_then(|state| state.conversation)
        })
    }

    fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.config.call_timeout_ms)
    }

    /// How long a command waits for another one acting on the same session.
    fn lock_patience(&self) -> Duration {
        self.call_timeout()
    }

    /// The plugin (kind, `name`) for `host` (`None`: this machine), built once per service.
    /// The registry runs its constructor under the call timeout, so one that hangs is reported
    /// and the service goes on. One for another host is built with the transport to it and its
    /// data dir there; a failure to build it is not kept (the host may answer next time).
    async fn instance(
        &self,
        kind: InterfaceKind,
        name: &str,
        host: Option<&str>,
    ) -> Result<PluginInstance, LifecycleError> {
        let remote = match host {
            None => None,
            Some(host) => {
                let reached = self.reached(host).await?;
                Some((self.host(host)?.transport(), reached))
            }
        };
        let key = (kind, name.to_string(), host.map(str::to_string));
        let cell = {
            let mut instances = self.instances.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(instances.entry(key.clone()).or_default())
        };
        let built = cell
            .get_or_init(|| async {
                let registry = Arc::clone(&self.registry);
                let (transport, data_dir) = match &remote {
                    None => (None, self.config.data_dir.clone()),
                    Some((transport, reached)) => {
                        (Some(transport.clone()), PathBuf::from(&reached.data_dir))
                    }
                };
                let context = plugin_context(&self.config, &data_dir, name);
                let timeout = self.call_timeout();
                let owned_name = name.to_string();
                tokio::task::spawn_blocking(move || {
                    registry
                        .instantiate_on(kind, &owned_name, &context, transport.as_ref(), timeout)
                        .map_err(|e: RegistryError| Arc::new(e.into()))
                })
                .await
                .unwrap_or_else(|join| {
                    Err(Arc::new(NotBuilt::Aborted {
                        kind,
                        name: name.to_string(),
                        why: join.to_string(),
                    }))
                })
            })
            .await;
        if built.is_err() && host.is_some() {
            let mut instances = self.instances.lock().unwrap_or_else(|e| e.into_inner());
            if instances.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                instances.remove(&key);
            }
        }
        built.clone().map_err(|cause| {
            PluginUnavailable {
                message: self.config.name_file_in(&cause.to_string()),
                cause,
            }
            .into()
        })
    }

    pub async fn runtime(&self, name: &str) -> Result<RuntimePlugin, LifecycleError> {
        self.runtime_on(name, None).await
    }

    pub async fn agent(&self, name: &str) -> Result<AgentPlugin, LifecycleError> {
        self.agent_on(name, None).await
    }

    pub async fn workspace(&self, name: &str) -> Result<WorkspacePlugin, LifecycleError> {
        self.workspace_on(name, None).await
    }

    /// The scm plugin `name`, as the config field `setting` (`projects.app.scm`) names it: a
    /// name that is no loaded scm plugin is refused naming the field, the file and what the
    /// name is instead. Built once per service, like every plugin.
    pub async fn scm(&self, name: &str, setting: &str) -> Result<ScmPlugin, LifecycleError> {
        check_plugin_choice(
            &self.registry,
            InterfaceKind::Scm,
            name,
            setting,
            &self.config.file_for_messages(),
        )?;
        self.scm_plugin(name).await
    }

    /// The sandbox plugin `name` confining agents on `host` (`None`: this machine), as the
    /// config field `setting` (`projects.app.sandbox.plugin`, `--sandbox`) names it: a name
    /// that is no loaded sandbox plugin is refused naming the field, the file and what the name
    /// is instead; one not marked `[remote]` is refused for another host. Built once per
    /// service and host, like every plugin: one for another host probes that host.
    pub async fn sandbox(
        &self,
        name: &str,
        host: Option<&str>,
        setting: &str,
    ) -> Result<SandboxPlugin, LifecycleError> {
        check_plugin_choice(
            &self.registry,
            InterfaceKind::Sandbox,
            name,
            setting,
            &self.config.file_for_messages(),
        )?;
        match self.instance(InterfaceKind::Sandbox, name, host).await? {
            PluginInstance::Sandbox(plugin) => Ok(plugin),
            _ => unreachable!("instances are built by kind"),
        }
    }

    pub(crate) async fn scm_plugin(&self, name: &str) -> Result<ScmPlugin, LifecycleError> {
        match self.instance(InterfaceKind::Scm, name, None).await? {
            PluginInstance::Scm(plugin) => Ok(plugin),
            _ => unreachable!("instances are built by kind"),
        }
    }

    /// Runtime `name` for `host` (`None`: this machine).
    pub(crate) async fn runtime_on(
        &self,
        name: &str,
        host: Option<&str>,
    ) -> Result<RuntimePlugin, LifecycleError> {
        match self.instance(InterfaceKind::Runtime, name, host).await? {
            PluginInstance::Runtime(plugin) => Ok(plugin),
            _ => unreachable!("instances are built by kind"),
        }
    }

    pub(crate) async fn agent_on(
        &self,
        name: &str,
        host: Option<&str>,
    ) -> Result<AgentPlugin, LifecycleError> {
        match self.instance(InterfaceKind::Agent, name, host).await? {
            PluginInstance::Agent(plugin) => Ok(plugin),
            _ => unreachable!("instances are built by kind"),
        }
    }

    pub(crate) async fn workspace_on(
        &self,
        name: &str,
        host: Option<&str>,
    ) -> Result<WorkspacePlugin, LifecycleError> {
        match self.instance(InterfaceKind::Workspace, name, host).await? {
            PluginInstance::Workspace(plugin) => Ok(plugin),
            _ => unreachable!("instances are built by kind"),
        }
    }

    /// How many commits `session`'s workspace has on top of `commit` (`Ok(None)`: not in its
    /// history), through its workspace plugin on its host.
    pub(crate) async fn commits_since(
        &self,
        session: &Session,
        commit: &str,
    ) -> Result<Option<u32>, CommitsUnknown> {
        let path = session
            .workspace_path
            .as_deref()
            .ok_or_else(|| CommitsUnknown::Failed("it has no workspace".into()))?;
        let plugin = self
            .workspace_on(&session.workspace, session.host.as_deref())
            .await
            .map_err(|e| CommitsUnknown::Failed(e.to_string()))?;
        plugin.commits_since(path, commit).await.map_err(|e| {
            if e.kind() == PluginErrorKind::Unsupported {
                CommitsUnknown::Unsupported
            } else {
                CommitsUnknown::Failed(e.to_string())
            }
        })
    }

    /// The runtime, agent and workspace of `choice`, built at the same time.
    pub async fn plugin_set(&self, choice: &PluginChoice) -> Result<PluginSet, LifecycleError> {
        self.plugin_set_on(choice, None).await
    }

    /// [`Lifecycle::plugin_set`] for `host` (`None`: this machine).
    pub(crate) async fn plugin_set_on(
        &self,
        choice: &PluginChoice,
        host: Option<&str>,
    ) -> Result<PluginSet, LifecycleError> {
        let (runtime, agent, workspace) = tokio::join!(
            self.runtime_on(&choice.runtime, host),
            self.agent_on(&choice.agent, host),
            self.workspace_on(&choice.workspace, host)
        );
        Ok(PluginSet {
            runtime: runtime?,
            agent: agent?,
            workspace: workspace?,
        })
    }

    /// The plugins a session was made with, for the machine it runs on.
    pub(crate) async fn plugins_of(&self, session: &Session) -> Result<PluginSet, LifecycleError> {
        self.plugin_set_on(
            &PluginChoice {
                runtime: session.runtime.clone(),
                agent: session.agent.clone(),
                workspace: session.workspace.clone(),
            },
            session.host.as_deref(),
        )
        .await
    }

    /// The project a command is about (see [`Config::resolve_project`]); repositories are
    /// discovered by the default workspace plugin, never by the core.
    pub async fn resolve_project(
        &self,
        name: Option<&str>,
        cwd: &Path,
    ) -> Result<ProjectConfig, LifecycleError> {
        let discover = |dir: PathBuf| async move {
            let workspace = self
                .workspace(&self.config.defaults.workspace)
                .await
                .map_err(|e| e.to_string())?;
            let info = match workspace
                .discover_repository(&dir.display().to_string())
                .await
            {
                Ok(info) => info,
                Err(e) if e.kind() == ao_plugin_api::PluginErrorKind::NotFound => {
                    return Ok(Discovered::NotARepository(e.plugin_message()))
                }
                Err(e) => return Err(e.to_string()),
            };
            let root = PathBuf::from(info.root.as_str());
            let name = folder_id(&root);
            // Only a repository nobody configured is named by the registry.
            let id = if self.config.projects.is_empty() {
                project_ids::claim(self.store.data_dir(), &root, &name)
                    .map_err(|e| e.to_string())?
            } else {
                name
            };
            Ok(Discovered::Repository(RepositoryFacts {
                root,
                default_branch: info.default_branch.into_option().map(|b| b.to_string()),
                id,
            }))
        };
        Ok(self.config.resolve_project(name, cwd, discover).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dashboard will hold one service behind an `Arc` and call it from server tasks: the
    /// service must be shareable and every operation's future sendable between threads.
    #[test]
    fn the_service_can_be_shared_by_a_server() {
        fn shared<T: Send + Sync>(_: &T) {}
        fn sendable<T: Send>(_: T) {}
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::parse("", &dir.path().join("ao-rs.yaml")).unwrap();
        config.data_dir = dir.path().join("data");
        let lifecycle = Lifecycle::open(config, &[]).unwrap();
        shared(&lifecycle);
        let quiet = |_: &str| {};
        sendable(lifecycle.list(None, false));
        sendable(lifecycle.kill("app-1", false, false, &quiet));
        sendable(lifecycle.send("app-1", "hello", false, &quiet));
        sendable(lifecycle.gc_plan(false, &[]));
        sendable(lifecycle.doctor());
        sendable(lifecycle.attach_command("app-1"));
        sendable(lifecycle.resolve_project(None, dir.path()));
        let project = ProjectConfig {
            id: "app".into(),
            repo: dir.path().to_path_buf(),
            default_branch: Some("main".into()),
            session_prefix: "app".into(),
            symlinks: Vec::new(),
            post_create: Vec::new(),
            agent_config: String::new(),
            plugins: lifecycle.config().defaults.clone(),
            hosts: Default::default(),
            scm: None,
            budgets: Default::default(),
            sandbox: Default::default(),
        };
        sendable(lifecycle.spawn_request(SpawnParams::new(
            crate::session::SessionRole::Worker,
            dir.path().to_path_buf(),
        )));
        let request = SpawnRequest {
            project,
            default_branch: "main".into(),
            role: crate::session::SessionRole::Worker,
            task: Some("x".into()),
            no_prompt: false,
            host: None,
            sandbox: None,
            stop: Arc::default(),
        };
        sendable(lifecycle.spawn(request, &quiet));
    }
}
