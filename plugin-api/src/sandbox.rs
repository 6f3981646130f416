//! Confining an agent: what a session may see, write and reach, and the plugins that enforce it.
//! (Added in 0.1.9.)
//!
//! The host decides the *policy* — an ordered list of [`PathRule`]s and a [`NetworkAccess`] —
//! from its config, the workspace plugin ([`Workspace::confinement`]: what a commit on the
//! session's own branch needs) and the agent plugin ([`Agent::launch_confined`]: the agent CLI's
//! own state). A [`Sandbox`] plugin only turns that policy and the agent's argv into an argv
//! that runs the agent confined (`bwrap … -- claude …`). Runtimes start what they are handed, so
//! a confined agent needs nothing of the runtime.
//!
//! Rules are applied in order, each one over what came before it on its path and everything
//! under it; whatever no rule names is read-only. So `Hidden ~/.local/share/ao` followed by
//! `Writable ~/.local/share/ao/worktrees/app/app-1` hides the data dir except that one folder.
//!
//! A tool that cannot express a rule exactly must refuse the request (`Unsupported`, naming the
//! rule), never confine less than asked.
//!
//! [`Workspace::confinement`]: crate::Workspace::confinement
//! [`Agent::launch_confined`]: crate::Agent::launch_confined
//! [`Sandbox`]: crate::Sandbox

use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};

use crate::{EnvVar, LaunchPlan, LaunchRequest};

/// How a confined program sees one path (and everything under it).
#[repr(u8)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PathAccess {
    /// Not there to read: an empty read-only folder in place of a folder, an empty file in
    /// place of a file. Nothing to do for a path that does not exist.
    Hidden,
    /// Readable, not writable (what every path no rule names is). Nothing to do for a path that
    /// does not exist.
    ReadOnly,
    /// Readable and writable, as the operator's own. The host makes sure the path exists.
    Writable,
    /// An empty writable folder of the session's own, gone when the program ends (`/tmp`).
    Private,
}

/// One rule of a policy: `path` (absolute, without `..`) is seen as `access`.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// An absolute path on the host the agent runs on.
    pub path: RString,
    /// How it is seen.
    pub access: PathAccess,
}

impl PathRule {
    /// `path` seen as `access`.
    pub fn new(path: impl Into<RString>, access: PathAccess) -> Self {
        Self {
            path: path.into(),
            access,
        }
    }
}

/// What a confined program may reach over the network.
#[repr(u8)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NetworkAccess {
    /// Whatever the host itself reaches (an agent needs its model's API).
    Full,
    /// Nothing, not even loopback services outside the sandbox.
    None,
}

/// What the host asks a [`Sandbox`](crate::Sandbox) plugin to confine.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SandboxRequest {
    /// The session the program runs for.
    pub session_id: RString,
    /// The program and its arguments, as the agent plugin gave them.
    pub argv: RVec<RString>,
    /// Where it starts (the session's workspace); always inside a `Writable` rule.
    pub cwd: RString,
    /// The policy's paths, in order (see the [module docs](crate::sandbox)).
    pub paths: RVec<PathRule>,
    /// The policy's network.
    pub network: NetworkAccess,
}

/// A [`Sandbox`](crate::Sandbox) plugin's answer: the argv the runtime starts instead.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ConfinedCommand {
    /// The confining program, its arguments, and the request's argv, unchanged, at its end.
    /// It keeps the environment it is started with (the host already chose it) and starts the
    /// program in the request's `cwd`.
    pub argv: RVec<RString>,
    /// Plain remarks for the operator (a rule the tool applied more strictly than asked).
    pub notes: RVec<RString>,
}

/// What the host asks [`Agent::launch_confined`](crate::Agent::launch_confined).
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ConfinedLaunchRequest {
    /// The launch, as for [`Agent::launch`](crate::Agent::launch).
    pub launch: LaunchRequest,
    /// Start the agent in its own no-prompt mode (it asks no permission for any tool): the
    /// operator asked for it, and the sandbox bounds what the agent can do.
    pub unattended: bool,
}

/// An agent plugin's answer to a [`ConfinedLaunchRequest`].
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ConfinedLaunchPlan {
    /// The launch itself, as [`Agent::launch`](crate::Agent::launch) answers.
    pub plan: LaunchPlan,
    /// The agent CLI's own state the sandbox must let it use: its config home for this session
    /// (`Writable`), a shared folder it may read but must not change (`ReadOnly`).
    pub paths: RVec<PathRule>,
    /// Variables the agent needs from the operator's environment (its API key and endpoint),
    /// by name; the host passes these and drops the rest of what it does not set itself.
    pub pass_env: RVec<RString>,
    /// Variables to set for the confined agent, over the launch's own (its per-session config
    /// home).
    pub env: RVec<EnvVar>,
}

/// What the host asks [`Workspace::confinement`](crate::Workspace::confinement).
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceConfinementQuery {
    /// The session's workspace, as [`Workspace::create`](crate::Workspace::create) gave it.
    pub path: RString,
    /// The session's own branch: the only one a confined agent may move.
    pub branch: RString,
}

/// What a session confined to its workspace needs beyond the workspace folder itself.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceConfinement {
    /// In order, after the host's `Writable` rule on the workspace: what a commit on the
    /// session's own branch writes (`Writable`), what inside those must stay as it is
    /// (`ReadOnly`: files that would let the agent run code in the operator's unconfined tools),
    /// and the other sessions' workspaces (`Hidden`).
    pub paths: RVec<PathRule>,
    /// Plain remarks for the operator.
    pub notes: RVec<RString>,
}
