//! The plugin author kit: the example plugins load, pass `plugins check`, build outside the
//! workspace, and run the whole spawn path without Claude Code.

use std::{path::Path, process::Command, time::Duration};

use ao_core::plugins::{set::plugin_context, PluginRegistry};
use support::{
    ao_host, examples_build, init_repo, install, install_first_party, json, stderr, stdout,
    wait_until,
};

#[test]
fn the_example_plugins_load_and_pass_check() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    for library in examples_build() {
        let installed = install(library, &dir, None);
        let output = ao_host(home.path())
            .args(["plugins", "check", "--json"])
            .arg(&installed)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let output = ao_host(home.path())
        .args(["plugins", "list", "--json", "--plugin-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let listing = json(&output);
    let mut found: Vec<String> = listing["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["status"] == "ok"
                && r["path"]
                    .as_str()
                    .unwrap()
                    .starts_with(dir.to_str().unwrap())
        })
        .map(|r| {
            format!(
                "{} {}",
                r["kind"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect();
    found.sort();
    assert_eq!(found, ["agent shell", "runtime process"]);
}

#[test]
fn an_example_builds_as_a_standalone_crate_outside_the_workspace() {
    let library = support::build_example_standalone("runtime-process");
    let home = tempfile::tempdir().unwrap();
    let output = ao_host(home.path())
        .args(["plugins", "check", "--json"])
        .arg(&library)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(json(&output)[0]["name"], "process");
}

/// The example's own `cargo test`, in a copy outside the workspace as a third party has it:
/// the conformance kit (`ao-plugin-test`, a dev-dependency) builds the example's library and
/// runs every check on it, the test binary itself serving as the probe agent.
#[test]
fn an_example_runs_the_conformance_kit_from_its_own_cargo_test_outside_the_workspace() {
    let (_, mut command) = support::standalone_example("runtime-process", "test");
    let output = command
        .args(["--test", "conformance", "--", "--nocapture"])
        .output()
        .unwrap();
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert!(output.status.success(), "{shown}");
    assert!(
        shown.contains("ao-plugin-test: testing")
            && shown.contains("built with `cargo build --lib"),
        "{shown}"
    );
    for check in [
        "pass  runtime process: send_message: 100 KB",
        "pass  runtime process: back-to-back: text, then Enter at once",
        "pass  runtime process: rapid fire: 20 messages in a row",
        "pass  runtime process: attach_command",
        "pass  runtime process: no printing to stdout",
    ] {
        assert!(shown.contains(check), "no `{check}` in:\n{shown}");
    }
}

/// A home folder with every plugin installed and a repository to work in.
fn demo_home() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let home = tempfile::tempdir().unwrap();
    let plugins = home.path().join("plugins");
    install_first_party(&plugins);
    for library in examples_build() {
        install(library, &plugins, None);
    }
    let repo = home.path().join("demo-repo");
    init_repo(&repo);
    (home, plugins, repo)
}

fn demo(home: &Path, plugins: &Path, repo: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ao-host"))
        .arg("--config")
        .arg(support::repo_root().join("examples/demo.yaml"))
        .arg("--plugin-dir")
        .arg(plugins)
        .args(args)
        .current_dir(repo)
        .env("HOME", home)
        .env("TMUX_TMPDIR", home)
        .env_remove("TMUX")
        .env_remove("AO_CONFIG_PATH")
        .env_remove("AO_PLUGIN_PATH")
        .output()
        .unwrap()
}

#[test]
fn the_demo_config_spawns_a_shell_agent_in_tmux_without_claude() {
    let (home, plugins, repo) = demo_home();
    let output = demo(
        home.path(),
        &plugins,
        &repo,
        &["spawn", "--task", "echo hi-from-demo"],
    );
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(args)
            .env("TMUX_TMPDIR", home.path())
            .output()
            .unwrap()
    };
    let ok = output.status.success();
    let listed = demo(home.path(), &plugins, &repo, &["session", "ls", "--json"]);
    // The tmux session is named by the runtime (the id plus the data dir's tag, `@` its server).
    let target = format!(
        "={}:^",
        support::tmux_name(
            json(&listed)[0]["runtime_handle"]
                .as_str()
                .unwrap_or("none")
        )
    );
    let mut screen = String::new();
    let printed = ok
        && wait_until(Duration::from_secs(10), || {
            screen = String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &target]).stdout)
                .into_owned();
            screen.lines().any(|l| l.trim() == "hi-from-demo")
        });
    tmux(&["kill-server"]);
    assert!(ok, "demo spawn failed: {}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "demo-repo-1");
    assert!(printed, "the shell never ran the task:\n{screen}");
    let sessions = json(&listed);
    assert_eq!(sessions[0]["agent"], "shell");
    assert_eq!(sessions[0]["runtime"], "tmux");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_runs_as_a_plain_process_and_its_output_reads_back() {
    let (home, plugins, repo) = demo_home();
    let output = demo(
        home.path(),
        &plugins,
        &repo,
        &[
            "spawn",
            "--runtime",
            "process",
            "--task",
            "echo out-$((6 * 7))",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let id = stdout(&output).trim().to_string();

    // Read it back through the plugin itself, as any host would.
    let data_dir = home.path().join(".ao-rs");
    let registry = PluginRegistry::load(examples_build());
    let config = ao_core::config::Config::load(None).unwrap();
    let runtime = registry
        .runtime(
            "process",
            &plugin_context(&config, &data_dir, "process"),
            Duration::from_secs(10),
        )
        .unwrap();
    let mut screen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !screen.lines().any(|l| l.trim() == "out-42") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        screen = runtime.capture_output(&id, 50).await.unwrap();
    }
    assert!(screen.lines().any(|l| l.trim() == "out-42"), "{screen}");
    assert_eq!(runtime.alive_handles().await.unwrap(), vec![id.clone()]);

    let killed = demo(home.path(), &plugins, &repo, &["session", "kill", &id]);
    assert!(killed.status.success(), "{}", stderr(&killed));
    assert!(!runtime.is_alive(&id).await.unwrap());
    assert!(!data_dir.join("process-runtime").join(&id).exists());
}

#[test]
fn the_notify_example_is_a_valid_config() {
    let (home, plugins, repo) = demo_home();
    let output = Command::new(env!("CARGO_BIN_EXE_ao-host"))
        .arg("--config")
        .arg(support::repo_root().join("examples/notify.yaml"))
        .arg("--plugin-dir")
        .arg(&plugins)
        .args(["session", "ls", "--json"])
        .current_dir(&repo)
        .env("HOME", home.path())
        .env_remove("AO_CONFIG_PATH")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", support::stderr(&output));
}
