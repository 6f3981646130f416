//! Catching a plugin that prints to stdout: in the host, stdout is the operator's (and
//! `--json`'s), so one stray line corrupts what a script reads.
//!
//! While one plugin's checks run in this process, descriptor 1 is a pipe the kit drains; what
//! arrives there came from the plugin (or a process it started with stdout inherited). An
//! isolated plugin's stdout is its child process's, which the host sends nowhere, so it is not
//! checked then (and the report says so).

use std::{
    fs::File,
    io::Read,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{Arc, Mutex, MutexGuard},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{Kit, KitSettings};

/// The check's name.
const CHECK: &str = "no printing to stdout";
/// How long the kit waits for the last printed bytes once stdout is back: a process the plugin
/// started may still hold the pipe open, so the drain is not waited for to its end.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

type Printed = Arc<Mutex<Vec<u8>>>;

/// Held while descriptor 1 is watched: two kits in one process (tests running side by side)
/// take turns, since each would otherwise put back the other's pipe as stdout.
static WATCHING: Mutex<()> = Mutex::new(());

/// Descriptor 1 redirected into a pipe, until [`Watch::finish`].
pub(crate) enum Watch {
    Watching {
        saved: OwnedFd,
        drain: JoinHandle<()>,
        printed: Printed,
        _turn: MutexGuard<'static, ()>,
    },
    /// Not watched: why.
    Unwatched(String),
}

impl Watch {
    /// Starts catching what is written to stdout (not when the plugin runs isolated, or
    /// `settings` say not to).
    pub(crate) fn start(settings: &KitSettings) -> Self {
        if !settings.watch_stdout {
            return Self::Unwatched("not checked: turned off by the kit's caller".into());
        }
        if settings.isolate {
            return Self::Unwatched(
                "not checked: the plugin ran isolated, where stdout goes nowhere; run `ao-host \
                 plugins test --in-process` to check it"
                    .into(),
            );
        }
        let turn = WATCHING.lock().unwrap_or_else(|e| e.into_inner());
        match redirect() {
            Ok((saved, drain, printed)) => Self::Watching {
                saved,
                drain,
                printed,
                _turn: turn,
            },
            Err(e) => Self::Unwatched(format!("not checked: cannot watch stdout ({e})")),
        }
    }

    /// Puts stdout back; what was printed meanwhile (or why it was not watched).
    pub(crate) fn finish(self) -> Result<Vec<u8>, String> {
        match self {
            Self::Unwatched(why) => Err(why),
            Self::Watching {
                saved,
                drain,
                printed,
                ..
            } => {
                // SAFETY: descriptor 1 gets back what it was; the pipe's write end closes with it.
                unsafe { libc::dup2(saved.as_raw_fd(), 1) };
                let deadline = Instant::now() + DRAIN_GRACE;
                while !drain.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let printed = printed.lock().unwrap_or_else(|e| e.into_inner());
                Ok(without_harness_notes(&printed))
            }
        }
    }
}

/// `printed` without the notes Rust's test harness writes to stdout while a test runs long
/// (`test NAME has been running for over 60 seconds`): from a plugin's `cargo test`, those are
/// the kit's own test's, not the plugin's.
fn without_harness_notes(printed: &[u8]) -> Vec<u8> {
    printed
        .split_inclusive(|&b| b == b'\n')
        .filter(|line| {
            let line = String::from_utf8_lossy(line);
            !(line.starts_with("test ")
                && line
                    .trim_end()
                    .ends_with(" has been running for over 60 seconds"))
        })
        .flatten()
        .copied()
        .collect()
}

/// Points descriptor 1 at a pipe drained by a thread; returns the old stdout, the thread and
/// what it drained.
fn redirect() -> std::io::Result<(OwnedFd, JoinHandle<()>, Printed)> {
    let mut ends = [0; 2];
    // SAFETY: pipe, dup and dup2 on descriptors this function makes; each is owned once.
    unsafe {
        if libc::pipe(ends.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let (read, write) = (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1]));
        for fd in [&read, &write] {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
        }
        let saved = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
        if saved < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let saved = OwnedFd::from_raw_fd(saved);
        if libc::dup2(write.as_raw_fd(), 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        drop(write);
        let printed = Printed::default();
        let sink = Arc::clone(&printed);
        let drain = std::thread::spawn(move || {
            let mut reader = File::from(read);
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buffer) {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buffer[..n]);
            }
        });
        Ok((saved, drain, printed))
    }
}

impl Kit<'_> {
    /// Records the stdout check from what [`Watch::finish`] gave.
    pub(crate) fn stdout_check(&mut self, printed: Result<Vec<u8>, String>) {
        match printed {
            Err(why) => self.skip(CHECK, why),
            Ok(printed) if printed.is_empty() => {
                self.record(CHECK, Ok("nothing printed during any call".into()));
            }
            Ok(printed) => {
                let shown: String = String::from_utf8_lossy(&printed)
                    .chars()
                    .take(120)
                    .collect();
                self.record(
                    CHECK,
                    Err(format!(
                        "printed {} byte(s) to stdout during its calls ({shown:?}): stdout is the \
                         host's and corrupts its `--json`; write diagnostics to stderr or the \
                         plugin's own log",
                        printed.len()
                    )),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_notes_are_not_the_plugins() {
        let printed = b"test ao_plugin_conformance has been running for over 60 seconds\nmine\n";
        assert_eq!(without_harness_notes(printed), b"mine\n");
        assert_eq!(
            without_harness_notes(b"plugin says test\n"),
            b"plugin says test\n"
        );
    }
}
