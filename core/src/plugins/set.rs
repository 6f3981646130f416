//! The runtime, agent and workspace a session uses, and the context plugins are built with.

use std::path::Path;

use ao_plugin_api::{abi_stable::std_types::RString, PluginContext};

use super::{AgentPlugin, RuntimePlugin, WorkspacePlugin};
use crate::config::Config;

/// One instance of each kind, as chosen for a project (or a session's record).
#[derive(Clone)]
pub struct PluginSet {
    pub runtime: RuntimePlugin,
    pub agent: AgentPlugin,
    pub workspace: WorkspacePlugin,
}

/// The context a plugin named `name` is constructed with under `config`.
pub fn plugin_context(config: &Config, data_dir: &Path, name: &str) -> PluginContext {
    PluginContext {
        plugin_name: RString::from(name),
        data_dir: RString::from(data_dir.display().to_string()),
        config_yaml: RString::from(config.plugin_settings(name)),
    }
}
