//! Files an agent plugin keeps for each session: a hook settings file, a system prompt, a whole
//! per-session config folder (`CODEX_HOME`, a settings home) — so a session's configuration never
//! goes into the operator's own config files, and two sessions never share one.
//!
//! Everything lives under `<data_dir>/<plugin name>/sessions/<session id>/`, created owner-only
//! (0700): hook settings name commands the agent runs, and seeded credentials may be copied in.

use std::path::{Component, Path, PathBuf};

use ao_plugin_api::{PluginContext, PluginError, PluginResult};

use crate::{files::Files, validate::validate_id};

/// The per-session folders of one agent plugin, on the machine its sessions run on (the
/// transport's, for an instance built for another host: see [`crate::remote`]).
#[derive(Debug, Clone)]
pub struct SessionFiles {
    root: PathBuf,
    files: Files,
}

impl SessionFiles {
    /// `<data_dir>/<plugin name>/sessions`.
    pub fn new(context: &PluginContext) -> Self {
        Self {
            root: Path::new(context.data_dir.as_str())
                .join(context.plugin_name.as_str())
                .join("sessions"),
            files: Files::here(),
        }
    }

    /// The session's folder, without creating it (the session id is validated: it becomes a
    /// path component).
    pub fn path(&self, session_id: &str) -> PluginResult<PathBuf> {
        validate_id("session id", session_id)?;
        Ok(self.root.join(session_id))
    }

    /// The session's folder, created (with its parents) if missing and made owner-only.
    pub fn dir(&self, session_id: &str) -> PluginResult<PathBuf> {
        let dir = self.path(session_id)?;
        self.files
            .create_dir_all(&dir, true)
            .map_err(|e| PluginError::failed(format!("creating {}: {e}", dir.display())))?;
        Ok(dir)
    }

    /// Writes `name` (a path relative to the session's folder, folders created as needed) whole:
    /// into a temporary file beside it, then renamed over, so the agent never reads half a file.
    /// `name` may not leave the folder (`..`, absolute paths).
    pub fn write(&self, session_id: &str, name: &str, contents: &[u8]) -> PluginResult<PathBuf> {
        let relative = Path::new(name);
        let escapes = relative
            .components()
            .any(|part| !matches!(part, Component::Normal(_)));
        if name.is_empty() || escapes {
            return Err(PluginError::invalid_input(format!(
                "{name:?} is not a file name inside the session's folder"
            )));
        }
        let dir = self.dir(session_id)?;
        let path = dir.join(relative);
        // Folders of its own only for a nested name: the session's folder was just made (on
        // another host, each is a round trip).
        if let Some(parent) = path.parent().filter(|parent| *parent != dir) {
            self.files
                .create_dir_all(parent, true)
                .map_err(|e| PluginError::failed(format!("creating {}: {e}", parent.display())))?;
        }
        self.files
            .write(&path, contents)
            .map_err(|e| PluginError::failed(format!("writing {}: {e}", path.display())))?;
        Ok(path)
    }

    /// Removes the session's folder with everything in it (see `Agent::forget`); one already
    /// gone is no error.
    pub fn remove(&self, session_id: &str) -> PluginResult<()> {
        let dir = self.path(session_id)?;
        // A link below the data dir (one another user planted in a data dir an older version
        // left open) would make this remove a folder elsewhere.
        let data_dir = self.root.ancestors().nth(2).unwrap_or(&self.root);
        let below = dir.strip_prefix(data_dir).unwrap_or(&dir);
        if let (Ok(real), Ok(base)) = (
            self.files.canonicalize(&dir),
            self.files.canonicalize(data_dir),
        ) {
            if real != base.join(below) {
                return Err(PluginError::invalid_input(format!(
                    "{} leads through a symbolic link (to {}); it is not removed: remove the link",
                    dir.display(),
                    real.display()
                )));
            }
        }
        self.files
            .remove_dir_all(&dir)
            .map_err(|e| PluginError::failed(format!("removing {}: {e}", dir.display())))
    }

    /// Whether file `name` of the session's folder is there.
    pub fn exists(&self, session_id: &str, name: &str) -> PluginResult<bool> {
        let path = self.path(session_id)?.join(name);
        self.files.try_is_file(&path).map_err(|e| {
            PluginError::unavailable(format!(
                "cannot tell whether {} is there: {e}",
                path.display()
            ))
        })
    }

    /// Reads `name` from the session's folder; `None` when it is not there. Never through a
    /// link, and never a file another user made or may write (see [`Files::read_private`]).
    pub fn read(&self, session_id: &str, name: &str) -> PluginResult<Option<Vec<u8>>> {
        let path = self.path(session_id)?.join(name);
        match self.files.read_private(&path) {
            Ok(text) => Ok(Some(text.into_bytes())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PluginError::failed(format!(
                "reading {}: {e}",
                path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::PermissionsExt};

    use ao_plugin_api::abi_stable::std_types::RString;

    use super::*;

    fn files(data_dir: &Path) -> SessionFiles {
        SessionFiles::new(&PluginContext {
            plugin_name: RString::from("codex"),
            data_dir: RString::from(data_dir.to_str().unwrap()),
            config_yaml: RString::new(),
        })
    }

    #[test]
    fn files_are_written_whole_in_an_owner_only_folder_of_the_session() {
        let temp = std::env::temp_dir().join(format!("ao-session-files-{}", std::process::id()));
        let files = files(&temp);
        let path = files
            .write("app-1", "home/config.toml", b"x = 1\n")
            .unwrap();
        assert_eq!(path, temp.join("codex/sessions/app-1/home/config.toml"));
        assert_eq!(
            files.read("app-1", "home/config.toml").unwrap().unwrap(),
            b"x = 1\n"
        );
        assert_eq!(files.read("app-1", "missing").unwrap(), None);
        let mode = fs::metadata(temp.join("codex/sessions/app-1"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        for bad in ["", "../x", "/etc/passwd", "a/../../b"] {
            assert!(files.write("app-1", bad, b"").is_err(), "{bad:?}");
        }
        assert!(files.dir("../app").is_err());
        // A session folder reached through a link is not removed, nor what it points to.
        let elsewhere = temp.join("elsewhere");
        fs::create_dir_all(elsewhere.join("app-2")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("app-2"), temp.join("codex/sessions/app-2"))
            .unwrap();
        assert!(files.remove("app-2").is_err());
        assert!(elsewhere.join("app-2").exists());
        files.remove("app-1").unwrap();
        assert!(!temp.join("codex/sessions/app-1").exists());
        fs::remove_dir_all(&temp).unwrap();
    }
}
