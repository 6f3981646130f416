//! The spawn path end to end: the real `ao-host` binary, the real plugin libraries, real git and
//! tmux, and the fake Claude Code CLI (`ao_plugin_test::fake_agent`) as the agent.

use std::{
    collections::HashSet,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use support::{
    fake_messages, fake_start, git, init_repo, install, install_first_party, json, stderr, stdout,
    wait_until, Harness,
};

fn spawn_json(harness: &Harness, task: &str) -> Value {
    json(&harness.ok(&["spawn", "app", "--task", task, "--json"]))
}

#[test]
fn spawn_makes_worktree_tmux_session_and_record_and_delivers_the_task_once() {
    let harness = Harness::new(&[], "");
    let task = "Fix the \"flaky\" test.\nIt fails with `$(date)` in CI;\n\tsee ci.yml 🎉";
    let session = spawn_json(&harness, task);
    assert_eq!(session["id"], "app-1");
    assert_eq!(session["project_id"], "app");
    assert_eq!(session["branch"], "session/app-1");
    assert_eq!(session["agent"], "claude-code");
    assert_eq!(session["runtime"], "tmux");
    assert_eq!(session["workspace"], "git-worktree");
    // tmux session names carry the data dir's tag, so two data dirs can share a tmux server.
    let handle = support::tmux_name(session["runtime_handle"].as_str().unwrap());
    assert!(handle.starts_with("app-1_"), "{handle}");
    assert_eq!(session["task"], task);
    assert_eq!(session["status"], "working");
    assert!(session["created_at"].as_u64().unwrap() > 1_700_000_000_000);
    let worktree = harness.worktree("app-1");
    assert_eq!(session["workspace_path"], worktree.display().to_string());

    assert_eq!(
        git(&worktree, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "session/app-1"
    );
    assert_eq!(harness.tmux.sessions(), vec![handle]);
    assert!(harness.record("app-1", false).exists());

    let log = harness.log_dir().join("app-1");
    assert!(wait_until(Duration::from_secs(10), || !fake_messages(&log).is_empty()));
    let start = fake_start(&log);
    let env = &start["env"];
    assert_eq!(env["AO_CALLER_TYPE"], "agent");
    assert_eq!(env["AO_SESSION"], "app-1");
    assert_eq!(env["AO_SESSION_NAME"], "app-1");
    assert_eq!(env["AO_DATA_DIR"], harness.data_dir().display().to_string());
    assert_eq!(env["AO_PROJECT_ID"], "app");
    assert_eq!(
        env["AO_CONFIG_PATH"],
        harness.config_path().display().to_string()
    );
    assert_eq!(env["AO_PORT"], "3000");
    assert_eq!(
        start["cwd"],
        worktree.canonicalize().unwrap().display().to_string()
    );
    // The worker's instructions travel in the system prompt, never inside the task.
    let argv: Vec<&str> = start["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let prompt_flag = argv
        .iter()
        .position(|a| *a == "--append-system-prompt-file")
        .unwrap();
    let prompt = std::fs::read_to_string(argv[prompt_flag + 1]).unwrap();
    assert!(
        prompt.contains("`app-1`") && prompt.contains("session/app-1"),
        "{prompt}"
    );

    // Exactly once, byte-exact, even a while later.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake_messages(&log), vec![task.to_string()]);

    let listed = harness.sessions_json(&[]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], "app-1");
    assert!(
        ["working", "idle"].contains(&listed[0]["status"].as_str().unwrap()),
        "{}",
        listed[0]
    );

    // The agent committed work on its branch.
    std::fs::write(worktree.join("work.txt"), "done").unwrap();
    git(&worktree, &["add", "work.txt"]);
    git(&worktree, &["commit", "-q", "-m", "agent work"]);
    harness.ok(&["session", "kill", "app-1"]);
    assert!(harness.tmux.sessions().is_empty());
    assert!(!worktree.exists());
    assert!(!harness.record("app-1", false).exists());
    let archived = harness.sessions_json(&["--archived"]);
    assert_eq!(archived[0]["id"], "app-1");
    assert_eq!(archived[0]["status"], "killed");
    assert!(harness.sessions_json(&[]).is_empty());
    // The branch holds the agent's work and is kept.
    assert!(git(&harness.repo(), &["branch", "--list", "session/app-1"]).contains("session/app-1"));
    // A session that made no commits leaves no branch to pile up.
    spawn_json(&harness, "nothing to commit");
    harness.ok(&["session", "kill", "app-2"]);
    assert!(git(&harness.repo(), &["branch", "--list", "session/app-2"]).is_empty());
}

#[test]
fn the_next_orchestrator_takes_the_smallest_free_number_over_active_and_archived() {
    let harness = Harness::new(&[], "");
    let first = json(&harness.ok(&["orchestrator", "app", "--json"]));
    assert_eq!(first["id"], "app-orchestrator-1");
    assert_eq!(first["branch"], "orchestrator/app-orchestrator-1");
    let archived_third = support::replaced(
        &std::fs::read_to_string(harness.record("app-orchestrator-1", false)).unwrap(),
        &[
            ("app-orchestrator-1", "app-orchestrator-3"),
            ("status: working", "status: killed"),
        ],
    );
    std::fs::create_dir_all(harness.record("x", true).parent().unwrap()).unwrap();
    std::fs::write(harness.record("app-orchestrator-3", true), archived_third).unwrap();

    let second = json(&harness.ok(&["orchestrator", "app", "--json"]));
    assert_eq!(second["id"], "app-orchestrator-2");
    let log = harness.log_dir().join("app-orchestrator-2");
    assert!(wait_until(Duration::from_secs(10), || !fake_messages(&log).is_empty()));
    let start = fake_start(&log);
    assert_eq!(start["env"]["AO_CALLER_TYPE"], "orchestrator");
    let prompt = &fake_messages(&log)[0];
    assert!(
        prompt.contains("orchestrator `app-orchestrator-2`"),
        "{prompt}"
    );
    assert!(prompt.contains("ao-host spawn app --task"), "{prompt}");

    let third = json(&harness.ok(&["orchestrator", "app", "--no-prompt", "--json"]));
    assert_eq!(third["id"], "app-orchestrator-4");
    std::thread::sleep(Duration::from_millis(300));
    assert!(fake_messages(&harness.log_dir().join("app-orchestrator-4")).is_empty());
}

#[test]
fn twenty_concurrent_spawn_processes_get_twenty_distinct_sessions() {
    let harness = Harness::new(&[], "");
    let children: Vec<_> = (0..20)
        .map(|n| {
            harness
                .command(&["spawn", "app", "--task", &format!("task {n}"), "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = HashSet::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a spawn failed: {}",
            stderr(&output)
        );
        ids.insert(json(&output)["id"].as_str().unwrap().to_string());
    }
    let expected: HashSet<String> = (1..=20).map(|n| format!("app-{n}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(harness.sessions_json(&[]).len(), 20);
    assert_eq!(harness.tmux.sessions().len(), 20);
    assert_eq!(
        git(&harness.repo(), &["worktree", "list"]).lines().count(),
        21
    );
    for id in &ids {
        let log = harness.log_dir().join(id);
        assert!(
            wait_until(Duration::from_secs(10), || fake_messages(&log).len() == 1),
            "{id}"
        );
    }
}

#[test]
fn a_newcomer_without_config_spawns_with_the_default_plugins() {
    let home = tempfile::tempdir().unwrap();
    // An installation as `cargo build --release` leaves it: plugins beside the binary.
    let install_dir = home.path().join("install");
    install_first_party(&install_dir);
    let binary = install(Path::new(env!("CARGO_BIN_EXE_ao-host")), &install_dir, None);
    // `claude` on PATH is the fake; tmux runs a private default server.
    let bin = home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(support::fake_agent(), bin.join("claude")).unwrap();
    let tmux_dir = home.path().join("tmux");
    std::fs::create_dir_all(&tmux_dir).unwrap();
    let repo = home.path().join("my-project");
    init_repo(&repo);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let log = home.path().join("logs");
    let run = |args: &[&str]| {
        Command::new(&binary)
            .args(args)
            .current_dir(&repo)
            .env("HOME", home.path())
            .env("PATH", &path)
            .env("TMUX_TMPDIR", &tmux_dir)
            .env("FAKE_AGENT_LOG", &log)
            .env_remove("TMUX")
            .env_remove("AO_CONFIG_PATH")
            .env_remove("AO_PLUGIN_PATH")
            .output()
            .unwrap()
    };
    let output = run(&["spawn", "--task", "hello from a newcomer"]);
    let cleanup = || {
        let _ = Command::new("tmux")
            .arg("kill-server")
            .env("TMUX_TMPDIR", &tmux_dir)
            .output();
    };
    if !output.status.success() {
        cleanup();
        panic!("spawn failed: {}", stderr(&output));
    }
    assert_eq!(stdout(&output).trim(), "my-project-1");
    let messages = home.path().join("logs").join("my-project-1");
    let delivered = wait_until(Duration::from_secs(10), || {
        !fake_messages(&messages).is_empty()
    });
    let worktree = home.path().join(".ao-rs/worktrees/my-project/my-project-1");
    let exists = worktree.exists();
    cleanup();
    assert!(delivered);
    assert!(exists, "worktree under ~/.ao-rs");
    assert_eq!(
        fake_messages(&messages),
        vec!["hello from a newcomer".to_string()]
    );
}

#[test]
fn a_dropped_enter_after_a_paste_is_pressed_again_and_the_task_still_arrives_once() {
    let harness = Harness::new(&[("FAKE_AGENT_DROP_FIRST_ENTER", "1")], "");
    let task = "line one\nline two\nline three\nline four";
    spawn_json(&harness, task);
    let log = harness.log_dir().join("app-1");
    assert!(wait_until(Duration::from_secs(10), || !fake_messages(&log).is_empty()));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake_messages(&log), vec![task.to_string()]);
}

/// `send` while the spawn still runs waits for it, and its Enter, dropped by a busy agent, is
/// pressed again: the message arrives once, after the task.
#[test]
fn a_message_sent_during_the_spawn_arrives_once_though_its_first_enter_is_dropped() {
    let harness = Harness::new(&[("FAKE_AGENT_DROP_FIRST_ENTER", "1")], "");
    let mut spawn = harness
        .command(&["spawn", "app", "--task", "the task"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || harness
        .record("app-1", false)
        .exists()));
    harness.ok(&["send", "app-1", "the message"]);
    assert!(spawn.wait().unwrap().success());
    let log = harness.log_dir().join("app-1");
    assert!(
        wait_until(Duration::from_secs(10), || fake_messages(&log).len() == 2),
        "{:?}",
        fake_messages(&log)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake_messages(&log), ["the task", "the message"]);
}

#[test]
fn a_trust_dialog_is_answered_only_when_the_config_allows_it() {
    let allowed = Harness::new(
        &[("FAKE_AGENT_TRUST_DIALOG", "1")],
        "      trust_workspaces: true\n",
    );
    spawn_json(&allowed, "after the dialog");
    let log = allowed.log_dir().join("app-1");
    assert!(wait_until(Duration::from_secs(10), || !fake_messages(&log).is_empty()));
    assert_eq!(fake_messages(&log), vec!["after the dialog".to_string()]);

    let refused = Harness::new(&[("FAKE_AGENT_TRUST_DIALOG", "1")], "");
    let output = refused.ao(&["spawn", "app", "--task", "x"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("trust_workspaces: true"), "{err}");
    refused.assert_nothing_left("app-1");
}

#[test]
fn a_failing_workspace_step_leaves_nothing() {
    let harness = Harness::new(&[], "");
    let config = support::replaced(
        &std::fs::read_to_string(harness.config_path()).unwrap(),
        &[(
            "default_branch: main }",
            "default_branch: main, post_create: [\"exit 9\"] }",
        )],
    );
    std::fs::write(harness.config_path(), config).unwrap();
    let output = harness.ao(&["spawn", "app", "--task", "x"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("post_create") && err.contains("spawning app-1"),
        "{err}"
    );
    harness.assert_nothing_left("app-1");
}

#[test]
fn an_agent_that_never_gets_ready_times_out_and_leaves_nothing() {
    let harness = Harness::new(&[("FAKE_AGENT_NEVER_READY", "1")], "");
    let config = support::replaced(
        &std::fs::read_to_string(harness.config_path()).unwrap(),
        &[("ready_timeout_ms: 10000", "ready_timeout_ms: 800")],
    );
    std::fs::write(harness.config_path(), config).unwrap();
    let output = harness.ao(&["spawn", "app", "--task", "x"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("not ready after 800 ms") && err.contains("starting forever"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    harness.assert_nothing_left("app-1");
}

#[test]
fn an_agent_that_exits_at_start_is_reported_with_its_output_and_leaves_nothing() {
    let harness = Harness::new(&[("FAKE_AGENT_EXIT_AT_ONCE", "1")], "");
    let output = harness.ao(&["spawn", "app", "--task", "x"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("exited before it was ready") && err.contains("told to fail"),
        "{err}"
    );
    harness.assert_nothing_left("app-1");
}

#[test]
fn a_failing_runtime_leaves_no_worktree_or_record() {
    let harness = Harness::new(&[], "");
    harness.install_faulty_runtime("{ methods: error, only: [create] }");
    let output = harness.ao(&["spawn", "app", "--task", "x", "--runtime", "faulty"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("faulty fixture refuses create"), "{err}");
    harness.assert_nothing_left("app-1");
}

#[test]
fn a_failing_send_destroys_runtime_and_worktree() {
    let harness = Harness::new(&[], "");
    let idle = format!("{rule}\\n❯\u{a0}\\n{rule}\\n", rule = "─".repeat(40));
    harness.install_faulty_runtime(&format!(
        "{{ methods: error, only: [send_message], screen: \"{idle}\" }}"
    ));
    // Longer than a command-line argument may be, so it is typed in, not passed at launch.
    let task = harness.home().join("long-task.txt");
    std::fs::write(&task, "x".repeat(130 * 1024)).unwrap();
    let task = task.display().to_string();
    let output = harness.ao(&["spawn", "app", "--task-file", &task, "--runtime", "faulty"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("faulty fixture refuses send_message"), "{err}");
    harness.assert_nothing_left("app-1");
}

#[test]
fn a_panicking_runtime_is_reported_and_cleaned_up() {
    let harness = Harness::new(&[], "");
    harness.install_faulty_runtime("{ methods: panic, only: [create] }");
    let output = harness.ao(&["spawn", "app", "--task", "x", "--runtime", "faulty"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one line, no panic dump: {err}"
    );
    assert!(err.contains("plugin panicked in `create` at "), "{err}");
    assert!(err.contains("faulty fixture panics in create"), "{err}");
    harness.assert_nothing_left("app-1");
}

#[test]
fn send_delivers_text_files_and_stdin_and_refuses_non_utf8() {
    let harness = Harness::new(&[], "");
    spawn_json(&harness, "first");
    let log = harness.log_dir().join("app-1");
    assert!(wait_until(Duration::from_secs(10), || fake_messages(&log)
        .len()
        == 1));
    harness.ok(&["send", "app-1", "as an argument"]);
    let file = harness.home().join("message.txt");
    std::fs::write(&file, "from a file\nwith two lines").unwrap();
    harness.ok(&["send", "app-1", "--file", file.to_str().unwrap()]);
    let mut child = harness
        .command(&["send", "app-1", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        "from stdin 'quoted'".as_bytes(),
    )
    .unwrap();
    drop(child.stdin.take());
    assert!(child.wait_with_output().unwrap().status.success());
    assert!(wait_until(Duration::from_secs(10), || fake_messages(&log)
        .len()
        == 4));
    assert_eq!(
        fake_messages(&log),
        vec![
            "first",
            "as an argument",
            "from a file\nwith two lines",
            "from stdin 'quoted'"
        ]
    );

    std::fs::write(&file, b"bad \xff bytes").unwrap();
    let output = harness.ao(&["send", "app-1", "--file", file.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("not UTF-8"), "{}", stderr(&output));
    let output = harness.ao(&["send", "app-404", "hello"]);
    assert!(
        stderr(&output).contains("no session `app-404`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn session_ls_reports_a_dead_runtime_as_exited() {
    let harness = Harness::new(&[], "");
    spawn_json(&harness, "x");
    harness.tmux.tmux(&[
        "kill-session",
        "-t",
        &format!("={}", harness.tmux_session("app-1")),
    ]);
    let listed = harness.sessions_json(&[]);
    assert_eq!(listed[0]["status"], "exited");
    // A corrupt record next to it is reported, not fatal.
    std::fs::write(harness.record("junk", false), "{{{ not yaml").unwrap();
    let output = harness.ao(&["session", "ls", "--json"]);
    // The readable part is printed, the unreadable file named, and the exit status says the
    // list is incomplete.
    assert!(!output.status.success());
    assert_eq!(json(&output).as_array().unwrap().len(), 1);
    assert!(stderr(&output).contains("junk.yaml"), "{}", stderr(&output));
}

#[test]
fn a_plugin_that_is_not_loaded_is_named_with_what_is_loaded() {
    let harness = Harness::new(&[], "");
    let output = harness.ao(&["spawn", "app", "--task", "x", "--agent", "nonesuch"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    // The list may also hold plugins found beside the test's `ao-host` binary.
    assert!(
        err.contains("no agent plugin named `nonesuch` is loaded (loaded agent plugins: ")
            && err.contains("claude-code"),
        "{err}"
    );
    assert!(!harness.record("app-1", false).exists());
    let output = harness.ao(&["spawn", "web", "--task", "x"]);
    assert!(stderr(&output).contains("no project \"web\"") && stderr(&output).contains("app"));
}

#[test]
fn kill_can_keep_the_workspace() {
    let harness = Harness::new(&[], "");
    spawn_json(&harness, "x");
    harness.ok(&["session", "kill", "app-1", "--keep-workspace"]);
    assert!(harness.tmux.sessions().is_empty());
    assert!(harness.worktree("app-1").join("README.md").exists());
    assert_eq!(
        harness.sessions_json(&["--archived"])[0]["status"],
        "killed"
    );
}

#[test]
fn doctor_says_ok_or_the_fix_for_each_check() {
    let harness = Harness::new(&[], "");
    let output = harness.ok(&["doctor"]);
    let report = stdout(&output);
    // Each plugin says what it needs; the core names no tool.
    for line in [
        "ok    runtime plugin `tmux`: loaded from",
        "ok    runtime plugin `tmux`: tmux: tmux ",
        "ok    workspace plugin `git-worktree`: git: git version",
        "ok    data dir",
    ] {
        assert!(report.contains(line), "{line} missing:\n{report}");
    }
    let output = harness
        .command(&["doctor"])
        .env("PATH", harness.home())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let report = stdout(&output);
    assert!(
        report.contains("FIX   runtime plugin `tmux`: tmux: `tmux` not found on PATH"),
        "{report}"
    );
    assert!(
        stderr(&output).contains("doctor found"),
        "{}",
        stderr(&output)
    );
}

/// Every `/proc/<pid>/cmdline` holding `needle`, as `pid: argv`.
fn command_lines_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&bytes).replace('\0', " ");
        if line.contains(needle) {
            found.push(format!("{}: {line}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn each_agent_gets_its_spawners_environment_never_on_a_command_line() {
    use std::os::unix::fs::PermissionsExt;
    let harness = Harness::new(&[], "");
    // A long-lived tmux server, started with values of its own, before any spawn.
    harness.tmux.start_with_env(&[
        ("MYKEY", "from-the-tmux-server"),
        ("SERVER_ONLY", "leftover"),
    ]);
    // Every tmux command ao-host runs, logged by a stand-in in front of the real tmux.
    let bin = harness.home().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v tmux"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let tmux_log = harness.home().join("tmux-commands.log");
    let stand_in = bin.join("tmux");
    std::fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            tmux_log.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut agents = Vec::new();
    for round in ["old", "new"] {
        if round == "new" {
            // The same through an isolated runtime (`start` forwarded to its child process).
            harness.edit_config(&[("  config:\n", "  isolate: [tmux]\n  config:\n")]);
        }
        let value = format!("secret-{round}-{}-{nonce}", std::process::id());
        // Watches every command line while the spawn runs.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (stop, value) = (stop.clone(), value.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    seen.extend(command_lines_with(&value));
                }
                seen
            })
        };
        let output = harness
            .command(&["spawn", "app", "--task", "hello", "--json"])
            .env("PATH", &path)
            .env("MYKEY", &value)
            // The spawner's own terminal is not the agent's.
            .env("TERM_PROGRAM", "the-spawners-terminal")
            // Whoever holds the dashboard's token drives the dashboard: never an agent.
            .env("AO_DASHBOARD_TOKEN", "the-dashboards-token")
            .output()
            .unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let seen = watcher.join().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let id = json(&output)["id"].as_str().unwrap().to_string();
        assert!(seen.is_empty(), "the value on a command line: {seen:?}");
        // Nor in any process alive now (the agent among them).
        assert_eq!(command_lines_with(&value), Vec::<String>::new());
        agents.push((id, value));
    }
    let log = std::fs::read_to_string(&tmux_log).unwrap();
    assert!(log.contains("respawn-pane"), "tmux was not asked: {log}");
    for (id, value) in &agents {
        assert!(
            !log.contains(value.as_str()),
            "the value in a tmux command:\n{log}"
        );
        let start = fake_start(&harness.log_dir().join(id));
        assert_eq!(start["env"]["MYKEY"], value.as_str(), "agent {id}");
        assert!(start["env"].get("SERVER_ONLY").is_none(), "{start}");
        assert!(start["env"].get("AO_DASHBOARD_TOKEN").is_none(), "{start}");
        // What the plugins set is there too, and the terminal is tmux's.
        assert_eq!(start["env"]["AO_SESSION"], id.as_str());
        assert_eq!(
            start["env"]["FAKE_AGENT_LOG"],
            harness.log_dir().display().to_string()
        );
        assert!(start["env"]["TMUX"].is_string(), "{start}");
        assert_eq!(start["env"]["TERM_PROGRAM"], "tmux", "{start}");
    }
    // Each launch file is gone once its agent started.
    let launch_dir = harness.data_dir().join("tmux-launch");
    let left: Vec<_> = std::fs::read_dir(&launch_dir).unwrap().flatten().collect();
    assert!(left.is_empty(), "launch files left: {left:?}");
    let mode = std::fs::metadata(&launch_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

/// Without projects in the config, a repository is a project named after its folder; a second
/// repository with the same folder name is another project (its workers are not the first's,
/// in listings or in an orchestrator's prompt), and the first keeps its id. Accented letters
/// stay letters.
#[test]
fn repositories_with_the_same_folder_name_are_two_projects_without_a_config() {
    let harness = Harness::new(&[], "");
    harness.rewrite_config(|config| config[..config.find("projects:").unwrap()].to_string());
    let (first, second, accented) = (
        harness.home().join("a/api"),
        harness.home().join("b/api"),
        harness.home().join("ünï"),
    );
    for repo in [&first, &second, &accented] {
        init_repo(repo);
    }
    let run_in = |repo: &Path, args: &[&str]| {
        let output = harness.command(args).current_dir(repo).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        json(&output)
    };
    let spawn_in = |repo: &Path, task: &str| run_in(repo, &["spawn", "--task", task, "--json"]);
    let one = spawn_in(&first, "first repository's task");
    assert_eq!(
        (&one["id"], &one["project_id"]),
        (&"api-1".into(), &"api".into())
    );
    let two = spawn_in(&second, "second repository's task");
    let other = two["project_id"].as_str().unwrap().to_string();
    assert!(other.starts_with("api-") && other != "api", "{other}");
    assert_eq!(two["id"], format!("{other}-1"));
    // The first repository keeps its id after the second got one.
    assert_eq!(spawn_in(&first, "first again")["id"], "api-2");

    let listed: Vec<String> = harness
        .sessions_json(&["api"])
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ["api-1", "api-2"]);

    let orchestrator = run_in(&second, &["orchestrator", "--json"]);
    let log = harness.log_dir().join(orchestrator["id"].as_str().unwrap());
    assert!(wait_until(Duration::from_secs(10), || !fake_messages(&log).is_empty()));
    let prompt = &fake_messages(&log)[0];
    assert!(prompt.contains("second repository's task"), "{prompt}");
    assert!(!prompt.contains("first repository's task"), "{prompt}");

    assert_eq!(spawn_in(&accented, "accents")["project_id"], "uni");
}

/// `--no-prompt` sends no first message, so a task given with it would be recorded and never
/// reach the agent.
#[test]
fn a_task_with_no_prompt_is_refused_and_nothing_is_made() {
    let harness = Harness::new(&[], "");
    for task in [&["--task", "X"][..], &["--task-file", "-"][..]] {
        let mut args = vec!["spawn", "app", "--no-prompt"];
        args.extend_from_slice(task);
        let output = harness.ao(&args);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(
            stderr(&output).contains("--no-prompt"),
            "{}",
            stderr(&output)
        );
    }
    harness.assert_no_sessions();
}

/// An agent whose program is not installed exits at once with status 127: the spawn says so
/// with the agent plugin's install hint, not the terminal's raw "Pane is dead".
#[test]
fn a_missing_agent_program_is_named_with_its_install_hint() {
    let harness = Harness::new(&[], "");
    let missing = harness.home().join("nowhere/claude");
    harness.edit_config(&[(
        &format!("command: {:?}", support::fake_agent().display().to_string()),
        &format!("command: {:?}", missing.display().to_string()),
    )]);
    let output = harness.ao(&["spawn", "app", "--task", "x"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("program was not found"), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(!err.contains("Pane is dead"), "{err}");
    harness.assert_no_sessions();
}

/// Two spawns at once in two repositories with the same folder name, no config: each
/// repository gets an id of its own, whichever registers first.
#[test]
fn racing_spawns_in_two_same_named_repositories_get_two_projects() {
    let harness = Harness::new(&[], "");
    harness.rewrite_config(|config| config[..config.find("projects:").unwrap()].to_string());
    let repos = [harness.home().join("a/web"), harness.home().join("b/web")];
    let children: Vec<_> = repos
        .iter()
        .map(|repo| {
            init_repo(repo);
            harness
                .command(&["spawn", "--task", "x", "--json"])
                .current_dir(repo)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut projects: Vec<String> = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{}", stderr(&output));
            json(&output)["project_id"].as_str().unwrap().to_string()
        })
        .collect();
    projects.sort();
    assert_eq!(projects[0], "web");
    assert!(projects[1].starts_with("web-"), "{projects:?}");
}
