//! `ao-host dashboard`: serves the web dashboard until Ctrl-C or SIGTERM.

use std::{
    net::{IpAddr, SocketAddr},
    process::ExitCode,
    sync::Arc,
};

use anyhow::{Context, Result};
use ao_core::lifecycle::Lifecycle;
use ao_dashboard::{access::TokenSource, Access};
use clap::Args as ClapArgs;

use crate::{errln, outln};

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Every API request needs the token, as `Authorization: Bearer TOKEN`: \
$AO_DASHBOARD_TOKEN, else one generated into <data_dir>/dashboard.token (mode 0600) and printed \
in the page's link when made. In a browser, open the page as http://HOST:PORT/#token=TOKEN. \
On loopback, --no-token serves without one: only for a machine no one else uses (every local \
user can connect to a loopback port, and the agents run as you)."
)]
pub struct DashboardArgs {
    /// Address or host name to listen on (`0.0.0.0` for every interface).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: String,
    /// Serve the API without a token: loopback only, for a single-user machine.
    #[arg(long)]
    pub no_token: bool,
    /// Port to listen on (default: `port:` in the config; 0 picks a free one).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
}

/// The address `--bind` names: an IP address, or a host name (`localhost`) resolved to its
/// first address.
async fn resolve(bind: &str, port: u16) -> Result<SocketAddr> {
    if let Ok(ip) = bind.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let trimmed = bind.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((bind, port))
        .await
        .ok()
        .and_then(|mut found| found.next())
        .with_context(|| {
            format!("--bind {bind}: not an IP address, and no such host name; e.g. --bind 127.0.0.1 or --bind 0.0.0.0")
        })
}

/// `text` with everything but unreserved URL characters percent-encoded, for a link's fragment.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn run(lifecycle: Arc<Lifecycle>, args: DashboardArgs) -> Result<ExitCode> {
    let port = args.port.unwrap_or(lifecycle.config().port);
    let wanted = resolve(&args.bind, port).await?;
    let (access, token) = Access::for_bind(
        wanted,
        std::env::var(ao_dashboard::access::TOKEN_ENV).ok(),
        args.no_token,
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
        TokenSource::NotNeeded => errln!("serving without a token (--no-token): every user of this machine can drive your agents"),
        TokenSource::Environment => errln!("API requests need the token in $AO_DASHBOARD_TOKEN (`Authorization: Bearer …`); open the page as {url}#token=TOKEN (percent-encode any `%`, `+` or `&` in it)"),
        TokenSource::Generated(path) => {
            let secret = access.token().unwrap_or_default();
            errln!("generated the dashboard token into {} (shown this once): {secret}", path.display());
            errln!("open {url}#token={}", percent_encode(secret));
        }
        TokenSource::File(path) => errln!("API requests need the token in {path} (`Authorization: Bearer …`); open the page as {url}#token=… with it (`echo {url}#token=$(cat {path})`)", path = path.display()),
    }
    errln!("dashboard on {url} (Ctrl-C stops it)");
    // The first Ctrl-C or SIGTERM stops it; a second one quits at once.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = super::on_interrupt(
        "stopping the dashboard: spawns in progress undo themselves, other operations finish first",
        move || {
            let _ = stop.send(());
        },
    );
    let served = ao_dashboard::serve(lifecycle, listener, access, async {
        let _ = stopped.await;
    })
    .await;
    watcher.abort();
    served.context("serving the dashboard")?;
    Ok(ExitCode::SUCCESS)
}
