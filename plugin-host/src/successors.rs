//! How the host reads the enums that can grow (`ao_plugin_api::ActivityState` and its
//! siblings): a variant this build does not know, sent by a library built against a newer
//! ao-plugin-api, becomes the enum's fallback, named in the log, never an error or a panic.

use std::fmt::Debug;

use ao_plugin_api::{
    abi_stable::nonexhaustive_enum::{GetEnumInfo, NonExhaustiveFor},
    scm::{CheckState, Mergeability, PullRequestState, ReviewDecision},
    Activity, ActivityState, ErrorKind, PluginError, PluginErrorKind, PluginFailure, Readiness,
    ReadinessState,
};

/// An enum that can grow, and what the host makes of a variant it does not know.
pub trait Successor: GetEnumInfo + Clone + Debug + Sized {
    /// What the enum is, as the log names it.
    const WHAT: &'static str;
    /// The closest meaning every variant to come can safely be read as.
    fn fallback() -> Self;
}

impl Successor for ActivityState {
    const WHAT: &'static str = "activity";
    /// Busy: the host neither sends a message nor ends the session on a state it cannot read.
    fn fallback() -> Self {
        Self::Working
    }
}

impl Successor for ReadinessState {
    const WHAT: &'static str = "readiness";
    /// Not ready yet: the host asks again, until its spawn timeout says why it gave up.
    fn fallback() -> Self {
        Self::Starting
    }
}

impl Successor for ErrorKind {
    const WHAT: &'static str = "error kind";
    fn fallback() -> Self {
        Self::Failed
    }
}

impl Successor for PullRequestState {
    const WHAT: &'static str = "pull request state";
    /// Still open: the host keeps watching it, and cleans nothing up.
    fn fallback() -> Self {
        Self::Open
    }
}

impl Successor for Mergeability {
    const WHAT: &'static str = "mergeability";
    fn fallback() -> Self {
        Self::Unknown
    }
}

impl Successor for ReviewDecision {
    const WHAT: &'static str = "review decision";
    fn fallback() -> Self {
        Self::None
    }
}

impl Successor for CheckState {
    const WHAT: &'static str = "check state";
    /// Still running: nothing to react to yet.
    fn fallback() -> Self {
        Self::Pending
    }
}

/// `value` if this build knows its variant; else the fallback, with a warning that names the
/// variant (its `Debug` text, written by the library that knows it) and the plugin.
pub fn known<E: Successor>(value: &NonExhaustiveFor<E>, plugin: &str) -> E
where
    NonExhaustiveFor<E>: Debug,
{
    match value.as_enum() {
        Ok(known) => known.clone(),
        Err(_) => unknown(&format!("{value:?}"), plugin),
    }
}

/// The fallback for a variant named `name` that this build does not know, logged.
pub fn unknown<E: Successor>(name: &str, plugin: &str) -> E {
    let fallback = E::fallback();
    tracing::warn!(
        plugin,
        "plugin `{plugin}` answered {} `{name}`, which this ao-host does not know (the plugin was built against a newer ao-plugin-api); read as {fallback:?}",
        E::WHAT
    );
    fallback
}

/// A failure of a method added since 0.1.7, as the host's older error type.
pub fn plugin_error(failure: PluginFailure, plugin: &str) -> PluginError {
    let kind = match known(&failure.kind, plugin) {
        ErrorKind::Config => PluginErrorKind::Config,
        ErrorKind::InvalidInput => PluginErrorKind::InvalidInput,
        ErrorKind::Unavailable => PluginErrorKind::Unavailable,
        ErrorKind::NotFound => PluginErrorKind::NotFound,
        ErrorKind::Unsupported => PluginErrorKind::Unsupported,
        ErrorKind::Panicked => PluginErrorKind::Panicked,
        _ => PluginErrorKind::Failed,
    };
    PluginError {
        kind,
        message: failure.message,
    }
}

/// An activity as the host's logic reads it.
pub fn activity(state: ActivityState) -> Activity {
    match state {
        ActivityState::Idle => Activity::Idle,
        ActivityState::WaitingInput => Activity::WaitingInput,
        ActivityState::Exited => Activity::Exited,
        _ => Activity::Working,
    }
}

/// A readiness as the host's logic reads it.
pub fn readiness(state: ReadinessState) -> Readiness {
    match state {
        ReadinessState::Ready => Readiness::Ready,
        ReadinessState::Blocked { reason, answer } => Readiness::Blocked { reason, answer },
        _ => Readiness::Starting,
    }
}
