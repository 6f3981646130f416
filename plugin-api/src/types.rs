//! FFI-safe values exchanged between the host and plugins.
//!
//! Everything here is `#[repr(C)]` and `StableAbi`, so the layout checker can prove that host and
//! plugin agree on it before any call is made.

use abi_stable::{
    std_types::{ROption, RString, RVec},
    StableAbi,
};

/// Which interface a plugin implements.
#[repr(u8)]
#[derive(
    StableAbi,
    serde::Serialize,
    serde::Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
pub enum PluginKind {
    /// Runs agent processes ([`crate::Runtime`]).
    Runtime,
    /// Knows one coding-agent CLI ([`crate::Agent`]).
    Agent,
    /// Makes a checkout per session ([`crate::Workspace`]).
    Workspace,
}

impl PluginKind {
    /// Every kind, in the order listings show them.
    pub const ALL: [PluginKind; 3] = [Self::Runtime, Self::Agent, Self::Workspace];

    /// The lower-case name used in config files, manifests and CLI output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Runtime => "runtime",
            Self::Agent => "agent",
            Self::Workspace => "workspace",
        }
    }

    /// The kind named `name` as [`PluginKind::as_str`] spells it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One environment variable for the agent's process.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// The variable's name.
    pub name: RString,
    /// Its value.
    pub value: RString,
}

impl EnvVar {
    /// `name=value`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: RString::from(name.into()),
            value: RString::from(value.into()),
        }
    }
}

/// Handed to every plugin constructor: who the plugin is in this host and its settings.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PluginContext {
    /// The name the plugin was registered under (`tmux`, `git-worktree`, …).
    pub plugin_name: RString,
    /// The host's data directory, for plugins that keep state next to the sessions.
    pub data_dir: RString,
    /// The plugin's mapping from `plugins.config.<name>` in `ao-rs.yaml`, as YAML text.
    /// Empty when the operator configured nothing.
    pub config_yaml: RString,
}

/// How a plugin reaches the machine its sessions live on, when that is not the host's own
/// (`ao-host spawn --host NAME`). A plugin built with a transport runs everything there through
/// the helpers of `ao-plugin-kit` (`Program`, `Files`, `SessionFiles`), which pick it up by
/// themselves (see [`crate::transport`]). (Added in 0.1.6.)
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// The host's name in `ao-rs.yaml` (`hosts.<name>`), for messages.
    pub host: RString,
    /// The argv that runs one POSIX shell command line on the host, given as its one last
    /// argument: `ssh -o ControlPath=… -o BatchMode=yes -p 22 dev@10.0.0.12 --`.
    pub command: RVec<RString>,
}

/// What a runtime needs to start an agent process.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RuntimeCreateRequest {
    /// The session id; validated by the host as `[A-Za-z0-9_-]+`, never starting with `-`.
    pub session_id: RString,
    /// Working directory: the workspace path returned by the workspace plugin.
    pub cwd: RString,
    /// The program and its arguments, exactly as the agent plugin returned them.
    pub launch_command: RVec<RString>,
    /// Variables added to the process environment.
    pub env: RVec<EnvVar>,
}

/// The session as an agent plugin sees it when building its command line and environment.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AgentSession {
    /// The session's id (`[A-Za-z0-9_-]+`, validated by the host).
    pub session_id: RString,
    /// The project's id, as in `projects.<id>`.
    pub project_id: RString,
    /// The session's branch.
    pub branch: RString,
    /// Where the workspace plugin made its checkout.
    pub workspace_path: RString,
    /// Instructions from ao-host itself (the session's role, how to report back), kept apart
    /// from the operator's task so the task reaches the agent byte-exact.
    pub system_prompt: ROption<RString>,
    /// The project's `agent_config` mapping from `ao-rs.yaml`, as YAML text (may be empty).
    pub agent_config: RString,
}

/// What an agent plugin reads off the runtime's screen right after launch.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The agent accepts input now.
    Ready,
    /// Still starting up; ask again shortly.
    Starting,
    /// A dialog is in the way. `answer` holds the keys that dismiss it when the operator
    /// allowed that in config; empty means a person must answer, and `reason` says what to do.
    Blocked {
        /// What is in the way, and what a person should do.
        reason: RString,
        /// The keys that dismiss it, when config allows; empty if a person must answer.
        answer: RVec<RString>,
    },
}

/// What the agent is doing, as far as its screen tells.
#[repr(u8)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Done with its turn, nothing asked.
    Idle,
    /// Thinking, running tools, writing.
    Working,
    /// Asking the operator something.
    WaitingInput,
    /// The CLI is gone.
    Exited,
}

impl Activity {
    /// The lower-case name listings show.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Working => "working",
            Self::WaitingInput => "waiting_input",
            Self::Exited => "exited",
        }
    }
}

/// Everything a workspace plugin needs to make an isolated checkout for one session.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceCreateConfig {
    /// The project's id, as in `projects.<id>`.
    pub project_id: RString,
    /// The session's id; name what you make after it.
    pub session_id: RString,
    /// Branch to create (or reuse, with `reuse_branch`).
    pub branch: RString,
    /// The project's repository.
    pub repo_path: RString,
    /// The branch sessions start from.
    pub default_branch: RString,
    /// Paths relative to the repository to symlink into the workspace (e.g. `.env`).
    pub symlinks: RVec<RString>,
    /// Commands run inside the new workspace, in order, after it is made.
    pub post_create: RVec<RString>,
    /// Check out `branch` if it already exists instead of refusing.
    pub reuse_branch: bool,
}

/// One line of `ao-host doctor`: something a plugin needs on this machine, and whether it is
/// there. (Added in 0.1.3.)
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DoctorCheck {
    /// What was checked, e.g. `tmux` or `worktree root`.
    pub what: RString,
    /// Whether it is there and usable.
    pub ok: bool,
    /// When ok, what was found (a version, a path); otherwise the exact fix.
    pub detail: RString,
}

impl DoctorCheck {
    /// `what` is there: `found` says what was found (a path, a version).
    pub fn passed(what: impl Into<String>, found: impl Into<String>) -> Self {
        Self {
            what: RString::from(what.into()),
            ok: true,
            detail: RString::from(found.into()),
        }
    }

    /// `what` is missing or unusable: `fix` says what to do.
    pub fn failed(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            what: RString::from(what.into()),
            ok: false,
            detail: RString::from(fix.into()),
        }
    }
}

/// The repository that holds a folder, as a workspace plugin finds it. (Added in 0.1.3.)
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RepositoryInfo {
    /// The main repository's root, also when the folder is inside one of its linked worktrees.
    pub root: RString,
    /// The branch sessions start from, when the repository tells: origin's HEAD branch, else the
    /// branch checked out in the main worktree.
    pub default_branch: ROption<RString>,
}

/// How the host starts (or resumes) an agent. (Added in 0.1.4.)
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LaunchRequest {
    /// The session the agent starts for.
    pub session: AgentSession,
    /// The operator's first message, for an agent that can take it at start (a prompt argument),
    /// so it never goes through a terminal's input box, which may rewrite it (tabs, pastes).
    pub first_message: ROption<RString>,
    /// The program that records the agent's state for ao-host, as argv. An agent with hooks runs
    /// it on each of its events with the event's details as a JSON object on stdin, adding:
    ///
    /// - `--status S`: what the event means: `working`, `idle`, `waiting_input` or `exited`;
    /// - `--waiting-for-field F` (optional): the field of that JSON holding what the agent asks
    ///   the operator (with `waiting_input`);
    /// - `--prompt-field F` (optional): the field holding a prompt the agent just took, which
    ///   the host compares with what it sent.
    /// - `--conversation-field F` (optional, 0.1.6): the field holding the agent's own id for its
    ///   conversation, for an agent that chooses it itself (instead of taking one in `argv`): the
    ///   host keeps the last one reported and gives it back as [`LaunchRequest::resume`];
    /// - `--unless F=V` (optional, repeatable): the event means nothing when field `F` holds `V`.
    ///
    /// A field is a top-level name or a JSON pointer (`/tool_input/command`).
    ///
    /// The program prints nothing and always exits 0, so it never changes what the agent does.
    /// Empty when the host records no state for this session.
    pub event_command: RVec<RString>,
    /// Resume this conversation (an id [`LaunchPlan::conversation_id`] gave at spawn) instead of
    /// starting a new one.
    pub resume: ROption<RString>,
    /// Programs the agent may run without asking the operator: `ao-host` for an orchestrator, so
    /// it can run its workers unattended. An agent with permission rules allows these commands
    /// and nothing broader; empty for a worker.
    pub allowed_commands: RVec<RString>,
}

impl LaunchRequest {
    /// The longest first message a CLI should get as an argument: Linux refuses a single
    /// argument of 128 KiB or more. A longer one is left to the host to type in.
    pub const MAX_INLINE_MESSAGE_BYTES: usize = 120 * 1024;

    /// The first message, when it fits in one argument ([`Self::MAX_INLINE_MESSAGE_BYTES`]).
    pub fn inline_first_message(&self) -> Option<&str> {
        self.first_message
            .as_ref()
            .into_option()
            .map(RString::as_str)
            .filter(|message| message.len() <= Self::MAX_INLINE_MESSAGE_BYTES)
    }

    /// [`Self::event_command`] as plain strings, for a hook configuration to be built from.
    pub fn event_argv(&self) -> Vec<String> {
        self.event_command.iter().map(|a| a.to_string()).collect()
    }

    /// [`Self::allowed_commands`] as plain strings.
    pub fn allowed_programs(&self) -> Vec<String> {
        self.allowed_commands
            .iter()
            .map(|a| a.to_string())
            .collect()
    }
}

/// The agent's answer to a [`LaunchRequest`]. (Added in 0.1.4.)
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    /// The program and its arguments.
    pub argv: RVec<RString>,
    /// `argv` carries the first message: the host does not type it in.
    pub takes_first_message: bool,
    /// The agent's own id for the conversation, stored in the session record so that
    /// `ao-host session restore` can resume it.
    pub conversation_id: ROption<RString>,
    /// The agent will run `event_command` on its events: the host reads its state from them
    /// instead of from its screen.
    pub reports_events: bool,
}
