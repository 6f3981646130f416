//! `ao-rs.yaml`: finding it, parsing it strictly, and filling in defaults.
//!
//! Strict because a typo in a key must not silently change what an agent does: unknown keys,
//! wrong types and missing fields are errors naming the file, the line and the key. The
//! defaults are themselves a config document (`defaults.yaml`) that a file overrides key by key.

mod budgets;
mod environment;
mod file;
mod hosts;
mod project;
mod reactions;
mod sandbox;

use std::{
    collections::BTreeMap,
    io::Read,
    path::{Path, PathBuf},
};

use crate::session::{ReportedStatus, SessionStatus};
pub use budgets::{Budgets, Limit};
pub use environment::{VariableNames, DASHBOARD_TOKEN_ENV};
use file::ConfigFile;
pub use hosts::{HostConfig, DEFAULT_MAX_SESSIONS};
pub use project::{folder_id, Discovered, PluginChoice, ProjectConfig, RepositoryFacts};
pub use reactions::{ReactionAction, Reactions, ScmConfig, SendReaction, WatchConfig};
pub use sandbox::{SandboxConfig, SandboxPath, SANDBOX_OFF};

/// The file name looked for in the current directory.
pub(crate) const CONFIG_FILE_NAME: &str = "ao-rs.yaml";
/// `AO_EVENT` of a budget's warning (and its name in `notify.on`).
pub const BUDGET_WARN_EVENT: &str = "budget_warn";
/// Environment variable naming the config file (also exported to agents).
pub const CONFIG_PATH_ENV: &str = "AO_CONFIG_PATH";

/// What `defaults.host_answer_timeout_ms` may be: long enough for a round trip on a slow link,
/// short enough that a silent host never holds a listing up for long.
const HOST_ANSWER_TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 100..=30_000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file, or a folder or link on the way to it, could have been written by someone else.
    #[error("{message}")]
    Untrusted { path: PathBuf, message: String },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot determine the data directory: $HOME is not set; set `data_dir` in {CONFIG_FILE_NAME} or pass --data-dir")]
    NoHome,
    #[error("no project {name:?} in {config}; configured projects: {known}")]
    UnknownProject {
        name: String,
        config: String,
        known: String,
    },
    #[error("{message}")]
    NoProject { message: String },
    #[error("invalid project argument: {message}")]
    InvalidProjectArg { message: String },
    #[error("cannot tell which repository holds {dir}: {message}")]
    Discovery { dir: PathBuf, message: String },
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
    /// Plugins whose libraries run in a child process (`plugins.isolate`; `*` for all).
    pub plugin_isolate: Vec<String>,
    /// Plugins whose libraries are not loaded at all (`gc --skip-plugin`; never from the file).
    pub plugin_skip: Vec<String>,
    /// When set, the only plugins whose libraries are loaded (a command acting for one session:
    /// the hook's budget check; never from the file).
    pub plugin_only: Option<Vec<String>>,
    pub defaults: PluginChoice,
    pub ready_timeout_ms: u64,
    pub call_timeout_ms: u64,
    /// How long the workspace plugin may take to make a workspace (`post_create` included);
    /// every other plugin call gets `call_timeout_ms`.
    pub workspace_timeout_ms: u64,
    /// How long a listing waits for one host to answer on its connection before showing its
    /// sessions `connecting` or `unreachable` (`defaults.host_answer_timeout_ms`).
    pub host_answer_timeout_ms: u64,
    pub projects: BTreeMap<String, ProjectConfig>,
    /// `hosts:`: the other machines sessions may run on.
    pub hosts: BTreeMap<String, HostConfig>,
    /// `notify:`: what to run when a session starts waiting, goes idle or exits.
    pub notify: Option<NotifyConfig>,
    /// `clear_env:`: variables of `ao-host`'s environment its local sessions do not get.
    pub clear_env: VariableNames,
    /// `watch:`: how often the watcher asks the forge about pull requests.
    pub watch: WatchConfig,
    /// `budgets:` at the top level; a project's own are in [`ProjectConfig::budgets`].
    pub budgets: Budgets,
    /// `prices:` over the built-in price table: what tokens cost per model.
    pub prices: crate::usage::Prices,
    /// `defaults.sandbox`: the sandbox of a project the file does not configure; a
    /// configured project's own is in [`ProjectConfig::sandbox`].
    pub sandbox: SandboxConfig,
}

/// `notify: { command: [argv…], on: [statuses] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    pub command: Vec<String>,
    pub on: Vec<ReportedStatus>,
    /// `over_budget` is listed (or `on` is not given): a session stopped by its budget.
    pub over_budget: bool,
    /// `budget_warn` is listed (or `on` is not given): a budget reached its `warn`.
    pub budget_warn: bool,
}

impl NotifyConfig {
    /// Without `on`: every change an operator acts on.
    const DEFAULT_ON: [ReportedStatus; 3] = [
        ReportedStatus::WaitingInput,
        ReportedStatus::Idle,
        ReportedStatus::Exited,
    ];

    fn from_section(section: file::NotifySection) -> Result<Self, String> {
        if section
            .command
            .first()
            .is_none_or(|program| program.trim().is_empty())
        {
            return Err("notify.command is empty; give the program and its arguments as a list, e.g. [notify-send, ao-host]".into());
        }
        let budget_events = [SessionStatus::OverBudget.as_str(), BUDGET_WARN_EVENT];
        let on = match &section.on {
            None => Self::DEFAULT_ON.to_vec(),
            Some(names) => names
                .iter()
                .filter(|name| !budget_events.contains(&name.as_str()))
                .map(|name| {
                    ReportedStatus::parse(name).ok_or_else(|| {
                        format!(
                            "notify.on: unknown status {name:?}; use any of working, idle, waiting_input, exited, over_budget, budget_warn"
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let wants = |event: &str| {
            section
                .on
                .as_ref()
                .is_none_or(|names| names.iter().any(|name| name == event))
        };
        Ok(Self {
            over_budget: wants(budget_events[0]),
            budget_warn: wants(budget_events[1]),
            command: section.command,
            on,
        })
    }
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

/// Checks a project id given on the command line before it names anything: it ends up in
/// file names and session ids, so `../x` must not get that far.
pub(crate) fn validate_project_arg(name: &str) -> Result<(), ConfigError> {
    ao_plugin_kit::validate::validate_id("project", name).map_err(|e| {
        ConfigError::InvalidProjectArg {
            message: e.message().to_string(),
        }
    })
}

impl Config {
    /// Loads the config from `path`, or the built-in defaults when there is none. The file
    /// names commands ao-host runs (hooks, agent programs), so it is trusted like a plugin
    /// library before any of it is read: ours or root's, and no one else's to change.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Self::from_file(ConfigFile::default(), None);
        };
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        // A file that is not there is reported as such, not as a folder that cannot be inspected.
        std::fs::metadata(path).map_err(read_error)?;
        crate::trust::check_path_trust(path, "config file").map_err(|message| {
            ConfigError::Untrusted {
                path: path.to_path_buf(),
                message,
            }
        })?;
        // One byte more than a config may have is enough to refuse it (`/dev/zero` included).
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|file| {
                file.take(file::MAX_CONFIG_BYTES as u64 + 1)
                    .read_to_string(&mut text)
            })
            .map_err(read_error)?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Self::parse(&text, &absolute)
    }

    /// Parses config text that came from `path` (used in messages and to resolve relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file = ConfigFile::parse(text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
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
        let file = ConfigFile::builtin().overlay(file);
        let builtin = "set by the built-in defaults";
        let defaults = PluginChoice {
            runtime: file.defaults.runtime.expect(builtin),
            workspace: file.defaults.workspace.expect(builtin),
            agent: file.defaults.agent.expect(builtin),
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
            .unwrap_or_default()
            .iter()
            .map(|dir| resolve_path(dir, &base))
            .collect::<Result<_, _>>()?;
        let budgets = Budgets::from_section(file.budgets.unwrap_or_default()).map_err(invalid)?;
        let sandbox_defaults = file.defaults.sandbox.unwrap_or_default();
        let sandbox = SandboxConfig::from_section("defaults.sandbox", sandbox_defaults.clone())
            .map_err(invalid)?;
        let projects = file
            .projects
            .into_iter()
            .map(|(id, section)| {
                let project = ProjectConfig::from_section(
                    id,
                    section,
                    &base,
                    project::Inherited {
                        plugins: &defaults,
                        budgets,
                        sandbox: &sandbox_defaults,
                    },
                    &invalid,
                )?;
                Ok((project.id.clone(), project))
            })
            .collect::<Result<_, ConfigError>>()?;
        project::check_prefixes(&projects).map_err(invalid)?;
        let host_answer_timeout_ms = file.defaults.host_answer_timeout_ms.expect(builtin);
        if !HOST_ANSWER_TIMEOUT_RANGE_MS.contains(&host_answer_timeout_ms) {
            return Err(invalid(format!(
                "defaults.host_answer_timeout_ms: {host_answer_timeout_ms} is out of range; give between {} and {} ms (a host that has not answered by then is shown `unreachable`; 1000 suits most networks)",
                HOST_ANSWER_TIMEOUT_RANGE_MS.start(),
                HOST_ANSWER_TIMEOUT_RANGE_MS.end()
            )));
        }
        let hosts: BTreeMap<String, HostConfig> = file
            .hosts
            .into_iter()
            .map(|(name, section)| {
                HostConfig::from_section(name.clone(), section, &base, &invalid)
                    .map(|host| (name, host))
            })
            .collect::<Result<_, ConfigError>>()?;
        for project in projects.values() {
            hosts::check_project_hosts(&project.id, &project.hosts, &hosts, &invalid)?;
        }
        Ok(Self {
            path: path.map(Path::to_path_buf),
            data_dir: resolve_path(&file.data_dir.expect(builtin), &base)?,
            port: file.port.expect(builtin),
            plugin_dirs,
            plugin_config,
            plugin_pins: file.plugins.pin,
            plugin_isolate: file.plugins.isolate,
            plugin_skip: Vec::new(),
            plugin_only: None,
            defaults,
            ready_timeout_ms: file.defaults.ready_timeout_ms.expect(builtin),
            call_timeout_ms: file.defaults.call_timeout_ms.expect(builtin),
            workspace_timeout_ms: file.defaults.workspace_timeout_ms.expect(builtin),
            host_answer_timeout_ms,
            projects,
            hosts,
            notify: file
                .notify
                .map(NotifyConfig::from_section)
                .transpose()
                .map_err(invalid)?,
            clear_env: VariableNames::from_list("clear_env", file.clear_env.unwrap_or_default())
                .map_err(invalid)?,
            watch: WatchConfig::from_section(file.watch.unwrap_or_default()).map_err(invalid)?,
            budgets,
            prices: crate::usage::Prices::with_overrides(file.prices.unwrap_or_default())
                .map_err(invalid)?,
            sandbox,
        })
    }

    /// The settings text for plugin `name` (empty when none were given).
    pub fn plugin_settings(&self, name: &str) -> &str {
        self.plugin_config
            .get(name)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The budgets of project `project_id`'s sessions: its own, else the top-level ones.
    pub fn budgets_of(&self, project_id: &str) -> Budgets {
        self.projects
            .get(project_id)
            .map_or(self.budgets, |project| project.budgets)
    }

    /// The config file as messages should name it: the one in use, else the name one would
    /// have.
    pub(crate) fn file_for_messages(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| CONFIG_FILE_NAME.to_string(), |p| p.display().to_string())
    }

    /// `message` (a plugin's, which can only say "ao-rs.yaml") naming the config file in use.
    pub fn name_file_in(&self, message: &str) -> String {
        let Some(path) = &self.path else {
            return message.to_string();
        };
        let path = path.display().to_string();
        let mut named = String::with_capacity(message.len());
        let mut rest = message;
        while let Some(at) = rest.find(CONFIG_FILE_NAME) {
            let (before, after) = (&rest[..at], &rest[at + CONFIG_FILE_NAME.len()..]);
            // A word of its own, not the end of a path (`/etc/ao/ao-rs.yaml`) or a longer name.
            let part_of_path = before.ends_with(|c: char| c == '/' || c.is_alphanumeric())
                || after.starts_with(|c: char| c.is_alphanumeric() || c == '/');
            named.push_str(before);
            named.push_str(if part_of_path {
                CONFIG_FILE_NAME
            } else {
                &path
            });
            rest = after;
        }
        named.push_str(rest);
        named
    }

    fn describe_source(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the built-in defaults (no config file)".into())
    }
}

fn home_dir() -> Result<PathBuf, ConfigError> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or(ConfigError::NoHome)
}

/// Expands a leading `~` and makes relative paths relative to `base` (the config's folder).
pub(crate) fn resolve_path(raw: &str, base: &Path) -> Result<PathBuf, ConfigError> {
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
    fn a_hosts_session_bound_defaults_below_sshds_and_must_be_a_count() {
        let config = parse(
            "hosts:\n  box1: { ssh: dev@box1 }\n  box2: { ssh: dev@box2, max_sessions: 3 }\n",
        )
        .unwrap();
        assert_eq!(config.hosts["box1"].max_sessions, DEFAULT_MAX_SESSIONS);
        assert_eq!(config.hosts["box2"].max_sessions, 3);
        for bad in ["0", "1001", "-1", "many"] {
            let error = parse(&format!(
                "hosts:\n  box1: {{ ssh: dev@box1, max_sessions: {bad} }}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("/etc/ao/ao-rs.yaml") && error.contains("max_sessions"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn every_config_error_names_the_file_and_line() {
        for (text, line) in [
            ("port: 1\nport: 2\n", "line 2"),
            ("defaults:\n  agent: a\n  agent: b\n", "line 3"),
            (
                "projects:\n  app: { repo: /a }\n  app: { repo: /b }\n",
                "line 3",
            ),
            ("- port: 1\n", "line 1"),
            ("# settings\n\n- port: 1\n", "line 3"),
            ("just words\n", "line 1"),
            ("port: [1]\n", "line 1"),
            ("projects:\n  app:\n    default_branch: main\n", "line 3"),
            (
                "projects:\n  app: { repo: /a, default_branch: \"\" }\n",
                "default_branch",
            ),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(
                error.contains("/etc/ao/ao-rs.yaml") && error.contains(line),
                "{text:?}: {error}"
            );
            assert!(!error.contains("ConfigFile"), "{text:?}: {error}");
        }
        // The same key in different sections, or a list of mappings, is no duplicate.
        parse(
            "port: 1\ndefaults: { agent: x }\nplugins: { config: { x: { port: 2, agent: y } } }\n",
        )
        .unwrap();
        parse("clear_env: [A, A]\nnotify: { command: [a, a] }\n").unwrap();
    }

    #[test]
    fn plugin_messages_name_the_config_file_in_use() {
        let message = "plugins.config.tmux: bad; fix the setting in ao-rs.yaml, not ./ao-rs.yaml";
        assert_eq!(
            parse("").unwrap().name_file_in(message),
            "plugins.config.tmux: bad; fix the setting in /etc/ao/ao-rs.yaml, not ./ao-rs.yaml"
        );
        let builtin = Config::load(None).unwrap();
        assert_eq!(builtin.name_file_in(message), message);
    }

    #[test]
    fn notify_takes_an_argv_and_statuses_and_names_what_is_wrong() {
        assert_eq!(parse("").unwrap().notify, None);
        let notify = parse("notify: { command: [notify-send, ao] }\n")
            .unwrap()
            .notify
            .unwrap();
        assert_eq!(notify.command, ["notify-send", "ao"]);
        assert_eq!(notify.on, NotifyConfig::DEFAULT_ON);
        let notify = parse("notify: { command: [x], on: [exited] }\n")
            .unwrap()
            .notify
            .unwrap();
        assert_eq!(notify.on, [ReportedStatus::Exited]);
        for (text, want) in [
            ("notify: { command: [] }\n", "notify.command is empty"),
            ("notify: { command: [\" \"] }\n", "notify.command is empty"),
            (
                "notify: { command: [x], on: [done] }\n",
                "unknown status \"done\"",
            ),
            ("notify: { command: x }\n", "notify.command"),
            (
                "notify: { command: [x], when: [idle] }\n",
                "unknown field `when`",
            ),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(
                error.contains(want) && error.contains("/etc/ao/ao-rs.yaml"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = parse("").unwrap();
        let builtin: serde_yaml::Value =
            serde_yaml::from_str(include_str!("defaults.yaml")).unwrap();
        let default = |key: &str| builtin["defaults"][key].as_str().unwrap().to_string();
        assert_eq!(config.port, 3000);
        assert_eq!(config.defaults.runtime, default("runtime"));
        assert_eq!(config.defaults.workspace, default("workspace"));
        assert_eq!(config.defaults.agent, default("agent"));
        assert_eq!(
            (config.ready_timeout_ms, config.call_timeout_ms),
            (30_000, 60_000)
        );
        assert!(config.data_dir.ends_with(".ao-rs"));
        assert!(config.projects.is_empty());
    }

    #[test]
    fn the_host_answer_deadline_defaults_to_a_second_and_is_bounded() {
        assert_eq!(parse("").unwrap().host_answer_timeout_ms, 1000);
        let set = parse("defaults: { host_answer_timeout_ms: 2500 }\n").unwrap();
        assert_eq!(set.host_answer_timeout_ms, 2500);
        for wrong in ["0", "60000"] {
            let err = parse(&format!(
                "defaults: {{ host_answer_timeout_ms: {wrong} }}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("defaults.host_answer_timeout_ms")
                    && err.contains("between 100 and 30000"),
                "{err}"
            );
            assert!(err.contains("/etc/ao/ao-rs.yaml"), "{err}");
        }
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
    fn project_ids_and_prefixes_must_be_plain_ids() {
        let err = parse("projects:\n  \"a b\": { repo: /r }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("projects.a b") && err.contains("project id"),
            "{err}"
        );
        let err = parse("projects:\n  app: { repo: /r, session_prefix: \"../x\" }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("session_prefix"), "{err}");
        // Every id the prefix can produce must itself be a valid id.
        let long = "p".repeat(110);
        let err = parse(&format!(
            "projects:\n  app: {{ repo: /r, session_prefix: {long} }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("shorter session_prefix"), "{err}");
        parse(&format!(
            "projects:\n  app: {{ repo: /r, session_prefix: {} }}\n",
            "p".repeat(109)
        ))
        .unwrap();
    }

    #[test]
    fn huge_or_deeply_nested_documents_are_refused_before_parsing() {
        let deep = format!("port: {}1{}\n", "[".repeat(100), "]".repeat(100));
        assert!(parse(&deep)
            .unwrap_err()
            .to_string()
            .contains("nested deeper than 64"));
        let quoted = format!("data_dir: \"{}\"\n", "[".repeat(100));
        parse(&quoted).unwrap();
        let big = format!("# {}\n", "x".repeat(2 * 1024 * 1024));
        assert!(parse(&big).unwrap_err().to_string().contains("at most"));
        let bomb = "plugins:\n  config:\n    term:\n      a: &a [1,1,1,1,1,1,1,1,1,1]\n      b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n      c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n      d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n      e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n      f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n      g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n      h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
        assert!(parse(bomb).is_err());
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
        assert_eq!(app.plugins.workspace, config.defaults.workspace);
        assert!(app.agent_config.contains("model: opus"));
    }

    #[test]
    fn plugin_settings_pass_through_as_yaml() {
        let config = parse("plugins:\n  config:\n    term: { socket: ao }\n").unwrap();
        assert!(config.plugin_settings("term").contains("socket: ao"));
        assert_eq!(config.plugin_settings("missing"), "");
    }

    #[test]
    fn a_project_argument_must_be_a_plain_id() {
        validate_project_arg("app-1").unwrap();
        for bad in ["../x", "", "-x", "a/b"] {
            let err = validate_project_arg(bad).unwrap_err().to_string();
            assert!(err.contains("project"), "{err}");
        }
    }

    /// One piece of a fuzzed document: what fooled the old hand-written guard.
    fn piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("it's".to_string()),
            Just("# [{ '\n".to_string()),
            Just("|\n  [[{\n".to_string()),
            Just(">-\n  ]]}\n".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just(", ".to_string()),
            Just("&a ".to_string()),
            Just("*a".to_string()),
            Just("- ".to_string()),
            Just("\n".to_string()),
            Just("  ".to_string()),
            "(port|data_dir|plugins|config|projects|repo|x): ",
            "[a-z0-9 ]{0,8}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Fuzzing: no input makes the parser panic or hang; it parses or names the file.
        #[test]
        fn any_text_parses_or_is_refused_with_the_file_named(text in "(\\PC|[\\[\\]{}:&*!|>'\"# \n-]){0,400}") {
            if let Err(err) = parse(&text) {
                let message = err.to_string();
                proptest::prop_assert!(message.contains("/etc/ao/ao-rs.yaml") || message.contains("HOME"), "{}", message);
            }
        }

        /// Documents of quotes, comments, block scalars, brackets and keys, then deep brackets.
        #[test]
        fn hostile_pieces_parse_or_are_refused_with_the_file_named(
            pieces in proptest::collection::vec(piece(), 0..80),
            depth in 0usize..200,
        ) {
            let text = format!("{}{}", pieces.concat(), "[".repeat(depth));
            if let Err(err) = parse(&text) {
                let message = err.to_string();
                proptest::prop_assert!(message.contains("/etc/ao/ao-rs.yaml") || message.contains("HOME"), "{}", message);
            }
        }

        /// Structured fuzzing: config-shaped documents with arbitrary keys and values.
        #[test]
        fn config_shaped_documents_never_panic(
            key in "[a-z_]{1,12}",
            value in "\\PC{0,40}",
            id in "\\PC{0,20}",
        ) {
            let text = format!("port: 3000\nprojects:\n  {id:?}: {{ repo: /r, {key}: {value:?} }}\n");
            let _ = parse(&text);
        }
    }
}
