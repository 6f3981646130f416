//! Where each live session's usage is kept between commands (every `ao-host` command is a new
//! process): `<data_dir>/usage/<project>/<id>.json`, owner-only, written whole (a temporary file
//! renamed over it) and never read through a link. It holds the agent plugin's cursor (where to
//! read on), the plugin it came from, and the last figures.
//!
//! No lock: a report is the session's whole usage, so two commands writing at once each write a
//! whole, right answer and the last one stays. A file that cannot be read is started over (the
//! plugin counts again from the start), with a log line, never a failed listing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::figures::SessionUsage;
use crate::{
    session::StoreError,
    watch::view::{read_json_within, write_json},
};

/// A usage file is a cursor and a few figures; anything this big is not one of ours.
const MAX_USAGE_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What is kept of one session.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StoredUsage {
    /// The agent plugin the cursor is of: another plugin's cursor is never handed to it.
    pub plugin: String,
    /// The plugin's own position in its records, given back untouched.
    pub cursor: String,
    /// The figures it last reported.
    pub usage: SessionUsage,
}

/// The `usage` folder of a data dir.
#[derive(Debug, Clone)]
pub struct UsageDir {
    root: PathBuf,
}

impl UsageDir {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("usage"),
        }
    }

    fn path(&self, project_id: &str, id: &str) -> PathBuf {
        self.root.join(project_id).join(format!("{id}.json"))
    }

    /// What is kept of a session; `None` when nothing is, or when its file cannot be read
    /// (logged: the plugin counts again from the start, and the next write replaces it).
    pub fn load(&self, project_id: &str, id: &str) -> Option<StoredUsage> {
        match read_json_within(&self.path(project_id, id), MAX_USAGE_FILE_BYTES) {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(%id, "{e}; counting its usage again from the start");
                None
            }
        }
    }

    /// Replaces what is kept of a session, whole.
    pub fn save(&self, project_id: &str, id: &str, stored: &StoredUsage) -> Result<(), StoreError> {
        write_json(&self.root, &self.path(project_id, id), stored)
    }

    /// Forgets a session (its usage is in its archived record now); nothing kept is fine.
    pub fn remove(&self, project_id: &str, id: &str) {
        let path = self.path(project_id, id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(%id, "removing {}: {e}", path.display())
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::usage::{figures::UsageState, prices::Prices};

    fn stored() -> StoredUsage {
        StoredUsage {
            plugin: "claude-code".into(),
            cursor: "{\"at\":1}".into(),
            usage: SessionUsage::new(
                UsageState::Known,
                Vec::new(),
                Vec::new(),
                1,
                &Prices::default(),
            ),
        }
    }

    #[test]
    fn kept_usage_reads_back_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let usage = UsageDir::new(dir.path());
        assert_eq!(usage.load("app", "app-1"), None);
        usage.save("app", "app-1", &stored()).unwrap();
        assert_eq!(usage.load("app", "app-1"), Some(stored()));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("usage/app/app-1.json")), 0o600);
        assert_eq!(mode(&dir.path().join("usage/app")), 0o700);
        usage.remove("app", "app-1");
        assert_eq!(usage.load("app", "app-1"), None);
    }

    #[test]
    fn a_damaged_file_is_started_over_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let usage = UsageDir::new(dir.path());
        usage.save("app", "app-1", &stored()).unwrap();
        let path = dir.path().join("usage/app/app-1.json");
        std::fs::write(&path, b"{\"plugin\": \"claude-co").unwrap();
        assert_eq!(usage.load("app", "app-1"), None);
        usage.save("app", "app-1", &stored()).unwrap();
        assert_eq!(usage.load("app", "app-1"), Some(stored()));
    }

    #[test]
    fn a_planted_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let usage = UsageDir::new(dir.path());
        usage.save("app", "app-2", &stored()).unwrap();
        let path = dir.path().join("usage/app/app-1.json");
        std::os::unix::fs::symlink(dir.path().join("usage/app/app-2.json"), &path).unwrap();
        assert_eq!(usage.load("app", "app-1"), None);
    }
}
