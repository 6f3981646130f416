//! The plugin host: finding shared libraries, loading and checking them, and calling them.
//! `ao-host` and the conformance kit (`ao-plugin-test`) both load plugins through it.
//!
//! - [`discovery`] decides which files are candidates, in the contract's search order.
//! - [`trust`] refuses libraries others could have replaced; `file_format` (with `elf` and
//!   `macho`, both read through the `object` crate) refuses files the dynamic loader would
//!   crash on, and libraries for another machine or platform; `manifest` reads what a library
//!   says it is from its bytes, so nothing of it runs before it is judged; `elf_target` refuses
//!   an ELF library for another machine from its header; `dependencies` (with `loader_cache`) resolves the
//!   libraries the loader would map with it and holds them to the same rules.
//! - [`library`] loads one file: trust, structure, manifest, pins and the API-version policy
//!   from the bytes read once, then the dynamic loader on those very bytes and abi_stable's
//!   layout check.
//! - [`registry`] registers every plugin by (kind, name), reporting shadowed duplicates, and
//!   builds instances from the operator's settings.
//! - [`instance`] is how the host calls a plugin: off the async reactor, with a timeout.
//! - [`isolated`] runs a plugin in a child process, so its crash fails one call only.
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
mod macho;
mod manifest;
pub mod process_state;
pub mod registry;
pub mod successors;
pub mod trust;

pub use self::{
    instance::{
        AgentPlugin, PluginCallError, RuntimePlugin, SandboxPlugin, ScmPlugin, WorkspacePlugin,
    },
    library::{LibraryReport, LoadError, ManifestInfo},
    registry::{HostAbi, LoadSettings, PluginRegistry, PluginRow, PluginStatus, RegistryError},
};
