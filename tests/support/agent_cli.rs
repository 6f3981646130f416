//! What the tests of the real agent CLIs (`tests/e2e/real_*.rs`) share: finding the CLI, a harness
//! with an agent plugin, a session's status and screen, what the model was sent, the
//! orchestrator's scenario, and what `/proc` says of the agent's processes.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{standin_http::StandInApi, stderr, wait_until, Harness};

/// The CLI `program` of the agent called `name`: `$AO_TEST_<PROGRAM>` when set, else `program`
/// on PATH; when neither, the test skips, or fails under CI ([`crate::require_program`]).
pub fn find_cli(program: &str, name: &str) -> Option<PathBuf> {
    let variable = format!("AO_TEST_{}", program.to_ascii_uppercase());
    let found = std::env::var_os(&variable)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join(program))
                .find(|path| path.is_file())
        });
    let missing = format!(
        "no {name} CLI: set {variable} or put `{program}` on PATH (`.ci/run` installs it from npm)"
    );
    if !crate::require_program(found.is_none().then_some(missing)) {
        return None;
    }
    found
}

/// The fake-agent harness with the workspace's agent plugin `package` installed beside the
/// first-party ones.
pub fn harness_with_plugin(package: &'static str) -> Harness {
    let harness = Harness::new(&[], "");
    crate::install(
        &crate::build_workspace_plugin(package),
        &harness.plugin_dir(),
        None,
    );
    harness
}

/// Makes `agent` the harness's default agent: `settings` (its plugin's lines under
/// `plugins.config`), a ready timeout of `ready_timeout_ms` (a real CLI takes seconds to start),
/// and `agent_config` (entries of a YAML flow mapping) for the project `app`.
pub fn use_agent(
    harness: &Harness,
    agent: &str,
    settings: &str,
    ready_timeout_ms: u32,
    agent_config: &str,
) {
    harness.edit_config(&[
        ("projects:\n", &format!("{settings}projects:\n")),
        (
            "defaults: { ready_timeout_ms: 10000 }",
            &format!("defaults: {{ ready_timeout_ms: {ready_timeout_ms}, agent: {agent} }}"),
        ),
        (
            "default_branch: main }",
            &format!("default_branch: main, agent_config: {{ {agent_config} }} }}"),
        ),
    ]);
}

/// The tmux target of session `id`'s pane.
pub fn pane(harness: &Harness, id: &str) -> String {
    format!("={}:", harness.tmux_session(id))
}

/// Presses `key` in session `id`'s pane, as an operator would.
pub fn press(harness: &Harness, id: &str, key: &str) {
    harness
        .tmux
        .tmux(&["send-keys", "-t", &pane(harness, id), key]);
}

/// Session `id`'s screen with some history (wrapped lines joined), for failure messages.
pub fn screen(harness: &Harness, id: &str) -> String {
    harness
        .tmux
        .tmux(&[
            "capture-pane",
            "-p",
            "-J",
            "-S",
            "-60",
            "-t",
            &pane(harness, id),
        ])
        .1
}

/// Session `id`'s screen as it is now, without history.
pub fn visible_screen(harness: &Harness, id: &str) -> String {
    harness
        .tmux
        .tmux(&["capture-pane", "-p", "-t", &pane(harness, id)])
        .1
}

/// Waits up to 10 s for `screen` of session `id` to show `text`: the agent reports a prompt
/// before it draws it, and an operator answers what they see.
pub fn wait_for_screen(
    harness: &Harness,
    id: &str,
    screen: fn(&Harness, &str) -> String,
    text: &str,
) {
    assert!(
        wait_until(Duration::from_secs(10), || screen(harness, id)
            .contains(text)),
        "{}",
        screen(harness, id)
    );
}

/// Session `id` as `session ls --json` lists it.
pub fn status_of(harness: &Harness, id: &str) -> serde_json::Value {
    harness
        .sessions_json(&[])
        .into_iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} listed"))
}

/// Session `id`'s status, if it is listed.
pub fn listed_status(harness: &Harness, id: &str) -> Option<String> {
    harness
        .sessions_json(&[])
        .into_iter()
        .find(|s| s["id"] == id)
        .map(|s| s["status"].as_str().unwrap_or_default().to_string())
}

/// Waits for session `id` to be listed with `status`; returns it as listed.
pub fn wait_for_status(
    harness: &Harness,
    id: &str,
    status: &str,
    within: Duration,
) -> serde_json::Value {
    wait_for_status_and(harness, id, status, within, || true)
}

/// Waits for session `id` to be listed with `status` and for `also` to hold then; returns it as
/// listed.
pub fn wait_for_status_and(
    harness: &Harness,
    id: &str,
    status: &str,
    within: Duration,
    also: impl Fn() -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let reached = wait_until(within, || {
        last = status_of(harness, id);
        last["status"] == status && also()
    });
    assert!(
        reached,
        "never {status}: {last:#}\nits screen:\n{}",
        screen(harness, id)
    );
    last
}

/// The task reached the model byte-exact, as the last user text of the first conversation
/// request, and no request carries it twice.
pub fn assert_task_reached_the_model_once(sent: &[Vec<String>], task: &str) {
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
}

/// A spawn with `task` fails, its error saying `why`.
pub fn assert_spawn_refused(harness: &Harness, task: &str, why: &str) {
    let output = harness.ao(&["spawn", "app", "--task", task]);
    assert!(
        !output.status.success() && stderr(&output).contains(why),
        "{}",
        stderr(&output)
    );
}

/// `session restore` of `id` succeeds.
pub fn restore(harness: &Harness, id: &str) {
    let output = harness.ao(&["session", "restore", id]);
    assert!(
        output.status.success(),
        "restore failed: {}",
        stderr(&output)
    );
}

/// Sends `text` to session `id` (just restored) and waits for the conversation request it
/// makes; returns the user texts of that request, the earlier turns' included. A restored CLI
/// loads its providers again before that first request: OpenCode took 36 s on a loaded machine.
pub fn ask_after_restore(
    harness: &Harness,
    api: &impl StandInApi,
    id: &str,
    text: &str,
) -> Vec<String> {
    let before = api.conversation_requests().len();
    harness.ok(&["send", id, text]);
    assert!(
        api.wait_for_more_conversation_requests(before, Duration::from_secs(120)),
        "no request after the restore:\n{}",
        screen(harness, id)
    );
    api.prompts_sent().pop().unwrap()
}

/// The orchestrator, with the real CLI, runs `ao-host` with nobody answering a prompt; any other
/// command still asks. `status` is an orchestrator's or worker's status as the test trusts it
/// (see [`listed_status`]); `started` checks the orchestrator once it is first idle.
pub fn orchestrator_starts_a_worker_unattended_and_still_asks_for_anything_else(
    harness: &Harness,
    status: impl Fn(&str) -> Option<String>,
    started: impl FnOnce(&str),
) {
    let id = "app-orchestrator-1";
    let output = harness.ao(&["orchestrator", "app"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(wait_until(Duration::from_secs(30), || status(id)
        .as_deref()
        == Some("idle")));
    started(id);

    harness.ok(&[
        "send",
        id,
        "start one worker\nAO_TOOL:ao-host spawn app --task 'from the orchestrator'",
    ]);
    let mut asked = false;
    let worker = wait_until(Duration::from_secs(60), || {
        asked |= status(id).as_deref() == Some("waiting_input");
        status("app-1").is_some()
    });
    assert!(
        worker && !asked,
        "no unattended worker (asked: {asked}):\n{}",
        screen(harness, id)
    );
    let record = std::fs::read_to_string(harness.record("app-1", false)).unwrap();
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
        screen(harness, id)
    );
    assert!(!harness.worktree(id).join("not-allowed.txt").exists());
}

/// `<variable>=<the home the plugin made for session id>`, which the agent and everything it
/// starts carry in their environment.
pub fn session_home_variable(harness: &Harness, variable: &str, plugin: &str, id: &str) -> String {
    let home = harness
        .data_dir()
        .canonicalize()
        .unwrap()
        .join(format!("{plugin}/sessions/{id}/home"));
    format!("{variable}={}", home.display())
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces and
/// parentheses): state, parent, process group, session, ….
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat[stat.rfind(')')? + 1..]
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    )
}

fn pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// Live processes (zombies aside) whose environment holds `variable` exactly: the agent and
/// whatever it started, whichever process group or session they are in.
pub fn processes_with_env(variable: &str) -> Vec<u32> {
    pids()
        .into_iter()
        .filter(|pid| {
            let live =
                stat_fields(*pid).is_some_and(|fields| fields.first().is_some_and(|s| s != "Z"));
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            live && environ.split(|b| *b == 0).any(|v| v == variable.as_bytes())
        })
        .collect()
}

/// The pid of session `id`'s pane's first process (the agent, as tmux started it).
pub fn pane_pid(harness: &Harness, id: &str) -> u32 {
    let (ok, pid) = harness.tmux.tmux(&[
        "display-message",
        "-p",
        "-t",
        &pane(harness, id),
        "#{pane_pid}",
    ]);
    assert!(ok, "no pane for {id}");
    pid.trim().parse().expect("the pane's pid")
}

/// The pane's process group (tmux makes the agent a group leader) and its members.
pub fn pane_group(harness: &Harness, id: &str) -> (u32, Vec<u32>) {
    let group_of = |pid: u32| -> Option<u32> { stat_fields(pid)?.get(2)?.parse().ok() };
    let group = group_of(pane_pid(harness, id)).expect("the pane's process group");
    let members = pids()
        .into_iter()
        .filter(|pid| group_of(*pid) == Some(group))
        .collect();
    (group, members)
}

/// What `/proc` says of every process: pid → (parent, session id, command line).
pub fn process_table() -> BTreeMap<u32, (u32, u32, String)> {
    pids()
        .into_iter()
        .filter_map(|pid| {
            let fields = stat_fields(pid)?;
            let parent = fields.get(1)?.parse().ok()?;
            let session = fields.get(3)?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            Some((pid, (parent, session, cmdline)))
        })
        .collect()
}

/// Session `id`'s processes: everything below the pane's first process, and everything in the
/// sessions those are in (an agent may start a command in a session of its own, and the
/// command leave a process behind in it), with their command lines.
pub fn agent_processes(harness: &Harness, id: &str) -> BTreeMap<u32, String> {
    let table = process_table();
    let mut below = BTreeSet::from([pane_pid(harness, id)]);
    loop {
        let more: Vec<u32> = table
            .iter()
            .filter(|(pid, (parent, _, _))| below.contains(parent) && !below.contains(pid))
            .map(|(pid, _)| *pid)
            .collect();
        if more.is_empty() {
            break;
        }
        below.extend(more);
    }
    let sessions: BTreeSet<u32> = below
        .iter()
        .filter_map(|pid| table.get(pid))
        .map(|p| p.1)
        .collect();
    table
        .into_iter()
        .filter(|(pid, (_, session, _))| below.contains(pid) || sessions.contains(session))
        .map(|(pid, (_, _, cmdline))| (pid, cmdline))
        .collect()
}

/// A kill of session `id` leaves nothing of the agent: not its pane's process group, nor
/// anything carrying `variable` (see [`session_home_variable`]), which a daemon or a command
/// in a terminal of its own would, outside the group.
pub fn assert_kill_leaves_nothing(harness: &Harness, id: &str, variable: &str) {
    let (pgid, members) = pane_group(harness, id);
    assert!(
        !processes_with_env(variable).is_empty(),
        "no process carries {variable}"
    );
    harness.ok(&["session", "kill", id, "--force"]);
    let gone = wait_until(Duration::from_secs(10), || {
        processes_with_env(variable).is_empty()
            && members
                .iter()
                .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    });
    assert!(
        gone,
        "left behind: group {pgid} {members:?}, with the session's home: {:?}",
        processes_with_env(variable)
    );
}
