//! The stable interface between `ao-host` and its plugins.
//!
//! A plugin is a shared library (`crate-type = ["cdylib"]`) that depends on this crate alone,
//! implements one or more of [`Runtime`], [`Agent`] and [`Workspace`] as plain Rust, and names
//! them in one [`export_plugins!`] invocation. The macro writes two exports:
//!
//! - `AO_PLUGIN_MANIFEST`, a plain-C [`manifest::PluginManifest`] the host reads first, so that any
//!   library can be identified (name, kind, API version) even when nothing else about it matches;
//! - an abi_stable root module ([`PluginLibrary`]) whose type layout the host checks before it
//!   calls anything.
//!
//! What the host guarantees a plugin: it calls constructors and methods from ordinary threads
//! (never an async reactor), may call one instance from several threads at once, never unloads a
//! library, and treats a returned [`PluginError`] or a caught panic as that call's failure only.
//!
//! Compatibility: a library built against `ao-plugin-api` X.Y.Z loads in a host built against
//! X.Y.W for W >= Z (for 0.x: same minor; from 1.0: same major, host minor >= library minor).

pub mod config;
pub mod data_dir_id;
mod error;
mod export;
pub mod ffi;
pub mod files;
pub mod launch;
pub mod manifest;
pub mod methods;
pub mod private;
pub mod program;
pub mod remote;
mod root;
pub mod session_files;
pub mod shell;
mod successors;
mod traits;
mod types;
pub mod uuid;
pub mod validate;

pub use abi_stable;

pub use crate::{
    error::{PluginError, PluginErrorKind, PluginResult},
    root::{
        PluginConstructor, PluginDeclaration, PluginLibrary, PluginLibraryRef, RemoteConstructor,
        RemoteDeclaration,
    },
    successors::{ActivityState, ErrorKind, PluginFailure, ReadinessState},
    traits::{Agent, Runtime, Workspace},
    types::{
        Activity, AgentSession, DoctorCheck, EnvVar, LaunchPlan, LaunchRequest, PluginContext,
        PluginKind, Readiness, RepositoryInfo, RuntimeCreateRequest, Transport,
        WorkspaceCreateConfig,
    },
};

/// The version of this crate a plugin or host was compiled against.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// [`API_VERSION`] with a trailing NUL, for the C manifest.
#[doc(hidden)]
pub const API_VERSION_NUL: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
