//! The one error type that crosses the plugin boundary.

use std::fmt;

use abi_stable::{std_types::RString, StableAbi};

/// What went wrong, coarse enough for the host to decide what to do next
/// (retry, tell the operator to install something, give up).
#[repr(u8)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginErrorKind {
    /// The plugin's configuration was rejected; the message names the key.
    Config,
    /// An argument (id, branch, path, text) was refused before anything was done.
    InvalidInput,
    /// A program or service the plugin drives is missing; the message says how to install it.
    Unavailable,
    /// The thing the call refers to (session, worktree) does not exist.
    NotFound,
    /// The external program ran and failed.
    Failed,
    /// The plugin does not implement this call.
    Unsupported,
    /// Plugin code panicked; the panic was caught on the plugin side of the boundary.
    Panicked,
}

impl PluginErrorKind {
    /// Stable lower-case name, used in host messages and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::InvalidInput => "invalid-input",
            Self::Unavailable => "unavailable",
            Self::NotFound => "not-found",
            Self::Failed => "failed",
            Self::Unsupported => "unsupported",
            Self::Panicked => "panicked",
        }
    }
}

/// An error returned by a plugin: a kind the host can act on and a message for the operator.
///
/// Messages should name the thing that failed and, where there is one, the fix
/// ("tmux not found on PATH: install it, e.g. `apt-get install tmux`").
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// What went wrong, for the host to act on.
    pub kind: PluginErrorKind,
    /// For the operator: what failed and the fix.
    pub message: RString,
}

impl PluginError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: PluginErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: RString::from(message.into()),
        }
    }

    /// A setting is wrong: name the key and what it accepts.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(PluginErrorKind::Config, message)
    }

    /// The call's input is refused before anything was done.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(PluginErrorKind::InvalidInput, message)
    }

    /// A program or service is missing: say how to install or start it.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(PluginErrorKind::Unavailable, message)
    }

    /// The handle, path or session is not there (or not this plugin's).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(PluginErrorKind::NotFound, message)
    }

    /// Anything else that went wrong.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(PluginErrorKind::Failed, message)
    }

    /// The plugin does not do this; the host falls back where it can.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(PluginErrorKind::Unsupported, message)
    }

    /// The message, as text.
    pub fn message(&self) -> &str {
        self.message.as_str()
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}

/// Shorthand for plugin method results on the plain-Rust side of the boundary.
pub type PluginResult<T> = Result<T, PluginError>;
