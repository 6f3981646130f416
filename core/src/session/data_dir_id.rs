//! The data dir's identity ([`DataDirId`], `<data_dir>/.data-dir-id`): what lets a moved data dir
//! keep its sessions, and a copied one claim none of the original's.
//!
//! Plugins mark what they make with the data dir's path (a tmux session's owner option, a
//! worktree's owner record, the remote hosts' per-data-dir folder). When the file says the data
//! dir was last opened somewhere else:
//!
//! - if that path still holds a data dir with the same id, this one is a **copy**: it takes a new
//!   id and no earlier paths, so it claims nothing the original made (its records still name the
//!   original's sessions; they read as exited here, and a kill here refuses to touch them);
//! - otherwise the data dir was **moved**: the old path joins its earlier paths, which plugins
//!   accept as owners ([`PluginContext::owner_aliases`](ao_plugin_api::PluginContext)), and the
//!   records' workspace paths inside the old path are re-pointed by the upgrade that then runs
//!   ([`super::migrate::upgrade`]).
//!
//! The file is only ever replaced whole (a temporary file renamed over it), under the data dir's
//! migration lock, so two processes opening a fresh data dir at once agree on one id, and a
//! process killed while writing it leaves the old file or the new one.

use std::path::Path;

use ao_plugin_kit::{data_dir_id::DataDirId, private};

use super::{lock::LockDir, migrate, StoreError};

/// Reads `data_dir`'s identity, making it on first open and updating it after a move or a copy.
pub fn open(data_dir: &Path, locks: &LockDir) -> Result<DataDirId, StoreError> {
    let here = data_dir.display().to_string();
    if let Some(id) = read(data_dir)?.filter(|id| id.path == here) {
        return Ok(id);
    }
    let _turn = migrate::take_turn(locks)?;
    let id = match read(data_dir)? {
        Some(id) if id.path == here => return Ok(id),
        None => fresh(here)?,
        Some(id) if is_original(&id) => {
            tracing::info!(
                "{here} is a copy of the data dir at {}: it takes a new identity and claims none \
                 of that data dir's sessions",
                id.path
            );
            fresh(here)?
        }
        Some(mut id) => {
            tracing::info!("the data dir at {} was moved to {here}", id.path);
            let previous = std::mem::replace(&mut id.path, here);
            id.earlier_paths
                .retain(|earlier| *earlier != previous && *earlier != id.path);
            id.earlier_paths.push(previous);
            // Before the new identity is written: a process killed in between finds the move
            // again on its next open.
            migrate::upgrade_again(data_dir)?;
            id
        }
    };
    let file = data_dir.join(ao_plugin_kit::data_dir_id::FILE_NAME);
    private::write(&file, id.to_yaml().as_bytes(), true).map_err(|error| StoreError::Io {
        action: "writing",
        path: file,
        error,
    })?;
    Ok(id)
}

/// The earlier paths of a data dir that cannot be written (see `SessionStore::open`), as its
/// identity says, updating nothing: one moved while read-only claims them once opened writable,
/// as the plugins, which read the same file, do.
pub(crate) fn peek(data_dir: &Path) -> Result<Vec<String>, StoreError> {
    let here = data_dir.display().to_string();
    Ok(read(data_dir)?
        .filter(|id| id.path == here)
        .map(|id| id.earlier_paths)
        .unwrap_or_default())
}

/// The identity file, or `None` when there is none. One that others could have written (or a
/// link) is not believed: the data dir takes a new identity, which claims nothing it made
/// before a move. One of ours that cannot be read stops the command with the fix (guessing
/// would either lose the sessions of a move or claim another's).
fn read(data_dir: &Path) -> Result<Option<DataDirId>, StoreError> {
    DataDirId::read(data_dir).or_else(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            tracing::warn!("{e}; not believed: the data dir takes a new identity");
            return Ok(None);
        }
        let path = data_dir.join(ao_plugin_kit::data_dir_id::FILE_NAME);
        Err(StoreError::Untrusted {
            message: format!(
                "the data dir's identity {}: {e}; fix or delete it (deleted, the data dir takes a \
                 new identity and no longer claims sessions made before it was moved)",
                path.display()
            ),
            path,
        })
    })
}

/// Whether the data dir `id` says it was last opened at still holds it: then the one being
/// opened is a copy.
fn is_original(id: &DataDirId) -> bool {
    matches!(DataDirId::read(Path::new(&id.path)), Ok(Some(there)) if there.id == id.id)
}

/// A new identity at `path`: 128 random bits.
fn fresh(path: String) -> Result<DataDirId, StoreError> {
    let id = ao_plugin_kit::uuid::new_v4().map_err(|e| StoreError::Io {
        action: "making an identity for",
        path: path.clone().into(),
        error: std::io::Error::other(e.to_string()),
    })?;
    Ok(DataDirId {
        id,
        path,
        earlier_paths: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::{fs, path::PathBuf, sync::Barrier};

    use ao_plugin_kit::data_dir_id::FILE_NAME;

    use super::*;

    /// A fresh data dir folder (canonical, as the store spells it) inside a temporary one.
    fn data_dir(temp: &tempfile::TempDir, name: &str) -> PathBuf {
        let dir = temp.path().canonicalize().unwrap().join(name);
        private::create_dir(&dir).unwrap();
        dir
    }

    fn open_at(dir: &Path) -> DataDirId {
        open(dir, &LockDir::new(dir)).unwrap()
    }

    fn write_id(dir: &Path, id: &str, path: &Path, earlier_paths: &[&Path]) {
        let id = DataDirId {
            id: id.into(),
            path: path.display().to_string(),
            earlier_paths: earlier_paths
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        };
        private::write(&dir.join(FILE_NAME), id.to_yaml().as_bytes(), false).unwrap();
    }

    #[test]
    fn opening_a_fresh_data_dir_at_once_gives_everyone_one_id() {
        for _ in 0..10 {
            let temp = tempfile::tempdir().unwrap();
            let dir = data_dir(&temp, "data");
            // Threads stand in for processes: the lock is a `flock` on a file each opens.
            let start = Barrier::new(6);
            let ids: Vec<String> = std::thread::scope(|scope| {
                let opens: Vec<_> = (0..6)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            open_at(&dir).id
                        })
                    })
                    .collect();
                opens.into_iter().map(|o| o.join().unwrap()).collect()
            });
            assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
            assert_eq!(DataDirId::read(&dir).unwrap().unwrap().id, ids[0]);
        }
    }

    #[test]
    fn a_writer_killed_before_its_rename_leaves_a_working_data_dir() {
        let temp = tempfile::tempdir().unwrap();
        let dir = data_dir(&temp, "data");
        // What `kill -9` during the write leaves: a half-written temporary file, no id file.
        let leftover = dir.join(format!(".{FILE_NAME}.4194304-0123.tmp"));
        fs::write(&leftover, "id: 12").unwrap();
        let id = open_at(&dir);
        assert_eq!(id.path, dir.display().to_string());
        assert!(id.earlier_paths.is_empty());
        assert_eq!(open_at(&dir), id);
        // gc removes the leftover.
        let store = super::super::SessionStore::open(&dir).unwrap();
        assert_eq!(store.stale_temp_files(), [leftover]);
    }

    #[test]
    fn a_move_is_found_again_until_its_identity_is_written() {
        let temp = tempfile::tempdir().unwrap();
        let dir = data_dir(&temp, "moved");
        let (first, old) = (temp.path().join("first"), temp.path().join("old"));
        // A process killed after the records were marked for re-pointing, before the new
        // identity was written, left the old identity.
        write_id(&dir, "same", &old, &[&first]);
        fs::write(dir.join(".schema-version"), "1").unwrap();
        let id = open_at(&dir);
        assert_eq!(id.id, "same");
        assert_eq!(id.path, dir.display().to_string());
        let earlier: Vec<String> = [&first, &old]
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(id.earlier_paths, earlier);
        assert!(
            !dir.join(".schema-version").exists(),
            "records not re-pointed"
        );
        assert_eq!(open_at(&dir), id);
    }

    #[test]
    fn a_moved_data_dir_of_a_newer_release_keeps_its_version() {
        let temp = tempfile::tempdir().unwrap();
        let dir = data_dir(&temp, "moved");
        write_id(&dir, "same", &temp.path().join("old"), &[]);
        private::write(&dir.join(".schema-version"), b"99", false).unwrap();
        open_at(&dir);
        assert_eq!(
            fs::read_to_string(dir.join(".schema-version")).unwrap(),
            "99"
        );
    }

    #[test]
    fn an_identity_others_could_write_is_not_believed_and_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let temp = tempfile::tempdir().unwrap();
        let dir = data_dir(&temp, "data");
        write_id(
            &dir,
            "planted",
            &temp.path().join("old"),
            &[Path::new("/theirs")],
        );
        let file = dir.join(FILE_NAME);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        let id = open_at(&dir);
        assert_ne!(id.id, "planted");
        assert!(id.earlier_paths.is_empty());
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(open_at(&dir), id);
    }

    #[test]
    fn an_identity_too_large_to_be_one_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let dir = data_dir(&temp, "data");
        let huge = format!(
            "id: x\npath: {}\nearlier_paths: [{}]\n",
            dir.display(),
            "/a,".repeat(40_000)
        );
        private::write(&dir.join(FILE_NAME), huge.as_bytes(), false).unwrap();
        let error = open(&dir, &LockDir::new(&dir)).unwrap_err().to_string();
        assert!(error.contains("larger than"), "{error}");
    }

    #[test]
    fn a_data_dir_moved_back_lists_each_earlier_path_once() {
        let temp = tempfile::tempdir().unwrap();
        let dir = data_dir(&temp, "home");
        let away = temp.path().canonicalize().unwrap().join("away");
        write_id(&dir, "same", &away, &[&dir]);
        let id = open_at(&dir);
        assert_eq!(id.earlier_paths, [away.display().to_string()]);
    }

    #[test]
    fn a_copy_takes_a_new_id_and_claims_none_of_the_originals_paths() {
        let temp = tempfile::tempdir().unwrap();
        let original = data_dir(&temp, "original");
        write_id(&original, "same", &original, &[&temp.path().join("first")]);
        let before = fs::read(original.join(FILE_NAME)).unwrap();
        let copy = data_dir(&temp, "copy");
        fs::copy(original.join(FILE_NAME), copy.join(FILE_NAME)).unwrap();
        let id = open_at(&copy);
        assert_ne!(id.id, "same");
        assert_eq!(id.path, copy.display().to_string());
        assert!(id.earlier_paths.is_empty());
        assert_eq!(fs::read(original.join(FILE_NAME)).unwrap(), before);
    }

    #[test]
    fn an_unreadable_identity_is_an_error_naming_the_file_and_the_fix() {
        let temp = tempfile::tempdir().unwrap();
        let dir = data_dir(&temp, "data");
        private::write(&dir.join(FILE_NAME), b"not: [an identity", false).unwrap();
        let error = open(&dir, &LockDir::new(&dir)).unwrap_err().to_string();
        assert!(
            error.contains(&dir.join(FILE_NAME).display().to_string()),
            "{error}"
        );
        assert!(error.contains("fix or delete it"), "{error}");
    }
}
