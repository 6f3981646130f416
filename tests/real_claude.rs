//! The real Claude Code CLI, offline, through whole turns: `ANTHROPIC_BASE_URL` points at the
//! loopback Messages API stand-in (`support::messages_api`), which streams scripted replies.
//!
//! One session lives through what an operator sees: its task reaches the model byte-exact and
//! once; `session ls` says `working` during a slow reply, `idle` after the turn,
//! `waiting_input` with the question on a permission prompt, `exited` after `tmux kill-server`;
//! `session restore` brings it back with its conversation; `notify` runs once per change.
//!
//! Runs when `$AO_TEST_CLAUDE` names the CLI (`.ci/run` installs it from npm) or `claude` is on
//! PATH; otherwise it says it was skipped. Offline, the CLI starts with an API key it was told to
//! trust (a seeded `~/.claude.json`).

// Here only, so its own tests run once, not in every test binary.
#[path = "support/messages_api.rs"]
mod messages_api;
#[path = "support/standin_http.rs"]
mod standin_http;
mod support;

use std::{path::PathBuf, time::Duration};

use messages_api::{MessagesApi, MessagesRequest, RecordedRequest};
use support::{git, stderr, wait_until, Harness};

fn claude_cli() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AO_TEST_CLAUDE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("claude"))
        .find(|path| path.is_file())
}

/// Everything but the Claude Code plugin's settings comes from the fake-agent harness; those
/// point at the real CLI, a home of its own and the stand-in.
fn real_claude_harness(claude: &std::path::Path, api: &MessagesApi) -> (Harness, PathBuf) {
    let harness = Harness::new(&[], "");
    let agent_home = harness.home().join("agent-home");
    std::fs::create_dir_all(&agent_home).unwrap();
    let key = "sk-ant-api03-offline-test-key-0123456789abcdef";
    std::fs::write(
        agent_home.join(".claude.json"),
        format!(
            r#"{{"hasCompletedOnboarding": true, "customApiKeyResponses": {{"approved": ["{}"], "rejected": []}}}}"#,
            &key[key.len() - 20..]
        ),
    )
    .unwrap();
    let notified = harness.home().join("notified.log");
    let notify = harness.home().join("notify.sh");
    std::fs::write(
        &notify,
        format!(
            "#!/bin/sh\nprintf '%s %s\\n' \"$AO_EVENT\" \"$AO_MESSAGE\" >> {:?}\n",
            notified.display().to_string()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&notify, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    harness.edit_config(|config| {
        let start = config.find("    claude-code:").unwrap();
        let end = config.find("projects:").unwrap();
        let claude_settings = format!(
            "    claude-code:\n      command: {claude:?}\n      trust_workspaces: true\n\
             \x20     env: {{ HOME: {home:?}, ANTHROPIC_API_KEY: {key}, ANTHROPIC_BASE_URL: {url:?}, \
             IS_SANDBOX: \"1\", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: \"1\", DISABLE_AUTOUPDATER: \"1\" }}\n",
            claude = claude.display().to_string(),
            home = agent_home.display().to_string(),
            url = api.base_url(),
        );
        format!(
            "{}{claude_settings}{}notify: {{ command: [{:?}] }}\n",
            &config[..start],
            &config[end..],
            notify.display().to_string()
        )
        .replace("ready_timeout_ms: 10000", "ready_timeout_ms: 60000")
        // 2.1.332 defaults to auto mode, whose safety check cannot be reached offline.
        .replace(
            "default_branch: main }",
            "default_branch: main, agent_config: { permission_mode: default } }",
        )
    });
    (harness, notified)
}

fn status_of(harness: &Harness) -> serde_json::Value {
    harness
        .sessions_json(&[])
        .into_iter()
        .find(|s| s["id"] == "app-1")
        .expect("app-1 listed")
}

fn wait_for_status(harness: &Harness, status: &str, within: Duration) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let reached = wait_until(within, || {
        last = status_of(harness);
        last["status"] == status
    });
    assert!(
        reached,
        "never {status}: {last:#}\nits screen:\n{}",
        screen(harness)
    );
    last
}

/// The session's screen with some history, for failure messages.
fn screen(harness: &Harness) -> String {
    screen_of(harness, "app-1")
}

fn screen_of(harness: &Harness, id: &str) -> String {
    let target = format!("={}:", harness.tmux_session(id));
    harness
        .tmux
        .tmux(&["capture-pane", "-p", "-J", "-S", "-60", "-t", &target])
        .1
}

/// The user's texts of the conversation requests, in order, without the CLI's own reminders.
fn prompts_sent(api: &MessagesApi) -> Vec<Vec<String>> {
    api.conversation_requests()
        .iter()
        .map(|request: &RecordedRequest| {
            MessagesApi::user_texts(request)
                .into_iter()
                .filter(|text| !text.starts_with("<system-reminder>"))
                .collect()
        })
        .collect()
}

#[test]
fn the_real_claude_cli_through_whole_turns_statuses_a_permission_prompt_and_a_restore() {
    let Some(claude) = claude_cli() else {
        eprintln!("skipped: no Claude Code CLI (set AO_TEST_CLAUDE or put `claude` on PATH)");
        return;
    };
    let api = MessagesApi::start();
    let (harness, notified) = real_claude_harness(&claude, &api);

    // The task, with everything a terminal's input box or a shell would change, and a marker
    // that makes the stand-in answer slowly.
    let task = "\tfix the Makefile:\n\tcc -o app app.c\n  \"quoted\" 'single' $(rm -rf /) `tick`\r\nünïcødé 🎉\n-not an option\nAO_SLOW:4000\n";
    let output = harness.ao(&["spawn", "app", "--task", task]);
    assert!(output.status.success(), "spawn failed: {}", stderr(&output));
    wait_for_status(&harness, "working", Duration::from_secs(10));
    wait_for_status(&harness, "idle", Duration::from_secs(30));
    let sent = prompts_sent(&api);
    let carrying: Vec<_> = sent
        .iter()
        .filter(|texts| texts.iter().any(|t| t.contains("fix the Makefile")))
        .collect();
    assert!(
        !carrying.is_empty(),
        "the task never reached the model: {sent:#?}"
    );
    assert_eq!(
        carrying[0].last().map(String::as_str),
        Some(task),
        "the task must reach the model byte-exact"
    );
    let submitted = |texts: &Vec<String>| texts.iter().filter(|t| *t == task).count();
    assert!(
        sent.iter().all(|texts| submitted(texts) <= 1),
        "the task was submitted more than once: {sent:#?}"
    );

    // A permission prompt: waiting, with the question; granted, the command runs.
    harness.ok(&[
        "send",
        "app-1",
        "now run this\nAO_TOOL:echo granted > approved.txt",
    ]);
    let waiting = wait_for_status(&harness, "waiting_input", Duration::from_secs(30));
    let question = waiting["waiting_for"].as_str().unwrap_or_default();
    assert!(
        question.contains("Bash") && question.contains("approved.txt"),
        "{waiting:#}\nits screen:\n{}",
        screen(&harness)
    );
    // The agent reports the prompt before it draws it; an operator answers what they see.
    assert!(
        wait_until(Duration::from_secs(10), || screen(&harness)
            .contains("Do you want to proceed?")),
        "{}",
        screen(&harness)
    );
    std::thread::sleep(Duration::from_millis(500));
    let target = format!("={}:", harness.tmux_session("app-1"));
    harness.tmux.tmux(&["send-keys", "-t", &target, "Enter"]);
    wait_for_status(&harness, "idle", Duration::from_secs(30));
    assert!(harness.worktree("app-1").join("approved.txt").is_file());

    // The runtime dies with everything in it; the session is exited, and comes back.
    harness.tmux.tmux(&["kill-server"]);
    wait_for_status(&harness, "exited", Duration::from_secs(10));
    let output = harness.ao(&["session", "restore", "app-1"]);
    assert!(
        output.status.success(),
        "restore failed: {}",
        stderr(&output)
    );
    let before = api.conversation_requests().len();
    harness.ok(&["send", "app-1", "what did I ask first?"]);
    assert!(
        api.wait_for(Duration::from_secs(30), |requests| {
            requests.iter().filter(|r| r.is_conversation()).count() > before
        }),
        "no request after the restore"
    );
    let resumed = prompts_sent(&api).pop().unwrap();
    assert!(
        resumed.iter().any(|t| t == task) && resumed.iter().any(|t| t == "what did I ask first?"),
        "the resumed conversation lacks the earlier turns: {resumed:#?}"
    );
    wait_for_status(&harness, "idle", Duration::from_secs(30));

    // One notification per change an operator acts on; never the first status after a launch.
    let lines = std::fs::read_to_string(&notified).unwrap_or_default();
    let events: Vec<&str> = lines
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        events,
        ["idle", "waiting_input", "idle", "exited", "idle"],
        "{lines}"
    );
    assert_eq!(
        git(&harness.repo(), &["worktree", "list"]).lines().count(),
        2
    );
}

/// The orchestrator, with the real CLI, runs `ao-host` through its Bash tool with nobody
/// answering a prompt; any other command still asks.
#[test]
fn the_real_claude_orchestrator_starts_a_worker_unattended_and_still_asks_for_anything_else() {
    let Some(claude) = claude_cli() else {
        eprintln!("skipped: no Claude Code CLI (set AO_TEST_CLAUDE or put `claude` on PATH)");
        return;
    };
    let api = MessagesApi::start();
    let (harness, _) = real_claude_harness(&claude, &api);
    let id = "app-orchestrator-1";
    let status = |id: &str| {
        harness
            .sessions_json(&[])
            .into_iter()
            .find(|s| s["id"] == id)
            .map(|s| s["status"].as_str().unwrap_or_default().to_string())
    };
    let output = harness.ao(&["orchestrator", "app"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(wait_until(Duration::from_secs(30), || status(id)
        .as_deref()
        == Some("idle")));

    harness.ok(&[
        "send",
        id,
        "start one worker\nAO_TOOL:ao-host spawn app --task 'from the orchestrator'",
    ]);
    let mut asked = false;
    let started = wait_until(Duration::from_secs(60), || {
        asked |= status(id).as_deref() == Some("waiting_input");
        status("app-1").is_some()
    });
    assert!(started && !asked, "no unattended worker (asked: {asked})");
    let worker = harness.record("app-1", false);
    let record = std::fs::read_to_string(&worker).unwrap();
    assert!(record.contains("task: from the orchestrator"), "{record}");

    // Once its turn is over, as an operator would.
    assert!(wait_until(Duration::from_secs(30), || status(id)
        .as_deref()
        == Some("idle")));
    harness.ok(&["send", id, "now this\nAO_TOOL:echo hi > not-allowed.txt"]);
    let mut last = None;
    let asks = wait_until(Duration::from_secs(30), || {
        last = status(id);
        last.as_deref() == Some("waiting_input")
    });
    assert!(
        asks,
        "a command other than ao-host ran unasked: {last:?}; ran: {}; screen:\n{}",
        harness.worktree(id).join("not-allowed.txt").exists(),
        screen_of(&harness, id)
    );
    assert!(!harness.worktree(id).join("not-allowed.txt").exists());
}
