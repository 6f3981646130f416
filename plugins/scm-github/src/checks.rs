//! The checks on one commit: `GET /repos/O/R/commits/SHA/check-runs` (the latest run of each)
//! and `GET /repos/O/R/commits/SHA/status` (the statuses other CI services set), both asked
//! with their last `ETag` so an unchanged commit costs nothing; then, once per failed run, its
//! annotations (when it has some) and the tail of its GitHub Actions job log.
//!
//! How a run is read:
//! - not `completed`: pending;
//! - `success`, `neutral`: passed; `cancelled`, `skipped`, `stale`: skipped;
//! - `failure`, `timed_out`: failed, something for the agent to fix — unless it never ran the
//!   code: its Actions job has no log, or an annotation says so ([`INFRASTRUCTURE`]: GitHub's
//!   "the job was not started because recent account payments have failed or your spending
//!   limit needs to be increased", a lost or shut-down runner); then it failed to run;
//! - `startup_failure`, `action_required` (a person must approve the run) and any conclusion
//!   this plugin does not know: failed to run, for the operator.
//!
//! A check that is not an Actions job (another app's check run) has no log to fetch: its own
//! output text (or summary) is the tail. A status is passed (`success`), failed (`failure`),
//! failed to run (`error`) or pending; its description is the tail.

use std::collections::HashMap;

use ao_plugin_api::{
    abi_stable::{nonexhaustive_enum::NonExhaustive, std_types::RString},
    scm::{Check, CheckState, ChecksQuery, Fetched},
    ErrorKind, PluginFailure,
};
use serde::Deserialize;

use crate::{
    http::{Client, Conditional},
    repository::Slug,
};

/// What an annotation says when a job could not run the code at all (matched lower-cased).
pub const INFRASTRUCTURE: &[&str] = &[
    "spending limit",
    "account payments have failed",
    "billing",
    "was not started",
    "lost communication with the server",
    "runner has received a shutdown signal",
    "no hosted runner",
];

#[derive(Debug, Deserialize)]
struct CheckRuns {
    check_runs: Vec<CheckRun>,
}

#[derive(Debug, Deserialize)]
struct CheckRun {
    id: u64,
    name: String,
    status: String,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    details_url: Option<String>,
    #[serde(default)]
    output: Option<Output>,
    #[serde(default)]
    app: Option<App>,
}

#[derive(Debug, Default, Deserialize)]
struct Output {
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    annotations_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct App {
    #[serde(default)]
    slug: Option<String>,
}

/// `GET /repos/O/R/commits/SHA/status`: the latest status of each context.
#[derive(Debug, Deserialize)]
struct CombinedStatus {
    #[serde(default)]
    statuses: Vec<Status>,
}

#[derive(Debug, Deserialize)]
struct Status {
    id: u64,
    context: String,
    /// `pending`, `success`, `failure`, `error`.
    state: String,
    #[serde(default)]
    target_url: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Annotation {
    #[serde(default)]
    message: Option<String>,
}

/// A commit id: it goes into a URL path.
fn valid_sha(sha: &str) -> bool {
    (7..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

fn state_of(run: &CheckRun) -> CheckState {
    if run.status != "completed" {
        return CheckState::Pending;
    }
    match run.conclusion.as_deref().unwrap_or_default() {
        "success" | "neutral" => CheckState::Passed,
        "failure" | "timed_out" => CheckState::Failed,
        "cancelled" | "skipped" | "stale" => CheckState::Skipped,
        _ => CheckState::FailedToRun,
    }
}

fn last_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What was last read of each commit: its two lists' ETags, and each failed run's tail (runs
/// do not change once completed, so a tail is fetched once per run).
#[derive(Debug, Default)]
pub struct Commits(HashMap<(Slug, String), Commit>);

/// Commits remembered at most; past it the memory starts again (costing one full read each).
const MAX_COMMITS: usize = 1000;

#[derive(Debug, Default)]
struct Commit {
    runs_etag: String,
    runs: Vec<Check>,
    statuses_etag: String,
    statuses: Vec<Check>,
}

impl Commit {
    fn validator(&self) -> String {
        format!("{}|{}", self.runs_etag, self.statuses_etag)
    }
}

pub fn checks(
    client: &Client,
    commits: &mut Commits,
    slug: &Slug,
    query: &ChecksQuery,
) -> Result<Fetched<Vec<Check>>, PluginFailure> {
    let sha = query.head_sha.as_str();
    if !valid_sha(sha) {
        return Err(PluginFailure::new(
            ErrorKind::InvalidInput,
            format!("`{sha}` is not a commit id (7 to 64 hex digits)"),
        ));
    }
    if commits.0.len() >= MAX_COMMITS {
        commits.0.clear();
    }
    let commit = commits
        .0
        .entry((slug.clone(), sha.to_string()))
        .or_default();
    let lines = query.log_lines as usize;
    let path = format!("/repos/{slug}/commits/{sha}/check-runs?per_page=100");
    if let Conditional::Fresh { value, etag } = client.get::<CheckRuns>(&path, &commit.runs_etag)? {
        let known = std::mem::take(&mut commit.runs);
        commit.runs = value
            .check_runs
            .into_iter()
            .map(
                |run| match known.iter().find(|k| k.id.as_str() == run.id.to_string()) {
                    // A completed run never changes: its tail was read already.
                    Some(same) if run.status == "completed" && !same.conclusion.is_empty() => {
                        Ok(same.clone())
                    }
                    _ => read_run(client, slug, run, lines),
                },
            )
            .collect::<Result<_, _>>()?;
        commit.runs_etag = etag;
    }
    let path = format!("/repos/{slug}/commits/{sha}/status?per_page=100");
    if let Conditional::Fresh { value, etag } =
        client.get::<CombinedStatus>(&path, &commit.statuses_etag)?
    {
        commit.statuses = value.statuses.into_iter().map(read_status).collect();
        commit.statuses_etag = etag;
    }
    let validator = commit.validator();
    if query.validator.as_str() == validator {
        return Ok(Fetched::Unchanged);
    }
    Ok(Fetched::Changed {
        value: commit
            .runs
            .iter()
            .chain(&commit.statuses)
            .cloned()
            .collect(),
        validator: RString::from(validator),
    })
}

/// One check run as a [`Check`], with the tail of its log when it failed.
fn read_run(
    client: &Client,
    slug: &Slug,
    run: CheckRun,
    lines: usize,
) -> Result<Check, PluginFailure> {
    let mut state = state_of(&run);
    let mut log_tail = String::new();
    if state == CheckState::Failed || state == CheckState::FailedToRun {
        let output = run.output.as_ref();
        if output.and_then(|o| o.annotations_count).unwrap_or(0) > 0 {
            let said = annotations(client, slug, run.id)?;
            if said.iter().any(|message| {
                let message = message.to_lowercase();
                INFRASTRUCTURE.iter().any(|sign| message.contains(sign))
            }) {
                state = CheckState::FailedToRun;
                log_tail = last_lines(&said.join("\n"), lines.max(1));
            }
        }
        let actions = run.app.as_ref().and_then(|a| a.slug.as_deref()) == Some("github-actions");
        if state == CheckState::Failed && lines > 0 {
            if actions {
                let log = format!("/repos/{slug}/actions/jobs/{}/logs", run.id);
                match client.job_log_tail(&log, lines)? {
                    Some(tail) => log_tail = tail,
                    // A job without a log never ran the code.
                    None => state = CheckState::FailedToRun,
                }
            } else {
                let text = output
                    .and_then(|o| o.text.clone().or_else(|| o.summary.clone()))
                    .unwrap_or_default();
                log_tail = last_lines(&text, lines);
            }
        }
    }
    Ok(Check {
        id: RString::from(run.id.to_string()),
        name: RString::from(run.name),
        state: NonExhaustive::new(state),
        conclusion: RString::from(run.conclusion.unwrap_or_default()),
        url: RString::from(run.html_url.or(run.details_url).unwrap_or_default()),
        log_tail: RString::from(log_tail),
    })
}

/// One commit status (the older API other CI services report through) as a [`Check`]: its
/// context is the name, its description the tail; `error` means the service could not run.
fn read_status(status: Status) -> Check {
    let state = match status.state.as_str() {
        "success" => CheckState::Passed,
        "failure" => CheckState::Failed,
        "error" => CheckState::FailedToRun,
        _ => CheckState::Pending,
    };
    let finished = state != CheckState::Pending;
    Check {
        id: RString::from(format!("status-{}", status.id)),
        name: RString::from(status.context),
        state: NonExhaustive::new(state),
        conclusion: RString::from(if finished {
            status.state
        } else {
            String::new()
        }),
        url: RString::from(status.target_url.unwrap_or_default()),
        log_tail: RString::from(if finished {
            status.description.unwrap_or_default()
        } else {
            String::new()
        }),
    }
}

fn annotations(client: &Client, slug: &Slug, id: u64) -> Result<Vec<String>, PluginFailure> {
    let path = format!("/repos/{slug}/check-runs/{id}/annotations?per_page=50");
    let annotations: Vec<Annotation> = client.get_json(&path)?;
    Ok(annotations.into_iter().filter_map(|a| a.message).collect())
}
