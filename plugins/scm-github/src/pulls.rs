//! The pull requests of the sessions' branches, in as few counted requests as GitHub allows.
//!
//! Which call gives what:
//! - `GET /repos/O/R/pulls?state=all&sort=updated&direction=desc&per_page=100` (REST, one for
//!   every branch at once, asked with the last `ETag` so an unchanged list is a free `304`):
//!   number, node id, URL, title, head branch and commit, open/closed/merged, draft. Only the
//!   repository's 100 most recently updated pull requests are read: a pull request updated
//!   less recently than a hundred others is not seen until it changes.
//! - GraphQL `pullRequest(number:)` for each open one, all in one query: `mergeable` and
//!   `reviewDecision`, which the REST list does not carry. Asked again when the list shows the
//!   pull request changed (new head, new update time), after `refresh_secs` (the base may move
//!   under an unchanged pull request and make it conflict), and after 30 s while GitHub is
//!   still computing mergeability.
//!
//! The validator given back is the list's ETag and a digest of the answer, so a caller gets
//! `Unchanged` exactly when the answer is the same as the one it holds.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use ao_plugin_api::{
    abi_stable::{nonexhaustive_enum::NonExhaustive, std_types::RString},
    scm::{Fetched, Mergeability, PullRequest, PullRequestQuery, PullRequestState, ReviewDecision},
    PluginFailure,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    http::{Client, Conditional},
    repository::Slug,
};

/// How soon a mergeability GitHub had not computed yet is asked again.
const UNKNOWN_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Deserialize, PartialEq)]
struct RestPull {
    number: u64,
    #[serde(default)]
    node_id: String,
    #[serde(default)]
    html_url: String,
    #[serde(default)]
    title: String,
    state: String,
    #[serde(default)]
    draft: Option<bool>,
    #[serde(default)]
    merged_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
    head: RestHead,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
struct RestHead {
    #[serde(rename = "ref")]
    branch: String,
    sha: String,
    #[serde(default)]
    label: Option<String>,
}

/// What GraphQL added to one pull request, and for which version of it.
#[derive(Debug, Clone)]
struct Enrichment {
    /// The head and update time it was asked for.
    version: (String, Option<String>),
    at: Instant,
    mergeable: Mergeability,
    decision: ReviewDecision,
}

/// The last list of one repository's pull requests.
#[derive(Debug, Default)]
pub struct Listing {
    etag: String,
    pulls: Vec<RestPull>,
    enriched: HashMap<u64, Enrichment>,
}

/// The listings of every repository asked about, by slug.
#[derive(Debug, Default)]
pub struct Listings(HashMap<Slug, Listing>);

fn version(pull: &RestPull) -> (String, Option<String>) {
    (pull.head.sha.clone(), pull.updated_at.clone())
}

impl RestPull {
    /// Whether its head is `branch` of this repository (not a fork's branch of that name).
    fn heads(&self, slug: &Slug, branch: &str) -> bool {
        if self.head.branch != branch {
            return false;
        }
        match &self.head.label {
            Some(label) => label
                .split_once(':')
                .is_some_and(|(owner, _)| owner.eq_ignore_ascii_case(&slug.owner)),
            None => true,
        }
    }

    fn state(&self) -> PullRequestState {
        match (self.state.as_str(), self.merged_at.is_some()) {
            (_, true) => PullRequestState::Merged,
            ("closed", false) => PullRequestState::Closed,
            _ => PullRequestState::Open,
        }
    }
}

/// FNV-1a of `text`: the digest of an answer in a validator.
fn digest(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub fn pull_requests(
    client: &Client,
    listings: &mut Listings,
    slug: &Slug,
    query: &PullRequestQuery,
    refresh: Duration,
) -> Result<Fetched<Vec<PullRequest>>, PluginFailure> {
    let listing = listings.0.entry(slug.clone()).or_default();
    let path = format!("/repos/{slug}/pulls?state=all&sort=updated&direction=desc&per_page=100");
    match client.get::<Vec<RestPull>>(&path, &listing.etag)? {
        Conditional::Fresh { value, etag } => {
            listing.pulls = value;
            listing.etag = etag;
        }
        Conditional::NotModified => {}
    }
    let matched: Vec<&RestPull> = listing
        .pulls
        .iter()
        .filter(|pull| query.branches.iter().any(|b| pull.heads(slug, b.as_str())))
        .collect();
    let now = Instant::now();
    let due: Vec<&RestPull> = matched
        .iter()
        .copied()
        .filter(|pull| pull.state() == PullRequestState::Open)
        .filter(|pull| match listing.enriched.get(&pull.number) {
            None => true,
            Some(known) => {
                let age = now.duration_since(known.at);
                known.version != version(pull)
                    || age >= refresh
                    || (known.mergeable == Mergeability::Unknown && age >= UNKNOWN_RETRY)
            }
        })
        .collect();
    if !due.is_empty() {
        let asked: Vec<(u64, (String, Option<String>))> = due
            .iter()
            .map(|pull| (pull.number, version(pull)))
            .collect();
        let answered = enrich(client, slug, &asked)?;
        for (number, version) in asked {
            if let Some((mergeable, decision)) = answered.get(&number) {
                listing.enriched.insert(
                    number,
                    Enrichment {
                        version,
                        at: now,
                        mergeable: *mergeable,
                        decision: *decision,
                    },
                );
            }
        }
    }
    let answer: Vec<PullRequest> = matched
        .iter()
        .map(|pull| {
            let known = listing.enriched.get(&pull.number);
            let open = pull.state() == PullRequestState::Open;
            PullRequest {
                number: pull.number,
                node_id: RString::from(pull.node_id.as_str()),
                url: RString::from(pull.html_url.as_str()),
                title: RString::from(pull.title.as_str()),
                branch: RString::from(pull.head.branch.as_str()),
                head_sha: RString::from(pull.head.sha.as_str()),
                state: NonExhaustive::new(pull.state()),
                draft: pull.draft.unwrap_or(false),
                mergeable: NonExhaustive::new(
                    known
                        .filter(|_| open)
                        .map_or(Mergeability::Unknown, |k| k.mergeable),
                ),
                review_decision: NonExhaustive::new(
                    known.map_or(ReviewDecision::None, |k| k.decision),
                ),
            }
        })
        .collect();
    let validator = format!("{} {:016x}", listing.etag, digest(&format!("{answer:?}")));
    if query.validator.as_str() == validator {
        return Ok(Fetched::Unchanged);
    }
    Ok(Fetched::Changed {
        value: answer,
        validator: RString::from(validator),
    })
}

/// Mergeability and review decision of each pull request numbered, in one GraphQL query.
fn enrich(
    client: &Client,
    slug: &Slug,
    asked: &[(u64, (String, Option<String>))],
) -> Result<HashMap<u64, (Mergeability, ReviewDecision)>, PluginFailure> {
    let fields: String = asked
        .iter()
        .map(|(number, _)| {
            format!("pr{number}: pullRequest(number: {number}) {{ mergeable reviewDecision }} ")
        })
        .collect();
    let query = format!(
        "query($owner: String!, $name: String!) {{ repository(owner: $owner, name: $name) {{ {fields}}} }}"
    );
    let (data, _missing) =
        client.graphql(&query, json!({ "owner": slug.owner, "name": slug.name }))?;
    let repository = &data["repository"];
    Ok(asked
        .iter()
        .filter_map(|(number, _)| {
            let pull = &repository[format!("pr{number}")];
            if pull.is_null() {
                return None;
            }
            Some((
                *number,
                (
                    mergeability(&pull["mergeable"]),
                    decision(&pull["reviewDecision"]),
                ),
            ))
        })
        .collect())
}

fn mergeability(value: &Value) -> Mergeability {
    match value.as_str() {
        Some("MERGEABLE") => Mergeability::Mergeable,
        Some("CONFLICTING") => Mergeability::Conflicting,
        _ => Mergeability::Unknown,
    }
}

/// GraphQL's `reviewDecision` of a pull request, or `state` of one review.
pub fn decision(value: &Value) -> ReviewDecision {
    match value.as_str() {
        Some("APPROVED") => ReviewDecision::Approved,
        Some("CHANGES_REQUESTED") => ReviewDecision::ChangesRequested,
        Some("REVIEW_REQUIRED") => ReviewDecision::ReviewRequired,
        _ => ReviewDecision::None,
    }
}
