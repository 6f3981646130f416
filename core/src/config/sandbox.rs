//! `sandbox:` in `defaults:` and per project: which sandbox plugin confines a project's agents,
//! and the parts of the policy the operator chooses (network, extra writable and hidden paths,
//! variables to pass, the agent's no-prompt mode). The rest of the policy is fixed by the host
//! (see `lifecycle::sandbox`), so a config can widen a confinement only by naming what it widens.
//!
//! A project's section overrides `defaults.sandbox` key by key. Paths are kept as written
//! (absolute, or under `~/`) and placed at spawn time, on the machine the agent runs on: `~` is
//! that machine's home, not necessarily this one's.

use std::path::{Component, Path, PathBuf};

use ao_plugin_api::sandbox::NetworkAccess;
use serde::Deserialize;

use super::VariableNames;

/// `sandbox:` as written; every key optional so a project overrides `defaults.sandbox` key by
/// key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SandboxSection {
    pub plugin: Option<String>,
    pub network: Option<String>,
    pub writable: Option<Vec<String>>,
    pub hidden: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub unattended: Option<bool>,
    pub orchestrator: Option<bool>,
}

impl SandboxSection {
    /// `self` (the defaults) with every key `project` sets replaced by the project's value.
    pub fn overlay(self, project: Option<SandboxSection>) -> Self {
        let Some(project) = project else {
            return self;
        };
        Self {
            plugin: project.plugin.or(self.plugin),
            network: project.network.or(self.network),
            writable: project.writable.or(self.writable),
            hidden: project.hidden.or(self.hidden),
            env: project.env.or(self.env),
            unattended: project.unattended.or(self.unattended),
            orchestrator: project.orchestrator.or(self.orchestrator),
        }
    }
}

/// The word that turns a sandbox off (`sandbox: { plugin: off }`, `spawn --sandbox off`).
pub const SANDBOX_OFF: &str = "off";

/// A path as the config gives it: absolute, or under the home folder of the machine the agent
/// runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxPath {
    Absolute(PathBuf),
    /// Relative to `$HOME` (empty: `$HOME` itself).
    UnderHome(PathBuf),
}

impl SandboxPath {
    /// Checks one entry of the list `at` (for messages).
    fn parse(at: &str, raw: &str) -> Result<Self, String> {
        let fix = "write an absolute path (`/srv/cache`) or one under your home (`~/.cache/pip`)";
        if raw.contains('\0') {
            return Err(format!("{at}: {raw:?} contains a NUL byte; {fix}"));
        }
        let path = if raw == "~" {
            Self::UnderHome(PathBuf::new())
        } else if let Some(rest) = raw.strip_prefix("~/") {
            Self::UnderHome(PathBuf::from(rest.trim_start_matches('/')))
        } else if Path::new(raw).is_absolute() {
            Self::Absolute(PathBuf::from(raw))
        } else {
            return Err(format!(
                "{at}: {raw:?} is a relative path, which would mean something else in every worktree; {fix}"
            ));
        };
        let inner = match &path {
            Self::Absolute(p) | Self::UnderHome(p) => p,
        };
        if inner.components().any(|c| c == Component::ParentDir) {
            return Err(format!(
                "{at}: {raw:?} goes up with `..`, so what it names is not what it reads as; {fix}"
            ));
        }
        Ok(path)
    }

    /// The path on a machine whose home folder is `home`.
    pub fn on(&self, home: &Path) -> PathBuf {
        match self {
            Self::Absolute(path) => path.clone(),
            Self::UnderHome(rest) if rest.as_os_str().is_empty() => home.to_path_buf(),
            Self::UnderHome(rest) => home.join(rest),
        }
    }
}

/// A project's sandbox settings, with `defaults.sandbox` applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The sandbox plugin that confines the project's sessions; `None`: they run unconfined
    /// unless a spawn names one.
    pub plugin: Option<String>,
    pub network: NetworkAccess,
    /// Paths the agent may write besides what the host gives it.
    pub writable: Vec<SandboxPath>,
    /// Paths hidden besides the host's list of secrets.
    pub hidden: Vec<SandboxPath>,
    /// Variables of the operator's environment the agent gets besides the allow-list.
    pub env: VariableNames,
    /// Start agents in their own no-prompt mode (only ever inside a sandbox).
    pub unattended: bool,
    /// Confine orchestrators too (they run `ao-host` for the operator, so they are not by
    /// default).
    pub orchestrator: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            plugin: None,
            network: NetworkAccess::Full,
            writable: Vec::new(),
            hidden: Vec::new(),
            env: VariableNames::default(),
            unattended: false,
            orchestrator: false,
        }
    }
}

impl SandboxConfig {
    /// `section` as found at `at` (`defaults.sandbox`, `projects.app.sandbox`), checked.
    pub(super) fn from_section(at: &str, section: SandboxSection) -> Result<Self, String> {
        let plugin = match section.plugin {
            None => None,
            Some(name) if name == SANDBOX_OFF => None,
            Some(name) => {
                ao_plugin_kit::validate::validate_id("sandbox plugin", &name).map_err(|e| {
                    format!(
                        "{at}.plugin: {}; name a sandbox plugin (`bubblewrap`), or `off`",
                        e.message()
                    )
                })?;
                Some(name)
            }
        };
        let network = match section.network.as_deref() {
            None | Some("full") => NetworkAccess::Full,
            Some("none") => NetworkAccess::None,
            Some(other) => {
                return Err(format!(
                    "{at}.network: {other:?} is not a network setting; write `full` (the agent reaches what this machine reaches) or `none` (nothing, not even this machine's loopback services)"
                ))
            }
        };
        let paths = |key: &str, list: Option<Vec<String>>| {
            list.unwrap_or_default()
                .iter()
                .map(|raw| SandboxPath::parse(&format!("{at}.{key}"), raw))
                .collect::<Result<Vec<_>, _>>()
        };
        let env = section.env.unwrap_or_default();
        if env.iter().any(|name| name == "*") {
            return Err(format!(
                "{at}.env: `*` would pass every variable, secrets included; name the variables the agent needs (`HTTPS_PROXY`, `PIP_*`)"
            ));
        }
        let unattended = section.unattended.unwrap_or(false);
        if unattended && plugin.is_none() {
            return Err(format!(
                "{at}.unattended: true starts agents without asking permission for anything, which is allowed only inside a sandbox; set `{at}.plugin` (e.g. `sandbox: {{ plugin: bubblewrap, unattended: true }}`) or set `unattended: false`"
            ));
        }
        Ok(Self {
            plugin,
            network,
            writable: paths("writable", section.writable)?,
            hidden: paths("hidden", section.hidden)?,
            env: VariableNames::from_list(&format!("{at}.env"), env)?,
            unattended,
            orchestrator: section.orchestrator.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/ao/ao-rs.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_project_overrides_the_defaults_key_by_key() {
        let config = parse(
            "defaults:\n  sandbox: { plugin: bubblewrap, network: none, hidden: [~/.private] }\nprojects:\n  app: { repo: /a, sandbox: { network: full, writable: [/srv/cache] } }\n  web: { repo: /w }\n  raw: { repo: /r, sandbox: { plugin: off } }\n",
        )
        .unwrap();
        let app = &config.projects["app"].sandbox;
        assert_eq!(app.plugin.as_deref(), Some("bubblewrap"));
        assert_eq!(app.network, NetworkAccess::Full);
        assert_eq!(
            app.writable,
            [SandboxPath::Absolute(PathBuf::from("/srv/cache"))]
        );
        assert_eq!(
            app.hidden,
            [SandboxPath::UnderHome(PathBuf::from(".private"))]
        );
        let web = &config.projects["web"].sandbox;
        assert_eq!(web.network, NetworkAccess::None);
        assert_eq!(web, &config.sandbox);
        assert_eq!(config.projects["raw"].sandbox.plugin, None);
        assert_eq!(parse("").unwrap().sandbox, SandboxConfig::default());
    }

    #[test]
    fn home_paths_are_placed_on_the_machine_the_agent_runs_on() {
        let home = Path::new("/home/dev");
        for (raw, placed) in [
            ("~", "/home/dev"),
            ("~/.cache", "/home/dev/.cache"),
            ("/srv/x", "/srv/x"),
        ] {
            let path = SandboxPath::parse("x", raw).unwrap();
            assert_eq!(path.on(home), Path::new(placed), "{raw}");
        }
    }

    #[test]
    fn bad_settings_name_the_field_and_the_fix() {
        for (text, want) in [
            (
                "defaults: { sandbox: { network: some } }\n",
                "defaults.sandbox.network: \"some\"",
            ),
            (
                "defaults: { sandbox: { plugin: bubblewrap, writable: [cache] } }\n",
                "defaults.sandbox.writable: \"cache\" is a relative path",
            ),
            (
                "projects: { app: { repo: /a, sandbox: { hidden: [\"/a/../etc\"] } } }\n",
                "projects.app.sandbox.hidden: \"/a/../etc\" goes up",
            ),
            (
                "projects: { app: { repo: /a, sandbox: { hidden: [\"/a\\0b\"] } } }\n",
                "NUL",
            ),
            (
                "defaults: { sandbox: { env: [\"A B\"] } }\n",
                "defaults.sandbox.env: \"A B\" is not a variable name",
            ),
            (
                "defaults: { sandbox: { env: [\"*\"] } }\n",
                "every variable",
            ),
            (
                "defaults: { sandbox: { plugin: \"../x\" } }\n",
                "defaults.sandbox.plugin",
            ),
            (
                "defaults: { sandbox: { plugins: bubblewrap } }\n",
                "unknown field `plugins`",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert!(
                error.contains(want) && error.contains("/etc/ao/ao-rs.yaml"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn unattended_without_a_sandbox_is_refused_naming_both_settings() {
        for text in [
            "defaults: { sandbox: { unattended: true } }\n",
            "defaults: { sandbox: { plugin: bubblewrap, unattended: true } }\nprojects: { app: { repo: /a, sandbox: { plugin: off } } }\n",
        ] {
            let error = parse(text).unwrap_err();
            assert!(
                error.contains("unattended") && error.contains("plugin: bubblewrap"),
                "{text}: {error}"
            );
        }
        let config =
            parse("defaults: { sandbox: { plugin: bubblewrap, unattended: true } }\n").unwrap();
        assert!(config.sandbox.unattended);
    }
}
