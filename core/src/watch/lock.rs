//! One watcher per data dir: an OS file lock on `watch/watcher.lock`, held for the watcher's
//! life. Two watchers would each send the agent the same reaction, so the second one is refused,
//! naming the first one's pid. The kernel drops the lock with its process, however it dies.

use std::{
    fs::{File, TryLockError},
    io::{Read, Seek, Write},
    path::PathBuf,
};

use ao_plugin_kit::private;

use super::view::WatchDir;
use crate::session::StoreError;

/// The held lock; released when dropped.
#[derive(Debug)]
pub struct WatcherLock {
    _file: File,
}

/// Why the watcher may not run.
#[derive(Debug, thiserror::Error)]
pub enum WatchLockError {
    #[error("another watcher (pid {holder}) already watches this data dir ({path}); one is enough: it polls for every project")]
    Held { holder: String, path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WatcherLock {
    /// Takes the data dir's watcher lock, without waiting.
    pub fn acquire(dir: &WatchDir) -> Result<Self, WatchLockError> {
        let path = dir.root().join("watcher.lock");
        let io = |action: &'static str| {
            let path = path.clone();
            move |error| StoreError::Io {
                action,
                path,
                error,
            }
        };
        private::create_dir_within(dir.root(), dir.root()).map_err(io("creating"))?;
        let mut file = private::open_lock(&path).map_err(io("opening lock"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "unknown".to_string(),
                    pid => pid.to_string(),
                };
                return Err(WatchLockError::Held { holder, path });
            }
            Err(TryLockError::Error(error)) => return Err(io("locking")(error).into()),
        }
        // Who holds it, for the refusal's message only.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()));
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_watcher_is_refused_naming_the_first_and_takes_over_when_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        let watch = WatchDir::new(dir.path());
        let first = WatcherLock::acquire(&watch).unwrap();
        let refused = WatcherLock::acquire(&watch).unwrap_err().to_string();
        assert!(
            refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        drop(first);
        WatcherLock::acquire(&watch).unwrap();
    }
}
