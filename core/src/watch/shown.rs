//! What front ends show of the watcher's stored view: each listed session with its pull request
//! and the reactions queued for it, and whether a watcher runs at all. One builder for `session
//! ls --json`, `session pr`, and the dashboard's API and live feed, so all carry the same fields.
//!
//! Everything here reads [`WatchDir`] only: never the forge, never a plugin, so a listing costs
//! nothing against a rate limit. A watch file that cannot be read becomes a note on its session
//! (naming the file and the fix), never a failed listing.

use std::path::Path;

use serde::Serialize;

use super::view::{PullRequestView, QueuedReaction, SessionWatch, WatchDir, WatcherBeat};
use crate::{
    lifecycle::{Lifecycle, LifecycleError},
    session::{now_ms, process_alive, Session, SessionRole, StoreError},
};

/// A beat older than this many poll intervals means no watcher runs.
const STALE_AFTER_INTERVALS: u64 = 3;
/// ... and never younger than this: a slow poll (many sessions, a slow forge) is no stop.
const STALE_AFTER_AT_LEAST_SECS: u64 = 60;

/// What listings say when no watcher keeps the pull requests fresh.
pub const NO_WATCHER: &str = "no watcher running (start `ao-host watch`)";

/// A session as every listing shows it: its record's fields, then what the watcher stored.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ListedSession {
    /// The record's fields, as `session ls --json` always had them.
    #[serde(flatten)]
    pub session: Session,
    /// Its branch's pull request as last seen; `None` when it has none (or none is known yet).
    pub pr: Option<ShownPullRequest>,
    /// Reactions waiting for the agent to be idle at a confirmed prompt, oldest first.
    pub queued: Vec<ShownReaction>,
    /// Whether a watcher keeps `pr` and `queued` fresh (see [`WatcherState::running`]).
    pub watcher_running: bool,
    /// Why `pr` and `queued` could not be read, with the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_note: Option<String>,
    /// Its project sets `scm:`: a watcher should follow it.
    #[serde(skip)]
    pub watched: bool,
}

/// A pull request with when it was looked at.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ShownPullRequest {
    #[serde(flatten)]
    pub view: PullRequestView,
    /// When the watcher last asked the forge about it (ms since the epoch).
    pub checked_at: u64,
    /// How long ago that was, in seconds, when this was listed.
    pub age_secs: u64,
}

/// A queued reaction with its age.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ShownReaction {
    /// Which reaction (`ci_failed`, `changes_requested`, `review_comments`, `merge_conflict`).
    pub reaction: String,
    /// What it is about, in one line.
    pub summary: String,
    /// When it was decided (ms since the epoch).
    pub queued_at: u64,
    /// How long it has waited, in seconds, when this was listed.
    pub age_secs: u64,
}

/// Whether a watcher runs for this data dir, from its heartbeat.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct WatcherState {
    /// A watcher process is alive and polled within a few of its intervals.
    pub running: bool,
    /// The last watcher's process id, when one ever ran.
    pub pid: Option<u32>,
    /// When it last finished a poll (ms since the epoch).
    pub polled_at: Option<u64>,
    /// How long ago that was, in seconds.
    pub age_secs: Option<u64>,
    /// Its poll interval.
    pub poll_interval_secs: Option<u64>,
    /// What is wrong, with the fix, when it does not run ([`NO_WATCHER`]) or its heartbeat
    /// cannot be read.
    pub note: Option<String>,
}

/// One session's pull request in detail (`ao-host session pr ID`).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PullRequestDetail {
    /// The session.
    pub id: String,
    pub project_id: String,
    /// The branch the pull request is looked for by.
    pub branch: String,
    /// When the watcher last looked at the branch (ms since the epoch); `None`: never yet.
    pub checked_at: Option<u64>,
    pub pr: Option<ShownPullRequest>,
    pub queued: Vec<ShownReaction>,
    pub watcher: WatcherState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_note: Option<String>,
}

fn age_secs(now_ms: u64, at_ms: u64) -> u64 {
    now_ms.saturating_sub(at_ms) / 1000
}

impl WatcherState {
    /// The state `beat` says at `now_ms`: running while its process lives and its last poll is
    /// at most a few intervals old.
    fn of(beat: Result<Option<WatcherBeat>, StoreError>, now_ms: u64) -> Self {
        let beat = match beat {
            Ok(Some(beat)) => beat,
            Ok(None) => return Self::stopped(NO_WATCHER.to_string()),
            Err(e) => return Self::stopped(format!("{}; {NO_WATCHER}", unreadable(&e))),
        };
        let age = age_secs(now_ms, beat.polled_at_ms);
        let limit = beat
            .poll_interval_secs
            .saturating_mul(STALE_AFTER_INTERVALS)
            .max(STALE_AFTER_AT_LEAST_SECS);
        let running = age <= limit && process_alive(beat.pid);
        Self {
            running,
            pid: Some(beat.pid),
            polled_at: Some(beat.polled_at_ms),
            age_secs: Some(age),
            poll_interval_secs: Some(beat.poll_interval_secs),
            note: (!running).then(|| NO_WATCHER.to_string()),
        }
    }

    fn stopped(note: String) -> Self {
        Self {
            running: false,
            pid: None,
            polled_at: None,
            age_secs: None,
            poll_interval_secs: None,
            note: Some(note),
        }
    }
}

/// A watch file that could not be read, as a note naming it and the fix.
fn unreadable(error: &StoreError) -> String {
    let (path, why) = match error {
        StoreError::Corrupt { path, message } => (path.as_path(), message.clone()),
        StoreError::Io { path, error, .. } => (path.as_path(), error.to_string()),
        StoreError::Untrusted { path, message } => (path.as_path(), message.clone()),
        other => (Path::new("the watch folder"), other.to_string()),
    };
    format!(
        "watch file {} is unreadable ({why}); delete it: the watcher writes it again on its next poll",
        path.display()
    )
}

impl ShownReaction {
    fn of(queued: QueuedReaction, now_ms: u64) -> Self {
        Self {
            age_secs: age_secs(now_ms, queued.queued_at_ms),
            reaction: queued.reaction,
            summary: queued.summary,
            queued_at: queued.queued_at_ms,
        }
    }
}

/// What is shown of one session's watch file.
#[derive(Default)]
struct Shown {
    /// When the watcher last looked; `None`: never (or its file is unreadable).
    checked_at: Option<u64>,
    pr: Option<ShownPullRequest>,
    queued: Vec<ShownReaction>,
    /// Why the file could not be read, with the fix.
    note: Option<String>,
}

fn shown(stored: Result<Option<SessionWatch>, StoreError>, now_ms: u64) -> Shown {
    match stored {
        Ok(None) => Shown::default(),
        Err(e) => Shown {
            note: Some(unreadable(&e)),
            ..Shown::default()
        },
        Ok(Some(watch)) => {
            let checked_at = watch.checked_at_ms;
            let pr = watch.pr.map(|view| ShownPullRequest {
                view,
                checked_at,
                age_secs: age_secs(now_ms, checked_at),
            });
            let queued = watch
                .queued
                .into_iter()
                .map(|q| ShownReaction::of(q, now_ms))
                .collect();
            Shown {
                checked_at: Some(checked_at),
                pr,
                queued,
                note: None,
            }
        }
    }
}

impl ListedSession {
    /// The same, with every age zeroed: what changed in a session, as a live feed compares it
    /// (ages grow every second; that is no change).
    pub fn without_ages(&self) -> Self {
        let mut facts = self.clone();
        if let Some(pr) = &mut facts.pr {
            pr.age_secs = 0;
        }
        for queued in &mut facts.queued {
            queued.age_secs = 0;
        }
        facts
    }

    /// Whether the operator should be told that no watcher runs: its project is watched, or
    /// something stored for it goes stale.
    pub fn wants_watcher(&self) -> bool {
        !self.watcher_running && (self.watched || self.pr.is_some() || !self.queued.is_empty())
    }
}

impl Lifecycle {
    /// The `watch` folder of this data dir.
    pub fn watch_dir(&self) -> WatchDir {
        WatchDir::new(self.store().data_dir())
    }

    /// Whether a watcher runs for this data dir.
    pub fn watcher_state(&self) -> WatcherState {
        WatcherState::of(self.watch_dir().beat(), now_ms())
    }

    /// Listed sessions with what the watcher stored for each.
    pub fn with_pull_requests(&self, sessions: Vec<Session>) -> Vec<ListedSession> {
        let watch = self.watch_dir();
        let now = now_ms();
        let running = WatcherState::of(watch.beat(), now).running;
        let projects = &self.config().projects;
        sessions
            .into_iter()
            .map(|session| {
                let shown = shown(watch.session(&session.project_id, &session.id), now);
                let watched = session.role == SessionRole::Worker
                    && projects
                        .get(&session.project_id)
                        .is_some_and(|project| project.scm.is_some());
                ListedSession {
                    watched,
                    session,
                    pr: shown.pr,
                    queued: shown.queued,
                    watcher_running: running,
                    watch_note: shown.note,
                }
            })
            .collect()
    }

    /// One active session's pull request in detail, as the watcher stored it.
    pub fn pull_request(&self, id: &str) -> Result<PullRequestDetail, LifecycleError> {
        let session = self.store().find(id)?;
        let watch = self.watch_dir();
        let now = now_ms();
        let shown = shown(watch.session(&session.project_id, &session.id), now);
        Ok(PullRequestDetail {
            id: session.id,
            project_id: session.project_id,
            branch: session.branch,
            checked_at: shown.checked_at,
            pr: shown.pr,
            queued: shown.queued,
            watcher: WatcherState::of(watch.beat(), now),
            watch_note: shown.note,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(pid: u32, polled_at_ms: u64, interval: u64) -> WatcherBeat {
        WatcherBeat {
            schema: super::super::view::SCHEMA,
            pid,
            started_at_ms: 0,
            polled_at_ms,
            poll_interval_secs: interval,
        }
    }

    #[test]
    fn a_watcher_runs_while_its_process_lives_and_its_beat_is_fresh() {
        let now = 10_000_000;
        let me = std::process::id();
        assert!(WatcherState::of(Ok(Some(beat(me, now - 5_000, 30))), now).running);
        // Three intervals, but never less than a minute.
        assert!(WatcherState::of(Ok(Some(beat(me, now - 89_000, 30))), now).running);
        let stale = WatcherState::of(Ok(Some(beat(me, now - 91_000, 30))), now);
        assert!(!stale.running);
        assert_eq!(stale.note.as_deref(), Some(NO_WATCHER));
        assert!(WatcherState::of(Ok(Some(beat(me, now - 59_000, 1))), now).running);
        // A watcher killed a second ago no longer runs.
        assert!(!WatcherState::of(Ok(Some(beat(u32::MAX / 2, now - 1_000, 30))), now).running);
        let never = WatcherState::of(Ok(None), now);
        assert!(!never.running && never.pid.is_none());
    }

    #[test]
    fn an_unreadable_watch_file_is_a_note_naming_it_and_the_fix() {
        let error = StoreError::Corrupt {
            path: "/d/watch/sessions/app/app-1.json".into(),
            message: "expected value at line 1".into(),
        };
        let shown = shown(Err(error), 0);
        assert!(shown.pr.is_none() && shown.queued.is_empty());
        let note = shown.note.unwrap();
        assert!(
            note.contains("/d/watch/sessions/app/app-1.json")
                && note.contains("expected value")
                && note.contains("delete it"),
            "{note}"
        );
    }
}
