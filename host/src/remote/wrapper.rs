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

use ao_plugin_api::remote::TRANSPORT_FAILED_STATUS;

use super::{connection::Connection, line, slots::Slot};

/// The name of the hidden subcommand.
pub const SUBCOMMAND: &str = "transport";
/// Its option that only makes sure the shared connection is up (no line, no session).
pub const CONNECT_ONLY: &str = "--connect-only";
/// The exit status when the line could not be sent at all: too long, or no session slot
/// freed in time (the message says which); nothing ran on the host.
pub const NOT_SENT_STATUS: i32 = 75;

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
        if let Err(e) = ao_plugin_api::private::create_dir(dir) {
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
    let mut ssh_command = Command::new(&ssh[0]);
    ssh_command.args(riding(&ssh[1..])).arg(command);
    // SAFETY: between fork and exec only prctl runs.
    unsafe {
        ssh_command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let status = match ssh_command.status() {
        Ok(status) => status,
        Err(e) => {
            return fail(
                TRANSPORT_FAILED_STATUS,
                &format!("ao-host transport: cannot run {}: {e}", ssh[0]),
            )
        }
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

/// ssh's arguments for a session on the shared connection: never a master of its own (one
/// that found none would stay behind for `ControlPersist`).
pub fn riding(args: &[String]) -> Vec<String> {
    let mut riding = vec!["-o".to_string(), "ControlMaster=no".to_string()];
    riding.extend(args.iter().cloned());
    riding
}
