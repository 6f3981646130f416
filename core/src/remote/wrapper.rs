//! `ao-host transport`: the local program at the head of every [`Transport`] the host hands to
//! plugins, so that a line travels the same way whichever plugin (of whichever release) sends it.
//!
//! A plugin appends its command line to `Transport.command` as the last argument (0.1.6 plugins
//! do so by compiled-in code). This program takes that line, makes it safe for any login shell
//! ([`super::line`]), makes sure the host's shared connection is up ([`super::connection`]),
//! takes a session slot ([`super::slots`]), then runs ssh riding the connection with this
//! program's stdin, stdout and stderr, and exits as ssh did (same status, same signal).
//!
//! It waits for ssh rather than `exec`ing it because ssh closes every descriptor it did not
//! open: the slot's lock must be held by a process that lives exactly as long as ssh. ssh is
//! killed if this program dies first (`PR_SET_PDEATHSIG`), so a caller that kills it (a kept
//! shell closed, a deadline) ends the session too.
//!
//! ssh riding the connection never connects by itself (`ProxyCommand=false`): when the host
//! refuses the session ("Session open refused": sshd's `MaxSessions` lower than
//! `hosts.H.max_sessions`) or the master went away meanwhile, ssh would otherwise open a
//! connection of its own, past the one per host. Instead it fails before reaching anything,
//! and this program, which waited for it, makes sure of the connection and runs it again: the
//! command provably did not start on the host.
//!
//! [`Transport`]: ao_plugin_api::Transport

use std::{
    ffi::OsString,
    os::unix::{
        ffi::OsStrExt,
        process::{CommandExt, ExitStatusExt},
    },
    path::PathBuf,
    process::Command,
    time::Duration,
};

use ao_plugin_kit::remote::TRANSPORT_FAILED_STATUS;

use super::{connection::Connection, line, slots::Slot};

/// The name of the hidden subcommand.
pub const SUBCOMMAND: &str = "transport";
/// Its option that only makes sure the shared connection is up (no line, no session).
pub(crate) const CONNECT_ONLY: &str = "--connect-only";
/// What ssh says when the host refused to open a session on the shared connection, and when
/// it found no master and did not connect by itself (`ProxyCommand=false`): either way nothing
/// ran on the host.
const NOT_STARTED: [&[u8]; 3] = [
    b"Session open refused",
    b"kex_exchange_identification: Connection closed by remote host",
    b"Connection closed by UNKNOWN port 65535",
];
/// How long a refused session is asked for again (as long as a session slot is waited for:
/// a host whose sshd takes fewer sessions than `max_sessions` is as busy as a full house), and
/// the longest pause between two asks.
pub(crate) const REFUSAL_PATIENCE: Duration = super::slots::SLOT_PATIENCE;
pub(crate) const REFUSAL_MAX_PAUSE: Duration = Duration::from_millis(500);
/// The exit status when the line could not be sent at all: too long, or no session slot
/// freed in time (the message says which); nothing ran on the host.
pub(crate) const NOT_SENT_STATUS: i32 = 75;

/// What one run of the wrapper was told.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The host's name, for messages.
    pub host: String,
    /// The shared connection's socket.
    pub socket: PathBuf,
    pub max_sessions: u32,
    /// How long to wait for the shared connection to be made (by this or another process).
    pub connect_patience: Duration,
    /// Only make sure the shared connection is up: `argv` holds no line.
    pub connect_only: bool,
    /// ssh's argv up to and including the destination, then the line.
    pub argv: Vec<OsString>,
}

/// Runs ssh for `invocation`; the exit status to give (a signal that ended ssh ends this
/// process the same way).
pub fn run(invocation: Invocation) -> i32 {
    let fail = |status: i32, message: &str| {
        eprintln!("{message}");
        status
    };
    let (ssh, line) = match (invocation.connect_only, invocation.argv.split_last()) {
        (true, _) => (&invocation.argv[..], None),
        (false, Some((line, ssh))) => (ssh, Some(line)),
        (false, None) => return fail(NOT_SENT_STATUS, "ao-host transport: no command line given"),
    };
    let ssh: Vec<String> = ssh
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if ssh.is_empty() {
        return fail(NOT_SENT_STATUS, "ao-host transport: no ssh command given");
    }
    let command = match line
        .map(|line| line::login_safe(line.as_bytes()))
        .transpose()
    {
        Ok(command) => command,
        Err(e) => return fail(NOT_SENT_STATUS, &format!("host `{}`: {e}", invocation.host)),
    };
    if let Some(dir) = invocation.socket.parent() {
        if let Err(e) = ao_plugin_kit::private::create_dir(dir) {
            return fail(
                NOT_SENT_STATUS,
                &format!(
                    "host `{}`: cannot make the folder of its shared connection {}: {e}",
                    invocation.host,
                    dir.display()
                ),
            );
        }
    }
    let connection = Connection {
        ssh: &ssh,
        socket: &invocation.socket,
    };
    if let Err(said) = connection.establish(invocation.connect_patience) {
        return fail(TRANSPORT_FAILED_STATUS, said.trim_end());
    }
    let Some(command) = command else {
        return 0;
    };
    let _slot = match Slot::take(
        &invocation.socket,
        invocation.max_sessions,
        &invocation.host,
        super::slots::SLOT_PATIENCE,
    ) {
        Ok(slot) => slot,
        Err(message) => return fail(NOT_SENT_STATUS, &message),
    };
    let mut pause = Duration::from_millis(20);
    let mut refusals = 0;
    let started = std::time::Instant::now();
    let status = loop {
        if refusals > 0 {
            if let Err(said) = connection.establish(invocation.connect_patience) {
                return fail(TRANSPORT_FAILED_STATUS, said.trim_end());
            }
        }
        let (status, refused) = match run_ssh(&ssh, &command) {
            Ok(outcome) => outcome,
            Err(e) => {
                return fail(
                    TRANSPORT_FAILED_STATUS,
                    &format!("ao-host transport: cannot run {}: {e}", ssh[0]),
                )
            }
        };
        if !(refused && status.code() == Some(TRANSPORT_FAILED_STATUS)) {
            break status;
        }
        refusals += 1;
        if started.elapsed() > REFUSAL_PATIENCE {
            return fail(
                TRANSPORT_FAILED_STATUS,
                &format!(
                    "host `{}` refused {refusals} times in {} s to open a session on its connection (is sshd's MaxSessions there lower than hosts.{}.max_sessions, {}? then lower hosts.{}.max_sessions)",
                    invocation.host, REFUSAL_PATIENCE.as_secs(), invocation.host, invocation.max_sessions, invocation.host
                ),
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(REFUSAL_MAX_PAUSE);
    };
    if let Some(signal) = status.signal() {
        // SAFETY: resetting a disposition and signalling this very process.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
    status.code().unwrap_or(TRANSPORT_FAILED_STATUS)
}

/// Runs ssh once with this program's stdin and stdout; its stderr passes through, but for what
/// it says when the session did not start (see [`NOT_STARTED`]), which is only reported
/// (`true`).
fn run_ssh(ssh: &[String], command: &str) -> std::io::Result<(std::process::ExitStatus, bool)> {
    use std::io::{BufRead, Write};
    let mut ssh_command = Command::new(&ssh[0]);
    ssh_command
        .args(riding(&ssh[1..]))
        .arg(command)
        .stderr(std::process::Stdio::piped());
    // SAFETY: between fork and exec only prctl runs.
    unsafe {
        ssh_command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = ssh_command.spawn()?;
    let mut said = std::io::BufReader::new(child.stderr.take().expect("stderr was piped"));
    let mut refused = false;
    let mut line = Vec::new();
    let mut stderr = std::io::stderr().lock();
    while matches!(said.read_until(b'\n', &mut line), Ok(1..)) {
        if not_started(&line) {
            refused = true;
        } else {
            let _ = stderr.write_all(&line).and_then(|()| stderr.flush());
        }
        line.clear();
    }
    Ok((child.wait()?, refused))
}

/// Whether ssh's `stderr` says its session never started on the host (see [`NOT_STARTED`]).
pub(crate) fn not_started(stderr: &[u8]) -> bool {
    NOT_STARTED
        .iter()
        .any(|said| stderr.windows(said.len()).any(|w| w == *said))
}

/// ssh's arguments for a session on the shared connection: never a master of its own (one
/// that found none would stay behind for `ControlPersist`), never a connection of its own.
pub(crate) fn riding(args: &[String]) -> Vec<String> {
    let mut riding = ["-o", "ControlMaster=no", "-o", "ProxyCommand=false"]
        .map(String::from)
        .to_vec();
    riding.extend(args.iter().cloned());
    riding
}
