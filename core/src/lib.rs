//! ao-core: the part of ao-host every front end shares: configuration, the session store, the
//! session lifecycle, remote hosts and the live feed of session changes.
//!
//! Layers, top to bottom: front ends (the `ao-host` binary's `cli`, the `ao-dashboard` crate)
//! call [`lifecycle`] (and follow it through [`feed`]), which uses [`plugins`], [`session`],
//! [`config`] and [`remote`] (other machines, over ssh). This crate never depends on a front
//! end. It never names a concrete tool either: everything that touches tmux, git or an agent CLI
//! lives in a plugin behind [`ao_plugin_api`].

pub(crate) mod bounded_yaml;
pub mod budget;
pub mod config;
pub mod feed;
pub mod lifecycle;
pub mod plugins;
pub mod remote;
pub mod sandbox;
pub mod session;
pub mod timing;
pub mod usage;
pub mod watch;
pub use ao_plugin_host::trust;
