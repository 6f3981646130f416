//! The loop that closes on pull requests: a watcher asks the project's `scm` plugin about each
//! session's branch, reacts (sends the agent its failed checks, reviews, conflicts; tells the
//! operator; cleans up a merged session) and stores what it learned, so listings show a
//! session's pull request without calling the forge.
//!
//! `view` is the stored state; `shown` is what every front end shows of it.

pub mod shown;
pub mod view;
