//! The conformance kit: drives every plugin of one library through its contract, on scratch
//! resources it makes and removes, and says check by check what holds. `ao-host plugins test
//! FILE` runs it, and so does a plugin crate's own `cargo test` ([`conformance_test!`]).
//!
//! A plugin author runs it before anyone else runs their plugin; CI runs it on every
//! first-party and example plugin. It catches what breaks sessions later and far from the
//! cause: a runtime that changes a byte of a message, drops the second of two inputs sent at
//! once, leaves a process behind after a failed `create`, lists another data dir's sessions as
//! its own, or fails the second `destroy`; an agent that never says its CLI is ready; a plugin
//! that prints to stdout (the host's `--json`). Runtimes run [`probe`], the kit's own agent,
//! which records every byte it receives: the [`fake_agent`] that ao-host's own tests run as
//! their Claude Code.

#![deny(missing_docs)]

mod agent;
mod cargo;
mod delivery;
pub mod fake_agent;
pub mod probe;
mod runtime;
mod sandbox;
mod scm;
mod stdout;
mod terminal;
mod usage;
mod workspace;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use ao_plugin_api::{abi_stable::std_types::RString, InterfaceKind, PluginContext};
use ao_plugin_host::{LoadSettings, PluginRegistry};
use serde::Serialize;

pub use self::{
    cargo::{library_under_test, run_from_cargo_test, LibraryUnderTest},
    delivery::first_difference,
    usage::{check_usage_records, usage_query},
};

/// One check of one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    #[serde(serialize_with = "kind_name")]
    /// The plugin's kind.
    pub kind: InterfaceKind,
    /// The plugin's name.
    pub plugin: String,
    /// The check's name, as the report shows it.
    pub check: String,
    /// Whether it held (a skipped check is not ok; see `skipped`).
    pub ok: bool,
    /// Not checked, and the detail says why (no CLI to start, say): not a failure, but not a
    /// pass either, so it is shown apart.
    pub skipped: bool,
    /// Why it failed, or what was seen when it passed.
    pub detail: String,
}

impl CheckResult {
    /// `pass`, `FAIL` or `skip`, as the kit's text output shows it.
    pub fn verdict(&self) -> &'static str {
        match (self.ok, self.skipped) {
            (_, true) => "skip",
            (true, false) => "pass",
            (false, false) => "FAIL",
        }
    }

    /// One line of the text report: verdict, plugin, check, detail.
    pub fn line(&self) -> String {
        format!(
            "{:<5} {} {}: {} — {}",
            self.verdict(),
            self.kind,
            self.plugin,
            self.check,
            self.detail
        )
    }
}

/// How the kit loads and builds the plugins under test: the host passes its config's, a
/// plugin's own test the defaults.
#[derive(Debug, Clone)]
pub struct KitSettings {
    /// Plugin name → its settings (YAML), as the host's `plugins.config` gives them.
    pub plugin_settings: BTreeMap<String, String>,
    /// Plugin name → `sha256:<hex>` its library must have.
    pub pins: BTreeMap<String, String>,
    /// Run the library in a child process (`ao-host plugins serve`) instead of this one. Only
    /// a program that has that command (ao-host) can: a plugin's own test runs it in-process.
    pub isolate: bool,
    /// How long one call may take.
    pub call_timeout: Duration,
    /// How long a workspace's `create` may take.
    pub create_timeout: Duration,
    /// How long an agent CLI may take to become ready (the readiness check).
    pub ready_timeout: Duration,
    /// Catch what plugins print to stdout (in-process only). Off where stdout is not the
    /// kit's to take: a test binary whose harness reports other tests there meanwhile.
    pub watch_stdout: bool,
}

impl Default for KitSettings {
    fn default() -> Self {
        Self {
            plugin_settings: BTreeMap::new(),
            pins: BTreeMap::new(),
            isolate: false,
            call_timeout: Duration::from_secs(10),
            create_timeout: Duration::from_secs(120),
            ready_timeout: Duration::from_secs(60),
            watch_stdout: true,
        }
    }
}

fn kind_name<S: serde::Serializer>(kind: &InterfaceKind, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(kind.as_str())
}

/// What the checks of one plugin share.
struct Kit<'a> {
    registry: &'a PluginRegistry,
    settings: &'a KitSettings,
    kind: InterfaceKind,
    plugin: String,
    /// A folder of its own, removed at the end.
    scratch: PathBuf,
    /// The argv that starts the probe agent; its folder is appended.
    probe: Vec<String>,
    /// An agent's recorded screens (`plugins test --screens`).
    screens: Option<PathBuf>,
    /// What this process had open before any plugin was loaded: an agent inheriting those got
    /// them from whoever ran the kit, not from the host or the plugin.
    baseline: Vec<String>,
    timeout: Duration,
    results: Vec<CheckResult>,
}

impl Kit<'_> {
    fn record(&mut self, check: &str, outcome: Result<String, String>) -> bool {
        let ok = outcome.is_ok();
        self.results.push(CheckResult {
            kind: self.kind,
            plugin: self.plugin.clone(),
            check: check.to_string(),
            ok,
            skipped: false,
            detail: outcome.unwrap_or_else(|why| why),
        });
        ok
    }

    /// Records that `check` was not run, and why: shown as `skip`, never as a pass.
    fn skip(&mut self, check: &str, why: String) {
        self.results.push(CheckResult {
            kind: self.kind,
            plugin: self.plugin.clone(),
            check: check.to_string(),
            ok: true,
            skipped: true,
            detail: why,
        });
    }

    /// Records how building the plugin went (the check `new`); the instance if it was built.
    fn built<T>(&mut self, built: Result<T, ao_plugin_host::RegistryError>) -> Option<T> {
        let outcome = built
            .as_ref()
            .map(|_| "built with the configured settings".to_string())
            .map_err(ToString::to_string);
        self.record("new", outcome);
        built.ok()
    }

    /// A data dir of the kit's own; plugins tag what they make with it.
    fn data_dir(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    fn context(&self, data_dir: &Path) -> PluginContext {
        PluginContext {
            plugin_name: RString::from(self.plugin.as_str()),
            data_dir: RString::from(data_dir.display().to_string()),
            config_yaml: self
                .settings
                .plugin_settings
                .get(&self.plugin)
                .map(|yaml| RString::from(yaml.as_str()))
                .unwrap_or_default(),
        }
    }
}

/// Why the kit could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("{0}")]
    /// The library could not be loaded; the loader's message.
    Refused(String),
    #[error("{path}: {error}", path = path.display())]
    /// The kit's scratch folder could not be made.
    Scratch {
        /// The folder.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    #[error("{file} has no {kind} plugin; it provides: {provides}", file = file.display())]
    /// The library has no plugin of the kind asked for.
    NoSuchKind {
        /// The library.
        file: PathBuf,
        /// The kind asked for.
        kind: InterfaceKind,
        /// What it provides instead.
        provides: String,
    },
}

/// Runs the checks of every plugin in `file` (only those of `kind`, if given). `probe` is the
/// argv that starts the probe agent (the kit's caller knows where its executable is; the
/// probe's folder is appended); `screens` a folder of an agent's recorded screens (see
/// `agent`).
pub async fn test_library(
    file: &Path,
    kind: Option<InterfaceKind>,
    settings: &KitSettings,
    probe: Vec<String>,
    screens: Option<&Path>,
) -> Result<Vec<CheckResult>, KitError> {
    let baseline = probe::open_descriptors();
    let isolate = if settings.isolate {
        vec!["*".to_string()]
    } else {
        Vec::new()
    };
    let registry = PluginRegistry::load_configured(
        &[file.to_path_buf()],
        &LoadSettings {
            only: None,
            pins: &settings.pins,
            isolate: &isolate,
            skip: &[],
            call_timeout: settings.call_timeout,
            create_timeout: settings.create_timeout,
        },
    );
    let report = registry
        .reports()
        .first()
        .expect("one report per candidate file");
    let loaded = report
        .outcome
        .as_ref()
        .map_err(|e| KitError::Refused(e.to_string()))?;
    let plugins: Vec<(InterfaceKind, String)> = loaded
        .iter()
        .map(|p| (p.kind(), p.name().to_string()))
        .filter(|(k, _)| kind.is_none_or(|wanted| *k == wanted))
        .collect();
    if plugins.is_empty() {
        return Err(KitError::NoSuchKind {
            file: file.to_path_buf(),
            kind: kind.unwrap_or(InterfaceKind::Runtime),
            provides: loaded
                .iter()
                .map(|p| format!("{} {}", p.kind(), p.name()))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut results = Vec::new();
    for (kind, name) in plugins {
        let scratch = std::env::temp_dir().join(format!(
            "ao-plugins-test-{}-{}-{}",
            std::process::id(),
            kind,
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
        let make = |path: &Path| {
            std::fs::create_dir_all(path).map_err(|error| KitError::Scratch {
                path: path.to_path_buf(),
                error,
            })
        };
        make(&scratch)?;
        let mut kit = Kit {
            registry: &registry,
            settings,
            kind,
            plugin: name,
            scratch: scratch.clone(),
            probe: probe.clone(),
            screens: screens.map(Path::to_path_buf),
            baseline: baseline.clone(),
            timeout: settings.call_timeout,
            results: Vec::new(),
        };
        let printed = stdout::Watch::start(settings);
        match kind {
            InterfaceKind::Runtime => runtime::check(&mut kit).await,
            InterfaceKind::Agent => agent::check(&mut kit).await,
            InterfaceKind::Workspace => workspace::check(&mut kit).await,
            InterfaceKind::Scm => scm::check(&mut kit).await,
            InterfaceKind::Sandbox => sandbox::check(&mut kit).await,
            _ => kit.skip(
                "checks",
                format!("this kit has no checks for {kind} plugins yet"),
            ),
        }
        let printed = printed.finish();
        kit.stdout_check(printed);
        results.append(&mut kit.results);
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(results)
}

/// Polls `condition` every 50 ms until it holds or `limit` passes.
async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
