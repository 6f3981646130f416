//! The loop that closes on pull requests: a watcher asks the project's `scm` plugin about each
//! session's branch, reacts (sends the agent its failed checks, reviews, conflicts; tells the
//! operator; cleans up a merged session) and stores what it learned, so listings show a
//! session's pull request without calling the forge.
//!
//! `view` is the stored state every front end reads; `ledger` what the watcher decided (so a
//! restart decides nothing twice); `reactions` the decisions on plain values; `sanitize` makes
//! the forge's text fit to type into an agent.

pub mod ledger;
pub mod reactions;
pub mod sanitize;
pub mod view;
