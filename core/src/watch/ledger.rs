//! What the watcher has already decided, kept in the data dir so that a restarted watcher never
//! reacts twice: per session, the facts it has seen (a failed check on a commit, a review, a
//! comment, a conflict on a commit), how many messages of each reaction it delivered, and the
//! reactions waiting for an idle agent; per project, the last
//! answer about its pull requests with the validator that makes asking again free.
//!
//! Layout under `watch/` (private files, atomic writes): `ledger/<project>/<id>.json`
//! ([`Ledger`]), `projects/<project>.json` ([`ProjectMemo`]), `deliveries.json` (webhook
//! delivery ids already taken, [`Deliveries`]).
//!
//! A crash between typing a reaction and recording it must not type it twice: the reaction is
//! recorded as `delivering` (and counted) *before* it is typed, and cleared after. A watcher that
//! finds one still `delivering` treats it as delivered and logs so: at most once, never twice.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::view::{read_json, write_json, CheckLink, QueuedReaction, WatchDir, SCHEMA};
use crate::session::StoreError;

/// How many webhook delivery ids are remembered: a replay older than this many deliveries is
/// still only a hint to poll, which costs nothing but a poll.
const REMEMBERED_DELIVERIES: usize = 1000;

/// One session's decisions.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Ledger {
    pub schema: u32,
    /// Facts already reacted to (see `reactions::Fact`), so none is reacted to twice.
    pub seen: BTreeSet<String>,
    /// Messages delivered (or being delivered), per reaction.
    pub sends: BTreeMap<String, u32>,
    /// Reactions decided and waiting for the agent to be idle at its prompt, oldest first.
    pub pending: Vec<Pending>,
    /// The reaction being typed; still set after a crash mid-delivery.
    pub delivering: Option<Pending>,
    /// Whether the operator was told that reactions are held for an exited agent.
    pub held_told: bool,
    /// The pull request taken for the session's (its number): an open one on its branch whose
    /// head was in its history, kept when it merges or closes.
    #[serde(default)]
    pub pull_request: Option<u64>,
    /// The pull request merged and the session is to be cleaned up once its agent is idle.
    #[serde(default)]
    pub cleanup_due: bool,
    /// The checks of the pull request's head as last fetched.
    pub checks: Option<ChecksMemo>,
    /// When reviews were last fetched (ms since the epoch).
    pub reviews_at_ms: u64,
}

/// A reaction waiting for its agent.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Pending {
    /// `ci_failed`, `changes_requested`, `review_comments`, `merge_conflict`.
    pub reaction: String,
    /// One line for listings.
    pub summary: String,
    /// What the agent gets, whole.
    pub message: String,
    /// When it was decided (ms since the epoch).
    pub queued_at_ms: u64,
}

impl Pending {
    /// As listings show it.
    pub fn view(&self) -> QueuedReaction {
        QueuedReaction {
            reaction: self.reaction.clone(),
            summary: self.summary.clone(),
            queued_at_ms: self.queued_at_ms,
        }
    }
}

/// The checks of one commit as last fetched, and the validator to ask "changed since?".
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ChecksMemo {
    pub head_sha: String,
    pub validator: String,
    /// `none`, `pending`, `passing` or `failing`.
    pub ci: String,
    pub failed: Vec<CheckLink>,
}

/// A project's last answer about its pull requests.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ProjectMemo {
    pub schema: u32,
    /// The branches asked about; the validator is good only for the same question.
    pub branches: Vec<String>,
    pub validator: String,
    /// The answer, so an unchanged one (free) can be used again.
    pub pull_requests: Vec<PullRequestMemo>,
}

/// A pull request as the forge last described it (the FFI type, stored).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PullRequestMemo {
    pub number: u64,
    pub url: String,
    pub title: String,
    pub branch: String,
    pub head_sha: String,
    pub state: String,
    pub draft: bool,
    pub mergeable: String,
    pub review_decision: String,
}

/// Webhook deliveries already taken, newest last.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Deliveries {
    pub schema: u32,
    pub ids: VecDeque<String>,
}

impl Deliveries {
    /// Takes `id`; `false` when it was taken before (a replay).
    pub fn take(&mut self, id: &str) -> bool {
        if self.ids.iter().any(|seen| seen == id) {
            return false;
        }
        self.ids.push_back(id.to_string());
        while self.ids.len() > REMEMBERED_DELIVERIES {
            self.ids.pop_front();
        }
        true
    }
}

impl WatchDir {
    fn ledger_path(&self, project_id: &str, id: &str) -> std::path::PathBuf {
        self.root()
            .join("ledger")
            .join(project_id)
            .join(format!("{id}.json"))
    }

    fn memo_path(&self, project_id: &str) -> std::path::PathBuf {
        self.root()
            .join("projects")
            .join(format!("{project_id}.json"))
    }

    fn deliveries_path(&self) -> std::path::PathBuf {
        self.root().join("deliveries.json")
    }

    /// A session's decisions; empty when none were made.
    pub fn ledger(&self, project_id: &str, id: &str) -> Result<Ledger, StoreError> {
        Ok(read_json(&self.ledger_path(project_id, id))?.unwrap_or_default())
    }

    pub fn save_ledger(
        &self,
        project_id: &str,
        id: &str,
        ledger: &Ledger,
    ) -> Result<(), StoreError> {
        let ledger = Ledger {
            schema: SCHEMA,
            ..ledger.clone()
        };
        write_json(self.root(), &self.ledger_path(project_id, id), &ledger)
    }

    /// Forgets a session's decisions (it is over).
    pub fn remove_ledger(&self, project_id: &str, id: &str) -> Result<(), StoreError> {
        let path = self.ledger_path(project_id, id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
                action: "removing",
                path,
                error: e,
            }),
            _ => Ok(()),
        }
    }

    pub fn project_memo(&self, project_id: &str) -> Result<ProjectMemo, StoreError> {
        Ok(read_json(&self.memo_path(project_id))?.unwrap_or_default())
    }

    pub fn save_project_memo(
        &self,
        project_id: &str,
        memo: &ProjectMemo,
    ) -> Result<(), StoreError> {
        let memo = ProjectMemo {
            schema: SCHEMA,
            ..memo.clone()
        };
        write_json(self.root(), &self.memo_path(project_id), &memo)
    }

    pub fn deliveries(&self) -> Result<Deliveries, StoreError> {
        Ok(read_json(&self.deliveries_path())?.unwrap_or_default())
    }

    pub fn save_deliveries(&self, deliveries: &Deliveries) -> Result<(), StoreError> {
        let deliveries = Deliveries {
            schema: SCHEMA,
            ..deliveries.clone()
        };
        write_json(self.root(), &self.deliveries_path(), &deliveries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_survives_a_restart_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let watch = WatchDir::new(dir.path());
        assert_eq!(watch.ledger("app", "app-1").unwrap(), Ledger::default());
        let mut ledger = Ledger::default();
        ledger.seen.insert("ci:abc:build:failure".into());
        ledger.sends.insert("ci_failed".into(), 1);
        watch.save_ledger("app", "app-1", &ledger).unwrap();
        let again = WatchDir::new(dir.path()).ledger("app", "app-1").unwrap();
        assert_eq!(again.seen, ledger.seen);
        assert_eq!(again.schema, SCHEMA);
        let path = dir.path().join("watch/ledger/app/app-1.json");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        watch.remove_ledger("app", "app-1").unwrap();
        watch.remove_ledger("app", "app-1").unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_replayed_delivery_is_refused_and_the_memory_is_bounded() {
        let mut deliveries = Deliveries::default();
        assert!(deliveries.take("d-1"));
        assert!(!deliveries.take("d-1"));
        for i in 0..REMEMBERED_DELIVERIES {
            assert!(deliveries.take(&format!("x-{i}")));
        }
        assert_eq!(deliveries.ids.len(), REMEMBERED_DELIVERIES);
        assert!(deliveries.take("d-1"), "forgotten after the bound");
    }
}
