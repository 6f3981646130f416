//! Operations that run to the end whatever happens to the request that asked for them.
//!
//! axum drops a handler's future when its client goes away. A spawn or kill dropped half-way
//! would leave a half-made or half-removed session, so each runs as a task of its own and the
//! handler only waits for its result.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, Weak,
    },
};

use tokio::sync::RwLock;

/// The operations in progress. Each holds a read guard of `running` while it runs, so taking
/// the write guard waits for all of them.
#[derive(Default)]
pub(super) struct Work {
    running: Arc<RwLock<()>>,
    /// Stop flags of spawns in progress (see `SpawnParams::stop`).
    spawn_stops: Mutex<Vec<Weak<AtomicBool>>>,
    closed: AtomicBool,
}

/// Why an operation did not run or did not end normally.
#[derive(Debug)]
pub(super) enum Interrupted {
    /// The dashboard is stopping and takes no new work.
    Closing,
    /// The operation's task panicked.
    Panicked,
}

impl Work {
    /// Runs `operation` as its own task and waits for its result.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        operation: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, Interrupted> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Interrupted::Closing);
        }
        let guard = Arc::clone(&self.running).read_owned().await;
        let task = tokio::spawn(async move {
            let _running = guard;
            operation.await
        });
        task.await.map_err(|_| Interrupted::Panicked)
    }

    /// Registers a spawn's stop flag, so that closing the dashboard stops that spawn.
    pub(super) fn stop_on_close(&self, stop: &Arc<AtomicBool>) {
        let mut stops = self.spawn_stops.lock().unwrap_or_else(|e| e.into_inner());
        stops.retain(|flag| flag.strong_count() > 0);
        stops.push(Arc::downgrade(stop));
        if self.closed.load(Ordering::SeqCst) {
            stop.store(true, Ordering::SeqCst);
        }
    }

    /// Takes no new work and asks every spawn in progress to stop (each undoes itself).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let stops = self.spawn_stops.lock().unwrap_or_else(|e| e.into_inner());
        for stop in stops.iter().filter_map(Weak::upgrade) {
            stop.store(true, Ordering::SeqCst);
        }
    }

    /// Waits until every operation started so far has ended.
    pub(super) async fn finished(&self) {
        drop(self.running.write().await);
    }
}
