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
//! PATH; otherwise it says it was skipped.

// Here only, so its own tests run once, not in every test binary.
#[path = "support/gemini_api.rs"]
mod gemini_api;
#[path = "support/standin_http.rs"]
mod standin_http;
mod support;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use gemini_api::{user_texts, GeminiApi, GeminiRequest};
use support::{stderr, wait_until, Harness};

fn gemini_cli() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AO_TEST_GEMINI").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("gemini"))
        .find(|path| path.is_file())
}

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

/// The fake-agent harness with the gemini plugin installed and made the default agent, pointed
/// at the real CLI and the stand-in.
fn real_gemini_harness(gemini: &Path, api: &GeminiApi) -> (Harness, PathBuf) {
    let harness = Harness::new(&[], "");
    support::install(
        &support::build_workspace_plugin("ao-agent-gemini"),
        &harness.plugin_dir(),
        None,
    );
    let operator = operator_home(&harness);
    harness.edit_config(|config| {
        let settings = format!(
            "    gemini:\n      command: {gemini:?}\n      trust_workspaces: true\n\
             \x20     user_home: {operator:?}\n\
             \x20     env: {{ GEMINI_API_KEY: offline-test-key, GOOGLE_GEMINI_BASE_URL: {url:?} }}\n",
            gemini = gemini.display().to_string(),
            operator = operator.display().to_string(),
            url = api.base_url(),
        );
        config
            .replace("projects:\n", &format!("{settings}projects:\n"))
            .replace(
                "defaults: { ready_timeout_ms: 10000 }",
                "defaults: { ready_timeout_ms: 60000, agent: gemini }",
            )
            .replace(
                "default_branch: main }",
                "default_branch: main, agent_config: { model: gemini-2.5-pro } }",
            )
    });
    (harness, operator)
}

fn status_of(harness: &Harness, id: &str) -> serde_json::Value {
    harness
        .sessions_json(&[])
        .into_iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} listed"))
}

fn wait_for_status(
    harness: &Harness,
    id: &str,
    status: &str,
    within: Duration,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let reached = wait_until(within, || {
        last = status_of(harness, id);
        last["status"] == status && (status != "idle" || turn_over(harness, id))
    });
    assert!(
        reached,
        "never {status}: {last:#}\nits screen:\n{}",
        screen(harness, id)
    );
    last
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

fn screen(harness: &Harness, id: &str) -> String {
    let target = format!("={}:", harness.tmux_session(id));
    harness
        .tmux
        .tmux(&["capture-pane", "-p", "-J", "-S", "-60", "-t", &target])
        .1
}

fn press(harness: &Harness, id: &str, key: &str) {
    let target = format!("={}:", harness.tmux_session(id));
    harness.tmux.tmux(&["send-keys", "-t", &target, key]);
}

/// The user texts of each conversation request, in order (the CLI's session context first).
fn prompts_sent(api: &GeminiApi) -> Vec<Vec<String>> {
    api.conversation_requests()
        .iter()
        .map(|request| user_texts(&request.body))
        .collect()
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

/// Live processes (zombies aside) whose environment holds `variable` exactly: the agent and
/// whatever it started, whichever process group or session they are in.
fn processes_with_env(variable: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    stat.rsplit(')')
                        .next()?
                        .split_whitespace()
                        .next()
                        .map(str::to_string)
                });
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            state.is_some_and(|s| s != "Z")
                && environ.split(|b| *b == 0).any(|v| v == variable.as_bytes())
        })
        .collect()
}

/// The members of the pane's process group (tmux makes the agent a group leader).
fn pane_group(harness: &Harness, id: &str) -> Vec<u32> {
    let target = format!("={}:", harness.tmux_session(id));
    let pane: u32 = harness
        .tmux
        .tmux(&["display-message", "-p", "-t", &target, "#{pane_pid}"])
        .1
        .trim()
        .parse()
        .expect("the pane's pid");
    let group_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')')
            .next()?
            .split_whitespace()
            .nth(2)?
            .parse()
            .ok()
    };
    let group = group_of(pane).expect("the pane's process group");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| group_of(*pid) == Some(group))
        .collect()
}

#[test]
fn the_real_gemini_cli_through_whole_turns_an_approval_a_restore_and_a_kill() {
    let Some(gemini) = gemini_cli() else {
        eprintln!("skipped: no Gemini CLI (set AO_TEST_GEMINI or put `gemini` on PATH)");
        return;
    };
    let api = GeminiApi::start();
    let (harness, operator) = real_gemini_harness(&gemini, &api);
    let untouched = snapshot(&operator);

    // Everything a terminal's input box or a shell would change, and a slow reply. Gemini CLI
    // trims the whitespace around every prompt, so the task has none there (the orchestrator's
    // prompt, which ends with a newline, is typed in instead).
    let task = "-not an option\n\tfix the Makefile:\n\tcc -o app app.c\n  \"quoted\" 'single' $(rm -rf /) `tick`\r\nünïcødé 🎉\nAO_SLOW:4000";
    let output = harness.ao(&["spawn", "app", &format!("--task={task}")]);
    assert!(output.status.success(), "spawn failed: {}", stderr(&output));
    wait_for_status(&harness, "app-1", "working", Duration::from_secs(10));
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));
    let sent = prompts_sent(&api);
    assert_eq!(
        sent.first()
            .and_then(|texts| texts.last())
            .map(String::as_str),
        Some(task),
        "the task must reach the model byte-exact: {sent:#?}"
    );
    assert!(
        sent.iter()
            .all(|texts| texts.iter().filter(|t| *t == task).count() == 1),
        "the task was submitted more than once: {sent:#?}"
    );
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
    assert!(
        wait_until(Duration::from_secs(10), || screen(&harness, "app-1")
            .contains("Allow once")),
        "{}",
        screen(&harness, "app-1")
    );
    press(&harness, "app-1", "Enter");
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));
    assert!(harness.worktree("app-1").join("approved.txt").is_file());

    // The runtime dies with everything in it, the agent too (Gemini CLI as it starts by itself
    // would live on without its terminal); the session is exited, and comes back with its
    // conversation.
    let home = harness
        .data_dir()
        .canonicalize()
        .unwrap()
        .join("gemini/sessions/app-1/home");
    let variable = format!("GEMINI_CLI_HOME={}", home.display());
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
    let output = harness.ao(&["session", "restore", "app-1"]);
    assert!(
        output.status.success(),
        "restore failed: {}",
        stderr(&output)
    );
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));
    let before = api.conversation_requests().len();
    harness.ok(&["send", "app-1", "what did I ask first?"]);
    assert!(
        api.wait_for(Duration::from_secs(30), |requests| {
            requests.iter().filter(|r| r.is_conversation()).count() > before
        }),
        "no request after the restore:\n{}",
        screen(&harness, "app-1")
    );
    let resumed = prompts_sent(&api).pop().unwrap();
    assert!(
        resumed.iter().any(|t| t == task)
            && resumed.last().map(String::as_str) == Some("what did I ask first?"),
        "the resumed conversation lacks the earlier turns: {resumed:#?}"
    );
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(30));

    // A refused prompt fires no hook; the screen shows the agent idle again.
    harness.ok(&["send", "app-1", "AO_TOOL:echo refused > refused.txt"]);
    wait_for_status(&harness, "app-1", "waiting_input", Duration::from_secs(30));
    assert!(wait_until(Duration::from_secs(10), || screen(
        &harness, "app-1"
    )
    .contains("Allow once")));
    press(&harness, "app-1", "Escape");
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(15));
    assert!(!harness.worktree("app-1").join("refused.txt").exists());

    // A kill leaves nothing of the agent: not its process group, nor anything carrying the
    // session's Gemini home (Gemini CLI runs shell commands in terminals of their own).
    let group = pane_group(&harness, "app-1");
    let agents = processes_with_env(&variable);
    assert!(!agents.is_empty(), "no process carries {variable}");
    harness.ok(&["session", "kill", "app-1", "--force"]);
    let gone = wait_until(Duration::from_secs(10), || {
        processes_with_env(&variable).is_empty()
            && group
                .iter()
                .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    });
    assert!(
        gone,
        "left behind: group {group:?}, with the session's home: {:?}",
        processes_with_env(&variable)
    );
    assert_eq!(
        snapshot(&operator),
        untouched,
        "the operator's ~/.gemini changed"
    );

    // A task Gemini CLI would run as one of its commands is refused before anything starts.
    let output = harness.ao(&["spawn", "app", "--task", "/quit"]);
    assert!(
        !output.status.success() && stderr(&output).contains("one of its own commands"),
        "{}",
        stderr(&output)
    );
}

/// The orchestrator, with the real CLI, runs `ao-host` with nobody answering a prompt; any other
/// command still asks.
#[test]
fn the_real_gemini_orchestrator_starts_a_worker_unattended_and_still_asks_for_anything_else() {
    let Some(gemini) = gemini_cli() else {
        eprintln!("skipped: no Gemini CLI (set AO_TEST_GEMINI or put `gemini` on PATH)");
        return;
    };
    let api = GeminiApi::start();
    let (harness, _) = real_gemini_harness(&gemini, &api);
    let id = "app-orchestrator-1";
    let status = |id: &str| {
        harness
            .sessions_json(&[])
            .into_iter()
            .find(|s| s["id"] == id)
            .map(|s| s["status"].as_str().unwrap_or_default().to_string())
            .filter(|s| s != "idle" || turn_over(&harness, id))
    };
    let output = harness.ao(&["orchestrator", "app"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(wait_until(Duration::from_secs(30), || status(id)
        .as_deref()
        == Some("idle")));
    // Its prompt ends with a newline, which Gemini CLI trims: it was typed in, submitted once.
    assert!(api.wait_for(Duration::from_secs(10), |requests| requests
        .iter()
        .any(|r| r.is_conversation())));
    let sent = prompts_sent(&api);
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
    assert!(
        started && !asked,
        "no unattended worker (asked: {asked}):\n{}",
        screen(&harness, id)
    );
    let record = std::fs::read_to_string(harness.record("app-1", false)).unwrap();
    assert!(record.contains("task: from the orchestrator"), "{record}");

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
        "a command other than ao-host ran unasked: {last:?}; screen:\n{}",
        screen(&harness, id)
    );
    assert!(!harness.worktree(id).join("not-allowed.txt").exists());
}
