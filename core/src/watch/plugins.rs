//! The watcher's forges: the `scm` plugins the projects name, built by the lifecycle (once
//! each, under its call timeout, isolated when the config says so).

use std::sync::Arc;

use ao_plugin_api::scm::{
    Check, ChecksQuery, Fetched, MergeRequest, PullRequest, PullRequestQuery, RateLimit,
    ReviewFeedback, ReviewsQuery, WebhookDelivery, WebhookHint,
};
use futures_util::future::BoxFuture;

use super::forge::{Forge, ForgeError, ForgeErrorKind, ForgeResult, Forges};
use crate::{
    lifecycle::Lifecycle,
    plugins::{PluginCallError, ScmPlugin},
};

/// The `scm` plugins of a lifecycle's config.
pub struct PluginForges {
    lifecycle: Arc<Lifecycle>,
}

impl PluginForges {
    pub fn shared(lifecycle: Arc<Lifecycle>) -> Arc<dyn Forges> {
        Arc::new(Self { lifecycle })
    }
}

impl Forges for PluginForges {
    fn forge<'a>(
        &'a self,
        name: &'a str,
        setting: &'a str,
    ) -> BoxFuture<'a, Result<Arc<dyn Forge>, String>> {
        Box::pin(async move {
            match self.lifecycle.scm(name, setting).await {
                Ok(plugin) => Ok(Arc::new(PluginForge(plugin)) as Arc<dyn Forge>),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// A built `scm` plugin, as the watcher calls it.
struct PluginForge(ScmPlugin);

fn forge_error(error: PluginCallError) -> ForgeError {
    ForgeError {
        kind: ForgeErrorKind::of(error.error_kind()),
        message: error.to_string(),
    }
}

impl Forge for PluginForge {
    fn pull_requests(
        &self,
        query: PullRequestQuery,
    ) -> BoxFuture<'_, ForgeResult<Fetched<Vec<PullRequest>>>> {
        Box::pin(async move { self.0.pull_requests(query).await.map_err(forge_error) })
    }

    fn checks(&self, query: ChecksQuery) -> BoxFuture<'_, ForgeResult<Fetched<Vec<Check>>>> {
        Box::pin(async move { self.0.checks(query).await.map_err(forge_error) })
    }

    fn reviews(&self, query: ReviewsQuery) -> BoxFuture<'_, ForgeResult<Vec<ReviewFeedback>>> {
        Box::pin(async move { self.0.reviews(query).await.map_err(forge_error) })
    }

    fn merge(&self, request: MergeRequest) -> BoxFuture<'_, ForgeResult<()>> {
        Box::pin(async move { self.0.merge(request).await.map_err(forge_error) })
    }

    fn webhook(&self, delivery: WebhookDelivery) -> BoxFuture<'_, ForgeResult<WebhookHint>> {
        Box::pin(async move { self.0.webhook(delivery).await.map_err(forge_error) })
    }

    fn rate_limits(&self) -> BoxFuture<'_, ForgeResult<Vec<RateLimit>>> {
        Box::pin(async move { self.0.rate_limits().await.map_err(forge_error) })
    }
}
