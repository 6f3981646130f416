//! What an agent last reported about itself, for agents that report events (Claude Code's
//! hooks): written by `ao-host hook`, which the agent runs on each event, and read by
//! `session ls` instead of the agent's screen.
//!
//! Files, in one folder per session, `<data_dir>/agent-state/<project>/<id>/` (this module alone
//! knows the layout; see [`AgentStateDir::folder`]):
//! - `state.json`: the state (a few hundred bytes, so a listing of many sessions reads little);
//! - `prompt`: the last prompt the agent took, byte-exact, for the spawn that checks its task
//!   arrived unchanged (kept apart: it may be a megabyte);
//! - `lock`: serialises writers, since an agent may run hooks concurrently;
//! - `error`: why the agent's hook last failed to record an event, so a spawn waiting for that
//!   event names the real cause.
//!
//! Releases up to v0.1.6 kept them side by side as `<project>/<id>.json`, `.prompt` and `.lock`;
//! [`AgentStateDir::upgrade`] moves them (see [`super::migrate`]).
//!
//! These are observations, not records: they are written without fsync, a missing or unreadable
//! one means "no event seen" and the screen is read instead.

use std::{
    collections::HashSet,
    fs::{self, File},
    io::Read,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use ao_plugin_kit::private;

use super::{lock::still_at, migrate, now_ms, StoreError, MAX_TASK_BYTES};

/// The state file never grows past this: a question is cut to [`MAX_QUESTION_BYTES`].
const MAX_STATE_BYTES: u64 = 64 * 1024;
/// What the agent asks is shown in a listing; beyond this it is cut.
pub(crate) const MAX_QUESTION_BYTES: usize = 4 * 1024;
/// A hook's error is kept up to this; beyond, it is cut.
const MAX_FAILURE_BYTES: usize = 4 * 1024;

/// What an agent can say it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportedStatus {
    Working,
    Idle,
    WaitingInput,
    Exited,
}

impl ReportedStatus {
    pub(crate) const ALL: [Self; 4] = [Self::Working, Self::Idle, Self::WaitingInput, Self::Exited];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Working => "working",
            Self::Idle => "idle",
            Self::WaitingInput => "waiting_input",
            Self::Exited => "exited",
        }
    }
}

/// One event, as `ao-host hook` hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEvent {
    pub status: ReportedStatus,
    /// What the agent asks, with `waiting_input`.
    pub waiting_for: Option<String>,
    /// A prompt the agent just took.
    pub prompt: Option<String>,
    /// The agent's own id for its conversation, for an agent that chooses it itself and says
    /// it in an event (see [`AgentState::conversation`]).
    pub conversation: Option<String>,
}

/// What is on disk for one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// `None` until the agent reports its first event.
    pub status: Option<ReportedStatus>,
    /// When the status last changed (ms since the Unix epoch).
    pub at: u64,
    #[serde(default)]
    pub waiting_for: Option<String>,
    /// How many prompts the agent has taken since launch.
    #[serde(default)]
    pub prompts: u64,
    /// How many times the status changed since launch; numbers each change.
    #[serde(default)]
    pub changes: u64,
    /// The number of the last change a notification was run for, so each notifies once.
    #[serde(default)]
    pub notified: u64,
    /// The program the agent's hooks run to report: if it goes (a rebuilt or moved ao-host),
    /// nothing reports any more, and the state must not be taken for current.
    #[serde(default)]
    pub program: Option<String>,
    /// The conversation id the agent last reported: what `session restore` resumes when the
    /// agent gave none at launch. Kept across a restart (the resumed agent may report it only
    /// once its conversation is loaded).
    #[serde(default)]
    pub conversation: Option<String>,
    /// A kill is destroying its runtime: the events fired as it goes are recorded but notify
    /// nobody (an operator's kill is no news). Cleared again if the destroy fails.
    #[serde(default)]
    pub stopping: bool,
}

/// A status change that [`AgentStateDir::record`] made, for notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub status: ReportedStatus,
    pub waiting_for: Option<String>,
    /// The first status since the agent was (re)launched: the operator just started it.
    pub first: bool,
    /// Its number ([`AgentState::changes`]).
    pub number: u64,
    /// When it was recorded (ms since the Unix epoch).
    pub at: u64,
}

#[derive(Debug, Clone)]
pub struct AgentStateDir {
    root: PathBuf,
}

/// The files of one session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StateFile {
    State,
    Prompt,
    Lock,
    Error,
}

impl StateFile {
    /// The lock last: it is removed last.
    const ALL: [Self; 4] = [Self::State, Self::Prompt, Self::Error, Self::Lock];

    /// Its name in the session's folder.
    fn name(self) -> &'static str {
        match self {
            Self::State => "state.json",
            Self::Prompt => "prompt",
            Self::Lock => "lock",
            Self::Error => "error",
        }
    }

    /// Its name beside the others' in the project's folder, as releases up to v0.1.6 kept it.
    fn legacy_name(self, id: &str) -> String {
        match self {
            Self::State => format!("{id}.json"),
            Self::Prompt => format!("{id}.prompt"),
            Self::Lock => format!("{id}.lock"),
            Self::Error => format!("{id}.error"),
        }
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |error| StoreError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

/// [`io`], but a file refused as not this user's own (see [`private::check_trusted`]) says so.
fn untrusted_or<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |error| match error.kind() {
        std::io::ErrorKind::PermissionDenied => StoreError::Untrusted {
            path: path.to_path_buf(),
            message: format!("agent state: {error}"),
        },
        _ => io(action, path)(error),
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Whether an agent's reported conversation id may be kept: it goes back to the agent on a
/// command line at restore, so nothing long and no control characters (the agent plugin checks
/// its own format too).
fn is_conversation_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && !id.chars().any(char::is_control)
}

impl AgentStateDir {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("agent-state"),
        }
    }

    /// The folder of one session's state: everything ao-host knows of the agent, so a sandbox
    /// can be given exactly this.
    pub fn folder(&self, project_id: &str, id: &str) -> PathBuf {
        self.root.join(project_id).join(id)
    }

    fn path(&self, project_id: &str, id: &str, file: StateFile) -> PathBuf {
        self.folder(project_id, id).join(file.name())
    }

    /// Where the newest version of `file` is, for a reader, who moves nothing (see
    /// [`AgentStateDir::upgrade`]): the old place while something is there.
    fn current(&self, project_id: &str, id: &str, file: StateFile) -> PathBuf {
        let legacy = self.root.join(project_id).join(file.legacy_name(id));
        if legacy.symlink_metadata().is_ok() {
            legacy
        } else {
            self.path(project_id, id, file)
        }
    }

    /// Moves a session's state from where releases up to v0.1.6 kept it into its folder (the
    /// caller must not hold the session's state lock, which this takes). The prompt moves
    /// before the state, whose old place says there is something to move, so a move cut short
    /// is finished by the next. What is in the old place is always the newest: only a hook of
    /// a session an earlier release started, still running that release's `ao-host`, writes
    /// there once the data dir is upgraded, and it replaces what the folder holds.
    pub(super) fn upgrade(&self, project_id: &str, id: &str) -> Result<(), StoreError> {
        let project = self.root.join(project_id);
        let legacy = |file: StateFile| project.join(file.legacy_name(id));
        if legacy(StateFile::State).symlink_metadata().is_err() {
            let _ = fs::remove_file(legacy(StateFile::Lock));
            return Ok(());
        }
        let folder = self.folder(project_id, id);
        private::create_dir_within(&self.root, &folder).map_err(io("creating", &folder))?;
        let _guard = self.lock(project_id, id)?;
        for file in [StateFile::Prompt, StateFile::State] {
            let (from, to) = (legacy(file), self.path(project_id, id, file));
            match fs::rename(&from, &to) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("moving", &from)(e))
                }
                _ => {}
            }
        }
        let _ = fs::remove_file(legacy(StateFile::Lock));
        Ok(())
    }

    /// Starts a session's state afresh (a spawn or a restore, before the agent starts): no
    /// status, no prompt taken; `program` is what its hooks will run.
    pub fn reset(
        &self,
        project_id: &str,
        id: &str,
        program: Option<&Path>,
    ) -> Result<(), StoreError> {
        self.upgrade(project_id, id)?;
        let _guard = self.lock(project_id, id)?;
        let conversation = self
            .read(project_id, id)
            .ok()
            .flatten()
            .and_then(|state| state.conversation);
        for file in [StateFile::Prompt, StateFile::Error] {
            let path = self.path(project_id, id, file);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("removing", &path)(e))
                }
                _ => {}
            }
        }
        self.write(
            project_id,
            id,
            &AgentState {
                status: None,
                at: now_ms(),
                waiting_for: None,
                prompts: 0,
                changes: 0,
                notified: 0,
                program: program.map(|p| p.display().to_string()),
                conversation,
                stopping: false,
            },
        )
    }

    /// The sessions of `project_id` that have a state, from one listing of its folder:
    /// a listing of thousands of sessions asks once, not once per session.
    pub(crate) fn sessions_with_state(&self, project_id: &str) -> HashSet<String> {
        let Ok(entries) = fs::read_dir(self.root.join(project_id)) else {
            return HashSet::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                if entry.file_type().ok()?.is_dir() {
                    return Some(name);
                }
                // Written by a hook of an earlier release (see `upgrade`).
                name.strip_suffix(".json").map(str::to_string)
            })
            .collect()
    }

    /// Temporary files under the agent state that their writers left behind (a hook killed
    /// mid-write, a full disk), at any depth: the layout below `agent-state/` may change, the
    /// temporary files' names do not. Links are not followed.
    pub(crate) fn stale_temp_files(&self) -> Vec<PathBuf> {
        /// Deeper than any layout of agent state goes.
        const MAX_DEPTH: usize = 8;
        let mut stale = Vec::new();
        let mut folders = vec![(self.root.clone(), 0)];
        while let Some((folder, depth)) = folders.pop() {
            let Ok(entries) = fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                match entry.file_type() {
                    Ok(kind) if kind.is_dir() && depth < MAX_DEPTH => {
                        folders.push((entry.path(), depth + 1))
                    }
                    Ok(kind) if kind.is_file() && super::is_stale_temp(&entry) => {
                        stale.push(entry.path())
                    }
                    _ => {}
                }
            }
        }
        stale.sort();
        stale
    }

    /// Forgets a session (killed, or its spawn undone).
    pub fn remove(&self, project_id: &str, id: &str) {
        // Through a folder that is a link, the names below would be removed wherever it points.
        let dir = self.root.join(project_id);
        if dir
            .symlink_metadata()
            .is_ok_and(|meta| meta.file_type().is_symlink())
        {
            return;
        }
        let folder = self.folder(project_id, id);
        if folder
            .symlink_metadata()
            .is_ok_and(|meta| meta.file_type().is_symlink())
        {
            return;
        }
        // Under its lock, removed last: a hook writing meanwhile finishes first, and one
        // waiting for the lock finds it gone (see [`Self::lock`]).
        let exists = |file| {
            self.current(project_id, id, file)
                .symlink_metadata()
                .is_ok()
        };
        let guard = (exists(StateFile::State) || exists(StateFile::Lock))
            .then(|| self.lock(project_id, id));
        for file in StateFile::ALL {
            let _ = fs::remove_file(dir.join(file.legacy_name(id)));
            let _ = fs::remove_file(self.path(project_id, id, file));
        }
        drop(guard);
        let _ = fs::remove_dir(folder);
    }

    /// The session's state; `None` when there is none (an agent without events, or one started
    /// before ao-host recorded state).
    pub fn read(&self, project_id: &str, id: &str) -> Result<Option<AgentState>, StoreError> {
        let path = self.current(project_id, id, StateFile::State);
        let Some(bytes) = read_bounded(&path, MAX_STATE_BYTES)? else {
            return Ok(None);
        };
        migrate::from_json(&bytes, "agent state")
            .map(|(state, _)| Some(state))
            .map_err(|message| StoreError::Corrupt { path, message })
    }

    /// How many prompts the agent has taken, and the last one, byte-exact.
    pub(crate) fn last_prompt(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Option<(u64, String)>, StoreError> {
        let Some(state) = self.read(project_id, id)? else {
            return Ok(None);
        };
        if state.prompts == 0 {
            return Ok(None);
        }
        let path = self.current(project_id, id, StateFile::Prompt);
        let Some(bytes) = read_bounded(&path, MAX_TASK_BYTES as u64 * 4)? else {
            return Ok(None);
        };
        Ok(Some((
            state.prompts,
            String::from_utf8_lossy(&bytes).into_owned(),
        )))
    }

    /// Records one event and returns the change it made, if the status changed. A session whose
    /// state was never reset (not made by this ao-host, or already killed) is left alone. With
    /// `seen` (the number of changes when the observer read the state), nothing is recorded if
    /// the state changed since: an observation must never overwrite a newer event.
    pub fn record(
        &self,
        project_id: &str,
        id: &str,
        event: AgentEvent,
        seen: Option<u64>,
    ) -> Result<Option<Change>, StoreError> {
        // An event may come before any command upgraded the data dir, or after a hook of an
        // earlier release wrote the old place: the session's state is upgraded first.
        self.upgrade(project_id, id)?;
        // Most sessions a listing sees gone have no state (no events): no lock file for them.
        if self
            .path(project_id, id, StateFile::State)
            .symlink_metadata()
            .is_err()
        {
            return Ok(None);
        }
        let _guard = self.lock(project_id, id)?;
        let Some(mut state) = self.read(project_id, id)? else {
            return Ok(None);
        };
        if seen.is_some_and(|seen| seen != state.changes) {
            return Ok(None);
        }
        if let Some(prompt) = &event.prompt {
            let path = self.path(project_id, id, StateFile::Prompt);
            self.replace(&path, prompt.as_bytes())?;
            state.prompts += 1;
        }
        let waiting_for = match event.status {
            // Still waiting: the first question stays (an agent may announce one wait twice,
            // the second time with less detail).
            ReportedStatus::WaitingInput
                if state.status == Some(ReportedStatus::WaitingInput)
                    && state.waiting_for.is_some() =>
            {
                state.waiting_for.clone()
            }
            ReportedStatus::WaitingInput => {
                event.waiting_for.map(|q| truncated(q, MAX_QUESTION_BYTES))
            }
            _ => None,
        };
        let new_conversation = event
            .conversation
            .filter(|id| is_conversation_id(id) && state.conversation.as_ref() != Some(id));
        let changed = state.status != Some(event.status) || state.waiting_for != waiting_for;
        let first = state.status.is_none();
        if changed {
            state.status = Some(event.status);
            state.waiting_for = waiting_for.clone();
            state.at = now_ms();
            state.changes += 1;
        }
        if let Some(conversation) = &new_conversation {
            state.conversation = Some(conversation.clone());
        }
        if changed || event.prompt.is_some() || new_conversation.is_some() {
            self.write(project_id, id, &state)?;
        }
        Ok(changed.then_some(Change {
            status: event.status,
            waiting_for,
            first,
            number: state.changes,
            at: state.at,
        }))
    }

    /// Keeps why the agent's hook could not record an event (cut to a few kilobytes), for the
    /// spawn waiting for that event. Only in a session folder that exists: a hook run for a
    /// session this ao-host never made leaves nothing.
    pub fn record_failure(
        &self,
        project_id: &str,
        id: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        let path = self.path(project_id, id, StateFile::Error);
        let dir = path.parent().expect("state lives in a folder");
        if !dir.symlink_metadata().is_ok_and(|meta| meta.is_dir()) {
            return Ok(());
        }
        let error = truncated(error.to_string(), MAX_FAILURE_BYTES);
        private::write(&path, error.as_bytes(), false).map_err(io("replacing", &path))
    }

    /// Why the agent's hook last failed to record an event since the session was (re)started.
    pub(crate) fn hook_failure(&self, project_id: &str, id: &str) -> Option<String> {
        let path = self.path(project_id, id, StateFile::Error);
        let bytes = read_bounded(&path, MAX_FAILURE_BYTES as u64 + 8).ok()??;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Marks change `number` as notified; `false` when it already was (by another process) or
    /// is no longer the current state, so each change notifies once, and a stale one never.
    pub(crate) fn claim_notification(
        &self,
        project_id: &str,
        id: &str,
        number: u64,
    ) -> Result<bool, StoreError> {
        let _guard = self.lock(project_id, id)?;
        let Some(mut state) = self.read(project_id, id)? else {
            return Ok(false);
        };
        if state.stopping || state.changes != number || state.notified >= number {
            return Ok(false);
        }
        state.notified = number;
        self.write(project_id, id, &state)?;
        Ok(true)
    }

    /// Marks whether a kill is stopping the session (see [`AgentState::stopping`]); a session
    /// without state is left alone.
    pub(crate) fn set_stopping(
        &self,
        project_id: &str,
        id: &str,
        stopping: bool,
    ) -> Result<(), StoreError> {
        if self
            .current(project_id, id, StateFile::State)
            .symlink_metadata()
            .is_err()
        {
            return Ok(());
        }
        self.upgrade(project_id, id)?;
        let _guard = self.lock(project_id, id)?;
        let Some(mut state) = self.read(project_id, id)? else {
            return Ok(());
        };
        if state.stopping != stopping {
            state.stopping = stopping;
            self.write(project_id, id, &state)?;
        }
        Ok(())
    }

    fn write(&self, project_id: &str, id: &str, state: &AgentState) -> Result<(), StoreError> {
        self.replace(
            &self.path(project_id, id, StateFile::State),
            &migrate::to_json(state),
        )
    }

    /// Writes `bytes` to a temporary file and renames it over `path`.
    fn replace(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let dir = path.parent().expect("state lives in a folder");
        private::create_dir_within(&self.root, dir).map_err(io("creating", dir))?;
        private::write(path, bytes, false).map_err(io("replacing", path))
    }

    /// The session's state lock, held until the file is dropped. A lock file removed while
    /// this waited for it (the session was forgotten) is not the lock any more: taken anew.
    fn lock(&self, project_id: &str, id: &str) -> Result<File, StoreError> {
        let path = self.path(project_id, id, StateFile::Lock);
        let dir = path.parent().expect("state lives in a folder");
        private::create_dir_within(&self.root, dir).map_err(io("creating", dir))?;
        loop {
            let file = private::open_lock(&path).map_err(untrusted_or("opening", &path))?;
            file.lock().map_err(io("locking", &path))?;
            if still_at(&file, &path).map_err(io("checking lock", &path))? {
                return Ok(file);
            }
        }
    }
}

/// Reads a regular file of at most `max` bytes without following a symlink or blocking on a
/// FIFO; `None` when it does not exist.
fn read_bounded(path: &Path, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
    // Never through a link or blocking on a FIFO; never a file another user made or may write.
    let file = match private::open_read(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(untrusted_or("reading", path)(e)),
    };
    let corrupt = |message: &str| StoreError::Corrupt {
        path: path.to_path_buf(),
        message: message.into(),
    };
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io("reading", path))?;
    if bytes.len() as u64 > max {
        return Err(corrupt("larger than any state ao-host writes"));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(status: ReportedStatus) -> AgentEvent {
        AgentEvent {
            status,
            waiting_for: None,
            prompt: None,
            conversation: None,
        }
    }

    #[test]
    fn temporary_files_of_dead_writers_are_found_at_any_depth_and_nothing_else() {
        let temp = tempfile::tempdir().unwrap();
        let dir = AgentStateDir::new(temp.path());
        let nested = temp.path().join("agent-state/app/app-1");
        fs::create_dir_all(&nested).unwrap();
        // No process has a pid this high (pid_max is at most 2^22).
        let dead = nested.join(".app-1.json.99999999-00000000000000ff.tmp");
        let flat_dead = temp
            .path()
            .join("agent-state/app/.app-2.json.99999999-01.tmp");
        let live = nested.join(format!(".app-1.prompt.{}-02.tmp", std::process::id()));
        let record = nested.join("app-1.json");
        for file in [&dead, &flat_dead, &live, &record] {
            fs::write(file, "x").unwrap();
        }
        assert_eq!(dir.stale_temp_files(), [flat_dead, dead]);
    }

    #[test]
    fn events_change_the_status_once_and_notifications_are_claimed_once() {
        let temp = tempfile::tempdir().unwrap();
        let dir = AgentStateDir::new(temp.path());
        assert_eq!(dir.read("p", "s-1").unwrap(), None);
        // Not reset: an event for a session ao-host does not know is ignored.
        assert_eq!(
            dir.record("p", "s-1", event(ReportedStatus::Idle), None)
                .unwrap(),
            None
        );
        assert_eq!(dir.read("p", "s-1").unwrap(), None);

        dir.reset("p", "s-1", None).unwrap();
        assert_eq!(dir.read("p", "s-1").unwrap().unwrap().status, None);
        let change = dir
            .record("p", "s-1", event(ReportedStatus::Working), None)
            .unwrap()
            .unwrap();
        assert_eq!(change.status, ReportedStatus::Working);
        assert!(change.first);
        assert_eq!(
            dir.record("p", "s-1", event(ReportedStatus::Working), None)
                .unwrap(),
            None
        );
        let asking = AgentEvent {
            waiting_for: Some("Allow `rm`?".into()),
            ..event(ReportedStatus::WaitingInput)
        };
        let change = dir
            .record("p", "s-1", asking.clone(), None)
            .unwrap()
            .unwrap();
        assert_eq!(change.waiting_for.as_deref(), Some("Allow `rm`?"));
        assert!(!change.first);
        // The same wait announced again, vaguer: the first question stays, nothing changes.
        let vaguer = AgentEvent {
            waiting_for: Some("Claude needs your permission".into()),
            ..event(ReportedStatus::WaitingInput)
        };
        assert_eq!(dir.record("p", "s-1", vaguer, None).unwrap(), None);
        assert!(dir.claim_notification("p", "s-1", change.number).unwrap());
        assert!(!dir.claim_notification("p", "s-1", change.number).unwrap());
        // A change that is no longer current is never notified.
        let working = dir
            .record("p", "s-1", event(ReportedStatus::Working), None)
            .unwrap()
            .unwrap();
        let asking_again = dir
            .record("p", "s-1", asking.clone(), None)
            .unwrap()
            .unwrap();
        assert!(!dir.claim_notification("p", "s-1", working.number).unwrap());
        // The same status again, after another, is a change of its own: notified again.
        assert!(dir
            .claim_notification("p", "s-1", asking_again.number)
            .unwrap());
        let state = dir.read("p", "s-1").unwrap().unwrap();
        assert_eq!(state.status, Some(ReportedStatus::WaitingInput));
        assert_eq!(state.waiting_for.as_deref(), Some("Allow `rm`?"));
        // Leaving waiting_input clears the question.
        dir.record("p", "s-1", event(ReportedStatus::Idle), None)
            .unwrap();
        assert_eq!(dir.read("p", "s-1").unwrap().unwrap().waiting_for, None);
    }

    #[test]
    fn an_observation_never_overwrites_a_newer_event() {
        let temp = tempfile::tempdir().unwrap();
        let dir = AgentStateDir::new(temp.path());
        dir.reset("p", "s-1", None).unwrap();
        dir.record("p", "s-1", event(ReportedStatus::WaitingInput), None)
            .unwrap();
        let seen = dir.read("p", "s-1").unwrap().unwrap().changes;
        // A new event lands between the observer's read and its write.
        dir.record("p", "s-1", event(ReportedStatus::Working), None)
            .unwrap();
        assert_eq!(
            dir.record("p", "s-1", event(ReportedStatus::Idle), Some(seen))
                .unwrap(),
            None
        );
        let state = dir.read("p", "s-1").unwrap().unwrap();
        assert_eq!(state.status, Some(ReportedStatus::Working));
        let seen = state.changes;
        assert!(dir
            .record("p", "s-1", event(ReportedStatus::Idle), Some(seen))
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_reported_conversation_is_kept_across_a_restart_and_bounded() {
        let temp = tempfile::tempdir().unwrap();
        let dir = AgentStateDir::new(temp.path());
        dir.reset("p", "s-1", None).unwrap();
        let started = |id: &str| AgentEvent {
            conversation: Some(id.into()),
            ..event(ReportedStatus::Idle)
        };
        dir.record("p", "s-1", started("ses_1"), None).unwrap();
        // The same status again: no change, but a new conversation is still recorded.
        assert_eq!(
            dir.record("p", "s-1", started("ses_2"), None).unwrap(),
            None
        );
        for refused in ["", "a\nb", &"x".repeat(257)] {
            dir.record("p", "s-1", started(refused), None).unwrap();
        }
        let state = dir.read("p", "s-1").unwrap().unwrap();
        assert_eq!(state.conversation.as_deref(), Some("ses_2"));
        assert_eq!(state.changes, 1);
        dir.reset("p", "s-1", None).unwrap();
        let state = dir.read("p", "s-1").unwrap().unwrap();
        assert_eq!(
            (state.status, state.conversation.as_deref()),
            (None, Some("ses_2"))
        );
        dir.remove("p", "s-1");
        dir.reset("p", "s-1", None).unwrap();
        assert_eq!(dir.read("p", "s-1").unwrap().unwrap().conversation, None);
    }

    #[test]
    fn prompts_are_kept_byte_exact_and_counted() {
        let temp = tempfile::tempdir().unwrap();
        let dir = AgentStateDir::new(temp.path());
        dir.reset("p", "s-1", None).unwrap();
        assert_eq!(dir.last_prompt("p", "s-1").unwrap(), None);
        let task = "\tindented\n  two \"q\" $(x) 🎉\n";
        let took = AgentEvent {
            prompt: Some(task.into()),
            ..event(ReportedStatus::Working)
        };
        dir.record("p", "s-1", took.clone(), None).unwrap();
        dir.record("p", "s-1", took, None).unwrap();
        assert_eq!(dir.last_prompt("p", "s-1").unwrap(), Some((2, task.into())));
        dir.reset("p", "s-1", None).unwrap();
        assert_eq!(dir.last_prompt("p", "s-1").unwrap(), None);
        dir.remove("p", "s-1");
        assert_eq!(dir.read("p", "s-1").unwrap(), None);
    }

    #[test]
    fn a_hooks_failure_is_kept_until_the_session_starts_again() {
        let temp = tempfile::tempdir().unwrap();
        let dir = AgentStateDir::new(temp.path());
        // Nothing for a project this ao-host never made a session in.
        dir.record_failure("p", "s-1", "no such thing").unwrap();
        assert_eq!(dir.hook_failure("p", "s-1"), None);
        assert!(!temp.path().join("agent-state/p").exists());
        dir.reset("p", "s-1", None).unwrap();
        dir.record_failure("p", "s-1", &"é".repeat(MAX_FAILURE_BYTES))
            .unwrap();
        let kept = dir.hook_failure("p", "s-1").unwrap();
        assert!(kept.starts_with("éé") && kept.ends_with('…'), "{kept}");
        dir.reset("p", "s-1", None).unwrap();
        assert_eq!(dir.hook_failure("p", "s-1"), None);
        dir.record_failure("p", "s-1", "disk full").unwrap();
        dir.remove("p", "s-1");
        assert_eq!(dir.hook_failure("p", "s-1"), None);
    }

    #[test]
    fn a_long_question_is_cut_on_a_character_boundary() {
        let cut = truncated("é".repeat(MAX_QUESTION_BYTES), MAX_QUESTION_BYTES - 1);
        assert!(cut.len() <= MAX_QUESTION_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn a_state_file_that_is_a_symlink_or_huge_is_unreadable_not_followed() {
        let temp = tempfile::tempdir().unwrap();
        let dir = AgentStateDir::new(temp.path());
        dir.reset("p", "s-1", None).unwrap();
        let path = dir.path("p", "s-1", StateFile::State);
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        assert!(dir.read("p", "s-1").is_err());
        fs::remove_file(&path).unwrap();
        fs::write(&path, vec![b' '; MAX_STATE_BYTES as usize + 1]).unwrap();
        assert!(dir.read("p", "s-1").is_err());
    }
}
