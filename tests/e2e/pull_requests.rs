//! Pull requests, CI and reviews reaching the agent that owns the branch, end to end: the real
//! `ao-host watch`, the `github` scm plugin built from this workspace, a loopback stand-in of
//! GitHub's REST and GraphQL APIs, a real `git push` to a local bare `origin`, and the fake
//! Claude Code CLI as the agent (it records every message it takes).
//!
//! Each step is one `ao-host watch --once` (a new process each time, so every step is also a
//! restart of the watcher): the tests never sleep to synchronise, they wait for the agent's own
//! state and poll files with deadlines.

use std::{path::PathBuf, process::Output, time::Duration};

use support::{
    fake_messages, git,
    github_api::{BareOrigin, CheckRun, Delivery, Fault, GitHubApi},
    stderr, stdout, wait_until, Harness,
};

const SLUG: &str = "acme/app";
const TOKEN: &str = "t0ken";
const SECRET: &str = "hook-s3cret";

/// An installation whose project `app` is watched through the stand-in, with its `origin` a
/// local bare repository, and a notify command that logs `EVENT MESSAGE` lines.
struct World {
    harness: Harness,
    api: GitHubApi,
    _origin: BareOrigin,
    notified: PathBuf,
}

impl World {
    fn new(agent_env: &[(&str, &str)]) -> World {
        let harness = Harness::new(agent_env, "");
        support::install(
            &support::build_workspace_plugin("ao-scm-github"),
            &harness.plugin_dir(),
            None,
        );
        let api = GitHubApi::start();
        api.require_token(TOKEN);
        let origin = BareOrigin::create(harness.home(), SLUG, &harness.repo());
        harness.edit_config(&[
            (
                "  config:\n",
                &format!(
                    "  config:\n    github: {{ api_url: {:?}, token: {TOKEN}, webhook_secret: {SECRET}, refresh_secs: 1 }}\n",
                    api.api_url()
                ),
            ),
            ("default_branch: main }", "default_branch: main, scm: github }"),
        ]);
        let notified = harness.home().join("notified.log");
        let script = harness.home().join("notify.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s %s\\n' \"$AO_EVENT\" \"$AO_MESSAGE\" >> {:?}\n",
                notified.display().to_string()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        harness.append_config(&format!(
            "notify: {{ command: [{:?}], on: [exited] }}\nwatch: {{ poll_secs: 1, reviews_secs: 1 }}\n",
            script.display().to_string()
        ));
        World {
            harness,
            api,
            _origin: origin,
            notified,
        }
    }

    /// Spawns a worker; returns its id and branch once its agent is idle.
    fn spawn(&self, task: &str) -> (String, String) {
        let spawned = support::json(&self.harness.ok(&["spawn", "app", "--task", task, "--json"]));
        let id = spawned["id"].as_str().unwrap().to_string();
        let branch = spawned["branch"].as_str().unwrap().to_string();
        (id, branch)
    }

    /// What the agent commits and pushes (as its own Bash tool would): returns the new head.
    fn push(&self, id: &str, branch: &str, file: &str) -> String {
        let worktree = self.harness.worktree(id);
        std::fs::write(worktree.join(file), format!("{file}\n")).unwrap();
        git(&worktree, &["add", file]);
        git(&worktree, &["commit", "-q", "-m", &format!("add {file}")]);
        git(&worktree, &["push", "-q", "-u", "origin", branch]);
        git(&worktree, &["rev-parse", "HEAD"]).trim().to_string()
    }

    fn status(&self, id: &str) -> String {
        self.harness
            .sessions_json(&[])
            .into_iter()
            .find(|s| s["id"] == id)
            .map(|s| s["status"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    }

    fn wait_for_status(&self, id: &str, status: &str) {
        let mut last = String::new();
        let reached = wait_until(Duration::from_secs(15), || {
            last = self.status(id);
            last == status
        });
        assert!(reached, "{id} never became {status}: {last}");
    }

    /// One poll, which must succeed.
    fn watch_once(&self) -> Output {
        let output = self.harness.ao(&["watch", "--once"]);
        assert!(
            output.status.success(),
            "watch --once failed:\n{}",
            stderr(&output)
        );
        output
    }

    /// The messages the agent took, after its task.
    fn messages(&self, id: &str) -> Vec<String> {
        fake_messages(&self.harness.log_dir().join(id))
            .into_iter()
            .skip(1)
            .collect()
    }

    /// The notifications about pull requests, `EVENT MESSAGE` each.
    fn notifications(&self) -> Vec<String> {
        std::fs::read_to_string(&self.notified)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.starts_with("pr_"))
            .map(String::from)
            .collect()
    }

    fn wait_for_notification(&self, event: &str) -> String {
        let mut found = None;
        let seen = wait_until(Duration::from_secs(10), || {
            found = self
                .notifications()
                .into_iter()
                .find(|line| line.starts_with(&format!("{event} ")));
            found.is_some()
        });
        assert!(seen, "no {event} notification: {:?}", self.notifications());
        found.unwrap()
    }

    /// What the watcher stored for `id`, as listings read it.
    fn stored(&self, id: &str) -> serde_json::Value {
        let path = self
            .harness
            .data_dir()
            .join("watch/sessions/app")
            .join(format!("{id}.json"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }
}

#[test]
fn a_pull_request_s_ci_reviews_conflict_approval_and_merge_reach_its_agent_once_each() {
    let world = World::new(&[]);
    let (id, branch) = world.spawn("Fix the parser");
    world.wait_for_status(&id, "idle");

    // The agent pushes and opens a pull request: the watcher stores it, nothing is sent.
    let first = world.push(&id, &branch, "parser.rs");
    let number = world.api.open_pull(SLUG, &branch, &first, "Fix the parser");
    world.watch_once();
    let stored = world.stored(&id);
    assert_eq!(stored["pr"]["number"], number);
    assert_eq!(stored["pr"]["head_sha"], first.as_str());
    assert!(world.messages(&id).is_empty());

    // CI fails: one message with the check's name, its link and the log's tail, made plain.
    world.api.add_check_run(
        SLUG,
        &first,
        CheckRun::completed(
            "build",
            "failure",
            "compiling\n\u{1b}[31merror[E0308]\u{1b}[0m: mismatched types in parser.rs:12\n",
        ),
    );
    world.watch_once();
    let messages = world.messages(&id);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let message = &messages[0];
    assert!(message.contains("build (failure)"), "{message}");
    assert!(
        message.contains("error[E0308]: mismatched types in parser.rs:12"),
        "{message}"
    );
    assert!(message.contains("http"), "no link: {message}");
    assert!(!message.contains('\u{1b}'), "{message}");
    assert_eq!(world.stored(&id)["pr"]["ci"], "failing");
    world.wait_for_status(&id, "idle");

    // The same failure re-run: nothing new.
    world.api.add_check_run(
        SLUG,
        &first,
        CheckRun::completed("build", "failure", "error[E0308] again\n"),
    );
    world.watch_once();
    assert_eq!(world.messages(&id).len(), 1);

    // A new commit fails the same way: one new message.
    let second = world.push(&id, &branch, "parser_fix.rs");
    world
        .api
        .update_pull(SLUG, number, |pull| pull.head_sha = second.clone());
    world.api.add_check_run(
        SLUG,
        &second,
        CheckRun::completed("build", "failure", "still failing\n"),
    );
    world.watch_once();
    let messages = world.messages(&id);
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages[1].contains(&second[..7]) && messages[1].contains("still failing"));
    world.wait_for_status(&id, "idle");

    // Changes requested with two comments: one message with both, where they are.
    world.api.add_review(
        SLUG,
        number,
        "alice",
        "CHANGES_REQUESTED",
        "Two things, please.",
    );
    world.api.add_thread(
        SLUG,
        number,
        ("src/parser.rs", 12),
        "alice",
        "Use a match here.",
    );
    world.api.add_thread(
        SLUG,
        number,
        ("src/lexer.rs", 40),
        "alice",
        "This leaks a token.",
    );
    world.watch_once();
    let messages = world.messages(&id);
    assert_eq!(messages.len(), 3, "{messages:#?}");
    for part in [
        "src/parser.rs:12",
        "Use a match here.",
        "src/lexer.rs:40",
        "This leaks a token.",
        "resolve",
    ] {
        assert!(messages[2].contains(part), "{part}: {}", messages[2]);
    }
    world.wait_for_status(&id, "idle");
    world.watch_once();
    assert_eq!(world.messages(&id).len(), 3, "reviews are sent once");

    // A conflict with the base: a message.
    world
        .api
        .update_pull(SLUG, number, |pull| pull.mergeable = Some(false));
    world.watch_once();
    let messages = world.messages(&id);
    assert_eq!(messages.len(), 4, "{messages:#?}");
    assert!(messages[3].contains("conflicts"), "{}", messages[3]);
    world.wait_for_status(&id, "idle");

    // Fixed, approved and green: the operator is told; the agent gets nothing.
    let third = world.push(&id, &branch, "resolved.rs");
    world.api.update_pull(SLUG, number, |pull| {
        pull.head_sha = third.clone();
        pull.mergeable = Some(true);
    });
    world.api.add_check_run(
        SLUG,
        &third,
        CheckRun::completed("build", "success", "ok\n"),
    );
    world.api.add_review(SLUG, number, "alice", "APPROVED", "");
    world.watch_once();
    let approved = world.wait_for_notification("pr_approved");
    assert!(approved.contains(&format!("#{number}")), "{approved}");
    assert_eq!(world.messages(&id).len(), 4);
    assert_eq!(world.stored(&id)["pr"]["ci"], "passing");

    // Merged: told, and the session is killed, its worktree and (pushed) branch removed.
    world.api.merge_pull(SLUG, number);
    world.watch_once();
    world.wait_for_notification("pr_merged");
    assert!(world.harness.sessions_json(&[]).is_empty());
    assert!(!world.harness.worktree(&id).exists());
    let branches = git(&world.harness.repo(), &["branch", "--list", &branch]);
    assert!(branches.trim().is_empty(), "branch left: {branches}");
    assert_eq!(world.messages(&id).len(), 4);
    let once = world.notifications();
    world.watch_once();
    assert_eq!(world.notifications(), once, "nothing is told twice");
}

#[test]
fn a_reaction_waits_while_the_agent_asks_permission_and_is_delivered_once_after() {
    let world = World::new(&[("FAKE_AGENT_ASK_PERMISSION", "1")]);
    let (id, branch) = world.spawn("Run the tests");
    world.wait_for_status(&id, "waiting_input");
    let head = world.push(&id, &branch, "tests.rs");
    world.api.open_pull(SLUG, &branch, &head, "Tests");
    world.api.add_check_run(
        SLUG,
        &head,
        CheckRun::completed("test", "failure", "1 test failed\n"),
    );
    world.watch_once();
    world.watch_once();
    assert!(world.messages(&id).is_empty(), "typed into a prompt");
    let queued = &world.stored(&id)["queued"];
    assert_eq!(queued[0]["reaction"], "ci_failed", "{queued}");

    let target = format!("={}:", world.harness.tmux_session(&id));
    world
        .harness
        .tmux
        .tmux(&["send-keys", "-t", &target, "Enter"]);
    world.wait_for_status(&id, "idle");
    world.watch_once();
    world.watch_once();
    let messages = world.messages(&id);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(messages[0].contains("1 test failed"));
    assert_eq!(world.stored(&id)["queued"], serde_json::json!([]));
}

#[test]
fn bad_answers_and_credentials_are_logged_clearly_and_lose_nothing() {
    let world = World::new(&[]);
    let (id, branch) = world.spawn("Refactor");
    world.wait_for_status(&id, "idle");
    let head = world.push(&id, &branch, "refactor.rs");
    world.api.open_pull(SLUG, &branch, &head, "Refactor");
    world.api.add_check_run(
        SLUG,
        &head,
        CheckRun::completed("lint", "failure", "unused import\n"),
    );
    for (fault, said) in [
        (Fault::Unauthorized, "401"),
        (Fault::RateLimited { reset_in_secs: 60 }, "rate limit"),
        (Fault::Malformed, "github"),
        (
            Fault::Huge {
                bytes: 40 * 1024 * 1024,
            },
            "github",
        ),
    ] {
        world.api.fault(Some(fault.clone()));
        let output = world.harness.ao(&["watch", "--once"]);
        world.api.fault(None);
        assert!(!output.status.success(), "{fault:?}: {}", stdout(&output));
        let err = stderr(&output);
        assert!(err.contains(said), "{fault:?}: {err}");
        assert!(world.messages(&id).is_empty(), "{fault:?}: sent");
    }
    // The forge answers again: the failure is sent, once.
    world.watch_once();
    world.watch_once();
    let messages = world.messages(&id);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(messages[0].contains("unused import"));
}

#[test]
fn a_webhook_wakes_the_watcher_and_a_forged_or_replayed_one_does_nothing() {
    let world = World::new(&[]);
    // Polls every 5 minutes: only a webhook can make it react within the test.
    world
        .harness
        .edit_config(&[("watch: { poll_secs: 1,", "watch: { poll_secs: 300,")]);
    let (id, branch) = world.spawn("Speed it up");
    world.wait_for_status(&id, "idle");
    let head = world.push(&id, &branch, "fast.rs");
    let number = world.api.open_pull(SLUG, &branch, &head, "Faster");

    let log = world.harness.home().join("watch.log");
    let mut watcher = world
        .harness
        .command(&["watch", "--webhook", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let address = support::dashboard_address(&mut watcher, &log);
    let address = address.trim_start_matches("http://").to_string();
    // A second watcher of the same data dir is refused, naming the first; `--once` (cron) has
    // nothing to do then and succeeds, naming it too.
    let second = world.harness.ao(&["watch"]);
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains(&format!("pid {}", watcher.id())),
        "{}",
        stderr(&second)
    );
    let cron = world.harness.ao(&["watch", "--once"]);
    assert!(cron.status.success(), "{}", stderr(&cron));
    assert!(
        stderr(&cron).contains(&format!("another watcher (pid {})", watcher.id())),
        "{}",
        stderr(&cron)
    );
    // The first poll ran; CI fails afterwards.
    assert!(wait_until(Duration::from_secs(10), || world
        .harness
        .data_dir()
        .join("watch/sessions/app")
        .join(format!("{id}.json"))
        .exists()));
    world.api.add_check_run(
        SLUG,
        &head,
        CheckRun::completed("bench", "failure", "3x slower\n"),
    );
    let payload = world.api.pull_request_payload(SLUG, number, "synchronize");
    let forged = Delivery::signed("pull_request", "d-1", &payload, SECRET).wrongly_signed();
    assert_eq!(forged.send(&address, "/").unwrap(), 401);
    // A delivery about another branch wakes a poll of that branch only.
    let elsewhere = world
        .api
        .open_pull(SLUG, "feature/elsewhere", &head, "Elsewhere");
    let other = world.api.pull_request_payload(SLUG, elsewhere, "opened");
    let before = world.beat();
    let delivery = Delivery::signed("pull_request", "d-0", &other, SECRET);
    assert_eq!(delivery.send(&address, "/").unwrap(), 202);
    assert!(wait_until(Duration::from_secs(15), || world.beat() > before));
    assert!(world.messages(&id).is_empty(), "polled a branch not named");
    let genuine = Delivery::signed("pull_request", "d-2", &payload, SECRET);
    assert_eq!(genuine.send(&address, "/").unwrap(), 202);
    assert!(
        wait_until(Duration::from_secs(15), || world.messages(&id).len() == 1),
        "the webhook did not wake a poll: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(genuine.send(&address, "/").unwrap(), 400, "a replay");

    // SIGTERM stops it cleanly.
    // SAFETY: signalling a child this test started.
    unsafe { libc::kill(watcher.id() as i32, libc::SIGTERM) };
    let status = watcher.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(world.messages(&id).len(), 1);
}

#[test]
fn a_burst_of_webhook_deliveries_is_coalesced_and_spends_no_graphql_queries() {
    let world = World::new(&[]);
    // Neither the interval, nor the reviews' floor, nor the mergeability refresh comes round
    // during the test: every poll after the first is one a delivery woke, and none of them is
    // due a GraphQL query (with `refresh_secs: 1`, a machine slow enough to take a second over
    // the burst asked mergeability again, rightly).
    world.harness.edit_config(&[
        (
            "watch: { poll_secs: 1, reviews_secs: 1 }",
            "watch: { poll_secs: 300, reviews_secs: 300 }",
        ),
        ("refresh_secs: 1 }", "refresh_secs: 300 }"),
    ]);
    let (id, branch) = world.spawn("Batch it");
    world.wait_for_status(&id, "idle");
    let head = world.push(&id, &branch, "batch.rs");
    let number = world.api.open_pull(SLUG, &branch, &head, "Batch");
    let log = world.harness.home().join("watch.log");
    let mut watcher = world
        .harness
        .command(&["watch", "--webhook", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let address = support::dashboard_address(&mut watcher, &log);
    let address = address.trim_start_matches("http://").to_string();
    let _stop = KillOnDrop(watcher);
    assert!(wait_until(Duration::from_secs(10), || world
        .harness
        .data_dir()
        .join("watch/sessions/app")
        .join(format!("{id}.json"))
        .exists()));
    let pull_lists = || {
        world
            .api
            .requests()
            .iter()
            .filter(|r| r.path == format!("/repos/{SLUG}/pulls"))
            .count()
    };
    let (before, polls_before) = (world.api.counts(), pull_lists());

    // A hundred signed deliveries, review events among them, as fast as they go.
    let payload = world.api.pull_request_payload(SLUG, number, "synchronize");
    let sending = std::time::Instant::now();
    for i in 0..100 {
        let event = if i % 2 == 0 {
            "pull_request_review"
        } else {
            "check_run"
        };
        let delivery = Delivery::signed(event, &format!("burst-{i}"), &payload, SECRET);
        assert_eq!(delivery.send(&address, "/").unwrap(), 202);
    }
    let took = sending.elapsed();
    // A last one after CI fails: its message says every earlier wake has been polled.
    world.api.add_check_run(
        SLUG,
        &head,
        CheckRun::completed("lint", "failure", "unused import\n"),
    );
    let last = Delivery::signed("check_run", "burst-last", &payload, SECRET);
    assert_eq!(last.send(&address, "/").unwrap(), 202);
    assert!(
        wait_until(Duration::from_secs(15), || world.messages(&id).len() == 1),
        "the last delivery did not wake a poll: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let after = world.api.counts();
    assert_eq!(
        after.graphql, before.graphql,
        "reviews were asked before their floor: {before:?} → {after:?}"
    );
    // One poll a second at most (and one for the last delivery), not one per delivery.
    let polls = pull_lists() - polls_before;
    let bound = took.as_secs() as usize + 3;
    assert!(
        (1..=bound).contains(&polls),
        "{polls} polls for 101 deliveries in {took:?}"
    );
}

/// A child process killed (and reaped) when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ao-host` started in the background with `args`, its stderr in a file; killed on drop.
struct Background {
    child: std::process::Child,
    log: PathBuf,
}

impl Background {
    fn start(world: &World, args: &[&str], log_name: &str) -> Background {
        let log = world.harness.home().join(log_name);
        let child = world
            .harness
            .command(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Background { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl World {
    /// How many polls the running watcher has finished, by its heartbeat's time.
    fn beat(&self) -> u64 {
        std::fs::read_to_string(self.harness.data_dir().join("watch/watcher.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|beat| beat["polled_at_ms"].as_u64())
            .unwrap_or(0)
    }

    /// Waits until the running watcher has finished `polls` more polls.
    fn wait_for_polls(&self, polls: usize) {
        for _ in 0..polls {
            let before = self.beat();
            assert!(
                wait_until(Duration::from_secs(15), || self.beat() > before),
                "the watcher stopped polling"
            );
        }
    }
}

#[test]
fn the_dashboard_takes_over_watching_when_the_cli_watcher_exits() {
    let world = World::new(&[]);
    let (id, branch) = world.spawn("Tidy up");
    world.wait_for_status(&id, "idle");
    let head = world.push(&id, &branch, "tidy.rs");
    world.api.open_pull(SLUG, &branch, &head, "Tidy");
    let cli = Background::start(&world, &["watch"], "watch.log");
    world.wait_for_polls(1);
    // `-v`: the dashboard says at info level that it waits, and when it takes over.
    let dashboard = Background::start(
        &world,
        &["-v", "dashboard", "--port", "0", "--no-token"],
        "dashboard.log",
    );
    assert!(
        wait_until(Duration::from_secs(30), || dashboard
            .log()
            .contains("not watching pull requests here")),
        "the dashboard did not say another watcher watches: {}",
        dashboard.log()
    );
    drop(cli);
    world.api.add_check_run(
        SLUG,
        &head,
        CheckRun::completed("fmt", "failure", "Diff in tidy.rs\n"),
    );
    assert!(
        wait_until(Duration::from_secs(30), || world.messages(&id).len() == 1),
        "the dashboard's watcher did not take over: {}",
        dashboard.log()
    );
    assert!(world.messages(&id)[0].contains("Diff in tidy.rs"));
    let log = dashboard.log();
    assert_eq!(
        log.matches("not watching pull requests here").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("the other watcher stopped").count(), 1, "{log}");
    let cron = world.harness.ao(&["watch", "--once"]);
    assert!(cron.status.success(), "{}", stderr(&cron));
    assert!(
        stderr(&cron).contains(&format!("pid {}", dashboard.child.id())),
        "{}",
        stderr(&cron)
    );
}

#[test]
fn a_running_watcher_waits_out_a_rate_limit_without_asking_again_and_says_so_once() {
    let world = World::new(&[]);
    let (id, branch) = world.spawn("Port it");
    world.wait_for_status(&id, "idle");
    let head = world.push(&id, &branch, "port.rs");
    world.api.open_pull(SLUG, &branch, &head, "Port");
    let watcher = Background::start(&world, &["watch"], "watch.log");
    world.wait_for_polls(1);
    world.api.fault(Some(Fault::RateLimited {
        reset_in_secs: 3600,
    }));
    world.wait_for_polls(2);
    let asked = world.api.requests().len();
    world.wait_for_polls(3);
    assert_eq!(
        world.api.requests().len(),
        asked,
        "asked again during the limit"
    );
    let log = watcher.log();
    assert_eq!(
        log.matches("rate limit is reached").count(),
        1,
        "said once: {log}"
    );
    assert!(world.messages(&id).is_empty());
}

#[test]
fn reactions_for_an_agent_that_exited_are_held_and_told_never_typed() {
    let world = World::new(&[]);
    let (id, branch) = world.spawn("Write docs");
    world.wait_for_status(&id, "idle");
    let head = world.push(&id, &branch, "docs.md");
    world.api.open_pull(SLUG, &branch, &head, "Docs");
    let session = world.harness.tmux_session(&id);
    world
        .harness
        .tmux
        .tmux(&["kill-session", "-t", &format!("={session}")]);
    world.wait_for_status(&id, "exited");
    world.api.add_check_run(
        SLUG,
        &head,
        CheckRun::completed("links", "failure", "dead link in docs.md\n"),
    );
    world.watch_once();
    world.watch_once();
    let held = world.wait_for_notification("pr_held");
    assert!(held.contains("ci_failed") && held.contains(&id), "{held}");
    assert_eq!(
        world
            .notifications()
            .iter()
            .filter(|line| line.starts_with("pr_held "))
            .count(),
        1,
        "told once"
    );
    assert_eq!(world.stored(&id)["queued"][0]["reaction"], "ci_failed");
    assert!(world.messages(&id).is_empty());
}

#[test]
fn a_merged_session_holding_uncommitted_or_unpushed_work_is_kept_and_the_operator_told() {
    let world = World::new(&[]);
    let (id, branch) = world.spawn("Ship it");
    let (later, later_branch) = world.spawn("Ship it later");
    world.wait_for_status(&id, "idle");
    world.wait_for_status(&later, "idle");
    let head = world.push(&id, &branch, "ship.rs");
    let number = world.api.open_pull(SLUG, &branch, &head, "Ship");
    // Pushed without `-u`: the branch has no upstream to compare with.
    let later_tree = world.harness.worktree(&later);
    std::fs::write(later_tree.join("later.rs"), "later\n").unwrap();
    git(&later_tree, &["add", "later.rs"]);
    git(&later_tree, &["commit", "-q", "-m", "add later.rs"]);
    git(&later_tree, &["push", "-q", "origin", "HEAD"]);
    let later_head = git(&later_tree, &["rev-parse", "HEAD"]).trim().to_string();
    let later_number = world
        .api
        .open_pull(SLUG, &later_branch, &later_head, "Later");
    world.watch_once();
    std::fs::write(
        world.harness.worktree(&id).join("notes.txt"),
        "not committed\n",
    )
    .unwrap();
    // Committed after the push: on the branch, but not on the forge.
    std::fs::write(later_tree.join("after.txt"), "not pushed\n").unwrap();
    git(&later_tree, &["add", "after.txt"]);
    git(&later_tree, &["commit", "-q", "-m", "after the merge"]);
    world.api.merge_pull(SLUG, number);
    world.api.merge_pull(SLUG, later_number);
    world.watch_once();
    let told = |session: &str| {
        wait_until(Duration::from_secs(10), || {
            world
                .notifications()
                .iter()
                .any(|line| line.starts_with("pr_merged_kept") && line.contains(session))
        })
    };
    assert!(told(&id), "{:?}", world.notifications());
    assert!(told(&later), "{:?}", world.notifications());
    let kept = world.wait_for_notification("pr_merged_kept");
    assert!(kept.contains("uncommitted"), "{kept}");
    assert!(world.harness.worktree(&id).join("notes.txt").exists());
    assert!(later_tree.join("after.txt").exists());
    assert_eq!(world.status(&id), "idle");
    assert_eq!(world.status(&later), "idle");
    world.watch_once();
    assert_eq!(
        world
            .notifications()
            .iter()
            .filter(|line| line.starts_with("pr_merged"))
            .count(),
        4,
        "each merged and kept, each told once: {:?}",
        world.notifications()
    );
}

#[test]
fn a_pull_request_on_a_branch_named_like_the_sessions_but_pushed_from_elsewhere_is_not_its() {
    let world = World::new(&[]);
    let (id, branch) = world.spawn("Mine alone");
    world.wait_for_status(&id, "idle");
    // Another clone or data dir made `session/app-1` too: its commit is not in this history.
    let elsewhere = "0123456789abcdef0123456789abcdef01234567";
    let number = world
        .api
        .open_pull(SLUG, &branch, elsewhere, "Someone else's");
    world.api.add_check_run(
        SLUG,
        elsewhere,
        CheckRun::completed("build", "failure", "their failure\n"),
    );
    world.watch_once();
    assert!(world.messages(&id).is_empty(), "{:?}", world.messages(&id));
    world.api.merge_pull(SLUG, number);
    world.watch_once();
    assert_eq!(
        world.status(&id),
        "idle",
        "never killed for someone else's merge"
    );
    assert!(world.harness.worktree(&id).exists());
    assert!(
        world.notifications().is_empty(),
        "{:?}",
        world.notifications()
    );
    // Its own pull request, once pushed, is.
    let head = world.push(&id, &branch, "mine.rs");
    world.api.open_pull(SLUG, &branch, &head, "Mine");
    world.api.add_check_run(
        SLUG,
        &head,
        CheckRun::completed("build", "failure", "my failure\n"),
    );
    world.watch_once();
    assert!(
        wait_until(Duration::from_secs(15), || world.messages(&id).len() == 1),
        "{:?}",
        world.messages(&id)
    );
    assert!(world.messages(&id)[0].contains("my failure"));
}

#[test]
fn with_auto_merge_an_approved_green_pull_request_is_merged_at_the_head_seen_green() {
    let world = World::new(&[]);
    world.harness.edit_config(&[(
        "scm: github }",
        "scm: github, reactions: { approved_and_green: { auto_merge: true } } }",
    )]);
    let (id, branch) = world.spawn("Bump the version");
    world.wait_for_status(&id, "idle");
    let head = world.push(&id, &branch, "VERSION");
    let number = world.api.open_pull(SLUG, &branch, &head, "Bump");
    world
        .api
        .add_check_run(SLUG, &head, CheckRun::completed("build", "success", "ok\n"));
    world.api.add_review(SLUG, number, "alice", "APPROVED", "");
    world.watch_once();
    assert!(world
        .wait_for_notification("pr_approved")
        .contains("merging"));
    let merged = world.api.pull(SLUG, number);
    assert!(merged.merged, "{merged:?}");
    assert_eq!(merged.head_sha, head);
    world.watch_once();
    world.wait_for_notification("pr_merged");
    assert!(world.harness.sessions_json(&[]).is_empty());
    assert!(world.messages(&id).is_empty());
}
