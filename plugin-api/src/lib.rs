//! The stable interface between `ao-host` and its plugins.
//!
//! A plugin is a shared library (`crate-type = ["cdylib"]`) that depends on this crate (and on
//! `ao-plugin-kit` for helpers), implements one or more of [`Runtime`], [`Agent`],
//! [`Workspace`], [`Scm`] and [`Sandbox`] as plain Rust, and names them in one
//! [`export_plugins!`] invocation. The macro
//! writes these exports:
//!
//! - `AO_PLUGIN_ABI`, the format-2 manifest ([`manifest::AbiManifest`]): the library's
//!   [`ABI_LEVEL`], the host features it needs, its plugins — plain bytes, read from the file
//!   before anything of the library runs;
//! - `AO_PLUGIN_MANIFEST` (format 1, [`manifest::PluginManifest`]) and `AO_PLUGIN_REMOTE`, for
//!   hosts older than the format-2 manifest;
//! - an abi_stable root module ([`PluginLibrary`]) whose type layout the host checks before it
//!   calls anything.
//!
//! A whole plugin: a runtime that runs each agent as a plain child process, with no terminal.
//! (`examples/runtime-process` in the repository is the same idea done properly, with the
//! helpers of `ao-plugin-kit`.)
//!
//! ```
//! use std::{collections::HashMap, process::{Child, Command}, sync::Mutex};
//!
//! use ao_plugin_api::{
//!     abi_stable::std_types::RString, export_plugins, PluginContext, PluginError,
//!     PluginResult, Runtime, RuntimeCreateRequest,
//! };
//!
//! export_plugins! {
//!     runtime "child" => ChildRuntime,
//! }
//!
//! /// Sessions by handle; the handle is the session id the host chose.
//! pub struct ChildRuntime {
//!     children: Mutex<HashMap<String, Child>>,
//! }
//!
//! impl ChildRuntime {
//!     fn with<T>(&self, handle: &str, f: impl FnOnce(&mut Child) -> T) -> PluginResult<T> {
//!         let mut children = self.children.lock().unwrap();
//!         let child = children
//!             .get_mut(handle)
//!             .ok_or_else(|| PluginError::not_found(format!("no session `{handle}`")))?;
//!         Ok(f(child))
//!     }
//! }
//!
//! impl Runtime for ChildRuntime {
//!     fn new(_context: &PluginContext) -> PluginResult<Self> {
//!         Ok(Self { children: Mutex::new(HashMap::new()) })
//!     }
//!
//!     fn create(&self, request: &RuntimeCreateRequest) -> PluginResult<String> {
//!         let (program, args) = request
//!             .launch_command
//!             .split_first()
//!             .ok_or_else(|| PluginError::invalid_input("empty launch command"))?;
//!         let child = Command::new(program.as_str())
//!             .args(args.iter().map(RString::as_str))
//!             .current_dir(request.cwd.as_str())
//!             .envs(request.env.iter().map(|v| (v.name.as_str(), v.value.as_str())))
//!             .spawn()
//!             .map_err(|e| PluginError::unavailable(format!("{program}: {e}")))?;
//!         let handle = request.session_id.to_string();
//!         self.children.lock().unwrap().insert(handle.clone(), child);
//!         Ok(handle)
//!     }
//!
//!     fn send_message(&self, _handle: &str, _text: &str) -> PluginResult<()> {
//!         Err(PluginError::unsupported("this runtime gives its agents no input"))
//!     }
//!
//!     fn send_keys(&self, _handle: &str, _keys: &[RString]) -> PluginResult<()> {
//!         Err(PluginError::unsupported("this runtime gives its agents no input"))
//!     }
//!
//!     fn capture_output(&self, handle: &str, _lines: u32) -> PluginResult<String> {
//!         self.with(handle, |_| String::new())
//!     }
//!
//!     fn is_alive(&self, handle: &str) -> PluginResult<bool> {
//!         self.with(handle, |child| matches!(child.try_wait(), Ok(None)))
//!     }
//!
//!     fn destroy(&self, handle: &str) -> PluginResult<()> {
//!         if let Some(mut child) = self.children.lock().unwrap().remove(handle) {
//!             let _ = child.kill();
//!             let _ = child.wait();
//!         }
//!         Ok(()) // destroying what is gone succeeds
//!     }
//!
//!     fn attach_command(&self, handle: &str) -> PluginResult<Vec<String>> {
//!         Err(PluginError::unsupported(format!("session `{handle}` has no terminal to attach")))
//!     }
//!
//!     fn alive_handles(&self) -> PluginResult<Vec<String>> {
//!         let mut children = self.children.lock().unwrap();
//!         Ok(children
//!             .iter_mut()
//!             .filter_map(|(handle, child)| {
//!                 matches!(child.try_wait(), Ok(None)).then(|| handle.clone())
//!             })
//!             .collect())
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! Build it with `crate-type = ["cdylib"]`, then `ao-host plugins test target/debug/lib….so`.
//!
//! What the host guarantees a plugin: it calls constructors and methods from ordinary threads
//! (never an async reactor), may call one instance from several threads at once, never unloads a
//! library, and treats a returned [`PluginError`] or a caught panic as that call's failure only.
//!
//! Compatibility is an ABI level, not a crate version: a host loads a library of its
//! [`ABI_LEVEL`] whatever `ao-plugin-api` 0.1.x built it (older or newer), as long as abi_stable's
//! layout check passes and the host offers every feature the library [needs](export_plugins!)
//! ([`HOST_FEATURES`]). See `CHANGELOG.md` for what each release added.

#![deny(missing_docs)]

mod error;
mod export;
pub mod ffi;
#[doc(hidden)]
pub mod first_release;
pub mod manifest;
pub mod methods;
mod root;
pub mod sandbox;
pub mod scm;
mod successors;
mod traits;
pub mod transport;
mod types;
pub mod usage;

pub use abi_stable;

pub use crate::{
    error::{PluginError, PluginErrorKind, PluginResult},
    root::{
        AddedKindConstructor, AddedKindDeclaration, AddedKindDeclarationRef,
        AddedKindRemoteConstructor, PluginConstructor, PluginDeclaration, PluginLibrary,
        PluginLibraryRef, RemoteConstructor, RemoteDeclaration, RemoteSandboxConstructor,
        SandboxConstructor,
    },
    successors::{ActivityState, ErrorKind, InterfaceKind, PluginFailure, ReadinessState},
    traits::{Agent, Runtime, Sandbox, Scm, Workspace},
    types::{
        Activity, AgentSession, DoctorCheck, EnvVar, LaunchPlan, LaunchRequest, PluginContext,
        PluginKind, Readiness, RepositoryInfo, RuntimeCreateRequest, Transport,
        WorkspaceCreateConfig,
    },
};

/// The version of this crate a plugin or host was compiled against. It says which helpers a
/// library has, not whether a host can load it: that is [`ABI_LEVEL`]'s job.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The interface's own compatibility level. A host loads a library of its level whatever crate
/// version built it, if abi_stable's layout check passes; a library of another level is refused
/// before it is loaded. It changes only when the interface breaks (a method removed or changed,
/// a type reshaped) — never for a helper fix or an added method.
pub const ABI_LEVEL: u32 = 1;

/// The host features this build of ao-host offers, short kebab-case names. A library lists the
/// ones it cannot work without (`needs [...]` in [`export_plugins!`]); a host that lacks one
/// refuses it, naming the feature. Features grow; a host never drops one within an ABI level.
///
/// - `remote`: plugins marked `[remote]` are run against another host through a
///   [`Transport`] (0.1.6).
/// - `runtime-start`: the host starts agents with [`Runtime::start`] and the whole environment
///   (0.1.7).
pub const HOST_FEATURES: &[&str] = &["remote", "runtime-start"];

/// The one place [`INTERFACE_REVISION`] is written (`concat!` takes literals only).
macro_rules! interface_revision {
    () => {
        "0.1.9"
    };
}

/// The release at which the interface (types, traits, root module) last changed: what the
/// format-1 manifest (`AO_PLUGIN_MANIFEST`) states as its "API version".
///
/// Hosts before the format-2 manifest refuse a library whose format-1 version is newer than
/// their own. Writing [`API_VERSION`] there would make every host refuse a library built with a
/// release that only fixed a helper (cargo picks the newest 0.1.x), although not one byte of the
/// interface changed; the interface revision keeps such a library loading in every host that
/// has its interface. Raise it to the crate's version in a release that changes the interface.
pub const INTERFACE_REVISION: &str = interface_revision!();

/// [`INTERFACE_REVISION`] with a trailing NUL, for the C manifest.
#[doc(hidden)]
pub const INTERFACE_REVISION_NUL: &str = concat!(interface_revision!(), "\0");

#[cfg(test)]
mod tests {
    use super::*;

    /// The interface revision is a release of this crate's line, not a later one.
    #[test]
    fn the_interface_revision_is_a_release_up_to_this_one() {
        let parse = |v: &str| -> Vec<u64> { v.split('.').map(|n| n.parse().unwrap()).collect() };
        let (revision, crate_version) = (parse(INTERFACE_REVISION), parse(API_VERSION));
        assert_eq!(revision[..2], crate_version[..2], "same major and minor");
        assert!(revision <= crate_version);
    }

    #[test]
    fn host_features_are_named_as_libraries_must_name_them() {
        for feature in HOST_FEATURES {
            assert!(manifest::is_feature_name(feature), "{feature}");
        }
    }
}
