//! Running the external programs plugins drive (`tmux`, `git`, …) with argv only, never a shell.
//!
//! Shared here so every plugin reports a missing program and a failed command the same way:
//! the program, the arguments, what it printed, and how to install it. A [`Program`] made while
//! a plugin instance for another host is built runs there, over its transport (see
//! [`crate::remote`]): the same calls, the same errors, with the host named.

use std::{
    ffi::OsStr,
    io::{Read, Write},
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use ao_plugin_api::{DoctorCheck, PluginError, PluginResult, Transport};

use crate::{remote, remote::TransportExt as _};

/// How long [`Program::version_check`] lets `--version` take: a CLI that hangs there (waiting
/// for a login, an update) is reported rather than waited on.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long output still arriving after the run is waited for. Only a process that left the
/// group (a daemon that called `setsid`) can hold the pipes open longer.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Where `program` would be started from: the path itself when it holds a `/`, else the first
/// executable file of that name in a `$PATH` folder. `None` when there is none.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let executable = |path: &Path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        // An empty entry means the current folder, as for the shell.
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            }
        })
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

/// An external program and the advice to give when it is missing.
#[derive(Debug, Clone)]
pub struct Program {
    name: String,
    install_hint: String,
    /// The machine it runs on, when not this one (the current transport when it was made).
    remote: Option<Transport>,
}

impl Program {
    /// `install_hint` completes "install it: …", e.g. "apt-get install tmux".
    pub fn new(name: impl Into<String>, install_hint: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            install_hint: install_hint.into(),
            remote: remote::current(),
        }
    }

    /// " on host `NAME`" when it runs on another machine, else nothing: for messages.
    fn place(&self) -> String {
        self.remote
            .as_ref()
            .map(Transport::on_host)
            .unwrap_or_default()
    }

    /// An agent CLI installed from npm: `command` as configured under `plugins.config.<plugin>`,
    /// with the install hint operators need when it is missing.
    pub fn npm_cli(command: &str, package: &str, plugin: &str) -> Self {
        Self::new(
            command,
            format!(
                "`npm install -g {package}`, or set plugins.config.{plugin}.command to where it is"
            ),
        )
    }

    /// The program's name as given (what messages call it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` for this program, for callers that need to set it up further (on another
    /// machine, it is the transport's: set no environment on it, pass that as arguments).
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command_in(None, args)
    }

    /// [`Program::command`], run in `cwd` when given.
    fn command_in<I, S>(&self, cwd: Option<&Path>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        if let Some(transport) = &self.remote {
            return transport.command(&remote::command_line(cwd, &self.name, args));
        }
        let mut command = Command::new(&self.name);
        command.args(args);
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        command
    }

    /// Runs the program to completion and returns its stdout; a non-zero exit is an error that
    /// quotes stderr.
    pub fn run<I, S>(&self, cwd: Option<&Path>, args: I) -> PluginResult<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_with_input(cwd, args, None)
    }

    /// Like [`Program::run`], feeding `input` on stdin (how text reaches a program without ever
    /// being part of a command line).
    pub fn run_with_input<I, S>(
        &self,
        cwd: Option<&Path>,
        args: I,
        input: Option<&[u8]>,
    ) -> PluginResult<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let output = self.output(cwd, args, input)?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(self.failure(&output))
        }
    }

    /// Runs the program and hands back the raw output whatever the exit status, for callers
    /// where a non-zero exit is an answer ("no such session") rather than a failure.
    pub fn output<I, S>(
        &self,
        cwd: Option<&Path>,
        args: I,
        input: Option<&[u8]>,
    ) -> PluginResult<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        if let (Some(transport), None) = (&self.remote, input) {
            // On a shell kept open there: most of a command's cost over ssh is starting one.
            let line = remote::command_line(cwd, &self.name, args);
            return remote::run(transport, &line).map_err(|e| self.spawn_error(e));
        }
        let mut command = self.command_in(cwd, args);
        command
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| self.start_error(cwd, e))?;
        if let Some(bytes) = input {
            let mut stdin = child.stdin.take().expect("stdin was piped");
            stdin.write_all(bytes).map_err(|e| {
                PluginError::failed(format!("writing to `{}`'s stdin: {e}", self.name))
            })?;
        }
        child
            .wait_with_output()
            .map_err(|e| PluginError::failed(format!("waiting for `{}`: {e}", self.name)))
    }

    /// Runs the program with a deadline, in a process group of its own, and returns its output
    /// whatever the exit status (stdin is empty).
    ///
    /// Past `timeout` the whole group is killed (SIGKILL): the program and every process of its
    /// group, so a hung `npm ci` does not keep running after the caller gave up. After a
    /// normal exit the group is killed as well, which stops background jobs the program left
    /// behind (`server &`). Only a process that left the group on purpose (`setsid`, a daemon)
    /// survives, in both cases; the timeout message says "its process group" for that reason. Output is read while the program
    /// runs, so a chatty program cannot block on a full pipe.
    pub fn run_with_deadline<I, S>(
        &self,
        cwd: Option<&Path>,
        args: I,
        timeout: Duration,
    ) -> PluginResult<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = match &self.remote {
            // Stopping ssh here would leave the program running there: `timeout` there stops it
            // (where the machine has one).
            Some(transport) => {
                let args: Vec<String> = args
                    .into_iter()
                    .map(|a| a.as_ref().to_string_lossy().into_owned())
                    .collect();
                let seconds = timeout.as_secs_f64().max(0.001);
                let bounded = remote::command_line(
                    cwd,
                    "timeout",
                    ["-k", "2", &format!("{seconds:.3}"), &self.name]
                        .into_iter()
                        .map(str::to_string)
                        .chain(args.iter().cloned()),
                );
                let plain = remote::command_line(cwd, &self.name, &args);
                transport.command(&format!(
                    "if command -v timeout >/dev/null 2>&1; then {bounded}; else {plain}; fi"
                ))
            }
            None => self.command_in(cwd, args),
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().map_err(|e| self.start_error(cwd, e))?;
        let stdout = Drain::start(child.stdout.take());
        let stderr = Drain::start(child.stderr.take());
        let deadline = Instant::now() + timeout;
        let waited = self.wait_until(&mut child, deadline);
        // The group id is the leader's pid, which stays reserved while any member lives.
        // SAFETY: killpg only sends a signal; a group with no members left gives ESRCH.
        unsafe { libc::killpg(child.id() as libc::pid_t, libc::SIGKILL) };
        let status = match waited {
            Ok(Some(status)) => status,
            Ok(None) => {
                let _ = child.wait();
                return Err(PluginError::failed(format!(
                    "`{}` did not finish within {} ms; it and the processes of its process group were stopped",
                    self.name,
                    timeout.as_millis()
                )));
            }
            Err(error) => {
                let _ = child.wait();
                return Err(error);
            }
        };
        let grace = Instant::now() + DRAIN_GRACE;
        Ok(Output {
            status,
            stdout: stdout.finish(grace),
            stderr: stderr.finish(grace),
        })
    }

    /// The exit status once the child exits, or `None` at the deadline.
    fn wait_until(
        &self,
        child: &mut std::process::Child,
        deadline: Instant,
    ) -> PluginResult<Option<std::process::ExitStatus>> {
        let mut pause = Duration::from_millis(1);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(Some(status)),
                Ok(None) => {}
                Err(e) => {
                    return Err(PluginError::failed(format!(
                        "waiting for `{}`: {e}",
                        self.name
                    )))
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// One `ao-host doctor` line for this program: where it was found and what `args` (its
    /// version flag) printed, or how to install it.
    pub fn version_check(&self, args: &[&str]) -> DoctorCheck {
        if let Some(transport) = &self.remote {
            return self.remote_version_check(transport, args);
        }
        let Some(path) = find_on_path(&self.name) else {
            return DoctorCheck::failed(&self.name, self.missing_message());
        };
        let version = self
            .run_with_deadline(None, args, VERSION_TIMEOUT)
            .and_then(|output| {
                if output.status.success() {
                    Ok(first_line(&output))
                } else {
                    Err(self.failure(&output))
                }
            });
        match version {
            Ok(version) => {
                DoctorCheck::passed(&self.name, format!("{version} ({})", path.display()))
            }
            Err(error) => DoctorCheck::failed(
                &self.name,
                format!(
                    "{} is there but `{} {}` did not work: {error}; reinstall it ({})",
                    path.display(),
                    self.name,
                    args.join(" "),
                    self.install_hint
                ),
            ),
        }
    }

    /// [`Program::version_check`] on another machine: where the program is there (`command -v`)
    /// and what it printed, in one round trip.
    fn remote_version_check(&self, transport: &Transport, args: &[&str]) -> DoctorCheck {
        /// Marks where the answer starts: a login shell may print a banner of its own first.
        const MARK: &str = "AO-VERSION-CHECK";
        let what = self.name.clone();
        let line = format!(
            "printf '\\n{MARK}\\n'; command -v {} || exit {}; {}",
            crate::shell::join(&[&self.name]),
            remote::NOT_FOUND_STATUS,
            remote::command_line(None, &self.name, args)
        );
        let mut command = transport.command(&line);
        command.stdin(Stdio::null());
        let output = match command.output() {
            Ok(output) => output,
            Err(e) => return DoctorCheck::failed(what, self.spawn_error(e).to_string()),
        };
        if output.status.success() {
            let text = String::from_utf8_lossy(&output.stdout);
            let answer = text
                .rsplit_once(&format!("\n{MARK}\n"))
                .map_or(&*text, |(_, answer)| answer);
            let mut lines = answer.lines().map(str::trim).filter(|l| !l.is_empty());
            let path = lines.next().unwrap_or_default().to_string();
            let version = lines.next().unwrap_or("no version printed").to_string();
            return DoctorCheck::passed(what, format!("{version} ({path}{})", self.place()));
        }
        DoctorCheck::failed(what, self.failure(&output).to_string())
    }

    /// The error for a program that could not be started.
    pub fn spawn_error(&self, error: std::io::Error) -> PluginError {
        if let Some(transport) = &self.remote {
            return PluginError::unavailable(format!(
                "cannot start `{}` to reach host `{}`: {error}",
                transport
                    .command
                    .first()
                    .map(|a| a.as_str())
                    .unwrap_or("ssh"),
                transport.host
            ));
        }
        if error.kind() == std::io::ErrorKind::NotFound {
            PluginError::unavailable(self.missing_message())
        } else {
            PluginError::failed(format!("cannot run `{}`: {error}", self.name))
        }
    }

    /// [`Program::spawn_error`], except that a missing working folder is named as such: the OS
    /// reports it as "not found" too, which would otherwise read as a missing program.
    fn start_error(&self, cwd: Option<&Path>, error: std::io::Error) -> PluginError {
        match cwd {
            Some(dir)
                if self.remote.is_none()
                    && error.kind() == std::io::ErrorKind::NotFound
                    && !dir.is_dir() =>
            {
                PluginError::not_found(format!(
                    "cannot run `{}` in {}: no such folder",
                    self.name,
                    dir.display()
                ))
            }
            _ => self.spawn_error(error),
        }
    }

    /// The error for a run that failed because of the machine rather than the program, if it
    /// did: on another machine, the connection (ssh's own status) never made or lost during
    /// `during`, the program missing there, its working folder missing there; anywhere, a full
    /// disk. Callers that read a failed run's output themselves ask this first, so that
    /// "not a git repository" is never said of a host without git.
    pub fn host_failure(&self, output: &Output, during: &str) -> Option<PluginError> {
        if output.status.success() {
            return None;
        }
        if let Some(lost) = self.lost_connection(output, during) {
            return Some(lost);
        }
        if disk_full(&output.stderr) {
            return Some(PluginError::failed(format!(
                "disk full{} during {during}: {}",
                self.place(),
                last_line(&output.stderr)
            )));
        }
        match (&self.remote, output.status.code()) {
            (Some(_), Some(remote::NOT_FOUND_STATUS)) => {
                Some(PluginError::unavailable(self.missing_message()))
            }
            (Some(_), Some(remote::NO_SUCH_FOLDER_STATUS)) => {
                Some(PluginError::not_found(format!(
                    "cannot run `{}`{}: its working folder does not exist there",
                    self.name,
                    self.place()
                )))
            }
            _ => None,
        }
    }

    /// The error for a run on another machine that ssh itself ended (its status 255): the host
    /// never answered, or the connection was lost during `during`. For a shell's run of an
    /// operator's command line, where the other statuses are that command's own.
    pub fn lost_connection(&self, output: &Output, during: &str) -> Option<PluginError> {
        let transport = self.remote.as_ref()?;
        if output.status.code() != Some(remote::TRANSPORT_FAILED_STATUS) {
            return None;
        }
        let said = last_line(&output.stderr);
        Some(PluginError::unavailable(if never_connected(&said) {
            transport.failure_message(&output.stderr)
        } else {
            let lost = format!(
                "the connection to host `{}` was lost during {during}",
                transport.host
            );
            match said.is_empty() {
                true => lost,
                false => format!("{lost}: {said}"),
            }
        }))
    }

    fn missing_message(&self) -> String {
        let place = match (&self.remote, self.name.contains('/')) {
            (Some(transport), _) => transport.on_host(),
            (None, true) => String::new(),
            (None, false) => " on PATH".to_string(),
        };
        format!(
            "`{}` not found{place}: install it ({})",
            self.name, self.install_hint
        )
    }

    /// The error for a run that exited non-zero. What the machine did rather than the program
    /// is told apart (see [`Program::host_failure`]).
    pub fn failure(&self, output: &Output) -> PluginError {
        if let Some(error) = self.host_failure(output, &format!("`{}`", self.name)) {
            return error;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let detail = stderr.trim();
        let detail = if detail.is_empty() {
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        } else {
            detail.to_string()
        };
        PluginError::failed(format!(
            "`{}`{} failed ({}): {detail}",
            self.name,
            self.place(),
            output.status
        ))
    }
}

/// What ssh says when it never reached the host (as opposed to losing it part-way).
fn never_connected(said: &str) -> bool {
    [
        "Connection refused",
        "Could not resolve",
        "timed out",
        "No route to host",
        "Network is unreachable",
        "Permission denied",
        "Host key verification failed",
    ]
    .iter()
    .any(|sign| said.contains(sign))
}

/// Whether a failed program's stderr says the disk (or the user's quota) is full: the C
/// library's words for `ENOSPC` and `EDQUOT`, which every program prints through `strerror`.
pub fn disk_full(stderr: &[u8]) -> bool {
    let said = String::from_utf8_lossy(stderr);
    said.contains("No space left on device") || said.contains("Disk quota exceeded")
}

/// The last non-empty line of `bytes`, trimmed (empty when there is none).
pub(crate) fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string()
}

/// The first non-empty line a program printed, stdout first.
fn first_line(output: &Output) -> String {
    [&output.stdout, &output.stderr]
        .into_iter()
        .flat_map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(|line| line.trim().to_string())
                .collect::<Vec<_>>()
        })
        .find(|line| !line.is_empty())
        .unwrap_or_else(|| "no version printed".to_string())
}

/// A pipe read to its end on a thread of its own, into a buffer the caller can take at any time.
struct Drain {
    buffer: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl Drain {
    fn start(source: Option<impl Read + Send + 'static>) -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let thread = source.map(|mut source| {
            let buffer = Arc::clone(&buffer);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n @ 1..) = source.read(&mut chunk) {
                    if let Ok(mut buffer) = buffer.lock() {
                        buffer.extend_from_slice(&chunk[..n]);
                    }
                }
            })
        });
        Self { buffer, thread }
    }

    /// What was read, once the pipe is closed or `grace` passes (the reader is then left to
    /// finish on its own).
    fn finish(self, grace: Instant) -> Vec<u8> {
        if let Some(thread) = self.thread {
            while !thread.is_finished() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(2));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *buffer)
    }
}

/// Stops every process of process group `pgid`: SIGTERM, then SIGKILL for what is still running
/// after `grace`. Returns whether the group is gone.
///
/// For a runtime's `destroy`: closing a terminal (tmux `kill-session`) only sends SIGHUP, which
/// some agents ignore and live on, unseen. The group id is its leader's pid, which the kernel
/// does not reuse while any member lives, so this never signals a stranger.
///
/// In a plugin instance for another host, the group is that host's, signalled there.
pub fn stop_process_group(pgid: u32, grace: Duration) -> bool {
    let Ok(group) = libc::pid_t::try_from(pgid) else {
        return true;
    };
    if group <= 1 {
        return true;
    }
    if let Some(transport) = remote::current() {
        return stop_remote_process_group(&transport, pgid, grace);
    }
    // SAFETY: killpg only sends a signal; a group with no members left gives ESRCH.
    unsafe { libc::killpg(group, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while process_group_alive(pgid) {
        if Instant::now() >= deadline {
            // SAFETY: as above.
            unsafe { libc::killpg(group, libc::SIGKILL) };
            std::thread::sleep(Duration::from_millis(20));
            return !process_group_alive(pgid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// [`stop_process_group`] on another host: the same steps, as one script run there.
fn stop_remote_process_group(transport: &Transport, pgid: u32, grace: Duration) -> bool {
    const SCRIPT: &str = "kill -TERM -- -\"$1\" 2>/dev/null || exit 0; i=0; \
        while kill -0 -- -\"$1\" 2>/dev/null; do \
        if [ \"$i\" -ge \"$2\" ]; then kill -KILL -- -\"$1\" 2>/dev/null; sleep 0.1; \
        kill -0 -- -\"$1\" 2>/dev/null && exit 1; exit 0; fi; \
        i=$((i + 1)); sleep 0.05; done";
    let polls = (grace.as_millis() / 50).to_string();
    let line = crate::shell::join(&["sh", "-c", SCRIPT, "sh", &pgid.to_string(), &polls]);
    let mut command = transport.command(&line);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command.status().is_ok_and(|status| status.success())
}

/// Whether any process of group `pgid` still runs. Zombies do not count: where PID 1 does not
/// reap orphans (some containers), a killed process stays a zombie and still answers
/// `kill(-pgid, 0)`; `/proc` tells them apart where there is one.
pub fn process_group_alive(pgid: u32) -> bool {
    let Ok(group) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the group exists.
    if unsafe { libc::kill(-group, 0) } == -1 {
        return std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    let pgid = pgid.to_string();
    entries.filter_map(Result::ok).any(|entry| {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid pgrp …; comm may hold spaces, so split after its `)`.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ao_plugin_api::PluginErrorKind;

    #[test]
    fn a_missing_program_is_unavailable_with_the_install_hint() {
        let program = Program::new("ao-no-such-program-xyz", "apt-get install xyz");
        let err = program.run(None, ["--version"]).unwrap_err();
        assert_eq!(err.kind, PluginErrorKind::Unavailable);
        assert_eq!(
            err.message(),
            "`ao-no-such-program-xyz` not found on PATH: install it (apt-get install xyz)"
        );
    }

    #[test]
    fn a_failing_program_reports_its_stderr_and_input_reaches_stdin() {
        let sh = Program::new("sh", "a POSIX shell");
        let err = sh.run(None, ["-c", "echo nope >&2; exit 4"]).unwrap_err();
        assert_eq!(err.kind, PluginErrorKind::Failed);
        assert!(err.message().contains("nope"), "{err}");
        let echoed = sh
            .run_with_input(None, ["-c", "cat"], Some("a\n$(b)\n".as_bytes()))
            .unwrap();
        assert_eq!(echoed, "a\n$(b)\n");
    }

    #[test]
    fn a_process_group_that_ignores_sigterm_is_killed_after_the_grace() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "trap '' TERM HUP; sleep 30 & sleep 30"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id();
        std::thread::sleep(Duration::from_millis(200));
        assert!(process_group_alive(pgid));
        let started = Instant::now();
        assert!(stop_process_group(pgid, Duration::from_millis(300)));
        assert!(started.elapsed() >= Duration::from_millis(300));
        let _ = child.wait();
        assert!(!process_group_alive(pgid));
        // Gone already: nothing to wait for.
        let started = Instant::now();
        assert!(stop_process_group(pgid, Duration::from_secs(5)));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn what_the_host_did_is_told_apart_from_what_the_program_did() {
        use std::os::unix::process::ExitStatusExt;
        let ended = |code: i32, stderr: &str| Output {
            status: std::process::ExitStatus::from_raw(code << 8),
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        };
        let mut git = Program::new("git", "apt-get install git");
        git.remote = Some(Transport {
            host: "box".into(),
            command: vec!["ssh".into()].into(),
        });
        let cases = [
            (
                ended(255, "Connection to 10.0.0.2 closed by remote host."),
                "the connection to host `box` was lost during post_create: Connection to 10.0.0.2 closed by remote host.",
            ),
            (
                ended(255, ""),
                "the connection to host `box` was lost during post_create",
            ),
            (
                ended(255, "ssh: connect to host 10.0.0.2 port 22: Connection refused"),
                "host `box` did not answer: ssh: connect to host 10.0.0.2 port 22: Connection refused",
            ),
            (
                ended(127, "sh: 1: exec: git: not found"),
                "`git` not found on host `box`: install it (apt-get install git)",
            ),
            (
                ended(128, "fatal: unable to write new index file: No space left on device"),
                "disk full on host `box` during post_create: fatal: unable to write new index file: No space left on device",
            ),
        ];
        for (output, said) in cases {
            let error = git.host_failure(&output, "post_create").unwrap();
            assert_eq!(error.message(), said);
        }
        let own = ended(128, "fatal: not a git repository");
        assert!(git.host_failure(&own, "post_create").is_none());
        assert!(git.lost_connection(&ended(127, ""), "x").is_none());
        git.remote = None;
        assert!(git.lost_connection(&ended(255, ""), "x").is_none());
    }

    #[test]
    fn a_run_past_its_deadline_is_stopped_with_everything_it_started() {
        let dir = std::env::temp_dir().join(format!("ao-deadline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sh = Program::new("sh", "a POSIX shell");
        let started = Instant::now();
        let err = sh
            .run_with_deadline(
                Some(&dir),
                ["-c", "echo $$ > group; sleep 30 & sleep 30"],
                Duration::from_millis(300),
            )
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(err.kind, PluginErrorKind::Failed);
        assert_eq!(
            err.message(),
            "`sh` did not finish within 300 ms; it and the processes of its process group were stopped"
        );
        let pgid: libc::pid_t = std::fs::read_to_string(dir.join("group"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while process_group_alive(pgid as u32) {
            assert!(Instant::now() < deadline, "group {pgid} survived");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_finished_run_returns_its_output_and_leaves_no_background_job() {
        let dir = std::env::temp_dir().join(format!("ao-leftover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sh = Program::new("sh", "a POSIX shell");
        let output = sh
            .run_with_deadline(
                Some(&dir),
                [
                    "-c",
                    "echo $$ > group; sleep 30 >/dev/null 2>&1 & echo out; echo err >&2; exit 3",
                ],
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
        let pgid: libc::pid_t = std::fs::read_to_string(dir.join("group"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while process_group_alive(pgid as u32) {
            assert!(
                Instant::now() < deadline,
                "background job of {pgid} survived"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_missing_working_folder_is_not_reported_as_a_missing_program() {
        let sh = Program::new("sh", "a POSIX shell");
        let err = sh
            .run_with_deadline(
                Some(Path::new("/nonexistent/ao-folder")),
                ["-c", "true"],
                Duration::from_secs(5),
            )
            .unwrap_err();
        assert_eq!(err.kind, PluginErrorKind::NotFound, "{err}");
        assert!(err.message().contains("no such folder"), "{err}");
    }

    #[test]
    fn programs_are_found_on_path_or_by_their_path_and_checked() {
        let sh = find_on_path("sh").expect("sh on PATH");
        assert!(sh.is_absolute() || sh.starts_with("."), "{}", sh.display());
        assert_eq!(find_on_path(&sh.display().to_string()), Some(sh));
        assert_eq!(find_on_path("ao-no-such-program-xyz"), None);
        assert_eq!(find_on_path("/nonexistent/ao"), None);

        let check = Program::new("sh", "a POSIX shell").version_check(&["-c", "echo 1.2.3"]);
        assert!(check.ok, "{check:?}");
        assert!(check.detail.starts_with("1.2.3 ("), "{check:?}");
        let check = Program::new("ao-no-such-program-xyz", "apt-get install xyz")
            .version_check(&["--version"]);
        assert!(!check.ok);
        assert_eq!(
            check.detail,
            "`ao-no-such-program-xyz` not found on PATH: install it (apt-get install xyz)"
        );
        let check = Program::new("sh", "a POSIX shell").version_check(&["-c", "exit 9"]);
        assert!(!check.ok);
        assert!(check.detail.contains("did not work"), "{check:?}");
    }
}
