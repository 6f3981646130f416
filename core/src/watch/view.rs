//! What the watcher stores for front ends: per session, its pull request as last seen and the
//! reactions that wait for an idle agent; per data dir, the watcher's heartbeat. Listings read
//! these files and never call the forge.
//!
//! Layout under the data dir (folders 0700, files 0600, never followed through a link):
//! `watch/sessions/<project>/<id>.json` ([`SessionWatch`]) and `watch/watcher.json`
//! ([`WatcherBeat`]).

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use ao_plugin_kit::{private, validate::validate_id};

use crate::session::StoreError;

/// The shape of the files written here; raised when a field changes meaning.
pub const SCHEMA: u32 = 1;

/// No watch file is larger than this; a larger one is not ours.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// What the watcher last learned about one session.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct SessionWatch {
    /// [`SCHEMA`] when written.
    pub schema: u32,
    /// When the forge was last asked about this session's branch (ms since the epoch).
    pub checked_at_ms: u64,
    /// The branch's pull request, if it has one.
    pub pr: Option<PullRequestView>,
    /// Reactions waiting until the agent is idle at a confirmed prompt (or, for a session that
    /// exited, until the operator looks), oldest first.
    pub queued: Vec<QueuedReaction>,
}

/// A pull request as listings show it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PullRequestView {
    /// `#number` in its repository.
    pub number: u64,
    /// Where a person opens it.
    pub url: String,
    /// Its title.
    pub title: String,
    /// `open`, `merged` or `closed`.
    pub state: String,
    /// Marked draft.
    pub draft: bool,
    /// The head commit the checks below belong to.
    pub head_sha: String,
    /// `none` (no checks), `pending`, `passing` or `failing`.
    pub ci: String,
    /// The failed checks, by name with their links.
    pub failed_checks: Vec<CheckLink>,
    /// `none`, `review_required`, `approved` or `changes_requested`.
    pub review: String,
    /// How many review threads are unresolved.
    pub unresolved_comments: u32,
    /// `unknown`, `mergeable` or `conflicting`.
    pub mergeable: String,
}

/// A check by name, with its link.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CheckLink {
    /// The check's name.
    pub name: String,
    /// Where a person sees it.
    pub url: String,
}

/// A reaction decided but not delivered yet.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct QueuedReaction {
    /// Which reaction (`ci_failed`, `changes_requested`, `review_comments`, `merge_conflict`).
    pub reaction: String,
    /// One line for listings: what it is about.
    pub summary: String,
    /// When it was decided (ms since the epoch).
    pub queued_at_ms: u64,
}

/// The watcher's heartbeat: who watches this data dir, and when it last polled.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WatcherBeat {
    /// [`SCHEMA`] when written.
    pub schema: u32,
    /// The watching process (`ao-host watch` or a dashboard).
    pub pid: u32,
    /// When it started (ms since the epoch).
    pub started_at_ms: u64,
    /// When it last finished a poll (ms since the epoch).
    pub polled_at_ms: u64,
    /// Its poll interval: a beat older than a few of these means no watcher runs.
    pub poll_interval_secs: u64,
}

/// The `watch` folder of a data dir.
#[derive(Debug, Clone)]
pub struct WatchDir {
    root: PathBuf,
}

impl WatchDir {
    /// The `watch` folder of `data_dir` (created on first write).
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("watch"),
        }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn session_path(&self, project_id: &str, id: &str) -> PathBuf {
        self.root
            .join("sessions")
            .join(project_id)
            .join(format!("{id}.json"))
    }

    fn beat_path(&self) -> PathBuf {
        self.root.join("watcher.json")
    }

    /// What the watcher stored for a session; `None` when it stored nothing.
    pub fn session(&self, project_id: &str, id: &str) -> Result<Option<SessionWatch>, StoreError> {
        read_json(&self.session_path(project_id, id))
    }

    /// Replaces what is stored for a session, atomically.
    pub fn save_session(
        &self,
        project_id: &str,
        id: &str,
        watch: &SessionWatch,
    ) -> Result<(), StoreError> {
        write_json(&self.root, &self.session_path(project_id, id), watch)
    }

    /// Forgets a session (it was killed or cleaned up); nothing stored is fine.
    pub fn remove_session(&self, project_id: &str, id: &str) -> Result<(), StoreError> {
        let path = self.session_path(project_id, id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", &path, e)),
            _ => Ok(()),
        }
    }

    /// Every session something is stored for (its view, or the watcher's ledger), as
    /// `(project, id)`; names that are not valid ids and links are skipped (never followed).
    pub fn stored_sessions(&self) -> Vec<(String, String)> {
        let real_folders = |dir: &Path| -> Vec<(String, PathBuf)> {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return Vec::new();
            };
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.file_type().is_ok_and(|kind| !kind.is_symlink()))
                .filter_map(|entry| Some((entry.file_name().into_string().ok()?, entry.path())))
                .collect()
        };
        let mut stored = Vec::new();
        let projects = ["sessions", "ledger"]
            .into_iter()
            .flat_map(|kind| real_folders(&self.root.join(kind)));
        for (project, folder) in projects {
            if validate_id("project id", &project).is_err() || !folder.is_dir() {
                continue;
            }
            for (name, _) in real_folders(&folder) {
                if let Some(id) = name.strip_suffix(".json") {
                    if validate_id("session id", id).is_ok() {
                        stored.push((project.clone(), id.to_string()));
                    }
                }
            }
        }
        stored.sort();
        stored.dedup();
        stored
    }

    /// The watcher's last heartbeat; `None` when no watcher ever ran here.
    pub fn beat(&self) -> Result<Option<WatcherBeat>, StoreError> {
        read_json(&self.beat_path())
    }

    /// Records a heartbeat.
    pub fn save_beat(&self, beat: &WatcherBeat) -> Result<(), StoreError> {
        write_json(&self.root, &self.beat_path(), beat)
    }
}

fn io(action: &'static str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

pub(super) fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<Option<T>, StoreError> {
    read_json_within(path, MAX_FILE_BYTES)
}

/// A JSON file of the data dir, never through a link and at most `max_bytes` long; `None` when
/// there is none.
pub(crate) fn read_json_within<T: for<'de> Deserialize<'de>>(
    path: &Path,
    max_bytes: u64,
) -> Result<Option<T>, StoreError> {
    let file = match private::open_read(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("reading", path, e)),
    };
    let mut bytes = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io("reading", path, e))?;
    let corrupt = |message: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    if bytes.len() as u64 > max_bytes {
        return Err(corrupt(format!(
            "larger than any such file ao-host writes ({max_bytes} bytes)"
        )));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

/// Replaces `path` (inside `root`, which is made if missing) with `value` as JSON, whole.
pub(crate) fn write_json<T: Serialize>(
    root: &Path,
    path: &Path,
    value: &T,
) -> Result<(), StoreError> {
    let dir = path.parent().expect("watch files live in a folder");
    private::create_dir_within(root, dir).map_err(|e| io("creating", dir, e))?;
    let bytes = serde_json::to_vec_pretty(value).expect("watch state serialises");
    private::write(path, &bytes, false).map_err(|e| io("replacing", path, e))
}
