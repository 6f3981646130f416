//! The file as written: its schema and strict parsing, behind the guard of
//! [`crate::bounded_yaml`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::bounded_yaml;

/// The built-in defaults, a config document like any other.
const DEFAULTS: &str = include_str!("defaults.yaml");

/// A config file is a page of settings; anything this big is a mistake or an attack.
pub(super) const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// A config file, or the built-in defaults, before they are combined. Every key is optional so
/// that a file overrides the defaults key by key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    pub data_dir: Option<String>,
    pub port: Option<u16>,
    #[serde(default)]
    pub plugins: PluginsSection,
    #[serde(default)]
    pub defaults: DefaultsSection,
    #[serde(default)]
    pub projects: BTreeMap<String, ProjectSection>,
    pub notify: Option<NotifySection>,
    #[serde(default)]
    pub hosts: BTreeMap<String, super::hosts::HostSection>,
    /// Variables of `ao-host`'s environment that sessions do not inherit.
    pub clear_env: Option<Vec<String>>,
    /// How often the watcher asks the forge.
    pub watch: Option<super::reactions::WatchSection>,
    /// What sessions, projects and days may spend.
    pub budgets: Option<super::budgets::BudgetsSection>,
    /// USD per million tokens per model, over the built-in table.
    pub prices: Option<BTreeMap<String, crate::usage::PriceSection>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotifySection {
    pub command: Vec<String>,
    pub on: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PluginsSection {
    pub dirs: Option<Vec<String>>,
    #[serde(default)]
    pub config: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    pub pin: BTreeMap<String, String>,
    #[serde(default)]
    pub isolate: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DefaultsSection {
    pub runtime: Option<String>,
    pub workspace: Option<String>,
    pub agent: Option<String>,
    pub ready_timeout_ms: Option<u64>,
    pub call_timeout_ms: Option<u64>,
    pub workspace_timeout_ms: Option<u64>,
    pub host_answer_timeout_ms: Option<u64>,
    /// The sandbox every project's agents run in, unless the project says otherwise.
    pub sandbox: Option<super::sandbox::SandboxSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProjectSection {
    pub repo: String,
    pub default_branch: Option<String>,
    pub session_prefix: Option<String>,
    #[serde(default)]
    pub symlinks: Vec<String>,
    #[serde(default)]
    pub post_create: Vec<String>,
    pub agent_config: Option<serde_yaml::Value>,
    pub runtime: Option<String>,
    pub workspace: Option<String>,
    pub agent: Option<String>,
    /// The project's clone on each host it may run on (`host: path there`).
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
    /// The `scm` plugin that watches the project's pull requests.
    pub scm: Option<String>,
    /// The repository on the forge, when not the clone's `origin`.
    pub scm_repository: Option<String>,
    pub reactions: Option<super::reactions::ReactionsSection>,
    /// This project's session and project budgets, replacing the top-level ones.
    pub budgets: Option<super::budgets::ProjectBudgetsSection>,
    /// This project's sandbox, over `defaults.sandbox` key by key.
    pub sandbox: Option<super::sandbox::SandboxSection>,
}

impl ConfigFile {
    /// Parses a document strictly; the message names the line and the key, not the file.
    pub fn parse(text: &str) -> Result<Self, String> {
        bounded_yaml::check(text, MAX_CONFIG_BYTES, "a config")?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        if let Some((line, key)) = bounded_yaml::duplicate_key(text) {
            return Err(format!(
                "line {line}: `{key}` is set a second time in the same section; keep one of the two"
            ));
        }
        serde_yaml::from_str(text).map_err(|error| describe(text, &error))
    }

    /// The built-in defaults ([`DEFAULTS`]).
    pub(crate) fn builtin() -> Self {
        Self::parse(DEFAULTS).expect("defaults.yaml is a valid config (checked by a test)")
    }

    /// `self` with every key `file` sets replaced by the file's value.
    pub fn overlay(mut self, file: ConfigFile) -> Self {
        let (plugins, defaults) = (file.plugins, file.defaults);
        self.data_dir = file.data_dir.or(self.data_dir);
        self.port = file.port.or(self.port);
        self.plugins.dirs = plugins.dirs.or(self.plugins.dirs);
        self.plugins.config.extend(plugins.config);
        self.plugins.pin.extend(plugins.pin);
        self.plugins.isolate.extend(plugins.isolate);
        self.defaults.runtime = defaults.runtime.or(self.defaults.runtime);
        self.defaults.workspace = defaults.workspace.or(self.defaults.workspace);
        self.defaults.agent = defaults.agent.or(self.defaults.agent);
        self.defaults.ready_timeout_ms =
            defaults.ready_timeout_ms.or(self.defaults.ready_timeout_ms);
        self.defaults.call_timeout_ms = defaults.call_timeout_ms.or(self.defaults.call_timeout_ms);
        self.defaults.workspace_timeout_ms = defaults
            .workspace_timeout_ms
            .or(self.defaults.workspace_timeout_ms);
        self.defaults.host_answer_timeout_ms = defaults
            .host_answer_timeout_ms
            .or(self.defaults.host_answer_timeout_ms);
        self.defaults.sandbox = defaults.sandbox.or(self.defaults.sandbox);
        self.projects.extend(file.projects);
        self.hosts.extend(file.hosts);
        self.notify = file.notify.or(self.notify);
        self.clear_env = file.clear_env.or(self.clear_env);
        self.watch = file.watch.or(self.watch);
        self.budgets = file.budgets.or(self.budgets);
        self.prices = file.prices.or(self.prices);
        self
    }
}

/// serde_yaml's message, always with a line (it leaves out a location at the document's very
/// start), and a document that is not a mapping said in the file's terms, not as Rust's
/// `struct ConfigFile`.
fn describe(text: &str, error: &serde_yaml::Error) -> String {
    let message = error.to_string();
    let placed = error.location().filter(|at| at.index() > 0);
    let line = placed.as_ref().map_or_else(
        || {
            // The first line with content, where a document that is not a mapping goes wrong.
            text.lines()
                .position(|line| {
                    let line = line.trim();
                    !(line.is_empty() || line.starts_with('#') || line == "---")
                })
                .map_or(1, |index| index + 1)
        },
        |at| at.line(),
    );
    if message.contains("struct ConfigFile") {
        let found = message
            .strip_prefix("invalid type: ")
            .and_then(|rest| rest.split(',').next())
            .unwrap_or("something else");
        return format!(
            "line {line}: a config is a mapping of settings (`key: value` lines such as `port: 3000`), but this file holds something else ({found})"
        );
    }
    match placed {
        Some(_) => message,
        None => format!("line {line}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        ConfigFile::parse(text).expect_err("refused")
    }

    #[test]
    fn the_defaults_are_a_valid_config_that_sets_every_default() {
        let builtin = ConfigFile::builtin();
        assert!(builtin.data_dir.is_some() && builtin.port.is_some());
        let defaults = &builtin.defaults;
        assert!(
            defaults.runtime.is_some() && defaults.workspace.is_some() && defaults.agent.is_some()
        );
        assert!(defaults.ready_timeout_ms.is_some() && defaults.call_timeout_ms.is_some());
        assert!(defaults.workspace_timeout_ms.is_some());
        assert!(builtin.projects.is_empty() && builtin.plugins.config.is_empty());
    }

    #[test]
    fn a_file_overrides_the_defaults_key_by_key() {
        let file = ConfigFile::parse(
            "defaults: { agent: shell }\nplugins: { pin: { x: \"sha256:0\" } }\n",
        )
        .unwrap();
        let merged = ConfigFile::builtin().overlay(file);
        let builtin = ConfigFile::builtin();
        assert_eq!(merged.defaults.agent.as_deref(), Some("shell"));
        assert_eq!(merged.defaults.runtime, builtin.defaults.runtime);
        assert_eq!(merged.port, builtin.port);
        assert_eq!(merged.plugins.pin.len(), 1);
    }

    #[test]
    fn quotes_comments_and_block_scalars_do_not_hide_or_fake_nesting() {
        let deep =
            |prefix: &str| format!("{prefix}port: {}1{}\n", "[".repeat(100), "]".repeat(100));
        // A lone apostrophe made the old hand-written scanner think a quote opened.
        assert!(refused(&deep("data_dir: it's\n")).contains("line 2: nested deeper than 64"));
        assert!(refused(&deep("# it's [[[ {{{ \"\n")).contains("nested deeper than 64"));
        assert!(refused(&deep("data_dir: \"a ' [ b\"\n")).contains("nested deeper than 64"));
        assert!(
            refused(&format!("a: {}1{}\n", "{a: ".repeat(70), "}".repeat(70)))
                .contains("nested deeper than 64")
        );
        let block = (0..70)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect::<String>();
        assert!(
            refused(&block).contains("nested deeper than 64"),
            "{}",
            refused(&block)
        );
        // Brackets that are text, not nesting.
        let brackets = "[".repeat(500);
        for text in [
            format!("data_dir: \"{brackets}\"\n"),
            format!("data_dir: '{brackets} it''s'\n"),
            format!("port: 1 # {brackets}\n"),
            format!("plugins:\n  config:\n    x:\n      a: |\n        {brackets}\n      b: >\n        {brackets}\n"),
            format!("data_dir: a{brackets}\n"),
        ] {
            ConfigFile::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
        // Nesting up to the limit is fine.
        ConfigFile::parse(&format!(
            "plugins: {{ config: {{ x: {}1{} }} }}\n",
            "[".repeat(61),
            "]".repeat(61)
        ))
        .unwrap();
    }

    #[test]
    fn huge_documents_and_alias_expansion_are_refused() {
        assert!(refused(&format!("# {}\n", "x".repeat(2 * 1024 * 1024))).contains("at most"));
        let product = format!(
            "plugins:\n  config:\n    x:\n      a: &a [{}]\n      b: [{}]\n",
            ["1"; 300].join(","),
            ["*a"; 300].join(",")
        );
        assert!(
            refused(&product).contains("more than 50000 values"),
            "{}",
            refused(&product)
        );
        let recursive = "plugins:\n  config:\n    x: &a [1, *a]\n";
        assert!(refused(recursive).contains("alias *a repeats the value that contains it"));
        // A few aliases are fine.
        ConfigFile::parse("plugins:\n  config:\n    x: { a: &a [1, 2], b: *a, c: *a }\n").unwrap();
    }

    #[test]
    fn parse_errors_are_left_to_serde_yaml() {
        let err = refused("port: [1\n");
        assert!(!err.contains("nested"), "{err}");
        assert!(refused("port: *nowhere\n").contains("unknown anchor"));
    }
}
