//! What kind of failure a lifecycle error is: one classification, decided here beside the
//! errors, so a front end that answers by kind (an HTTP status) maps one small enum and never
//! looks inside the errors of the layers below.

use std::sync::Arc;

use ao_plugin_api::{InterfaceKind, PluginErrorKind};

use super::{confine::ConfineError, DeliverError, LifecycleError, SpawnError, SpawnStepError};
use crate::{
    config::ConfigError,
    plugins::{PluginCallError, RegistryError},
    remote::HostError,
    session::{LockError, StoreError},
};

/// Whose fault a failure is, and what the caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// What the request names does not exist: a project, a session, a host, a plugin.
    NotFound,
    /// The session cannot take this now: busy, waiting for an answer, not running.
    Conflict,
    /// The request itself is wrong: an empty task, an invalid id, a plugin's refusal of it.
    BadRequest,
    /// The request is larger than a task or message may be.
    TooLarge,
    /// A plugin or a host failed at what it was asked.
    UpstreamFailed,
    /// A plugin did not answer in time.
    TimedOut,
    /// What the request needs is not available here: a plugin not loaded, ids used up.
    Unavailable,
    /// ao-host's own files or machine failed: an unreadable record, an invalid config.
    Internal,
}

/// Why a plugin instance could not be built; kept (shared) for every later call that needs it.
#[derive(Debug, thiserror::Error)]
pub enum NotBuilt {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The constructor's thread ended without an answer (a bug of the host, not the plugin's).
    #[error("{kind} plugin `{name}`: constructor aborted: {why}")]
    Aborted {
        kind: InterfaceKind,
        name: String,
        why: String,
    },
}

/// A plugin that could not be built. The message names the config file; the cause is kept
/// typed, but not as `#[source]`: the message already carries it, and error-chain printers
/// would repeat it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PluginUnavailable {
    pub message: String,
    pub cause: Arc<NotBuilt>,
}

impl ErrorClass {
    fn of_store(error: &StoreError) -> Self {
        match error {
            StoreError::NotFound { .. } => Self::NotFound,
            StoreError::InvalidId(_) => Self::BadRequest,
            StoreError::Exhausted(_) => Self::Unavailable,
            StoreError::NotAFolder { .. }
            | StoreError::Io { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Untrusted { .. } => Self::Internal,
        }
    }

    fn of_config(error: &ConfigError) -> Self {
        match error {
            ConfigError::UnknownProject { .. } => Self::NotFound,
            ConfigError::NoProject { .. }
            | ConfigError::InvalidProjectArg { .. }
            | ConfigError::Discovery { .. } => Self::BadRequest,
            ConfigError::Read { .. }
            | ConfigError::Untrusted { .. }
            | ConfigError::Invalid { .. }
            | ConfigError::NoHome => Self::Internal,
        }
    }

    /// A plugin's refusal is the request's fault when the plugin says so; anything else is the
    /// plugin's, or its slowness.
    fn of_call(error: &PluginCallError) -> Self {
        match error {
            PluginCallError::Timeout { .. } => Self::TimedOut,
            other => match other.kind() {
                PluginErrorKind::InvalidInput => Self::BadRequest,
                PluginErrorKind::NotFound => Self::NotFound,
                PluginErrorKind::Unavailable => Self::Unavailable,
                _ => Self::UpstreamFailed,
            },
        }
    }

    /// A confinement that cannot work here (no bubblewrap, a runtime without exact
    /// environments) is unavailable; a bad configured path is the request's to fix.
    fn of_confine(error: &ConfineError) -> Self {
        match error {
            ConfineError::Step { error, .. } => Self::of_call(error),
            ConfineError::Policy(_) => Self::BadRequest,
            ConfineError::Choice(error) => error.class(),
            ConfineError::Host(error) => Self::of_host(error),
            ConfineError::NoHome | ConfineError::ExactEnvironment { .. } => Self::Unavailable,
        }
    }

    fn of_host(error: &HostError) -> Self {
        match error {
            HostError::Unknown { .. } => Self::NotFound,
            HostError::Local { .. } => Self::Internal,
            HostError::Unreachable { .. } | HostError::HostKey { .. } | HostError::Login { .. } => {
                Self::UpstreamFailed
            }
        }
    }

    /// A plugin that is not there (or cannot work where it is asked to) is unavailable; one
    /// whose constructor failed or panicked failed; one whose constructor hangs timed out.
    fn of_not_built(error: &NotBuilt) -> Self {
        match error {
            NotBuilt::Registry(
                RegistryError::NotLoaded { .. } | RegistryError::NotRemote { .. },
            ) => Self::Unavailable,
            NotBuilt::Registry(RegistryError::Construct { .. }) => Self::UpstreamFailed,
            NotBuilt::Registry(RegistryError::ConstructTimeout { .. }) => Self::TimedOut,
            NotBuilt::Aborted { .. } => Self::Internal,
        }
    }

    fn of_deliver(error: &DeliverError) -> Self {
        match error {
            DeliverError::Plugin(call) => Self::of_call(call),
            DeliverError::Blocked { .. } | DeliverError::Cancelled => Self::Conflict,
            DeliverError::Exited { .. }
            | DeliverError::NotReady { .. }
            | DeliverError::NotSubmitted { .. }
            | DeliverError::NotTaken { .. }
            | DeliverError::HookFailed { .. }
            | DeliverError::Altered { .. } => Self::UpstreamFailed,
        }
    }
}

impl LifecycleError {
    /// What kind of failure this is (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Config(error) => ErrorClass::of_config(error),
            Self::Store(error) | Self::Lock(LockError::Store(error)) => ErrorClass::of_store(error),
            Self::Lock(LockError::Busy { .. }) | Self::Refused(_) | Self::Budget(_) => {
                ErrorClass::Conflict
            }
            Self::Plugin(call) => ErrorClass::of_call(call),
            Self::KillUnfinished { error, .. } => ErrorClass::of_call(error),
            Self::Unavailable(unavailable) => ErrorClass::of_not_built(&unavailable.cause),
            Self::Deliver(error) => ErrorClass::of_deliver(error),
            Self::Host(error) => ErrorClass::of_host(error),
            Self::Request(error) => error.class(),
            Self::PluginChoice(_) => ErrorClass::Unavailable,
            Self::Confine(error) => ErrorClass::of_confine(error),
        }
    }
}

impl SpawnError {
    /// What kind of failure this is (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Store(error) => ErrorClass::of_store(error),
            Self::Setup(error) => error.class(),
            Self::Failed { step, .. } => step.class(),
        }
    }
}

impl SpawnStepError {
    /// A step stopped on request is a conflict, a plugin's failure is classed as the plugin's
    /// call; anything else (the agent never got ready, its screen showed a dialog) failed
    /// upstream.
    fn class(&self) -> ErrorClass {
        match self {
            Self::Cancelled | Self::Deliver(DeliverError::Cancelled) => ErrorClass::Conflict,
            Self::Plugin(call) | Self::Deliver(DeliverError::Plugin(call)) => {
                ErrorClass::of_call(call)
            }
            Self::Deliver(_) | Self::Store(_) | Self::Host(_) | Self::NotInstalled { .. } => {
                ErrorClass::UpstreamFailed
            }
            Self::Confine(error) => ErrorClass::of_confine(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{path::PathBuf, time::Duration};

    use ao_plugin_api::PluginError;

    use super::*;

    /// The registry's reasons stay apart: an unknown plugin is not a failed constructor.
    #[test]
    fn a_plugin_not_built_is_classed_by_why() {
        let (kind, name, path) = (
            InterfaceKind::Runtime,
            "faulty".to_string(),
            PathBuf::from("/p"),
        );
        let class = |error: RegistryError| {
            LifecycleError::from(PluginUnavailable {
                message: error.to_string(),
                cause: Arc::new(error.into()),
            })
            .class()
        };
        let not_loaded = RegistryError::NotLoaded {
            kind,
            name: name.clone(),
            loaded: "tmux".into(),
        };
        assert_eq!(class(not_loaded), ErrorClass::Unavailable);
        let construct = RegistryError::Construct {
            kind,
            name: name.clone(),
            path: path.clone(),
            error: PluginError::failed("no"),
        };
        assert_eq!(class(construct), ErrorClass::UpstreamFailed);
        let hung = RegistryError::ConstructTimeout {
            kind,
            name,
            path,
            timeout: Duration::from_millis(500),
        };
        assert_eq!(class(hung), ErrorClass::TimedOut);
    }
}
