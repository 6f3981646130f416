//! Plugins, as the host's config sets them up: the loading, judging and calling itself is the
//! plugin host crate's ([`ao_plugin_host`]), re-exported here under the paths the host uses.
//!
//! - [`set`] is the runtime, agent and workspace a session uses, and the context plugins get.
//! - [`load_configured`] loads libraries as the operator's config says.
//! - [`check_plugin_choice`] judges a setting that names a plugin of one kind (an scm plugin,
//!   a sandbox plugin).

pub mod set;

use std::{path::PathBuf, time::Duration};

use ao_plugin_api::InterfaceKind;
pub use ao_plugin_host::{
    crash, discovery, instance, isolated, library, process_state, registry, successors,
    AgentPlugin, HostAbi, LibraryReport, LoadError, LoadSettings, ManifestInfo, PluginCallError,
    PluginRegistry, PluginRow, PluginStatus, RegistryError, RuntimePlugin, SandboxPlugin,
    ScmPlugin, WorkspacePlugin,
};

pub use self::set::PluginSet;
use crate::config::Config;

/// Loads `files` in priority order as `config` says: `plugins.pin`, `plugins.isolate`,
/// `plugins.skip` and the call timeouts.
pub fn load_configured(files: &[PathBuf], config: &Config) -> PluginRegistry {
    PluginRegistry::load_configured(
        files,
        &LoadSettings {
            pins: &config.plugin_pins,
            isolate: &config.plugin_isolate,
            skip: &config.plugin_skip,
            only: config.plugin_only.as_deref(),
            call_timeout: Duration::from_millis(config.call_timeout_ms),
            create_timeout: Duration::from_millis(config.workspace_timeout_ms),
        },
    )
}

/// A setting that names a plugin of one kind (`projects.app.scm`, `sandbox.plugin`) names
/// something else.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginChoiceError {
    #[error("{setting} in {config} names `{name}`, which is {kinds} plugin, not {wanted} plugin; name one of the loaded {kind} plugins ({loaded}), or run `ao-host plugins list`", kinds = a_kind_list(.kinds), wanted = a_kind(*.kind))]
    WrongKind {
        kind: InterfaceKind,
        setting: String,
        config: String,
        name: String,
        kinds: Vec<InterfaceKind>,
        loaded: String,
    },
    #[error("{setting} in {config} names `{name}`, but no {kind} plugin of that name is loaded (loaded {kind} plugins: {loaded}); check the name, or run `ao-host plugins list`")]
    NotLoaded {
        kind: InterfaceKind,
        setting: String,
        config: String,
        name: String,
        loaded: String,
    },
}

/// `kind` with its article, as a sentence says it ("an scm", "a sandbox").
fn a_kind(kind: InterfaceKind) -> String {
    match kind {
        InterfaceKind::Agent | InterfaceKind::Scm => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

/// "a runtime and agent": the kinds a name is loaded under.
fn a_kind_list(kinds: &[InterfaceKind]) -> String {
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    match kinds.first() {
        Some(first) => {
            let article = a_kind(*first);
            let article = article.split(' ').next().unwrap_or("a");
            format!("{article} {}", names.join(" and "))
        }
        None => "no".to_string(),
    }
}

/// Whether `name`, written in the config field `setting` of the file `config`, is a loaded
/// plugin of `kind`; if not, what it is instead.
pub fn check_plugin_choice(
    registry: &PluginRegistry,
    kind: InterfaceKind,
    name: &str,
    setting: &str,
    config: &str,
) -> Result<(), PluginChoiceError> {
    if registry.library_of(kind, name).is_some() {
        return Ok(());
    }
    let loaded = registry.names(kind);
    let loaded = if loaded.is_empty() {
        "none".to_string()
    } else {
        loaded.join(", ")
    };
    let (setting, config, name) = (setting.to_string(), config.to_string(), name.to_string());
    let kinds = registry.kinds_of(&name);
    Err(if kinds.is_empty() {
        PluginChoiceError::NotLoaded {
            kind,
            setting,
            config,
            name,
            loaded,
        }
    } else {
        PluginChoiceError::WrongKind {
            kind,
            setting,
            config,
            name,
            kinds,
            loaded,
        }
    })
}
