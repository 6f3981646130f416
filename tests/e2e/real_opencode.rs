//! The real OpenCode CLI, offline, through whole turns: a provider in the operator's own config
//! (`~/.config/opencode/opencode.json` of a home made for the test) points at the loopback Chat
//! Completions stand-in (`support::chat_completions_api`), which streams scripted replies.
//!
//! One session lives through what an operator sees: its task reaches the model byte-exact and
//! once; `session ls` says `working` during a slow reply, `idle` after the turn,
//! `waiting_input` with the command on a shell-command approval, `exited` after `tmux
//! kill-server`; `session restore` brings it back with its conversation; `session kill` leaves no
//! process of it behind.
//!
//! Runs when `$AO_TEST_OPENCODE` names the CLI (`.ci/run` installs it from npm) or `opencode` is
//! on PATH; otherwise it skips (under CI it fails).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use agent_cli::{
    agent_processes, assert_task_reached_the_model_once, press, restore, visible_screen,
    wait_for_screen,
};
use chat_completions_api::ChatCompletionsApi;
use standin_http::StandInApi;
use support::agent_cli;
use support::chat_completions_api;
use support::standin_http;
use support::{git, stderr, wait_until, Harness};

/// The operator's own OpenCode config, as they would have it: a provider and nothing of
/// ao-host's. The test checks it is never written.
fn operator_config(api: &ChatCompletionsApi) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "standin": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Stand-in",
                "options": { "baseURL": api.base_url(), "apiKey": "offline-test-key" },
                "models": { "standin-model": { "name": "Stand-in model" } },
            }
        }
    }))
    .unwrap()
}

/// The fake-agent harness with the `opencode` plugin installed beside the first-party ones and
/// made the default agent; OpenCode gets a home of its own (XDG folders included) holding the
/// operator's config.
fn real_opencode_harness(cli: &Path, api: &ChatCompletionsApi) -> (Harness, PathBuf) {
    let harness = agent_cli::harness_with_plugin("ao-agent-opencode");
    let home = harness.home().join("agent-home");
    let config_dir = home.join(".config/opencode");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(config_dir.join("opencode.json"), operator_config(api)).unwrap();
    let env = [
        ("HOME", home.clone()),
        ("XDG_CONFIG_HOME", home.join(".config")),
        ("XDG_DATA_HOME", home.join(".local/share")),
        ("XDG_STATE_HOME", home.join(".local/state")),
        ("XDG_CACHE_HOME", home.join(".cache")),
    ]
    .iter()
    .map(|(name, path)| format!("{name}: {:?}", path.display().to_string()))
    .collect::<Vec<_>>()
    .join(", ");
    let settings = format!(
        "    opencode:\n      command: {:?}\n      env: {{ {env}, \
         OPENCODE_DISABLE_MODELS_FETCH: \"1\" }}\n",
        cli.display().to_string()
    );
    agent_cli::use_agent(
        &harness,
        "opencode",
        &settings,
        120000,
        "model: standin/standin-model, permission: { bash: ask }",
    );
    (harness, config_dir.join("opencode.json"))
}

/// [`agent_cli::wait_for_status`] of the worker `app-1`.
fn wait_for_status(harness: &Harness, status: &str, within: Duration) -> serde_json::Value {
    agent_cli::wait_for_status(harness, "app-1", status, within)
}

#[test]
fn the_real_opencode_cli_through_whole_turns_statuses_a_shell_approval_a_restore_and_a_kill() {
    let Some(cli) = agent_cli::find_cli("opencode", "OpenCode") else {
        return;
    };
    let api = ChatCompletionsApi::start();
    let (harness, operator_file) = real_opencode_harness(&cli, &api);
    let operator_before = std::fs::read(&operator_file).unwrap();
    // Where the time goes, for `--nocapture`: OpenCode takes seconds to start.
    let started = std::time::Instant::now();
    let mark = |what: &str| eprintln!("{:>6.1}s {what}", started.elapsed().as_secs_f32());

    // The task, with everything a terminal's input box, a shell or an option parser would
    // change, and a marker that makes the stand-in answer slowly.
    let task = "-not an option\n\tfix the Makefile:\n\tcc -o app app.c\n  \"quoted\" 'single' $(rm -rf /) `tick` --model=x\nünïcødé 🎉\nAO_SLOW:4000\n";
    let output = harness.ao(&["spawn", "app", &format!("--task={task}")]);
    assert!(output.status.success(), "spawn failed: {}", stderr(&output));
    wait_for_status(&harness, "working", Duration::from_secs(30));
    mark("working");
    // OpenCode's first turn in a new home loads its providers first: seconds, more under load.
    wait_for_status(&harness, "idle", Duration::from_secs(60));
    mark("idle");
    assert_task_reached_the_model_once(&api.prompts_sent(), task);
    // OpenCode chose the conversation's id; its status plugin reported it.
    let state = std::fs::read_to_string(
        harness
            .data_dir()
            .join("agent-state/app/app-1")
            .join("state.json"),
    )
    .unwrap_or_default();
    assert!(state.contains("\"ses_"), "no conversation id: {state}");

    // A shell command the agent must get approved: waiting, with the command; granted, it runs,
    // without the npm setting ao-host gave OpenCode's own start-up install.
    let command = "echo granted > approved.txt; printenv npm_config_offline >> approved.txt";
    harness.ok(&["send", "app-1", &format!("now run this\nAO_TOOL:{command}")]);
    let waiting = wait_for_status(&harness, "waiting_input", Duration::from_secs(30));
    mark("waiting_input");
    let question = waiting["waiting_for"].as_str().unwrap_or_default();
    assert!(
        question.contains("bash") && question.contains(command),
        "{waiting:#}\nits screen:\n{}",
        visible_screen(&harness, "app-1")
    );
    wait_for_screen(&harness, "app-1", visible_screen, "Permission required");
    std::thread::sleep(Duration::from_millis(500));
    press(&harness, "app-1", "Enter");
    wait_for_status(&harness, "idle", Duration::from_secs(30));
    mark("idle");
    assert_eq!(
        std::fs::read_to_string(harness.worktree("app-1").join("approved.txt")).unwrap(),
        "granted\n"
    );

    // The runtime dies with everything in it; the session is exited, and comes back with its
    // conversation.
    harness.tmux.tmux(&["kill-server"]);
    wait_for_status(&harness, "exited", Duration::from_secs(10));
    mark("exited");
    restore(&harness, "app-1");
    mark("restored");
    let resumed = agent_cli::ask_after_restore(&harness, &api, "app-1", "what did I ask first?");
    assert!(
        resumed.iter().any(|t| t == task) && resumed.iter().any(|t| t == "what did I ask first?"),
        "the resumed conversation lacks the earlier turns: {resumed:#?}"
    );
    wait_for_status(&harness, "idle", Duration::from_secs(30));
    mark("idle");

    // A kill leaves no process of the agent behind, the shell command it is running and what
    // that command left in the background included.
    harness.ok(&[
        "send",
        "app-1",
        "one more\nAO_TOOL:(sleep 300 > /dev/null 2>&1 &); sleep 301",
    ]);
    wait_for_status(&harness, "waiting_input", Duration::from_secs(30));
    wait_for_screen(&harness, "app-1", visible_screen, "Permission required");
    std::thread::sleep(Duration::from_millis(500));
    press(&harness, "app-1", "Enter");
    // OpenCode starts each shell command in a session of its own (`detached`), and a command may
    // leave a process behind in it (`(sleep 300 &)`): a kill must stop those too, not only the
    // pane's process group.
    let mut processes = BTreeMap::new();
    let running = wait_until(Duration::from_secs(20), || {
        processes = agent_processes(&harness, "app-1");
        ["sleep 300", "sleep 301"]
            .iter()
            .all(|command| processes.values().any(|c| c.trim_end() == *command))
    });
    assert!(
        running,
        "the approved command is not running: {processes:#?}"
    );
    mark("running a command");
    // --force: approved.txt is uncommitted work.
    harness.ok(&["session", "kill", "app-1", "--force"]);
    let left = || {
        processes
            .iter()
            .filter(|(pid, _)| Path::new(&format!("/proc/{pid}")).exists())
            .map(|(pid, command)| format!("{pid} {command}"))
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(10), || left().is_empty()),
        "processes of the agent left after the kill: {:#?}",
        left()
    );
    mark("killed");
    assert_eq!(
        git(&harness.repo(), &["worktree", "list"]).lines().count(),
        1
    );
    assert_eq!(
        std::fs::read(&operator_file).unwrap(),
        operator_before,
        "the operator's own OpenCode config was written"
    );
}
