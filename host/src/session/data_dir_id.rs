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

use ao_plugin_api::{data_dir_id::DataDirId, private};

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
    let file = data_dir.join(ao_plugin_api::data_dir_id::FILE_NAME);
    private::write(&file, id.to_yaml().as_bytes(), true).map_err(|error| StoreError::Io {
        action: "writing",
        path: file,
        error,
    })?;
    Ok(id)
}

/// The identity file, or `None` when there is none; one that cannot be read stops the command
/// with the fix (guessing would either lose the sessions of a move or claim another's).
fn read(data_dir: &Path) -> Result<Option<DataDirId>, StoreError> {
    DataDirId::read(data_dir).map_err(|e| {
        let path = data_dir.join(ao_plugin_api::data_dir_id::FILE_NAME);
        StoreError::Untrusted {
            message: format!(
                "the data dir's identity {}: {e}; fix or delete it (deleted, the data dir takes a \
                 new identity and no longer claims sessions made before it was moved)",
                path.display()
            ),
            path,
        }
    })
}

/// Whether the data dir `id` says it was last opened at still holds it: then the one being
/// opened is a copy.
fn is_original(id: &DataDirId) -> bool {
    matches!(DataDirId::read(Path::new(&id.path)), Ok(Some(there)) if there.id == id.id)
}

/// A new identity at `path`: 128 random bits.
fn fresh(path: String) -> Result<DataDirId, StoreError> {
    let id = ao_plugin_api::uuid::new_v4().map_err(|e| StoreError::Io {
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
