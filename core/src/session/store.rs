//! Session records on disk: `<data_dir>/sessions/<project>/<id>.yaml`, killed sessions under
//! `<data_dir>/sessions/<project>/archive/`.
//!
//! Crash safety: every write goes to a temporary file that is fsynced and then renamed over the
//! record, so a reader sees the old record or the new one, never half of one. Reservation is
//! atomic across processes: the new record is hard-linked into place, which fails if the id is
//! already taken, so N concurrent spawns get N distinct ids; and the reserving process takes the
//! session's lock *before* the record appears, so no other process ever sees a `spawning` record
//! whose lock is free unless its spawner died.
//!
//! Records are read defensively: a symlink, a FIFO or a file larger than any record is reported
//! as unreadable instead of followed, waited on or slurped.

use std::{
    collections::{HashMap, HashSet},
    fs::{self, File},
    io::{Read, Write},
    path::{Path, PathBuf},
};

use ao_plugin_kit::{private, validate::validate_id};

use crate::bounded_yaml;

use super::{
    data_dir_id,
    identity::{next_identity, stem, used_numbers, IdentityExhausted},
    lock::{LockDir, SessionLock},
    migrate, Session, SessionRole, SessionStatus, MAX_TASK_BYTES,
};

const RECORD_EXTENSION: &str = "yaml";
const ARCHIVE_DIR: &str = "archive";
/// The largest record ao-host writes: YAML writes a control character of a task as `\x01`, so
/// a task of [`MAX_TASK_BYTES`] takes up to four times its size, plus the rest of the record.
/// Anything bigger is not a record.
const MAX_RECORD_BYTES: u64 = 4 * MAX_TASK_BYTES as u64 + 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data_dir {path} is not a folder; point data_dir (or --data-dir) at a folder", path = path.display())]
    NotAFolder { path: PathBuf },
    /// `error` is part of the message and deliberately not the error's `source`: printers of
    /// error chains would repeat it.
    #[error("{action} {path}: {error}{fix}", path = path.display(), fix = read_only_fix(error))]
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("session record {path} is unreadable: {message}; move it aside or delete it", path = path.display())]
    Corrupt { path: PathBuf, message: String },
    /// A file or folder in the data dir that is a link, another user's or writable by others:
    /// never acted on; the message names it and the fix.
    #[error("{message}")]
    Untrusted { path: PathBuf, message: String },
    #[error("no session `{id}`; `ao-host session ls` lists them")]
    NotFound { id: String },
    #[error(transparent)]
    Exhausted(#[from] IdentityExhausted),
    #[error("{0}")]
    InvalidId(String),
}

/// The fix for a write refused because the data dir is on a read-only file system: reading
/// commands work there, this one must write.
fn read_only_fix(error: &std::io::Error) -> &'static str {
    if error.raw_os_error() == Some(libc::EROFS) {
        "; the data dir is read-only, which only lets `session ls` and `doctor` work: remount it \
         read-write, or point data_dir (or --data-dir) at a writable folder"
    } else {
        ""
    }
}

pub(super) fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |error| StoreError::Io {
        action,
        path: path.to_path_buf(),
        error,
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
    locks: LockDir,
    /// Why the records folder is not the one this data dir was made with (see
    /// [`SessionStore::records_replaced`]).
    records_replaced: Option<String>,
    /// The data dir is on a read-only file system: nothing was made or tightened in it, and a
    /// records folder missing there holds no records. Writes fail with the fix (see
    /// [`StoreError::Io`]).
    read_only: bool,
    /// Where this data dir was before it was moved (see [`super::data_dir_id`]).
    earlier_paths: Vec<String>,
}

/// Whether `path` is on a file system mounted read-only.
fn on_read_only_fs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `stats` is written by statvfs before it is read.
    let result = unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) };
    // SAFETY: statvfs succeeded, so it filled `stats`.
    result == 0 && unsafe { stats.assume_init() }.f_flag & libc::ST_RDONLY != 0
}

/// One version of a large record file: which file (device and inode: records are replaced by
/// renaming, so a new version is a new inode), its modification time and its size.
///
/// Parsing a record with a megabyte-long task takes ~100 ms; a dashboard lists every record
/// every second while a page is open. Large records are parsed once per version and kept
/// (a bounded number of them) for the life of the process.
#[derive(PartialEq, Eq, Hash, Clone, Copy)]
struct RecordVersion {
    file: (u64, u64),
    modified: (i64, i64),
    len: u64,
}

/// The file in the data dir that says all of it was made owner-only once (see
/// [`SessionStore::open`]).
const PRIVATE_MARK: &str = ".private-v1";

/// The file in the data dir naming the records folder it was made with (`<device>:<inode>`).
const RECORDS_ID: &str = ".records-id";

/// Records smaller than this are parsed each time: it is cheaper than keeping them.
const CACHED_RECORD_BYTES: u64 = 64 * 1024;
/// Parsed large records kept at most.
const MAX_CACHED_RECORDS: usize = 256;

/// Parsed large records by file (device, inode).
type ParsedRecords = HashMap<(u64, u64), (RecordVersion, Session)>;

static PARSED: std::sync::Mutex<Option<ParsedRecords>> = std::sync::Mutex::new(None);

impl RecordVersion {
    fn of(metadata: &fs::Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        (metadata.len() >= CACHED_RECORD_BYTES).then(|| Self {
            file: (metadata.dev(), metadata.ino()),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            len: metadata.len(),
        })
    }

    fn cached(&self) -> Option<Session> {
        let parsed = PARSED.lock().unwrap_or_else(|e| e.into_inner());
        match parsed.as_ref()?.get(&self.file) {
            Some((version, session)) if version == self => Some(session.clone()),
            _ => None,
        }
    }

    fn remember(self, session: &Session) {
        let mut parsed = PARSED.lock().unwrap_or_else(|e| e.into_inner());
        let parsed = parsed.get_or_insert_with(HashMap::new);
        if parsed.len() >= MAX_CACHED_RECORDS && !parsed.contains_key(&self.file) {
            parsed.clear();
        }
        parsed.insert(self.file, (self, session.clone()));
    }
}

impl SessionStore {
    /// Opens (creating if needed) the store under `data_dir`, which it spells canonically from
    /// then on ([`SessionStore::data_dir`]): plugins tag what they make with it, so every process
    /// must spell it the same way.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        if data_dir.exists() && !data_dir.is_dir() {
            return Err(StoreError::NotAFolder {
                path: data_dir.to_path_buf(),
            });
        }
        // The operator may name the data dir through a link of their own; inside it, nothing
        // is followed.
        Self::check_route(data_dir)?;
        let data_dir = &match data_dir.canonicalize() {
            Ok(resolved) => resolved,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => data_dir.to_path_buf(),
            Err(e) => return Err(io("resolving", data_dir)(e)),
        };
        // Another user's data dir is theirs to rearrange (a renamed records folder would make
        // every live session look orphaned to `gc`): refused before anything is made in it.
        let read_only = data_dir.exists() && on_read_only_fs(data_dir);
        if data_dir.exists() {
            Self::own(data_dir, read_only)?;
        }
        // A folder that already holds records is a data dir (perhaps of a release that did not
        // keep it private); any other existing folder is the operator's, its contents not ours.
        let held_records = data_dir.join("sessions").is_dir();
        if !read_only {
            private::create_dir(&data_dir.join("sessions")).map_err(io("creating", data_dir))?;
        }
        let data_dir = &data_dir.canonicalize().map_err(io("resolving", data_dir))?;
        Self::own(data_dir, read_only)?;
        if !read_only {
            Self::tighten(data_dir, held_records);
        }
        let root = data_dir.join("sessions");
        let locks = LockDir::new(data_dir);
        let earlier_paths = if read_only {
            data_dir_id::peek(data_dir)?
        } else {
            data_dir_id::open(data_dir, &locks)?.earlier_paths
        };
        let store = Self {
            data_dir: data_dir.to_path_buf(),
            locks,
            records_replaced: Self::check_records_id(data_dir, &root, read_only),
            root,
            read_only,
            earlier_paths,
        };
        // Nothing is upgraded in a data dir that cannot be written: an earlier release's
        // shapes are read as they are (see `migrate`).
        if !read_only {
            migrate::upgrade(&store)?;
        }
        Ok(store)
    }

    /// Refuses a data dir reached through folders or links others could change: a link planted
    /// as the data dir (in `/tmp`, say) would point ao-host, which tightens what it finds
    /// there, at anything. Every folder and link up to it must be this user's or root's and not
    /// open to others' writes (a sticky folder such as `/tmp` may hold it); a link named as
    /// the data dir itself must be this user's or root's, and so must the folders to where it
    /// leads.
    fn check_route(data_dir: &Path) -> Result<(), StoreError> {
        use std::os::unix::fs::MetadataExt;
        let refused = |message: String| StoreError::Untrusted {
            path: data_dir.to_path_buf(),
            message: format!("data dir: {message} (data_dir in the config, or --data-dir)"),
        };
        let absolute = std::path::absolute(data_dir).map_err(io("resolving", data_dir))?;
        let Some(parent) = absolute.parent() else {
            return Ok(());
        };
        crate::trust::check_path_trust(parent, "folder").map_err(refused)?;
        let Ok(meta) = absolute.symlink_metadata() else {
            return Ok(());
        };
        if meta.file_type().is_symlink() {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            if meta.uid() != me && meta.uid() != 0 {
                return Err(refused(format!(
                    "the link {} is owned by uid {}, not by you (uid {me}) or root, who could \
                     re-point it; fix: replace it with a link of your own",
                    absolute.display(),
                    meta.uid()
                )));
            }
            if let Some(target_parent) = absolute
                .canonicalize()
                .ok()
                .and_then(|target| target.parent().map(Path::to_path_buf))
            {
                crate::trust::check_path_trust(&target_parent, "folder").map_err(refused)?;
            }
        }
        Ok(())
    }

    /// Refuses a data dir that is not this user's; tightens one of ours, unless `read_only`
    /// (nobody can write there then, and a reading command must still work).
    fn own(data_dir: &Path, read_only: bool) -> Result<(), StoreError> {
        match private::own_dir(data_dir, true) {
            Err(e) if read_only && e.raw_os_error() == Some(libc::EROFS) => return Ok(()),
            owned => owned,
        }
        .map_err(|e| StoreError::Untrusted {
            path: data_dir.to_path_buf(),
            message: format!("data dir: {e} (data_dir in the config, or --data-dir)"),
        })
    }

    /// Compares the records folder with the one [`RECORDS_ID`] names (recording it the first
    /// time). A folder moved away and made anew holds no records: everything this data dir
    /// runs would look orphaned.
    fn check_records_id(data_dir: &Path, root: &Path, read_only: bool) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let id_file = data_dir.join(RECORDS_ID);
        let meta = match root.symlink_metadata() {
            Ok(meta) => meta,
            // Never made: a read-only data dir that never held records.
            Err(e) if read_only && e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => return Some(format!("{}: {e}", root.display())),
        };
        let current = format!("{}:{}", meta.dev(), meta.ino());
        match private::read_to_string(&id_file) {
            Ok(recorded) if recorded.trim() == current => None,
            Ok(recorded) => Some(format!(
                "the records folder {} is not the one this data dir was made with (it is \
                 {current}; {} says {}): it was moved or replaced, so its records may be \
                 elsewhere. Put the records folder back; if its records are really gone, \
                 remove {}",
                root.display(),
                id_file.display(),
                recorded.trim(),
                id_file.display()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = private::write(&id_file, current.as_bytes(), true);
                None
            }
            Err(e) => Some(format!("{}: {e}", id_file.display())),
        }
    }

    /// Why the records folder cannot be taken as all of this data dir's records (moved or
    /// replaced since the data dir was made): `gc` then takes nothing for an orphan.
    pub(crate) fn records_replaced(&self) -> Option<&str> {
        self.records_replaced.as_deref()
    }

    /// Tightens a data dir made before it was kept private, on first use: all of it once
    /// (then [`PRIVATE_MARK`] says so), and its first two levels of folders on every open
    /// (cheap with thousands of sessions; each file is checked as it is opened). What cannot be
    /// tightened (links, other users' files) is left for `session ls`, `gc` and `doctor` to
    /// report. A folder that `held_records` not before this open is new to ao-host: what was
    /// already in it is the operator's and keeps its modes.
    fn tighten(data_dir: &Path, held_records: bool) {
        let mark = data_dir.join(PRIVATE_MARK);
        let marked = mark
            .symlink_metadata()
            .is_ok_and(|meta| meta.is_file() && private::check_trusted(&mark, &meta).is_ok());
        if marked {
            let _ = private::tighten_tree(data_dir, 2, false);
        } else {
            if held_records {
                let _ = private::tighten_tree(data_dir, usize::MAX, true);
            }
            let _ = private::write(&mark, b"", false);
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The sessions' locks.
    /// The paths this data dir was opened at before it was moved, oldest first: what plugins
    /// marked with them is still its own.
    pub(crate) fn earlier_paths(&self) -> &[String] {
        &self.earlier_paths
    }

    pub fn locks(&self) -> &LockDir {
        &self.locks
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
        migrate::to_yaml(session).into_bytes()
    }

    /// Writes `bytes` to a fsynced temporary file next to `path` and returns it.
    fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        let dir = path.parent().expect("records live in a folder");
        private::create_dir(dir).map_err(io("creating", dir))?;
        let (temp, mut file) =
            private::create_temp(path).map_err(io("creating a temporary file beside", path))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| {
                let _ = fs::remove_file(&temp);
                io("writing", &temp)(e)
            })?;
        Ok(temp)
    }

    /// Makes a rename or link in `dir` durable.
    fn sync_dir(dir: &Path) {
        if let Ok(handle) = File::open(dir) {
            let _ = handle.sync_all();
        }
    }

    /// Replaces (or creates) a record atomically.
    pub(super) fn write_record(path: &Path, session: &Session) -> Result<(), StoreError> {
        let temp = Self::write_temp(path, &Self::encode(session))?;
        fs::rename(&temp, path).map_err(|e| {
            let _ = fs::remove_file(&temp);
            io("replacing", path)(e)
        })?;
        Self::sync_dir(path.parent().expect("records live in a folder"));
        Ok(())
    }

    /// Ids of the records in `dir`, from file names (no parsing, so 10,000 records are cheap).
    /// A folder that does not exist holds no records; one that cannot be read is an error, never
    /// "no records": `gc` would take every session it cannot see for an orphan, and a
    /// reservation would hand out ids that are taken.
    fn ids_in(dir: &Path) -> Result<Vec<String>, StoreError> {
        if dir
            .symlink_metadata()
            .is_ok_and(|meta| meta.file_type().is_symlink())
        {
            return Err(StoreError::Untrusted {
                path: dir.to_path_buf(),
                message: format!(
                    "{} is a symbolic link where ao-host keeps records; it is not followed: \
                     remove it (`rm {}`)",
                    dir.display(),
                    dir.display()
                ),
            });
        }
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            // Missing, and not a link to somewhere missing.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && dir.symlink_metadata().is_err() =>
            {
                return Ok(Vec::new())
            }
            Err(e) => return Err(io("reading the records folder", dir)(e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io("reading the records folder", dir))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if let Some(id) = name.strip_suffix(&format!(".{RECORD_EXTENSION}")) {
                if validate_id("session id", id).is_ok() {
                    ids.push(id.to_string());
                }
            }
        }
        Ok(ids)
    }

    /// Reserves the next free id for `role` in `session.project_id` and writes `session` under it
    /// (with `id` and `branch` filled in), exclusively: a concurrent reservation of the same id
    /// fails for one of the two, which then takes the next number. The returned lock is taken
    /// before the record exists and stays held until the caller drops it.
    pub fn reserve(
        &self,
        project_prefix: &str,
        role: SessionRole,
        mut session: Session,
    ) -> Result<(Session, SessionLock), StoreError> {
        validate_id("project id", &session.project_id)
            .map_err(|e| StoreError::InvalidId(e.message().to_string()))?;
        validate_id("session_prefix", project_prefix)
            .map_err(|e| StoreError::InvalidId(e.message().to_string()))?;
        let stem = stem(project_prefix, role);
        let project_dir = self.project_dir(&session.project_id);
        let mut lost = HashSet::new();
        loop {
            let mut ids = Self::ids_in(&project_dir)?;
            ids.extend(Self::ids_in(&project_dir.join(ARCHIVE_DIR))?);
            let used = used_numbers(&stem, ids.iter().map(String::as_str));
            let (id, number) = next_identity(&stem, &used, &lost)?;
            // Somebody else is acting on this id (a reservation, an undo just finishing): take
            // another number rather than wait.
            let Some(lock) = self.locks.try_lock(&session.project_id, &id)? else {
                lost.insert(number);
                continue;
            };
            // A kill that targeted an earlier session of the same id is over.
            self.locks.clear_cancel(&session.project_id, &id);
            session.branch = if session.sandbox.is_some() {
                role.confined_branch_for(&id)
            } else {
                role.branch_for(&id)
            };
            session.id = id;
            let path = self.record_path(&session.project_id, &session.id, false);
            let temp = Self::write_temp(&path, &Self::encode(&session))?;
            let linked = fs::hard_link(&temp, &path);
            let _ = fs::remove_file(&temp);
            match linked {
                Ok(()) => {
                    Self::sync_dir(&project_dir);
                    return Ok((session, lock));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    lost.insert(number);
                }
                Err(e) => return Err(io("reserving", &path)(e)),
            }
        }
    }

    /// Saves an active session's record.
    pub(crate) fn save(&self, session: &Session) -> Result<(), StoreError> {
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

    /// Moves a record to the archive with `status` (`killed`, or `errored` for a spawn that
    /// could not be undone) and `note`. The move is one rename, so a session is never active and
    /// archived at once; a crash before the rewrite leaves the archived record with its old
    /// status, which [`SessionStore::list`] reads as `killed`.
    pub fn archive(
        &self,
        session: &Session,
        status: SessionStatus,
        note: Option<String>,
    ) -> Result<Session, StoreError> {
        let from = self.record_path(&session.project_id, &session.id, false);
        let to = self.record_path(&session.project_id, &session.id, true);
        private::create_dir(to.parent().expect("archive folder")).map_err(io("creating", &to))?;
        fs::rename(&from, &to).map_err(io("archiving", &from))?;
        Self::sync_dir(from.parent().expect("records live in a folder"));
        let mut archived = session.clone();
        archived.status = status;
        archived.note = note;
        archived.waiting_for = None;
        Self::write_record(&to, &archived)?;
        Ok(archived)
    }

    /// Reads one record without following symlinks, blocking on FIFOs or reading huge files.
    fn read(path: &Path) -> Result<Session, StoreError> {
        Self::read_checked(path, true).map(|(session, _)| session)
    }

    /// [`SessionStore::read`], with the schema the record was written in.
    pub(super) fn read_versioned(path: &Path) -> Result<(Session, u32), StoreError> {
        Self::read_checked(path, false)
    }

    /// Reads a record; `cached`: a large one parsed before in this version is not parsed again
    /// (its schema is then reported as this release's: it reads as one).
    fn read_checked(path: &Path, cached: bool) -> Result<(Session, u32), StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        // Never through a link, and never one another user made or may have edited: its
        // workspace path and handle decide what a kill or gc removes.
        let file = private::open_read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => StoreError::Untrusted {
                path: path.to_path_buf(),
                message: format!("session record {}: {e}", path.display()),
            },
            _ => corrupt(e.to_string()),
        })?;
        let metadata = file.metadata().map_err(|e| corrupt(e.to_string()))?;
        if metadata.len() > MAX_RECORD_BYTES {
            return Err(corrupt(format!(
                "it is {} bytes, too big for a record",
                metadata.len()
            )));
        }
        let version = RecordVersion::of(&metadata).filter(|_| cached);
        if let Some(session) = version.as_ref().and_then(RecordVersion::cached) {
            return Ok((session, migrate::SCHEMA_VERSION));
        }
        let mut text = String::new();
        file.take(MAX_RECORD_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| corrupt(e.to_string()))?;
        // A record is ours, but anything with write access to the data dir (an agent) can edit
        // it: bounded like a config, so that no record stalls `session ls` or `gc`.
        bounded_yaml::check(&text, MAX_RECORD_BYTES as usize, "a session record")
            .map_err(corrupt)?;
        let (session, schema) =
            migrate::from_yaml::<Session>(&text, "a session record").map_err(corrupt)?;
        if let Some(version) = version {
            version.remember(&session);
        }
        Ok((session, schema))
    }

    /// Every record's project, id and file, active and archived, for [`migrate::upgrade`], and
    /// whether every folder of records could be listed (listings report those that could not).
    pub(super) fn record_paths(&self) -> (Vec<(String, String, PathBuf)>, bool) {
        let (projects, problems) = self.projects();
        let mut complete = problems.is_empty();
        let mut paths = Vec::new();
        for project in projects {
            let dir = self.project_dir(&project);
            for folder in [dir.join(ARCHIVE_DIR), dir] {
                let Ok(ids) = Self::ids_in(&folder) else {
                    complete = false;
                    continue;
                };
                for id in ids {
                    let path = folder.join(format!("{id}.{RECORD_EXTENSION}"));
                    paths.push((project.clone(), id, path));
                }
            }
        }
        (paths, complete)
    }

    /// The active record of `id` as it is on disk now (`None` once it is gone), for a process
    /// that just took the session's lock and must not act on what it read before.
    pub(crate) fn reread(&self, project_id: &str, id: &str) -> Result<Option<Session>, StoreError> {
        let path = self.record_path(project_id, id, false);
        match path.symlink_metadata() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => Self::read_listed(project_id, &self.project_dir(project_id), id, false).map(Some),
        }
    }

    /// The projects that have records (active or archived), sorted, and the folders that should
    /// hold records but cannot be read (a symlinked project folder is one: it is not followed).
    pub fn projects(&self) -> (Vec<String>, Vec<StoreError>) {
        let (mut projects, mut problems) = (Vec::new(), Vec::new());
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if self.read_only && e.kind() == std::io::ErrorKind::NotFound => {
                return (projects, problems);
            }
            Err(e) => {
                problems.push(io("reading the records folder", &self.root)(e));
                return (projects, problems);
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    problems.push(io("reading the records folder", &self.root)(e));
                    continue;
                }
            };
            let Some(name) = entry
                .file_name()
                .into_string()
                .ok()
                .filter(|name| validate_id("project id", name).is_ok())
            else {
                continue;
            };
            match fs::symlink_metadata(entry.path()) {
                Ok(meta) if meta.file_type().is_symlink() => problems.push(StoreError::Untrusted {
                    path: entry.path(),
                    message: format!(
                        "{} is a symbolic link where ao-host keeps a project's records; it is not \
                         followed: remove it (`rm {}`)",
                        entry.path().display(),
                        entry.path().display()
                    ),
                }),
                Ok(meta) if meta.is_dir() => projects.push(name),
                Ok(_) => problems.push(StoreError::Corrupt {
                    path: entry.path(),
                    message: "it should be the folder of project records but is not a folder"
                        .into(),
                }),
                Err(e) => problems.push(io("reading the records folder", &entry.path())(e)),
            }
        }
        projects.sort();
        (projects, problems)
    }

    /// Active (or archived) records of one project or of all, oldest first. Unreadable files
    /// are reported in [`Listing::problems`] and skipped.
    pub fn list(&self, project_id: Option<&str>, archived: bool) -> Listing {
        let mut listing = Listing::default();
        let projects = match project_id {
            Some(id) if validate_id("project id", id).is_err() => Vec::new(),
            Some(id) => vec![id.to_string()],
            None => {
                let (projects, problems) = self.projects();
                listing.problems = problems;
                projects
            }
        };
        // (project, folder, id) of every record to read.
        let mut jobs: Vec<(String, PathBuf, String)> = Vec::new();
        for project in projects {
            let mut dir = self.project_dir(&project);
            if archived {
                dir.push(ARCHIVE_DIR);
            }
            let ids = match Self::ids_in(&dir) {
                Ok(ids) => ids,
                Err(problem) => {
                    listing.problems.push(problem);
                    continue;
                }
            };
            jobs.extend(ids.into_iter().map(|id| (project.clone(), dir.clone(), id)));
        }
        // Parsing dominates a listing of thousands of records; spread it over the cores.
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let chunk = jobs.len().div_ceil(threads).max(1);
        let read: Vec<Result<Session, StoreError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = jobs
                .chunks(chunk)
                .map(|jobs| {
                    scope.spawn(move || {
                        jobs.iter()
                            .map(|(project, dir, id)| Self::read_listed(project, dir, id, archived))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().expect("reading records does not panic"))
                .collect()
        });
        for outcome in read {
            match outcome {
                Ok(session) => listing.sessions.push(session),
                Err(problem) => listing.problems.push(problem),
            }
        }
        listing
            .sessions
            .sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        listing
    }

    /// One listed record, checked to be the session its file name says.
    fn read_listed(
        project: &str,
        dir: &Path,
        id: &str,
        archived: bool,
    ) -> Result<Session, StoreError> {
        let path = dir.join(format!("{id}.{RECORD_EXTENSION}"));
        let mut session = Self::read(&path)?;
        if session.id != id || session.project_id != project {
            return Err(StoreError::Corrupt {
                path,
                message: format!(
                    "it describes session `{}` of project `{}`",
                    session.id, session.project_id
                ),
            });
        }
        if archived && session.status != SessionStatus::Errored {
            // Archived by a kill that died before rewriting the status.
            session.status = SessionStatus::Killed;
        }
        Ok(session)
    }

    /// Temporary files left by writers that died before renaming them into place.
    pub(crate) fn stale_temp_files(&self) -> Vec<PathBuf> {
        let mut stale = Vec::new();
        // Cut-short project id claims too (see `project_ids`), and the data dir itself, which
        // holds its identity and schema files, replaced the same way.
        let mut folders = vec![
            self.data_dir.clone(),
            self.data_dir.join(super::project_ids::FOLDER),
        ];
        for project in self.projects().0 {
            let dir = self.project_dir(&project);
            folders.extend([dir.join(ARCHIVE_DIR), dir]);
        }
        for folder in folders {
            let Ok(entries) = fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                if super::is_stale_temp(&entry) {
                    stale.push(entry.path());
                }
            }
        }
        stale
    }

    /// Finds an active session by id, in any project.
    pub fn find(&self, id: &str) -> Result<Session, StoreError> {
        validate_id("session id", id)
            .map_err(|e| StoreError::InvalidId(e.message().to_string()))?;
        for project in self.projects().0 {
            let path = self.record_path(&project, id, false);
            if path.symlink_metadata().is_ok() {
                // A record copied under another name is refused, as listings refuse it: acting
                // on it would act on the session it describes, under a false name.
                return Self::read_listed(&project, &self.project_dir(&project), id, false);
            }
        }
        Err(StoreError::NotFound { id: id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::now_ms;

    /// Reserves the next worker id of project `app`, releasing its lock at once.
    fn reserve_worker(store: &SessionStore) -> Session {
        store
            .reserve("app", SessionRole::Worker, template("app"))
            .unwrap()
            .0
    }

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
            host: None,
            activity_at: None,
            waiting_for: None,
            conversation_id: None,
            reports_events: false,
            status_from_screen: false,
            usage: None,
            unreachable_since: None,
            sandbox: None,
            note: None,
        }
    }

    #[test]
    fn reservations_take_the_smallest_free_number_over_active_and_archived() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        let one = reserve_worker(&store);
        let two = reserve_worker(&store);
        assert_eq!((one.id.as_str(), two.id.as_str()), ("app-1", "app-2"));
        assert_eq!(one.branch, "session/app-1");
        store.archive(&one, SessionStatus::Killed, None).unwrap();
        let three = reserve_worker(&store);
        assert_eq!(three.id, "app-3", "an archived id is never reused");
        let orch = store
            .reserve("app", SessionRole::Orchestrator, template("app"))
            .unwrap()
            .0;
        assert_eq!(orch.id, "app-orchestrator-1");
        assert_eq!(orch.branch, "orchestrator/app-orchestrator-1");
    }

    /// A confined session's branch sits in a folder of its own, which its sandbox may write.
    #[test]
    fn a_confined_session_gets_a_branch_one_level_down_and_keeps_its_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        let confined = Session {
            sandbox: Some(crate::session::SessionSandbox {
                plugin: "bubblewrap".into(),
                network: ao_plugin_api::sandbox::NetworkAccess::None,
            }),
            ..template("app")
        };
        let (session, _lock) = store
            .reserve("app", SessionRole::Worker, confined.clone())
            .unwrap();
        assert_eq!(session.branch, "session/app-1/work");
        let read = store.find("app-1").unwrap();
        assert_eq!(read.sandbox, confined.sandbox);
        assert_eq!(read.branch, "session/app-1/work");
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
                            .0
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
        let good = reserve_worker(&store);
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
        let session = reserve_worker(&store);
        store
            .archive(&session, SessionStatus::Killed, None)
            .unwrap();
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
    fn a_fifo_a_symlink_or_a_huge_file_named_like_a_record_is_reported_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        let good = reserve_worker(&store);
        let records = dir.path().join("sessions/app");
        let fifo = std::ffi::CString::new(records.join("app-7.yaml").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        std::os::unix::fs::symlink("/etc/passwd", records.join("app-8.yaml")).unwrap();
        fs::write(
            records.join("app-6.yaml"),
            format!("task: {}x{}\n", "[".repeat(200_000), "]".repeat(200_000)),
        )
        .unwrap();
        let huge = File::create(records.join("app-9.yaml")).unwrap();
        huge.set_len(MAX_RECORD_BYTES + 1).unwrap();
        let listing = store.list(None, false);
        assert_eq!(listing.sessions, vec![good]);
        let problems: Vec<String> = listing.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems
            .iter()
            .any(|p| p.contains("app-6.yaml") && p.contains("nested deeper")));
        assert!(problems
            .iter()
            .any(|p| p.contains("app-7.yaml") && p.contains("not a regular file")));
        assert!(problems
            .iter()
            .any(|p| p.contains("app-8.yaml") && p.contains("symbolic link")));
        assert!(problems
            .iter()
            .any(|p| p.contains("app-9.yaml") && p.contains("too big")));
        assert!(matches!(
            store.find("app-7"),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_records_folder_that_cannot_be_read_is_a_problem_never_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        reserve_worker(&store);
        let records = dir.path().join("sessions/app");
        // A project folder replaced by a file: reported, not silently skipped.
        let moved = dir.path().join("moved");
        fs::rename(&records, &moved).unwrap();
        fs::write(&records, "not a folder").unwrap();
        let listing = store.list(None, false);
        assert!(listing.sessions.is_empty());
        assert_eq!(listing.problems.len(), 1, "{:?}", listing.problems);
        // A symlinked project folder is reported, not followed.
        fs::remove_file(&records).unwrap();
        std::os::unix::fs::symlink(&moved, &records).unwrap();
        let listing = store.list(None, false);
        assert!(listing.sessions.is_empty());
        assert!(
            listing.problems[0].to_string().contains("symbolic link"),
            "{:?}",
            listing.problems
        );
        // An archive that cannot be read stops reservations instead of reusing its ids.
        fs::remove_file(&records).unwrap();
        fs::rename(&moved, &records).unwrap();
        let archive = records.join("archive");
        for unreadable in ["a file", "a dangling link"] {
            if unreadable == "a file" {
                fs::write(&archive, "").unwrap();
            } else {
                fs::remove_file(&archive).unwrap();
                std::os::unix::fs::symlink(dir.path().join("nowhere"), &archive).unwrap();
            }
            let err = store
                .reserve("app", SessionRole::Worker, template("app"))
                .unwrap_err();
            assert!(err.to_string().contains("archive"), "{unreadable}: {err}");
            assert!(!store.list(None, true).problems.is_empty(), "{unreadable}");
        }
    }

    #[test]
    fn a_project_argument_never_leaves_the_sessions_folder() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        fs::create_dir_all(dir.path().join("x")).unwrap();
        fs::write(dir.path().join("x/evil-1.yaml"), "id: evil-1\n").unwrap();
        let listing = store.list(Some("../x"), false);
        assert!(listing.sessions.is_empty() && listing.problems.is_empty());
    }

    #[test]
    fn a_reservation_holds_the_lock_before_the_record_exists() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        let (session, lock) = store
            .reserve("app", SessionRole::Worker, template("app"))
            .unwrap();
        assert!(store.locks().is_held("app", &session.id).unwrap());
        drop(lock);
        assert!(!store.locks().is_held("app", &session.id).unwrap());
        // A number whose lock is held by somebody else is skipped, not waited for.
        let other = store.locks().try_lock("app", "app-2").unwrap().unwrap();
        let (next, _lock) = store
            .reserve("app", SessionRole::Worker, template("app"))
            .unwrap();
        assert_eq!(next.id, "app-3");
        drop(other);
    }

    #[test]
    fn a_record_of_any_task_within_the_limit_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        for unit in ["\u{1}", "\n", "\"", "a\n", "\u{feff}", "\u{85}"] {
            let mut session = template("app");
            session.task = Some(unit.repeat(MAX_TASK_BYTES / unit.len()));
            let (session, _lock) = store.reserve("app", SessionRole::Worker, session).unwrap();
            let read = store.find(&session.id).unwrap();
            assert_eq!(read.task, session.task, "{unit:?}");
        }
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
