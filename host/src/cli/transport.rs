//! `ao-host transport`: the program at the head of the transport plugins get for another host
//! (see `ao_core::remote::wrapper`). Run by plugins, not by hand; it runs ssh and exits as ssh
//! did.

use std::{ffi::OsString, path::PathBuf, process::ExitCode, time::Duration};

use ao_core::remote::wrapper::{self, Invocation};
use clap::Args;

/// What the host put before ssh's argv.
#[derive(Debug, Args)]
pub struct TransportArgs {
    /// The host's name, for messages.
    #[arg(long)]
    host: String,
    /// The shared connection's socket.
    #[arg(long)]
    socket: PathBuf,
    /// Sessions the connection may carry at once (`hosts.H.max_sessions`).
    #[arg(long)]
    max_sessions: u32,
    /// How long to wait for the shared connection.
    #[arg(long)]
    connect_wait_ms: u64,
    /// Only make sure the shared connection is up (no command line).
    #[arg(long)]
    connect_only: bool,
    /// ssh's argv up to and including the destination, then the command line.
    #[arg(last = true, required = true)]
    argv: Vec<OsString>,
}

pub fn run(args: TransportArgs) -> ExitCode {
    let status = wrapper::run(Invocation {
        host: args.host,
        socket: args.socket,
        max_sessions: args.max_sessions,
        connect_patience: Duration::from_millis(args.connect_wait_ms),
        connect_only: args.connect_only,
        argv: args.argv,
    });
    ExitCode::from(u8::try_from(status).unwrap_or(u8::MAX))
}
