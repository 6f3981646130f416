//! Reading a plugin's own settings from its [`PluginContext`].

use serde::de::DeserializeOwned;

use crate::{error::PluginError, types::PluginContext};

impl PluginContext {
    /// Parses `plugins.config.<name>` into the plugin's settings type.
    ///
    /// No settings at all gives `T::default()`. Mark the type `#[serde(deny_unknown_fields)]` so
    /// a typo is an error naming the key rather than a silently ignored setting.
    pub fn parse_config<T: DeserializeOwned + Default>(&self) -> Result<T, PluginError> {
        let text = self.config_yaml.as_str();
        if text.trim().is_empty() {
            return Ok(T::default());
        }
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| self.bad_config(e))?;
        if value.is_null() {
            return Ok(T::default());
        }
        serde_yaml::from_value(value).map_err(|e| self.bad_config(e))
    }

    fn bad_config(&self, error: serde_yaml::Error) -> PluginError {
        PluginError::config(format!(
            "plugins.config.{}: {error}; fix the setting in ao-rs.yaml",
            self.plugin_name
        ))
    }
}
