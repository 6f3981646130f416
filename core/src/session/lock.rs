//! Per-session ownership: an OS file lock held by whichever `ao-host` process acts on a session.
//!
//! Why a kernel lock and not a pid in the record: the kernel drops the lock when its process
//! dies, however it dies (`kill -9` included), and nobody can mistake a recycled pid for the
//! holder. So "the lock is free and the record still says `spawning`" proves the spawn was
//! interrupted, and a `gc` that takes the lock knows nobody else is touching the session.
//!
//! Lock files live in `<data_dir>/locks/<project>/<id>.lock`. A session that is over has its
//! lock file removed, by its holder only ([`SessionLock::remove`]: `kill`, and `gc` for
//! sessions gone before that existed), so one file per session ever made does not pile up.
//! Removing a file another process has open would let two processes hold "the" lock on two
//! different inodes, so every taker checks, once it holds the lock, that the path still names
//! the file it locked ([`still_at`]), and starts again otherwise. The holder writes its pid
//! into the file, only so that a waiting command can say who it waits for.
//!
//! A kill that finds a spawn in progress leaves a cancel request (`<id>.cancel`) next to the
//! lock; the spawn checks for it between steps and undoes itself, so the kill never reports
//! success while the spawn goes on.

use std::{
    fs::{self, File, TryLockError},
    io::{Read, Seek, Write},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use ao_plugin_kit::{private, validate::validate_id};

use super::StoreError;

/// How often a waiting command retries a held lock.
const RETRY: Duration = Duration::from_millis(10);

/// A held session lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct SessionLock {
    file: File,
    path: PathBuf,
    id: String,
}

impl SessionLock {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Removes the lock file, then releases it: for a session that is over. A command that
    /// opened the file before finds, once it holds it, that it is no longer there, and takes
    /// the new one instead.
    pub fn remove(self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether `path` still names `file`, a lock file just locked: a holder may have removed it
/// between this taker's open and its lock, and a lock on a removed file excludes nobody.
pub(crate) fn still_at(file: &File, path: &Path) -> std::io::Result<bool> {
    let held = file.metadata()?;
    match path.symlink_metadata() {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Why a lock could not be taken in time.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("session {id} is busy: {holder} is acting on it; try again when it is done")]
    Busy { id: String, holder: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where one data dir's session locks live.
#[derive(Debug, Clone)]
pub struct LockDir {
    root: PathBuf,
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |error| StoreError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

impl LockDir {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("locks"),
        }
    }

    /// The folder of the locks.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, project_id: &str, id: &str, extension: &str) -> PathBuf {
        self.root.join(project_id).join(format!("{id}.{extension}"))
    }

    fn open(&self, project_id: &str, id: &str) -> Result<File, StoreError> {
        let path = self.path(project_id, id, "lock");
        let dir = path.parent().expect("locks live in a folder");
        private::create_dir_within(&self.root, dir).map_err(io_error("creating", dir))?;
        // Never through a link (the holder writes its pid into it), never another user's.
        private::open_lock(&path).map_err(|error| match error.kind() {
            std::io::ErrorKind::PermissionDenied => StoreError::Untrusted {
                message: format!("session lock: {error}"),
                path: path.clone(),
            },
            _ => io_error("opening lock", &path)(error),
        })
    }

    /// Takes the lock if nobody holds it; `None` when somebody does.
    pub(crate) fn try_lock(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Option<SessionLock>, StoreError> {
        let Some(mut file) = self.try_take(project_id, id)? else {
            return Ok(None);
        };
        // Who holds it, for messages only; a failed write changes nothing else.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()));
        Ok(Some(SessionLock {
            file,
            path: self.path(project_id, id, "lock"),
            id: id.to_string(),
        }))
    }

    /// The lock file, locked, if nobody else held it; released when the file is dropped.
    fn try_take(&self, project_id: &str, id: &str) -> Result<Option<File>, StoreError> {
        loop {
            let file = self.open(project_id, id)?;
            if let Some(taken) = self.take_opened(project_id, id, file)? {
                return Ok(taken);
            }
        }
    }

    /// Tries to lock `file`, opened as the lock of `id`: `Some(None)` when somebody holds it,
    /// `None` when it was removed meanwhile (open it again).
    fn take_opened(
        &self,
        project_id: &str,
        id: &str,
        file: File,
    ) -> Result<Option<Option<File>>, StoreError> {
        let path = self.path(project_id, id, "lock");
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(Some(None)),
            Err(TryLockError::Error(e)) => return Err(io_error("locking", &path)(e)),
        }
        let current = still_at(&file, &path).map_err(io_error("checking lock", &path))?;
        Ok(current.then_some(Some(file)))
    }

    /// The sessions that have a lock file, as (project, id), for `gc`.
    pub(crate) fn locked_sessions(&self) -> Vec<(String, String)> {
        let mut sessions = Vec::new();
        let Ok(projects) = fs::read_dir(&self.root) else {
            return sessions;
        };
        for project in projects.filter_map(Result::ok) {
            let Ok(project_id) = project.file_name().into_string() else {
                continue;
            };
            if validate_id("project id", &project_id).is_err() {
                continue;
            }
            let Ok(files) = fs::read_dir(project.path()) else {
                continue;
            };
            for file in files.filter_map(Result::ok) {
                let name = file.file_name().to_string_lossy().into_owned();
                if let Some(id) = name
                    .strip_suffix(".lock")
                    .filter(|id| validate_id("session id", id).is_ok())
                {
                    sessions.push((project_id.clone(), id.to_string()));
                }
            }
        }
        sessions.sort();
        sessions
    }

    /// Takes the lock, waiting up to `patience` for its holder to finish.
    pub async fn lock(
        &self,
        project_id: &str,
        id: &str,
        patience: Duration,
    ) -> Result<SessionLock, LockError> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(lock) = self.try_lock(project_id, id)? {
                return Ok(lock);
            }
            if Instant::now() >= deadline {
                return Err(LockError::Busy {
                    id: id.to_string(),
                    holder: self.holder(project_id, id),
                });
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Whether some process holds the lock right now: a probe that takes it for an instant,
    /// without writing its pid (a listing must not write to the data dir per record).
    pub(crate) fn is_held(&self, project_id: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.try_take(project_id, id)?.is_none())
    }

    /// Who holds the lock, as far as the lock file says.
    pub fn holder(&self, project_id: &str, id: &str) -> String {
        let mut text = String::new();
        let _ = private::open_read(&self.path(project_id, id, "lock"))
            .and_then(|mut f| f.read_to_string(&mut text));
        match text.trim().parse::<u32>() {
            Ok(pid) => format!("ao-host process {pid}"),
            Err(_) => "another ao-host process".to_string(),
        }
    }

    /// Asks the spawn holding `id` to stop and undo itself.
    pub(crate) fn request_cancel(&self, project_id: &str, id: &str) -> Result<(), StoreError> {
        let path = self.path(project_id, id, "cancel");
        private::write(&path, std::process::id().to_string().as_bytes(), false)
            .map_err(io_error("writing", &path))
    }

    /// Whether a kill asked the spawn of `id` to stop: a request of this user's own only.
    pub(crate) fn cancel_requested(&self, project_id: &str, id: &str) -> bool {
        let path = self.path(project_id, id, "cancel");
        path.symlink_metadata()
            .is_ok_and(|meta| meta.is_file() && private::check_trusted(&path, &meta).is_ok())
    }

    /// Forgets a cancel request (the spawn it was for is over, or a new one starts afresh).
    pub(crate) fn clear_cancel(&self, project_id: &str, id: &str) {
        let _ = fs::remove_file(self.path(project_id, id, "cancel"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link planted as the locks folder would put every lock (and the pid written into it)
    /// wherever it points: refused, and nothing is made there.
    #[test]
    fn a_locks_folder_that_is_a_link_is_refused_and_nothing_is_made_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("locks")).unwrap();
        let locks = LockDir::new(dir.path());
        let error = locks.try_lock("app", "app-1").unwrap_err().to_string();
        assert!(error.contains("link"), "{error}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_held_lock_is_refused_named_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::new(dir.path());
        let held = locks.try_lock("app", "app-1").unwrap().unwrap();
        assert_eq!(held.id(), "app-1");
        assert!(locks.try_lock("app", "app-1").unwrap().is_none());
        assert!(locks.is_held("app", "app-1").unwrap());
        let err = locks
            .lock("app", "app-1", Duration::from_millis(30))
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&std::process::id().to_string()),
            "{message}"
        );
        drop(held);
        assert!(!locks.is_held("app", "app-1").unwrap());
        locks
            .lock("app", "app-1", Duration::from_millis(30))
            .await
            .unwrap();
    }

    #[test]
    fn a_lock_file_removed_between_a_takers_open_and_its_lock_is_not_taken_for_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::new(dir.path());
        // A taker opens the file; before it locks it, the holder of a session that is over
        // removes it.
        let opened = locks.open("app", "app-1").unwrap();
        locks.try_lock("app", "app-1").unwrap().unwrap().remove();
        // The next taker makes and holds a new file.
        let holder = locks.try_lock("app", "app-1").unwrap().unwrap();
        assert!(
            locks.take_opened("app", "app-1", opened).unwrap().is_none(),
            "the removed file's lock was taken for the session's"
        );
        assert!(locks.try_lock("app", "app-1").unwrap().is_none());
        assert!(locks.is_held("app", "app-1").unwrap());
        drop(holder);
        assert_eq!(locks.locked_sessions(), [("app".into(), "app-1".into())]);
    }

    #[test]
    fn takers_racing_a_remover_never_hold_the_lock_together() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::new(dir.path());
        let inside = AtomicUsize::new(0);
        let overlaps = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    for _ in 0..2000 {
                        let Some(lock) = locks.try_lock("app", "app-1").unwrap() else {
                            continue;
                        };
                        if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                            overlaps.fetch_add(1, Ordering::SeqCst);
                        }
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        // Half of them end the session: its lock file goes.
                        if rand_bit() {
                            lock.remove();
                        }
                    }
                });
            }
        });
        assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    }

    /// A coin toss without a dependency: the low bit of the clock's nanoseconds.
    fn rand_bit() -> bool {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            & 1
            == 1
    }

    #[test]
    fn cancel_requests_are_per_session() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::new(dir.path());
        locks.try_lock("app", "app-1").unwrap();
        locks.request_cancel("app", "app-1").unwrap();
        assert!(locks.cancel_requested("app", "app-1"));
        assert!(!locks.cancel_requested("app", "app-2"));
        locks.clear_cancel("app", "app-1");
        assert!(!locks.cancel_requested("app", "app-1"));
    }
}
