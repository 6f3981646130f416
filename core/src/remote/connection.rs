//! The one shared connection (ssh `ControlMaster`) per host and data dir, made once across
//! every ao-host process.
//!
//! With `ControlMaster=auto` each ssh that finds no socket opens a connection of its own, so 25
//! processes started together open 26 and sshd drops the ones past `MaxStartups`. Here the
//! master is started explicitly and alone: a command first checks for a live master (a connect
//! to its socket, no process), else takes the host's connect lock (a file beside the socket),
//! checks again, and starts one (`ssh -f -N`, which returns once logged in). Everyone else
//! waits for the socket instead of connecting. Commands then ride it with `ControlMaster=no`
//! and never connect by themselves (see [`super::wrapper`]): one that finds no master (it died
//! meanwhile) fails before reaching anything and is run again once the master is back.
//!
//! The lock is held by the process that starts the master until ssh is logged in (ssh closes
//! every descriptor it did not open, so it cannot hold it itself); the host starts it from a
//! detached `ao-host transport --connect-only`, so a caller that stops waiting leaves the
//! connect running and nobody starts a second one meanwhile. A socket whose master was killed
//! (`kill -9`) refuses connections; it is removed under the lock and a new master started.

use std::{
    os::unix::{
        fs::{FileTypeExt, OpenOptionsExt},
        process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use ao_plugin_kit::private;

/// How long an idle shared connection stays open after its last use.
pub(crate) const CONTROL_PERSIST_SECONDS: u32 = 60;

/// One host's shared connection: the ssh argv that reaches it (up to and including the
/// destination, without `ControlMaster`) and its socket.
#[derive(Debug, Clone)]
pub(crate) struct Connection<'a> {
    pub ssh: &'a [String],
    pub socket: &'a Path,
}

impl Connection<'_> {
    /// Whether a master answers on the socket (see [`master_answers`]).
    pub(crate) fn is_up(&self) -> bool {
        master_answers(self.socket)
    }

    /// The lock that serializes connecting, beside the socket.
    fn lock_path(&self) -> PathBuf {
        sibling(self.socket, "connect.lock")
    }

    /// Makes sure a master is up, starting it when none is, or waiting up to `patience` for
    /// another process that is starting it. The error is what ssh said (its last words name
    /// the cause: refused, host key, login), or that the wait ran out.
    pub(crate) fn establish(&self, patience: Duration) -> Result<(), String> {
        let deadline = Instant::now() + patience;
        let mut pause = Duration::from_millis(5);
        loop {
            if self.is_up() {
                return Ok(());
            }
            let lock = private::open_lock(&self.lock_path())
                .map_err(|e| format!("{}: {e}", self.lock_path().display()))?;
            if lock.try_lock().is_ok() {
                if self.is_up() {
                    return Ok(());
                }
                return self.start();
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "another ao-host process has been connecting to it for {} s; gave up waiting",
                    patience.as_secs()
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Starts the master (the caller holds the lock); returns once it is logged in (or failed).
    fn start(&self) -> Result<(), String> {
        self.remove_stale_socket()?;
        let errors = sibling(self.socket, "connect.err");
        let log = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&errors)
            .map_err(|e| format!("{}: {e}", errors.display()))?;
        let (program, args) = self.ssh.split_first().ok_or("no ssh command")?;
        let mut command = Command::new(program);
        command
            .args([
                "-o",
                "ControlMaster=yes",
                "-o",
                &format!("ControlPersist={CONTROL_PERSIST_SECONDS}"),
                "-f",
                "-N",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own group: a terminal's Ctrl-C, or a caller's group kill, ends the command
            // that asked, not a connect others wait for.
            .process_group(0);
        let status = command.status().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "`ssh` not found on PATH: install the OpenSSH client (e.g. `apt-get install openssh-client`)"
                    .to_string()
            }
            _ => format!("cannot run ssh: {e}"),
        })?;
        if status.success() {
            return Ok(());
        }
        Err(private::read_to_string(&errors).unwrap_or_default())
    }

    /// A socket nobody answers on (its master was killed) would stop a new master from
    /// listening; only a socket is removed, never what else may be planted there.
    fn remove_stale_socket(&self) -> Result<(), String> {
        match self.socket.symlink_metadata() {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(self.socket)
                .map_err(|e| format!("removing the dead socket {}: {e}", self.socket.display())),
            Ok(_) => Err(format!(
                "{} is not a socket: remove it",
                self.socket.display()
            )),
            Err(_) => Ok(()),
        }
    }
}

/// Whether a master answers on `socket` (a connect only; nothing is started).
pub(crate) fn master_answers(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

/// `<socket>.<suffix>`: the files of one connection sit beside its socket.
pub fn sibling(socket: &Path, suffix: &str) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}
