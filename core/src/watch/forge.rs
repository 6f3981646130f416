//! What the watcher needs of a project's `scm` plugin, as a trait the engine is written against:
//! the plugin host's typed instance implements it, and so can a test's stand-in.

use std::sync::Arc;

use ao_plugin_api::{
    scm::{
        Check, ChecksQuery, Fetched, MergeRequest, PullRequest, PullRequestQuery, RateLimit,
        ReviewFeedback, ReviewsQuery, WebhookDelivery, WebhookHint,
    },
    ErrorKind,
};
use futures_util::future::BoxFuture;

/// Why a forge call failed, as the watcher acts on it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ForgeError {
    pub kind: ForgeErrorKind,
    /// For the log: what failed and the fix, in the plugin's words.
    pub message: String,
}

/// What the watcher does about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeErrorKind {
    /// The forge said to wait: back off until its window resets.
    RateLimited,
    /// The forge refused the plugin's settings or credentials (a rejected token): back off,
    /// asking again would be refused the same way until the operator fixes it.
    Config,
    /// The forge is down or overloaded (a 5xx): asked again next poll, logged now and then.
    Unavailable,
    /// The input was refused (a webhook delivery that does not verify).
    InvalidInput,
    /// The plugin takes no such call (a forge without webhooks).
    Unsupported,
    /// Anything else: logged, and asked again next poll.
    Failed,
}

impl ForgeErrorKind {
    /// The kind of a plugin's [`ErrorKind`].
    pub fn of(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::RateLimited => Self::RateLimited,
            ErrorKind::Config => Self::Config,
            ErrorKind::Unavailable => Self::Unavailable,
            ErrorKind::InvalidInput => Self::InvalidInput,
            ErrorKind::Unsupported => Self::Unsupported,
            _ => Self::Failed,
        }
    }
}

/// Result of a forge call.
pub type ForgeResult<T> = Result<T, ForgeError>;

/// A project's `scm` plugin as the watcher calls it (each call may take a network round trip).
pub trait Forge: Send + Sync {
    fn pull_requests(
        &self,
        query: PullRequestQuery,
    ) -> BoxFuture<'_, ForgeResult<Fetched<Vec<PullRequest>>>>;
    fn checks(&self, query: ChecksQuery) -> BoxFuture<'_, ForgeResult<Fetched<Vec<Check>>>>;
    fn reviews(&self, query: ReviewsQuery) -> BoxFuture<'_, ForgeResult<Vec<ReviewFeedback>>>;
    fn merge(&self, request: MergeRequest) -> BoxFuture<'_, ForgeResult<()>>;
    fn webhook(&self, delivery: WebhookDelivery) -> BoxFuture<'_, ForgeResult<WebhookHint>>;
    fn rate_limits(&self) -> BoxFuture<'_, ForgeResult<Vec<RateLimit>>>;
}

/// Where the watcher gets the `scm` plugin a project names.
pub trait Forges: Send + Sync {
    /// The plugin `name`, which the config field `setting` (`projects.app.scm`) names, built
    /// once; why not, for the log.
    fn forge<'a>(
        &'a self,
        name: &'a str,
        setting: &'a str,
    ) -> BoxFuture<'a, Result<Arc<dyn Forge>, String>>;
}
