//! The `github` scm plugin: the pull requests of the sessions' branches on GitHub (or GitHub
//! Enterprise), the checks on their head commits with the log tail of each failed one, the
//! reviews waiting for an answer, merging at a seen head, and webhook deliveries verified.
//!
//! Settings (`plugins.config.github`, every key optional; see [`settings::Settings`]):
//!
//! ```yaml
//! plugins:
//!   config:
//!     github:
//!       api_url: https://ghe.example.com/api/v3   # default https://api.github.com
//!       webhook_secret_env: AO_GITHUB_WEBHOOK_SECRET
//! ```
//!
//! The token comes from `GH_TOKEN`, `GITHUB_TOKEN`, or `gh auth token` (or, discouraged, the
//! `token` setting); it goes only into the `Authorization` header of requests to the API, never
//! into a message. The repository is the project's `scm_repository`, else the `owner/name` its
//! clone's `origin` URL names.
//!
//! Cost against the rate limits (REST and GraphQL are limited apart; a `304` is free): each
//! poll of the pull requests is one conditional REST request for every branch at once
//! ([`pulls`]), plus one GraphQL query when an open pull request changed or its mergeability is
//! due again; each poll of a commit's checks is two conditional REST requests (check runs,
//! statuses), plus, for each newly failed run, one for its annotations and one for its log
//! ([`checks`]); the reviews of up to 20 pull requests are one GraphQL query ([`reviews`]). With 20 idle open pull
//! requests polled every 30 s and their reviews every 2 min, that is about 30 GraphQL queries an
//! hour for mergeability, 30 for reviews, and no counted REST request.

pub mod checks;
pub mod http;
pub mod pulls;
pub mod repository;
pub mod reviews;
pub mod settings;
pub mod webhook;

use std::{collections::HashMap, sync::Mutex};

use ao_plugin_api::{
    abi_stable::std_types::RString,
    export_plugins,
    scm::{
        Check, ChecksQuery, Fetched, MergeRequest, PullRequest, PullRequestQuery, RateLimit,
        ReviewFeedback, ReviewsQuery, ScmRepository, WebhookDelivery, WebhookHint,
    },
    DoctorCheck, ErrorKind, PluginContext, PluginError, PluginFailure, PluginResult, Scm,
};
use ao_plugin_kit::prelude::*;
use serde_json::{json, Value};

use crate::{checks::Commits, http::Client, pulls::Listings, repository::Slug, settings::Settings};

export_plugins! {
    scm "github" => GitHub,
}

/// The plugin: one client, and what it remembers between calls.
pub struct GitHub {
    client: Client,
    /// Each clone's repository, read from its `origin` once.
    slugs: Mutex<HashMap<(String, Option<String>), Slug>>,
    /// The last pull request list of each repository, for conditional requests.
    listings: Mutex<Listings>,
    /// The last checks of each commit, for conditional requests.
    commits: Mutex<Commits>,
}

impl GitHub {
    fn slug(&self, repository: &ScmRepository) -> Result<Slug, PluginFailure> {
        let key = (
            repository.repo_path.to_string(),
            repository
                .slug
                .as_ref()
                .into_option()
                .map(|s| s.to_string()),
        );
        let mut slugs = self.slugs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slug) = slugs.get(&key) {
            return Ok(slug.clone());
        }
        let slug = repository::resolve(repository)?;
        slugs.insert(key, slug.clone());
        Ok(slug)
    }

    fn webhook_secret(&self) -> Result<String, PluginFailure> {
        let settings = self.client.settings();
        if let Some(secret) = &settings.webhook_secret {
            return Ok(secret.clone());
        }
        if let Some(name) = &settings.webhook_secret_env {
            return std::env::var(name)
                .ok()
                .filter(|secret| !secret.is_empty())
                .ok_or_else(|| {
                    PluginFailure::new(
                        ErrorKind::Config,
                        format!(
                            "plugins.config.github.webhook_secret_env names {name}, which is \
                             not set for ao-host; set it to the webhook's secret"
                        ),
                    )
                });
        }
        Err(PluginFailure::new(
            ErrorKind::Config,
            "no webhook secret: set plugins.config.github.webhook_secret_env (or \
             webhook_secret) to the secret of the repository's webhook, or run the watcher \
             without --webhook",
        ))
    }
}

impl Scm for GitHub {
    fn new(context: &PluginContext) -> PluginResult<Self> {
        let settings: Settings = context.parse_config()?;
        let resolved = settings
            .resolve()
            .map_err(|failure| PluginError::config(failure.message.to_string()))?;
        Ok(GitHub {
            client: Client::new(resolved),
            slugs: Mutex::new(HashMap::new()),
            listings: Mutex::new(Listings::default()),
            commits: Mutex::new(Commits::default()),
        })
    }

    fn pull_requests(
        &self,
        query: &PullRequestQuery,
    ) -> Result<Fetched<Vec<PullRequest>>, PluginFailure> {
        if query.branches.is_empty() {
            return Ok(Fetched::Changed {
                value: Vec::new(),
                validator: RString::new(),
            });
        }
        let slug = self.slug(&query.repository)?;
        let mut listings = self.listings.lock().unwrap_or_else(|e| e.into_inner());
        pulls::pull_requests(
            &self.client,
            &mut listings,
            &slug,
            query,
            self.client.settings().refresh,
        )
    }

    fn checks(&self, query: &ChecksQuery) -> Result<Fetched<Vec<Check>>, PluginFailure> {
        let slug = self.slug(&query.repository)?;
        let mut commits = self.commits.lock().unwrap_or_else(|e| e.into_inner());
        checks::checks(&self.client, &mut commits, &slug, query)
    }

    fn reviews(&self, query: &ReviewsQuery) -> Result<Vec<ReviewFeedback>, PluginFailure> {
        if query.numbers.is_empty() {
            return Ok(Vec::new());
        }
        let slug = self.slug(&query.repository)?;
        reviews::reviews(&self.client, &slug, query)
    }

    fn merge(&self, request: &MergeRequest) -> Result<(), PluginFailure> {
        let slug = self.slug(&request.repository)?;
        let path = format!("/repos/{slug}/pulls/{}/merge", request.number);
        let body = json!({
            "sha": request.head_sha.as_str(),
            "merge_method": self.client.settings().merge_method,
        });
        let answer: Value = self.client.put(&path, &body).map_err(|failure| {
            if http::is_kind(&failure, ErrorKind::Failed)
                || http::is_kind(&failure, ErrorKind::NotFound)
            {
                PluginFailure::new(
                    ErrorKind::Failed,
                    format!(
                        "{slug}#{} was not merged: {} (GitHub refuses when the head moved past \
                         {} or the branch conflicts)",
                        request.number,
                        failure.message(),
                        request.head_sha
                    ),
                )
            } else {
                failure
            }
        })?;
        if answer["merged"] == Value::Bool(true) {
            Ok(())
        } else {
            Err(PluginFailure::new(
                ErrorKind::Failed,
                format!(
                    "{slug}#{} was not merged: GitHub said {answer}",
                    request.number
                ),
            ))
        }
    }

    fn webhook(&self, delivery: &WebhookDelivery) -> Result<WebhookHint, PluginFailure> {
        webhook::read(delivery, &self.webhook_secret()?)
    }

    fn rate_limits(&self) -> Result<Vec<RateLimit>, PluginFailure> {
        Ok(self.client.rate_limits())
    }

    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        let settings = self.client.settings();
        let mut checks = Vec::new();
        let token = match self.client.token() {
            Ok((_, source)) => {
                checks.push(DoctorCheck::passed(
                    "github token",
                    format!("from {}", source.describe()),
                ));
                true
            }
            Err(failure) => {
                checks.push(DoctorCheck::failed("github token", failure.message()));
                false
            }
        };
        if token {
            // `/rate_limit` costs nothing against the limits it reports.
            match self.client.get_json::<Value>("/rate_limit") {
                Ok(limits) => {
                    let left = |api: &str| {
                        let resource = &limits["resources"][api];
                        format!("{}/{}", resource["remaining"], resource["limit"])
                    };
                    checks.push(DoctorCheck::passed(
                        "github api",
                        format!(
                            "{} answers; left this hour: rest {}, graphql {}",
                            settings.api_url,
                            left("core"),
                            left("graphql")
                        ),
                    ));
                }
                Err(failure) => checks.push(DoctorCheck::failed("github api", failure.message())),
            }
        }
        Ok(checks)
    }
}
