//! ao-host end to end: the real binary, real plugin libraries built from this workspace, real
//! git, tmux and sshd. One test binary, one module per subject, so the host and the support
//! crate are linked once rather than once per file.
//!
//! The conformance kit's tests are a binary of their own (`tests/conformance.rs`): some run
//! the kit in this process, and it stops every process below the test process.

mod abi_history;
mod agent_state;
mod budgets;
mod dashboard;
mod data_dir_identity;
mod dead_host;
mod examples;
mod first_party_plugins;
mod in_process_hygiene;
mod lifecycle;
mod orchestrator;
mod plugin_dependencies;
mod plugins;
mod pull_request_view;
mod pull_requests;
mod real_claude;
mod real_claude_sandbox;
mod real_claude_usage;
mod real_codex;
mod real_codex_sandbox;
mod real_gemini;
mod real_opencode;
mod reliability;
mod remote;
mod remote_sandbox;
mod sandbox;
mod sandbox_kind;
mod scm_github;
mod scm_kind;
mod spawn;
mod upgrade;
mod usage;
