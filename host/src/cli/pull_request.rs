//! Pull requests as the CLI prints them: the short cell of `session ls` and the detail of
//! `session pr ID`. Both read what the watcher stored (through the lifecycle), never the forge.

use std::process::ExitCode;

use anyhow::Result;
use ao_core::{
    lifecycle::Lifecycle,
    watch::shown::{ListedSession, PullRequestDetail, ShownPullRequest, WatcherState},
};

use super::output::{print_json, terminal_safe};
use crate::outln;

/// `#12 ci:fail rev:changes conflict (1 queued)`: a session's pull request in a few words.
pub fn cell(listed: &ListedSession) -> String {
    let mut words = match &listed.pr {
        None => vec!["-".to_string()],
        Some(pr) => summary(pr),
    };
    if !listed.queued.is_empty() {
        words.push(format!("({} queued)", listed.queued.len()));
    }
    words.join(" ")
}

fn summary(pr: &ShownPullRequest) -> Vec<String> {
    let view = &pr.view;
    let mut words = vec![format!("#{}", view.number)];
    if view.state != "open" {
        words.push(terminal_safe(&view.state).into_owned());
        return words;
    }
    if view.draft {
        words.push("draft".into());
    }
    let ci = match view.ci.as_str() {
        "none" => None,
        "passing" => Some("pass"),
        "failing" => Some("fail"),
        "pending" => Some("pend"),
        other => Some(other),
    };
    if let Some(ci) = ci {
        words.push(format!("ci:{}", terminal_safe(ci)));
    }
    let review = match view.review.as_str() {
        "none" => None,
        "review_required" => Some("wanted"),
        "approved" => Some("ok"),
        "changes_requested" => Some("changes"),
        other => Some(other),
    };
    if let Some(review) = review {
        words.push(format!("rev:{}", terminal_safe(review)));
    }
    if view.mergeable == "conflicting" {
        words.push("conflict".into());
    }
    words
}

/// `12s`, `4m`, `3h`, `2d`.
fn ago(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 2 * 86400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}

/// `ao-host session pr ID [--json]`.
pub fn show(lifecycle: &Lifecycle, id: &str, json: bool) -> Result<ExitCode> {
    let detail = lifecycle.pull_request(id)?;
    if json {
        print_json(&detail)?;
    } else {
        print_detail(&detail)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_detail(detail: &PullRequestDetail) -> Result<()> {
    let branch = terminal_safe(&detail.branch);
    match (&detail.pr, detail.checked_at) {
        (_, None) if detail.watch_note.is_none() => {
            outln!(
                "{}: branch {branch} not looked at by a watcher yet",
                detail.id
            )
        }
        (None, Some(checked_at)) => outln!(
            "{}: branch {branch} has no pull request (checked {})",
            detail.id,
            ago(age_of(checked_at))
        ),
        (None, None) => outln!("{}: branch {branch}", detail.id),
        (Some(pr), _) => print_pull_request(&detail.id, &branch, pr)?,
    }
    if !detail.queued.is_empty() {
        outln!("queued (sent when the agent is idle at its prompt):");
        for queued in &detail.queued {
            outln!(
                "  {:<18} {} ({})",
                terminal_safe(&queued.reaction),
                terminal_safe(&queued.summary),
                ago(queued.age_secs)
            );
        }
    }
    if let Some(note) = &detail.watch_note {
        outln!("{}", terminal_safe(note));
    }
    print_watcher(&detail.watcher)
}

fn age_of(at_ms: u64) -> u64 {
    ao_core::session::now_ms().saturating_sub(at_ms) / 1000
}

fn print_pull_request(id: &str, branch: &str, pr: &ShownPullRequest) -> Result<()> {
    let view = &pr.view;
    outln!(
        "{id}: branch {branch}, pull request #{} {}",
        view.number,
        terminal_safe(&view.title)
    );
    outln!("  link:       {}", terminal_safe(&view.url));
    let draft = if view.draft { " (draft)" } else { "" };
    outln!("  state:      {}{draft}", terminal_safe(&view.state));
    outln!(
        "  CI:         {} on {}",
        terminal_safe(&view.ci),
        terminal_safe(view.head_sha.get(..12).unwrap_or(&view.head_sha))
    );
    for check in &view.failed_checks {
        outln!(
            "    failed:   {}  {}",
            terminal_safe(&check.name),
            terminal_safe(&check.url)
        );
    }
    outln!(
        "  review:     {}, {} unresolved comment(s)",
        terminal_safe(&view.review),
        view.unresolved_comments
    );
    outln!("  mergeable:  {}", terminal_safe(&view.mergeable));
    outln!("  checked:    {}", ago(pr.age_secs));
    Ok(())
}

fn print_watcher(watcher: &WatcherState) -> Result<()> {
    match (watcher.running, watcher.pid, watcher.age_secs) {
        (true, Some(pid), Some(age)) => outln!(
            "watcher: running (pid {pid}, polled {}, every {}s)",
            ago(age),
            watcher.poll_interval_secs.unwrap_or_default()
        ),
        (false, Some(pid), Some(age)) => outln!(
            "watcher: {} (the last one, pid {pid}, polled {})",
            watcher.note.as_deref().unwrap_or_default(),
            ago(age)
        ),
        _ => outln!("watcher: {}", watcher.note.as_deref().unwrap_or_default()),
    }
    Ok(())
}
