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
    #[error("no project {name:?} in {config}; configured projects: {known}")]
    UnknownProject {
        name: String,
        config: String,
        known: String,
    },
    #[error("{message}")]
    NoProject { message: String },
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
        check_shape(text).map_err(invalid)?;
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
            let check = |what: &str, value: &str| {
                ao_plugin_api::validate::validate_id(what, value)
                    .map_err(|e| invalid(format!("projects.{id}: {}", e.message())))
            };
            check("project id", &id)?;
            if let Some(prefix) = &section.session_prefix {
                check("session_prefix", prefix)?;
            }
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

impl Config {
    fn describe_source(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the built-in defaults (no config file)".into())
    }

    /// The project a command is about: the one named, else the configured project whose
    /// repository holds `cwd`, else the only configured project, else — with no projects
    /// configured — the git repository holding `cwd` (id = its folder name).
    pub fn resolve_project(
        &self,
        name: Option<&str>,
        cwd: &Path,
    ) -> Result<ProjectConfig, ConfigError> {
        let mut project = if let Some(name) = name {
            if let Some(project) = self.projects.get(name) {
                project.clone()
            } else if self.projects.is_empty() {
                let detected = self.detected_project(cwd)?;
                if detected.id != name {
                    return Err(ConfigError::UnknownProject {
                        name: name.into(),
                        config: self.describe_source(),
                        known: format!("none; the current repository is `{}`", detected.id),
                    });
                }
                detected
            } else {
                return Err(ConfigError::UnknownProject {
                    name: name.into(),
                    config: self.describe_source(),
                    known: self.projects.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            }
        } else if self.projects.is_empty() {
            self.detected_project(cwd)?
        } else if let Some(project) = self.projects.values().find(|p| {
            let repo = p.repo.canonicalize().unwrap_or_else(|_| p.repo.clone());
            cwd.canonicalize().is_ok_and(|cwd| cwd.starts_with(&repo))
        }) {
            project.clone()
        } else if self.projects.len() == 1 {
            self.projects.values().next().cloned().expect("one project")
        } else {
            return Err(ConfigError::NoProject {
                message: format!(
                    "several projects are configured in {} ({}); name one",
                    self.describe_source(),
                    self.projects.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        };
        if project.default_branch.is_none() {
            project.default_branch = repository::default_branch(&project.repo);
        }
        if project.default_branch.is_none() {
            return Err(ConfigError::NoProject {
                message: format!(
                    "cannot tell the default branch of {}; set `default_branch` for project `{}`",
                    project.repo.display(),
                    project.id
                ),
            });
        }
        Ok(project)
    }

    fn detected_project(&self, cwd: &Path) -> Result<ProjectConfig, ConfigError> {
        let repo = repository::enclosing(cwd).ok_or_else(|| ConfigError::NoProject {
            message: format!(
                "{} is not inside a git repository and no project is configured; run ao-host inside a repository or add `projects:` to {CONFIG_FILE_NAME}",
                cwd.display()
            ),
        })?;
        let id = repository::project_id(&repo);
        Ok(ProjectConfig {
            repo,
            default_branch: None,
            session_prefix: id.clone(),
            symlinks: Vec::new(),
            post_create: Vec::new(),
            agent_config: String::new(),
            plugins: self.defaults.clone(),
            id,
        })
    }
}

/// Just enough knowledge of a repository's files to pick a default project without running
/// anything: the workspace plugin does the real work.
mod repository {
    use std::path::{Path, PathBuf};

    /// The closest folder at or above `dir` holding `.git`.
    pub fn enclosing(dir: &Path) -> Option<PathBuf> {
        let dir = dir.canonicalize().ok()?;
        dir.ancestors()
            .find(|d| d.join(".git").exists())
            .map(Path::to_path_buf)
    }

    /// The folder name, made into a valid id (`[A-Za-z0-9_-]`, not starting with `-`).
    pub fn project_id(repo: &Path) -> String {
        let name = repo
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cleaned: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let cleaned = cleaned.trim_start_matches('-').to_string();
        if cleaned.is_empty() {
            "project".into()
        } else {
            cleaned
        }
    }

    fn git_dir(repo: &Path) -> Option<PathBuf> {
        let dot_git = repo.join(".git");
        if dot_git.is_dir() {
            return Some(dot_git);
        }
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let target = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
        Some(if target.is_absolute() {
            target
        } else {
            repo.join(target)
        })
    }

    fn symbolic_ref(file: &Path, prefix: &str) -> Option<String> {
        let text = std::fs::read_to_string(file).ok()?;
        text.trim()
            .strip_prefix("ref:")?
            .trim()
            .strip_prefix(prefix)
            .map(str::to_string)
    }

    /// `origin`'s HEAD branch when known, else the branch checked out.
    pub fn default_branch(repo: &Path) -> Option<String> {
        let git_dir = git_dir(repo)?;
        let common = std::fs::read_to_string(git_dir.join("commondir"))
            .map(|c| git_dir.join(c.trim()))
            .unwrap_or_else(|_| git_dir.clone());
        symbolic_ref(
            &common.join("refs/remotes/origin/HEAD"),
            "refs/remotes/origin/",
        )
        .or_else(|| symbolic_ref(&git_dir.join("HEAD"), "refs/heads/"))
    }
}

/// A config file is a page of settings; anything this big is a mistake or an attack.
const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// Deeper flow nesting (`[[[…`) than any real config needs; the YAML parser slows down
/// quadratically on deep nesting, so it is refused before parsing.
const MAX_FLOW_DEPTH: usize = 64;
/// Indentation beyond this many columns means block nesting no config needs.
const MAX_INDENT: usize = 256;

/// Refuses documents that would make the YAML parser spin (alias bombs are refused by the
/// parser itself: "repetition limit exceeded").
fn check_shape(text: &str) -> Result<(), String> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "the file is {} bytes; a config may have at most {MAX_CONFIG_BYTES}",
            text.len()
        ));
    }
    let (mut depth, mut quote) = (0usize, None::<char>);
    for (line_no, line) in text.lines().enumerate() {
        if line.len() - line.trim_start().len() > MAX_INDENT {
            return Err(format!(
                "line {}: indented more than {MAX_INDENT} columns",
                line_no + 1
            ));
        }
        let mut comment = false;
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, _) if comment => {}
                (None, '#') => comment = true,
                (None, '"' | '\'') => quote = Some(c),
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Err(format!(
                            "line {}: nested deeper than {MAX_FLOW_DEPTH} levels",
                            line_no + 1
                        ));
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    Ok(())
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
        let bomb = "plugins:\n  config:\n    tmux:\n      a: &a [1,1,1,1,1,1,1,1,1,1]\n      b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n      c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n      d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n      e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n      f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n      g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n      h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
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
        assert_eq!(app.plugins.workspace, "git-worktree");
        assert!(app.agent_config.contains("model: opus"));
    }

    #[test]
    fn with_no_projects_the_enclosing_repository_is_the_project() {
        let temp = tempfile::tempdir().unwrap();
        let repo = temp.path().join("my.app");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("src")).unwrap();
        std::fs::write(repo.join(".git/HEAD"), "ref: refs/heads/trunk\n").unwrap();
        let config = parse("").unwrap();
        let project = config.resolve_project(None, &repo.join("src")).unwrap();
        assert_eq!(project.id, "my-app");
        assert_eq!(project.session_prefix, "my-app");
        assert_eq!(project.default_branch.as_deref(), Some("trunk"));
        assert_eq!(project.plugins, config.defaults);
        let err = config.resolve_project(Some("other"), &repo).unwrap_err();
        assert!(err.to_string().contains("my-app"), "{err}");
        let outside = config.resolve_project(None, temp.path()).unwrap_err();
        assert!(
            outside.to_string().contains("not inside a git repository"),
            "{outside}"
        );
    }

    #[test]
    fn an_unknown_project_lists_the_configured_ones() {
        let config = parse("projects:\n  app: { repo: /r, default_branch: main }\n  web: { repo: /w, default_branch: main }\n").unwrap();
        let err = config
            .resolve_project(Some("api"), Path::new("/"))
            .unwrap_err();
        assert!(err.to_string().contains("app, web"), "{err}");
        assert_eq!(
            config
                .resolve_project(Some("web"), Path::new("/"))
                .unwrap()
                .id,
            "web"
        );
        let err = config.resolve_project(None, Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("name one"), "{err}");
    }

    #[test]
    fn plugin_settings_pass_through_as_yaml() {
        let config = parse("plugins:\n  config:\n    tmux: { socket: ao }\n").unwrap();
        assert!(config.plugin_settings("tmux").contains("socket: ao"));
        assert_eq!(config.plugin_settings("missing"), "");
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
