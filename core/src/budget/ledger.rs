//! What the budgets keep in the data dir, private like the rest of it, under `budgets/`:
//! - `sessions/<project>/<id>/snapshot.json`: the session's budget as the config said when it
//!   was last loaded ([`Snapshot`]). The hook reads only this, so a session without a budget
//!   costs its hook one failed `open`.
//! - `sessions/<project>/<id>/over.json`: the budget that stopped it ([`OverBudget`]), made
//!   exclusively, so of all the processes that see a budget run out one interrupts the agent.
//! - `warned/<level>-<scope>-<threshold>`: one empty file per warning given, made exclusively,
//!   so each threshold warns once however many processes see it reached.

use std::{
    fs::{self, OpenOptions},
    io,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use ao_plugin_kit::private;
use serde::{Deserialize, Serialize};

use super::{Exhausted, Level};
use crate::{config::Limit, session::StoreError};

/// A snapshot or mark never grows past this; anything larger is not ours.
const MAX_FILE_BYTES: u64 = 16 * 1024;

/// A session's budget, copied from the config so the hook need not read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub limit: Limit,
    /// The config field that sets it (`budgets.session` or `projects.<id>.budgets.session`),
    /// for messages.
    pub field: String,
}

/// Why a session is over budget, and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverBudget {
    pub exhausted: Exhausted,
    /// The config field to raise (`budgets.session.stop`, …).
    pub field: String,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; raise {} in the config to let it continue",
            self.exhausted, self.field
        )
    }
}

/// The `budgets/` folder of a data dir.
#[derive(Debug, Clone)]
pub struct Ledger {
    root: PathBuf,
}

impl Ledger {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("budgets"),
        }
    }

    fn session_folder(&self, project_id: &str, id: &str) -> PathBuf {
        self.root.join("sessions").join(project_id).join(id)
    }

    /// The session's budget snapshot; `None` when it has none.
    pub fn snapshot(&self, project_id: &str, id: &str) -> Result<Option<Snapshot>, StoreError> {
        read_json(&self.session_folder(project_id, id).join("snapshot.json"))
    }

    /// Makes the session's snapshot say `snapshot` (`None`: no session budget), writing only
    /// when it changes, so a listing of many sessions writes nothing when the config did not.
    pub fn keep_snapshot(
        &self,
        project_id: &str,
        id: &str,
        snapshot: Option<&Snapshot>,
    ) -> Result<(), StoreError> {
        let path = self.session_folder(project_id, id).join("snapshot.json");
        let now = read_json::<Snapshot>(&path).unwrap_or(None);
        if now.as_ref() == snapshot {
            return Ok(());
        }
        match snapshot {
            None => remove(&path),
            Some(snapshot) => {
                self.make_session_folder(project_id, id)?;
                let text = serde_json::to_vec(snapshot).expect("a snapshot serializes");
                private::write(&path, &text, false).map_err(io_error("writing", &path))
            }
        }
    }

    /// What stopped the session, if it is over budget.
    pub fn over_budget(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Option<OverBudget>, StoreError> {
        read_json(&self.session_folder(project_id, id).join("over.json"))
    }

    /// Marks the session over budget; `true` only for the one process that made the mark (it
    /// interrupts the agent and notifies), `false` when it was already marked.
    pub fn mark_over(
        &self,
        project_id: &str,
        id: &str,
        over: &OverBudget,
    ) -> Result<bool, StoreError> {
        self.make_session_folder(project_id, id)?;
        let path = self.session_folder(project_id, id).join("over.json");
        let (temp, mut file) = private::create_temp(&path).map_err(io_error("writing", &path))?;
        let text = serde_json::to_vec(over).expect("a mark serializes");
        let written = io::Write::write_all(&mut file, &text);
        // A hard link fails where the name is taken: the mark appears whole, and once.
        let made = written.and_then(|()| fs::hard_link(&temp, &path));
        let _ = fs::remove_file(&temp);
        match made {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_error("writing", &path)(e)),
        }
    }

    /// Lifts the mark (its budget was raised); `true` when there was one.
    pub fn clear_over(&self, project_id: &str, id: &str) -> Result<bool, StoreError> {
        let path = self.session_folder(project_id, id).join("over.json");
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("removing", &path)(e)),
        }
    }

    /// Lets an over-budget session take the turn a forced message (`send --force`) starts: its
    /// agent's working events do not interrupt it until it is idle again.
    pub fn allow_forced_turn(&self, project_id: &str, id: &str) -> Result<(), StoreError> {
        self.make_session_folder(project_id, id)?;
        let path = self.session_folder(project_id, id).join("forced");
        private::write(&path, b"", false).map_err(io_error("writing", &path))
    }

    /// Whether a forced turn is under way (see [`Ledger::allow_forced_turn`]).
    pub fn in_forced_turn(&self, project_id: &str, id: &str) -> bool {
        fs::symlink_metadata(self.session_folder(project_id, id).join("forced"))
            .is_ok_and(|meta| meta.is_file())
    }

    /// Ends a forced turn: the agent is idle again.
    pub fn end_forced_turn(&self, project_id: &str, id: &str) {
        let _ = fs::remove_file(self.session_folder(project_id, id).join("forced"));
    }

    /// Whether this process is the first to warn that `scope`'s `level` budget reached
    /// `threshold` (claimed by making a file exclusively).
    pub fn claim_warning(
        &self,
        level: Level,
        scope: &str,
        threshold: f64,
    ) -> Result<bool, StoreError> {
        let folder = self.root.join("warned");
        private::create_dir_within(&self.root, &folder).map_err(io_error("creating", &folder))?;
        let path = folder.join(format!("{}-{scope}-{threshold}", level.as_str()));
        let made = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path);
        match made {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_error("writing", &path)(e)),
        }
    }

    /// Forgets a session's snapshot and mark (it was killed); its warnings stay, so a restored
    /// session does not warn again for the same threshold.
    pub fn forget(&self, project_id: &str, id: &str) {
        let folder = self.session_folder(project_id, id);
        if folder
            .symlink_metadata()
            .is_ok_and(|meta| meta.file_type().is_symlink())
        {
            return;
        }
        for name in ["snapshot.json", "over.json"] {
            let _ = fs::remove_file(folder.join(name));
        }
        let _ = fs::remove_dir(folder);
    }

    fn make_session_folder(&self, project_id: &str, id: &str) -> Result<(), StoreError> {
        let folder = self.session_folder(project_id, id);
        private::create_dir_within(&self.root, &folder).map_err(io_error("creating", &folder))
    }
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |error| StoreError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

fn remove(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("removing", path)(e)),
        _ => Ok(()),
    }
}

/// A JSON file of ours; `None` when it is not there. Read without following a link, bounded.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let file = match private::open_read(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("reading", path)(e)),
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(file, MAX_FILE_BYTES), &mut bytes)
        .map_err(io_error("reading", path))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over(spent: f64) -> OverBudget {
        OverBudget {
            exhausted: Exhausted {
                level: Level::Session,
                scope: "app-1".into(),
                spent,
                limit: 1.0,
            },
            field: "budgets.session.stop".into(),
            at: 1,
        }
    }

    #[test]
    fn a_session_is_marked_once_and_the_mark_lifts() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path());
        assert_eq!(ledger.over_budget("app", "app-1").unwrap(), None);
        assert!(ledger.mark_over("app", "app-1", &over(1.5)).unwrap());
        assert!(!ledger.mark_over("app", "app-1", &over(2.0)).unwrap());
        assert_eq!(ledger.over_budget("app", "app-1").unwrap(), Some(over(1.5)));
        assert!(ledger.clear_over("app", "app-1").unwrap());
        assert!(!ledger.clear_over("app", "app-1").unwrap());
        assert_eq!(ledger.over_budget("app", "app-1").unwrap(), None);
        let folder = dir.path().join("budgets/sessions/app/app-1");
        let leftovers: Vec<_> = fs::read_dir(&folder).unwrap().collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn each_threshold_warns_once_and_a_new_threshold_warns_again() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path());
        assert!(ledger.claim_warning(Level::Day, "2026-12-07", 1.5).unwrap());
        assert!(!ledger.claim_warning(Level::Day, "2026-12-07", 1.5).unwrap());
        assert!(ledger.claim_warning(Level::Day, "2026-12-07", 2.0).unwrap());
        assert!(ledger.claim_warning(Level::Day, "2026-12-08", 1.5).unwrap());
    }

    #[test]
    fn a_snapshot_is_written_when_it_changes_and_removed_without_a_budget() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path());
        let snapshot = Snapshot {
            limit: Limit {
                warn: None,
                stop: Some(2.0),
            },
            field: "budgets.session".into(),
        };
        ledger
            .keep_snapshot("app", "app-1", Some(&snapshot))
            .unwrap();
        assert_eq!(
            ledger.snapshot("app", "app-1").unwrap(),
            Some(snapshot.clone())
        );
        let path = dir.path().join("budgets/sessions/app/app-1/snapshot.json");
        let written = fs::metadata(&path).unwrap().modified().unwrap();
        ledger
            .keep_snapshot("app", "app-1", Some(&snapshot))
            .unwrap();
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), written);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        ledger.keep_snapshot("app", "app-1", None).unwrap();
        assert_eq!(ledger.snapshot("app", "app-1").unwrap(), None);
    }
}
