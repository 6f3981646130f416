//! The conformance kit (`ao-host plugins test`) on real libraries: every first-party and
//! example plugin passes it, and a runtime with each of the mistakes it exists to catch fails
//! the check that names that mistake, and only that one.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{
    ao_host, build_fixture, build_workspace_plugin, examples_build, first_party_build, repo_root,
    stderr, ApiPatch, TmuxServer,
};

/// Runs `plugins test LIBRARY --json` (`extra` arguments added) with `settings` lines under
/// `plugins.config`, on a tmux server of the test's own; returns whether it passed and its checks.
fn kit_with(library: &Path, settings: &str, extra: &[&str]) -> (bool, Vec<Value>) {
    let home = tempfile::tempdir().unwrap();
    let tmux = TmuxServer::new();
    let config = home.path().join("ao-rs.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {:?}\nplugins:\n  config:\n    tmux: {{ socket: {} }}\n{settings}",
            home.path().join("data").display().to_string(),
            tmux.socket
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
        assert!(checks.len() >= 8, "{}: {checks:#?}", library.display());
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

#[test]
fn a_screen_recorded_as_something_else_fails_its_own_check() {
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
