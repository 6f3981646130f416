//! The conformance kit, `ao-host plugins test FILE`: drives every plugin of one library through
//! its contract, on scratch resources it makes and removes, and says check by check what holds.
//!
//! A plugin author runs it before anyone else runs their plugin; CI runs it on every
//! first-party and example plugin. It catches what breaks sessions later and far from the
//! cause: a runtime that changes a byte of a message, leaves a process behind after a failed
//! `create`, lists another data dir's sessions as its own, or fails the second `destroy`.
//! Runtimes run [`probe`], the kit's own agent, which records every byte it receives.

mod agent;
pub mod probe;
mod runtime;
mod workspace;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use ao_plugin_api::PluginKind;
use serde::Serialize;

use crate::{
    config::Config,
    plugins::{set::plugin_context, PluginRegistry},
};

/// One check of one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    #[serde(serialize_with = "kind_name")]
    pub kind: PluginKind,
    pub plugin: String,
    pub check: String,
    pub ok: bool,
    /// Why it failed, or what was seen when it passed.
    pub detail: String,
}

fn kind_name<S: serde::Serializer>(kind: &PluginKind, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(kind.as_str())
}

/// What the checks of one plugin share.
struct Kit<'a> {
    registry: &'a PluginRegistry,
    config: &'a Config,
    kind: PluginKind,
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
            detail: outcome.unwrap_or_else(|why| why),
        });
        ok
    }

    /// Records how building the plugin went (the check `new`); the instance if it was built.
    fn built<T>(&mut self, built: Result<T, crate::plugins::RegistryError>) -> Option<T> {
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

    fn context(&self, data_dir: &Path) -> ao_plugin_api::PluginContext {
        plugin_context(self.config, data_dir, &self.plugin)
    }
}

/// Why the kit could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("{0}")]
    Refused(String),
    #[error("{path}: {error}", path = path.display())]
    Scratch {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{file} has no {kind} plugin; it provides: {provides}", file = file.display())]
    NoSuchKind {
        file: PathBuf,
        kind: PluginKind,
        provides: String,
    },
}

/// Runs the checks of every plugin in `file` (only those of `kind`, if given). `probe` is the
/// argv that starts the probe agent (the kit's caller knows where its executable is); `screens`
/// a folder of an agent's recorded screens (see [`agent`]).
pub async fn test_library(
    file: &Path,
    kind: Option<PluginKind>,
    config: &Config,
    probe: Vec<String>,
    screens: Option<&Path>,
) -> Result<Vec<CheckResult>, KitError> {
    let baseline = probe::open_descriptors();
    let registry = crate::plugins::load_configured(&[file.to_path_buf()], config);
    let report = registry
        .reports()
        .first()
        .expect("one report per candidate file");
    let loaded = report
        .outcome
        .as_ref()
        .map_err(|e| KitError::Refused(e.to_string()))?;
    let plugins: Vec<(PluginKind, String)> = loaded
        .iter()
        .map(|p| (p.kind(), p.name().to_string()))
        .filter(|(k, _)| kind.is_none_or(|wanted| *k == wanted))
        .collect();
    if plugins.is_empty() {
        return Err(KitError::NoSuchKind {
            file: file.to_path_buf(),
            kind: kind.unwrap_or(PluginKind::Runtime),
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
            config,
            kind,
            plugin: name,
            scratch: scratch.clone(),
            probe: probe.clone(),
            screens: screens.map(Path::to_path_buf),
            baseline: baseline.clone(),
            timeout: Duration::from_millis(config.call_timeout_ms),
            results: Vec::new(),
        };
        match kind {
            PluginKind::Runtime => runtime::check(&mut kit).await,
            PluginKind::Agent => agent::check(&mut kit).await,
            PluginKind::Workspace => workspace::check(&mut kit).await,
        }
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
