//! What agent plugins share for confined sessions: one refusal for a no-prompt setting used
//! outside a sandbox, seeding a per-session config home from the operator's, and the rules that
//! give a confined agent its own state and nothing of the operator's.
//!
//! An agent that asks no permission for its tools is safe only where a sandbox bounds what the
//! tools can do; the host starts one that way when the project says `unattended: true` and
//! confines it. The plugins' own older settings that skip the prompts would bypass that check,
//! so plain `launch` refuses them with the same message for every agent.

use std::path::Path;

use ao_plugin_api::{
    abi_stable::std_types::RVec,
    sandbox::{PathAccess, PathRule},
    PluginError, PluginResult,
};

use crate::files::Files;

/// The refusal of `setting` (as the operator wrote it, e.g. `skip_permissions: true`), which
/// starts `agent` without permission prompts, in a launch that is not confined.
pub fn no_prompt_refused(setting: &str, agent: &str) -> PluginError {
    PluginError::config(format!(
        "`{setting}` runs {agent} without permission prompts, which is allowed only in a \
         sandbox: set `sandbox:` for the project and `unattended: true` instead"
    ))
}

/// Copies each of `names` (files directly in `from`, e.g. the operator's `~/.claude`) into the
/// per-session folder `to`, owner-only. A file missing in `from` is skipped, and its copy from
/// an earlier launch kept (a sign-in made inside the session stays). A link is never followed
/// (one planted in the operator's folder could otherwise copy `~/.ssh/id_ed25519` where the
/// agent reads): it is refused, naming it, as is a file another user owns or may write.
pub fn seed_files(files: &Files, from: &Path, to: &Path, names: &[&str]) -> PluginResult<()> {
    for name in names {
        let source = from.join(name);
        let text = match files.read_private(&source) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(PluginError::failed(format!(
                    "seeding the session's config home from {}: {e}; replace it with a plain \
                     file of yours, or remove it",
                    source.display()
                )))
            }
        };
        let target = to.join(name);
        files
            .write(&target, text.as_bytes())
            .map_err(|e| PluginError::failed(format!("writing {}: {e}", target.display())))?;
    }
    Ok(())
}

/// The rules of an agent's [`ConfinedLaunchPlan::paths`](ao_plugin_api::sandbox::ConfinedLaunchPlan):
/// the operator's own CLI state hidden (`operator`: it holds every unconfined session's
/// conversations and hooks, and the session runs on its seeded copy), the session's plugin
/// folder read-only (its hook settings, system prompt), and within it what the CLI writes
/// (`writable`: its config home), in that order.
pub fn session_paths<'a>(
    operator: impl IntoIterator<Item = &'a Path>,
    folder: &Path,
    writable: impl IntoIterator<Item = &'a Path>,
) -> RVec<PathRule> {
    let rule = |path: &Path, access| PathRule::new(path.display().to_string(), access);
    operator
        .into_iter()
        .map(|path| rule(path, PathAccess::Hidden))
        .chain([rule(folder, PathAccess::ReadOnly)])
        .chain(
            writable
                .into_iter()
                .map(|path| rule(path, PathAccess::Writable)),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::*;

    #[test]
    fn the_refusal_names_the_setting_the_agent_and_the_fix() {
        let message = no_prompt_refused("skip_permissions: true", "Claude Code").to_string();
        assert!(
            message.contains("`skip_permissions: true` runs Claude Code"),
            "{message}"
        );
        assert!(message.contains("`sandbox:`"), "{message}");
        assert!(message.contains("`unattended: true`"), "{message}");
    }

    #[test]
    fn seeded_files_are_owner_only_copies_and_missing_ones_are_skipped() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        std::fs::write(from.path().join("a.json"), "{}").unwrap();
        seed_files(
            &Files::here(),
            from.path(),
            to.path(),
            &["a.json", "gone.json"],
        )
        .unwrap();
        let copy = to.path().join("a.json");
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "{}");
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner-only: {mode:o}");
        assert!(!to.path().join("gone.json").exists());
    }

    #[test]
    fn a_planted_link_is_refused_and_never_followed() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        let secret = from.path().join("id_ed25519");
        std::fs::write(&secret, "PRIVATE KEY").unwrap();
        symlink(&secret, from.path().join("settings.json")).unwrap();
        let err =
            seed_files(&Files::here(), from.path(), to.path(), &["settings.json"]).unwrap_err();
        assert!(err.message().contains("settings.json"), "{err}");
        assert!(!to.path().join("settings.json").exists());
    }
}
