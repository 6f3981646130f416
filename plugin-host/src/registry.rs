//! All loaded plugins by (kind, name), and building instances of them.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use ao_plugin_api::{
    ffi::{AgentObject, RuntimeObject, SandboxObject, ScmObject, WorkspaceObject},
    first_release, AddedKindConstructor, AddedKindRemoteConstructor, InterfaceKind,
    PluginConstructor, PluginContext, PluginError, RemoteConstructor, Transport,
};
use serde::Serialize;

use super::{
    instance::{AgentPlugin, RuntimePlugin, SandboxPlugin, ScmPlugin, WorkspacePlugin},
    isolated::{self, Hello},
    library::{
        load_library_checked, LibraryReport, LoadPolicy, LoadedPlugin, DEFAULT_START_TIMEOUT,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no {kind} plugin named `{name}` is loaded (loaded {kind} plugins: {loaded}); check the name in ao-rs.yaml or run `ao-host plugins list`")]
    NotLoaded {
        kind: InterfaceKind,
        name: String,
        loaded: String,
    },
    #[error("{kind} plugin `{name}` ({path}) could not start: {error}", path = path.display())]
    Construct {
        kind: InterfaceKind,
        name: String,
        path: PathBuf,
        error: PluginError,
    },
    #[error("{kind} plugin `{name}` ({path}) cannot work on another host (host `{host}`): {why}", path = path.display())]
    NotRemote {
        kind: InterfaceKind,
        name: String,
        path: PathBuf,
        host: String,
        why: &'static str,
    },
    #[error("{kind} plugin `{name}` ({path}) did not finish starting within {} ms (defaults.call_timeout_ms): its constructor hangs; check plugins.config.{name} or remove the library", timeout.as_millis(), path = path.display())]
    ConstructTimeout {
        kind: InterfaceKind,
        name: String,
        path: PathBuf,
        timeout: Duration,
    },
}

/// Runs plugin code on a thread of its own and waits at most `timeout` for it: a constructor
/// that hangs (on a lock, a network call) must not hang the host. A thread that never returns is
/// abandoned; plugin code cannot be cancelled, only stopped being waited for.
fn within<T: Send + 'static>(
    timeout: Duration,
    run: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("ao-plugin-new".into())
        .spawn(move || {
            let _ = sender.send(run());
        })
        .ok()?;
    receiver.recv_timeout(timeout).ok()
}

/// How one plugin of a candidate library fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginStatus {
    Ok,
    /// Loaded fine, but a higher-priority library provides the same kind and name.
    Shadowed,
    Error,
}

/// One line of `ao-host plugins list`: a plugin, or a library that could not be read at all.
#[derive(Debug, Clone, Serialize)]
pub struct PluginRow {
    pub path: PathBuf,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    /// The library's ABI level (`None` when unread, or stated by no manifest this host knows).
    pub abi_level: Option<u32>,
    /// The release at which the interface the library was built against last changed.
    pub interface_revision: Option<String>,
    /// The `ao-plugin-api` version that built the library.
    pub api_version: Option<String>,
    /// The author kit's version that built the library, when a kit wrote its manifest.
    pub kit_version: Option<String>,
    /// Host features the library cannot work without.
    pub needs: Vec<String>,
    pub status: PluginStatus,
    pub reason: Option<String>,
    /// `sha256:<hex>` of the library, for `plugins.pin` (filled in by listing commands).
    pub digest: Option<String>,
    /// Runs in a child process (`plugins.isolate`), never loaded into ao-host itself.
    pub isolated: bool,
    /// Works on another host (marked `[remote]`): `ao-host spawn --host` may use it.
    pub remote: bool,
}

/// What `ao-host plugins list --json` prints (and the dashboard's `/api/plugins` serves).
#[derive(Debug, Clone, Serialize)]
pub struct PluginListing {
    /// Where libraries were looked for, in search order.
    pub search_dirs: Vec<String>,
    /// What this host accepts.
    pub host: HostAbi,
    pub plugins: Vec<PluginRow>,
}

/// What this build of ao-host accepts of a plugin library.
#[derive(Debug, Clone, Serialize)]
pub struct HostAbi {
    /// It loads libraries of this ABI level (`ao_plugin_api::ABI_LEVEL`).
    pub abi_level: u32,
    /// The host features it offers (`ao_plugin_api::HOST_FEATURES`).
    pub features: Vec<String>,
    /// The interface revision it was built with: libraries of a newer one are refused.
    pub interface_revision: String,
    /// The `ao-plugin-api` version it was built with.
    pub api_version: String,
}

impl HostAbi {
    /// This build's.
    pub fn current() -> Self {
        Self {
            abi_level: ao_plugin_api::ABI_LEVEL,
            features: ao_plugin_api::HOST_FEATURES
                .iter()
                .map(|f| f.to_string())
                .collect(),
            interface_revision: ao_plugin_api::INTERFACE_REVISION.into(),
            api_version: ao_plugin_api::API_VERSION.into(),
        }
    }
}

/// An instance of any kind of plugin.
#[derive(Clone)]
pub enum PluginInstance {
    Runtime(RuntimePlugin),
    Agent(AgentPlugin),
    Workspace(WorkspacePlugin),
    Scm(ScmPlugin),
    Sandbox(SandboxPlugin),
}

#[derive(Debug, Clone)]
struct Registered {
    path: PathBuf,
    plugin: LoadedPlugin,
}

/// Every candidate library's outcome, and the usable plugins by (kind, name).
#[derive(Debug, Default)]
pub struct PluginRegistry {
    reports: Vec<LibraryReport>,
    registered: BTreeMap<(InterfaceKind, String), Registered>,
    /// The pins libraries were checked against (a child loading an isolated one checks again).
    pins: BTreeMap<String, String>,
    /// How long an isolated workspace's `create` may take (`defaults.workspace_timeout_ms`).
    create_timeout: Option<Duration>,
}

/// A plugin instance as its library made it, before the host wraps it for async calls.
pub enum RawInstance {
    Runtime(RuntimeObject),
    Agent(AgentObject),
    Workspace(WorkspaceObject),
    Scm(ScmObject),
    Sandbox(SandboxObject),
}

/// The operator's settings [`PluginRegistry::load_configured`] follows (the host reads them from
/// its config file; the conformance kit makes its own).
pub struct LoadSettings<'a> {
    /// Plugin name → `sha256:<hex>` its library must have.
    pub pins: &'a BTreeMap<String, String>,
    /// Plugins whose libraries run in child processes (`*`: every library).
    pub isolate: &'a [String],
    /// Plugins whose libraries are not loaded at all.
    pub skip: &'a [String],
    /// When set, only the libraries that provide one of these plugins are loaded: a command
    /// that acts for one session (the hook's budget check) loads no other library.
    pub only: Option<&'a [String]>,
    /// How long one call may take.
    pub call_timeout: Duration,
    /// How long a workspace's `create` may take (it runs the project's `post_create`).
    pub create_timeout: Duration,
}

impl PluginRegistry {
    /// Loads `files` in priority order. A library that fails is recorded and skipped; it never
    /// stops the others from loading.
    pub fn load(files: &[PathBuf]) -> Self {
        Self::load_pinned(files, &BTreeMap::new())
    }

    /// [`PluginRegistry::load`], refusing libraries whose digest differs from `pins`
    /// (plugin name → `sha256:<hex>`).
    pub fn load_pinned(files: &[PathBuf], pins: &BTreeMap<String, String>) -> Self {
        Self::load_isolating(files, pins, &[])
    }

    /// As the operator's settings say: `plugins.pin`, and `plugins.isolate` (those plugins'
    /// libraries are judged from their files and run in child processes; see `isolated`).
    pub fn load_configured(files: &[PathBuf], settings: &LoadSettings) -> Self {
        Self {
            create_timeout: Some(settings.create_timeout),
            ..Self::load_with(
                files,
                settings.pins,
                settings.isolate,
                settings.skip,
                settings.only,
                settings.call_timeout,
            )
        }
    }

    /// [`PluginRegistry::load_pinned`], isolating the libraries that provide a plugin named in
    /// `isolate` (`*`: every library).
    pub fn load_isolating(
        files: &[PathBuf],
        pins: &BTreeMap<String, String>,
        isolate: &[String],
    ) -> Self {
        Self::load_with(files, pins, isolate, &[], None, DEFAULT_START_TIMEOUT)
    }

    /// [`PluginRegistry::load_isolating`], not loading at all the libraries that provide a
    /// plugin named in `skip`, nor those that provide none of `only`'s, nor those whose every
    /// plugin an earlier library provides; a library whose start-up code runs longer than
    /// `start_timeout` ends the process.
    fn load_with(
        files: &[PathBuf],
        pins: &BTreeMap<String, String>,
        isolate: &[String],
        skip: &[String],
        only: Option<&[String]>,
        start_timeout: Duration,
    ) -> Self {
        let mut registry = Self {
            pins: pins.clone(),
            ..Self::default()
        };
        let isolated = |name: &str| isolate.iter().any(|n| n == "*" || n == name);
        let skipped = |name: &str| skip.iter().any(|n| n == name);
        let needed = |name: &str| only.is_none_or(|only| only.iter().any(|n| n == name));
        for file in files {
            let shadowed = |kind: InterfaceKind, name: &str| {
                registry.registered.contains_key(&(kind, name.to_string()))
            };
            let report = load_library_checked(
                file,
                &LoadPolicy {
                    pins,
                    isolated: &isolated,
                    skipped: &skipped,
                    needed: &needed,
                    shadowed: &shadowed,
                    start_timeout,
                },
            );
            match &report.outcome {
                Ok(plugins) => {
                    for plugin in plugins {
                        let key = (plugin.kind(), plugin.name().to_string());
                        if let Some(winner) = registry.registered.get(&key) {
                            tracing::debug!(
                                "{} plugin `{}` in {} is shadowed by {}",
                                key.0,
                                key.1,
                                file.display(),
                                winner.path.display()
                            );
                        } else {
                            registry.registered.insert(
                                key,
                                Registered {
                                    path: file.clone(),
                                    plugin: plugin.clone(),
                                },
                            );
                        }
                    }
                }
                Err(error) => tracing::debug!("{error}"),
            }
            registry.reports.push(report);
        }
        registry
    }

    /// What loading each candidate file gave, in search order.
    pub fn reports(&self) -> &[LibraryReport] {
        &self.reports
    }

    /// [`PluginRegistry::rows`] with each library's digest, for writing `plugins.pin`.
    pub fn rows_with_digests(&self) -> Vec<PluginRow> {
        let mut rows = self.rows();
        for row in &mut rows {
            row.digest = super::library::file_digest(&row.path).ok();
        }
        rows
    }

    /// Every candidate library found in `search`, as `ao-host plugins list` shows them.
    pub fn listing(&self, search: &[super::discovery::SearchDir]) -> PluginListing {
        PluginListing {
            search_dirs: search
                .iter()
                .map(|d| d.path.display().to_string())
                .collect(),
            host: HostAbi::current(),
            plugins: self.rows_with_digests(),
        }
    }

    /// One row per plugin of every candidate library (one row for a library that could not be
    /// read), in load order.
    pub fn rows(&self) -> Vec<PluginRow> {
        let mut rows = Vec::new();
        for report in &self.reports {
            let manifest = report.manifest.as_ref();
            let declared = report
                .manifest
                .as_ref()
                .map(|m| m.plugins.as_slice())
                .unwrap_or_default();
            let row =
                |kind: Option<String>, name: Option<String>, version: Option<String>| PluginRow {
                    path: report.path.clone(),
                    kind,
                    name,
                    version,
                    abi_level: manifest.and_then(|m| m.abi_level),
                    interface_revision: manifest.map(|m| m.interface_revision.clone()),
                    api_version: manifest.map(|m| m.api_version.clone()),
                    kit_version: manifest.and_then(|m| m.kit_version.clone()),
                    needs: manifest.map(|m| m.needs.clone()).unwrap_or_default(),
                    status: PluginStatus::Error,
                    reason: None,
                    digest: None,
                    isolated: false,
                    remote: false,
                };
            match &report.outcome {
                Err(error) if declared.is_empty() => rows.push(PluginRow {
                    reason: Some(error.to_string()),
                    ..row(None, None, None)
                }),
                Err(error) => rows.extend(declared.iter().map(|p| PluginRow {
                    reason: Some(error.to_string()),
                    ..row(
                        Some(p.kind_name.clone()),
                        Some(p.name.clone()),
                        Some(p.version.clone()),
                    )
                })),
                Ok(plugins) => rows.extend(plugins.iter().map(|p| {
                    let winner = &self.registered[&(p.kind(), p.name().to_string())];
                    let shadowed = winner.path != report.path;
                    PluginRow {
                        status: if shadowed {
                            PluginStatus::Shadowed
                        } else {
                            PluginStatus::Ok
                        },
                        reason: shadowed.then(|| format!("shadowed by {}", winner.path.display())),
                        isolated: matches!(p, LoadedPlugin::Isolated { .. }),
                        remote: p.remote(),
                        ..row(
                            Some(p.kind().to_string()),
                            Some(p.name().to_string()),
                            Some(p.version().to_string()),
                        )
                    }
                })),
            }
        }
        rows
    }

    /// Names of the usable plugins of one kind.
    pub fn names(&self, kind: InterfaceKind) -> Vec<&str> {
        self.registered
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, name)| name.as_str())
            .collect()
    }

    /// The library that provides a usable plugin.
    pub fn library_of(&self, kind: InterfaceKind, name: &str) -> Option<&Path> {
        self.registered
            .get(&(kind, name.to_string()))
            .map(|r| r.path.as_path())
    }

    /// Whether plugin (kind, `name`) is loaded and works on another host (`[remote]`).
    pub fn is_remote(&self, kind: InterfaceKind, name: &str) -> bool {
        self.registered
            .get(&(kind, name.to_string()))
            .is_some_and(|r| r.plugin.remote())
    }

    fn find(&self, kind: InterfaceKind, name: &str) -> Result<&Registered, RegistryError> {
        self.registered
            .get(&(kind, name.to_string()))
            .ok_or_else(|| {
                let loaded = self.names(kind);
                RegistryError::NotLoaded {
                    kind,
                    name: name.to_string(),
                    loaded: if loaded.is_empty() {
                        "none".to_string()
                    } else {
                        loaded.join(", ")
                    },
                }
            })
    }

    /// Builds an instance of the plugin (kind, `name`) with `context`; the constructor and then
    /// each call time out after `timeout`.
    pub fn instantiate(
        &self,
        kind: InterfaceKind,
        name: &str,
        context: &PluginContext,
        timeout: Duration,
    ) -> Result<PluginInstance, RegistryError> {
        self.instantiate_on(kind, name, context, None, timeout)
    }

    /// [`PluginRegistry::instantiate`] for the host `transport` reaches (`None`: this one).
    pub fn instantiate_on(
        &self,
        kind: InterfaceKind,
        name: &str,
        context: &PluginContext,
        transport: Option<&Transport>,
        timeout: Duration,
    ) -> Result<PluginInstance, RegistryError> {
        Ok(
            match self.construct(kind, name, context, transport, timeout)? {
                RawInstance::Runtime(o) => {
                    PluginInstance::Runtime(RuntimePlugin::new(name, o, timeout))
                }
                RawInstance::Agent(o) => PluginInstance::Agent(AgentPlugin::new(name, o, timeout)),
                RawInstance::Workspace(o) => {
                    PluginInstance::Workspace(WorkspacePlugin::new(name, o, timeout))
                }
                RawInstance::Scm(o) => PluginInstance::Scm(ScmPlugin::new(name, o, timeout)),
                RawInstance::Sandbox(o) => {
                    PluginInstance::Sandbox(SandboxPlugin::new(name, o, timeout))
                }
            },
        )
    }

    /// Runs the plugin's constructor (in a child process, for an isolated one), waiting at most
    /// `timeout`; with `transport`, the one for the host it reaches, refused for a plugin not
    /// marked `[remote]`.
    pub fn construct(
        &self,
        kind: InterfaceKind,
        name: &str,
        context: &PluginContext,
        transport: Option<&Transport>,
        timeout: Duration,
    ) -> Result<RawInstance, RegistryError> {
        let registered = self.find(kind, name)?;
        if let Some(transport) = transport {
            if !registered.plugin.remote() {
                return Err(RegistryError::NotRemote {
                    kind,
                    name: name.to_string(),
                    path: registered.path.clone(),
                    host: transport.host.to_string(),
                    why: "it is not marked `[remote]` in its `export_plugins!` (built before ao-plugin-api 0.1.6, or its author has not made it go through the plugin-API helpers only); run its sessions on this machine, or use a plugin that is",
                });
            }
        }
        let built = match &registered.plugin {
            LoadedPlugin::InProcess(declaration, remote) => {
                let (constructor, remote) = (declaration.constructor, *remote);
                let (context, owned_name) = (context.clone(), name.to_string());
                let transport = transport.cloned();
                within(timeout, move || {
                    let _running = super::crash::enter(kind, &owned_name, "its constructor (new)");
                    match (transport, remote) {
                        (Some(transport), Some(remote)) => match remote {
                            RemoteConstructor::Runtime(construct) => {
                                construct(&context, &transport)
                                    .into_result()
                                    .map(RawInstance::Runtime)
                            }
                            RemoteConstructor::Agent(construct) => construct(&context, &transport)
                                .into_result()
                                .map(RawInstance::Agent),
                            RemoteConstructor::Workspace(construct) => {
                                construct(&context, &transport)
                                    .into_result()
                                    .map(RawInstance::Workspace)
                            }
                        },
                        _ => match constructor {
                            PluginConstructor::Runtime(construct) => {
                                construct(&context).into_result().map(RawInstance::Runtime)
                            }
                            PluginConstructor::Agent(construct) => {
                                construct(&context).into_result().map(RawInstance::Agent)
                            }
                            PluginConstructor::Workspace(construct) => construct(&context)
                                .into_result()
                                .map(RawInstance::Workspace),
                        },
                    }
                })
            }
            LoadedPlugin::InProcessAdded {
                constructor,
                remote,
                ..
            } => {
                let (constructor, remote, context) = (*constructor, *remote, context.clone());
                let owned_name = name.to_string();
                let transport = transport.cloned();
                within(timeout, move || {
                    let _running = super::crash::enter(kind, &owned_name, "its constructor (new)");
                    let failed = |failure| super::successors::plugin_error(failure, &owned_name);
                    match (transport, remote, constructor) {
                        (
                            Some(transport),
                            Some(AddedKindRemoteConstructor::Sandbox(construct)),
                            _,
                        ) => construct(&context, &transport)
                            .into_result()
                            .map(RawInstance::Sandbox)
                            .map_err(failed),
                        (_, _, AddedKindConstructor::Scm(construct)) => construct(&context)
                            .into_result()
                            .map(RawInstance::Scm)
                            .map_err(failed),
                        (_, _, AddedKindConstructor::Sandbox(construct)) => construct(&context)
                            .into_result()
                            .map(RawInstance::Sandbox)
                            .map_err(failed),
                        _ => Err(PluginError::unsupported(format!(
                            "this ao-host cannot build a {kind} plugin"
                        ))),
                    }
                })
            }
            LoadedPlugin::FirstRelease(declaration) => {
                let constructor = declaration.constructor;
                let (context, owned_name) = (context.clone(), name.to_string());
                within(timeout, move || {
                    let _running = super::crash::enter(kind, &owned_name, "its constructor (new)");
                    match constructor {
                        first_release::PluginConstructor::Runtime(construct) => {
                            construct(&context).into_result().map(RawInstance::Runtime)
                        }
                        first_release::PluginConstructor::Agent(construct) => construct(&context)
                            .into_result()
                            .map(|o| RawInstance::Agent(first_release::agent(o))),
                        first_release::PluginConstructor::Workspace(construct) => {
                            construct(&context)
                                .into_result()
                                .map(|o| RawInstance::Workspace(first_release::workspace(o)))
                        }
                    }
                })
            }
            // Never registered: every plugin of such a library is provided by another.
            LoadedPlugin::Unloaded { .. } => Some(Err(PluginError::unavailable(format!(
                "{} is not loaded: a library found before it provides `{name}`",
                registered.path.display()
            )))),
            // Bounded by `timeout` itself: the child is killed if it does not answer.
            LoadedPlugin::Isolated { .. } => {
                Some(self.start_isolated(registered, kind, name, context, transport, timeout))
            }
        };
        match built {
            None => Err(RegistryError::ConstructTimeout {
                kind,
                name: name.to_string(),
                path: registered.path.clone(),
                timeout,
            }),
            Some(built) => built.map_err(|error| RegistryError::Construct {
                kind,
                name: name.to_string(),
                path: registered.path.clone(),
                error,
            }),
        }
    }

    /// Starts the child process that runs an isolated plugin: this very program, serving it.
    fn start_isolated(
        &self,
        registered: &Registered,
        kind: InterfaceKind,
        name: &str,
        context: &PluginContext,
        transport: Option<&Transport>,
        timeout: Duration,
    ) -> Result<RawInstance, PluginError> {
        let program = std::env::current_exe().map_err(|e| {
            PluginError::unavailable(format!(
                "cannot find this program to run the isolated plugin in: {e}"
            ))
        })?;
        let hello = Hello {
            library: registered.path.clone(),
            kind,
            name: name.to_string(),
            context: context.clone(),
            transport: transport.cloned(),
            pins: self.pins.clone(),
            timeout_ms: timeout.as_millis() as u64,
            create_timeout_ms: self.create_timeout.unwrap_or(timeout).as_millis() as u64,
        };
        Ok(match kind {
            InterfaceKind::Runtime => {
                RawInstance::Runtime(isolated::start_runtime(program, hello)?)
            }
            InterfaceKind::Agent => RawInstance::Agent(isolated::start_agent(program, hello)?),
            InterfaceKind::Workspace => {
                RawInstance::Workspace(isolated::start_workspace(program, hello)?)
            }
            InterfaceKind::Scm => RawInstance::Scm(isolated::start_scm(program, hello)?),
            InterfaceKind::Sandbox => {
                RawInstance::Sandbox(isolated::start_sandbox(program, hello)?)
            }
            _ => {
                return Err(PluginError::unsupported(format!(
                    "this ao-host cannot run a {kind} plugin isolated"
                )))
            }
        })
    }

    pub fn runtime(
        &self,
        name: &str,
        context: &PluginContext,
        timeout: Duration,
    ) -> Result<RuntimePlugin, RegistryError> {
        match self.instantiate(InterfaceKind::Runtime, name, context, timeout)? {
            PluginInstance::Runtime(plugin) => Ok(plugin),
            _ => unreachable!("registered under its constructor's kind"),
        }
    }

    pub fn agent(
        &self,
        name: &str,
        context: &PluginContext,
        timeout: Duration,
    ) -> Result<AgentPlugin, RegistryError> {
        match self.instantiate(InterfaceKind::Agent, name, context, timeout)? {
            PluginInstance::Agent(plugin) => Ok(plugin),
            _ => unreachable!("registered under its constructor's kind"),
        }
    }

    pub fn workspace(
        &self,
        name: &str,
        context: &PluginContext,
        timeout: Duration,
    ) -> Result<WorkspacePlugin, RegistryError> {
        match self.instantiate(InterfaceKind::Workspace, name, context, timeout)? {
            PluginInstance::Workspace(plugin) => Ok(plugin),
            _ => unreachable!("registered under its constructor's kind"),
        }
    }

    /// The scm plugin `name`: what a code host says about the sessions' branches.
    pub fn scm(
        &self,
        name: &str,
        context: &PluginContext,
        timeout: Duration,
    ) -> Result<ScmPlugin, RegistryError> {
        match self.instantiate(InterfaceKind::Scm, name, context, timeout)? {
            PluginInstance::Scm(plugin) => Ok(plugin),
            _ => unreachable!("registered under its constructor's kind"),
        }
    }

    /// The sandbox plugin `name`, confining agents on the host `transport` reaches (`None`:
    /// this one); refused for a plugin not marked `[remote]` when `transport` is set.
    pub fn sandbox(
        &self,
        name: &str,
        context: &PluginContext,
        transport: Option<&Transport>,
        timeout: Duration,
    ) -> Result<SandboxPlugin, RegistryError> {
        match self.instantiate_on(InterfaceKind::Sandbox, name, context, transport, timeout)? {
            PluginInstance::Sandbox(plugin) => Ok(plugin),
            _ => unreachable!("registered under its constructor's kind"),
        }
    }

    /// The kinds under which a plugin named `name` is loaded, for a message that says what a
    /// name the operator wrote is, when it is not what the setting wants.
    pub fn kinds_of(&self, name: &str) -> Vec<InterfaceKind> {
        self.registered
            .keys()
            .filter(|(_, n)| n == name)
            .map(|(kind, _)| *kind)
            .collect()
    }

    /// Builds (and drops) an instance of every usable plugin of `library`, so that `plugins
    /// check` also proves the constructor accepts the operator's settings.
    pub fn try_construct_all(
        &self,
        library: &Path,
        context_for: impl Fn(&str) -> PluginContext,
        timeout: Duration,
    ) -> Vec<(String, Result<(), RegistryError>)> {
        self.registered
            .iter()
            .filter(|(_, r)| r.path == library)
            .map(|((kind, name), _)| {
                let outcome = self
                    .instantiate(*kind, name, &context_for(name), timeout)
                    .map(drop);
                (name.clone(), outcome)
            })
            .collect()
    }
}
