//! Budgets with the real Claude Code CLI, offline against the Messages API stand-in, whose
//! replies report usage the test chose: a session's `warn` notifies once at its threshold; at
//! `stop` its own hook marks it `over_budget` and interrupts it, so no further model request is
//! made; `send` is refused with the reason, `--force` goes through, and raising the budget in
//! the config lets it continue.
//!
//! Prices are set in the config (`prices:`), $1 per million tokens of any kind, so a reply of
//! N input tokens costs N / 1e6 dollars.

use std::time::Duration;

use support::{agent_cli::wait_for_status, messages_api::Usage, stderr, wait_until, Harness};

/// The model the session is told to use, and its price entry (`prices:` ignores the date).
const MODEL: &str = "claude-sonnet-4-5-20250929";

/// A reply of `input` uncached input tokens and one output token.
fn costing(input: u64) -> Usage {
    Usage {
        input,
        output: 1,
        cache_read: 0,
        cache_write_5m: 0,
        cache_write_1h: 0,
    }
}

/// The conversation requests the stand-in received so far.
fn model_requests(api: &support::messages_api::MessagesApi) -> usize {
    api.usage_sent().len()
}

/// The `AO_EVENT`s `notify` was run with, in order.
fn events(notified: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(notified)
        .unwrap_or_default()
        .lines()
        .map(|line| line.split(' ').next().unwrap_or("").to_string())
        .collect()
}

fn with_budget(harness: &Harness, stop: &str) {
    harness.rewrite_config(|config| {
        let start = config.find("budgets:").expect("a budgets section");
        let end = start + config[start..].find('\n').unwrap() + 1;
        format!(
            "{}budgets: {{ session: {{ warn: 1, stop: {stop} }} }}\n{}",
            &config[..start],
            &config[end..]
        )
    });
}

#[test]
fn a_session_budget_warns_once_stops_the_real_claude_and_continues_when_raised() {
    let Some((api, harness, notified)) = crate::real_claude::real_claude() else {
        return;
    };
    harness.rewrite_config(|config| {
        let config = support::replaced(
            &config,
            &[(
                "agent_config: { permission_mode: default }",
                &format!("agent_config: {{ permission_mode: default, model: {MODEL} }}"),
            )],
        );
        format!(
            "{config}prices:\n  claude-sonnet-4-5: {{ input: 1, output: 1, cache_read: 1, cache_write_5m: 1, cache_write_1h: 1 }}\nbudgets: {{ session: {{ warn: 1, stop: 2 }} }}\n"
        )
    });
    // $1.50 for the task's turn (past warn), $1.00 for the next (past stop).
    api.queue_usage([costing(1_499_999), costing(999_999)]);

    // The agent's hook checks at the end of each turn, but Claude Code may write the turn's
    // reply to its transcript after that hook ran; the next listing (or the watcher's poll)
    // checks again, so listings drive the checks here.
    harness.ok(&["spawn", "app", "--task", "first turn"]);
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(60));
    assert!(
        wait_until(Duration::from_secs(30), || {
            harness.sessions_json(&[]);
            events(&notified).contains(&"budget_warn".to_string())
        }),
        "no budget_warn: {:?}\n{:#}",
        events(&notified),
        harness.sessions_json(&[])[0]["usage"],
    );

    harness.ok(&["send", "app-1", "second turn"]);
    let over = wait_for_status(&harness, "app-1", "over_budget", Duration::from_secs(60));
    let note = over["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("$2.50 of its $2.00 session budget ($0.50 over)")
            && note.contains("budgets.session.stop"),
        "{over:#}"
    );
    assert_eq!(model_requests(&api), 2, "{:?}", api.usage_sent());
    let usage = &over["usage"];
    assert_eq!(usage["models"][MODEL]["input"], 2_499_998, "{usage:#}");

    // Refused, with the reason, and nothing reaches the model.
    let refused = harness.ao(&["send", "app-1", "third turn"]);
    assert!(!refused.status.success());
    let reason = stderr(&refused);
    assert!(
        reason.contains("app-1 is over budget")
            && reason.contains("raise budgets.session.stop in")
            && reason.contains("--force"),
        "{reason}"
    );
    assert_eq!(model_requests(&api), 2);

    // Forced, it goes through; the session stays stopped for everything else.
    harness.ok(&["send", "--force", "app-1", "forced turn"]);
    assert!(
        api.wait_for_conversation_requests(3, Duration::from_secs(60)),
        "the forced message never reached the model"
    );
    assert!(wait_until(Duration::from_secs(60), || {
        harness.sessions_json(&[])[0]["usage"]["models"][MODEL]["replies"] == 3
    }));
    wait_for_status(&harness, "app-1", "over_budget", Duration::from_secs(5));

    // Raised: the next listing lifts the mark, and the agent takes messages again.
    with_budget(&harness, "10");
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(60));
    harness.ok(&["send", "app-1", "after the raise"]);
    assert!(api.wait_for_conversation_requests(4, Duration::from_secs(60)));
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(60));

    let told = events(&notified);
    let count = |event: &str| told.iter().filter(|e| *e == event).count();
    assert_eq!(
        (count("budget_warn"), count("over_budget")),
        (1, 1),
        "{told:?}"
    );
}
