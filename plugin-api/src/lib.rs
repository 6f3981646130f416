//! The stable interface between `ao-host` and its plugins.
//!
//! A plugin is a shared library (`crate-type = ["cdylib"]`) that depends on this crate (and on
//! `ao-plugin-kit` for helpers), implements one or more of [`Runtime`], [`Agent`] and
//! [`Workspace`] as plain Rust, and names them in one [`export_plugins!`] invocation. The macro writes two exports:
//!
//! - `AO_PLUGIN_MANIFEST`, a plain-C [`manifest::PluginManifest`] the host reads first, so that any
//!   library can be identified (name, kind, API version) even when nothing else about it matches;
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
//! Compatibility: a library built against `ao-plugin-api` X.Y.Z loads in a host built against
//! X.Y.W for W >= Z (for 0.x: same minor; from 1.0: same major, host minor >= library minor).

mod error;
mod export;
pub mod ffi;
pub mod manifest;
pub mod methods;
mod root;
mod successors;
mod traits;
pub mod transport;
mod types;

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
