//! The conformance kit (`ao-host plugins test`) on real libraries: every first-party and
//! example plugin passes it, and a runtime with each of the mistakes it exists to catch fails
//! the check that names that mistake, and only that one.

use std::path::Path;

use serde_json::Value;
use support::{
    ao_host, build_fixture, build_workspace_plugin, examples_build, first_party_build, repo_root,
    stderr, ApiPatch, TmuxServer,
};

/// The library kit runs plugins inside this test process and judges every process below it
/// (a failed `create` must leave none, and what it left is stopped): the other tests' `ao-host`
/// and agents would be taken for its leftovers. So a test running it runs alone.
static TURNS: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    TURNS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    TURNS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `plugins test LIBRARY --json` (`extra` arguments added) with `settings` lines under
/// `plugins.config`, on a tmux server of the test's own; returns whether it passed and its checks.
fn kit_with(library: &Path, settings: &str, extra: &[&str]) -> (bool, Vec<Value>) {
    kit_run(
        library,
        &format!("plugins:\n  config:\n{settings}"),
        extra,
        true,
    )
}

/// Runs `plugins test LIBRARY --json` with `config` as the whole config file (its data dir
/// aside): for settings beyond `plugins.config`.
fn kit_with_config(library: &Path, config: &str, extra: &[&str]) -> (bool, Vec<Value>) {
    kit_run(library, config, extra, false)
}

/// [`kit_with`] and [`kit_with_config`]: `with_tmux` gives the tmux plugin a server of the
/// test's own (under `plugins.config`, so only where `config` is that section's lines).
fn kit_run(
    library: &Path,
    config_text: &str,
    extra: &[&str],
    with_tmux: bool,
) -> (bool, Vec<Value>) {
    let home = tempfile::tempdir().unwrap();
    let tmux = TmuxServer::new();
    let config = home.path().join("ao-rs.yaml");
    let config_text = if with_tmux {
        config_text.replacen(
            "plugins:\n  config:\n",
            &format!(
                "plugins:\n  config:\n    tmux: {{ socket: {} }}\n",
                tmux.socket
            ),
            1,
        )
    } else {
        config_text.to_string()
    };
    std::fs::write(
        &config,
        format!(
            "data_dir: {:?}\n{config_text}",
            home.path().join("data").display().to_string(),
        ),
    )
    .unwrap();
    let output = ao_host(home.path())
        .arg("--config")
        .arg(&config)
        .args(["plugins", "test", "--json"])
        .args(extra)
        .arg(library)
        .output()
        .unwrap();
    let checks: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", stderr(&output)));
    assert!(
        tmux.sessions().is_empty(),
        "the kit left tmux sessions: {:?}",
        tmux.sessions()
    );
    (output.status.success(), checks.as_array().unwrap().clone())
}

/// The kit as it runs by default: the library isolated in a child process.
fn kit(library: &Path, settings: &str) -> (bool, Vec<Value>) {
    kit_with(library, settings, &[])
}

fn failed(checks: &[Value]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            format!(
                "{}: {}",
                c["check"].as_str().unwrap(),
                c["detail"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn every_first_party_and_example_plugin_passes_the_kit() {
    let _turn = shared();
    for library in first_party_build().iter().chain(examples_build()) {
        let (passed, checks) = kit_with(library, "", &["--in-process"]);
        assert!(
            passed,
            "in-process, {}: {:#?}",
            library.display(),
            failed(&checks)
        );
        let (passed, checks) = kit(library, "");
        assert!(
            passed,
            "isolated, {}: {:#?}",
            library.display(),
            failed(&checks)
        );
        // A sandbox has one method to check (confine) and fewer checks than the other kinds.
        let least = if checks[0]["kind"] == "sandbox" { 7 } else { 8 };
        assert!(checks.len() >= least, "{}: {checks:#?}", library.display());
        let names: Vec<&str> = checks
            .iter()
            .map(|c| c["check"].as_str().unwrap())
            .collect();
        if checks[0]["kind"] == "runtime" {
            for expected in [
                "send_message: 100 KB",
                "alive_handles: foreign sessions",
                "destroy twice",
                "unknown handle",
                "create in a missing folder",
                "start: exactly the given environment",
                "back-to-back: text, then Enter at once",
                "rapid fire: 20 messages in a row",
                "attach_command",
            ] {
                assert!(
                    names.contains(&expected),
                    "{}: no `{expected}` in {names:?}",
                    library.display()
                );
            }
        }
    }
}

/// Every agent plugin with the screens recorded from its real CLI (`tests/screens/activity.yaml`
/// in its crate).
const AGENTS: [(&str, &str); 4] = [
    ("ao-agent-claude-code", "agent-claude-code"),
    ("ao-agent-codex", "agent-codex"),
    ("ao-agent-opencode", "agent-opencode"),
    ("ao-agent-gemini", "agent-gemini"),
];

#[test]
fn agent_plugins_read_their_recorded_screens_and_wire_their_events() {
    let _turn = shared();
    for (package, folder) in AGENTS {
        let library = build_workspace_plugin(package);
        let screens = repo_root()
            .join("plugins")
            .join(folder)
            .join("tests/screens");
        let screens = screens.display().to_string();
        let (passed, checks) = kit_with(&library, "", &["--screens", &screens]);
        assert!(passed, "{package}: {:#?}", failed(&checks));
        let recorded = std::fs::read_to_string(Path::new(&screens).join("activity.yaml")).unwrap();
        let screen_checks = checks
            .iter()
            .filter(|c| c["check"].as_str().unwrap().starts_with("screen "))
            .count();
        assert_eq!(
            screen_checks,
            recorded
                .lines()
                .filter(|l| !l.starts_with('#') && l.contains(": "))
                .count(),
            "{package}: one check per recorded screen"
        );
        let wiring = checks
            .iter()
            .find(|c| c["check"] == "event wiring")
            .unwrap();
        assert!(
            wiring["detail"]
                .as_str()
                .unwrap()
                .contains("event command is in"),
            "{package}: {wiring}"
        );
    }
}

/// The agent plugins that read their sessions' usage (0.1.9): the kit checks it for them, and
/// says it unsupported, not failed, for the others.
const READ_USAGE: [&str; 4] = [
    "ao-agent-claude-code",
    "ao-agent-codex",
    "ao-agent-gemini",
    "ao-agent-opencode",
];

/// The kit's `usage` checks of one agent plugin's report: those run, or the one skipped.
fn usage_checks(checks: &[Value]) -> Vec<&Value> {
    checks
        .iter()
        .filter(|c| c["check"].as_str().unwrap().starts_with("usage"))
        .collect()
}

#[test]
fn agent_plugins_answer_usage_for_a_session_without_records() {
    let _turn = shared();
    for (package, _) in AGENTS {
        let library = build_workspace_plugin(package);
        let (passed, checks) = kit_with(&library, "", &["--kind", "agent"]);
        assert!(passed, "{package}: {:#?}", failed(&checks));
        let usage = usage_checks(&checks);
        let names: Vec<&str> = usage.iter().map(|c| c["check"].as_str().unwrap()).collect();
        if READ_USAGE.contains(&package) {
            assert_eq!(
                names,
                [
                    "usage: no records",
                    "usage: a garbage cursor",
                    "usage: max_bytes 0 and 1"
                ],
                "{package}: {usage:#?}"
            );
            assert!(usage.iter().all(|c| c["skipped"] == false), "{usage:#?}");
        } else {
            assert_eq!(names, ["usage"], "{package}: {usage:#?}");
            assert_eq!(usage[0]["skipped"], true, "{package}: {usage:#?}");
        }
    }
}

/// An agent plugin whose `usage` counts replies no record holds fails the `usage` checks; one
/// that panics on a cursor it did not write fails `usage: a garbage cursor`; one without
/// `usage` is said to be unsupported, which is no failure.
#[test]
fn usage_that_invents_replies_or_panics_on_a_foreign_cursor_fails_its_checks() {
    let _turn = shared();
    let sloppy = build_fixture("sloppy", ApiPatch::None);
    let (passed, checks) = kit_with(&sloppy, "", &["--kind", "agent"]);
    assert!(passed, "{:#?}", failed(&checks));
    let usage = usage_checks(&checks);
    assert_eq!(usage.len(), 1, "{usage:#?}");
    assert!(
        usage[0]["skipped"] == true
            && usage[0]["detail"]
                .as_str()
                .unwrap()
                .starts_with("not supported"),
        "{usage:#?}"
    );

    let settings = "    sloppy-agent: { invented_usage: true }\n";
    let (passed, checks) = kit_with(&sloppy, settings, &["--kind", "agent"]);
    assert!(!passed);
    let failures = failed(&checks);
    assert_eq!(failures.len(), 3, "{failures:#?}");
    assert!(
        failures[0].starts_with("usage: no records") && failures[0].contains("never happened"),
        "{failures:#?}"
    );

    let settings = "    sloppy-agent: { foreign_cursor_panics: true }\n";
    let (passed, checks) = kit_with(&sloppy, settings, &["--kind", "agent"]);
    assert!(!passed);
    let failures = failed(&checks);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(
        failures[0].starts_with("usage: a garbage cursor"),
        "{failures:#?}"
    );
}

#[test]
fn a_screen_recorded_as_something_else_fails_its_own_check() {
    let _turn = shared();
    let library = build_workspace_plugin("ao-agent-claude-code");
    let screens = tempfile::tempdir().unwrap();
    let recorded = repo_root().join("plugins/agent-claude-code/tests/screens");
    for file in ["busy.txt", "idle.txt", "permission-prompt.txt"] {
        std::fs::copy(recorded.join(file), screens.path().join(file)).unwrap();
    }
    std::fs::write(
        screens.path().join("activity.yaml"),
        "busy.txt: idle\nidle.txt: idle\npermission-prompt.txt: waiting_input\n\
         missing.txt: idle\n../idle.txt: idle\n",
    )
    .unwrap();
    let dir = screens.path().display().to_string();
    let (passed, checks) = kit_with(&library, "", &["--screens", &dir]);
    assert!(!passed);
    let failures = failed(&checks);
    assert_eq!(failures.len(), 3, "{failures:#?}");
    assert!(
        failures.contains(&"screen busy.txt: reads as working, recorded as idle".to_string()),
        "{failures:#?}"
    );
    assert!(failures
        .iter()
        .any(|f| f.starts_with("screen missing.txt: missing.txt:")));
    assert!(failures
        .iter()
        .any(|f| f.contains("not a file inside the screens folder")));

    std::fs::write(screens.path().join("activity.yaml"), "busy.txt: sleeping\n").unwrap();
    let (passed, checks) = kit_with(&library, "", &["--screens", &dir]);
    assert!(!passed);
    assert!(
        failed(&checks)[0].contains("use idle, working, waiting_input or exited"),
        "{:#?}",
        failed(&checks)
    );
}

#[test]
fn an_agent_that_says_it_reports_events_but_wires_nothing_fails_event_wiring() {
    let _turn = shared();
    let sloppy = build_fixture("sloppy", ApiPatch::None);
    let (passed, checks) = kit_with(&sloppy, "", &["--kind", "agent"]);
    assert!(passed, "{:#?}", failed(&checks));
    let settings = "    sloppy-agent: { unwired_events: true }\n";
    let (passed, checks) = kit_with(&sloppy, settings, &["--kind", "agent"]);
    assert!(!passed);
    let failures = failed(&checks);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(
        failures[0].starts_with("event wiring: says it reports events"),
        "{failures:#?}"
    );
}

#[test]
fn a_runtime_with_a_known_mistake_fails_the_check_that_names_it() {
    let _turn = shared();
    let sloppy = build_fixture("sloppy", ApiPatch::None);
    let (passed, checks) = kit(&sloppy, "");
    assert!(
        passed,
        "the fixture without mistakes passes: {:#?}",
        failed(&checks)
    );
    for (setting, check, why) in [
        ("drop_last_byte", "send_message: short", "arrived changed"),
        (
            "leak_failed_create",
            "create in a missing folder",
            "left the agent process running",
        ),
        ("leak_helper", "create in a missing folder", "sleep 300"),
        (
            "list_foreign",
            "alive_handles: foreign sessions",
            "another data dir",
        ),
    ] {
        let settings = format!("    sloppy: {{ {setting}: true }}\n");
        // The fixture keeps its sessions in its process's memory: isolated, each instance has
        // a process of its own, so only in-process can one see another's.
        let (passed, checks) = if setting == "list_foreign" {
            kit_with(&sloppy, &settings, &["--in-process"])
        } else {
            kit(&sloppy, &settings)
        };
        assert!(!passed, "{setting}: the kit passed it");
        let failures = failed(&checks);
        assert!(
            failures
                .iter()
                .any(|f| f.starts_with(check) && f.contains(why)),
            "{setting}: {failures:#?}"
        );
        if setting != "drop_last_byte" {
            assert_eq!(
                failures.len(),
                1,
                "{setting}: only its own check fails: {failures:#?}"
            );
        }
    }
}

/// Every runtime method crashing (or hanging) in an isolated plugin: each call fails on its own
/// with the cause, the kit itself ends normally (exit 1: checks failed), and the plugin is
/// disabled after three crashes in a minute.
#[test]
fn an_isolated_runtime_crashing_in_every_method_never_takes_the_host_down() {
    let _turn = shared();
    use std::os::unix::process::ExitStatusExt;
    let faulty = build_fixture("faulty", ApiPatch::None);
    for (behaviour, cause) in [
        ("segfault", "crashed (SIGSEGV) in create"),
        ("abort", "crashed (SIGABRT) in create"),
        ("exit", "crashed (exit status 0) in create"),
        ("hang", "did not finish `create` within 1000 ms"),
    ] {
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join("ao-rs.yaml");
        std::fs::write(
            &config,
            format!(
                "data_dir: {:?}\ndefaults: {{ call_timeout_ms: 1000 }}\nplugins:\n  config:\n    faulty: {{ methods: {behaviour} }}\n",
                home.path().join("data").display().to_string()
            ),
        )
        .unwrap();
        let output = ao_host(home.path())
            .arg("--config")
            .arg(&config)
            .args(["plugins", "test", "--json"])
            .arg(&faulty)
            .output()
            .unwrap();
        assert_eq!(output.status.signal(), None, "{behaviour}: {output:?}");
        assert_eq!(
            output.status.code(),
            Some(1),
            "{behaviour}: {}",
            stderr(&output)
        );
        let checks: Vec<Value> = serde_json::from_slice::<Value>(&output.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone();
        let failures = failed(&checks);
        assert!(
            failures
                .iter()
                .any(|f| f.starts_with("create") && f.contains(cause)),
            "{behaviour}: {failures:#?}"
        );
        if behaviour != "hang" {
            assert!(
                failures
                    .iter()
                    .any(|f| f.contains("is disabled: it crashed 3 times within a minute")),
                "{behaviour}: {failures:#?}"
            );
        }
    }
}

/// The checks named `prefix…` that failed, and every other failure.
fn split_failures(checks: &[Value], prefixes: &[&str]) -> (Vec<String>, Vec<String>) {
    failed(checks)
        .into_iter()
        .partition(|f| prefixes.iter().any(|p| f.starts_with(p)))
}

/// A runtime that drops the second of two inputs sent at once (as GNU screen's `stuff` does)
/// passes every check that sends one input at a time: only the back-to-back and rapid-fire
/// checks catch it, in `ao-host plugins test` and in the library kit alike.
#[test]
fn a_runtime_that_drops_back_to_back_input_fails_the_back_to_back_checks() {
    let _turn = alone();
    let sloppy = build_fixture("sloppy", ApiPatch::None);
    let named = [
        "back-to-back: text, then Enter at once",
        "rapid fire: 20 messages in a row",
    ];
    let (passed, checks) = kit_with(&sloppy, "", &["--kind", "runtime"]);
    assert!(passed, "{:#?}", failed(&checks));
    let (caught, _) = split_failures(&checks, &named);
    assert!(caught.is_empty(), "{caught:#?}");

    let settings = "    sloppy: { drop_back_to_back: true }\n";
    let (passed, checks) = kit_with(&sloppy, settings, &["--kind", "runtime"]);
    assert!(!passed);
    let (caught, others) = split_failures(&checks, &named);
    assert!(
        others.is_empty(),
        "only the back-to-back checks fail: {others:#?}"
    );
    // The fixture drops an input that comes within 100 ms of the previous one: on a loaded
    // machine the Enter after a text may come later than that, but 20 messages in a row never all
    // do. Each failure says what went missing.
    assert!(!caught.is_empty(), "{checks:#?}");
    assert!(
        caught
            .iter()
            .all(|failure| failure.contains("the second input was dropped")
                || failure.contains("of 20 messages arrived")),
        "{caught:#?}"
    );

    let results = library_kit(&sloppy, "sloppy", "drop_back_to_back: true");
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.check.as_str())
        .collect();
    assert!(
        !failed.is_empty() && failed.iter().all(|check| named.contains(check)),
        "{results:#?}"
    );
}

/// An agent whose `is_ready` never says ready passes every check that reads a screen; the whole
/// launch under a terminal catches it, and without its CLI the report says readiness went
/// unchecked (`skip`, not `pass`). One that says ready before its CLI drew anything fails the
/// empty-screen check.
#[test]
fn an_agent_that_never_becomes_ready_fails_the_readiness_check() {
    let _turn = alone();
    const READINESS: &str = "readiness: a whole launch";
    let sloppy = build_fixture("sloppy", ApiPatch::None);
    let readiness = |checks: &[Value]| -> Value {
        checks
            .iter()
            .find(|c| c["check"] == READINESS)
            .unwrap_or_else(|| panic!("no readiness check: {checks:#?}"))
            .clone()
    };
    let (passed, checks) = kit_with(&sloppy, "", &["--kind", "agent"]);
    assert!(passed, "{:#?}", failed(&checks));
    let unchecked = readiness(&checks);
    assert_eq!(unchecked["skipped"], true, "{unchecked:#}");
    assert!(
        unchecked["detail"]
            .as_str()
            .unwrap()
            .starts_with("readiness not checked: no CLI"),
        "{unchecked:#}"
    );

    let with_cli =
        "defaults: { ready_timeout_ms: 2000 }\nplugins:\n  config:\n    sloppy-agent: { cli: sh";
    let (passed, checks) =
        kit_with_config(&sloppy, &format!("{with_cli} }}\n"), &["--kind", "agent"]);
    assert!(passed, "{:#?}", failed(&checks));
    let ready = readiness(&checks);
    assert_eq!(
        (&ready["ok"], &ready["skipped"]),
        (&Value::Bool(true), &Value::Bool(false)),
        "{ready:#}"
    );

    let (passed, checks) = kit_with_config(
        &sloppy,
        &format!("{with_cli}, never_ready: true }}\n"),
        &["--kind", "agent"],
    );
    assert!(!passed);
    let failures = failed(&checks);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(
        failures[0].starts_with(READINESS) && failures[0].contains("is_ready never said ready"),
        "{failures:#?}"
    );

    let (passed, checks) = kit_with_config(
        &sloppy,
        &format!("{with_cli}, ready_when_blank: true }}\n"),
        &["--kind", "agent"],
    );
    assert!(!passed);
    let failures = failed(&checks);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(
        failures[0].starts_with("reading an empty screen")
            && failures[0].contains("is_ready says ready for an empty screen"),
        "{failures:#?}"
    );

    let results = library_kit_with(
        &sloppy,
        "sloppy-agent",
        "{ cli: sh, never_ready: true }",
        std::time::Duration::from_secs(2),
    );
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.kind == ao_plugin_api::InterfaceKind::Agent && !r.ok)
        .map(|r| r.check.as_str())
        .collect();
    assert_eq!(failed, [READINESS], "{results:#?}");
}

/// A plugin printing to stdout fails its own check in-process (where it would corrupt the
/// host's `--json`), and the kit's own JSON still reads; isolated, the report says it went
/// unchecked. An `attach_command` that shows nothing fails `attach_command`.
#[test]
fn printing_to_stdout_and_a_blind_attach_command_fail_their_checks() {
    let _turn = alone();
    let sloppy = build_fixture("sloppy", ApiPatch::None);
    let settings = "    sloppy: { print_to_stdout: true }\n";
    let (passed, checks) = kit_with(&sloppy, settings, &["--kind", "runtime", "--in-process"]);
    assert!(!passed);
    let failures = failed(&checks);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(
        failures[0].starts_with("no printing to stdout: printed")
            && failures[0].contains("sloppy: is"),
        "{failures:#?}"
    );
    let (passed, checks) = kit_with(&sloppy, settings, &["--kind", "runtime"]);
    assert!(passed, "{:#?}", failed(&checks));
    let stdout = checks
        .iter()
        .find(|c| c["check"] == "no printing to stdout")
        .unwrap();
    assert_eq!(stdout["skipped"], true, "{stdout:#}");

    let settings = "    sloppy: { blind_attach: true }\n";
    let (passed, checks) = kit_with(&sloppy, settings, &["--kind", "runtime"]);
    assert!(!passed);
    let failures = failed(&checks);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(
        failures[0].starts_with(
            "attach_command: `true` ran under a terminal but never showed the session"
        ),
        "{failures:#?}"
    );
}

/// The library kit (what a plugin's own `cargo test` runs), in this process, with `ao-host` as
/// the probe and `settings` (YAML) for the plugin `name`.
fn library_kit(library: &Path, name: &str, settings: &str) -> Vec<ao_plugin_test::CheckResult> {
    library_kit_with(library, name, settings, std::time::Duration::from_secs(60))
}

fn library_kit_with(
    library: &Path,
    name: &str,
    settings: &str,
    ready_timeout: std::time::Duration,
) -> Vec<ao_plugin_test::CheckResult> {
    let settings = ao_plugin_test::KitSettings {
        plugin_settings: [(name.to_string(), settings.to_string())].into(),
        ready_timeout,
        // Stdout is this test binary's, where the harness reports the tests running beside
        // this one: that check is proven through `plugins test --in-process` instead.
        watch_stdout: false,
        ..Default::default()
    };
    let probe = vec![
        env!("CARGO_BIN_EXE_ao-host").to_string(),
        "plugins".to_string(),
        "probe-agent".to_string(),
    ];
    let reactor = tokio::runtime::Runtime::new().unwrap();
    let results = reactor
        .block_on(ao_plugin_test::test_library(
            library, None, &settings, probe, None,
        ))
        .unwrap();
    reactor.shutdown_background();
    results
}

/// The checks of the plugins of `kind`, by name, and whether each held.
fn verdicts(kind: &str, checks: &[Value]) -> Vec<(String, bool)> {
    checks
        .iter()
        .filter(|c| c["kind"] == kind)
        .map(|c| (c["check"].as_str().unwrap().to_string(), c["ok"] == true))
        .collect()
}

#[test]
fn an_scm_plugin_is_checked_offline_in_process_and_isolated() {
    let _turn = shared();
    let library = build_fixture("scm", ApiPatch::None);
    let every_check = [
        "new",
        "rate limits before any call",
        "pull requests of no branch",
        "reviews of no pull request",
        "an unsigned webhook delivery is refused",
        "doctor",
        "no printing to stdout",
    ];
    for extra in [&["--in-process"][..], &[]] {
        let (passed, checks) = kit_with(&library, "", extra);
        assert!(passed, "{extra:?}: {:#?}", failed(&checks));
        let names: Vec<String> = verdicts("scm", &checks)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, every_check, "{extra:?}: {checks:#?}");
    }
}

#[test]
fn an_scm_plugin_that_panics_or_crashes_fails_that_check_only() {
    let _turn = shared();
    let library = build_fixture("scm", ApiPatch::None);
    // A panic is caught in either mode; a crash (SIGSEGV) only isolated, where the next check
    // gets a fresh process.
    for (settings, extra, cause) in [
        (
            "{ methods: panic, only: [webhook] }",
            &["--in-process"][..],
            "panicked",
        ),
        ("{ methods: panic, only: [webhook] }", &[][..], "panicked"),
        (
            "{ methods: segfault, only: [webhook] }",
            &[][..],
            "crashed (SIGSEGV)",
        ),
    ] {
        let (passed, checks) = kit_with(&library, &format!("    fixture-scm: {settings}\n"), extra);
        assert!(!passed, "{settings} {extra:?}: {checks:#?}");
        let failing = failed(&checks);
        assert_eq!(failing.len(), 1, "{settings} {extra:?}: {failing:#?}");
        assert!(
            failing[0].starts_with("an unsigned webhook delivery is refused: ")
                && failing[0].contains(cause),
            "{settings} {extra:?}: {failing:#?}"
        );
        let verdicts = verdicts("scm", &checks);
        assert!(
            verdicts.iter().any(|(name, ok)| name == "doctor" && *ok),
            "the checks after it still ran: {verdicts:?}"
        );
    }
}

#[test]
fn an_scm_plugin_that_needs_settings_is_built_or_refused_as_a_config_error() {
    let _turn = shared();
    let library = build_fixture("scm", ApiPatch::None);
    let (passed, checks) = kit_with(&library, "    fixture-scm: { constructor: error }\n", &[]);
    assert!(
        passed,
        "a config error is an answer: {:#?}",
        failed(&checks)
    );
    let verdicts = verdicts("scm", &checks);
    assert_eq!(verdicts[0], ("new".to_string(), true), "{checks:#?}");
    assert_eq!(verdicts[1].0, "offline questions", "{checks:#?}");
    assert!(
        checks[1]["skipped"] == true
            && checks[1]["detail"]
                .as_str()
                .unwrap()
                .contains("plugins.config"),
        "{checks:#?}"
    );
    let (passed, checks) = kit_with(&library, "    fixture-scm: { constructor: panic }\n", &[]);
    assert!(!passed, "{checks:#?}");
    assert!(
        failed(&checks)[0].starts_with("new: ") && failed(&checks)[0].contains("panicked"),
        "{:#?}",
        failed(&checks)
    );
}

#[test]
fn a_sandbox_plugin_is_checked_offline_in_process_and_isolated() {
    let _turn = shared();
    let library = build_fixture("sandbox", ApiPatch::None);
    let every_check = [
        "new",
        "confine keeps the argv",
        "a relative path is refused",
        "a path with `..` is refused",
        "an empty argv is refused",
        "doctor",
        "no printing to stdout",
    ];
    for extra in [&["--in-process"][..], &[]] {
        let (passed, checks) = kit_with(&library, "", extra);
        assert!(passed, "{extra:?}: {:#?}", failed(&checks));
        let names: Vec<String> = verdicts("sandbox", &checks)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, every_check, "{extra:?}: {checks:#?}");
    }
}

#[test]
fn a_sandbox_plugin_that_takes_bad_paths_or_panics_fails_those_checks_and_a_missing_tool_skips() {
    let _turn = shared();
    let library = build_fixture("sandbox", ApiPatch::None);
    let (passed, checks) = kit_with(&library, "    fixture-sandbox: { lax: true }\n", &[]);
    assert!(!passed, "{checks:#?}");
    let failing = failed(&checks);
    assert_eq!(failing.len(), 2, "{failing:#?}");
    assert!(
        failing[0].starts_with("a relative path is refused: confined anyway")
            && failing[1].starts_with("a path with `..` is refused: confined anyway"),
        "{failing:#?}"
    );

    let (passed, checks) = kit_with(
        &library,
        "    fixture-sandbox: { methods: panic, only: [confine] }\n",
        &[],
    );
    assert!(!passed, "{checks:#?}");
    let failing = failed(&checks);
    assert_eq!(failing.len(), 1, "{failing:#?}");
    assert!(
        failing[0].starts_with("confine keeps the argv: it panicked"),
        "{failing:#?}"
    );

    let (passed, checks) = kit_with(
        &library,
        "    fixture-sandbox: { methods: unavailable, only: [confine] }\n",
        &[],
    );
    assert!(passed, "a tool missing here is no failure: {checks:#?}");
    let confine = checks
        .iter()
        .find(|c| c["check"] == "confine keeps the argv")
        .unwrap();
    assert!(
        confine["skipped"] == true
            && confine["detail"]
                .as_str()
                .unwrap()
                .starts_with("the tool cannot confine here: sandbox fixture cannot confine here"),
        "{confine:#?}"
    );
}
