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
//! PATH; otherwise it says it was skipped. Codex never sees the operator's `~/.codex`: the
//! plugin's `user_home` names an empty folder.

// Here only, so its own tests run once, not in every test binary.
#[path = "support/responses_api.rs"]
mod responses_api;
#[path = "support/standin_http.rs"]
mod standin_http;
mod support;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use responses_api::{user_texts, ResponsesApi, ResponsesRequest};
use support::{stderr, wait_until, Harness};

fn codex_cli() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AO_TEST_CODEX").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("codex"))
        .find(|path| path.is_file())
}

/// The fake-agent harness with the codex plugin installed and made the default agent, pointed
/// at the real CLI and the stand-in.
fn real_codex_harness(codex: &Path, api: &ResponsesApi) -> Harness {
    let harness = Harness::new(&[], "");
    support::install(
        &support::build_workspace_plugin("ao-agent-codex"),
        &harness.plugin_dir(),
        None,
    );
    let user_home = harness.home().join("operator-codex-home");
    harness.edit_config(|config| {
        let codex_settings = format!(
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
        config
            .replace("projects:\n", &format!("{codex_settings}projects:\n"))
            .replace(
                "defaults: { ready_timeout_ms: 10000 }",
                "defaults: { ready_timeout_ms: 60000, agent: codex }",
            )
            .replace(
                "default_branch: main }",
                "default_branch: main, agent_config: { approval_policy: on-request } }",
            )
    });
    harness
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
        last["status"] == status
    });
    assert!(
        reached,
        "never {status}: {last:#}\nits screen:\n{}",
        screen(harness, id)
    );
    last
}

fn screen(harness: &Harness, id: &str) -> String {
    let target = format!("={}:", harness.tmux_session(id));
    harness
        .tmux
        .tmux(&["capture-pane", "-p", "-J", "-S", "-60", "-t", &target])
        .1
}

/// The user texts of each conversation request, in order.
fn prompts_sent(api: &ResponsesApi) -> Vec<Vec<String>> {
    api.conversation_requests()
        .iter()
        .map(|request| user_texts(&request.body))
        .collect()
}

/// Every live process whose environment names `needle` (`CODEX_HOME=<the session's home>`):
/// the agent and anything it started, in its process group or not.
fn processes_with_env(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z'))
            });
            !zombie
                && environ
                    .split(|b| *b == 0)
                    .any(|var| var == needle.as_bytes())
        })
        .collect()
}

/// Process ids of the pane's process group (the agent's, as tmux started it).
fn pane_group(harness: &Harness, id: &str) -> (u32, Vec<u32>) {
    let target = format!("={}:", harness.tmux_session(id));
    let pid: u32 = harness
        .tmux
        .tmux(&["display-message", "-p", "-t", &target, "#{pane_pid}"])
        .1
        .trim()
        .parse()
        .expect("the pane's pid");
    let group = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')')
            .next()?
            .split_whitespace()
            .nth(2)?
            .parse()
            .ok()
    };
    let pgid = group(pid).expect("the pane's process group");
    let members = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| group(*pid) == Some(pgid))
        .collect();
    (pgid, members)
}

#[test]
fn the_real_codex_cli_through_whole_turns_an_approval_a_restore_and_a_kill() {
    let Some(codex) = codex_cli() else {
        eprintln!("skipped: no Codex CLI (set AO_TEST_CODEX or put `codex` on PATH)");
        return;
    };
    let api = ResponsesApi::start();
    let harness = real_codex_harness(&codex, &api);

    // Everything a terminal's input box or a shell would change, and a slow reply.
    // Codex turns a carriage return into a line feed wherever the prompt comes from (argument or
    // paste), so the task has none; one that has is refused below.
    let task = "\tfix the Makefile:\n\tcc -o app app.c\n  \"quoted\" 'single' $(rm -rf /) `tick`\nünïcødé 🎉\n-not an option\nAO_SLOW:4000\n";
    let output = harness.ao(&["spawn", "app", "--task", task]);
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

    // An approval prompt: waiting, with the command; approved, the command runs.
    harness.ok(&[
        "send",
        "app-1",
        "now run this\nAO_TOOL:echo granted > approved.txt",
    ]);
    let waiting = wait_for_status(&harness, "app-1", "waiting_input", Duration::from_secs(30));
    let question = waiting["waiting_for"].as_str().unwrap_or_default();
    assert_eq!(question, "Bash: echo granted > approved.txt", "{waiting:#}");
    assert!(
        wait_until(Duration::from_secs(10), || screen(&harness, "app-1")
            .contains("Press enter to confirm")),
        "{}",
        screen(&harness, "app-1")
    );
    let target = format!("={}:", harness.tmux_session("app-1"));
    harness.tmux.tmux(&["send-keys", "-t", &target, "Enter"]);
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
    assert!(
        wait_until(Duration::from_secs(10), || screen(&harness, "app-1")
            .contains("Press enter to confirm")),
        "{}",
        screen(&harness, "app-1")
    );
    harness.tmux.tmux(&["send-keys", "-t", &target, "Escape"]);
    wait_for_status(&harness, "app-1", "idle", Duration::from_secs(15));
    assert!(!harness.worktree("app-1").join("refused.txt").exists());

    // The runtime dies with everything in it; the session is exited, and comes back with its
    // conversation.
    harness.tmux.tmux(&["kill-server"]);
    wait_for_status(&harness, "app-1", "exited", Duration::from_secs(10));
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

    // A kill leaves nothing of the agent: not its process group, nor anything that carries the
    // session's CODEX_HOME (a daemon would, outside the group).
    let home = harness
        .data_dir()
        .canonicalize()
        .unwrap()
        .join("codex/sessions/app-1/home");
    let needle = format!("CODEX_HOME={}", home.display());
    let (pgid, members) = pane_group(&harness, "app-1");
    let agents = processes_with_env(&needle);
    assert!(!agents.is_empty(), "no process carries {needle}");
    harness.ok(&["session", "kill", "app-1", "--force"]);
    let gone = wait_until(Duration::from_secs(10), || {
        processes_with_env(&needle).is_empty()
            && members
                .iter()
                .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    });
    assert!(
        gone,
        "left behind: group {pgid} {members:?}, with the session's home: {:?}",
        processes_with_env(&needle)
    );

    // A task Codex cannot take byte-exact fails its spawn, naming the difference.
    let output = harness.ao(&["spawn", "app", "--task", "one\r\ntwo"]);
    assert!(
        !output.status.success() && stderr(&output).contains("received its task altered"),
        "{}",
        stderr(&output)
    );
}

/// The orchestrator, with the real CLI, runs `ao-host` with nobody answering a prompt; any other
/// command still asks.
#[test]
fn the_real_codex_orchestrator_starts_a_worker_unattended_and_still_asks_for_anything_else() {
    let Some(codex) = codex_cli() else {
        eprintln!("skipped: no Codex CLI (set AO_TEST_CODEX or put `codex` on PATH)");
        return;
    };
    let api = ResponsesApi::start();
    let harness = real_codex_harness(&codex, &api);
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
