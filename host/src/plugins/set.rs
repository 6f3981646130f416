//! The runtime, agent and workspace a session uses, built from the registry and the config.

use std::{path::Path, time::Duration};

use ao_plugin_api::{abi_stable::std_types::RString, PluginContext};

use super::{AgentPlugin, PluginRegistry, RegistryError, RuntimePlugin, WorkspacePlugin};
use crate::config::{Config, PluginChoice};

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

impl PluginSet {
    pub fn build(
        registry: &PluginRegistry,
        config: &Config,
        choice: &PluginChoice,
    ) -> Result<Self, RegistryError> {
        let timeout = Duration::from_millis(config.call_timeout_ms);
        let context = |name: &str| plugin_context(config, &config.data_dir, name);
        Ok(Self {
            runtime: registry.runtime(&choice.runtime, &context(&choice.runtime), timeout)?,
            agent: registry.agent(&choice.agent, &context(&choice.agent), timeout)?,
            workspace: registry.workspace(
                &choice.workspace,
                &context(&choice.workspace),
                timeout,
            )?,
        })
    }
}
