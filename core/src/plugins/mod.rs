//! Plugins, as the host's config sets them up: the loading, judging and calling itself is the
//! plugin host crate's ([`ao_plugin_host`]), re-exported here under the paths the host uses.
//!
//! - [`set`] is the runtime, agent and workspace a session uses, and the context plugins get.
//! - [`load_configured`] loads libraries as the operator's config says.
//! - [`check_scm_choice`] judges a setting that names an scm plugin.

pub mod set;

use std::{path::PathBuf, time::Duration};

use ao_plugin_api::InterfaceKind;
pub use ao_plugin_host::{
    crash, discovery, instance, isolated, library, process_state, registry, successors,
    AgentPlugin, HostAbi, LibraryReport, LoadError, LoadSettings, ManifestInfo, PluginCallError,
    PluginRegistry, PluginRow, PluginStatus, RegistryError, RuntimePlugin, ScmPlugin,
    WorkspacePlugin,
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

/// A setting that names an scm plugin names something else.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScmChoiceError {
    #[error("{setting} in {config} names `{name}`, which is a {kinds} plugin, not an scm plugin; name one of the loaded scm plugins ({loaded}), or run `ao-host plugins list`")]
    NotScm {
        setting: String,
        config: String,
        name: String,
        kinds: String,
        loaded: String,
    },
    #[error("{setting} in {config} names `{name}`, but no scm plugin of that name is loaded (loaded scm plugins: {loaded}); check the name, or run `ao-host plugins list`")]
    NotLoaded {
        setting: String,
        config: String,
        name: String,
        loaded: String,
    },
}

/// Whether `name`, written in the config field `setting` of the file `config`, is a loaded scm
/// plugin; if not, what it is instead.
pub fn check_scm_choice(
    registry: &PluginRegistry,
    name: &str,
    setting: &str,
    config: &str,
) -> Result<(), ScmChoiceError> {
    if registry.library_of(InterfaceKind::Scm, name).is_some() {
        return Ok(());
    }
    let loaded = registry.names(InterfaceKind::Scm);
    let loaded = if loaded.is_empty() {
        "none".to_string()
    } else {
        loaded.join(", ")
    };
    let (setting, config, name) = (setting.to_string(), config.to_string(), name.to_string());
    let kinds: Vec<&str> = registry
        .kinds_of(&name)
        .iter()
        .map(|k| k.as_str())
        .collect();
    Err(if kinds.is_empty() {
        ScmChoiceError::NotLoaded {
            setting,
            config,
            name,
            loaded,
        }
    } else {
        ScmChoiceError::NotScm {
            setting,
            config,
            name,
            kinds: kinds.join(" and "),
            loaded,
        }
    })
}
