//! Reading a plugin's own settings from its [`PluginContext`], and a project's `agent_config`
//! from an [`AgentSession`]. Traits, because both types belong to `ao-plugin-api`; bring them in
//! with `use ao_plugin_kit::prelude::*`.

use std::path::Path;

use serde::de::DeserializeOwned;

use ao_plugin_api::{AgentSession, PluginContext, PluginError};

use crate::data_dir_id::DataDirId;

/// What the kit reads from an [`AgentSession`].
pub trait SessionExt {
    /// Parses the project's `agent_config` (`projects.<id>.agent_config`) into the agent's
    /// per-project settings. Nothing configured gives `T::default()`. An error names the field,
    /// `plugin` and the keys it accepts (`accepted`, e.g. `"model, approval_policy"`), so the
    /// operator sees the fix.
    fn agent_config<T: DeserializeOwned + Default>(
        &self,
        plugin: &str,
        accepted: &str,
    ) -> Result<T, PluginError>;
}

impl SessionExt for AgentSession {
    fn agent_config<T: DeserializeOwned + Default>(
        &self,
        plugin: &str,
        accepted: &str,
    ) -> Result<T, PluginError> {
        let text = self.agent_config.as_str();
        if text.trim().is_empty() {
            return Ok(T::default());
        }
        serde_yaml::from_str::<Option<T>>(text)
            .map(Option::unwrap_or_default)
            .map_err(|e| {
                PluginError::config(format!(
                    "projects.{}.agent_config: {e}; {plugin} accepts {accepted}",
                    self.project_id
                ))
            })
    }
}

/// What the kit reads from a [`PluginContext`].
pub trait ContextExt {
    /// Parses `plugins.config.<name>` into the plugin's settings type.
    ///
    /// No settings at all gives `T::default()`. Mark the type `#[serde(deny_unknown_fields)]` so
    /// a typo is an error naming the key rather than a silently ignored setting.
    fn parse_config<T: DeserializeOwned + Default>(&self) -> Result<T, PluginError>;

    /// A short tag for the host's data dir: the first 8 lowercase hex digits of the FNV-1a
    /// 64-bit hash of `data_dir`'s bytes.
    ///
    /// Two ao-host installations (two data dirs) may share one tmux server or one repository;
    /// putting this tag in the names of what a plugin makes keeps their names from colliding
    /// (both may have a session `app-1`). It is stable across runs and versions, so names made
    /// yesterday still match. It only avoids collisions: to decide what belongs to this data
    /// dir (what `gc` may remove), record `data_dir` itself on what you make and compare it
    /// exactly, accepting [`ContextExt::owner_aliases`] too (the data dir's paths before a
    /// move, which changes its tag).
    fn owner_tag(&self) -> String;

    /// The earlier paths of this data dir, which plugins accept as owners alongside
    /// `data_dir` itself: what they marked before a move is still this data dir's. Empty when
    /// the id file is missing, unreadable or not yet confirmed at this path by the host (a copy
    /// the host has not opened): nothing is claimed on a guess.
    fn owner_aliases(&self) -> Vec<String>;
}

impl ContextExt for PluginContext {
    fn parse_config<T: DeserializeOwned + Default>(&self) -> Result<T, PluginError> {
        let text = self.config_yaml.as_str();
        if text.trim().is_empty() {
            return Ok(T::default());
        }
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| bad_config(self, e))?;
        if value.is_null() {
            return Ok(T::default());
        }
        serde_yaml::from_value(value).map_err(|e| bad_config(self, e))
    }

    fn owner_tag(&self) -> String {
        const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let hash = self
            .data_dir
            .as_bytes()
            .iter()
            .fold(OFFSET_BASIS, |hash, byte| {
                (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
            });
        format!("{:08x}", hash >> 32)
    }

    fn owner_aliases(&self) -> Vec<String> {
        match DataDirId::read(Path::new(self.data_dir.as_str())) {
            Ok(Some(id)) if id.path == self.data_dir.as_str() => id.earlier_paths,
            _ => Vec::new(),
        }
    }
}

fn bad_config(context: &PluginContext, error: serde_yaml::Error) -> PluginError {
    PluginError::config(format!(
        "plugins.config.{}: {error}; fix the setting in ao-rs.yaml",
        context.plugin_name
    ))
}

#[cfg(test)]
mod tests {
    use ao_plugin_api::{abi_stable::std_types::RString, PluginContext};

    use super::ContextExt;

    fn context(data_dir: &str) -> PluginContext {
        PluginContext {
            plugin_name: RString::from("p"),
            data_dir: RString::from(data_dir),
            config_yaml: RString::new(),
        }
    }

    #[test]
    fn the_owner_tag_is_fnv1a_of_the_data_dir() {
        // FNV-1a 64 of "" is the offset basis, of "a" 0xaf63dc4c8601ec8c (reference values).
        assert_eq!(context("").owner_tag(), "cbf29ce4");
        assert_eq!(context("a").owner_tag(), "af63dc4c");
        let tag = context("/home/me/.ao-rs").owner_tag();
        assert_eq!(tag.len(), 8);
        assert!(tag
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(tag, context("/home/me/.ao-rs2").owner_tag());
    }
}
