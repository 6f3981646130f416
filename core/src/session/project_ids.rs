//! The ids of projects nobody configured, one per repository, kept in `<data_dir>/projects/`.
//!
//! Without a config, a repository's project is named after its folder; but two repositories
//! may share a folder name (`~/a/api`, `~/b/api`), and a project id is also the session prefix,
//! the branch name and part of the record path, so each repository must keep one id of its own
//! for ever. A repository is known by its main worktree's canonical root (what the workspace
//! plugin reports from any of its worktrees, so one-to-one with its common git dir, without the
//! core reading repository files). The first repository to use a name keeps it; a later one with
//! the same folder name gets the name plus a short hash of its root (`api-3f9c2a`): stable
//! whichever data dir or machine it is registered in, and unlike `api-2` never read as a session
//! of project `api`.
//!
//! One file per id, named by it, holding the root: claimed by hard-linking a complete temporary
//! file to the name, which fails if the name is taken, so two spawns at once in two repositories
//! never both get an id, and a `kill -9` leaves either no claim or a whole one (plus a temporary
//! file, skipped here and removed by `gc` like any other).

use std::{io::Write, path::Path};

use ao_plugin_kit::{private, validate::MAX_ID_LEN};
use sha2::{Digest, Sha256};

use super::store::{io, StoreError};

/// The folder of claims in the data dir.
pub(super) const FOLDER: &str = "projects";
/// Hex digits of the root's hash in a disambiguated id; a longer suffix is tried if even that
/// is taken.
const SUFFIXES: [usize; 2] = [6, 16];

/// The id of the project of the repository at `root` (its main worktree), claiming one named
/// after `name` (a valid id) if the repository has none yet.
pub fn claim(data_dir: &Path, root: &Path, name: &str) -> Result<String, StoreError> {
    let folder = data_dir.join(FOLDER);
    private::create_dir(&folder).map_err(io("creating", &folder))?;
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let identity = root.display().to_string();
    if let Some(id) = registered(&folder, &identity)? {
        return Ok(id);
    }
    let digest = format!("{:x}", Sha256::digest(identity.as_bytes()));
    let candidates = std::iter::once(name.to_string()).chain(SUFFIXES.iter().map(|&len| {
        let base: String = name.chars().take(MAX_ID_LEN - len - 1).collect();
        format!("{base}-{}", &digest[..len])
    }));
    let (temp, mut file) =
        private::create_temp(&folder.join(name)).map_err(io("creating", &folder))?;
    let written = file
        .write_all(identity.as_bytes())
        .and_then(|()| file.sync_all());
    let outcome = written.map_err(io("writing", &temp)).and_then(|()| {
        for id in candidates {
            let claim = folder.join(&id);
            match std::fs::hard_link(&temp, &claim) {
                Ok(()) => return Ok(Some(id)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Taken meanwhile by the same repository (another command) counts as ours.
                    if holder(&claim)? == identity {
                        return Ok(Some(id));
                    }
                }
                Err(e) => return Err(io("creating", &claim)(e)),
            }
        }
        Ok(None)
    });
    let _ = std::fs::remove_file(&temp);
    outcome?.ok_or_else(|| StoreError::InvalidId(format!(
        "every id for the repository at {identity} ({name} and its hashed forms) is taken by another repository in {}; configure the project under `projects:` with an id of your choice",
        folder.display()
    )))
}

/// The id already claimed for `identity`, if any.
fn registered(folder: &Path, identity: &str) -> Result<Option<String>, StoreError> {
    let entries = std::fs::read_dir(folder).map_err(io("reading", folder))?;
    for entry in entries {
        let entry = entry.map_err(io("reading", folder))?;
        let Some(id) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        // Temporary files of claims under way or cut short.
        if id.starts_with('.') {
            continue;
        }
        if holder(&entry.path())? == identity {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The repository a claim is for.
fn holder(claim: &Path) -> Result<String, StoreError> {
    private::read_to_string(claim).map_err(|error| StoreError::Untrusted {
        path: claim.to_path_buf(),
        message: format!(
            "project id claim {} cannot be read ({error}); move it aside",
            claim.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn the_first_repository_keeps_the_name_and_a_second_gets_a_hashed_one() {
        let temp = tempfile::tempdir().unwrap();
        let data = temp.path().join("data");
        let (first, second) = (temp.path().join("a/api"), temp.path().join("b/api"));
        std::fs::create_dir_all(&first).unwrap();
        std::fs::create_dir_all(&second).unwrap();
        assert_eq!(claim(&data, &first, "api").unwrap(), "api");
        let other = claim(&data, &second, "api").unwrap();
        assert!(
            other.starts_with("api-") && other.len() == "api-".len() + 6,
            "{other}"
        );
        // Each keeps its id, whichever asks first next time.
        assert_eq!(claim(&data, &second, "api").unwrap(), other);
        assert_eq!(claim(&data, &first, "api").unwrap(), "api");
        // A leftover temporary file (a claim cut short by kill -9) changes nothing.
        std::fs::write(data.join(FOLDER).join(".api.1-0.tmp"), "/elsewhere").unwrap();
        assert_eq!(claim(&data, &first, "api").unwrap(), "api");
    }

    /// A claim cut short by `kill -9` leaves only its temporary file, which `gc` removes.
    #[test]
    fn a_claim_cut_short_leaves_a_temporary_file_gc_collects() {
        let temp = tempfile::tempdir().unwrap();
        let data = temp.path().join("data");
        let store = crate::session::SessionStore::open(&data).unwrap();
        let root = temp.path().join("api");
        std::fs::create_dir_all(&root).unwrap();
        claim(&data, &root, "api").unwrap();
        let mut writer = std::process::Command::new("true").spawn().unwrap();
        writer.wait().unwrap();
        let leftover = data
            .join(FOLDER)
            .join(format!(".api.{}-00000000000000ff.tmp", writer.id()));
        std::fs::write(&leftover, "").unwrap();
        assert_eq!(store.stale_temp_files(), [leftover]);
        assert_eq!(claim(&data, &root, "api").unwrap(), "api");
    }

    #[test]
    fn claims_racing_from_many_threads_give_each_repository_one_id() {
        let temp = tempfile::tempdir().unwrap();
        let data = temp.path().join("data");
        let roots: Vec<PathBuf> = (0..4)
            .map(|i| temp.path().join(format!("{i}/api")))
            .collect();
        for root in &roots {
            std::fs::create_dir_all(root).unwrap();
        }
        let ids: Vec<(usize, String)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|n| {
                    let (data, root) = (&data, &roots[n % roots.len()]);
                    scope.spawn(move || (n % 4, claim(data, root, "api").unwrap()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (repo, id) in &ids {
            assert!(ids.iter().all(|(r, i)| (r == repo) == (i == id)), "{ids:?}");
        }
    }
}
