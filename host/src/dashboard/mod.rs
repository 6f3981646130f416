//! The web dashboard: a live page of every session, and the JSON API it and scripts use.
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

pub mod access;
mod api;
mod feed;
mod page;
mod work;

use std::{future::Future, sync::Arc, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    sync::{watch, Semaphore},
    task::JoinSet,
};

pub use self::access::{Access, AccessError};
use self::{feed::Feed, work::Work};
use crate::lifecycle::Lifecycle;

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
/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 256;
/// How long connections get to finish their requests once the dashboard stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves the dashboard on `listener` until `shutdown` completes, then stops spawns in progress
/// (they undo themselves) and waits for every operation it started to finish.
///
/// Connections are served by hyper directly rather than `axum::serve`, for what a server open
/// to a network needs: a client gets [`HEADER_TIMEOUT`] to send its headers, at most
/// [`MAX_CONNECTIONS`] are served at once, and stopping takes at most [`SHUTDOWN_GRACE`] however
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
    let work = Arc::new(Work::default());
    let state = AppState {
        lifecycle,
        feed,
        work: Arc::clone(&work),
        closing: closing.clone(),
        slow_reads: Arc::new(Semaphore::new(1)),
    };
    let router = app(state, Arc::new(access));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
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
        while connections.try_join_next().is_some() {}
    }
    work.close();
    let _ = close.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), drained).await;
    connections.abort_all();
    // Operations whose requests went away are still running: let them finish (or undo).
    work.finished().await;
    poller.abort();
    Ok(())
}
