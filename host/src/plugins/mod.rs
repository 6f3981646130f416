//! Plugins: finding shared libraries, loading and checking them, and calling them.
//!
//! - [`discovery`] decides which files are candidates, in the contract's search order.
//! - `trust` refuses libraries others could have replaced; `file_format` (with `elf`) refuses
//!   files the dynamic loader would crash on; `manifest` reads what a library says it is from
//!   its bytes, so nothing of it runs before it is judged; `elf_target` refuses a library for
//!   another machine from its header; `dependencies` (with `loader_cache`) resolves the
//!   libraries the loader would map with it and holds them to the same rules.
//! - [`library`] loads one file: trust, structure, manifest, pins and the ABI-level policy
//!   from the bytes read once, then the dynamic loader on those very bytes and abi_stable's
//!   layout check.
//! - [`registry`] registers every plugin by (kind, name), reporting shadowed duplicates, and
//!   builds instances from the operator's settings.
//! - [`set`] is the runtime, agent and workspace a session uses, and the context plugins get.
//! - [`instance`] is how the host calls a plugin: off the async reactor, with a timeout.
//! - [`crash`] names the plugin that takes the process down; [`process_state`] puts back the
//!   signal dispositions and umask plugin code changed.

pub mod crash;
mod dependencies;
pub mod discovery;
mod elf;
mod elf_target;
mod file_format;
pub mod instance;
pub mod isolated;
pub mod library;
mod loader_cache;
mod manifest;
pub mod process_state;
pub mod registry;
pub mod set;

pub use self::{
    instance::{AgentPlugin, PluginCallError, RuntimePlugin, WorkspacePlugin},
    library::{LibraryReport, LoadError, ManifestInfo},
    registry::{HostAbi, PluginRegistry, PluginRow, PluginStatus, RegistryError},
    set::PluginSet,
};
