//! A plugin library loaded into ao-host can be rude to the whole process: print to stdout, ignore
//! SIGTERM, clear the umask, leave an `atexit` handler that never returns. None of that may break
//! what ao-host promises its operator: `--json` is one document, a spawn stops and undoes itself
//! on SIGTERM, what ao-host makes is not writable by others, the command ends once it is done,
//! and its exit status is its verdict even when nobody reads its output.

use std::{
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use support::{json, stderr, stdout, wait_until, Harness};

/// What the claude-code plugin takes for its idle prompt: the faulty runtime shows it, so a
/// spawn on that runtime with `--no-prompt` completes.
fn idle_screen() -> String {
    format!("{rule}\\n❯\u{a0}\\n{rule}\\n", rule = "─".repeat(40))
}

/// Runs `command` to its end, failing the test (and killing it) if that takes over 20 s: a
/// command that hangs is the failure these tests look for.
fn bounded(command: &mut Command) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish_within_20s(child)
}

fn finish_within_20s(mut child: Child) -> Output {
    // Drained while waiting: a megabyte of plugin output must not fill the pipe and block it.
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = std::io::Read::read_to_end(&mut pipe, &mut bytes);
            bytes
        })
    });
    let stdout = child.stdout.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = std::io::Read::read_to_end(&mut pipe, &mut bytes);
            bytes
        })
    });
    let finished = wait_until(Duration::from_secs(20), || {
        child.try_wait().unwrap().is_some()
    });
    if !finished {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("ao-host did not finish within 20 s");
    }
    let status = child.wait().unwrap();
    let collect = |reader: Option<std::thread::JoinHandle<Vec<u8>>>| {
        reader.map(|r| r.join().unwrap()).unwrap_or_default()
    };
    Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    }
}

/// The faulty runtime with `settings`, its sessions completing against an idle screen.
fn faulty_harness(settings: &str) -> Harness {
    let harness = Harness::new(&[], "");
    harness.install_faulty_runtime(&format!("{{ {settings}, screen: \"{}\" }}", idle_screen()));
    harness
}

fn faulty_library(harness: &Harness) -> String {
    harness
        .plugin_dir()
        .join(support::library_file_name("ao-fixture-faulty-real"))
        .display()
        .to_string()
}

#[test]
fn a_plugin_printing_to_stdout_leaves_json_output_one_document() {
    let harness = faulty_harness("constructor: flood, methods: flood");
    let flooding = |args: &[&str]| {
        let output = bounded(harness.command(args).env("AO_TEST_CONSTRUCTOR_FLOOD", "1"));
        // The plugin did print (to stderr now), and stdout is the host's document alone.
        assert!(
            stderr(&output).contains("floods stdout in"),
            "{args:?}: the fixture never printed"
        );
        json(&output)
    };
    let spawned = flooding(&[
        "spawn",
        "app",
        "--runtime",
        "faulty",
        "--no-prompt",
        "--json",
    ]);
    assert_eq!(spawned["id"], "app-1");
    let listed = flooding(&["session", "ls", "--json"]);
    assert_eq!(listed[0]["id"], "app-1", "{listed:#}");
    let plugins = flooding(&["plugins", "list", "--json"]);
    assert!(
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["name"] == "faulty" && row["status"] == "ok"),
        "{plugins:#}"
    );
    let checked = flooding(&["plugins", "check", &faulty_library(&harness), "--json"]);
    assert_eq!(checked[0]["name"], "faulty", "{checked:#}");
    let doctor = flooding(&["doctor", "--json"]);
    assert!(doctor.as_array().is_some_and(|lines| !lines.is_empty()));
    // Plain output too: the id alone, as scripts read it.
    let output = bounded(
        harness
            .command(&["spawn", "app", "--runtime", "faulty", "--no-prompt"])
            .env("AO_TEST_CONSTRUCTOR_FLOOD", "1"),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "app-2\n");
}

#[test]
fn a_plugin_that_ignores_sigterm_cannot_make_a_spawn_uninterruptible() {
    let harness = Harness::new(&[], "");
    // An empty screen: the agent never gets ready, so the spawn waits until it is stopped.
    harness.install_faulty_runtime(
        "{ constructor: ignore_sigterm, methods: ignore_sigterm, only: [create] }",
    );
    harness.edit_config(&[("ready_timeout_ms: 10000", "ready_timeout_ms: 120000")]);
    let spawn = harness
        .command(&["spawn", "app", "--task", "x", "--runtime", "faulty"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The runtime's `create` (which ignored SIGTERM) has returned once the record names it.
    let created = wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(harness.record("app-1", false))
            .unwrap_or_default()
            .contains("runtime_handle: app-1")
    });
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(spawn.id() as i32, libc::SIGTERM) }, 0);
    let output = finish_within_20s(spawn);
    assert!(created, "the spawn never reached its runtime");
    assert!(!output.status.success());
    assert!(stderr(&output).contains("interrupt"), "{}", stderr(&output));
    // Undone: no worktree, branch or active record; the record is archived as errored.
    harness.assert_untouched();
    let archived = harness.sessions_json(&["--archived"]);
    assert_eq!(archived.len(), 1, "{archived:?}");
    assert_eq!(archived[0]["status"], "errored", "{:#}", archived[0]);
}

#[test]
fn only_the_plugin_that_changed_a_signal_is_named_when_it_is_put_back() {
    let harness = faulty_harness("constructor: ignore_sigterm");
    let output = harness
        .command(&["spawn", "app", "--task", "x", "--runtime", "faulty"])
        .env("AO_LOG", "warn")
        .output()
        .unwrap();
    let log = stderr(&output);
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("SIGTERM")).collect();
    // Once: not again by every later stretch of plugin code. Constructors run side by side, so
    // the change may be noticed as another plugin's code returns; `faulty` is named either way.
    assert_eq!(warnings.len(), 1, "one warning wanted:\n{log}");
    assert!(
        warnings[0].contains("runtime plugin `faulty`") && warnings[0].contains("put back"),
        "{log}"
    );
}

/// Every file and folder under `dir` (not following links) that others may write to.
fn writable_by_others(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.permissions().mode() & 0o022 != 0 {
            found.push(format!(
                "{} {:o}",
                path.display(),
                meta.permissions().mode() & 0o7777
            ));
        }
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    found
}

#[test]
fn a_plugin_that_clears_the_umask_does_not_loosen_what_ao_host_makes() {
    let harness = faulty_harness("constructor: umask0, methods: umask0");
    let with_umask_022 = |args: &[&str]| {
        let mut command = harness.command(args);
        // SAFETY: umask is async-signal-safe; it only sets the child's file mode mask.
        unsafe {
            command.pre_exec(|| {
                libc::umask(0o022);
                Ok(())
            });
        }
        let output = bounded(&mut command);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        output
    };
    with_umask_022(&["spawn", "app", "--runtime", "faulty", "--no-prompt"]);
    with_umask_022(&["session", "ls"]);
    with_umask_022(&["spawn", "app", "--runtime", "faulty", "--no-prompt"]);
    with_umask_022(&["session", "kill", "app-1"]);
    // The records, locks, agent state and worktrees were all made after the plugin's
    // `umask(0)` (its constructor runs before the first session is reserved).
    assert!(harness.worktree("app-2").join("README.md").exists());
    let loose = writable_by_others(&harness.data_dir());
    assert!(
        loose.is_empty(),
        "writable by others:\n{}",
        loose.join("\n")
    );
}

#[test]
fn an_atexit_handler_that_never_returns_does_not_hang_the_command() {
    let harness = faulty_harness("constructor: hang_at_exit");
    let library = faulty_library(&harness);
    let checked = bounded(&mut harness.command(&["plugins", "check", &library, "--json"]));
    assert!(checked.status.success(), "{}", stderr(&checked));
    assert_eq!(json(&checked)[0]["status"], "ok");
    let spawned = bounded(&mut harness.command(&[
        "spawn",
        "app",
        "--runtime",
        "faulty",
        "--no-prompt",
        "--json",
    ]));
    assert!(spawned.status.success(), "{}", stderr(&spawned));
    assert_eq!(json(&spawned)["id"], "app-1");
    // A failing command ends with its own status too.
    let refused = bounded(&mut harness.command(&["session", "kill", "app-9"]));
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
}

/// Runs `args` with a stdout nobody reads: the read end of its pipe is closed before it starts.
fn with_stdout_closed(harness: &Harness, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = harness
        .command(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish_within_20s(child)
}

#[test]
fn a_closed_stdout_never_turns_a_refusal_into_success() {
    let harness = faulty_harness("constructor: error");
    let library = faulty_library(&harness);
    for json in [false, true] {
        let mut args = vec!["plugins", "check", library.as_str()];
        if json {
            args.push("--json");
        }
        let output = with_stdout_closed(&harness, &args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&output).contains("faulty fixture refuses to start"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // A usable library, or a listing, still succeeds when the reader has what it wanted.
    let tmux = harness
        .plugin_dir()
        .join(support::library_file_name("ao-runtime-tmux"));
    let output = with_stdout_closed(&harness, &["plugins", "check", tmux.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = with_stdout_closed(&harness, &["session", "ls", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}
