//! What a code host (GitHub, GitLab, …) says about a session's branch: its pull request, the
//! checks on its head commit, the reviews waiting for an answer. (Added in 0.1.9.)
//!
//! The values are the forge's facts, normalised: a GitLab merge request is a [`PullRequest`], a
//! pipeline job is a [`Check`], a discussion note is a [`ReviewComment`]. What the host does
//! with them (which reaction, when, how often) is its own business; a plugin only answers.
//!
//! Everything here is new with the `scm` kind, so the enums that describe a forge's state are
//! non-exhaustive from the start ([`NonExhaustiveFor`]): a later release may add a state, and a
//! host that does not know it reads it as the fallback each enum names.

// The `StableAbi` derive of a non-exhaustive enum trips this lint in code we do not write.
#![allow(non_local_definitions)]

use abi_stable::{
    nonexhaustive_enum::NonExhaustiveFor,
    std_types::{ROption, RString, RVec},
    StableAbi,
};

/// Which repository on the forge a project's pull requests live in.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ScmRepository {
    /// The project's local clone, whose `origin` URL names the repository when `slug` is not
    /// set.
    pub repo_path: RString,
    /// The repository as the forge names it (`owner/name` on GitHub, `group/sub/name` on
    /// GitLab), when the project's config sets it.
    pub slug: ROption<RString>,
}

/// An answer that may be "the same as last time", so an unchanged answer costs nothing against
/// the forge's rate limit (an HTTP `304` to `If-None-Match`).
#[repr(C, u8)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Fetched<T> {
    /// Nothing changed since the answer whose validator the query carried.
    Unchanged,
    /// The current answer.
    Changed {
        /// What the forge answered.
        value: T,
        /// What to send next time to ask "changed since?" (an `ETag`); empty when the forge
        /// gives none, and then the next query fetches again.
        validator: RString,
    },
}

/// The pull requests whose head is one of `branches`: open ones, and closed or merged ones
/// the forge still lists (a session needs to learn that its pull request was merged).
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PullRequestQuery {
    /// Where.
    pub repository: ScmRepository,
    /// The sessions' branches, asked about in one go: a plugin answers them with as few
    /// requests as its forge allows.
    pub branches: RVec<RString>,
    /// The validator of the last [`Fetched::Changed`] answer to the same query; empty for none.
    pub validator: RString,
}

/// The checks (CI jobs, status contexts) on one commit.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChecksQuery {
    /// Where.
    pub repository: ScmRepository,
    /// The commit, a pull request's `head_sha`.
    pub head_sha: RString,
    /// The validator of the last [`Fetched::Changed`] answer to the same query; empty for none.
    pub validator: RString,
    /// How many lines of a failed check's log to return in [`Check::log_tail`] (0 for none).
    pub log_lines: u32,
}

/// The reviews of several pull requests, asked in one go.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReviewsQuery {
    /// Where.
    pub repository: ScmRepository,
    /// The pull requests' numbers.
    pub numbers: RVec<u64>,
}

/// Merge a pull request, but only at the commit the caller saw green.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MergeRequest {
    /// Where.
    pub repository: ScmRepository,
    /// Which pull request.
    pub number: u64,
    /// The head commit that was approved and green; the forge must refuse if the head moved.
    pub head_sha: RString,
}

/// A webhook delivery as it arrived: the host only listens, the plugin judges it.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The request's headers, names in lower case.
    pub headers: RVec<WebhookHeader>,
    /// The request body, byte-exact (a signature covers these bytes).
    pub body: RVec<u8>,
}

/// One header of a [`WebhookDelivery`].
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WebhookHeader {
    /// Lower case.
    pub name: RString,
    /// As sent.
    pub value: RString,
}

/// What a verified webhook delivery hints at. It is only a hint to poll now: the host still
/// asks the forge for the facts.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WebhookHint {
    /// The forge's id of this delivery (`X-GitHub-Delivery`), so the host can refuse a replay.
    pub delivery_id: RString,
    /// The branches it concerns; empty when it does not say (then the host polls everything).
    pub branches: RVec<RString>,
}

/// A pull request (merge request) as the forge has it now.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number in the repository (`#42`; GitLab's `!42`).
    pub number: u64,
    /// The forge's global id for it (GitHub's GraphQL node id), empty if none.
    pub node_id: RString,
    /// Where a person opens it.
    pub url: RString,
    /// Its title.
    pub title: RString,
    /// The branch it merges from.
    pub branch: RString,
    /// The commit at the tip of that branch, as the forge saw it.
    pub head_sha: RString,
    /// Open, merged or closed.
    pub state: NonExhaustiveFor<PullRequestState>,
    /// Whether it is marked draft.
    pub draft: bool,
    /// Whether it merges cleanly into its base.
    pub mergeable: NonExhaustiveFor<Mergeability>,
    /// What its reviews add up to.
    pub review_decision: NonExhaustiveFor<ReviewDecision>,
}

/// Whether a pull request is still open. A host reads a state it does not know as `Open`.
#[repr(u8)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 2], traits(Debug, Clone, PartialEq, Eq))))]
#[non_exhaustive]
pub enum PullRequestState {
    /// Open (drafts included).
    Open,
    /// Merged into its base.
    Merged,
    /// Closed without merging.
    Closed,
}

/// Whether a pull request merges cleanly. A host reads one it does not know as `Unknown`.
#[repr(u8)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 2], traits(Debug, Clone, PartialEq, Eq))))]
#[non_exhaustive]
pub enum Mergeability {
    /// The forge has not computed it (yet).
    Unknown,
    /// It merges cleanly.
    Mergeable,
    /// Its branch conflicts with its base.
    Conflicting,
}

/// What a pull request's reviews add up to, or what one review says. A host reads one it does
/// not know as `None`.
#[repr(u8)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 2], traits(Debug, Clone, PartialEq, Eq))))]
#[non_exhaustive]
pub enum ReviewDecision {
    /// No decision (no review required, or only comments).
    None,
    /// A review is required and not given yet.
    ReviewRequired,
    /// Approved.
    Approved,
    /// A reviewer asked for changes.
    ChangesRequested,
}

/// One check on a commit: a CI job, a status context.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The forge's id of this run of the check; a re-run gets a new one.
    pub id: RString,
    /// Its name, stable across runs (`build`, `test (ubuntu)`).
    pub name: RString,
    /// Where it stands.
    pub state: NonExhaustiveFor<CheckState>,
    /// The forge's own word for how it ended (`failure`, `timed_out`, …), empty while it runs.
    pub conclusion: RString,
    /// Where a person sees it.
    pub url: RString,
    /// For a failed check, the last lines of its log (as many as asked), as the forge has them:
    /// untrusted text, which the host sanitises before it shows or sends it. Empty otherwise.
    pub log_tail: RString,
}

/// Where a check stands. A host reads one it does not know as `Pending`.
#[repr(u8)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 2], traits(Debug, Clone, PartialEq, Eq))))]
#[non_exhaustive]
pub enum CheckState {
    /// Queued or running.
    Pending,
    /// Succeeded (or neutral: nothing to fix).
    Passed,
    /// The code failed it (a test, a build, a lint): something for the agent to fix.
    Failed,
    /// It could not run the code at all (billing, quota, runner or infrastructure trouble):
    /// nothing the agent can fix, so the host only tells the operator.
    FailedToRun,
    /// Cancelled or skipped.
    Skipped,
}

/// The reviews of one pull request that wait for an answer.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct ReviewFeedback {
    /// Which pull request.
    pub number: u64,
    /// Submitted reviews with a body or a decision, oldest first.
    pub reviews: RVec<Review>,
    /// Comments of threads not yet resolved, oldest first.
    pub unresolved: RVec<ReviewComment>,
}

/// One submitted review.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The forge's id for it, stable.
    pub id: RString,
    /// Who wrote it.
    pub author: RString,
    /// What it decided (`None` for a plain comment).
    pub decision: NonExhaustiveFor<ReviewDecision>,
    /// Its text; untrusted.
    pub body: RString,
    /// Where a person sees it.
    pub url: RString,
}

/// One comment of an unresolved review thread.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReviewComment {
    /// The thread's id, stable: what resolving it resolves.
    pub thread_id: RString,
    /// The comment's own id, stable.
    pub comment_id: RString,
    /// The file it is about, relative to the repository root; empty for none.
    pub path: RString,
    /// The line in that file, when it is about one.
    pub line: ROption<u32>,
    /// Who wrote it.
    pub author: RString,
    /// Its text; untrusted.
    pub body: RString,
    /// Where a person sees it.
    pub url: RString,
}

/// What the forge said about one of its rate limits, on the last answer that told.
#[repr(C)]
#[derive(StableAbi, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Which API the limit counts (`rest`, `graphql`): forges limit them apart.
    pub api: RString,
    /// Requests (or points) per window.
    pub limit: u64,
    /// What is left of the window.
    pub remaining: u64,
    /// When the window resets, in seconds since the Unix epoch; 0 if not said.
    pub reset_at: u64,
    /// Seconds the forge asked to wait before the next request (`Retry-After`); 0 if none.
    pub retry_after: u64,
}
