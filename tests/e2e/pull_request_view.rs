//! What the operator sees of pull requests, end to end: real sessions (tmux, git worktrees, the
//! fake agent) whose watch files are written through `WatchDir`, the stored contract between the
//! watcher and every front end, and read back by `session ls` (table and `--json`), `session
//! pr`, the dashboard's API and its live feed. No forge is involved: listings never call one.

use ao_core::{
    session::now_ms,
    watch::ledger::Ledger,
    watch::view::{
        CheckLink, PullRequestView, QueuedReaction, SessionWatch, WatchDir, WatcherBeat, SCHEMA,
    },
};
use std::time::Duration;

use serde_json::Value;
use support::{stderr, stdout, wait_until, Harness};

use crate::dashboard::Dashboard;

fn watch_dir(harness: &Harness) -> WatchDir {
    WatchDir::new(&harness.data_dir())
}

/// Pull request #12 of `app-1`: CI failing on two checks, changes requested, in conflict.
fn failing_pr() -> PullRequestView {
    PullRequestView {
        number: 12,
        url: "https://github.example/o/app/pull/12".into(),
        title: "Fix the login".into(),
        state: "open".into(),
        draft: false,
        head_sha: "0123456789abcdef0123456789abcdef01234567".into(),
        ci: "failing".into(),
        failed_checks: vec![
            CheckLink {
                name: "build".into(),
                url: "https://github.example/o/app/actions/runs/7/job/1".into(),
            },
            CheckLink {
                name: "lint".into(),
                url: "https://github.example/o/app/actions/runs/7/job/2".into(),
            },
        ],
        review: "changes_requested".into(),
        unresolved_comments: 2,
        mergeable: "conflicting".into(),
    }
}

fn stored(pr: Option<PullRequestView>, queued: &[(&str, &str)]) -> SessionWatch {
    let now = now_ms();
    SessionWatch {
        schema: SCHEMA,
        checked_at_ms: now - 4_000,
        pr,
        queued: queued
            .iter()
            .map(|(reaction, summary)| QueuedReaction {
                reaction: reaction.to_string(),
                summary: summary.to_string(),
                queued_at_ms: now - 600_000,
            })
            .collect(),
    }
}

/// Stores pull request #12 (failing, changes requested, one reaction queued) for `id` of
/// project `app`, as the watcher would.
pub(crate) fn store_failing_pr(harness: &Harness, id: &str) {
    watch_dir(harness)
        .save_session(
            "app",
            id,
            &stored(
                Some(failing_pr()),
                &[("ci_failed", "build failed on 0123456789ab")],
            ),
        )
        .unwrap();
}

/// Stores pull request #12, nothing queued, for both `app-1` and `app-2`.
fn store_both(watch: &WatchDir) {
    for id in ["app-1", "app-2"] {
        watch
            .save_session("app", id, &stored(Some(failing_pr()), &[]))
            .unwrap();
    }
}

/// A heartbeat of this test process (alive), last polled `ago_ms` ago.
fn beat(harness: &Harness, ago_ms: u64) {
    let now = now_ms();
    watch_dir(harness)
        .save_beat(&WatcherBeat {
            schema: SCHEMA,
            pid: std::process::id(),
            started_at_ms: now - 3_600_000,
            polled_at_ms: now - ago_ms,
            poll_interval_secs: 30,
        })
        .unwrap();
}

fn listed(harness: &Harness, id: &str) -> Value {
    harness
        .sessions_json(&[])
        .into_iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed"))
}

/// Two idle sessions, `app-1` and `app-2`: each works on its task for a moment after its spawn
/// returns, so both are waited for (a listing right after the second spawn could find the
/// first still working when the spawns were quick).
fn two_sessions() -> Harness {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "fix the login"]);
    harness.ok(&["spawn", "app", "--task", "write the notes"]);
    for id in ["app-1", "app-2"] {
        assert!(
            wait_until(Duration::from_secs(30), || {
                harness
                    .sessions_json(&[])
                    .iter()
                    .any(|s| s["id"] == id && s["status"] == "idle")
            }),
            "{id} never went idle after its task"
        );
    }
    harness
}

#[test]
fn session_ls_and_session_pr_show_the_stored_pull_request_ci_review_and_queue() {
    let harness = two_sessions();
    store_failing_pr(&harness, "app-1");
    beat(&harness, 2_000);

    // `--json`: the record's fields as before, and the pull request, queue and watcher.
    let one = listed(&harness, "app-1");
    assert_eq!(one["status"], "idle");
    assert_eq!(one["branch"], "session/app-1");
    let pr = &one["pr"];
    assert_eq!(pr["number"], 12);
    assert_eq!(pr["url"], "https://github.example/o/app/pull/12");
    assert_eq!(pr["title"], "Fix the login");
    assert_eq!(pr["state"], "open");
    assert_eq!(pr["ci"], "failing");
    assert_eq!(pr["review"], "changes_requested");
    assert_eq!(pr["mergeable"], "conflicting");
    assert_eq!(pr["unresolved_comments"], 2);
    assert_eq!(pr["failed_checks"][1]["name"], "lint");
    assert_eq!(
        pr["failed_checks"][0]["url"],
        "https://github.example/o/app/actions/runs/7/job/1"
    );
    assert!(pr["checked_at"].as_u64().unwrap() > 0);
    let age = pr["age_secs"].as_u64().unwrap();
    assert!((4..600).contains(&age), "{age}");
    assert_eq!(one["queued"][0]["reaction"], "ci_failed");
    assert_eq!(one["queued"][0]["summary"], "build failed on 0123456789ab");
    assert!(one["queued"][0]["age_secs"].as_u64().unwrap() >= 600);
    assert_eq!(one["watcher_running"], true);
    assert!(one.get("watch_note").is_none());
    let two = listed(&harness, "app-2");
    assert!(two["pr"].is_null(), "{two:#}");
    assert_eq!(two["queued"], serde_json::json!([]));

    // The table: a short PR cell, and no word about the watcher: it runs.
    let table = stdout(&harness.ok(&["session", "ls"]));
    assert!(
        table.contains("#12 ci:fail rev:changes conflict (1 queued)"),
        "{table}"
    );
    assert!(!table.contains("no watcher running"), "{table}");

    // The detail.
    let detail = stdout(&harness.ok(&["session", "pr", "app-1"]));
    for needle in [
        "pull request #12 Fix the login",
        "https://github.example/o/app/pull/12",
        "failing on 0123456789ab",
        "failed:   build  https://github.example/o/app/actions/runs/7/job/1",
        "failed:   lint  https://github.example/o/app/actions/runs/7/job/2",
        "changes_requested, 2 unresolved comment(s)",
        "mergeable:  conflicting",
        "ci_failed",
        "build failed on 0123456789ab (10m ago)",
        "watcher: running",
    ] {
        assert!(detail.contains(needle), "{needle:?} missing in:\n{detail}");
    }
    let json = support::json(&harness.ok(&["session", "pr", "app-1", "--json"]));
    assert_eq!(json["id"], "app-1");
    assert_eq!(json["pr"]["number"], 12);
    assert_eq!(json["pr"]["failed_checks"], one["pr"]["failed_checks"]);
    assert_eq!(json["queued"][0]["reaction"], "ci_failed");
    assert_eq!(json["watcher"]["running"], true);
    assert_eq!(json["watcher"]["pid"], std::process::id());

    // A session the watcher has not looked at yet, and one that does not exist.
    let fresh = stdout(&harness.ok(&["session", "pr", "app-2"]));
    assert!(fresh.contains("not looked at by a watcher yet"), "{fresh}");
    let unknown = harness.ao(&["session", "pr", "app-9"]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no session `app-9`"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn no_watcher_is_said_once_and_a_damaged_watch_file_is_a_note_never_a_failed_listing() {
    let harness = two_sessions();
    let watch = watch_dir(&harness);
    store_both(&watch);
    // Polled an hour ago: no watcher runs.
    beat(&harness, 3_600_000);
    let table = stdout(&harness.ok(&["session", "ls"]));
    assert_eq!(
        table
            .matches("no watcher running (start `ao-host watch`)")
            .count(),
        1,
        "{table}"
    );
    assert_eq!(listed(&harness, "app-1")["watcher_running"], false);
    let detail = stdout(&harness.ok(&["session", "pr", "app-1"]));
    assert!(
        detail.contains("watcher: no watcher running (start `ao-host watch`) (the last one, pid"),
        "{detail}"
    );

    // None ever ran: the same.
    std::fs::remove_file(watch.root().join("watcher.json")).unwrap();
    let table = stdout(&harness.ok(&["session", "ls"]));
    assert!(table.contains("no watcher running"), "{table}");

    // Nothing stored, and no project watched: nothing to say. A project that sets `scm:` wants
    // a watcher before it stored anything.
    for id in ["app-1", "app-2"] {
        watch.remove_session("app", id).unwrap();
    }
    let table = stdout(&harness.ok(&["session", "ls"]));
    assert!(!table.contains("no watcher running"), "{table}");
    harness.edit_config(&[(
        "default_branch: main }",
        "default_branch: main, scm: github }",
    )]);
    let table = stdout(&harness.ok(&["session", "ls"]));
    assert!(table.contains("no watcher running"), "{table}");
    store_both(&watch);

    // A damaged file: its session is listed with a note naming the file and the fix.
    let damaged = watch.root().join("sessions/app/app-2.json");
    std::fs::write(&damaged, "{\"schema\": 1, \"pr\": [not json").unwrap();
    let output = harness.ok(&["session", "ls"]);
    let table = stdout(&output);
    assert!(
        table.contains("app-1") && table.contains("app-2"),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "watch file {} is unreadable",
            harness
                .data_dir()
                .canonicalize()
                .unwrap()
                .join("watch/sessions/app/app-2.json")
                .display()
        )) && table.contains("delete it: the watcher writes it again"),
        "{table}"
    );
    let two = listed(&harness, "app-2");
    assert!(two["pr"].is_null());
    assert!(two["watch_note"].as_str().unwrap().contains("app-2.json"));
    assert_eq!(listed(&harness, "app-1")["pr"]["number"], 12);
    let detail = stdout(&harness.ok(&["session", "pr", "app-2"]));
    assert!(detail.contains("is unreadable"), "{detail}");
}

#[test]
fn a_killed_session_forgets_its_watch_file_and_gc_collects_one_written_after() {
    let harness = two_sessions();
    let watch = watch_dir(&harness);
    store_both(&watch);
    let file = |id: &str| watch.root().join(format!("sessions/app/{id}.json"));
    let ledger = |id: &str| watch.root().join(format!("ledger/app/{id}.json"));
    watch
        .save_ledger("app", "app-1", &Ledger::default())
        .unwrap();
    assert!(ledger("app-1").exists());
    harness.ok(&["session", "kill", "app-1"]);
    assert!(!file("app-1").exists(), "the kill left its watch file");
    assert!(!ledger("app-1").exists(), "the kill left its ledger");
    assert!(file("app-2").exists());

    // A watcher that polled before the kill and saved after it leaves one behind: gc removes
    // it, and keeps the live session's.
    watch
        .save_session("app", "app-1", &stored(Some(failing_pr()), &[]))
        .unwrap();
    watch
        .save_ledger("app", "app-1", &Ledger::default())
        .unwrap();
    let plan = stdout(&harness.ok(&["gc", "--dry-run"]));
    assert!(
        plan.contains("remove watch file") && plan.contains("app/app-1"),
        "{plan}"
    );
    harness.ok(&["gc"]);
    assert!(
        !file("app-1").exists(),
        "gc left the killed session's watch file"
    );
    assert!(
        !ledger("app-1").exists(),
        "gc left the killed session's ledger"
    );
    assert!(
        file("app-2").exists(),
        "gc removed a live session's watch file"
    );
}

#[test]
fn the_dashboard_api_and_feed_carry_the_same_pull_request_fields_as_the_cli() {
    let harness = two_sessions();
    let watch = watch_dir(&harness);
    beat(&harness, 1_000);
    let dashboard = Dashboard::start(&harness, &[], &[]);
    let feed = dashboard.events();
    feed.wait_for("a snapshot", |kind, _| kind == "snapshot");

    // The watcher stores a pull request: the feed tells it, once, without waiting for a reload.
    watch
        .save_session(
            "app",
            "app-1",
            &stored(
                Some(failing_pr()),
                &[("merge_conflict", "conflicts with main")],
            ),
        )
        .unwrap();
    let told = feed.wait_for("app-1 with its pull request", |kind, data| {
        kind == "session" && data["id"] == "app-1" && data["pr"]["number"] == 12
    });
    assert_eq!(told["queued"][0]["reaction"], "merge_conflict");

    let api = dashboard.get("/api/sessions").json();
    let cli = harness.sessions_json(&[]);
    for (from_api, from_cli) in api.as_array().unwrap().iter().zip(&cli) {
        let keys = |v: &Value| {
            let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            keys.retain(|k| k != "caller");
            keys.sort();
            keys
        };
        assert_eq!(keys(from_api), keys(from_cli));
        assert_eq!(
            from_api["pr"]["failed_checks"],
            from_cli["pr"]["failed_checks"]
        );
        assert_eq!(
            from_api["queued"].as_array().unwrap().len(),
            from_cli["queued"].as_array().unwrap().len()
        );
    }
    let detail = dashboard.get("/api/sessions/app-1/pr");
    assert_eq!(detail.status, 200, "{}", detail.body);
    let detail = detail.json();
    let from_cli = support::json(&harness.ok(&["session", "pr", "app-1", "--json"]));
    assert_eq!(detail["pr"], {
        let mut pr = from_cli["pr"].clone();
        pr["age_secs"] = detail["pr"]["age_secs"].clone();
        pr
    });
    assert_eq!(detail["watcher"]["running"], true);
    let unknown = dashboard.get("/api/sessions/app-9/pr");
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    // Ages grow, which is no change. Once app-1 is older than the feed told, a change to app-2
    // is told in a later pass over the list (app-1 first, older): no event about app-1 before it.
    let told_age = told["pr"]["age_secs"].as_u64().unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        listed(&harness, "app-1")["pr"]["age_secs"].as_u64() > Some(told_age)
    }));
    watch
        .save_session(
            "app",
            "app-2",
            &stored(None, &[("merge_conflict", "marker")]),
        )
        .unwrap();
    let mut before = Vec::new();
    feed.wait_for("app-2's change", |kind, data| {
        let marker =
            kind == "session" && data["id"] == "app-2" && data["queued"][0]["summary"] == "marker";
        if !marker {
            before.push(data["id"].clone());
        }
        marker
    });
    assert!(
        !before.contains(&Value::from("app-1")),
        "app-1 was told again for its age alone: {before:?}"
    );
    assert!(dashboard.stop().success());
}
