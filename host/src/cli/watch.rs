//! `ao-host watch [--once] [--webhook ADDR]`: watches the projects' pull requests, reacts, and
//! stores what listings show. One per data dir (a second one exits naming the first's pid;
//! `--once` then exits 0, as its poll is already done by the other); `--once` polls once and
//! exits, for cron; otherwise it polls every `watch.poll_secs` until
//! SIGINT or SIGTERM, finishing the poll in progress.

use std::{process::ExitCode, sync::Arc};

use anyhow::{Context, Result};
use ao_core::{
    lifecycle::Lifecycle,
    watch::{PluginForges, WatchLockError, Watcher, WatcherLock},
};
use clap::Args as ClapArgs;

use crate::{errln, outln};

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Polling is the source of truth; a webhook delivery only wakes a poll, so \
pointing the forge's webhook at --webhook ADDR makes reactions prompt without making them \
depend on it. Keep ADDR on loopback (127.0.0.1:PORT) behind a tunnel or proxy you trust: the \
scm plugin verifies each delivery's signature (its `webhook_secret` setting) and replays are \
refused."
)]
pub struct WatchArgs {
    /// Poll once, react, and exit (for cron; exit 1 if something could not be asked; exit 0 at
    /// once when another watcher already watches this data dir).
    #[arg(long, conflicts_with = "webhook")]
    pub once: bool,
    /// Also take webhook deliveries on ADDR (e.g. 127.0.0.1:8787); each verified one wakes a poll.
    #[arg(long, value_name = "ADDR")]
    pub webhook: Option<String>,
    /// With --once: print what the poll did as one JSON document.
    #[arg(long, requires = "once")]
    pub json: bool,
}

pub async fn run(lifecycle: Arc<Lifecycle>, args: WatchArgs) -> Result<ExitCode> {
    let config = lifecycle.config();
    if config
        .projects
        .values()
        .all(|project| project.scm.is_none())
    {
        anyhow::bail!(
            "no project in {} sets `scm:`, so there are no pull requests to watch; add e.g. `scm: github` to a project",
            config.path.as_ref().map_or_else(
                || "the built-in defaults (no config file)".to_string(),
                |path| path.display().to_string()
            )
        );
    }
    let watcher = Arc::new(Watcher::new(
        Arc::clone(&lifecycle),
        PluginForges::shared(Arc::clone(&lifecycle)),
    ));
    let _lock = match WatcherLock::acquire(watcher.dir()) {
        Ok(lock) => lock,
        // A cron run while `watch` or a dashboard watches has nothing to do: that one polls.
        Err(WatchLockError::Held { holder, .. }) if args.once => {
            errln!("ao-host watch: another watcher (pid {holder}) already watches this data dir; nothing to do");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e.into()),
    };
    if args.once {
        let report = watcher.poll().await;
        if args.json {
            outln!(
                "{}",
                serde_json::json!({
                    "delivered": report.delivered,
                    "notified": report.notified,
                    "problems": report.problems,
                })
            );
        } else {
            outln!(
                "polled: {} reaction(s) delivered, {} notification(s)",
                report.delivered,
                report.notified
            );
            for problem in &report.problems {
                errln!("ao-host watch: {problem}");
            }
        }
        return Ok(if report.problems.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let interrupt = super::on_interrupt("stopping the watcher after this poll", move || {
        let _ = stop.send(());
    });
    let (close_hooks, hooks_closed) = tokio::sync::oneshot::channel::<()>();
    let receiver = match &args.webhook {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!(
                    "--webhook {addr}: listening there (give ADDR as IP:PORT, e.g. 127.0.0.1:8787)"
                )
            })?;
            let bound = listener.local_addr().context("reading the bound address")?;
            // The first line on stdout is the address, for scripts that asked for port 0.
            outln!("http://{bound}/");
            errln!("taking webhook deliveries on http://{bound}/");
            Some(tokio::spawn(ao_dashboard::webhook::serve(
                Arc::clone(&watcher),
                listener,
                async {
                    let _ = hooks_closed.await;
                },
            )))
        }
        None => None,
    };
    errln!(
        "watching pull requests every {} s (Ctrl-C stops)",
        config.watch.poll_secs
    );
    watcher
        .run(async {
            let _ = stopped.await;
        })
        .await;
    let _ = close_hooks.send(());
    if let Some(receiver) = receiver {
        let _ = receiver.await;
    }
    interrupt.abort();
    Ok(ExitCode::SUCCESS)
}
