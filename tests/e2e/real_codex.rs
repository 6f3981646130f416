//! The real Codex CLI, offline, through whole turns with the `codex` agent plugin: a provider of
//! the plugin's `config` points Codex at the loopback Responses API stand-in
//! (`support::responses_api`), which streams scripted replies, a command Codex must get approved,
//! or a slow reply.
//!
//! A worker lives through what an operator sees: its task reaches the model byte-exact and once;
//! `session ls` says `working` during a slow reply and `idle` after it, `waiting_input` with the
//! command on an approval prompt, and `idle` again once it is refused (no hook fires then); after
//! `tmux kill-server`, `session restore` resumes the conversation Codex reported; `session kill`
//! leaves no process of it behind; a task Codex would alter (a carriage return) fails its spawn.
//! An orchestrator runs `ao-host` unattended and still asks for anything else.
//!
//! Runs when `$AO_TEST_CODEX` names the CLI (`.ci/run` installs it from npm) or `codex` is on
//! PATH; otherwise it skips (under CI it fails). Codex never sees the operator's `~/.codex`: the
//! plugin's `user_home` names an empty folder.

use std::time::Duration;

use agent_cli::{
    assert_kill_leaves_nothing, assert_task_reached_the_model_once, listed_status, press, restore,
    screen, session_home_variable, wait_for_screen, wait_for_status,
};
use listed_usage::{assert_cost, reported_usage, wait_for_listed_usage, ExpectedUsage, Prices};
use responses_api::{ReplyUsage, ResponsesApi};
use standin_http::StandInApi;
use support::agent_cli;
use support::listed_usage;
use support::responses_api;
use support::standin_http;
use support::{stderr, Harness};

/// The stand-in, and the fake-agent harness with the codex plugin installed and made the
/// default agent, pointed at the real CLI and the stand-in. None without the CLI.
fn real_codex() -> Option<(ResponsesApi, Harness)> {
    real_codex_in(|| Harness::new(&[], ""))
}

/// [`real_codex`] in the harness `make` makes (one outside `/tmp` for a confined agent).
pub(crate) fn real_codex_in(make: impl FnOnce() -> Harness) -> Option<(ResponsesApi, Harness)> {
    let codex = agent_cli::find_cli("codex", "Codex")?;
    let api = ResponsesApi::start();
    let harness = make();
    support::install(
        &support::build_workspace_plugin("ao-agent-codex"),
        &harness.plugin_dir(),
        None,
    );
    let user_home = harness.home().join("operator-codex-home");
    let settings = format!(
        "    codex:\n      command: {codex:?}\n      trust_workspaces: true\n\
         \x20     user_home: {user_home:?}\n\
         \x20     env: {{ AO_TEST_CODEX_KEY: sk-offline-test }}\n\
         \x20     config:\n        model: gpt-test\n        model_provider: standin\n\
         \x20       model_providers.standin: {{ name: Stand-in, base_url: {url:?}, \
         env_key: AO_TEST_CODEX_KEY, wire_api: responses }}\n",
        codex = codex.display().to_string(),
        user_home = user_home.display().to_string(),
        url = api.base_url(),
    );
    agent_cli::use_agent(
        &harness,
        "codex",
        &settings,
        60000,
        "approval_policy: on-request",
    );
    Some((api, harness))
}

#[test]
fn the_real_codex_cli_through_whole_turns_an_approval_a_restore_and_a_kill() {
    let Some((api, harness)) = real_codex() else {
        return;
    };

    // Everything a terminal's input box or a shell would change, and a slow reply.
    // Codex turns a carriage return into a line feed wherever the prompt comes from (argument or
    // paste), so the task has none; one that has is refused below.
    let task = "\tfix the Makefile:\n\tcc -o app app.c\n  \"quoted\" 'single' $(rm -rf /) `tick`\nünïcødé 🎉\n-not an option\nAO_SLOW:4000\n";
    let output = harness.ao(&["spawn", "app", "--task", task]);
    assert!(output.status.success(), "spawn failed: {}", stderr(&output));
    wait_for_status(&harness, "app-1", "working", Duration::from_secs(10));
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));
    assert_task_reached_the_model_once(&api.prompts_sent(), task);

    // An approval prompt: waiting, with the command; approved, the command runs.
    harness.ok(&[
        "send",
        "app-1",
        "now run this\nAO_TOOL:echo granted > approved.txt",
    ]);
    let waiting = wait_for_status(&harness, "app-1", "waiting_input", Duration::from_secs(30));
    let question = waiting["waiting_for"].as_str().unwrap_or_default();
    assert_eq!(question, "Bash: echo granted > approved.txt", "{waiting:#}");
    wait_for_screen(&harness, "app-1", screen, "Press enter to confirm");
    press(&harness, "app-1", "Enter");
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));
    assert!(harness.worktree("app-1").join("approved.txt").is_file());

    // Refused, the command does not run and Codex fires no hook at all: the idle composer on
    // screen wins over the stale question.
    harness.ok(&[
        "send",
        "app-1",
        "and this\nAO_TOOL:echo refused > refused.txt",
    ]);
    wait_for_status(&harness, "app-1", "waiting_input", Duration::from_secs(30));
    wait_for_screen(&harness, "app-1", screen, "Press enter to confirm");
    press(&harness, "app-1", "Escape");
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(15));
    assert!(!harness.worktree("app-1").join("refused.txt").exists());

    // The runtime dies with everything in it; the session is exited, and comes back with its
    // conversation.
    harness.tmux.tmux(&["kill-server"]);
    wait_for_status(&harness, "app-1", "exited", Duration::from_secs(10));
    restore(&harness, "app-1");
    let resumed = agent_cli::ask_after_restore(&harness, &api, "app-1", "what did I ask first?");
    assert!(
        resumed.iter().any(|t| t == task)
            && resumed.last().map(String::as_str) == Some("what did I ask first?"),
        "the resumed conversation lacks the earlier turns: {resumed:#?}"
    );
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));

    // A kill leaves nothing of the agent: not its process group, nor anything that carries the
    // session's CODEX_HOME (a daemon would, outside the group).
    let needle = session_home_variable(&harness, "CODEX_HOME", "codex", "app-1");
    assert_kill_leaves_nothing(&harness, "app-1", &needle);

    // A task Codex cannot take byte-exact fails its spawn, naming the difference.
    agent_cli::assert_spawn_refused(&harness, "one\r\ntwo", "received its task altered");
}

/// The orchestrator, with the real CLI, runs `ao-host` with nobody answering a prompt; any other
/// command still asks.
#[test]
fn the_real_codex_orchestrator_starts_a_worker_unattended_and_still_asks_for_anything_else() {
    let Some((_api, harness)) = real_codex() else {
        return;
    };
    agent_cli::orchestrator_starts_a_worker_unattended_and_still_asks_for_anything_else(
        &harness,
        |id| listed_status(&harness, id),
        |_| {},
    );
}

/// What each reply used, as the stand-in reported it, summed the way prices are: after a turn
/// with text and a turn with a tool call (the call, then the reply to its output), `session ls`
/// shows exactly those sums for the model, with the price table's cost; so does `ao-host usage`
/// once the session is killed. A restored session adds its new reply and nothing
/// twice.
#[test]
fn the_real_codex_cli_usage_is_listed_exactly_and_kept_after_a_kill() {
    let Some((api, harness)) = real_codex() else {
        return;
    };
    let prices = Prices {
        input: 1.25,
        cache_read: 0.125,
        output: 10.0,
    };
    harness.append_config(&prices.config("gpt-test"));

    // A text reply: 1000 input of which 400 cached, 300 output of which 100 reasoning.
    api.set_usage(ReplyUsage {
        input_tokens: 1000,
        cached_tokens: 400,
        output_tokens: 300,
        reasoning_tokens: 100,
    });
    harness.ok(&["spawn", "app", "--task", "say done"]);
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(60));
    let mut expected = ExpectedUsage {
        replies: 1,
        input: 600,
        cache_read: 400,
        output: 200,
        reasoning: 100,
        ..ExpectedUsage::default()
    };
    wait_for_listed_usage(
        &harness,
        "app-1",
        "gpt-test",
        &expected,
        Duration::from_secs(20),
    );

    // A tool call and the reply after it: each 2000 input of which 1500 cached, 50 output.
    api.set_usage(ReplyUsage {
        input_tokens: 2000,
        cached_tokens: 1500,
        output_tokens: 50,
        reasoning_tokens: 0,
    });
    harness.ok(&["send", "app-1", "AO_TOOL:echo granted > approved.txt"]);
    wait_for_status(&harness, "app-1", "waiting_input", Duration::from_secs(30));
    wait_for_screen(&harness, "app-1", screen, "Press enter to confirm");
    press(&harness, "app-1", "Enter");
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));
    expected = ExpectedUsage {
        replies: 3,
        input: 600 + 2 * 500,
        cache_read: 400 + 2 * 1500,
        output: 200 + 2 * 50,
        reasoning: 100,
        ..ExpectedUsage::default()
    };
    let usage = wait_for_listed_usage(
        &harness,
        "app-1",
        "gpt-test",
        &expected,
        Duration::from_secs(20),
    );
    assert_cost(&usage["models"]["gpt-test"]["cost_usd"], &expected, prices);
    assert_cost(&usage["cost_usd"], &expected, prices);
    assert_eq!(usage["priced"], true, "{usage:#}");

    // The runtime dies and the session is restored: the resumed conversation adds its new
    // reply (100 input, 10 output) and nothing it had counted before.
    harness.tmux.tmux(&["kill-server"]);
    wait_for_status(&harness, "app-1", "exited", Duration::from_secs(10));
    restore(&harness, "app-1");
    api.set_usage(ReplyUsage {
        input_tokens: 100,
        cached_tokens: 0,
        output_tokens: 10,
        reasoning_tokens: 0,
    });
    agent_cli::ask_after_restore(&harness, &api, "app-1", "and now?");
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));
    expected.replies += 1;
    expected.input += 100;
    expected.output += 10;
    wait_for_listed_usage(
        &harness,
        "app-1",
        "gpt-test",
        &expected,
        Duration::from_secs(20),
    );

    // Killed (its worktree holds the command's file), the session's usage stays in its
    // archived record.
    harness.ok(&["session", "kill", "app-1", "--force"]);
    let row = reported_usage(&harness, "app-1");
    assert!(expected.matches(&row["models"]["gpt-test"]), "{row:#}");
    assert_cost(&row["cost_usd"], &expected, prices);
}
