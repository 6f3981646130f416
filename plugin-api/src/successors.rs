//! The enums that can grow: non-exhaustive successors of [`Activity`], [`Readiness`],
//! [`PluginErrorKind`] and [`PluginKind`].
//!
//! abi_stable refuses a library whose exhaustive enum has a variant the host's lacks, so the
//! first three enums can never gain one. Their successors cross the boundary as abi_stable's
//! [`NonExhaustive`] ([`NonExhaustiveFor<ActivityState>`] and so on): a library built against a
//! newer ao-plugin-api may send a variant this host does not know, and the host reads it as a
//! fallback it names in its log instead of refusing the library. Methods added to the
//! interfaces since 0.1.7 use them, and fail with a [`PluginFailure`], whose kind can grow too.
//! Their defaults adapt the old methods, so a plugin written before keeps working unchanged.

// The `StableAbi` derive of a non-exhaustive enum trips this lint in code we do not write.
#![allow(non_local_definitions)]

use std::fmt;

use abi_stable::{
    nonexhaustive_enum::{NonExhaustive, NonExhaustiveFor},
    std_types::{RString, RVec},
    StableAbi,
};

use crate::{Activity, PluginError, PluginErrorKind, PluginKind, Readiness};

/// What the agent is doing, as far as its screen tells: [`Activity`] that can grow.
#[repr(u8)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 2], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum ActivityState {
    /// Waiting for a message.
    Idle,
    /// Busy with one.
    Working,
    /// Asking the operator something (a permission, a choice).
    WaitingInput,
    /// The agent's program has ended.
    Exited,
}

impl From<Activity> for ActivityState {
    fn from(activity: Activity) -> Self {
        match activity {
            Activity::Idle => Self::Idle,
            Activity::Working => Self::Working,
            Activity::WaitingInput => Self::WaitingInput,
            Activity::Exited => Self::Exited,
        }
    }
}

/// Whether the agent accepts a message now: [`Readiness`] that can grow.
#[repr(u8)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 16], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum ReadinessState {
    /// The agent accepts input now.
    Ready,
    /// Still starting up; ask again shortly.
    Starting,
    /// A dialog is in the way, as [`Readiness::Blocked`].
    Blocked {
        /// What is in the way, and what a person should do.
        reason: RString,
        /// The keys that dismiss it, when config allows; empty if a person must answer.
        answer: RVec<RString>,
    },
}

impl From<Readiness> for ReadinessState {
    fn from(readiness: Readiness) -> Self {
        match readiness {
            Readiness::Ready => Self::Ready,
            Readiness::Starting => Self::Starting,
            Readiness::Blocked { reason, answer } => Self::Blocked { reason, answer },
        }
    }
}

/// Which interface a plugin implements: [`PluginKind`] that can grow. The host's own name for a
/// kind: [`PluginKind`] is exhaustive (it is in the layout of the first root module), so the
/// kinds added since ([`InterfaceKind::Scm`], [`InterfaceKind::Sandbox`], 0.1.9) are only here. It never crosses the
/// boundary; manifests name kinds by [`InterfaceKind::as_str`]. (Added in 0.1.9.)
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum InterfaceKind {
    /// As [`PluginKind::Runtime`].
    Runtime,
    /// As [`PluginKind::Agent`].
    Agent,
    /// As [`PluginKind::Workspace`].
    Workspace,
    /// Knows one code host ([`crate::Scm`]). (Added in 0.1.9.)
    Scm,
    /// Runs an agent confined ([`crate::Sandbox`]). (Added in 0.1.9.)
    Sandbox,
}

impl InterfaceKind {
    /// Every kind, in the order listings show them.
    pub const ALL: [InterfaceKind; 5] = [
        Self::Runtime,
        Self::Agent,
        Self::Workspace,
        Self::Scm,
        Self::Sandbox,
    ];

    /// The lower-case name used in config files, manifests and CLI output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Runtime => "runtime",
            Self::Agent => "agent",
            Self::Workspace => "workspace",
            Self::Scm => "scm",
            Self::Sandbox => "sandbox",
        }
    }

    /// The kind named `name` as [`InterfaceKind::as_str`] spells it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl From<PluginKind> for InterfaceKind {
    fn from(kind: PluginKind) -> Self {
        match kind {
            PluginKind::Runtime => Self::Runtime,
            PluginKind::Agent => Self::Agent,
            PluginKind::Workspace => Self::Workspace,
        }
    }
}

impl fmt::Display for InterfaceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong: [`PluginErrorKind`] that can grow.
#[repr(u8)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 2], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum ErrorKind {
    /// As [`PluginErrorKind::Config`].
    Config,
    /// As [`PluginErrorKind::InvalidInput`].
    InvalidInput,
    /// As [`PluginErrorKind::Unavailable`].
    Unavailable,
    /// As [`PluginErrorKind::NotFound`].
    NotFound,
    /// As [`PluginErrorKind::Failed`].
    Failed,
    /// As [`PluginErrorKind::Unsupported`].
    Unsupported,
    /// As [`PluginErrorKind::Panicked`].
    Panicked,
    /// A service the plugin calls said to wait (a rate limit); the plugin's own report says
    /// until when. A host before 0.1.9 reads it as `Failed`. (Added in 0.1.9.)
    RateLimited,
}

impl From<PluginErrorKind> for ErrorKind {
    fn from(kind: PluginErrorKind) -> Self {
        match kind {
            PluginErrorKind::Config => Self::Config,
            PluginErrorKind::InvalidInput => Self::InvalidInput,
            PluginErrorKind::Unavailable => Self::Unavailable,
            PluginErrorKind::NotFound => Self::NotFound,
            PluginErrorKind::Failed => Self::Failed,
            PluginErrorKind::Unsupported => Self::Unsupported,
            PluginErrorKind::Panicked => Self::Panicked,
        }
    }
}

/// The error of methods added since 0.1.7: a [`PluginError`] whose kind can grow.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct PluginFailure {
    /// What went wrong; a host reads a kind it does not know as `Failed`.
    pub kind: NonExhaustiveFor<ErrorKind>,
    /// For the operator: the thing that failed and the fix.
    pub message: RString,
}

impl PluginFailure {
    /// A failure of `kind`, saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind: NonExhaustive::new(kind),
            message: RString::from(message.into()),
        }
    }

    /// The message, for the operator.
    pub fn message(&self) -> &str {
        self.message.as_str()
    }
}

impl From<PluginError> for PluginFailure {
    fn from(error: PluginError) -> Self {
        Self {
            kind: NonExhaustive::new(error.kind.into()),
            message: error.message,
        }
    }
}

impl fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginFailure {}
