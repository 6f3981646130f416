//! Hostile plugins, hostile input, crashes and orphans, against the real binary and plugins.
//! Every refusal must be one line on stderr, and nothing may be left on disk or in tmux.

use std::{
    os::unix::fs::PermissionsExt,
    process::{Child, Stdio},
    thread,
    time::Duration,
};

use support::{assert_one_line_error, fake_messages, git, json, wait_until, Harness};

#[test]
fn hostile_ids_are_refused_in_one_line() {
    let harness = Harness::new(&[], "");
    for id in ["a/b", "..", "a b", "a;b", "$(touch /tmp/x)", "a\nb", "-rf"] {
        for command in [&["session", "kill", "--"][..], &["send", "--"][..]] {
            let mut args = command.to_vec();
            args.push(id);
            if command[0] == "send" {
                args.push("hello");
            }
            let output = harness.ao(&args);
            assert_one_line_error(&output, "session id");
        }
        let output = harness.ao(&["spawn", "--task", "x", "--", id]);
        assert_one_line_error(&output, "invalid project argument");
    }
    let config = std::fs::read_to_string(harness.config_path()).unwrap();
    for bad in ["\"a b\"", "\"../x\"", "\"-x\"", "\"$(id)\""] {
        std::fs::write(
            harness.config_path(),
            support::replaced(&config, &[("  app: {", &format!("  {bad}: {{"))]),
        )
        .unwrap();
        let output = harness.ao(&["session", "ls"]);
        assert_one_line_error(&output, "project id");
    }
    std::fs::write(
        harness.config_path(),
        support::replaced(
            &config,
            &[(
                "default_branch: main }",
                "default_branch: main, session_prefix: \"x;y\" }",
            )],
        ),
    )
    .unwrap();
    assert_one_line_error(&harness.ao(&["session", "ls"]), "session_prefix");
    std::fs::write(harness.config_path(), config).unwrap();
    harness.assert_untouched();
}

#[test]
fn hostile_tasks_are_refused_and_nothing_is_created() {
    let harness = Harness::new(&[], "");
    let big = harness.home().join("big.txt");
    std::fs::write(&big, "x".repeat(10 * 1024 * 1024)).unwrap();
    assert_one_line_error(
        &harness.ao(&["spawn", "app", "--task-file", big.to_str().unwrap()]),
        "more than",
    );
    let binary = harness.home().join("binary.txt");
    std::fs::write(&binary, b"fix \xff\xfe this").unwrap();
    assert_one_line_error(
        &harness.ao(&["spawn", "app", "--task-file", binary.to_str().unwrap()]),
        "not UTF-8",
    );
    assert_one_line_error(
        &harness.ao(&["spawn", "app", "--task", "   \n "]),
        "task is empty; say what the agent should do (with --task or --task-file)",
    );
    assert_one_line_error(&harness.ao(&["spawn", "app"]), "--task");
    harness.assert_untouched();
}

#[test]
fn hostile_configs_are_refused_in_one_line() {
    let harness = Harness::new(&[], "");
    let config = harness.config_path();
    let original = std::fs::read_to_string(&config).unwrap();
    // Billion laughs: each alias level multiplies the document tenfold.
    let mut laughs = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for level in b'b'..=b'i' {
        let prev = (level - 1) as char;
        let name = level as char;
        laughs.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    // Under a key whose value is free-form, so the parser has to expand it.
    let bomb = support::replaced(
        &original,
        &[(
            "  config:\n",
            &format!(
                "  config:\n    bomb:\n      {}\n",
                laughs.trim_end().replace('\n', "\n      ")
            ),
        )],
    );
    std::fs::write(&config, bomb).unwrap();
    assert_one_line_error(&harness.ao(&["session", "ls"]), "ao-rs.yaml");
    // 10 MB of nesting.
    std::fs::write(
        &config,
        format!(
            "port: {}1{}\n",
            "[".repeat(5_000_000),
            "]".repeat(5_000_000)
        ),
    )
    .unwrap();
    assert_one_line_error(&harness.ao(&["session", "ls"]), "ao-rs.yaml");
    // data_dir pointing at a file.
    let file = harness.home().join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    std::fs::write(
        &config,
        support::replaced(
            &original,
            &[(
                &format!("data_dir: {:?}", harness.data_dir().display().to_string()),
                &format!("data_dir: {:?}", file.display().to_string()),
            )],
        ),
    )
    .unwrap();
    assert_one_line_error(
        &harness.ao(&["spawn", "app", "--task", "x"]),
        "is not a folder",
    );
    // A symlink entry escaping the worktree.
    std::fs::write(
        &config,
        support::replaced(
            &original,
            &[(
                "default_branch: main }",
                "default_branch: main, symlinks: [\"../../etc/passwd\"] }",
            )],
        ),
    )
    .unwrap();
    assert_one_line_error(
        &harness.ao(&["spawn", "app", "--task", "x"]),
        "symlinks entry",
    );
    std::fs::write(&config, original).unwrap();
    harness.assert_untouched();
}

#[test]
fn a_config_file_others_could_change_is_refused_before_any_of_it_is_used() {
    let harness = Harness::new(&[], "");
    let config = harness.config_path();
    let path = config.display().to_string();
    // Its agent command and hooks would run as us: a group-writable file is refused however it
    // is found (`./ao-rs.yaml`, `--config`, `$AO_CONFIG_PATH`).
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o664)).unwrap();
    let want = format!("chmod go-w {path}");
    assert_one_line_error(&harness.ao(&["spawn", "app", "--task", "x"]), &want);
    let spawn = || {
        let mut command = support::ao_host(harness.home());
        command.args(["spawn", "app", "--task", "x"]);
        command
    };
    assert_one_line_error(&spawn().output().unwrap(), &want);
    let found_by_env = spawn()
        .current_dir(harness.repo())
        .env("AO_CONFIG_PATH", &config)
        .output()
        .unwrap();
    assert_one_line_error(&found_by_env, &want);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    harness.assert_untouched();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Another user's file in our folder: theirs to rewrite.
        std::os::unix::fs::chown(&config, Some(65534), None).unwrap();
        let output = harness.ao(&["spawn", "app", "--task", "x"]);
        assert_one_line_error(&output, "owned by uid 65534");
        assert!(
            support::stderr(&output).contains(&path),
            "{}",
            support::stderr(&output)
        );
        std::os::unix::fs::chown(&config, Some(0), None).unwrap();
        harness.assert_untouched();
    }
    // Ours and only ours to write: used.
    harness.ok(&["session", "ls"]);
}

#[test]
fn a_writable_plugin_library_is_refused_with_the_chmod_that_fixes_it() {
    let harness = Harness::new(&[], "");
    let tmux = harness
        .plugin_dir()
        .join(support::library_file_name("ao-runtime-tmux"));
    std::fs::set_permissions(&tmux, std::fs::Permissions::from_mode(0o666)).unwrap();
    let output = harness.ao(&["plugins", "check", tmux.to_str().unwrap()]);
    assert_one_line_error(&output, &format!("chmod go-w {}", tmux.display()));
    let listing = json(&harness.ok(&["plugins", "list", "--json"]));
    let row = listing["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == tmux.display().to_string())
        .unwrap()
        .clone();
    assert_eq!(row["status"], "error", "{row}");
    std::fs::set_permissions(&tmux, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(harness.plugin_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_one_line_error(
        &harness.ao(&["plugins", "check", tmux.to_str().unwrap()]),
        "writable by everyone",
    );
    std::fs::set_permissions(harness.plugin_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    harness.assert_untouched();
}

#[test]
fn a_hanging_plugin_call_is_cut_off_and_the_spawn_cleaned_up() {
    let harness = Harness::new(&[], "");
    harness.install_faulty_runtime("{ methods: hang, only: [create] }");
    harness.edit_config(&[(
        "ready_timeout_ms: 10000",
        "ready_timeout_ms: 10000, call_timeout_ms: 300",
    )]);
    let output = harness.ao(&["spawn", "app", "--task", "x", "--runtime", "faulty"]);
    assert_one_line_error(&output, "did not finish `create` within 300 ms");
    harness.assert_untouched();
}

/// Starts a spawn in the background and kills it with SIGKILL once `reached` holds.
fn kill_spawn_when(harness: &Harness, args: &[&str], reached: impl Fn() -> bool) {
    let mut child: Child = harness
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let got_there = wait_until(Duration::from_secs(20), &reached);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(got_there, "the spawn never reached the point to kill it at");
}

#[test]
fn kill_9_at_any_point_of_a_spawn_is_reported_truthfully_and_gc_restores_a_clean_state() {
    let harness = Harness::new(&[("FAKE_AGENT_NEVER_READY", "1")], "");
    harness.install_faulty_runtime("{ methods: hang, only: [create] }");
    harness.edit_config(&[("ready_timeout_ms: 10000", "ready_timeout_ms: 600000")]);
    let record = |id: &str| std::fs::read_to_string(harness.record(id, false)).unwrap_or_default();

    // 1. during the workspace step (post_create is still running);
    let slow = support::replaced(
        &std::fs::read_to_string(harness.config_path()).unwrap(),
        &[(
            "default_branch: main }",
            "default_branch: main, post_create: [\"sleep 30\"] }",
        )],
    );
    let fast = std::fs::read_to_string(harness.config_path()).unwrap();
    std::fs::write(harness.config_path(), &slow).unwrap();
    kill_spawn_when(&harness, &["spawn", "app", "--task", "one"], || {
        harness.worktree("app-1").join("README.md").exists()
    });
    std::fs::write(harness.config_path(), &fast).unwrap();
    // 2. inside the runtime plugin's `create` (a hanging fixture);
    kill_spawn_when(
        &harness,
        &["spawn", "app", "--task", "two", "--runtime", "faulty"],
        || record("app-2").contains("workspace_path: /"),
    );
    // 3. while waiting for the agent to be ready.
    kill_spawn_when(&harness, &["spawn", "app", "--task", "three"], || {
        record("app-3").contains("runtime_handle: app-3")
    });

    let listed = harness.sessions_json(&[]);
    assert_eq!(listed.len(), 3);
    for session in &listed {
        assert_eq!(session["status"], "errored", "{session}");
        assert!(
            session["note"].as_str().unwrap().contains("interrupted"),
            "{session}"
        );
    }
    // An interrupted spawn never delivered its task; a message is refused, not slipped in.
    let output = harness.ao(&["send", "app-3", "hello"]);
    assert_one_line_error(&output, "spawn was interrupted");
    // The next spawn is not blocked by the leftovers.
    let healthy = Harness::new(&[], "");
    let _ = healthy; // (a separate installation would not share state; reuse this one instead)
    let config = support::replaced(
        &std::fs::read_to_string(harness.config_path()).unwrap(),
        &[("FAKE_AGENT_NEVER_READY", "FAKE_AGENT_UNUSED")],
    );
    std::fs::write(
        harness.config_path(),
        support::replaced(
            &config,
            &[("ready_timeout_ms: 600000", "ready_timeout_ms: 10000")],
        ),
    )
    .unwrap();
    let next = json(&harness.ok(&["spawn", "app", "--task", "four", "--json"]));
    assert_eq!(next["id"], "app-4");
    let log = harness.log_dir().join("app-4");
    assert!(wait_until(Duration::from_secs(10), || fake_messages(&log) == ["four"]));

    let dry = json(&harness.ok(&["gc", "--dry-run", "--json"]));
    assert!(
        dry.as_array().unwrap().iter().all(|a| a["done"] == false),
        "{dry:#}"
    );
    assert_eq!(
        harness.sessions_json(&[]).len(),
        4,
        "dry run changed nothing"
    );

    let actions = json(&harness.ok(&["gc", "--json"]));
    let undone: Vec<&str> = actions
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "undo interrupted spawn" && a["done"] == true)
        .map(|a| a["target"].as_str().unwrap())
        .collect();
    assert_eq!(undone.len(), 3, "{actions:#}");
    // Clean: only the healthy session is left, with its worktree, branch and tmux session; the
    // undone spawns are archived as errored, so their ids (and branch names) are never reused.
    let listed = harness.sessions_json(&[]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], "app-4");
    assert_eq!(harness.tmux.sessions(), vec![harness.tmux_session("app-4")]);
    let worktrees = git(&harness.repo(), &["worktree", "list"]);
    assert_eq!(worktrees.lines().count(), 2, "{worktrees}");
    let archived = harness.sessions_json(&["--archived"]);
    assert_eq!(archived.len(), 3);
    assert!(
        archived.iter().all(|s| s["status"] == "errored"),
        "{archived:?}"
    );
    // Even after main moves on, the next spawn is not blocked by a branch left by a kill -9.
    std::fs::write(harness.repo().join("NEW.md"), "new\n").unwrap();
    git(&harness.repo(), &["add", "."]);
    git(&harness.repo(), &["commit", "-q", "-m", "moved on"]);
    let next = json(&harness.ok(&["spawn", "app", "--task", "five", "--json"]));
    assert_eq!(next["id"], "app-5");
    harness.ok(&["session", "kill", "app-5"]);
    // Nothing left to do, and the surviving session lost nothing.
    let again = json(&harness.ok(&["gc", "--json"]));
    assert!(again.as_array().unwrap().is_empty(), "{again:#}");
    assert_eq!(fake_messages(&log), ["four"]);
}

#[test]
fn gc_removes_orphans_but_keeps_uncommitted_work_unless_forced() {
    let harness = Harness::new(&[], "");
    for task in ["a", "b", "c"] {
        harness.ok(&["spawn", "app", "--task", task]);
    }
    // app-1: its tmux session dies -> marked exited. app-2: record lost -> orphan runtime and
    // worktree. app-3: record lost, with uncommitted work in its worktree.
    let handles: Vec<String> = ["app-1", "app-2", "app-3"]
        .iter()
        .map(|id| harness.tmux_session(id))
        .collect();
    harness
        .tmux
        .tmux(&["kill-session", "-t", &format!("={}", handles[0])]);
    std::fs::remove_file(harness.record("app-2", false)).unwrap();
    std::fs::remove_file(harness.record("app-3", false)).unwrap();
    std::fs::write(harness.worktree("app-3").join("work.txt"), "precious").unwrap();
    // An operator's own tmux session on the same server is not ao-host's to touch.
    harness
        .tmux
        .tmux(&["new-session", "-d", "-s", "mine", "--", "env", "cat"]);

    let actions = json(&harness.ok(&["gc", "--json"]));
    let find = |action: &str, target: &str| {
        actions
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == action && a["target"].as_str().unwrap().contains(target))
            .cloned()
    };
    assert_eq!(
        find("mark exited", "app-1").unwrap()["done"],
        true,
        "{actions:#}"
    );
    assert_eq!(
        find("destroy orphan runtime session", &handles[1]).unwrap()["done"],
        true
    );
    assert_eq!(
        find("remove orphan workspace", "app-2").unwrap()["done"],
        true
    );
    let kept = find("remove orphan workspace", "app-3").unwrap();
    assert_eq!(kept["done"], false);
    assert!(kept["detail"].as_str().unwrap().contains("--force"));
    assert!(harness.worktree("app-3").join("work.txt").exists());
    assert!(!harness.worktree("app-2").exists());
    // app-3's runtime session was an orphan too; only its worktree is kept, for its work.
    assert_eq!(harness.tmux.sessions(), vec!["mine".to_string()]);
    assert_eq!(harness.sessions_json(&[])[0]["status"], "exited");

    let forced = json(&harness.ok(&["gc", "--force", "--json"]));
    assert_eq!(
        forced
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["target"].as_str().unwrap().ends_with("app-3")
                && a["action"] == "remove orphan workspace")
            .unwrap()["done"],
        true
    );
    assert!(!harness.worktree("app-3").exists());
    assert!(harness.tmux.sessions().contains(&"mine".to_string()));
}

#[test]
fn fifty_spawns_from_five_processes_then_fifty_kills_leave_nothing_behind() {
    let harness = Harness::new(&[], "");
    let ids: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = (0..5)
            .map(|w| {
                let harness = &harness;
                scope.spawn(move || {
                    (0..10)
                        .map(|n| {
                            let output = harness.ok(&[
                                "spawn",
                                "app",
                                "--task",
                                &format!("task {w}-{n}"),
                                "--json",
                            ]);
                            json(&output)["id"].as_str().unwrap().to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 50);
    assert_eq!(harness.tmux.sessions().len(), 50);
    thread::scope(|scope| {
        for chunk in ids.chunks(10) {
            let harness = &harness;
            scope.spawn(move || {
                for id in chunk {
                    harness.ok(&["session", "kill", id]);
                }
            });
        }
    });
    harness.assert_no_sessions();
    assert_eq!(harness.sessions_json(&["--archived"]).len(), 50);
    let gc = json(&harness.ok(&["gc", "--json"]));
    assert!(gc.as_array().unwrap().is_empty(), "{gc:#}");
}
