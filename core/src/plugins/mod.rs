//! Plugins, as the host's config sets them up: the loading, judging and calling itself is the
//! plugin host crate's ([`ao_plugin_host`]), re-exported here under the paths the host uses.
//!
//! - [`set`] is the runtime, agent and workspace a session uses, and the context plugins get.
//! - [`load_configured`] loads libraries as the operator's config says.

pub mod set;

use std::{path::PathBuf, time::Duration};

pub use ao_plugin_host::{
    crash, discovery, instance, isolated, library, process_state, registry, successors,
    AgentPlugin, HostAbi, LibraryReport, LoadError, LoadSettings, ManifestInfo, PluginCallError,
    PluginRegistry, PluginRow, PluginStatus, RegistryError, RuntimePlugin, WorkspacePlugin,
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
            call_timeout: Duration::from_millis(config.call_timeout_ms),
            create_timeout: Duration::from_millis(config.workspace_timeout_ms),
        },
    )
}
