//! The web dashboard: a live page of every session, and the JSON API it and scripts use.
//!
//! Layers: a front end, above `ao-core` (its lifecycle and live feed); only the `ao-host`
//! binary depends on it (`ao-host dashboard` serves it), and `ao-core` never does.
//!
//! It is a front end like the CLI: every request is answered by the [`Lifecycle`] library in
//! this process, never by running `ao-host`. The page is three static files compiled into the
//! binary; it holds no data and needs no token, so everything it shows comes through the API,
//! which is guarded by [`access`]: a bearer token (on loopback too, unless `--no-token`), names
//! of this machine only on loopback, and a refusal of changes asked by another site.
//!
//! Operations that change sessions run as tasks of their own ([`work::Work`]): a browser that
//! closes its tab half-way through a spawn must not drop the spawn half-made. Stopping the
//! dashboard stops spawns in progress (each undoes itself) and waits for the rest to finish.
//!
//! It keeps answering whoever else connects: live feeds hold their connection for as long as a
//! page is open, so they have a cap of their own ([`MAX_STREAMS`]) on top of the connections
//! for ordinary requests ([`MAX_REQUEST_CONNECTIONS`]); over either cap a client is told `503`
//! with `Retry-After` at once, never left waiting in the listen queue.

pub mod access;
mod api;
mod page;
pub mod webhook;
mod work;

use std::{future::Future, sync::Arc, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{watch, Semaphore},
    task::JoinSet,
};

pub use self::access::{Access, AccessError};
use self::work::Work;
use ao_core::{feed::Feed, lifecycle::Lifecycle};

/// What every request handler shares.
#[derive(Clone)]
struct AppState {
    lifecycle: Arc<Lifecycle>,
    feed: Arc<Feed>,
    work: Arc<Work>,
    /// Becomes `true` when the dashboard stops: live feeds end so the server can close.
    closing: watch::Receiver<bool>,
    /// Requests that run programs or read whole libraries (doctor, plugins), one at a time: any
    /// web page can make a browser send GETs here.
    slow_reads: Arc<Semaphore>,
    /// Slow reads running or waiting for their turn, at most [`MAX_SLOW_READS_QUEUED`].
    slow_queue: Arc<Semaphore>,
    /// Live feeds open at once, at most [`MAX_STREAMS`].
    streams: Arc<Semaphore>,
}

/// The whole application: the page, the API, and the access rules in front of both.
fn app(state: AppState, access: Arc<Access>) -> Router {
    Router::new()
        .merge(page::routes())
        .nest("/api", api::routes())
        .fallback(|| async {
            api::ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "no such page or endpoint",
            )
        })
        .layer(axum::middleware::from_fn_with_state(access, access::guard))
        .with_state(state)
}

/// Longest a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once for ordinary requests.
const MAX_REQUEST_CONNECTIONS: usize = 256;
/// Live feeds open at once. Each holds its connection for as long as its page is open, so
/// their connections come on top of [`MAX_REQUEST_CONNECTIONS`]: any number of feeds (one is
/// any local process away) leaves the ordinary requests their slots.
const MAX_STREAMS: usize = 64;
/// Slow reads (doctor, plugins) running or waiting: one that logs in to a host that never
/// answers takes its connect timeout, and a queue behind it would be a hang.
const MAX_SLOW_READS_QUEUED: usize = 8;
/// Connections over the caps being told `503` at once; more wait for one of these to end (the
/// dashboard's memory and descriptors stay bounded however many connect).
const MAX_REFUSALS: usize = 64;
/// The longest a refused client gets to take its `503`.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// A refused client silent this long has sent all it will.
const REFUSAL_QUIET: Duration = Duration::from_millis(100);
/// What a client over a cap is told to wait before trying again, in seconds.
pub(crate) const RETRY_AFTER_SECS: u32 = 1;
/// Why a client over a cap is refused.
pub(crate) const BUSY: &str =
    "the dashboard is serving as many clients as it takes; try again in a moment";
/// How long connections get to finish their requests once the dashboard stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves the dashboard on `listener` until `shutdown` completes, then stops spawns in progress
/// (they undo themselves) and waits for every operation it started to finish.
///
/// Connections are served by hyper directly rather than `axum::serve`, for what a server open
/// to a network needs: a client gets [`HEADER_TIMEOUT`] to send its headers, at most
/// [`MAX_REQUEST_CONNECTIONS`] plus [`MAX_STREAMS`] are served at once (one more is told
/// `503` at once, see [`refuse_busy`]), and stopping takes at most [`SHUTDOWN_GRACE`] however
/// slowly clients talk (a half-sent request must not keep the dashboard running).
pub async fn serve(
    lifecycle: Arc<Lifecycle>,
    listener: TcpListener,
    access: Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (close, closing) = watch::channel(false);
    let feed = Arc::new(Feed::new(Arc::clone(&lifecycle)));
    let poller = tokio::spawn(Arc::clone(&feed).run(closing.clone()));
    let watcher = start_watcher(&lifecycle, closing.clone());
    let work = Arc::new(Work::default());
    let state = AppState {
        lifecycle,
        feed,
        work: Arc::clone(&work),
        closing: closing.clone(),
        slow_reads: Arc::new(Semaphore::new(1)),
        slow_queue: Arc::new(Semaphore::new(MAX_SLOW_READS_QUEUED)),
        streams: Arc::new(Semaphore::new(MAX_STREAMS)),
    };
    let router = app(state, Arc::new(access));
    let slots = Arc::new(Semaphore::new(MAX_REQUEST_CONNECTIONS + MAX_STREAMS));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, most likely: wait for connections to end.
                    tracing::warn!("accepting a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Each refusal takes a moment at most: waiting for one to end keeps memory bounded
            // and still tells every client, where closing unanswered would tell it nothing.
            let refusal = tokio::select! {
                refusal = Arc::clone(&refusals).acquire_owned() => refusal.expect("the semaphore is never closed"),
                () = &mut shutdown => break,
            };
            tokio::spawn(async move {
                let _refusal = refusal;
                refuse_busy(stream).await;
            });
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let mut closing = closing.clone();
        connections.spawn(async move {
            let _slot = slot;
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = closing.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
                }
            }
        });
    }
    work.close();
    let _ = close.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), drained).await;
    connections.abort_all();
    // Operations whose requests went away are still running: let them finish (or undo).
    work.finished().await;
    poller.abort();
    if let Some(watcher) = watcher {
        // It finishes the poll in progress (a reaction being typed is typed whole).
        let _ = watcher.await;
    }
    Ok(())
}

/// Runs the pull-request watcher in the background, as `ao-host watch` would, until the
/// dashboard closes; unless no project has `scm:`. While another process watches this data dir
/// (one watcher is enough; the dashboard shows what it stores) the lock is tried again every
/// `watch.poll_secs`, so the dashboard takes over when that watcher exits.
fn start_watcher(
    lifecycle: &Arc<Lifecycle>,
    mut closing: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let config = lifecycle.config();
    if config
        .projects
        .values()
        .all(|project| project.scm.is_none())
    {
        return None;
    }
    let retry_every = Duration::from_secs(config.watch.poll_secs);
    let forges = ao_core::watch::PluginForges::shared(Arc::clone(lifecycle));
    let watcher = ao_core::watch::Watcher::new(Arc::clone(lifecycle), forges);
    Some(tokio::spawn(async move {
        let mut refused = false;
        let _lock = loop {
            match ao_core::watch::WatcherLock::acquire(watcher.dir()) {
                Ok(lock) => {
                    if refused {
                        tracing::info!(
                            "the other watcher stopped: watching pull requests here from now on"
                        );
                    }
                    break lock;
                }
                Err(e) => {
                    if !refused {
                        tracing::info!(
                            "not watching pull requests here while {e}; trying again every {} s",
                            retry_every.as_secs()
                        );
                        refused = true;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(retry_every) => {}
                _ = closing.wait_for(|closed| *closed) => return,
            }
        };
        watcher
            .run(async move {
                let _ = closing.wait_for(|closed| *closed).await;
            })
            .await;
    }))
}

/// Tells a client over the connection cap `503` with `Retry-After` without reading its request
/// (each request read would take a slot), within [`REFUSAL_TIME`].
async fn refuse_busy(mut stream: TcpStream) {
    let body = serde_json::json!({ "error": BUSY }).to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {RETRY_AFTER_SECS}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent until it hangs up or goes quiet: closing with its request
        // unread would reset the connection, and the client could lose the answer.
        let mut unread = [0u8; 4096];
        while let Ok(read) = tokio::time::timeout(REFUSAL_QUIET, stream.read(&mut unread)).await {
            if read? == 0 {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}
