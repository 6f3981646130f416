//! `ao-host dashboard`: serves the web dashboard until Ctrl-C or SIGTERM.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::ExitCode,
    sync::Arc,
};

use anyhow::{Context, Result};
use ao_host::{
    dashboard::{self, access::TokenSource, Access},
    lifecycle::Lifecycle,
};
use clap::Args as ClapArgs;
use tokio::signal::unix::{signal, SignalKind};

use crate::{errln, outln};

#[derive(Debug, ClapArgs)]
pub struct DashboardArgs {
    /// Address to listen on. Anything but loopback requires the token (see `ao-host dashboard
    /// --help`).
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// Port to listen on (default: `port:` in the config; 0 picks a free one).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
}

pub async fn run(lifecycle: Arc<Lifecycle>, args: DashboardArgs) -> Result<ExitCode> {
    let port = args.port.unwrap_or(lifecycle.config().port);
    let wanted = SocketAddr::new(args.bind, port);
    let (access, token) = Access::for_bind(
        wanted,
        std::env::var(dashboard::access::TOKEN_ENV).ok(),
        lifecycle.store().data_dir(),
    )
    .context("setting up the dashboard's token")?;
    let listener = tokio::net::TcpListener::bind(wanted)
        .await
        .with_context(|| {
            format!("listening on {wanted} (another program may use that port; choose one with --port, or 0 for any free port)")
        })?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let host = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let url = format!("http://{host}:{}/", bound.port());
    // The first line on stdout is the address, for scripts that started it with --port 0.
    outln!("{url}");
    match &token {
        TokenSource::NotNeeded => {}
        TokenSource::Environment => errln!("API requests need the token in $AO_DASHBOARD_TOKEN (`Authorization: Bearer …`); open the page as {url}#token=…"),
        TokenSource::Generated(path) => {
            let secret = access.token().unwrap_or_default();
            errln!("generated the dashboard token into {} (shown this once): {secret}", path.display());
            errln!("open {url}#token={secret}");
        }
        TokenSource::File(path) => errln!("API requests need the token in {} (`Authorization: Bearer …`); open the page as {url}#token=…", path.display()),
    }
    errln!("dashboard on {url} (Ctrl-C stops it)");
    let stopped = async {
        let mut terminate = signal(SignalKind::terminate()).ok();
        match terminate.as_mut() {
            Some(stream) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = stream.recv() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        errln!("ao-host: stopping the dashboard: spawns in progress undo themselves, other operations finish first");
    };
    dashboard::serve(lifecycle, listener, access, stopped)
        .await
        .context("serving the dashboard")?;
    Ok(ExitCode::SUCCESS)
}
