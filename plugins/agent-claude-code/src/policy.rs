//! Managed settings that keep Claude Code from running ao-host's hooks.
//!
//! An administrator's policy file (`managed-settings.json` in Claude Code's managed folder, and
//! the drop-ins of `managed-settings.d/`, as the 2.1.197 binary reads them) may set
//! `disableAllHooks: true` (no hook runs) or `allowManagedHooksOnly: true` (only the policy's
//! own hooks run). Either way the session's `--settings` hooks never report, and the host falls
//! back to the screen. Policies from MDM or the server are not files and cannot be read here.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

/// Where Claude Code reads managed settings on this system.
#[cfg(target_os = "macos")]
pub const MANAGED_DIR: &str = "/Library/Application Support/ClaudeCode";
#[cfg(not(target_os = "macos"))]
pub const MANAGED_DIR: &str = "/etc/claude-code";

/// A policy file is a few kilobytes; anything larger is not read.
const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// The settings that stop hooks, with what each does to ao-host's.
const HOOK_SETTINGS: [(&str, &str); 2] = [
    ("disableAllHooks", "Claude Code runs no hooks at all"),
    (
        "allowManagedHooksOnly",
        "Claude Code runs only the policy's own hooks",
    ),
];

/// One managed setting that stops ao-host's hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookPolicy {
    pub file: PathBuf,
    pub setting: &'static str,
    /// What it does, in a few words.
    pub effect: &'static str,
}

impl std::fmt::Display for HookPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sets `{}: true` ({})",
            self.file.display(),
            self.setting,
            self.effect
        )
    }
}

/// The managed files under `dir` in the order Claude Code reads them: the main file, then the
/// drop-ins by name (`.json`, not hidden).
fn policy_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = vec![dir.join("managed-settings.json")];
    if let Ok(entries) = std::fs::read_dir(dir.join("managed-settings.d")) {
        let mut drop_ins: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".json") && !n.starts_with('.'))
            })
            .collect();
        drop_ins.sort();
        files.extend(drop_ins);
    }
    files
}

/// The readable managed settings under `dir` that stop ao-host's hooks. Unreadable or
/// malformed files say nothing: Claude Code ignores them too.
pub fn hook_policies_in(dir: &Path) -> Vec<HookPolicy> {
    let mut found = Vec::new();
    for file in policy_files(dir) {
        let Ok(handle) = std::fs::File::open(&file) else {
            continue;
        };
        let mut text = String::new();
        if handle
            .take(MAX_POLICY_BYTES)
            .read_to_string(&mut text)
            .is_err()
        {
            continue;
        }
        let Ok(settings) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        for (setting, effect) in HOOK_SETTINGS {
            if settings.get(setting) == Some(&serde_json::Value::Bool(true)) {
                found.push(HookPolicy {
                    file: file.clone(),
                    setting,
                    effect,
                });
            }
        }
    }
    found
}

/// Why a session's hooks may not have run, for the note of a session read from its screen.
pub fn silent_hooks_hint(dir: &Path) -> String {
    let found = hook_policies_in(dir);
    if found.is_empty() {
        return format!(
            "Claude Code ran no hooks — a managed policy (`disableAllHooks`/`allowManagedHooksOnly` \
             in {}/managed-settings.json, its managed-settings.d/, MDM or the server) may forbid \
             them, or `disableAllHooks` in a user or project settings file; `ao-host doctor` \
             checks the files it can read",
            dir.display()
        );
    }
    let found: Vec<String> = found.iter().map(ToString::to_string).collect();
    format!(
        "Claude Code ran no hooks: the managed policy {}",
        found.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_that_stops_hooks_is_named_with_its_file_and_setting() {
        let dir = tempfile::tempdir().unwrap();
        assert!(hook_policies_in(dir.path()).is_empty());
        assert!(silent_hooks_hint(dir.path()).contains("`disableAllHooks`/`allowManagedHooksOnly`"));
        std::fs::write(
            dir.path().join("managed-settings.json"),
            r#"{"disableAllHooks": true, "allowManagedHooksOnly": false}"#,
        )
        .unwrap();
        let drop_ins = dir.path().join("managed-settings.d");
        std::fs::create_dir(&drop_ins).unwrap();
        std::fs::write(
            drop_ins.join("10-hooks.json"),
            r#"{"allowManagedHooksOnly": true}"#,
        )
        .unwrap();
        std::fs::write(
            drop_ins.join(".hidden.json"),
            r#"{"disableAllHooks": true}"#,
        )
        .unwrap();
        std::fs::write(drop_ins.join("broken.json"), "{not json").unwrap();
        let found = hook_policies_in(dir.path());
        assert_eq!(
            found
                .iter()
                .map(|p| (p.file.file_name().unwrap().to_str().unwrap(), p.setting))
                .collect::<Vec<_>>(),
            [
                ("managed-settings.json", "disableAllHooks"),
                ("10-hooks.json", "allowManagedHooksOnly")
            ]
        );
        let hint = silent_hooks_hint(dir.path());
        assert!(
            hint.contains("managed-settings.json sets `disableAllHooks: true` (Claude Code runs no hooks at all)"),
            "{hint}"
        );
    }
}
