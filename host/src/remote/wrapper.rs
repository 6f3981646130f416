//! `ao-host transport`: the local program at the head of every [`Transport`] the host hands to
//! plugins, so that a line travels the same way whichever plugin (of whichever release) sends it.
//!
//! A plugin appends its command line to `Transport.command` as the last argument (0.1.6 plugins
//! do so by compiled-in code). This program takes that line, makes it safe for any login shell
//! ([`super::line`]), makes sure the host's shared connection is up ([`super::connection`]),
//! takes a session slot ([`super::slots`]), then `exec`s ssh riding the connection: stdin,
//! stdout, stderr and the exit status are ssh's own, no extra process stays, and the slot is
//! held by ssh for as long as it runs.
//!
//! [`Transport`]: ao_plugin_api::Transport

use std::{
    ffi::OsString,
    os::unix::{ffi::OsStrExt, process::CommandExt},
    path::PathBuf,
    process::Command,
    time::Duration,
};

use ao_plugin_api::remote::TRANSPORT_FAILED_STATUS;

use super::{connection::Connection, line, slots::Slot};

/// The name of the hidden subcommand.
pub const SUBCOMMAND: &str = "transport";
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
    /// ssh's argv up to and including the destination, then the line.
    pub argv: Vec<OsString>,
}

/// Runs ssh for `invocation`; returns only when it could not (with the exit status to give).
pub fn exec(invocation: Invocation) -> i32 {
    let fail = |status: i32, message: &str| {
        eprintln!("{message}");
        status
    };
    let Some((line, ssh)) = invocation.argv.split_last() else {
        return fail(NOT_SENT_STATUS, "ao-host transport: no command line given");
    };
    let ssh: Vec<String> = ssh
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if ssh.is_empty() {
        return fail(NOT_SENT_STATUS, "ao-host transport: no ssh command given");
    }
    let command = match line::login_safe(line.as_bytes()) {
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
    let slot = match Slot::take(
        &invocation.socket,
        invocation.max_sessions,
        &invocation.host,
        super::slots::SLOT_PATIENCE,
    ) {
        Ok(slot) => slot,
        Err(message) => return fail(NOT_SENT_STATUS, &message),
    };
    if let Err(e) = slot.hand_over_on_exec() {
        return fail(NOT_SENT_STATUS, &format!("ao-host transport: {e}"));
    }
    let error = Command::new(&ssh[0])
        .args(riding(&ssh[1..]))
        .arg(command)
        .exec();
    fail(
        TRANSPORT_FAILED_STATUS,
        &format!("ao-host transport: cannot run {}: {error}", ssh[0]),
    )
}

/// ssh's arguments for a session on the shared connection: never a master of its own (one
/// that found none would stay behind, holding its session slot, for `ControlPersist`).
pub fn riding(args: &[String]) -> Vec<String> {
    let mut riding = vec!["-o".to_string(), "ControlMaster=no".to_string()];
    riding.extend(args.iter().cloned());
    riding
}
