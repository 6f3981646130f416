//! A confined session's own Claude Code config home (`CLAUDE_CONFIG_DIR`).
//!
//! A confined agent must be able to write its CLI's state (transcripts, its `.claude.json`),
//! but a writable shared `~/.claude` would let it plant hooks or settings that every unconfined
//! session then runs. So each confined session gets a home of its own, in the plugin's session
//! folder, seeded from the operator's at each launch:
//! - `.credentials.json` (the sign-in), refreshed from the operator's when there;
//! - `.claude.json` (onboarding done, folders trusted, the account), copied once: with
//!   `CLAUDE_CONFIG_DIR` set the CLI keeps it inside that folder, and the session's own
//!   changes to it (the worktree trusted) are kept on restore;
//! - `settings.json`: the operator's, rewritten each launch **without `hooks`**. Those hooks
//!   were written for unconfined sessions (a desktop notification, a log under `$HOME`) and
//!   would fail inside the sandbox or report a confined agent's doings to the operator's tools
//!   as if they were trusted; the hooks ao-host needs come from the plugin's own `--settings`
//!   file. In unattended mode the bypass-permissions warning is marked accepted
//!   (`skipDangerousModePermissionPrompt`): the operator accepted it with `unattended: true`.
//!
//! Files are never read through a link (see [`seed_files`]).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use ao_plugin_api::{PluginError, PluginResult};
use ao_plugin_kit::{confinement::seed_files, files::Files, session_files::SessionFiles};
use serde_json::{Map, Value};

/// The home's folder inside the session's folder.
pub const HOME: &str = "config-home";

/// Where the operator's Claude Code keeps its state.
pub struct Operator {
    /// `CLAUDE_CONFIG_DIR`, else `~/.claude`: credentials and `settings.json`.
    config: PathBuf,
    /// `CLAUDE_CONFIG_DIR`, else `$HOME`: the folder of `.claude.json`.
    global: PathBuf,
}

impl Operator {
    /// From `env` (the plugin's `env` setting) first, then the environment, as the CLI would
    /// find them.
    pub fn from_env(env: &BTreeMap<String, String>) -> Option<Self> {
        let var = |name: &str| {
            env.get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        match var("CLAUDE_CONFIG_DIR") {
            Some(dir) => Some(Self {
                config: dir.clone(),
                global: dir,
            }),
            None => var("HOME").map(|home| Self {
                config: home.join(".claude"),
                global: home,
            }),
        }
    }

    /// The operator's own config home and `.claude.json`, which a confined session (running on
    /// its seeded copy) must not read: they hold every unconfined session's transcripts, and
    /// `settings.json` hooks.
    pub fn shared_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.config.clone()];
        if self.global != self.config {
            paths.push(self.global.join(".claude.json"));
        }
        paths
    }
}

/// The session's config home, when it has one (it was confined).
pub fn existing(files: &SessionFiles, session_id: &str) -> Option<PathBuf> {
    let home = files.path(session_id).ok()?.join(HOME);
    home.is_dir().then_some(home)
}

/// Makes (or refreshes) the session's config home, as the module docs say; its path.
pub fn prepare(
    files: &SessionFiles,
    session_id: &str,
    operator: Option<&Operator>,
    unattended: bool,
) -> PluginResult<PathBuf> {
    let home = files.dir(session_id)?.join(HOME);
    let here = Files::here();
    here.create_dir_all(&home, true)
        .map_err(|e| PluginError::failed(format!("creating {}: {e}", home.display())))?;
    let mut settings = Map::new();
    if let Some(operator) = operator {
        seed_files(&here, &operator.config, &home, &[".credentials.json"])?;
        if !files.exists(session_id, &format!("{HOME}/.claude.json"))? {
            seed_files(&here, &operator.global, &home, &[".claude.json"])?;
        }
        settings = operator_settings(&here, &operator.config.join("settings.json"))?;
    }
    settings.remove("hooks");
    if unattended {
        settings.insert(
            "skipDangerousModePermissionPrompt".into(),
            Value::Bool(true),
        );
    }
    let text = Value::Object(settings).to_string();
    files.write(
        session_id,
        &format!("{HOME}/settings.json"),
        text.as_bytes(),
    )?;
    Ok(home)
}

/// The operator's `settings.json` (empty when there is none).
fn operator_settings(files: &Files, path: &Path) -> PluginResult<Map<String, Value>> {
    let text = match files.read_private(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => {
            return Err(PluginError::failed(format!(
                "seeding the session's config home from {}: {e}; replace it with a plain file \
                 of yours, or remove it",
                path.display()
            )))
        }
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(settings)) => Ok(settings),
        _ => Err(PluginError::config(format!(
            "{} is not a JSON object, so a confined session's settings cannot be made from it; \
             fix it (Claude Code would not read it either)",
            path.display()
        ))),
    }
}
