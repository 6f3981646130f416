//! The loop that closes on pull requests: a watcher asks the project's `scm` plugin about each
//! session's branch, reacts (sends the agent its failed checks, reviews, conflicts; tells the
//! operator; cleans up a merged session) and stores what it learned, so listings show a
//! session's pull request without calling the forge.
//!
//! `view` is the stored state every front end reads, `shown` what they show of it; `engine` the
//! watcher's poll; `reactions` its decisions on plain values; `ledger` what it decided (so a
//! restart decides nothing twice); `forge` what it needs of an `scm` plugin; `lock` keeps it one
//! per data dir; `sanitize` makes the forge's text fit to type into an agent.

pub mod engine;
pub mod forge;
pub mod ledger;
pub mod lock;
pub mod plugins;
pub mod reactions;
pub mod sanitize;
pub mod shown;
pub mod view;

pub use engine::{PollReport, Watcher, WebhookVerdict};
pub use lock::{WatchLockError, WatcherLock};
pub use plugins::PluginForges;
