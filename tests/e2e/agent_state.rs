//! Agent state from the agent itself, end to end: the first task given at launch and checked
//! byte-exact against the agent's own report, statuses from its hooks (`ao-host hook`),
//! notifications once per change, and `session restore` after the runtime died.
//!
//! The agent is the fake Claude Code CLI (`ao_plugin_test::fake_agent`), which runs the hooks of
//! the `--settings` file the claude-code plugin writes, as the real CLI does; `real_claude.rs`
//! does the same against the real CLI.

use std::{path::Path, process::Stdio, time::Duration};

use support::{fake_messages, fake_start, stderr, stdout, wait_until, Harness};

const TRICKY_TASK: &str =
    "\tindented with a tab\n  two spaces, \"double\" and 'single' quotes, $(touch pwned) `tick`\r\nünïcødé 🎉\n-dash\n";

/// The session's entry in `session ls --json`.
fn listed(harness: &Harness, id: &str) -> serde_json::Value {
    harness
        .sessions_json(&[])
        .into_iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed"))
}

/// Waits until `session ls` shows `id` with `status`, and returns its entry.
fn wait_for_status(harness: &Harness, id: &str, status: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let reached = wait_until(Duration::from_secs(10), || {
        last = listed(harness, id);
        last["status"] == status
    });
    assert!(reached, "{id} never became {status}: {last:#}");
    last
}

/// A notify command that appends `EVENT SESSION MESSAGE` to a file, one line per run.
fn notify_log(harness: &Harness) -> std::path::PathBuf {
    let log = harness.home().join("notified.log");
    let script = harness.home().join("notify.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s %s %s\\n' \"$AO_EVENT\" \"$AO_SESSION\" \"$AO_MESSAGE\" >> {:?}\n",
            log.display().to_string()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    harness.append_config(&format!(
        "notify: {{ command: [{:?}], on: [waiting_input, idle, exited] }}\n",
        script.display().to_string()
    ));
    log
}

fn notified(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_task_given_at_launch_arrives_byte_exact_once_and_the_status_follows_the_agents_events() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", TRICKY_TASK]);
    let log = harness.log_dir().join("app-1");
    assert_eq!(
        fake_messages(&log),
        [TRICKY_TASK],
        "delivered once, byte-exact"
    );

    // Given on the command line, after `--`, with the session's own hook settings and a
    // conversation id chosen at spawn.
    let argv: Vec<String> = serde_json::from_value(fake_start(&log)["argv"].clone()).unwrap();
    assert_eq!(argv.last().unwrap(), TRICKY_TASK);
    assert_eq!(argv[argv.len() - 2], "--");
    let option = |name: &str| {
        let at = argv
            .iter()
            .position(|a| a == name)
            .unwrap_or_else(|| panic!("no {name}: {argv:?}"));
        argv[at + 1].clone()
    };
    let settings = option("--settings");
    assert!(settings.starts_with(
        &harness
            .data_dir()
            .canonicalize()
            .unwrap()
            .display()
            .to_string()
    ));
    let conversation = option("--session-id");
    let session = wait_for_status(&harness, "app-1", "idle");
    assert_eq!(session["conversation_id"], conversation.as_str());
    assert_eq!(session["reports_events"], true);
    assert!(session["activity_at"].as_u64().unwrap() >= session["created_at"].as_u64().unwrap());

    // A later message is typed in, and reported the same way.
    harness.ok(&["send", "app-1", "second message"]);
    wait_for_status(&harness, "app-1", "idle");
    assert_eq!(fake_messages(&log), [TRICKY_TASK, "second message"]);
}

#[test]
fn a_task_the_agent_reports_altered_fails_the_spawn_with_the_difference_and_leaves_nothing() {
    let harness = Harness::new(&[("FAKE_AGENT_ALTER_PROMPT", "1")], "");
    let output = harness.ao(&["spawn", "app", "--task", "make:\n\tcc -o app app.c\n"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("received its task altered") && err.contains("first difference at byte 6"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    harness.assert_nothing_left("app-1");
    assert!(
        !harness.data_dir().join("locks/app/app-1.lock").exists(),
        "the spawn undone left its lock file"
    );
}

#[test]
fn a_permission_prompt_is_waiting_input_with_its_question_until_it_is_answered() {
    let harness = Harness::new(&[("FAKE_AGENT_ASK_PERMISSION", "1")], "");
    let log = notify_log(&harness);
    harness.ok(&["spawn", "app", "--task", "run it"]);
    let session = wait_for_status(&harness, "app-1", "waiting_input");
    assert_eq!(session["waiting_for"], "Bash: touch approved");
    let table = stdout(&harness.ok(&["session", "ls"]));
    assert!(table.contains("asks: Bash: touch approved"), "{table}");

    // Granted: the tool runs, the turn ends.
    let target = format!("={}:", harness.tmux_session("app-1"));
    harness.tmux.tmux(&["send-keys", "-t", &target, "Enter"]);
    let session = wait_for_status(&harness, "app-1", "idle");
    assert!(session["waiting_for"].is_null());

    // Refused: the agent fires no event at all; the screen shows it is no longer asking.
    harness.ok(&["send", "app-1", "again"]);
    wait_for_status(&harness, "app-1", "waiting_input");
    harness.tmux.tmux(&["send-keys", "-t", &target, "Down"]);
    harness.tmux.tmux(&["send-keys", "-t", &target, "Enter"]);
    wait_for_status(&harness, "app-1", "idle");

    // Each change notified once: waiting, idle, waiting, idle.
    let expected = 4;
    assert!(
        wait_until(Duration::from_secs(5), || notified(&log).len() >= expected),
        "{:?}",
        notified(&log)
    );
    std::thread::sleep(Duration::from_millis(300));
    let lines = notified(&log);
    let events: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        events,
        ["waiting_input", "idle", "waiting_input", "idle"],
        "{lines:?}"
    );
    assert_eq!(
        lines[0],
        "waiting_input app-1 app-1 is waiting for you: Bash: touch approved"
    );
}

#[test]
fn after_the_runtime_dies_the_session_is_exited_once_and_restore_resumes_its_conversation() {
    let harness = Harness::new(&[], "");
    let log = notify_log(&harness);
    harness.ok(&["spawn", "app", "--task", "first turn"]);
    let conversation = wait_for_status(&harness, "app-1", "idle")["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let agent_log = harness.log_dir().join("app-1");
    let first_env = fake_start(&agent_log)["env"].clone();

    harness.tmux.tmux(&["kill-server"]);
    // Many listings at once see it gone; it is notified once.
    let listings: Vec<_> = (0..4)
        .map(|_| {
            harness
                .command(&["session", "ls", "--json"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for listing in listings {
        assert!(listing.wait_with_output().unwrap().status.success());
    }
    wait_for_status(&harness, "app-1", "exited");
    // gc keeps a restorable session's worktree.
    harness.ok(&["gc"]);
    assert!(harness.worktree("app-1").exists());
    assert!(wait_until(Duration::from_secs(5), || notified(&log)
        .iter()
        .any(|l| l.starts_with("exited app-1"))));
    std::thread::sleep(Duration::from_millis(300));
    let exits = notified(&log)
        .iter()
        .filter(|l| l.starts_with("exited"))
        .count();
    assert_eq!(exits, 1, "{:?}", notified(&log));

    // The agent gets the environment of the `ao-host` that restores it, not that of the tmux
    // server it lands on, started meanwhile with another value.
    harness
        .tmux
        .start_with_env(&[("MYKEY", "from-the-tmux-server")]);
    let out = harness
        .command(&["session", "restore", "app-1", "--json"])
        .env("MYKEY", "from-the-restore")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(restored["id"], "app-1");
    assert_eq!(restored["conversation_id"], conversation.as_str());
    wait_for_status(&harness, "app-1", "idle");
    let start = fake_start(&agent_log);
    let argv: Vec<String> = serde_json::from_value(start["argv"].clone()).unwrap();
    let resume = argv.iter().position(|a| a == "--resume").expect("resumed");
    assert_eq!(argv[resume + 1], conversation);
    assert!(
        !argv.contains(&"--".to_string()),
        "no first message again: {argv:?}"
    );
    assert_eq!(
        start["cwd"],
        harness
            .worktree("app-1")
            .canonicalize()
            .unwrap()
            .display()
            .to_string()
    );
    assert_eq!(start["env"]["MYKEY"], "from-the-restore");
    for var in [
        "AO_SESSION",
        "AO_PROJECT_ID",
        "AO_DATA_DIR",
        "AO_CALLER_TYPE",
        "AO_CONFIG_PATH",
    ] {
        assert_eq!(start["env"][var], first_env[var], "{var}");
    }

    // Running again: nothing to restore.
    let output = harness.ao(&["session", "restore", "app-1"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("still running"),
        "{}",
        stderr(&output)
    );
    let output = harness.ok(&["session", "restore", "--all"]);
    assert!(
        stderr(&output).contains("no exited sessions"),
        "{}",
        stderr(&output)
    );
    harness.ok(&["send", "app-1", "after restore"]);
    assert!(wait_until(Duration::from_secs(5), || fake_messages(
        &agent_log
    )
    .contains(&"after restore".to_string())));
}

#[test]
fn restore_refuses_what_it_cannot_resume_and_says_why() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "one"]);
    harness.ok(&["spawn", "app", "--task", "two"]);
    wait_for_status(&harness, "app-2", "idle");
    harness.tmux.tmux(&["kill-server"]);
    wait_for_status(&harness, "app-1", "exited");
    // One has lost its worktree, one has no conversation id (an older agent plugin).
    std::fs::remove_dir_all(harness.worktree("app-1")).unwrap();
    let record = harness.record("app-2", false);
    let text = std::fs::read_to_string(&record).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("conversation_id:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&record, text).unwrap();

    let output = harness.ao(&["session", "restore", "app-1"]);
    assert!(
        stderr(&output).contains("workspace") && stderr(&output).contains("is gone"),
        "{}",
        stderr(&output)
    );
    let output = harness.ao(&["session", "restore", "app-2"]);
    assert!(
        stderr(&output).contains("nothing to resume"),
        "{}",
        stderr(&output)
    );
    let output = harness.ao(&["session", "restore", "nope-1"]);
    assert!(
        stderr(&output).contains("no session `nope-1`"),
        "{}",
        stderr(&output)
    );
    // --all restores what it can and fails for the rest.
    let output = harness.ao(&["session", "restore", "--all", "--json"]);
    assert!(!output.status.success());
    let outcomes: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcomes.as_array().unwrap().len(), 1, "{outcomes:#}");
    assert_eq!(outcomes[0]["outcome"], "failed");
    assert!(
        harness.tmux.sessions().is_empty(),
        "a failed restore leaves no runtime"
    );
}

/// Runs `ao-host <args>` (split on spaces) with `input` on stdin, as an agent's hook does, and
/// checks what every hook run must do: read all of stdin, print nothing on stdout, exit 0.
/// Returns its stderr.
fn hook(harness: &Harness, args: &str, input: Vec<u8>) -> String {
    let args = args.replace("DATA", &harness.data_dir().display().to_string());
    let args: Vec<&str> = args.split(' ').collect();
    let mut child = support::ao_host(harness.home())
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let output = child.wait_with_output().unwrap();
    writer
        .join()
        .unwrap()
        .expect("the whole event is read, never a broken pipe");
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    assert!(output.stdout.is_empty(), "{args:?} printed on stdout");
    stderr(&output)
}

fn state_of(harness: &Harness, id: &str) -> serde_json::Value {
    let path = harness
        .data_dir()
        .join("agent-state")
        .join("app")
        .join(id)
        .join("state.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_hook_never_fails_the_agent_whatever_it_is_given() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "x"]);
    wait_for_status(&harness, "app-1", "idle");
    let before = state_of(&harness, "app-1");
    let refused = [
        // No data dir, a hostile project or session, what a newer plugin might pass.
        "hook --project app --session app-1 --status working",
        "--data-dir DATA hook --project ../x --session app-1 --status working",
        "--data-dir DATA hook --project app --session -rf --status working",
        "--data-dir DATA hook --project app --session app-1 --status compacting",
        "-v --data-dir DATA hook --project app --session app-1 --status working --new-option x",
        "--data-dir DATA hook --help",
    ];
    for args in refused {
        let err = hook(&harness, args, b"{}".to_vec());
        assert!(!err.is_empty(), "{args} said nothing about the problem");
    }
    assert_eq!(
        state_of(&harness, "app-1"),
        before,
        "no refused event was recorded"
    );

    // A garbled or oversized event still says what it means; its details are lost.
    let garbled = "--data-dir DATA hook --project app --session app-1 --status waiting_input --waiting-for-field message --prompt-field prompt";
    for input in [b"not json \xff".to_vec(), vec![b' '; 7 * 1024 * 1024]] {
        assert!(!hook(&harness, garbled, input).is_empty());
        let state = state_of(&harness, "app-1");
        assert_eq!(state["status"], "waiting_input");
        assert!(state["waiting_for"].is_null());
        assert_eq!(state["prompts"], before["prompts"], "no prompt made up");
        hook(
            &harness,
            "--data-dir DATA hook --project app --session app-1 --status idle",
            b"{}".to_vec(),
        );
    }
    // A lone UTF-16 surrogate (JSON.stringify of a cut emoji) costs only that character.
    hook(
        &harness,
        garbled,
        br#"{"message": "rm \ud83d and \ud83c\udf89"}"#.to_vec(),
    );
    assert_eq!(
        state_of(&harness, "app-1")["waiting_for"],
        "rm \u{fffd} and 🎉"
    );

    // `--unless`: the event means nothing when a field holds that value.
    hook(
        &harness,
        "--data-dir DATA hook --project app --session app-1 --status idle",
        b"{}".to_vec(),
    );
    let unless =
        "--data-dir DATA hook --project app --session app-1 --status exited --unless reason=clear";
    hook(&harness, unless, br#"{"reason": "clear"}"#.to_vec());
    assert_eq!(state_of(&harness, "app-1")["status"], "idle");
    hook(&harness, unless, br#"{"reason": "other"}"#.to_vec());
    assert_eq!(state_of(&harness, "app-1")["status"], "exited");

    // An event for a session this data dir does not know creates nothing.
    hook(
        &harness,
        "--data-dir DATA hook --project app --session app-9 --status idle",
        Vec::new(),
    );
    assert!(!harness
        .data_dir()
        .join("agent-state")
        .join("app")
        .join("app-9")
        .exists());
}

#[test]
fn send_refuses_while_the_agent_waits_for_an_answer_and_types_nothing() {
    let harness = Harness::new(&[("FAKE_AGENT_ASK_PERMISSION", "1")], "");
    harness.ok(&["spawn", "app", "--task", "do it"]);
    wait_for_status(&harness, "app-1", "waiting_input");
    // At once (reported, perhaps not drawn yet) and later (on screen).
    for pause in [0, 2500] {
        std::thread::sleep(Duration::from_millis(pause));
        let output = harness.ao(&["send", "app-1", "please stop, do NOT run that"]);
        assert!(!output.status.success(), "a message was sent into a prompt");
        let err = stderr(&output);
        assert!(
            err.contains("waiting for an answer") && err.contains("nothing was sent"),
            "{err}"
        );
        assert_eq!(listed(&harness, "app-1")["status"], "waiting_input");
    }
    assert_eq!(fake_messages(&harness.log_dir().join("app-1")), ["do it"]);
    assert!(
        !harness.worktree("app-1").join("approved").exists(),
        "the prompt was answered"
    );
}

#[test]
fn a_session_whose_hooks_run_a_program_that_is_gone_is_read_from_its_screen_and_says_why() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "x"]);
    wait_for_status(&harness, "app-1", "idle");
    let path = harness
        .data_dir()
        .join("agent-state")
        .join("app")
        .join("app-1")
        .join("state.json");
    let mut state = state_of(&harness, "app-1");
    // As if the ao-host its hooks run had been moved, and the agent's last report was stale.
    state["program"] = "/nonexistent/ao-host".into();
    state["status"] = "waiting_input".into();
    std::fs::write(&path, state.to_string()).unwrap();
    let session = listed(&harness, "app-1");
    assert_eq!(
        session["status"], "idle",
        "read from the screen: {session:#}"
    );
    assert!(
        session["note"]
            .as_str()
            .unwrap_or_default()
            .contains("/nonexistent/ao-host, which is gone"),
        "{session:#}"
    );
}

/// As under a managed `disableAllHooks` policy: the agent takes its task from its command line
/// but reports nothing. The spawn confirms the task from the screen instead of failing after
/// `ready_timeout_ms`, never sends it again, and says why once.
#[test]
fn an_agent_whose_hooks_never_run_has_its_task_confirmed_from_its_screen_once_and_says_why() {
    let harness = Harness::new(&[("FAKE_AGENT_NO_HOOKS", "1")], "");
    let output = harness.ao(&["spawn", "app", "--task", TRICKY_TASK]);
    assert!(output.status.success(), "{}", stderr(&output));
    let said = stderr(&output);
    assert!(
        said.contains("note: its agent reported no event") && said.contains("disableAllHooks"),
        "{said}"
    );
    assert_eq!(
        fake_messages(&harness.log_dir().join("app-1")),
        [TRICKY_TASK],
        "delivered once, byte-exact"
    );
    let session = wait_for_status(&harness, "app-1", "idle");
    assert_eq!(session["status_from_screen"], true, "{session:#}");
    let note = session["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("confirmed on its screen") && note.contains("Claude Code ran no hooks"),
        "{session:#}"
    );
    // Still read from the screen while it works on the next message.
    harness.ok(&["send", "app-1", "second message"]);
    wait_for_status(&harness, "app-1", "idle");
    assert_eq!(
        fake_messages(&harness.log_dir().join("app-1")),
        [TRICKY_TASK, "second message"]
    );
}

/// An agent without hooks whose first step asks permission for a tool: the question, which no
/// agent asks before it has a message, is proof enough; the agent is not killed for it.
#[test]
fn an_agent_without_hooks_asking_permission_for_its_task_keeps_it() {
    let harness = Harness::new(
        &[
            ("FAKE_AGENT_NO_HOOKS", "1"),
            ("FAKE_AGENT_ASK_PERMISSION", "1"),
            ("FAKE_AGENT_NO_ECHO", "1"),
        ],
        "",
    );
    harness.edit_config(&[("ready_timeout_ms: 10000", "ready_timeout_ms: 8000")]);
    let output = harness.ao(&["spawn", "app", "--task", "needs a tool"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        fake_messages(&harness.log_dir().join("app-1")),
        ["needs a tool"]
    );
    let session = wait_for_status(&harness, "app-1", "waiting_input");
    assert_eq!(session["status_from_screen"], true, "{session:#}");
}

/// A hook that runs but cannot record its event: the spawn names the hook's own error, not
/// only the report it never got.
#[test]
fn a_hook_that_cannot_record_its_event_is_named_with_its_own_error() {
    let harness = Harness::new(&[("FAKE_AGENT_CORRUPT_STATE", "1")], "");
    let output = harness.ao(&["spawn", "app", "--task", "x"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let session = listed(&harness, "app-1");
    let note = session["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("its hook failed: recording the agent's event")
            && note.contains("app-1/state.json"),
        "{session:#}"
    );
    assert_eq!(session["status_from_screen"], true, "{session:#}");
    assert_eq!(fake_messages(&harness.log_dir().join("app-1")), ["x"]);
}

/// The same failing hook, and a screen that never shows the task taken: the spawn fails, and
/// says the hook's error rather than only that no report came.
#[test]
fn a_spawn_that_fails_for_want_of_a_report_names_the_hooks_own_error() {
    let harness = Harness::new(
        &[
            ("FAKE_AGENT_CORRUPT_STATE", "1"),
            ("FAKE_AGENT_NO_ECHO", "1"),
        ],
        "",
    );
    harness.edit_config(&[("ready_timeout_ms: 10000", "ready_timeout_ms: 3000")]);
    let output = harness.ao(&["spawn", "app", "--task", "x"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains(
            "the agent's hook could not record that it took its task: recording the agent's event"
        ) && err.contains("app-1/state.json"),
        "{err}"
    );
    harness.assert_nothing_left("app-1");
}

/// `doctor` names a readable managed policy that stops the hooks, and what it costs.
#[test]
fn doctor_names_a_managed_policy_that_keeps_claude_code_from_running_hooks() {
    let harness = Harness::new(&[], "");
    let doctor = harness.command(&["doctor"]);
    let Some(output) = support::run_under_claude_policy(
        &harness.home().join("etc-overlay"),
        r#"{"allowManagedHooksOnly": true}"#,
        &doctor,
    ) else {
        return;
    };
    let said = stdout(&output);
    assert!(
        said.contains("FIX")
            && said.contains(
                "/etc/claude-code/managed-settings.json sets `allowManagedHooksOnly: true`"
            ),
        "{said}{}",
        stderr(&output)
    );
    // Outside the namespace, no such policy (on a machine that has none of its own).
    if !Path::new("/etc/claude-code").exists() {
        let said = stdout(&harness.ao(&["doctor"]));
        assert!(
            said.contains("no managed policy in /etc/claude-code forbids them"),
            "{said}"
        );
    }
}

#[test]
fn session_ls_marks_its_caller_refuses_an_unknown_project_and_names_a_linked_one() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "x"]);
    let caller_flag = |data_dir: &std::path::Path| {
        let output = harness
            .command(&["session", "ls", "--json"])
            .env("AO_SESSION", "app-1")
            .env("AO_DATA_DIR", data_dir)
            .output()
            .unwrap();
        let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        listed[0]["caller"].clone()
    };
    assert_eq!(caller_flag(&harness.data_dir()), true);
    // Another data dir's `app-1` is not the caller.
    let other = harness.home().join("other-data");
    std::fs::create_dir_all(&other).unwrap();
    assert_eq!(caller_flag(&other), false);

    let output = harness.ao(&["session", "ls", "apq"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no project `apq`"),
        "{}",
        stderr(&output)
    );
    harness.ok(&["session", "ls", "app"]);

    // A project whose records folder is a planted link is named with the fix, not taken for a
    // typo, and not followed.
    let sessions = harness.data_dir().join("sessions");
    std::os::unix::fs::symlink(sessions.join("app"), sessions.join("linked")).unwrap();
    let output = harness.ao(&["session", "ls", "linked", "--json"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("is a symbolic link where ao-host keeps records")
            && !stderr(&output).contains("no project"),
        "{}",
        stderr(&output)
    );
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed, serde_json::json!([]));
}

#[test]
fn the_exited_notification_outlives_the_agent_whose_pane_closed() {
    let harness = Harness::new(&[], "");
    // Still running well after the agent and its pane are gone.
    let done = harness.home().join("notified-late");
    let script = harness.home().join("slow-notify.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nsleep 1\nprintf '%s\\n' \"$AO_EVENT\" >> {:?}\n",
            done.display().to_string()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    harness.append_config(&format!(
        "notify: {{ command: [{:?}], on: [exited] }}\n",
        script.display().to_string()
    ));
    harness.ok(&["spawn", "app", "--task", "x"]);
    wait_for_status(&harness, "app-1", "idle");
    // The pane closes (SIGHUP): the agent reports `exited` from its hook and exits.
    let target = format!("={}", harness.tmux_session("app-1"));
    harness.tmux.tmux(&["kill-session", "-t", &target]);
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(&done)
            .is_ok_and(|text| text.lines().any(|l| l == "exited"))),
        "the notify command died with the agent's pane"
    );
}

#[test]
fn an_exited_event_from_an_agent_whose_pane_lives_is_checked_against_the_runtime() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "x"]);
    wait_for_status(&harness, "app-1", "idle");
    // An `exited` event (a `/clear` read as an end, a hook run by hand) while the agent runs.
    hook(
        &harness,
        "--data-dir DATA hook --project app --session app-1 --status exited",
        b"{}".to_vec(),
    );
    assert_eq!(state_of(&harness, "app-1")["status"], "exited");
    let session = listed(&harness, "app-1");
    assert_eq!(session["status"], "idle", "{session:#}");
    assert_eq!(
        state_of(&harness, "app-1")["status"],
        "idle",
        "what the listing saw is recorded"
    );
    let output = harness.ao(&["session", "restore", "app-1"]);
    assert!(
        stderr(&output).contains("still running"),
        "{}",
        stderr(&output)
    );
    harness.ok(&["send", "app-1", "still there"]);
    assert!(wait_until(Duration::from_secs(5), || fake_messages(
        &harness.log_dir().join("app-1")
    )
    .contains(&"still there".to_string())));
}

#[test]
fn a_kill_that_fails_keeps_the_agents_state_so_its_later_events_still_count() {
    let harness = Harness::new(&[], "");
    let log = notify_log(&harness);
    harness.ok(&["spawn", "app", "--task", "x"]);
    wait_for_status(&harness, "app-1", "idle");
    // The runtime cannot be reached from where the kill runs: its destroy fails.
    let elsewhere = harness.home().join("other-tmux-dir");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let output = harness
        .command(&["session", "kill", "app-1"])
        .env("TMUX_TMPDIR", &elsewhere)
        .output()
        .unwrap();
    assert!(!output.status.success(), "{}", stderr(&output));
    // As the agent's hooks run it: with the config, for its notifications.
    hook(
        &harness,
        &format!(
            "--config {} --data-dir DATA hook --project app --session app-1 --status waiting_input",
            harness.config_path().display()
        ),
        br#"{}"#.to_vec(),
    );
    assert_eq!(state_of(&harness, "app-1")["status"], "waiting_input");
    assert!(
        wait_until(Duration::from_secs(5), || notified(&log)
            .iter()
            .any(|l| l.starts_with("waiting_input app-1"))),
        "its events notify again: {:?}",
        notified(&log)
    );

    // A kill that succeeds forgets it, and the agent's last events notify nobody.
    harness.ok(&["session", "kill", "app-1"]);
    assert!(!harness
        .data_dir()
        .join("agent-state/app/app-1.json")
        .exists());
    harness.assert_no_sessions();
    assert!(
        !notified(&log).iter().any(|l| l.starts_with("exited")),
        "{:?}",
        notified(&log)
    );
}

#[test]
fn restore_refuses_a_worktree_its_moved_repository_no_longer_knows_and_says_how_to_repair_it() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "x"]);
    wait_for_status(&harness, "app-1", "idle");
    harness.tmux.tmux(&["kill-server"]);
    wait_for_status(&harness, "app-1", "exited");
    let moved = harness.home().join("repo-moved");
    std::fs::rename(harness.repo(), &moved).unwrap();

    let output = harness.ao(&["session", "restore", "app-1"]);
    assert!(!output.status.success(), "restored into a broken worktree");
    let worktree = harness.worktree("app-1").display().to_string();
    let fix = format!("git worktree repair {worktree}");
    assert!(stderr(&output).contains(&fix), "{}", stderr(&output));
    assert!(harness.tmux.sessions().is_empty(), "no agent was started");
    assert_eq!(listed(&harness, "app-1")["status"], "exited");

    // The fix it names works.
    support::git(&moved, &["worktree", "repair", &worktree]);
    harness.ok(&["session", "restore", "app-1"]);
    wait_for_status(&harness, "app-1", "idle");
}
