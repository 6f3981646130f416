//! Sessions: the record kept for every agent ao-host started, and where records live.

pub mod agent_state;
pub(crate) mod data_dir_id;
pub mod identity;
pub mod lock;
pub(crate) mod migrate;
pub(crate) mod project_ids;
pub mod store;

use serde::{Deserialize, Serialize};

pub use self::{
    agent_state::{AgentEvent, AgentState, AgentStateDir, ReportedStatus},
    lock::{LockDir, LockError, SessionLock},
    store::{Listing, SessionStore, StoreError},
};

/// A task or message larger than this belongs in a file in the repository, with a task
/// pointing to it.
pub const MAX_TASK_BYTES: usize = 1024 * 1024;

/// Where a session is in its life. Serialized lower-case, as scripts read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Id reserved; workspace, runtime or first message still in progress (its spawning
    /// process holds the session's lock until the agent has its task).
    Spawning,
    Working,
    Idle,
    WaitingInput,
    /// The agent process is gone.
    Exited,
    /// Stopped by `ao-host session kill`; the record is archived.
    Killed,
    /// A spawn that did not finish: its `ao-host` process died half-way (listed while the
    /// record waits for `gc`), or `gc` undid it (archived, so the id is never reused).
    Errored,
    /// A kill stopped half-way: its agent is stopped, but something of it is left (its
    /// workspace; `note` says what and why). Recorded, never archived as done: `ao-host session
    /// kill` or `ao-host gc` finishes it.
    Killing,
    /// Its host does not answer: nothing is known about it now. Only ever shown by a listing,
    /// never recorded: the record keeps what was last known, and the status comes back with
    /// the host.
    Unreachable,
    /// Its budget ran out (`budgets:`): its agent was interrupted, and it gets no messages or
    /// reactions until the budget is raised or a message is forced. Shown by listings from the
    /// budget's mark (see [`crate::budget::ledger`]); the record keeps its agent's status.
    OverBudget,
    /// Its host is being connected to for the first time and has not answered yet (ssh gives a
    /// connection its connect timeout); like `unreachable`, only ever shown by a listing.
    Connecting,
}

/// What a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionRole {
    Worker,
    Orchestrator,
}

impl SessionStatus {
    /// The name scripts and listings read, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spawning => "spawning",
            Self::Working => "working",
            Self::Idle => "idle",
            Self::WaitingInput => "waiting_input",
            Self::Exited => "exited",
            Self::Killed => "killed",
            Self::Killing => "killing",
            Self::Errored => "errored",
            Self::Unreachable => "unreachable",
            Self::Connecting => "connecting",
            Self::OverBudget => "over_budget",
        }
    }
}

impl From<ReportedStatus> for SessionStatus {
    fn from(status: ReportedStatus) -> Self {
        match status {
            ReportedStatus::Working => Self::Working,
            ReportedStatus::Idle => Self::Idle,
            ReportedStatus::WaitingInput => Self::WaitingInput,
            ReportedStatus::Exited => Self::Exited,
        }
    }
}

impl SessionRole {
    /// The value of `AO_CALLER_TYPE` inside the session.
    pub(crate) fn caller_type(self) -> &'static str {
        match self {
            Self::Worker => "agent",
            Self::Orchestrator => "orchestrator",
        }
    }

    /// Branch namespace: `session/<id>` or `orchestrator/<id>`.
    pub(crate) fn branch_for(self, id: &str) -> String {
        match self {
            Self::Worker => format!("session/{id}"),
            Self::Orchestrator => format!("orchestrator/{id}"),
        }
    }

    /// The branch of a confined session: one level below [`Self::branch_for`], because git
    /// moves a branch by creating `<ref>.lock` beside it, so the folder holding it must be
    /// writable by the agent, and `refs/heads/session/<id>/` holds no other session's branch.
    pub(crate) fn confined_branch_for(self, id: &str) -> String {
        format!("{}/work", self.branch_for(id))
    }
}

/// One session's record, stored as YAML and printed as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub project_id: String,
    pub role: SessionRole,
    pub status: SessionStatus,
    pub agent: String,
    pub runtime: String,
    pub workspace: String,
    pub branch: String,
    /// Owned by the workspace plugin; opaque to the host.
    pub workspace_path: Option<String>,
    /// Owned by the runtime plugin; opaque to the host.
    pub runtime_handle: Option<String>,
    /// The operator's task, exactly as given (workers only).
    pub task: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// The machine the session runs on; `None` for this one.
    #[serde(default)]
    pub host: Option<String>,
    /// When the agent last changed what it was doing, as far as ao-host saw (ms since epoch).
    #[serde(default)]
    pub activity_at: Option<u64>,
    /// What the agent asks the operator, while `waiting_input`.
    #[serde(default)]
    pub waiting_for: Option<String>,
    /// The agent's own id for its conversation, to resume it by (`ao-host session restore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The agent reports its state through events: its status is read from them, not from its
    /// screen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reports_events: bool,
    /// Its agent says it reports events but reported none when it took its task (its hooks
    /// forbidden by a policy, or failing): its status is read from its screen, whatever its
    /// state file says, and `note` says why. Optional: records written before it read fine.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub status_from_screen: bool,
    /// Since when its host has not answered (ms since the Unix epoch), while `unreachable` or
    /// `connecting`; only ever set by a listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_since: Option<u64>,
    /// Why the session is `errored`, or what went wrong last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What its model replies used and cost. Kept in the record when the session ends, so a
    /// kill never loses it; a live session's is filled in by listings (from the usage store,
    /// read on through its agent plugin). Optional: records written before it read fine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::usage::SessionUsage>,
    /// The sandbox its agent runs in; `None`: unconfined. A restore confines it the same way.
    /// Optional: records written before it read as unconfined, which they were. Always
    /// written (`null` when unconfined), so a listing's JSON says so rather than leaving it out.
    #[serde(default)]
    pub sandbox: Option<SessionSandbox>,
}

/// How a session's agent is confined (see `lifecycle::sandbox`): the rest of its policy is
/// rebuilt from the config and its plugins at each start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSandbox {
    /// The sandbox plugin.
    pub plugin: String,
    pub network: ao_plugin_api::sandbox::NetworkAccess,
}

impl SessionSandbox {
    /// One cell of a listing: the plugin, and `no network` when it has none.
    pub fn describe(&self) -> String {
        match self.network {
            ao_plugin_api::sandbox::NetworkAccess::Full => self.plugin.clone(),
            ao_plugin_api::sandbox::NetworkAccess::None => format!("{} (no network)", self.plugin),
        }
    }
}

impl Session {
    /// Whether its status is taken from its agent's events rather than its screen.
    pub(crate) fn reads_events(&self) -> bool {
        self.reports_events && !self.status_from_screen
    }

    /// The first line of the task, cut to `max_chars` characters, for one-line listings.
    pub fn task_headline(&self, max_chars: usize) -> String {
        let first = self
            .task
            .as_deref()
            .unwrap_or("-")
            .lines()
            .next()
            .unwrap_or("");
        first.chars().take(max_chars).collect()
    }
}

/// Whether a process exists (signal 0 checks existence and permission; nothing is delivered).
/// Only for temporary files, whose names carry their writer's pid (see
/// [`ao_plugin_kit::private::create_temp`]); sessions use locks.
pub(crate) fn process_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 has no effect beyond the check.
    let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A temporary file older than this is a leftover whatever its name says: a write takes
/// milliseconds, and the pid in its name may have been handed to another process since.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether `entry` is a temporary file (named `.<name>.<pid>-<random>.tmp` by
/// [`ao_plugin_kit::private::create_temp`]) that its writer left behind: the writer is gone, or
/// the file is older than any write takes.
pub(crate) fn is_stale_temp(entry: &std::fs::DirEntry) -> bool {
    let name = entry.file_name().to_string_lossy().into_owned();
    let Some(writer) = name
        .strip_suffix(".tmp")
        .filter(|_| name.starts_with('.'))
        .and_then(|rest| rest.rsplit('.').next())
        .and_then(|pid_n| pid_n.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
    else {
        return false;
    };
    let old = entry
        .metadata()
        .ok()
        .filter(std::fs::Metadata::is_file)
        .and_then(|meta| meta.modified().ok())
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age > STALE_TEMP_AGE);
    old || !process_alive(writer)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_the_serialized_ones() {
        for status in [
            SessionStatus::Spawning,
            SessionStatus::Working,
            SessionStatus::Idle,
            SessionStatus::WaitingInput,
            SessionStatus::Exited,
            SessionStatus::Killed,
            SessionStatus::Killing,
            SessionStatus::Errored,
            SessionStatus::OverBudget,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }
}
