//! The live feed behind `GET /api/events`: what changed in the session list, as server-sent
//! events.
//!
//! One poller asks the lifecycle for the list (which reads the agents' own events, and screens
//! only where it must) once a second, and only while someone watches; it compares each session
//! with what it saw last and publishes the ones that changed, as `session` (insert or replace)
//! and `removed` events, and the list of unreadable records as a `problems` event when it
//! changes. A `session` event leaves out `task` when it did not change: a task may be a
//! megabyte, and statuses change often. A new watcher gets its `snapshot` from the poller too, made from the
//! same list those changes were computed against, and starts receiving changes right after it:
//! it misses none and gets none twice. Operations from the API wake the poller at once, so
//! their effect shows without waiting for the next tick.

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
use tokio::sync::{broadcast, oneshot, watch, Notify};

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

/// A watcher's start: the list as the poller last saw it, and the changes from then on.
type Start = (Event, broadcast::Receiver<Change>);

pub(super) struct Feed {
    lifecycle: Arc<Lifecycle>,
    changes: broadcast::Sender<Change>,
    /// Watchers waiting for their start, served after the poller's next look.
    starting: std::sync::Mutex<Vec<oneshot::Sender<Start>>>,
    wake: Notify,
    watchers: AtomicUsize,
}

/// Counts a watcher for as long as it is held.
pub(super) struct Watching {
    feed: Arc<Feed>,
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
            starting: std::sync::Mutex::new(Vec::new()),
            wake: Notify::new(),
            watchers: AtomicUsize::new(0),
        }
    }

    /// Keeps the poller running for as long as the result is held.
    pub(super) fn watch(self: &Arc<Self>) -> Watching {
        self.watchers.fetch_add(1, Ordering::SeqCst);
        Watching {
            feed: Arc::clone(self),
        }
    }

    /// A snapshot and the changes after it, once the poller has looked (at once if it was
    /// waiting); `None` when the dashboard is closing.
    async fn start(&self) -> Option<Start> {
        let (sender, start) = oneshot::channel();
        self.starting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sender);
        self.wake.notify_one();
        start.await.ok()
    }

    /// Asks the poller to look now (after an operation changed something).
    pub(super) fn poke(&self) {
        self.wake.notify_one();
    }

    /// The poller: runs until `closing` turns true.
    pub(super) async fn run(self: Arc<Self>, mut closing: watch::Receiver<bool>) {
        // Each session as last published, and its task apart.
        let mut last: BTreeMap<String, (Arc<str>, Option<String>)> = BTreeMap::new();
        let mut last_problems: Vec<String> = Vec::new();
        loop {
            while self.watchers.load(Ordering::SeqCst) == 0 {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = closing.changed() => return,
                }
            }
            let mut listed = self.lifecycle.list(None, false).await;
            if let Ok(listing) = &mut listed {
                let mut now = BTreeMap::new();
                for session in listing.sessions.iter_mut() {
                    // Serialised without its task (a task may be a megabyte, and rarely
                    // changes); the task is compared, and sent only when it changed.
                    let task = session.task.take();
                    let mut without_task = json!(session);
                    without_task.as_object_mut().map(|o| o.remove("task"));
                    session.task = task;
                    let data: Arc<str> = Arc::from(without_task.to_string());
                    let kept_task = match last.remove(&session.id) {
                        Some((known, task)) if task == session.task => {
                            if known != data {
                                self.publish("session", Arc::clone(&data));
                            }
                            task
                        }
                        _ => {
                            self.publish("session", Arc::from(json!(session).to_string()));
                            session.task.clone()
                        }
                    };
                    now.insert(session.id.clone(), (data, kept_task));
                }
                // What is left of the last look is gone now.
                for id in last.keys() {
                    self.publish("removed", Arc::from(json!({ "id": id }).to_string()));
                }
                last = now;
                if listing.problems != last_problems {
                    self.publish(
                        "problems",
                        Arc::from(json!({ "problems": listing.problems }).to_string()),
                    );
                    last_problems = listing.problems.clone();
                }
            }
            let waiting =
                std::mem::take(&mut *self.starting.lock().unwrap_or_else(|e| e.into_inner()));
            if !waiting.is_empty() {
                let snapshot = match &listed {
                    Ok(listing) => {
                        json!({"sessions": listing.sessions, "problems": listing.problems})
                    }
                    // Not expected for a list of every project; say so rather than show nothing.
                    Err(e) => json!({"sessions": [], "problems": [e.to_string()]}),
                };
                let event = Event::default()
                    .event("snapshot")
                    .data(snapshot.to_string());
                for watcher in waiting {
                    let _ = watcher.send((event.clone(), self.changes.subscribe()));
                }
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
        (watching, closing, None),
        |(watching, mut closing, mut changes): (_, _, Option<broadcast::Receiver<Change>>)| async move {
            loop {
                if *closing.borrow() {
                    return None;
                }
                // First, or fallen so far behind that changes were lost: start over.
                let Some(receiver) = changes.as_mut() else {
                    let (snapshot, fresh) = tokio::select! {
                        start = watching.feed.start() => start?,
                        _ = closing.changed() => return None,
                    };
                    return Some((Ok(snapshot), (watching, closing, Some(fresh))));
                };
                tokio::select! {
                    received = receiver.recv() => match received {
                        Ok(change) => {
                            return Some((Ok(change.event()), (watching, closing, changes)))
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => changes = None,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = closing.changed() => return None,
                }
            }
        },
    )
}
