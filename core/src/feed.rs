//! The live feed of the session list: what changed in it, as events a front end passes on (the
//! dashboard's `GET /api/events` sends them as server-sent events).
//!
//! The list is followed in lanes, one for this machine and one per host, each asking the
//! lifecycle for its own sessions ([`Lifecycle::list_lane`]) once a second, and only while
//! someone watches: a host that is slow or silent holds up its own lane only, so a local
//! session's change never waits on a host, and a silent host is asked again in its lane's own
//! time (in the background of everything else). Each lane compares its sessions with what was
//! last told and publishes the ones that changed, as `session` (insert or replace) and
//! `removed` events (a session with its pull request as the watcher stored it, see
//! [`crate::watch::shown`]); this machine's lane also publishes the list of unreadable records as a
//! `problems` event when it changes. A `session` event leaves out `task` when it did not
//! change: a task may be a megabyte, and statuses change often.
//!
//! What was told is kept under one lock, and changes are published while it is held: a new
//! watcher's `snapshot` is made from it and the watcher subscribed under the same lock, so it
//! misses no change and gets none twice. The snapshot is given after this machine's lane has
//! looked (so local sessions are fresh), never waiting on a host; a host's sessions arrive as
//! `session` events when its lane has looked. Operations from the API wake every lane at once,
//! so their effect shows without waiting for the next tick.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use futures_util::future::join_all;
use serde_json::json;
use tokio::sync::{broadcast, oneshot, watch};

use crate::{
    lifecycle::{Lifecycle, SessionListing},
    watch::shown::ListedSession,
};

/// How often each lane is read while someone watches.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Changes kept for a watcher that reads slowly; one that falls further behind gets a new
/// snapshot instead.
const BACKLOG: usize = 1024;

/// One event: a `snapshot` of the list, then changes (`session`, `removed`, `problems`), its
/// JSON serialized once for every watcher.
#[derive(Debug, Clone)]
pub struct Change {
    kind: &'static str,
    data: Arc<str>,
}

impl Change {
    /// What the event says: `snapshot`, `session`, `removed` or `problems`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Its JSON.
    pub fn data(&self) -> &str {
        &self.data
    }
}

/// A watcher's start: the list as last told, and the changes from then on.
type Start = (Change, broadcast::Receiver<Change>);

/// A session as last told to watchers.
struct Told {
    /// The lane it is listed in (`None`: this machine).
    lane: Option<String>,
    /// Its JSON without the task and ages: what a change is looked for in.
    facts: Arc<str>,
    listed: ListedSession,
}

/// Everything told so far.
#[derive(Default)]
struct Tale {
    sessions: BTreeMap<String, Told>,
    problems: Vec<String>,
}

pub struct Feed {
    lifecycle: Arc<Lifecycle>,
    changes: broadcast::Sender<Change>,
    /// What watchers were told; changes are published only while it is held.
    told: std::sync::Mutex<Tale>,
    /// Watchers waiting for their start, served after this machine's lane looks next.
    starting: std::sync::Mutex<Vec<oneshot::Sender<Start>>>,
    /// Bumped to make every lane look now.
    wake: watch::Sender<u64>,
    watchers: AtomicUsize,
}

/// Counts a watcher for as long as it is held.
pub struct Watching {
    feed: Arc<Feed>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.feed.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Feed {
    pub fn new(lifecycle: Arc<Lifecycle>) -> Self {
        Self {
            lifecycle,
            changes: broadcast::channel(BACKLOG).0,
            told: std::sync::Mutex::new(Tale::default()),
            starting: std::sync::Mutex::new(Vec::new()),
            wake: watch::channel(0).0,
            watchers: AtomicUsize::new(0),
        }
    }

    /// Keeps the lanes running for as long as the result is held.
    pub fn watch(self: &Arc<Self>) -> Watching {
        self.watchers.fetch_add(1, Ordering::SeqCst);
        Watching {
            feed: Arc::clone(self),
        }
    }

    /// A snapshot and the changes after it, once this machine's lane has looked (at once if it
    /// was waiting); `None` when the feed is closing.
    async fn start(&self) -> Option<Start> {
        let (sender, start) = oneshot::channel();
        self.starting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sender);
        self.poke();
        start.await.ok()
    }

    /// Asks every lane to look now (after an operation changed something).
    pub fn poke(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The lanes: run until `closing` turns true.
    pub async fn run(self: Arc<Self>, closing: watch::Receiver<bool>) {
        let lanes = self.lifecycle.lanes();
        join_all(
            lanes
                .into_iter()
                .map(|lane| Arc::clone(&self).follow(lane, closing.clone())),
        )
        .await;
    }

    /// One lane: looks once a second while someone watches, at once when woken.
    async fn follow(self: Arc<Self>, lane: Option<String>, mut closing: watch::Receiver<bool>) {
        let mut wake = self.wake.subscribe();
        loop {
            while self.watchers.load(Ordering::SeqCst) == 0 {
                tokio::select! {
                    woken = wake.changed() => if woken.is_err() { return },
                    _ = closing.changed() => return,
                }
            }
            wake.mark_unchanged();
            let listing = tokio::select! {
                listing = self.lifecycle.list_lane(lane.as_deref()) => listing,
                _ = closing.changed() => return,
            };
            self.tell(lane.as_deref(), listing);
            if lane.is_none() {
                self.serve_starting();
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                woken = wake.changed() => if woken.is_err() { return },
                _ = closing.changed() => return,
            }
        }
    }

    /// Publishes what changed in `lane` since it was last told.
    fn tell(&self, lane: Option<&str>, listing: SessionListing) {
        let mut tale = self.told.lock().unwrap_or_else(|e| e.into_inner());
        let mut listed = HashSet::new();
        for session in self.lifecycle.with_pull_requests(listing.sessions) {
            // Serialised without its task (a task may be a megabyte, and rarely changes); the
            // task is compared, and sent only when it changed. Ages grow every second: a change
            // is one in anything else.
            let without_task = |listed: &ListedSession| {
                let mut value = json!(listed);
                value.as_object_mut().map(|o| o.remove("task"));
                value.to_string()
            };
            let facts: Arc<str> = Arc::from(without_task(&session.without_ages()));
            let id = &session.session.id;
            match tale.sessions.get(id) {
                Some(told) if told.listed.session.task == session.session.task => {
                    if told.facts != facts {
                        self.publish("session", Arc::from(without_task(&session)));
                    }
                }
                _ => self.publish("session", Arc::from(json!(session).to_string())),
            }
            listed.insert(id.clone());
            tale.sessions.insert(
                id.clone(),
                Told {
                    lane: lane.map(str::to_string),
                    facts,
                    listed: session,
                },
            );
        }
        // What this lane told before and no longer lists is gone.
        let gone: Vec<String> = tale
            .sessions
            .iter()
            .filter(|(id, told)| told.lane.as_deref() == lane && !listed.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            tale.sessions.remove(&id);
            self.publish("removed", Arc::from(json!({ "id": id }).to_string()));
        }
        if lane.is_none() && listing.problems != tale.problems {
            self.publish(
                "problems",
                Arc::from(json!({ "problems": listing.problems }).to_string()),
            );
            tale.problems = listing.problems;
        }
    }

    /// Gives each waiting watcher the list as told, and the changes from now on.
    fn serve_starting(&self) {
        let waiting = std::mem::take(&mut *self.starting.lock().unwrap_or_else(|e| e.into_inner()));
        if waiting.is_empty() {
            return;
        }
        let tale = self.told.lock().unwrap_or_else(|e| e.into_inner());
        let mut sessions: Vec<&ListedSession> =
            tale.sessions.values().map(|told| &told.listed).collect();
        sessions.sort_by_key(|listed| (listed.session.created_at, &listed.session.id));
        let snapshot = json!({"sessions": sessions, "problems": tale.problems});
        let event = Change {
            kind: "snapshot",
            data: Arc::from(snapshot.to_string()),
        };
        for watcher in waiting {
            let _ = watcher.send((event.clone(), self.changes.subscribe()));
        }
    }

    fn publish(&self, kind: &'static str, data: Arc<str>) {
        // No receiver is not an error: watchers come and go.
        let _ = self.changes.send(Change { kind, data });
    }
}

/// The events one watcher gets: its snapshot, then changes, until `closing` turns true.
pub fn stream(
    feed: Arc<Feed>,
    closing: watch::Receiver<bool>,
) -> impl futures_util::Stream<Item = Change> {
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
                    return Some((snapshot, (watching, closing, Some(fresh))));
                };
                tokio::select! {
                    received = receiver.recv() => match received {
                        Ok(change) => {
                            return Some((change, (watching, closing, changes)))
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
