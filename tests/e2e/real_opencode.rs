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
//! Another session's usage, listed and after its kill, is exactly what the stand-in's replies
//! reported (a tool call, the text after it, a second turn), priced at `prices:`.
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
use chat_completions_api::{ChatCompletionsApi, ChatUsage};
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
/// made the default agent, with the project's `agent_config` entries; OpenCode gets a home of
/// its own (XDG folders included) holding the operator's config.
fn real_opencode_harness(
    cli: &Path,
    api: &ChatCompletionsApi,
    agent_config: &str,
) -> (Harness, PathBuf) {
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
    agent_cli::use_agent(&harness, "opencode", &settings, 120000, agent_config);
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
    let (harness, operator_file) = real_opencode_harness(
        &cli,
        &api,
        "model: standin/standin-model, permission: { bash: ask }",
    );
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

/// What the stand-in's replies used, as `session ls --json` and `ao-host usage --json` show a
/// model: Chat Completions counts cached tokens inside `prompt_tokens` and reasoning inside
/// `completion_tokens`; a listing shows them apart.
fn listed_sums(sent: &[ChatUsage]) -> serde_json::Value {
    let sum = |f: fn(&ChatUsage) -> u64| sent.iter().map(f).sum::<u64>();
    serde_json::json!({
        "replies": sent.len(),
        "input": sum(|u| u.prompt - u.cached),
        "cache_read": sum(|u| u.cached),
        "cache_write": 0,
        "cache_write_5m": 0,
        "cache_write_1h": 0,
        "output": sum(|u| u.completion - u.reasoning),
        "reasoning": sum(|u| u.reasoning),
    })
}

/// The counts of a listed model, without its cost.
fn counts(model: &serde_json::Value) -> serde_json::Value {
    let mut counts = model.clone();
    if let Some(fields) = counts.as_object_mut() {
        fields.remove("cost_usd");
    }
    counts
}

/// What `counts` cost at the test's `prices:` (USD per million tokens: 3 uncached input, 0.3
/// cache reads, 15 output and reasoning; no cache writes were made).
fn cost(counts: &serde_json::Value) -> f64 {
    let n = |key: &str| counts[key].as_u64().unwrap() as f64;
    (n("input") * 3.0 + n("cache_read") * 0.3 + (n("output") + n("reasoning")) * 15.0) / 1e6
}

fn assert_cost(listed: &serde_json::Value, expected: f64) {
    let cost = listed["cost_usd"].as_f64();
    assert!(
        cost.is_some_and(|cost| (cost - expected).abs() < 1e-9),
        "cost {cost:?}, expected {expected}: {listed:#}"
    );
}

#[test]
fn the_real_opencode_cli_s_usage_is_what_the_api_reported_listed_and_kept_after_a_kill() {
    let Some(cli) = agent_cli::find_cli("opencode", "OpenCode") else {
        return;
    };
    let api = ChatCompletionsApi::start();
    // Turn one: a tool call, then the text after the tool ran; turn two: a text reply.
    let set = [
        ChatUsage {
            prompt: 12_345,
            cached: 2_000,
            completion: 420,
            reasoning: 64,
        },
        ChatUsage {
            prompt: 13_001,
            cached: 12_000,
            completion: 77,
            reasoning: 0,
        },
        ChatUsage {
            prompt: 14_500,
            cached: 13_000,
            completion: 1_000,
            reasoning: 250,
        },
    ];
    api.queue_usage(set);
    let (harness, _) = real_opencode_harness(
        &cli,
        &api,
        "model: standin/standin-model, permission: { bash: allow }",
    );
    harness.append_config(
        "prices:\n  standin-model: { input: 3, cache_read: 0.3, cache_write_5m: 3.75, \
         cache_write_1h: 6, output: 15 }\n",
    );
    harness.ok(&[
        "spawn",
        "app",
        "--task=make one.txt\nAO_TOOL:echo one > one.txt",
    ]);
    let replied = |n: usize| {
        let api = &api;
        move || api.usage_sent().len() == n
    };
    let within = Duration::from_secs(90);
    agent_cli::wait_for_status_and(&harness, "app-1", "idle", within, replied(2));
    harness.ok(&["send", "app-1", "and now a word"]);
    agent_cli::wait_for_status_and(&harness, "app-1", "idle", within, replied(3));
    assert_eq!(api.usage_sent(), set, "the stand-in's replies");
    let expected = listed_sums(&set);

    let mut listed = serde_json::Value::Null;
    let counted = wait_until(Duration::from_secs(30), || {
        listed = agent_cli::status_of(&harness, "app-1")["usage"].clone();
        listed["state"] == "known" && counts(&listed["models"]["standin-model"]) == expected
    });
    assert!(counted, "listed {listed:#}\nexpected {expected:#}");
    assert_cost(&listed["models"]["standin-model"], cost(&expected));
    assert_cost(&listed, cost(&expected));
    assert_eq!(listed["priced"], true, "{listed:#}");

    // --force: one.txt is uncommitted work.
    harness.ok(&["session", "kill", "app-1", "--force"]);
    let output = harness.ok(&["usage", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let group = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "app-1")
        .unwrap_or_else(|| panic!("app-1 not reported: {report:#}"));
    assert_eq!(
        counts(&group["models"]["standin-model"]),
        expected,
        "{report:#}"
    );
    assert_cost(group, cost(&expected));
}
