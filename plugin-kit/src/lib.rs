//! Helpers for writing ao-host plugins, released apart from the interface they serve.
//!
//! `ao-plugin-api` is the contract between ao-host and a plugin library: its types and traits
//! are frozen by their layout and change only with the ABI level. This crate is what a plugin
//! author uses to *implement* that contract well, and it may change in any release without
//! touching a single built plugin:
//!
//! - [`program`] and [`files`] run programs and touch files on this machine, or on another host
//!   through the instance's transport ([`remote`]), with the errors a plugin should return;
//! - [`session_files`] keeps a folder per session; [`private`] makes owner-only files and folders
//!   that no planted link redirects; [`launch`] starts an agent with exactly the host's
//!   environment and no value on a command line;
//! - [`config`] reads a plugin's settings and a project's `agent_config`; [`validate`], [`shell`]
//!   and [`uuid`] are the small rules every plugin shares with the host;
//! - [`usage`] sums what an agent's records say it used and reads them on from where it stopped.
//!
//! Bring the extension traits in with `use ao_plugin_kit::prelude::*`.

#![deny(missing_docs)]

pub mod config;
pub mod confinement;
pub mod data_dir_id;
pub mod files;
pub mod launch;
pub mod private;
pub mod program;
pub mod remote;
pub mod session_files;
pub mod shell;
pub mod usage;
pub mod uuid;
pub mod validate;

/// The extension traits the kit adds to `ao-plugin-api`'s types.
pub mod prelude {
    pub use crate::{
        config::{ContextExt as _, SessionExt as _},
        launch::RequestExt as _,
        remote::TransportExt as _,
    };
}
