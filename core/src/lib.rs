//! ao-host: runs AI coding agents side by side, each in its own workspace and runtime, through
//! plugins loaded from shared libraries at start-up.
//!
//! Layers, top to bottom: front ends (the `ao-host` binary's `cli`, the web [`dashboard`]) call
//! [`lifecycle`], which uses [`plugins`], [`session`], [`config`] and [`remote`] (other machines,
//! over ssh). The core never names a concrete tool: everything that touches tmux, git or an agent CLI lives
//! in a plugin behind [`ao_plugin_api`].

pub mod bounded_yaml;
pub mod config;
pub mod dashboard;
pub mod lifecycle;
pub mod plugins;
pub mod remote;
pub mod session;
pub mod timing;
pub use ao_plugin_host::trust;
