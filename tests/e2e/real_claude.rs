//! The real Claude Code CLI, offline, through whole turns: `ANTHROPIC_BASE_URL` points at the
//! loopback Messages API stand-in (`support::messages_api`), which streams scripted replies.
//!
//! One session lives through what an operator sees: its task reaches the model byte-exact and
//! once; `session ls` says `working` during a slow reply, `idle` after the turn,
//! `waiting_input` with the question on a permission prompt, `exited` after `tmux kill-server`;
//! `session restore` brings it back with its conversation; `notify` runs once per change.
//!
//! Runs when `$AO_TEST_CLAUDE` names the CLI (`.ci/run` installs it from npm) or `claude` is on
//! PATH; otherwise it skips (under CI it fails). Offline, the CLI starts with an API key it was told to
//! trust (a seeded `~/.claude.json`).

use std::{path::PathBuf, time::Duration};

use agent_cli::{listed_status, press, restore, screen, wait_for_screen};
use messages_api::MessagesApi;
use standin_http::StandInApi;
use support::agent_cli;
use support::messages_api;
use support::standin_http;
use support::{git, stderr, Harness};

/// The stand-in, a harness and the file `notify` writes to; None without the CLI. Everything
/// but the Claude Code plugin's settings comes from the fake-agent harness; those point at the
/// real CLI, a home of its own and the stand-in.
pub(crate) fn real_claude() -> Option<(MessagesApi, Harness, PathBuf)> {
    let claude = agent_cli::find_cli("claude", "Claude Code")?;
    let api = MessagesApi::start();
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
    harness.rewrite_config(|config| {
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
        let config = format!(
            "{}{claude_settings}{}notify: {{ command: [{:?}] }}\n",
            &config[..start],
            &config[end..],
            notify.display().to_string()
        );
        support::replaced(
            &config,
            &[
                ("ready_timeout_ms: 10000", "ready_timeout_ms: 60000"),
                // 2.1.332 defaults to auto mode, whose safety check cannot be reached offline.
                (
                    "default_branch: main }",
                    "default_branch: main, agent_config: { permission_mode: default } }",
                ),
            ],
        )
    });
    Some((api, harness, notified))
}

/// [`agent_cli::wait_for_status`] of the worker `app-1`.
fn wait_for_status(harness: &Harness, status: &str, within: Duration) -> serde_json::Value {
    agent_cli::wait_for_status(harness, "app-1", status, within)
}

/// The user's texts of the conversation requests, in order, without the CLI's own reminders.
fn prompts_sent(api: &MessagesApi) -> Vec<Vec<String>> {
    api.prompts_sent()
        .into_iter()
        .map(|texts| {
            texts
                .into_iter()
                .filter(|text| !text.starts_with("<system-reminder>"))
                .collect()
        })
        .collect()
}

#[test]
fn the_real_claude_cli_through_whole_turns_statuses_a_permission_prompt_and_a_restore() {
    let Some((api, harness, notified)) = real_claude() else {
        return;
    };

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
        screen(&harness, "app-1")
    );
    // The agent reports the prompt before it draws it; an operator answers what they see.
    wait_for_screen(&harness, "app-1", screen, "Do you want to proceed?");
    std::thread::sleep(Duration::from_millis(500));
    press(&harness, "app-1", "Enter");
    wait_for_status(&harness, "idle", Duration::from_secs(30));
    assert!(harness.worktree("app-1").join("approved.txt").is_file());

    // The runtime dies with everything in it; the session is exited, and comes back.
    harness.tmux.tmux(&["kill-server"]);
    wait_for_status(&harness, "exited", Duration::from_secs(10));
    restore(&harness, "app-1");
    let resumed = agent_cli::ask_after_restore(&harness, &api, "app-1", "what did I ask first?");
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
    let Some((_api, harness, _)) = real_claude() else {
        return;
    };
    agent_cli::orchestrator_starts_a_worker_unattended_and_still_asks_for_anything_else(
        &harness,
        |id| listed_status(&harness, id),
        |_| {},
    );
}

/// Starts `harness`'s tmux server under a managed Claude Code `policy` (see
/// [`support::run_under_claude_policy`]); `None` when this machine cannot.
fn start_tmux_under_policy(harness: &Harness, policy: &str) -> Option<()> {
    let mut tmux = std::process::Command::new("tmux");
    tmux.args([
        "-L",
        &harness.tmux.socket,
        "new-session",
        "-d",
        "-s",
        "keeper",
    ]);
    let output =
        support::run_under_claude_policy(&harness.home().join("etc-overlay"), policy, &tmux)?;
    assert!(output.status.success(), "tmux: {}", stderr(&output));
    Some(())
}

/// How long `ao-host spawn app --task task` takes; it must succeed.
fn timed_spawn(harness: &Harness, task: &str) -> (Duration, std::process::Output) {
    let started = std::time::Instant::now();
    let output = harness.ao(&["spawn", "app", "--task", task]);
    let took = started.elapsed();
    assert!(output.status.success(), "spawn failed: {}", stderr(&output));
    (took, output)
}

/// Under a managed `disableAllHooks` policy the real CLI runs none of the session's hooks. The
/// spawn still succeeds, confirming the task from the screen, the task reaches the model once,
/// `session ls` reads the status from the screen, and the note names the policy.
#[test]
fn the_real_claude_cli_under_a_managed_disable_all_hooks_policy_still_spawns_once() {
    let Some((_plain_api, plain, _)) = real_claude() else {
        return;
    };
    let Some((api, harness, _)) = real_claude() else {
        return;
    };
    let real_policy = std::path::Path::new("/etc/claude-code/managed-settings.json");
    let had_policy = real_policy.exists();
    if start_tmux_under_policy(&harness, r#"{"disableAllHooks": true}"#).is_none() {
        return;
    }
    let task = "summarise the README\n\tin two lines";

    let (without_policy, _) = timed_spawn(&plain, task);
    let (with_policy, output) = timed_spawn(&harness, task);
    eprintln!(
        "spawn took {} ms without the policy, {} ms under disableAllHooks",
        without_policy.as_millis(),
        with_policy.as_millis()
    );
    assert!(
        stderr(&output).contains("disableAllHooks"),
        "the spawn says why once: {}",
        stderr(&output)
    );
    // No hook ran: the agent's state is still as the spawn reset it.
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(harness.data_dir().join("agent-state/app/app-1/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (&state["status"], &state["prompts"]),
        (&serde_json::Value::Null, &serde_json::json!(0)),
        "a hook ran, so the policy was not in force: {state:#}"
    );

    let session = wait_for_status(&harness, "idle", Duration::from_secs(30));
    assert_eq!(session["status_from_screen"], true, "{session:#}");
    let note = session["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("Claude Code ran no hooks") && note.contains("disableAllHooks"),
        "{session:#}"
    );
    agent_cli::assert_task_reached_the_model_once(&prompts_sent(&api), task);
    assert_eq!(
        real_policy.exists(),
        had_policy,
        "the policy must stay in the test's namespace"
    );
}
