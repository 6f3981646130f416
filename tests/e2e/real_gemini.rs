//! The real Gemini CLI, offline, through whole turns with the `gemini` agent plugin:
//! `GOOGLE_GEMINI_BASE_URL` points it at the loopback Gemini API stand-in
//! (`support::gemini_api`), which streams scripted replies, a shell command the CLI must get
//! approved, or a slow reply.
//!
//! A worker lives through what an operator sees: its task reaches the model byte-exact and once;
//! `session ls` says `working` during a slow reply and `idle` after it, `waiting_input` with the
//! command on an approval prompt, `idle` again once the operator refuses it (no hook says so:
//! the screen does); messages sent while Gemini CLI drops the Enter after a paste still arrive;
//! after `tmux kill-server`, `session restore` resumes the conversation; `session kill` leaves no
//! process of it behind; the operator's own `~/.gemini` is never written. An orchestrator runs
//! `ao-host` unattended and still asks for anything else.
//!
//! Runs when `$AO_TEST_GEMINI` names the CLI (`.ci/run` installs it from npm) or `gemini` is on
//! PATH; otherwise it skips (under CI it fails).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use agent_cli::{
    assert_kill_leaves_nothing, assert_task_reached_the_model_once, listed_status, press,
    processes_with_env, restore, screen, session_home_variable, wait_for_screen,
};
use gemini_api::{GeminiApi, ReplyUsage};
use listed_usage::{assert_cost, reported_usage, wait_for_listed_usage, ExpectedUsage, Prices};
use standin_http::StandInApi;
use support::agent_cli;
use support::gemini_api;
use support::listed_usage;
use support::standin_http;
use support::{stderr, wait_until, Harness};

/// The operator's own Gemini home in a harness: settings that chose API-key auth, as `gemini`
/// run once by hand leaves them, and a memory file.
fn operator_home(harness: &Harness) -> PathBuf {
    let home = harness.home().join("operator");
    let dot = home.join(".gemini");
    std::fs::create_dir_all(&dot).unwrap();
    std::fs::write(
        dot.join("settings.json"),
        "{\n  // chosen in the auth dialog\n  \"security\": { \"auth\": { \"selectedType\": \"gemini-api-key\" } }\n}\n",
    )
    .unwrap();
    std::fs::write(dot.join("GEMINI.md"), "The operator's own memory.\n").unwrap();
    home
}

/// The stand-in, and the fake-agent harness with the gemini plugin installed and made the
/// default agent, pointed at the real CLI and the stand-in; also the operator's home. None
/// without the CLI.
fn real_gemini() -> Option<(GeminiApi, Harness, PathBuf)> {
    let gemini = agent_cli::find_cli("gemini", "Gemini")?;
    let api = GeminiApi::start();
    let harness = agent_cli::harness_with_plugin("ao-agent-gemini");
    let operator = operator_home(&harness);
    let settings = format!(
        "    gemini:\n      command: {gemini:?}\n      trust_workspaces: true\n\
         \x20     user_home: {operator:?}\n\
         \x20     env: {{ GEMINI_API_KEY: offline-test-key, GOOGLE_GEMINI_BASE_URL: {url:?} }}\n",
        gemini = gemini.display().to_string(),
        operator = operator.display().to_string(),
        url = api.base_url(),
    );
    agent_cli::use_agent(
        &harness,
        "gemini",
        &settings,
        60000,
        "model: gemini-2.5-pro",
    );
    Some((api, harness, operator))
}

/// Waits for session `id` to be listed with `status`, and, when that is `idle`, for its screen
/// to show the turn over.
fn wait_for_status(
    harness: &Harness,
    id: &str,
    status: &str,
    within: Duration,
) -> serde_json::Value {
    agent_cli::wait_for_status_and(harness, id, status, within, || {
        status != "idle" || turn_over(harness, id)
    })
}

/// Whether the agent's screen shows its turn over: `AfterAgent` (idle) runs before Gemini CLI
/// has finished drawing the turn, and the name of the hook stays shown a second after it ran.
/// A message pasted meanwhile may be drawn after the runtime looked for it, and its Enter
/// dropped: the host would not know to press it again (see the plugin's README).
fn turn_over(harness: &Harness, id: &str) -> bool {
    let screen = screen(harness, id);
    screen.contains("Type your message")
        && !screen.contains("Executing Hook")
        && !screen.contains("esc to cancel")
}

/// Every file under `dir` with its length and modification time, to tell it was not written.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut files = BTreeMap::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                folders.push(entry.path());
            }
            files.insert(entry.path(), (meta.len(), meta.modified().unwrap()));
        }
    }
    files
}

#[test]
fn the_real_gemini_cli_through_whole_turns_an_approval_a_restore_and_a_kill() {
    let Some((api, harness, operator)) = real_gemini() else {
        return;
    };
    let untouched = snapshot(&operator);

    // Everything a terminal's input box or a shell would change, and a slow reply. Gemini CLI
    // trims the whitespace around every prompt, so the task has none there (the orchestrator's
    // prompt, which ends with a newline, is typed in instead).
    let task = "-not an option\n\tfix the Makefile:\n\tcc -o app app.c\n  \"quoted\" 'single' $(rm -rf /) `tick`\r\nünïcødé 🎉\nAO_SLOW:4000";
    let output = harness.ao(&["spawn", "app", &format!("--task={task}")]);
    assert!(output.status.success(), "spawn failed: {}", stderr(&output));
    wait_for_status(&harness, "app-1", "working", Duration::from_secs(10));
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));
    // The user texts of each conversation request: the CLI's session context first.
    assert_task_reached_the_model_once(&api.prompts_sent(), task);
    // ao-host's instructions for the session reach the model with the operator's memory.
    let instruction = api.conversation_requests()[0].body["systemInstruction"].to_string();
    assert!(
        instruction.contains("The operator's own memory.") && instruction.contains("app-1"),
        "{instruction}"
    );

    // An approval prompt: waiting, with the command; approved, the command runs. The message
    // is pasted, and Gemini CLI drops the Enter that follows a paste: the host presses it again.
    harness.ok(&[
        "send",
        "app-1",
        "now run this\nAO_TOOL:echo granted > approved.txt",
    ]);
    let waiting = wait_for_status(&harness, "app-1", "waiting_input", Duration::from_secs(30));
    let question = waiting["waiting_for"].as_str().unwrap_or_default();
    assert!(
        question.contains("Shell") && question.ends_with(": echo granted > approved.txt"),
        "{waiting:#}"
    );
    wait_for_screen(&harness, "app-1", screen, "Allow once");
    press(&harness, "app-1", "Enter");
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));
    assert!(harness.worktree("app-1").join("approved.txt").is_file());

    // The runtime dies with everything in it, the agent too (Gemini CLI as it starts by itself
    // would live on without its terminal); the session is exited, and comes back with its
    // conversation.
    let variable = session_home_variable(&harness, "GEMINI_CLI_HOME", "gemini", "app-1");
    assert!(
        !processes_with_env(&variable).is_empty(),
        "no process carries {variable}"
    );
    harness.tmux.tmux(&["kill-server"]);
    wait_for_status(&harness, "app-1", "exited", Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(10), || processes_with_env(&variable)
            .is_empty()),
        "the agent outlived its terminal: {:?}",
        processes_with_env(&variable)
    );
    restore(&harness, "app-1");
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));
    let resumed = agent_cli::ask_after_restore(&harness, &api, "app-1", "what did I ask first?");
    assert!(
        resumed.iter().any(|t| t == task)
            && resumed.last().map(String::as_str) == Some("what did I ask first?"),
        "the resumed conversation lacks the earlier turns: {resumed:#?}"
    );
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));

    // A refused prompt fires no hook; the screen shows the agent idle again.
    harness.ok(&["send", "app-1", "AO_TOOL:echo refused > refused.txt"]);
    wait_for_status(&harness, "app-1", "waiting_input", Duration::from_secs(30));
    wait_for_screen(&harness, "app-1", screen, "Allow once");
    press(&harness, "app-1", "Escape");
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(15));
    assert!(!harness.worktree("app-1").join("refused.txt").exists());

    // A kill leaves nothing of the agent: not its process group, nor anything carrying the
    // session's Gemini home (Gemini CLI runs shell commands in terminals of their own).
    assert_kill_leaves_nothing(&harness, "app-1", &variable);
    assert_eq!(
        snapshot(&operator),
        untouched,
        "the operator's ~/.gemini changed"
    );

    // A task Gemini CLI would run as one of its commands is refused before anything starts.
    agent_cli::assert_spawn_refused(&harness, "/quit", "one of its own commands");
}

/// The orchestrator, with the real CLI, runs `ao-host` with nobody answering a prompt; any other
/// command still asks.
#[test]
fn the_real_gemini_orchestrator_starts_a_worker_unattended_and_still_asks_for_anything_else() {
    let Some((api, harness, _)) = real_gemini() else {
        return;
    };
    agent_cli::orchestrator_starts_a_worker_unattended_and_still_asks_for_anything_else(
        &harness,
        |id| listed_status(&harness, id).filter(|s| s != "idle" || turn_over(&harness, id)),
        |id| {
            // Its prompt ends with a newline, which Gemini CLI trims: it was typed in, submitted
            // once.
            assert!(
                api.wait_for_more_conversation_requests(0, Duration::from_secs(10)),
                "no request from the orchestrator"
            );
            let sent = api.prompts_sent();
            let prompt = sent
                .first()
                .and_then(|texts| texts.last())
                .cloned()
                .unwrap_or_default();
            assert!(
                sent.len() == 1
                    && prompt.starts_with(&format!("# You are the orchestrator `{id}`"))
                    && prompt.trim_end() == prompt,
                "the orchestrator's prompt, once: {sent:#?}"
            );
        },
    );
}

/// What each reply used, as the stand-in reported it, summed the way prices are: after a turn
/// with text and a turn with a function call (the call, then the reply to its response),
/// `session ls` shows exactly those sums for the model, with the price table's cost; so does
/// `ao-host usage` once the session is killed. A restored session adds its new reply and
/// nothing twice.
#[test]
fn the_real_gemini_cli_usage_is_listed_exactly_and_kept_after_a_kill() {
    let Some((api, harness, _)) = real_gemini() else {
        return;
    };
    let prices = Prices {
        input: 1.25,
        cache_read: 0.31,
        output: 10.0,
    };
    harness.append_config(&prices.config("gemini-2.5-pro"));

    // A text reply: a prompt of 1000 of which 400 cached, 200 candidates, 100 thoughts.
    api.set_usage(ReplyUsage {
        prompt: 1000,
        cached: 400,
        candidates: 200,
        thoughts: 100,
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
        "gemini-2.5-pro",
        &expected,
        Duration::from_secs(20),
    );

    // A function call and the reply after it: each a prompt of 2000 of which 1500 cached, 50
    // candidates, no thoughts.
    api.set_usage(ReplyUsage {
        prompt: 2000,
        cached: 1500,
        candidates: 50,
        thoughts: 0,
    });
    harness.ok(&["send", "app-1", "AO_TOOL:echo granted > approved.txt"]);
    wait_for_status(&harness, "app-1", "waiting_input", Duration::from_secs(30));
    wait_for_screen(&harness, "app-1", screen, "Allow once");
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
        "gemini-2.5-pro",
        &expected,
        Duration::from_secs(20),
    );
    assert_cost(
        &usage["models"]["gemini-2.5-pro"]["cost_usd"],
        &expected,
        prices,
    );
    assert_cost(&usage["cost_usd"], &expected, prices);
    assert_eq!(usage["priced"], true, "{usage:#}");

    // The runtime dies and the session is restored: the resumed conversation adds its new
    // reply (100 input, 10 output) and nothing it had counted before, though Gemini CLI writes
    // the earlier replies into its recording again.
    harness.tmux.tmux(&["kill-server"]);
    wait_for_status(&harness, "app-1", "exited", Duration::from_secs(10));
    restore(&harness, "app-1");
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));
    api.set_usage(ReplyUsage {
        prompt: 100,
        cached: 0,
        candidates: 10,
        thoughts: 0,
    });
    agent_cli::ask_after_restore(&harness, &api, "app-1", "and now?");
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));
    expected.replies += 1;
    expected.input += 100;
    expected.output += 10;
    wait_for_listed_usage(
        &harness,
        "app-1",
        "gemini-2.5-pro",
        &expected,
        Duration::from_secs(20),
    );

    // Killed (its worktree holds the command's file), the session's usage stays in its
    // archived record.
    harness.ok(&["session", "kill", "app-1", "--force"]);
    let row = reported_usage(&harness, "app-1");
    assert!(
        expected.matches(&row["models"]["gemini-2.5-pro"]),
        "{row:#}"
    );
    assert_cost(&row["cost_usd"], &expected, prices);
}
