//! `ao-rs.yaml`: finding it, parsing it strictly, and filling in defaults.
//!
//! Strict because a typo in a key must not silently change what an agent does: unknown keys,
//! wrong types and missing fields are errors naming the file, the line and the key.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;

/// The file name looked for in the current directory.
pub const CONFIG_FILE_NAME: &str = "ao-rs.yaml";
/// Environment variable naming the config file (also exported to agents).
pub const CONFIG_PATH_ENV: &str = "AO_CONFIG_PATH";

const DEFAULT_RUNTIME: &str = "tmux";
const DEFAULT_WORKSPACE: &str = "git-worktree";
const DEFAULT_AGENT: &str = "claude-code";
const DEFAULT_PORT: u16 = 3000;
const DEFAULT_READY_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_CALL_TIMEOUT_MS: u64 = 60_000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot determine the data directory: $HOME is not set; set `data_dir` in {CONFIG_FILE_NAME} or pass --data-dir")]
    NoHome,
}

/// The file as written, before defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    data_dir: Option<String>,
    port: Option<u16>,
    #[serde(default)]
    plugins: PluginsSection,
    #[serde(default)]
    defaults: DefaultsSection,
    #[serde(default)]
    projects: BTreeMap<String, ProjectSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginsSection {
    #[serde(default)]
    dirs: Vec<String>,
    #[serde(default)]
    config: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    pin: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsSection {
    runtime: Option<String>,
    workspace: Option<String>,
    agent: Option<String>,
    ready_timeout_ms: Option<u64>,
    call_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectSection {
    repo: String,
    default_branch: Option<String>,
    session_prefix: Option<String>,
    #[serde(default)]
    symlinks: Vec<String>,
    #[serde(default)]
    post_create: Vec<String>,
    agent_config: Option<serde_yaml::Value>,
    runtime: Option<String>,
    workspace: Option<String>,
    agent: Option<String>,
}

/// Which plugin of each kind a project uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginChoice {
    pub runtime: String,
    pub workspace: String,
    pub agent: String,
}

/// One project, with defaults applied.
#[derive(Debug, Clone)]
pub struct ProjectConfig {
    pub id: String,
    pub repo: PathBuf,
    /// `None` until detected from the repository.
    pub default_branch: Option<String>,
    pub session_prefix: String,
    pub symlinks: Vec<String>,
    pub post_create: Vec<String>,
    /// YAML text of `agent_config`, handed to the agent plugin as is.
    pub agent_config: String,
    pub plugins: PluginChoice,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from; `None` for built-in defaults.
    pub path: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub port: u16,
    /// `plugins.dirs`, resolved against the config file's folder.
    pub plugin_dirs: Vec<PathBuf>,
    /// Per-plugin settings as YAML text, keyed by plugin name.
    pub plugin_config: BTreeMap<String, String>,
    /// Expected `sha256:<hex>` digests, keyed by plugin name.
    pub plugin_pins: BTreeMap<String, String>,
    pub defaults: PluginChoice,
    pub ready_timeout_ms: u64,
    pub call_timeout_ms: u64,
    pub projects: BTreeMap<String, ProjectConfig>,
}

/// Where to look for the config, in the contract's order.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os(CONFIG_PATH_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let local = PathBuf::from(CONFIG_FILE_NAME);
    local.is_file().then_some(local)
}

impl Config {
    /// Loads the config from `path`, or the built-in defaults when there is none.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            None => Self::from_file(ConfigFile::default(), None),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
                Self::parse(&text, &absolute)
            }
        }
    }

    /// Parses config text that came from `path` (used in messages and to resolve relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let file: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?
        };
        Self::from_file(file, Some(path))
    }

    fn from_file(file: ConfigFile, path: Option<&Path>) -> Result<Self, ConfigError> {
        let base = path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let invalid = |message: String| ConfigError::Invalid {
            path: path.map(Path::to_path_buf).unwrap_or_default(),
            message,
        };
        let data_dir = match file.data_dir {
            Some(dir) => resolve_path(&dir, &base)?,
            None => home_dir()?.join(".ao-rs"),
        };
        let defaults = PluginChoice {
            runtime: file
                .defaults
                .runtime
                .unwrap_or_else(|| DEFAULT_RUNTIME.into()),
            workspace: file
                .defaults
                .workspace
                .unwrap_or_else(|| DEFAULT_WORKSPACE.into()),
            agent: file.defaults.agent.unwrap_or_else(|| DEFAULT_AGENT.into()),
        };
        let plugin_config = file
            .plugins
            .config
            .into_iter()
            .map(|(name, value)| {
                let text = serde_yaml::to_string(&value)
                    .map_err(|e| invalid(format!("plugins.config.{name}: {e}")))?;
                Ok((name, text))
            })
            .collect::<Result<_, ConfigError>>()?;
        let plugin_dirs = file
            .plugins
            .dirs
            .iter()
            .map(|dir| resolve_path(dir, &base))
            .collect::<Result<_, _>>()?;
        let mut projects = BTreeMap::new();
        for (id, section) in file.projects {
            let agent_config = match &section.agent_config {
                None => String::new(),
                Some(value) => serde_yaml::to_string(value)
                    .map_err(|e| invalid(format!("projects.{id}.agent_config: {e}")))?,
            };
            let project = ProjectConfig {
                repo: resolve_path(&section.repo, &base)?,
                default_branch: section.default_branch,
                session_prefix: section.session_prefix.unwrap_or_else(|| id.clone()),
                symlinks: section.symlinks,
                post_create: section.post_create,
                agent_config,
                plugins: PluginChoice {
                    runtime: section.runtime.unwrap_or_else(|| defaults.runtime.clone()),
                    workspace: section
                        .workspace
                        .unwrap_or_else(|| defaults.workspace.clone()),
                    agent: section.agent.unwrap_or_else(|| defaults.agent.clone()),
                },
                id: id.clone(),
            };
            projects.insert(id, project);
        }
        Ok(Self {
            path: path.map(Path::to_path_buf),
            data_dir,
            port: file.port.unwrap_or(DEFAULT_PORT),
            plugin_dirs,
            plugin_config,
            plugin_pins: file.plugins.pin,
            defaults,
            ready_timeout_ms: file
                .defaults
                .ready_timeout_ms
                .unwrap_or(DEFAULT_READY_TIMEOUT_MS),
            call_timeout_ms: file
                .defaults
                .call_timeout_ms
                .unwrap_or(DEFAULT_CALL_TIMEOUT_MS),
            projects,
        })
    }

    /// The settings text for plugin `name` (empty when none were given).
    pub fn plugin_settings(&self, name: &str) -> &str {
        self.plugin_config
            .get(name)
            .map(String::as_str)
            .unwrap_or("")
    }
}

fn home_dir() -> Result<PathBuf, ConfigError> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or(ConfigError::NoHome)
}

/// Expands a leading `~` and makes relative paths relative to `base` (the config's folder).
pub fn resolve_path(raw: &str, base: &Path) -> Result<PathBuf, ConfigError> {
    let expanded = if raw == "~" {
        home_dir()?
    } else if let Some(rest) = raw.strip_prefix("~/") {
        home_dir()?.join(rest)
    } else {
        PathBuf::from(raw)
    };
    Ok(if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/ao/ao-rs.yaml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.port, 3000);
        assert_eq!(config.defaults.runtime, "tmux");
        assert_eq!(config.defaults.workspace, "git-worktree");
        assert_eq!(config.defaults.agent, "claude-code");
        assert!(config.projects.is_empty());
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let err = parse("port: 1\nplugins:\n  dirz: [x]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/ao/ao-rs.yaml"), "{err}");
        assert!(err.contains("dirz"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let err = parse("port: lots\n").unwrap_err().to_string();
        assert!(err.contains("port"), "{err}");
    }

    #[test]
    fn project_without_repo_is_an_error() {
        let err = parse("projects:\n  app:\n    default_branch: main\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("repo"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let config = parse(
            "data_dir: state\nplugins:\n  dirs: [libs]\nprojects:\n  app: { repo: ../src/app }\n",
        )
        .unwrap();
        assert_eq!(config.data_dir, Path::new("/etc/ao/state"));
        assert_eq!(config.plugin_dirs, vec![PathBuf::from("/etc/ao/libs")]);
        assert_eq!(config.projects["app"].repo, Path::new("/etc/ao/../src/app"));
    }

    #[test]
    fn project_overrides_and_prefix_default_to_the_id() {
        let config = parse(
            "defaults: { agent: shell }\nprojects:\n  app: { repo: /r, runtime: process, agent_config: { model: opus } }\n",
        )
        .unwrap();
        let app = &config.projects["app"];
        assert_eq!(app.session_prefix, "app");
        assert_eq!(app.plugins.runtime, "process");
        assert_eq!(app.plugins.agent, "shell");
        assert_eq!(app.plugins.workspace, "git-worktree");
        assert!(app.agent_config.contains("model: opus"));
    }

    #[test]
    fn plugin_settings_pass_through_as_yaml() {
        let config = parse("plugins:\n  config:\n    tmux: { socket: ao }\n").unwrap();
        assert!(config.plugin_settings("tmux").contains("socket: ao"));
        assert_eq!(config.plugin_settings("missing"), "");
    }
}
