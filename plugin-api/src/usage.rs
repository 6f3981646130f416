//! What a session's model replies cost in tokens, read from the agent CLI's own records (a
//! conversation transcript, a rollout file, a chat recording). (Added in 0.1.9.)
//!
//! Agents are read incrementally: every `ao-host` command is a new process, so the plugin
//! hands the host an opaque [`UsageReport::cursor`] that the host keeps in its data dir and gives
//! back with the next [`UsageQuery`]. A report always carries the session's whole usage so far
//! (not just what one call read), so two listings racing each other never count a reply twice:
//! whichever answer the host keeps last is whole.
//!
//! Counts are normalised across model APIs (see [`ModelUsage`]): input that was not read from a
//! cache, cache reads, cache writes (by how long the cache is kept, as they are priced apart),
//! output, and reasoning where the API counts it apart from output.

use abi_stable::{
    std_types::{ROption, RString, RVec},
    StableAbi,
};

use crate::AgentSession;

/// What the host asks [`Agent::usage`](crate::Agent::usage) about one session.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// The session, as the agent was launched for it (its id, workspace, `agent_config`).
    pub session: AgentSession,
    /// The agent's own id of the session's conversation ([`LaunchPlan::conversation_id`], or
    /// the last one its events reported); `None` when the host knows none. A plugin counts this
    /// conversation's records only, never another one's that shares a folder.
    ///
    /// [`LaunchPlan::conversation_id`]: crate::LaunchPlan::conversation_id
    pub conversation_id: ROption<RString>,
    /// What this plugin's last answer for the session put in [`UsageReport::cursor`], given back
    /// untouched. Empty the first time, and whenever the host has lost it: count from the start.
    pub cursor: RString,
    /// Read at most about this many bytes of records in this call. What is left waits for the
    /// next call ([`UsageReport::pending_bytes`]), so a listing never reads gigabytes before it
    /// answers.
    pub max_bytes: u64,
}

/// The tokens one model used in one UTC hour of a session.
///
/// Each model reply is counted once, however many times its record repeats it. Input is split
/// the way prices are: an API that counts cached tokens inside its input figure (OpenAI,
/// Gemini) has them subtracted from `input` and put in `cache_read`.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelUsage {
    /// The model as the API named it in its reply (`claude-sonnet-4-5-20250929`, `gpt-5-codex`).
    pub model: RString,
    /// The start of the UTC hour the replies were made in, in seconds since the Unix epoch (the
    /// hour a record was read in, when it carries no time).
    pub hour: u64,
    /// How many model replies these counts come from.
    pub replies: u64,
    /// Input tokens not read from a cache.
    pub input: u64,
    /// Input tokens read from a cache.
    pub cache_read: u64,
    /// Input tokens written to a cache kept about 5 minutes (also a write whose API does not
    /// say how long it keeps it).
    pub cache_write_5m: u64,
    /// Input tokens written to a cache kept about an hour.
    pub cache_write_1h: u64,
    /// Output tokens, reasoning excluded.
    pub output: u64,
    /// Reasoning ("thinking") tokens an API counts apart from its output; priced as output. An
    /// API that counts them inside its output figure leaves this 0.
    pub reasoning: u64,
}

/// What [`Agent::usage`](crate::Agent::usage) answers.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageReport {
    /// The session's whole usage so far, from its first record on (not only what this call
    /// read): at most one entry per model and hour.
    pub usage: RVec<ModelUsage>,
    /// Where to read on next time, in the plugin's own format; the host keeps it and gives it
    /// back as [`UsageQuery::cursor`].
    pub cursor: RString,
    /// Bytes of records known to be there but not read yet (`max_bytes` ran out): `usage` is
    /// what was counted so far, and the host says it is still counting. 0 when every record
    /// there is was read.
    pub pending_bytes: u64,
    /// What could not be counted and why (a line that is not a record, a file that went away),
    /// said plainly for the operator. `usage` leaves those records out; it never guesses.
    pub notes: RVec<RString>,
}
