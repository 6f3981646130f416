//! Reading what earlier releases wrote, and upgrading a data dir to this release's formats.
//!
//! Every record and agent-state file carries `schema_version` (absent before 1: written by
//! v0.1.6 or older); the data dir says which schema all of it was upgraded to in
//! `<data_dir>/.schema-version`.
//!
//! - Schema 0 (v0.1.2 to v0.1.6): records without a version (v0.1.2's also held
//!   `spawned_by_pid`, dropped on read); agent state as `agent-state/<project>/<id>.json`,
//!   `.prompt` and `.lock` side by side.
//! - Schema 1: the version in every file; agent state in one folder per session
//!   (`agent-state/<project>/<id>/`, see [`AgentStateDir`]).
//!
//! The upgrade runs when a data dir is opened ([`upgrade`]): every record is rewritten under its
//! session's lock, atomically (a temporary file renamed over it), and every session's agent
//! state moved into its folder. Each step is idempotent, and the data dir's version is written
//! last, so a process killed half-way leaves a data dir that any reader reads and the next open
//! finishes. Two processes opening at once take turns on `locks/migrate.lock`. A session whose
//! lock is held (a command acting on it right now) is left for a later open: its record reads
//! the same either way.
//!
//! Downgrades: a release that knows a lower schema than a record or a data dir says refuses it
//! (naming the file and the release to run) rather than misread it. Releases up to v0.1.6 do
//! not look at versions; what they do with an upgraded data dir is in the README ("Upgrades").

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use ao_plugin_kit::private;

use super::{agent_state::AgentStateDir, lock::LockDir, store::SessionStore, StoreError};

/// The formats this release writes.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The file naming the schema a whole data dir was upgraded to.
const DATA_DIR_VERSION: &str = ".schema-version";

/// A file's content with the schema it was written in. Files of schema 0 have no version.
#[derive(Serialize, Deserialize)]
struct Versioned<T> {
    #[serde(default)]
    schema_version: u32,
    #[serde(flatten)]
    content: T,
}

/// Why a file written by a newer release is not read.
fn too_new(what: &str, version: u32) -> String {
    format!(
        "{what} of schema {version}, written by a newer ao-host (this one reads schema \
         {SCHEMA_VERSION} and older); run that newer ao-host"
    )
}

/// `content` as YAML, with this release's schema version.
pub(crate) fn to_yaml<T: Serialize>(content: &T) -> String {
    serde_yaml::to_string(&Versioned {
        schema_version: SCHEMA_VERSION,
        content,
    })
    .expect("a versioned file always encodes")
}

/// `content` as JSON, with this release's schema version.
pub(crate) fn to_json<T: Serialize>(content: &T) -> Vec<u8> {
    serde_json::to_vec(&Versioned {
        schema_version: SCHEMA_VERSION,
        content,
    })
    .expect("a versioned file always encodes")
}

/// Reads YAML of any schema up to this release's, and the schema it was written in.
pub(crate) fn from_yaml<T: DeserializeOwned>(text: &str, what: &str) -> Result<(T, u32), String> {
    let read: Versioned<T> = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    checked(read, what)
}

/// Reads JSON of any schema up to this release's, and the schema it was written in.
pub(crate) fn from_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<(T, u32), String> {
    let read: Versioned<T> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    checked(read, what)
}

fn checked<T>(read: Versioned<T>, what: &str) -> Result<(T, u32), String> {
    if read.schema_version > SCHEMA_VERSION {
        return Err(too_new(what, read.schema_version));
    }
    Ok((read.content, read.schema_version))
}

/// The schema `data_dir` was upgraded to: 0 when never, or made before versions existed, or
/// when its file cannot be trusted (another user's, or writable by others) or read. Every step
/// of the upgrade is idempotent, so taking a data dir for older than it is only costs time.
fn data_dir_version(data_dir: &Path) -> u32 {
    let path = data_dir.join(DATA_DIR_VERSION);
    match private::read_to_string(&path) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            tracing::info!("{}: not a schema number; upgrading again", path.display());
            0
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            tracing::info!("{e}; upgrading the data dir again");
            0
        }
    }
}

/// Upgrades `store`'s data dir to [`SCHEMA_VERSION`] if it is older; refuses one that is newer.
pub fn upgrade(store: &SessionStore) -> Result<(), StoreError> {
    let data_dir = store.data_dir();
    let refuse_newer = |version: u32| {
        Err(StoreError::Untrusted {
            path: data_dir.join(DATA_DIR_VERSION),
            message: format!(
                "data dir {}: {}",
                data_dir.display(),
                too_new("it holds files", version)
            ),
        })
    };
    match data_dir_version(data_dir) {
        version if version == SCHEMA_VERSION => return Ok(()),
        version if version > SCHEMA_VERSION => return refuse_newer(version),
        _ => {}
    }
    let _turn = match take_turn(store.locks()) {
        Ok(turn) => turn,
        Err(e) => {
            tracing::info!("{e}; the data dir is not upgraded now (it reads all the same)");
            return Ok(());
        }
    };
    match data_dir_version(data_dir) {
        version if version == SCHEMA_VERSION => return Ok(()),
        version if version > SCHEMA_VERSION => return refuse_newer(version),
        _ => {}
    }
    let agent_states = AgentStateDir::new(data_dir);
    // What cannot be upgraded now is left as it is (it reads all the same) for a later open:
    // one session's trouble must not stop every command. Only logged with `-v`: listings and
    // `doctor` report such files themselves.
    let (records, mut complete) = store.record_paths();
    for (project_id, id, path) in records {
        let upgraded = (|| {
            let Some(_lock) = store.locks().try_lock(&project_id, &id)? else {
                return Ok(false);
            };
            // A record that cannot be read is reported by every listing; it stays as it is.
            if let Ok((mut session, version)) = SessionStore::read_versioned(&path) {
                let moved = relocate(&mut session, data_dir, store.earlier_paths());
                if version < SCHEMA_VERSION || moved {
                    SessionStore::write_record(&path, &session)?;
                }
            }
            agent_states.upgrade(&project_id, &id)?;
            Ok::<_, StoreError>(true)
        })();
        match upgraded {
            Ok(done) => complete &= done,
            Err(e) => {
                tracing::info!(id = %id, "upgrading the data dir: {e}; left for a later command");
                complete = false;
            }
        }
    }
    // A new file of ours, renamed over whatever was there.
    let version = data_dir.join(DATA_DIR_VERSION);
    if complete {
        if let Err(e) = private::write(&version, SCHEMA_VERSION.to_string().as_bytes(), true) {
            tracing::info!(
                "writing {}: {e}; upgrading again next time",
                version.display()
            );
        }
    }
    Ok(())
}

/// Makes the next [`upgrade`] run over every record again, as after a move of the data dir
/// (their workspace paths are then re-pointed, see [`relocate`]).
/// A data dir of a newer schema keeps its version: [`upgrade`] then refuses it as before.
pub(super) fn upgrade_again(data_dir: &Path) -> Result<(), StoreError> {
    if data_dir_version(data_dir) > SCHEMA_VERSION {
        return Ok(());
    }
    let version = data_dir.join(DATA_DIR_VERSION);
    match fs::remove_file(&version) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
            action: "removing",
            path: version,
            error: e,
        }),
        _ => Ok(()),
    }
}

/// Re-points a workspace path inside one of the data dir's earlier paths (it was moved, the
/// worktrees in it with it) to the same place under `data_dir`; whether it did. Such a session's
/// agent was started before the move, and its hooks report to the old path, where nothing
/// reads them: its status is read from its screen from then on (a restore starts it anew).
fn relocate(session: &mut super::Session, data_dir: &Path, earlier_paths: &[String]) -> bool {
    let Some(workspace) = session.workspace_path.as_deref() else {
        return false;
    };
    let inside = earlier_paths
        .iter()
        .find_map(|earlier| Path::new(workspace).strip_prefix(earlier).ok())
        .filter(|inside| !inside.as_os_str().is_empty());
    let Some(inside) = inside else {
        return false;
    };
    session.workspace_path = Some(data_dir.join(inside).display().to_string());
    session.reports_events = false;
    true
}

/// The data dir's migration lock, taken (waiting for another process's upgrade to finish) and
/// held until the file is dropped.
pub(super) fn take_turn(locks: &LockDir) -> Result<fs::File, StoreError> {
    let path: PathBuf = locks.root().join("migrate.lock");
    let io = |action: &'static str| {
        let path = path.clone();
        move |error| StoreError::Io {
            action,
            path,
            error,
        }
    };
    private::create_dir(locks.root()).map_err(io("creating the folder of"))?;
    let file = private::open_lock(&path).map_err(io("opening"))?;
    file.lock().map_err(io("locking"))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Session, SessionStatus};

    /// A record as v0.1.2 wrote it (no version; `spawned_by_pid`).
    const V0_1_2_RECORD: &str = "id: app-1\nproject_id: app\nrole: worker\nstatus: working\n\
        agent: claude-code\nruntime: tmux\nworkspace: git-worktree\nbranch: session/app-1\n\
        workspace_path: /w/app-1\nruntime_handle: app-1\ntask: do it\ncreated_at: 1\n\
        spawned_by_pid: 42\n";

    #[test]
    fn workspace_paths_inside_an_earlier_path_follow_the_move() {
        let mut session: Session = from_yaml(V0_1_2_RECORD, "a record").unwrap().0;
        session.reports_events = true;
        let earlier = ["/first".to_string(), "/w".to_string()];
        assert!(relocate(&mut session, Path::new("/new"), &earlier));
        assert_eq!(session.workspace_path.as_deref(), Some("/new/app-1"));
        assert!(!session.reports_events, "its hooks report to the old path");
        session.reports_events = true;
        // Only whole components: `/wide` is not inside `/w`; nor is the data dir itself.
        for elsewhere in ["/wide/app-1", "/w", "/elsewhere/w/app-1"] {
            session.workspace_path = Some(elsewhere.into());
            assert!(!relocate(&mut session, Path::new("/new"), &earlier));
            assert_eq!(session.workspace_path.as_deref(), Some(elsewhere));
            assert!(session.reports_events);
        }
    }

    fn write_v0(data_dir: &Path) -> PathBuf {
        let records = data_dir.join("sessions/app");
        fs::create_dir_all(&records).unwrap();
        let path = records.join("app-1.yaml");
        fs::write(&path, V0_1_2_RECORD).unwrap();
        let states = data_dir.join("agent-state/app");
        fs::create_dir_all(&states).unwrap();
        fs::write(
            states.join("app-1.json"),
            br#"{"status":"idle","at":5,"prompts":1}"#,
        )
        .unwrap();
        fs::write(states.join("app-1.prompt"), "do it").unwrap();
        fs::write(states.join("app-1.lock"), "").unwrap();
        path
    }

    fn assert_upgraded(data_dir: &Path, store: &SessionStore) {
        let session: Session = store.find("app-1").unwrap();
        assert_eq!(
            (session.status, session.runtime_handle.as_deref()),
            (SessionStatus::Working, Some("app-1"))
        );
        let text = fs::read_to_string(data_dir.join("sessions/app/app-1.yaml")).unwrap();
        assert!(text.starts_with("schema_version: 1\n"), "{text}");
        assert!(!text.contains("spawned_by_pid"), "{text}");
        let states = AgentStateDir::new(data_dir);
        assert_eq!(
            states.last_prompt("app", "app-1").unwrap(),
            Some((1, "do it".into()))
        );
        let legacy: Vec<_> = fs::read_dir(data_dir.join("agent-state/app"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            legacy,
            ["app-1"],
            "one folder per session, nothing beside it"
        );
        let version = fs::read_to_string(data_dir.join(DATA_DIR_VERSION)).unwrap();
        assert_eq!(version, SCHEMA_VERSION.to_string());
    }

    #[test]
    fn a_data_dir_of_schema_0_is_upgraded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        write_v0(dir.path());
        let store = SessionStore::open(dir.path()).unwrap();
        assert_upgraded(dir.path(), &store);
        // Again: nothing left to do, nothing changes.
        let store = SessionStore::open(dir.path()).unwrap();
        assert_upgraded(dir.path(), &store);
    }

    #[test]
    fn an_upgrade_cut_short_is_finished_by_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        write_v0(dir.path());
        // Killed half-way: the prompt moved, the state not yet, no version written.
        let states = dir.path().join("agent-state/app");
        fs::create_dir(states.join("app-1")).unwrap();
        fs::rename(states.join("app-1.prompt"), states.join("app-1/prompt")).unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        assert_upgraded(dir.path(), &store);
    }

    #[test]
    fn a_session_being_acted_on_is_left_for_a_later_open() {
        let dir = tempfile::tempdir().unwrap();
        let record = write_v0(dir.path());
        let locks = LockDir::new(&dir.path().canonicalize().unwrap());
        let held = locks.try_lock("app", "app-1").unwrap().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        assert_eq!(fs::read_to_string(&record).unwrap(), V0_1_2_RECORD);
        assert!(!dir.path().join(DATA_DIR_VERSION).exists());
        assert_eq!(
            store.find("app-1").unwrap().id,
            "app-1",
            "read all the same"
        );
        drop(held);
        let store = SessionStore::open(dir.path()).unwrap();
        assert_upgraded(dir.path(), &store);
    }

    #[test]
    fn a_session_that_cannot_be_upgraded_stops_no_command() {
        let dir = tempfile::tempdir().unwrap();
        let record = write_v0(dir.path());
        // Its lock is a planted link, which is never opened: the session is left as it is.
        let locks = dir.path().join("locks/app");
        fs::create_dir_all(&locks).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", locks.join("app-1.lock")).unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        assert_eq!(fs::read_to_string(&record).unwrap(), V0_1_2_RECORD);
        assert!(!dir.path().join(DATA_DIR_VERSION).exists());
        assert_eq!(
            store.find("app-1").unwrap().id,
            "app-1",
            "read all the same"
        );
    }

    #[test]
    fn a_version_file_others_may_write_is_not_believed_and_is_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        write_v0(dir.path());
        let version = dir.path().join(DATA_DIR_VERSION);
        fs::write(&version, "1").unwrap();
        fs::set_permissions(&version, fs::Permissions::from_mode(0o666)).unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        assert_upgraded(dir.path(), &store);
        let mode = fs::metadata(&version).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn processes_opening_at_once_upgrade_once_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        write_v0(dir.path());
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| SessionStore::open(dir.path()).unwrap());
            }
        });
        let store = SessionStore::open(dir.path()).unwrap();
        assert_upgraded(dir.path(), &store);
    }

    #[test]
    fn files_of_a_newer_schema_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let record = write_v0(dir.path());
        SessionStore::open(dir.path()).unwrap();
        fs::write(&record, format!("schema_version: 9\n{V0_1_2_RECORD}")).unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        let err = store.find("app-1").unwrap_err().to_string();
        assert!(
            err.contains("app-1.yaml") && err.contains("schema 9") && err.contains("newer ao-host"),
            "{err}"
        );
        fs::write(dir.path().join(DATA_DIR_VERSION), "9").unwrap();
        let err = SessionStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(DATA_DIR_VERSION) || err.contains("newer ao-host"),
            "{err}"
        );
    }
}
