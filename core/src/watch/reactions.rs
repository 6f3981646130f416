//! Deciding what to do about what the forge says, on plain values: which facts are new, which
//! reaction each new fact calls for, the message the agent gets, and the caps.
//!
//! Facts are stable across polls and restarts, so a reaction fires once per fact:
//! a failed check is its name + the head commit + its conclusion (a re-run with the same result
//! is the same fact; the same failure on a new commit is a new one); a review or a comment is
//! its id; a conflict is the head commit; approval is the head commit; merged and closed are the
//! pull request. Facts are marked seen when decided, whatever the action (sent, queued,
//! notified, capped), so nothing is decided twice.

use ao_plugin_api::scm::{
    Check, CheckState, Review, ReviewComment, ReviewDecision, ReviewFeedback,
};

use super::{
    ledger::{Ledger, Pending, PullRequestMemo},
    sanitize,
    view::CheckLink,
};
use crate::config::{ReactionAction, Reactions, SendReaction};

/// The most bytes of one message to an agent; what does not fit is named, not sent.
const MESSAGE_BYTES: usize = 24 * 1024;

/// What the engine does besides queueing messages (which [`decide`] puts in the ledger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run `notify:` with `AO_EVENT` = `event`.
    Notify { event: String, message: String },
    /// Merge the pull request at the head that was seen approved and green.
    Merge { number: u64, head_sha: String },
    /// The pull request merged: kill the session and remove its worktree, unless it holds work.
    Cleanup,
}

/// What one poll learned about a session's pull request.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub session_id: &'a str,
    pub pr: &'a PullRequestMemo,
    /// The head's checks, when fetched anew this poll; `None` when unchanged (already decided).
    pub checks: Option<&'a [Check]>,
    /// The head's CI as a whole (see [`ci_of`]), fetched now or remembered.
    pub ci: &'a str,
    /// The reviews, when fetched this poll.
    pub reviews: Option<&'a ReviewFeedback>,
    pub now_ms: u64,
}

/// The CI of a commit as a whole (`none`, `pending`, `passing`, `failing`) and its failed
/// checks. A check that could not run counts as failing: it is not green.
pub fn ci_of(checks: &[Check]) -> (String, Vec<CheckLink>) {
    let failed: Vec<CheckLink> = checks
        .iter()
        .filter(|check| {
            matches!(
                state_of(check),
                CheckState::Failed | CheckState::FailedToRun
            )
        })
        .map(|check| CheckLink {
            name: sanitize::line(&check.name),
            url: sanitize::line(&check.url),
        })
        .collect();
    let ci = if checks.is_empty() {
        "none"
    } else if !failed.is_empty() {
        "failing"
    } else if checks
        .iter()
        .any(|check| state_of(check) == CheckState::Pending)
    {
        "pending"
    } else {
        "passing"
    };
    (ci.to_string(), failed)
}

/// A check's state; one this host does not know is `Pending`, as the interface says.
pub fn state_of(check: &Check) -> CheckState {
    check
        .state
        .as_enum()
        .copied()
        .unwrap_or(CheckState::Pending)
}

fn decision_of(value: &Review) -> ReviewDecision {
    value
        .decision
        .as_enum()
        .copied()
        .unwrap_or(ReviewDecision::None)
}

/// Decides on `seen`: queues messages in `ledger.pending` (within the caps) and returns what
/// else to do.
pub fn decide(ledger: &mut Ledger, seen: &Observed<'_>, reactions: &Reactions) -> Vec<Decision> {
    let mut decisions = Vec::new();
    let pr = seen.pr;
    let id = seen.session_id;
    match pr.state.as_str() {
        "merged" => {
            if fresh(ledger, format!("merged:{}", pr.number))
                && reactions.merged != ReactionAction::Off
            {
                decisions.push(notify(
                    "pr_merged",
                    format!("{id}: pull request #{} was merged ({})", pr.number, pr.url),
                ));
                if reactions.cleanup {
                    decisions.push(Decision::Cleanup);
                }
            }
            // Nothing queued for a merged pull request is still worth typing.
            ledger.pending.clear();
            return decisions;
        }
        "closed" => {
            if fresh(ledger, format!("closed:{}", pr.number))
                && reactions.closed != ReactionAction::Off
            {
                decisions.push(notify(
                    "pr_closed",
                    format!(
                        "{id}: pull request #{} was closed without merging ({})",
                        pr.number, pr.url
                    ),
                ));
            }
            ledger.pending.clear();
            return decisions;
        }
        _ => {}
    }
    if let Some(checks) = seen.checks {
        decisions.extend(decide_checks(ledger, seen, checks, reactions));
    }
    if pr.mergeable == "conflicting" && fresh(ledger, format!("conflict:{}", pr.head_sha)) {
        let summary = format!("pull request #{} conflicts with its base", pr.number);
        let message = format!(
            "Your pull request #{} ({}) conflicts with its base branch at commit {}.\n\
             Bring the base branch into yours (merge or rebase), resolve the conflicts, run the \
             tests, commit and push to the same branch.",
            pr.number,
            pr.url,
            short(&pr.head_sha)
        );
        decisions.extend(offer(
            ledger,
            "merge_conflict",
            reactions.merge_conflict,
            seen,
            summary,
            message,
        ));
    }
    if let Some(feedback) = seen.reviews {
        decisions.extend(decide_reviews(ledger, seen, feedback, reactions));
    }
    let green = matches!(seen.ci, "passing" | "none");
    if pr.review_decision == "approved"
        && green
        && pr.mergeable != "conflicting"
        && !pr.draft
        && reactions.approved_and_green != ReactionAction::Off
        && fresh(ledger, format!("approved:{}", pr.head_sha))
    {
        let merging = if reactions.auto_merge {
            "; merging it (reactions.approved_and_green.auto_merge)"
        } else {
            ""
        };
        decisions.push(notify(
            "pr_approved",
            format!(
                "{id}: pull request #{} is approved and its checks pass ({}){merging}",
                pr.number, pr.url
            ),
        ));
        if reactions.auto_merge {
            decisions.push(Decision::Merge {
                number: pr.number,
                head_sha: pr.head_sha.clone(),
            });
        }
    }
    decisions
}

fn decide_checks(
    ledger: &mut Ledger,
    seen: &Observed<'_>,
    checks: &[Check],
    reactions: &Reactions,
) -> Vec<Decision> {
    let pr = seen.pr;
    let sha = &pr.head_sha;
    let mut decisions = Vec::new();
    let mut failed = Vec::new();
    for check in checks {
        let conclusion = sanitize::line(&check.conclusion);
        let name = sanitize::line(&check.name);
        match state_of(check) {
            CheckState::Failed if fresh(ledger, format!("ci:{sha}:{name}:{conclusion}")) => {
                failed.push(check);
            }
            // Billing, quota, runners: nothing the agent can fix.
            CheckState::FailedToRun
                if fresh(ledger, format!("ci_not_run:{sha}:{name}:{conclusion}")) =>
            {
                decisions.push(notify(
                    "pr_ci_failed_to_run",
                    format!(
                        "{}: check {name} could not run on pull request #{} ({conclusion}): {}",
                        seen.session_id,
                        pr.number,
                        sanitize::line(&check.url)
                    ),
                ));
            }
            _ => {}
        }
    }
    if failed.is_empty() {
        return decisions;
    }
    let names: Vec<String> = failed.iter().map(|c| sanitize::line(&c.name)).collect();
    let summary = format!(
        "CI failed on pull request #{} at {}: {}",
        pr.number,
        short(sha),
        names.join(", ")
    );
    let mut message = format!(
        "CI failed on your pull request #{} ({}) at commit {}.\n",
        pr.number,
        pr.url,
        short(sha)
    );
    for check in &failed {
        message.push_str(&format!(
            "\nFailed check: {} ({})\n{}\n",
            sanitize::line(&check.name),
            sanitize::line(&check.conclusion),
            sanitize::line(&check.url)
        ));
        let tail = sanitize::log_tail(&check.log_tail);
        if !tail.is_empty() {
            message.push_str("The end of its log:\n");
            for line in tail.lines() {
                message.push_str("    ");
                message.push_str(line);
                message.push('\n');
            }
        }
    }
    message
        .push_str("\nFind the cause, fix it, run the tests, commit and push to the same branch.");
    decisions.extend(offer(
        ledger,
        "ci_failed",
        reactions.ci_failed,
        seen,
        summary,
        message,
    ));
    decisions
}

fn decide_reviews(
    ledger: &mut Ledger,
    seen: &Observed<'_>,
    feedback: &ReviewFeedback,
    reactions: &Reactions,
) -> Vec<Decision> {
    let pr = seen.pr;
    let asked: Vec<&Review> = feedback
        .reviews
        .iter()
        .filter(|review| decision_of(review) == ReviewDecision::ChangesRequested)
        .filter(|review| fresh(ledger, format!("review:{}", review.id)))
        .collect();
    let comments: Vec<&ReviewComment> = feedback
        .unresolved
        .iter()
        .filter(|comment| fresh(ledger, format!("comment:{}", comment.comment_id)))
        .collect();
    if asked.is_empty() && comments.is_empty() {
        return Vec::new();
    }
    let instruction = "Address each point: change the code, commit and push to the same branch, \
                       then reply to each review thread saying what you did and resolve it.";
    let mut message = String::new();
    let (reaction, config, summary) = if asked.is_empty() {
        message.push_str(&format!(
            "New review comments on your pull request #{} ({}):\n",
            pr.number, pr.url
        ));
        (
            "review_comments",
            reactions.review_comments,
            format!(
                "{} new review comment(s) on pull request #{}",
                comments.len(),
                pr.number
            ),
        )
    } else {
        let authors: Vec<String> = asked.iter().map(|r| sanitize::line(&r.author)).collect();
        message.push_str(&format!(
            "Changes were requested on your pull request #{} ({}) by {}.\n",
            pr.number,
            pr.url,
            authors.join(", ")
        ));
        for review in &asked {
            let body = sanitize::body(&review.body);
            if !body.is_empty() {
                message.push_str(&format!(
                    "\nReview by {}:\n{}\n",
                    sanitize::line(&review.author),
                    body
                ));
            }
        }
        (
            "changes_requested",
            reactions.changes_requested,
            format!(
                "changes requested on pull request #{} ({} comment(s))",
                pr.number,
                comments.len()
            ),
        )
    };
    for comment in &comments {
        let place = match (sanitize::line(&comment.path), comment.line.into_option()) {
            (path, _) if path.is_empty() => "(the pull request)".to_string(),
            (path, Some(line)) => format!("{path}:{line}"),
            (path, None) => path,
        };
        message.push_str(&format!(
            "\n{place} ({}): {}\n{}\n",
            sanitize::line(&comment.author),
            sanitize::line(&comment.url),
            sanitize::body(&comment.body)
        ));
    }
    message.push('\n');
    message.push_str(instruction);
    offer(ledger, reaction, config, seen, summary, message)
        .into_iter()
        .collect()
}

/// Whether `fact` is new; marks it seen.
fn fresh(ledger: &mut Ledger, fact: String) -> bool {
    ledger.seen.insert(fact)
}

fn notify(event: &str, message: String) -> Decision {
    Decision::Notify {
        event: event.to_string(),
        message,
    }
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// A message for the agent, within the reaction's action and cap: queued in the ledger (one
/// waiting of a kind takes the newer message: the older one is out of date), notified instead,
/// or (past the cap) escalated to the operator, once per batch of new facts.
fn offer(
    ledger: &mut Ledger,
    reaction: &str,
    config: SendReaction,
    seen: &Observed<'_>,
    summary: String,
    message: String,
) -> Option<Decision> {
    let id = seen.session_id;
    match config.action {
        ReactionAction::Off => None,
        ReactionAction::Notify => Some(notify(
            &format!("pr_{reaction}"),
            format!("{id}: {summary}"),
        )),
        ReactionAction::Send => {
            let message = bounded(message);
            if let Some(waiting) = ledger.pending.iter_mut().find(|p| p.reaction == reaction) {
                if reaction == "ci_failed" || reaction == "merge_conflict" {
                    waiting.message = message;
                } else {
                    waiting.message = bounded(format!("{}\n\n{message}", waiting.message));
                }
                waiting.summary = summary;
                return None;
            }
            let sent = ledger.sends.get(reaction).copied().unwrap_or(0);
            if sent >= config.max_sends {
                // Every new batch past the cap is told: these facts are marked seen, so this
                // notification is the only trace of them.
                return Some(notify(
                    &format!("pr_{reaction}_escalated"),
                    format!(
                        "{id}: {summary}; not sent to the agent, which had {sent} such message(s) already (reactions.{reaction}.max_sends): please look"
                    ),
                ));
            }
            ledger.pending.push(Pending {
                reaction: reaction.to_string(),
                summary,
                message,
                queued_at_ms: seen.now_ms,
            });
            None
        }
    }
}

/// `message` within [`MESSAGE_BYTES`], cut at a line with a note saying so.
fn bounded(message: String) -> String {
    if message.len() <= MESSAGE_BYTES {
        return message;
    }
    let mut end = MESSAGE_BYTES - 200;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let end = message[..end].rfind('\n').unwrap_or(end);
    format!(
        "{}\n[… cut: the rest is on the pull request's page]",
        &message[..end]
    )
}

#[cfg(test)]
mod tests {
    use ao_plugin_api::abi_stable::{nonexhaustive_enum::NonExhaustive, std_types::ROption};

    use super::*;

    fn pr(sha: &str) -> PullRequestMemo {
        PullRequestMemo {
            number: 7,
            url: "https://forge/acme/app/pull/7".into(),
            title: "Fix".into(),
            branch: "session/app-1".into(),
            head_sha: sha.into(),
            state: "open".into(),
            draft: false,
            mergeable: "mergeable".into(),
            review_decision: "review_required".into(),
        }
    }

    fn check(id: &str, name: &str, state: CheckState, conclusion: &str) -> Check {
        Check {
            id: id.into(),
            name: name.into(),
            state: NonExhaustive::new(state),
            conclusion: conclusion.into(),
            url: format!("https://forge/runs/{id}").into(),
            log_tail: "\u{1b}[31mError\u{1b}[0m: assertion failed\n  at test.rs:3".into(),
        }
    }

    fn observed<'a>(
        pr: &'a PullRequestMemo,
        checks: Option<&'a [Check]>,
        reviews: Option<&'a ReviewFeedback>,
    ) -> Observed<'a> {
        let ci = match checks {
            Some(checks) if ci_of(checks).0 == "failing" => "failing",
            _ => "passing",
        };
        Observed {
            session_id: "app-1",
            pr,
            checks,
            ci,
            reviews,
            now_ms: 1,
        }
    }

    /// Delivers everything queued, as the engine does at an idle prompt.
    fn deliver_all(ledger: &mut Ledger) -> Vec<Pending> {
        let sent: Vec<Pending> = std::mem::take(&mut ledger.pending);
        for pending in &sent {
            *ledger.sends.entry(pending.reaction.clone()).or_default() += 1;
        }
        sent
    }

    #[test]
    fn a_failed_check_is_sent_once_per_commit_with_its_url_and_a_clean_log_tail() {
        let reactions = Reactions::default();
        let mut ledger = Ledger::default();
        let head = pr("aaaaaaa111");
        let failed = [
            check("1", "build", CheckState::Failed, "failure"),
            check("2", "lint", CheckState::Passed, "success"),
        ];
        assert!(decide(
            &mut ledger,
            &observed(&head, Some(&failed), None),
            &reactions
        )
        .is_empty());
        let sent = deliver_all(&mut ledger);
        assert_eq!(sent.len(), 1);
        let message = &sent[0].message;
        assert!(message.contains("build (failure)"), "{message}");
        assert!(message.contains("https://forge/runs/1"), "{message}");
        assert!(message.contains("Error: assertion failed"), "{message}");
        assert!(!message.contains('\u{1b}'), "{message}");
        assert!(!message.contains("lint"), "{message}");
        // Re-run, same result (a new run id): nothing.
        let rerun = [check("3", "build", CheckState::Failed, "failure")];
        decide(
            &mut ledger,
            &observed(&head, Some(&rerun), None),
            &reactions,
        );
        assert!(ledger.pending.is_empty());
        // The same failure on a new commit: new.
        let next = pr("bbbbbbb222");
        decide(
            &mut ledger,
            &observed(&next, Some(&rerun), None),
            &reactions,
        );
        assert_eq!(deliver_all(&mut ledger).len(), 1);
    }

    #[test]
    fn past_its_cap_every_new_batch_is_escalated_to_the_operator() {
        let mut reactions = Reactions::default();
        reactions.ci_failed.max_sends = 1;
        let mut ledger = Ledger::default();
        let failing = [check("1", "build", CheckState::Failed, "failure")];
        decide(
            &mut ledger,
            &observed(&pr("a1"), Some(&failing), None),
            &reactions,
        );
        assert_eq!(deliver_all(&mut ledger).len(), 1);
        let decisions = decide(
            &mut ledger,
            &observed(&pr("b2"), Some(&failing), None),
            &reactions,
        );
        assert!(ledger.pending.is_empty());
        assert!(
            matches!(&decisions[..], [Decision::Notify { event, message }] if event == "pr_ci_failed_escalated" && message.contains("max_sends")),
            "{decisions:?}"
        );
        let decisions = decide(
            &mut ledger,
            &observed(&pr("c3"), Some(&failing), None),
            &reactions,
        );
        assert!(
            matches!(&decisions[..], [Decision::Notify { event, message }] if event == "pr_ci_failed_escalated" && message.contains("c3")),
            "{decisions:?}"
        );
        assert!(ledger.pending.is_empty());
        // The same facts again are not new: nothing.
        let decisions = decide(
            &mut ledger,
            &observed(&pr("c3"), Some(&failing), None),
            &reactions,
        );
        assert!(decisions.is_empty() && ledger.pending.is_empty());
    }

    #[test]
    fn a_check_that_could_not_run_is_only_notified() {
        let mut ledger = Ledger::default();
        let billing = [check(
            "1",
            "build",
            CheckState::FailedToRun,
            "startup_failure",
        )];
        let decisions = decide(
            &mut ledger,
            &observed(&pr("a1"), Some(&billing), None),
            &Reactions::default(),
        );
        assert!(ledger.pending.is_empty());
        assert!(
            matches!(&decisions[..], [Decision::Notify { event, .. }] if event == "pr_ci_failed_to_run")
        );
    }

    #[test]
    fn a_change_request_with_two_comments_is_one_message_and_each_comment_goes_once() {
        let comment = |id: &str, line: u32| ReviewComment {
            thread_id: format!("t{id}").into(),
            comment_id: id.into(),
            path: "src/lib.rs".into(),
            line: ROption::RSome(line),
            author: "bob".into(),
            body: format!("please fix {id}").into(),
            url: format!("https://forge/c/{id}").into(),
        };
        let feedback = ReviewFeedback {
            number: 7,
            reviews: vec![Review {
                id: "r1".into(),
                author: "alice".into(),
                decision: NonExhaustive::new(ReviewDecision::ChangesRequested),
                body: "Two things.".into(),
                url: "https://forge/r/1".into(),
            }]
            .into(),
            unresolved: vec![comment("c1", 3), comment("c2", 9)].into(),
        };
        let mut ledger = Ledger::default();
        let head = pr("a1");
        decide(
            &mut ledger,
            &observed(&head, None, Some(&feedback)),
            &Reactions::default(),
        );
        let sent = deliver_all(&mut ledger);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reaction, "changes_requested");
        let message = &sent[0].message;
        for part in [
            "src/lib.rs:3",
            "src/lib.rs:9",
            "please fix c1",
            "please fix c2",
            "alice",
            "resolve",
        ] {
            assert!(message.contains(part), "{part}: {message}");
        }
        decide(
            &mut ledger,
            &observed(&head, None, Some(&feedback)),
            &Reactions::default(),
        );
        assert!(ledger.pending.is_empty());
        // One more comment later: a review_comments message with only it.
        let mut more = feedback.clone();
        more.unresolved.push(comment("c3", 20));
        decide(
            &mut ledger,
            &observed(&head, None, Some(&more)),
            &Reactions::default(),
        );
        let sent = deliver_all(&mut ledger);
        assert_eq!(sent[0].reaction, "review_comments");
        assert!(sent[0].message.contains("src/lib.rs:20") && !sent[0].message.contains("fix c1"));
    }

    #[test]
    fn conflicts_approval_merge_and_close_are_decided_once() {
        let reactions = Reactions::default();
        let mut ledger = Ledger::default();
        let mut head = pr("a1");
        head.mergeable = "conflicting".into();
        decide(&mut ledger, &observed(&head, None, None), &reactions);
        decide(&mut ledger, &observed(&head, None, None), &reactions);
        let sent = deliver_all(&mut ledger);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].message.contains("conflicts with its base"));
        head.mergeable = "mergeable".into();
        head.review_decision = "approved".into();
        let decisions = decide(&mut ledger, &observed(&head, None, None), &reactions);
        assert!(
            matches!(&decisions[..], [Decision::Notify { event, .. }] if event == "pr_approved")
        );
        assert!(decide(&mut ledger, &observed(&head, None, None), &reactions).is_empty());
        let mut auto = reactions;
        auto.auto_merge = true;
        let mut fresh_ledger = Ledger::default();
        let decisions = decide(&mut fresh_ledger, &observed(&head, None, None), &auto);
        assert!(decisions.contains(&Decision::Merge {
            number: 7,
            head_sha: "a1".into()
        }));
        head.state = "merged".into();
        let decisions = decide(&mut ledger, &observed(&head, None, None), &reactions);
        assert!(
            matches!(&decisions[..], [Decision::Notify { event, .. }, Decision::Cleanup] if event == "pr_merged")
        );
        assert!(decide(&mut ledger, &observed(&head, None, None), &reactions).is_empty());
        let mut keep = reactions;
        keep.cleanup = false;
        let decisions = decide(&mut Ledger::default(), &observed(&head, None, None), &keep);
        assert!(!decisions.contains(&Decision::Cleanup));
    }

    #[test]
    fn a_newer_failure_replaces_the_one_still_waiting() {
        let mut ledger = Ledger::default();
        let failing = [check("1", "build", CheckState::Failed, "failure")];
        let reactions = Reactions::default();
        decide(
            &mut ledger,
            &observed(&pr("aaaaaaa"), Some(&failing), None),
            &reactions,
        );
        decide(
            &mut ledger,
            &observed(&pr("bbbbbbb"), Some(&failing), None),
            &reactions,
        );
        assert_eq!(ledger.pending.len(), 1);
        assert!(ledger.pending[0].message.contains("bbbbbbb"));
    }
}
