//! Session records on disk: `<data_dir>/sessions/<project>/<id>.yaml`, killed sessions under
//! `<data_dir>/sessions/<project>/archive/`.
//!
//! Crash safety: every write goes to a temporary file that is fsynced and then renamed over the
//! record, so a reader sees the old record or the new one, never half of one. Reservation is
//! atomic across processes: the new record is hard-linked into place, which fails if the id is
//! already taken, so N concurrent spawns get N distinct ids.

use std::{
    collections::HashSet,
    fs::{self, File},
    io::Write,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use ao_plugin_api::validate::validate_id;

use super::{
    identity::{next_identity, stem, used_numbers, IdentityExhausted},
    Session, SessionRole, SessionStatus,
};

const RECORD_EXTENSION: &str = "yaml";
const ARCHIVE_DIR: &str = "archive";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data_dir {path} is not a folder; point data_dir (or --data-dir) at a folder", path = path.display())]
    NotAFolder { path: PathBuf },
    #[error("{action} {path}: {source}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("session record {path} is unreadable: {message}; move it aside or delete it", path = path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("no session `{id}`; `ao-host session ls` lists them")]
    NotFound { id: String },
    #[error(transparent)]
    Exhausted(#[from] IdentityExhausted),
    #[error("{0}")]
    InvalidId(String),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Records read from disk, and the files that could not be read (reported, never fatal).
#[derive(Debug, Default)]
pub struct Listing {
    pub sessions: Vec<Session>,
    pub problems: Vec<StoreError>,
}

#[derive(Debug, Clone)]
pub struct SessionStore {
    data_dir: PathBuf,
    root: PathBuf,
}

static TEMP_SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl SessionStore {
    /// Opens (creating if needed) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        if data_dir.exists() && !data_dir.is_dir() {
            return Err(StoreError::NotAFolder {
                path: data_dir.to_path_buf(),
            });
        }
        let root = data_dir.join("sessions");
        fs::create_dir_all(&root).map_err(io("creating", &root))?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            root,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn project_dir(&self, project_id: &str) -> PathBuf {
        self.root.join(project_id)
    }

    fn record_path(&self, project_id: &str, id: &str, archived: bool) -> PathBuf {
        let mut dir = self.project_dir(project_id);
        if archived {
            dir.push(ARCHIVE_DIR);
        }
        dir.join(format!("{id}.{RECORD_EXTENSION}"))
    }

    fn encode(session: &Session) -> Vec<u8> {
        serde_yaml::to_string(session)
            .expect("a session always encodes")
            .into_bytes()
    }

    /// Writes `bytes` to a fsynced temporary file next to `path` and returns it.
    fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        let dir = path.parent().expect("records live in a folder");
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let temp = dir.join(format!(
            ".{}.{}-{}.tmp",
            path.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id(),
            TEMP_SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = File::create(&temp).map_err(io("creating", &temp))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(io("writing", &temp))?;
        Ok(temp)
    }

    /// Makes a rename or link in `dir` durable.
    fn sync_dir(dir: &Path) {
        if let Ok(handle) = File::open(dir) {
            let _ = handle.sync_all();
        }
    }

    /// Replaces (or creates) a record atomically.
    fn write_record(path: &Path, session: &Session) -> Result<(), StoreError> {
        let temp = Self::write_temp(path, &Self::encode(session))?;
        fs::rename(&temp, path).map_err(io("replacing", path))?;
        Self::sync_dir(path.parent().expect("records live in a folder"));
        Ok(())
    }

    /// Ids of the records in `dir`, from file names (no parsing, so 10,000 records are cheap).
    fn ids_in(dir: &Path) -> Vec<String> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let id = name.strip_suffix(&format!(".{RECORD_EXTENSION}"))?;
                (!id.starts_with('.')).then(|| id.to_string())
            })
            .collect()
    }

    /// Reserves the next free id for `role` in `session.project_id` and writes `session` under it
    /// (with `id` and `branch` filled in), exclusively: a concurrent reservation of the same id
    /// fails for one of the two, which then takes the next number.
    pub fn reserve(
        &self,
        project_prefix: &str,
        role: SessionRole,
        mut session: Session,
    ) -> Result<Session, StoreError> {
        validate_id("project id", &session.project_id)
            .map_err(|e| StoreError::InvalidId(e.message().to_string()))?;
        validate_id("session_prefix", project_prefix)
            .map_err(|e| StoreError::InvalidId(e.message().to_string()))?;
        let stem = stem(project_prefix, role);
        let project_dir = self.project_dir(&session.project_id);
        let mut lost = HashSet::new();
        loop {
            let mut ids = Self::ids_in(&project_dir);
            ids.extend(Self::ids_in(&project_dir.join(ARCHIVE_DIR)));
            let used = used_numbers(&stem, ids.iter().map(String::as_str));
            let (id, number) = next_identity(&stem, &used, &lost)?;
            session.branch = role.branch_for(&id);
            session.id = id;
            let path = self.record_path(&session.project_id, &session.id, false);
            let temp = Self::write_temp(&path, &Self::encode(&session))?;
            let linked = fs::hard_link(&temp, &path);
            let _ = fs::remove_file(&temp);
            match linked {
                Ok(()) => {
                    Self::sync_dir(&project_dir);
                    return Ok(session);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    lost.insert(number);
                }
                Err(e) => return Err(io("reserving", &path)(e)),
            }
        }
    }

    /// Saves an active session's record.
    pub fn save(&self, session: &Session) -> Result<(), StoreError> {
        Self::write_record(
            &self.record_path(&session.project_id, &session.id, false),
            session,
        )
    }

    /// Deletes an active record (a spawn that failed and cleaned up after itself).
    pub fn delete(&self, project_id: &str, id: &str) -> Result<(), StoreError> {
        let path = self.record_path(project_id, id, false);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("deleting", &path)(e)),
            _ => Ok(()),
        }
    }

    /// Moves a record to the archive with status `killed`.
    pub fn archive(&self, session: &Session) -> Result<Session, StoreError> {
        let from = self.record_path(&session.project_id, &session.id, false);
        let to = self.record_path(&session.project_id, &session.id, true);
        fs::create_dir_all(to.parent().expect("archive folder")).map_err(io("creating", &to))?;
        fs::rename(&from, &to).map_err(io("archiving", &from))?;
        let mut archived = session.clone();
        archived.status = SessionStatus::Killed;
        archived.spawned_by_pid = None;
        Self::write_record(&to, &archived)?;
        Self::sync_dir(from.parent().expect("records live in a folder"));
        Ok(archived)
    }

    fn read(path: &Path) -> Result<Session, StoreError> {
        let text = fs::read_to_string(path).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        serde_yaml::from_str(&text).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    fn projects(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut projects: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        projects.sort();
        projects
    }

    /// Active (or archived) records of one project or of all, oldest first. Unreadable files
    /// are reported in [`Listing::problems`] and skipped.
    pub fn list(&self, project_id: Option<&str>, archived: bool) -> Listing {
        let projects = match project_id {
            Some(id) => vec![id.to_string()],
            None => self.projects(),
        };
        let mut listing = Listing::default();
        for project in projects {
            let mut dir = self.project_dir(&project);
            if archived {
                dir.push(ARCHIVE_DIR);
            }
            for id in Self::ids_in(&dir) {
                let path = dir.join(format!("{id}.{RECORD_EXTENSION}"));
                match Self::read(&path) {
                    Ok(session) if session.id == id && session.project_id == project => {
                        listing.sessions.push(session)
                    }
                    Ok(session) => listing.problems.push(StoreError::Corrupt {
                        path,
                        message: format!(
                            "it describes session `{}` of project `{}`",
                            session.id, session.project_id
                        ),
                    }),
                    Err(problem) => listing.problems.push(problem),
                }
            }
        }
        listing
            .sessions
            .sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        listing
    }

    /// Temporary files left by writers that died before renaming them into place.
    pub fn stale_temp_files(&self) -> Vec<PathBuf> {
        let mut stale = Vec::new();
        for project in self.projects() {
            let dir = self.project_dir(&project);
            for folder in [dir.clone(), dir.join(ARCHIVE_DIR)] {
                let Ok(entries) = fs::read_dir(&folder) else {
                    continue;
                };
                for entry in entries.filter_map(Result::ok) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    // `.<record>.<pid>-<n>.tmp`, see `write_temp`.
                    let writer = name
                        .strip_suffix(".tmp")
                        .filter(|_| name.starts_with('.'))
                        .and_then(|rest| rest.rsplit('.').next())
                        .and_then(|pid_n| pid_n.split('-').next())
                        .and_then(|pid| pid.parse::<u32>().ok());
                    if writer.is_some_and(|pid| !super::process_alive(pid)) {
                        stale.push(entry.path());
                    }
                }
            }
        }
        stale
    }

    /// Finds an active session by id, in any project.
    pub fn find(&self, id: &str) -> Result<Session, StoreError> {
        validate_id("session id", id)
            .map_err(|e| StoreError::InvalidId(e.message().to_string()))?;
        for project in self.projects() {
            let path = self.record_path(&project, id, false);
            if path.exists() {
                return Self::read(&path);
            }
        }
        Err(StoreError::NotFound { id: id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::now_ms;

    fn template(project: &str) -> Session {
        Session {
            id: String::new(),
            project_id: project.into(),
            role: SessionRole::Worker,
            status: SessionStatus::Spawning,
            agent: "a".into(),
            runtime: "r".into(),
            workspace: "w".into(),
            branch: String::new(),
            workspace_path: None,
            runtime_handle: None,
            task: Some("do it".into()),
            created_at: now_ms(),
            spawned_by_pid: Some(std::process::id()),
            note: None,
        }
    }

    #[test]
    fn reservations_take_the_smallest_free_number_over_active_and_archived() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        let one = store
            .reserve("app", SessionRole::Worker, template("app"))
            .unwrap();
        let two = store
            .reserve("app", SessionRole::Worker, template("app"))
            .unwrap();
        assert_eq!((one.id.as_str(), two.id.as_str()), ("app-1", "app-2"));
        assert_eq!(one.branch, "session/app-1");
        store.archive(&one).unwrap();
        let three = store
            .reserve("app", SessionRole::Worker, template("app"))
            .unwrap();
        assert_eq!(three.id, "app-3", "an archived id is never reused");
        let orch = store
            .reserve("app", SessionRole::Orchestrator, template("app"))
            .unwrap();
        assert_eq!(orch.id, "app-orchestrator-1");
        assert_eq!(orch.branch, "orchestrator/app-orchestrator-1");
    }

    #[test]
    fn concurrent_reservations_get_distinct_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        let ids: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    scope.spawn(|| {
                        store
                            .reserve("app", SessionRole::Worker, template("app"))
                            .unwrap()
                            .id
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 16, "{ids:?}");
        assert_eq!(store.list(Some("app"), false).sessions.len(), 16);
    }

    #[test]
    fn a_corrupt_or_foreign_record_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        let good = store
            .reserve("app", SessionRole::Worker, template("app"))
            .unwrap();
        fs::write(
            dir.path().join("sessions/app/garbage.yaml"),
            ": : not yaml [",
        )
        .unwrap();
        fs::write(dir.path().join("sessions/app/notes.txt"), "ignored").unwrap();
        let listing = store.list(None, false);
        assert_eq!(listing.sessions, vec![good]);
        assert_eq!(listing.problems.len(), 1);
        assert!(listing.problems[0].to_string().contains("garbage.yaml"));
    }

    #[test]
    fn archive_moves_the_record_and_marks_it_killed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        let session = store
            .reserve("app", SessionRole::Worker, template("app"))
            .unwrap();
        store.archive(&session).unwrap();
        assert!(store.list(Some("app"), false).sessions.is_empty());
        let archived = store.list(Some("app"), true).sessions;
        assert_eq!(archived.len(), 1);
        assert_eq!(archived[0].status, SessionStatus::Killed);
        assert!(matches!(
            store.find(&session.id),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn a_data_dir_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        let err = SessionStore::open(&file).unwrap_err();
        assert!(err.to_string().contains("is not a folder"), "{err}");
    }
}
