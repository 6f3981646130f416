//! The web dashboard: a live page of every session, and the JSON API it and scripts use.
//!
//! It is a front end like the CLI: every request is answered by the [`Lifecycle`] library in
//! this process, never by running `ao-host`. The page is three static files compiled into the
//! binary; it holds no data and needs no token, so everything it shows comes through the API,
//! which is guarded by [`access`]: loopback-only by default, a bearer token otherwise, and a
//! refusal of changes asked by another site.
//!
//! Operations that change sessions run as tasks of their own ([`work::Work`]): a browser that
//! closes its tab half-way through a spawn must not drop the spawn half-made. Stopping the
//! dashboard stops spawns in progress (each undoes itself) and waits for the rest to finish.

pub mod access;
mod api;
mod feed;
mod page;
mod work;

use std::{future::Future, sync::Arc};

use axum::Router;
use tokio::{net::TcpListener, sync::watch};

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
}

/// The whole application: the page, the API, and the access rules in front of both.
fn app(state: AppState, access: Arc<Access>) -> Router {
    Router::new()
        .merge(page::routes())
        .nest("/api", api::routes())
        .layer(axum::middleware::from_fn_with_state(access, access::guard))
        .with_state(state)
}

/// Serves the dashboard on `listener` until `shutdown` completes, then stops spawns in progress
/// (they undo themselves) and waits for every operation it started to finish.
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
        closing,
    };
    let router = app(state, Arc::new(access));
    let stopping = {
        let work = Arc::clone(&work);
        async move {
            shutdown.await;
            work.close();
            let _ = close.send(true);
        }
    };
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(stopping)
        .await;
    // Operations whose requests went away are still running: let them finish (or undo).
    work.finished().await;
    poller.abort();
    served
}
