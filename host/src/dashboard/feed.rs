//! The live feed behind `GET /api/events`: what changed in the session list, as server-sent
//! events.
//!
//! One poller asks the lifecycle for the list (which reads the agents' own events, and screens
//! only where it must) once a second, and only while someone watches; it compares each session
//! with what it saw last and publishes the ones that changed. Every watcher starts from a
//! `snapshot` of its own, then applies `session` (insert or replace) and `removed` events:
//! both are idempotent, so a watcher whose snapshot is a little newer or older than the
//! poller's view still ends up showing the same list. Operations from the API wake the poller
//! at once, so their effect shows without waiting for the next tick.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::response::sse::Event;
use serde_json::json;
use tokio::sync::{broadcast, watch, Notify};

use crate::lifecycle::Lifecycle;

/// How often the list is read while someone watches.
pub(super) const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Changes kept for a watcher that reads slowly; one that falls further behind gets a new
/// snapshot instead.
const BACKLOG: usize = 1024;

/// One change, serialized once for every watcher.
#[derive(Debug, Clone)]
pub(super) struct Change {
    kind: &'static str,
    data: Arc<str>,
}

impl Change {
    pub(super) fn event(&self) -> Event {
        Event::default().event(self.kind).data(self.data.as_ref())
    }
}

pub(super) struct Feed {
    lifecycle: Arc<Lifecycle>,
    changes: broadcast::Sender<Change>,
    wake: Notify,
    watchers: AtomicUsize,
}

/// Counts a watcher for as long as it is held.
pub(super) struct Watching {
    feed: Arc<Feed>,
    pub(super) changes: broadcast::Receiver<Change>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.feed.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Feed {
    pub(super) fn new(lifecycle: Arc<Lifecycle>) -> Self {
        Self {
            lifecycle,
            changes: broadcast::channel(BACKLOG).0,
            wake: Notify::new(),
            watchers: AtomicUsize::new(0),
        }
    }

    /// Starts watching: changes from now on, and the poller running.
    pub(super) fn watch(self: &Arc<Self>) -> Watching {
        let changes = self.changes.subscribe();
        self.watchers.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
        Watching {
            feed: Arc::clone(self),
            changes,
        }
    }

    /// Asks the poller to look now (after an operation changed something).
    pub(super) fn poke(&self) {
        self.wake.notify_one();
    }

    /// The whole list as a `snapshot` event.
    pub(super) async fn snapshot(&self) -> Event {
        let data = match self.lifecycle.list(None, false).await {
            Ok(listing) => json!({"sessions": listing.sessions, "problems": listing.problems}),
            Err(e) => json!({"sessions": [], "problems": [e.to_string()]}),
        };
        Event::default().event("snapshot").data(data.to_string())
    }

    /// The poller: runs until `closing` turns true.
    pub(super) async fn run(self: Arc<Self>, mut closing: watch::Receiver<bool>) {
        let mut last: BTreeMap<String, Arc<str>> = BTreeMap::new();
        loop {
            while self.watchers.load(Ordering::SeqCst) == 0 {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = closing.changed() => return,
                }
            }
            if let Ok(listing) = self.lifecycle.list(None, false).await {
                let now: BTreeMap<String, Arc<str>> = listing
                    .sessions
                    .iter()
                    .map(|s| (s.id.clone(), Arc::from(json!(s).to_string())))
                    .collect();
                for (id, data) in &now {
                    if last.get(id) != Some(data) {
                        self.publish("session", Arc::clone(data));
                    }
                }
                for id in last.keys().filter(|id| !now.contains_key(*id)) {
                    self.publish("removed", Arc::from(json!({ "id": id }).to_string()));
                }
                last = now;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = self.wake.notified() => {}
                _ = closing.changed() => return,
            }
        }
    }

    fn publish(&self, kind: &'static str, data: Arc<str>) {
        // No receiver is not an error: watchers come and go.
        let _ = self.changes.send(Change { kind, data });
    }
}

/// The events one watcher gets: its snapshot, then changes, until the dashboard closes.
pub(super) fn stream(
    feed: Arc<Feed>,
    closing: watch::Receiver<bool>,
) -> impl futures_util::Stream<Item = Result<Event, Infallible>> {
    let watching = feed.watch();
    futures_util::stream::unfold(
        (watching, closing, true),
        |(mut watching, mut closing, first)| async move {
            if *closing.borrow() {
                return None;
            }
            if first {
                let snapshot = watching.feed.snapshot().await;
                return Some((Ok(snapshot), (watching, closing, false)));
            }
            let event = tokio::select! {
                received = watching.changes.recv() => match received {
                    Ok(change) => change.event(),
                    // Fell behind: drop the backlog and start over from a fresh snapshot.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        watching.changes = watching.changes.resubscribe();
                        watching.feed.snapshot().await
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = closing.changed() => return None,
            };
            Some((Ok(event), (watching, closing, false)))
        },
    )
}
