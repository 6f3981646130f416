//! Plugins on another machine: the [`Transport`] a plugin instance was built with, and how a
//! command line travels over it.
//!
//! The host builds a plugin for another host with the transport to reach it (`ssh …`). While
//! that instance is being built and while any of its methods runs, the transport is this
//! thread's [`current`] one; [`crate::program::Program`], [`crate::files::Files`] and
//! [`crate::session_files::SessionFiles`] made then remember it, so a plugin written with them
//! works on the other machine unchanged. Anything a plugin does by itself (`std::fs`, its own
//! `std::process::Command`) still happens on the host's machine: such a plugin must not be
//! exported as `[remote]`.
//!
//! On the other machine, a program runs as one POSIX shell command line (that is what ssh
//! carries), built by [`command_line`]: every argument single-quoted by [`crate::shell::join`],
//! so no byte of a task, a branch or a path is ever read by that shell. Large inputs go on
//! stdin, never in the line.

use std::{ffi::OsStr, path::Path, process::Command};

use ao_plugin_api::Transport;

use crate::shell;

pub use ao_plugin_api::transport::current;

/// The exit status of a line whose `cd` into the working folder failed (see [`command_line`]).
pub const NO_SUCH_FOLDER_STATUS: i32 = 125;
/// The exit status a shell gives a program it cannot find.
pub const NOT_FOUND_STATUS: i32 = 127;
/// The exit status ssh gives when it could not reach the host or lost it (the remote command's
/// own status otherwise).
pub const TRANSPORT_FAILED_STATUS: i32 = 255;

/// The shell command line that runs `program` with `args` in `cwd` (when given) on the other
/// machine: `cd -- '<cwd>' || exit 125; exec '<program>' '<arg>'…`.
pub fn command_line<I, S>(cwd: Option<&Path>, program: &str, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut argv = vec![program.to_string()];
    argv.extend(
        args.into_iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned()),
    );
    let run = format!("exec {}", shell::join(&argv));
    match cwd {
        Some(dir) => format!(
            "cd -- {} 2>/dev/null || exit {NO_SUCH_FOLDER_STATUS}; {run}",
            shell::join(&[dir.to_string_lossy()])
        ),
        None => run,
    }
}

/// What the kit does with a [`Transport`]: run a line through it, name its host in messages.
/// (A trait because the type belongs to `ao-plugin-api`.)
pub trait TransportExt {
    /// The local process that runs `line` on the host. It opens a session there: this
    /// process's idle kept shells on the host are closed first, so that it never holds idle
    /// sessions while waiting for one (the host bounds them across processes).
    fn command(&self, line: &str) -> Command;

    /// " on host `NAME`", for messages about something on the host.
    fn on_host(&self) -> String;

    /// The message for a run that ended with [`TRANSPORT_FAILED_STATUS`]: what ssh said.
    fn failure_message(&self, stderr: &[u8]) -> String;
}

impl TransportExt for Transport {
    fn command(&self, line: &str) -> Command {
        close_idle(self);
        let mut argv = self.command.iter().map(|a| a.as_str());
        let mut command = Command::new(argv.next().unwrap_or("ssh"));
        command.args(argv).arg(line);
        command
    }

    fn on_host(&self) -> String {
        format!(" on host `{}`", self.host)
    }

    fn failure_message(&self, stderr: &[u8]) -> String {
        let said = crate::program::last_line(stderr);
        let said = if said.is_empty() { "no answer" } else { &said };
        format!("host `{}` did not answer: {said}", self.host)
    }
}

/// The shell started on the host to run command lines one after another (see [`run`]): a
/// function that runs one line with no input, then writes a marker with its exit status, then
/// its stderr (when it wrote any), then a second marker. Each marker carries a random id the
/// command cannot know, so no output can forge one.
const SHELL_BOOT: &str = r#"ao_e=$(mktemp) || exit 1
trap 'rm -f "$ao_e"' EXIT
ao_run() { (eval "$2") </dev/null 2>"$ao_e"; ao_end "$1"; }
ao_here() { eval "$2" 2>"$ao_e"; ao_end "$1"; }
ao_end() { ao_s=$?; printf '\nAO-END-%s %s\n' "$1" "$ao_s"; if [ -s "$ao_e" ]; then cat "$ao_e"; fi; printf '\nAO-END-%s\n' "$1"; }
"#;

/// How many idle shells are kept per host (by each plugin library: each has its own).
const MAX_IDLE_SHELLS: usize = 2;
/// How long a shell is kept idle: each holds one of the sessions the host allows across all
/// processes, so a long-running process (a dashboard) must not sit on them.
const IDLE_SHELL_LIFETIME: std::time::Duration = std::time::Duration::from_secs(2);
/// How often a process looks for shells idle past their lifetime.
const IDLE_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// The longest pause between two tries of a [`lock`] held by another.
const LOCK_RETRY_MAX_PAUSE: std::time::Duration = std::time::Duration::from_millis(400);

/// A shell running on the host over one ssh session, taking command lines on its stdin.
struct Shell {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::process::ChildStdout,
    /// When it was last given back.
    idle_since: std::time::Instant,
}

/// Idle shells, by the transport that reached them.
static SHELLS: std::sync::Mutex<Vec<(Vec<String>, Shell)>> = std::sync::Mutex::new(Vec::new());

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why a run on a kept shell did not give an answer.
enum ShellFailure {
    /// The line never reached the shell (it had died): nothing ran, so it may be run again.
    NotSent,
    /// The shell went away with the line sent: whether it ran is unknown.
    Lost(String),
}

impl Shell {
    fn start(transport: &Transport) -> std::io::Result<Shell> {
        use std::process::Stdio;
        let mut command = transport.command("exec sh -s");
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn()?;
        let mut input = child.stdin.take().expect("stdin was piped");
        let output = child.stdout.take().expect("stdout was piped");
        std::io::Write::write_all(&mut input, SHELL_BOOT.as_bytes())?;
        let mut shell = Shell {
            child,
            input,
            output,
            idle_since: std::time::Instant::now(),
        };
        // Whatever the login shell printed before `sh` took over (a banner from a profile)
        // comes before the first answer: a first command that does nothing takes it away.
        match shell.run(":", false) {
            Ok((0, _, _)) => Ok(shell),
            Ok((status, _, stderr)) => Err(std::io::Error::other(format!(
                "the shell on host `{}` did not start (status {status}): {}",
                transport.host,
                String::from_utf8_lossy(&stderr).trim()
            ))),
            Err(ShellFailure::NotSent | ShellFailure::Lost(_)) => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                format!("host `{}` closed the connection", transport.host),
            )),
        }
    }

    /// Runs `line` in a subshell (`here`: in the shell itself, so that what it does to the
    /// shell's descriptors stays); its exit status, stdout and stderr.
    fn run(&mut self, line: &str, here: bool) -> Result<(i32, Vec<u8>, Vec<u8>), ShellFailure> {
        use std::io::Write;
        let id = marker_id();
        let function = if here { "ao_here" } else { "ao_run" };
        let request = format!("{function} {id} {}\n", shell::join(&[line]));
        if self
            .input
            .write_all(request.as_bytes())
            .and_then(|()| self.input.flush())
            .is_err()
        {
            return Err(ShellFailure::NotSent);
        }
        let end = format!("\nAO-END-{id} ");
        let last = format!("\nAO-END-{id}\n");
        let mut received: Vec<u8> = Vec::new();
        let mut scanned = 0;
        let (status, stdout_len, stderr_start) = loop {
            if let Some(at) = find(&received[scanned..], end.as_bytes()).map(|i| i + scanned) {
                let after = at + end.len();
                if let Some(newline) = received[after..].iter().position(|b| *b == b'\n') {
                    let status = std::str::from_utf8(&received[after..after + newline])
                        .ok()
                        .and_then(|s| s.parse::<i32>().ok())
                        .ok_or_else(|| ShellFailure::Lost("a garbled answer".into()))?;
                    break (status, at, after + newline + 1);
                }
            }
            scanned = received.len().saturating_sub(end.len() + 24);
            self.read_more(&mut received)?;
        };
        // The stderr part ends with the last marker; the marker's leading newline is ours.
        let mut scanned = stderr_start;
        let stderr_end = loop {
            let from = scanned
                .saturating_sub(last.len())
                .max(stderr_start.saturating_sub(1));
            if let Some(at) = find(&received[from..], last.as_bytes()) {
                break from + at;
            }
            scanned = received.len();
            self.read_more(&mut received)?;
        };
        if received.len() != stderr_end + last.len() {
            return Err(ShellFailure::Lost(
                "output after the end of a command".into(),
            ));
        }
        let stderr = received[stderr_start.min(stderr_end)..stderr_end].to_vec();
        received.truncate(stdout_len);
        Ok((status, received, stderr))
    }

    /// Appends what the shell wrote next to `received`; the connection closing is a loss.
    fn read_more(&mut self, received: &mut Vec<u8>) -> Result<(), ShellFailure> {
        use std::io::Read;
        let mut chunk = [0u8; 64 * 1024];
        let read = self
            .output
            .read(&mut chunk)
            .map_err(|e| ShellFailure::Lost(e.to_string()))?;
        if read == 0 {
            return Err(ShellFailure::Lost("the connection closed".into()));
        }
        received.extend_from_slice(&chunk[..read]);
        Ok(())
    }
}

/// A random id for one command's markers.
fn marker_id() -> String {
    let mut bytes = [0u8; 12];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut bytes))
        .is_err()
    {
        // Unforgeable enough without randomness: time and a counter.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return format!("{now:x}{n:x}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs command line `line` (no input) on the host of `transport`, on a shell kept open there
/// between commands: one ssh session for many commands instead of one each, which saves most
/// of a command's cost over ssh (starting ssh, opening a session, starting a login shell).
/// The answer is what running the line directly over the transport gives; a shell that broke
/// before the line reached it is replaced once, and a lost one answers
/// [`TRANSPORT_FAILED_STATUS`].
pub fn run(transport: &Transport, line: &str) -> std::io::Result<std::process::Output> {
    let (shell, output) = run_kept(transport, line, false)?;
    if let Some(shell) = shell {
        give_back(transport, shell);
    }
    Ok(output)
}

/// The key of `transport`'s shells.
fn key_of(transport: &Transport) -> Vec<String> {
    transport.command.iter().map(|a| a.to_string()).collect()
}

fn give_back(transport: &Transport, mut shell: Shell) {
    let key = key_of(transport);
    shell.idle_since = std::time::Instant::now();
    let mut shells = SHELLS.lock().unwrap_or_else(|e| e.into_inner());
    if shells.iter().filter(|(k, _)| *k == key).count() < MAX_IDLE_SHELLS {
        shells.push((key, shell));
        sweep_idle_shells();
    }
}

/// Closes this process's idle shells on the host of `transport`.
fn close_idle(transport: &Transport) {
    let key = key_of(transport);
    let closed: Vec<_> = {
        let mut shells = SHELLS.lock().unwrap_or_else(|e| e.into_inner());
        let (closed, kept) = std::mem::take(&mut *shells)
            .into_iter()
            .partition(|(k, _)| *k == key);
        *shells = kept;
        closed
    };
    // Each waits for its ssh to end: outside the lock.
    drop(closed);
}

/// Starts (once per process) the thread that closes shells idle past [`IDLE_SHELL_LIFETIME`].
fn sweep_idle_shells() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let sweep = || loop {
            std::thread::sleep(IDLE_SWEEP_INTERVAL);
            let expired: Vec<_> = {
                let mut shells = SHELLS.lock().unwrap_or_else(|e| e.into_inner());
                let (expired, kept) = std::mem::take(&mut *shells)
                    .into_iter()
                    .partition(|(_, shell)| shell.idle_since.elapsed() >= IDLE_SHELL_LIFETIME);
                *shells = kept;
                expired
            };
            drop(expired);
        };
        // Without the thread, idle shells are only closed when a new session is opened.
        let _ = std::thread::Builder::new()
            .name("ao-idle-shells".into())
            .spawn(sweep);
    });
}

/// Runs `line` on a kept shell (an idle one, else a new one); the shell too, while it works.
fn run_kept(
    transport: &Transport,
    line: &str,
    here: bool,
) -> std::io::Result<(Option<Shell>, std::process::Output)> {
    use std::os::unix::process::ExitStatusExt;
    let key = key_of(transport);
    let idle = || {
        let mut shells = SHELLS.lock().unwrap_or_else(|e| e.into_inner());
        shells
            .iter()
            .position(|(k, _)| *k == key)
            .map(|i| shells.swap_remove(i).1)
    };
    let mut fresh = false;
    loop {
        let mut shell = match idle() {
            Some(shell) => shell,
            None => {
                fresh = true;
                Shell::start(transport)?
            }
        };
        match shell.run(line, here) {
            Ok((status, stdout, stderr)) => {
                let output = std::process::Output {
                    status: std::process::ExitStatus::from_raw((status & 0xff) << 8),
                    stdout,
                    stderr,
                };
                return Ok((Some(shell), output));
            }
            Err(ShellFailure::NotSent) if !fresh => continue,
            Err(ShellFailure::NotSent) => {
                let why = "the connection closed before the command was sent";
                return Ok((None, lost(transport, why)));
            }
            Err(ShellFailure::Lost(why)) => return Ok((None, lost(transport, &why))),
        }
    }
}

/// An exclusive `flock` on a file of the host, held by a kept shell (on its descriptor 9) until
/// dropped; if this process dies, its ssh session ends, the shell with it, and the lock is
/// released.
pub struct RemoteLock {
    transport: Transport,
    shell: Option<Shell>,
}

impl Drop for RemoteLock {
    fn drop(&mut self) {
        if let Some(mut shell) = self.shell.take() {
            if matches!(shell.run("exec 9>&-", true), Ok((0, _, _))) {
                give_back(&self.transport, shell);
            }
        }
    }
}

/// Takes an exclusive lock on `path` on the host (waiting for it), with `flock`.
///
/// While another holds it, the lock is tried again now and then rather than waited for on the
/// host: a shell waiting there would hold one of the sessions the host allows, and enough
/// waiters would leave none for the holder to finish with.
pub fn lock(transport: &Transport, path: &Path) -> std::io::Result<RemoteLock> {
    /// The status of a try that found the lock held.
    const HELD: i32 = 75;
    let quoted = shell::join(&[path.to_string_lossy()]);
    // Never through a link, never a file another user made; made owner-only (as
    // `private::open_lock`).
    let line = format!(
        "if [ -L {quoted} ]; then echo {quoted} is a symbolic link, not followed: remove it >&2; false; \
         else umask 077 && exec 9>>{quoted} && [ -O {quoted} ] && chmod 600 {quoted} \
         && {{ flock -xn 9; ao_f=$?; if [ $ao_f = 1 ]; then ao_f={HELD}; fi; (exit $ao_f); }}; fi"
    );
    let mut pause = std::time::Duration::from_millis(10);
    let (shell, output) = loop {
        let (shell, output) = run_kept(transport, &line, true)?;
        if output.status.code() != Some(HELD) {
            break (shell, output);
        }
        // Its descriptor 9 is open on the file: the shell is closed, not kept.
        drop(shell);
        std::thread::sleep(pause);
        pause = (pause * 2).min(LOCK_RETRY_MAX_PAUSE);
    };
    match (shell, output.status.success()) {
        (Some(shell), true) => Ok(RemoteLock {
            transport: transport.clone(),
            shell: Some(shell),
        }),
        // The shell may hold descriptor 9 open on the file: it is dropped, not kept.
        _ => Err(std::io::Error::other(format!(
            "locking {}{}: {}",
            path.display(),
            transport.on_host(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

/// The answer for a command whose shell went away: ssh's own status for a lost connection.
fn lost(transport: &Transport, why: &str) -> std::process::Output {
    use std::os::unix::process::ExitStatusExt;
    std::process::Output {
        status: std::process::ExitStatus::from_raw(TRANSPORT_FAILED_STATUS << 8),
        stdout: Vec::new(),
        stderr: format!(
            "the connection to host `{}` was lost: {why}",
            transport.host
        )
        .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_quotes_every_argument_and_fails_distinctly_without_its_folder() {
        let line = command_line(
            Some(Path::new("/srv/it's here")),
            "git",
            ["commit", "-m", "$(rm -rf /); `x` \"y\"\n"],
        );
        assert_eq!(
            line,
            "cd -- '/srv/it'\\''s here' 2>/dev/null || exit 125; \
             exec git commit -m '$(rm -rf /); `x` \"y\"\n'"
        );
        let output = Command::new("sh")
            .args([
                "-c",
                &command_line(None, "printf", ["%s|", "a b", "$HOME", "'"]),
            ])
            .output()
            .unwrap();
        assert_eq!(output.stdout, b"a b|$HOME|'|");
        let status = Command::new("sh")
            .args([
                "-c",
                &command_line(Some(Path::new("/nonexistent")), "true", [""; 0]),
            ])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(NO_SUCH_FOLDER_STATUS));
    }

    /// The "host" is this machine, reached through `sh -c`: the kept shell's framing, whatever
    /// a command prints.
    #[test]
    fn a_kept_shell_answers_each_command_exactly_and_survives_hostile_output() {
        let here = Transport {
            host: "here".into(),
            command: vec!["sh".into(), "-c".into()].into(),
        };
        let answer = run(
            &here,
            "printf 'a\\0b\\nAO-END-x 0\\n'; printf oops >&2; exit 3",
        )
        .unwrap();
        assert_eq!(answer.status.code(), Some(3));
        assert_eq!(answer.stdout, b"a\0b\nAO-END-x 0\n");
        assert_eq!(answer.stderr, b"oops");
        let answer = run(&here, &command_line(None, "printf", ["%s", "no newline"])).unwrap();
        assert_eq!(
            (
                answer.status.code(),
                answer.stdout.as_slice(),
                answer.stderr.as_slice()
            ),
            (Some(0), &b"no newline"[..], &b""[..])
        );
        let big = run(&here, "head -c 300000 /dev/zero").unwrap();
        assert_eq!(big.stdout.len(), 300_000);
        // A command that reads stdin gets nothing: the shell's own input is never its.
        let answer = run(&here, "cat; echo done").unwrap();
        assert_eq!(answer.stdout, b"done\n");
        let missing = run(
            &here,
            &command_line(Some(Path::new("/nonexistent")), "true", [""; 0]),
        )
        .unwrap();
        assert_eq!(missing.status.code(), Some(NO_SUCH_FOLDER_STATUS));
        // One kept shell served all of it.
        let kept = SHELLS
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k[0] == "sh")
            .count();
        assert!(kept >= 1);
    }

    /// Idle shells hold sessions the host bounds across processes: they are closed when this
    /// process opens another session there, and after a short while anyway.
    #[test]
    fn idle_shells_are_closed_for_a_new_session_and_when_idle_too_long() {
        // A key of its own: other tests use `sh`.
        let here = Transport {
            host: "here".into(),
            command: vec!["/bin/sh".into(), "-c".into()].into(),
        };
        let idle = || {
            SHELLS
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| k[0] == "/bin/sh")
                .count()
        };
        run(&here, "true").unwrap();
        assert_eq!(idle(), 1);
        let _command = here.command("true");
        assert_eq!(idle(), 0, "an idle shell outlived a new session");
        run(&here, "true").unwrap();
        assert_eq!(idle(), 1);
        let deadline = std::time::Instant::now() + IDLE_SHELL_LIFETIME * 5;
        while idle() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "an idle shell was kept past {IDLE_SHELL_LIFETIME:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// A lock held by another is tried again until it is free, never waited for on a shell
    /// that would hold a session meanwhile.
    #[test]
    fn a_remote_lock_held_by_another_is_taken_once_given_back() {
        let here = Transport {
            host: "here".into(),
            command: vec!["/usr/bin/env".into(), "sh".into(), "-c".into()].into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = lock(&here, &path).unwrap();
        let (taken_tx, taken) = std::sync::mpsc::channel();
        let waiter = {
            let (here, path) = (here.clone(), path.clone());
            std::thread::spawn(move || {
                let second = lock(&here, &path).unwrap();
                taken_tx.send(()).unwrap();
                drop(second);
            })
        };
        assert!(taken
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err());
        drop(held);
        taken
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the lock was never taken once given back");
        waiter.join().unwrap();
    }
}
