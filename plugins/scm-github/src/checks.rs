//! The checks on one commit: `GET /repos/O/R/commits/SHA/check-runs` (the latest run of each,
//! asked with the last `ETag`), then for each failed one its annotations (when it has some) and
//! the tail of its GitHub Actions job log.
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
//! output text (or summary) is the tail.

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

pub fn checks(
    client: &Client,
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
    let path = format!("/repos/{slug}/commits/{sha}/check-runs?per_page=100");
    let (runs, etag) = match client.get::<CheckRuns>(&path, query.validator.as_str())? {
        Conditional::NotModified => return Ok(Fetched::Unchanged),
        Conditional::Fresh { value, etag } => (value.check_runs, etag),
    };
    let lines = query.log_lines as usize;
    let mut checks = Vec::with_capacity(runs.len());
    for run in runs {
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
            let actions =
                run.app.as_ref().and_then(|a| a.slug.as_deref()) == Some("github-actions");
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
        checks.push(Check {
            id: RString::from(run.id.to_string()),
            name: RString::from(run.name),
            state: NonExhaustive::new(state),
            conclusion: RString::from(run.conclusion.unwrap_or_default()),
            url: RString::from(run.html_url.or(run.details_url).unwrap_or_default()),
            log_tail: RString::from(log_tail),
        });
    }
    Ok(Fetched::Changed {
        value: checks,
        validator: RString::from(etag),
    })
}

fn annotations(client: &Client, slug: &Slug, id: u64) -> Result<Vec<String>, PluginFailure> {
    let path = format!("/repos/{slug}/check-runs/{id}/annotations?per_page=50");
    let annotations: Vec<Annotation> = client.get_json(&path)?;
    Ok(annotations.into_iter().filter_map(|a| a.message).collect())
}
