//! The real Claude Code CLI, offline, driven through `ao-host spawn`: start-up dialogs, readiness
//! and a 5-line paste that must be submitted.
//!
//! Runs when `$AO_TEST_CLAUDE` names the CLI (`.ci/run` installs it from npm) or `claude` is on
//! PATH; otherwise it says it was skipped. Offline, the CLI starts only with an API key it was
//! told to trust (a seeded `~/.claude.json`) and `ANTHROPIC_BASE_URL` on loopback, where nothing
//! listens: it shows the message and then retries the API, which is all this test needs.

mod support;

use std::{path::PathBuf, time::Duration};

use support::{ao_host, git, init_repo, stderr, wait_until, TmuxServer};

fn claude_cli() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AO_TEST_CLAUDE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("claude"))
        .find(|path| path.is_file())
}

#[test]
fn the_real_claude_cli_gets_ready_and_takes_a_five_line_message() {
    let Some(claude) = claude_cli() else {
        eprintln!("skipped: no Claude Code CLI (set AO_TEST_CLAUDE or put `claude` on PATH)");
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let tmux = TmuxServer::new();
    let plugins = temp.path().join("plugins");
    support::install_first_party(&plugins);
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let agent_home = temp.path().join("agent-home");
    std::fs::create_dir_all(&agent_home).unwrap();
    let key = "sk-ant-api03-offline-test-key-0123456789abcdef";
    std::fs::write(
        agent_home.join(".claude.json"),
        format!(
            r#"{{"hasCompletedOnboarding": true, "customApiKeyResponses": {{"approved": ["{}"], "rejected": []}}}}"#,
            &key[key.len() - 20..]
        ),
    )
    .unwrap();
    let config = temp.path().join("ao-rs.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {data:?}\n\
             defaults: {{ ready_timeout_ms: 60000 }}\n\
             plugins:\n  dirs: [{plugins:?}]\n  config:\n\
             \x20   tmux: {{ socket: {socket} }}\n\
             \x20   claude-code:\n      command: {claude:?}\n      trust_workspaces: true\n\
             \x20     env: {{ HOME: {home:?}, ANTHROPIC_API_KEY: {key}, ANTHROPIC_BASE_URL: \"http://127.0.0.1:9\", IS_SANDBOX: \"1\" }}\n\
             projects:\n  app: {{ repo: {repo:?}, default_branch: main }}\n",
            data = temp.path().join("data").display().to_string(),
            plugins = plugins.display().to_string(),
            socket = tmux.socket,
            claude = claude.display().to_string(),
            home = agent_home.display().to_string(),
            repo = repo.display().to_string(),
        ),
    )
    .unwrap();
    let message = "line one\nline \"two\"\n$(rm -rf /)\n`tick`\nfive 🎉";
    let output = ao_host(temp.path())
        .arg("--config")
        .arg(&config)
        .args(["spawn", "app", "--task", message])
        .output()
        .unwrap();
    assert!(output.status.success(), "spawn failed: {}", stderr(&output));

    // Submitted: the message shows in the transcript and the input box is empty again.
    // The one tmux session on this private server (its name is the runtime's: id plus tag).
    let target = format!("={}:", tmux.sessions().join(""));
    let mut screen = String::new();
    let submitted = wait_until(Duration::from_secs(20), || {
        screen = tmux.tmux(&["capture-pane", "-p", "-J", "-t", &target]).1;
        screen.contains("❯ line one") && screen.contains("five 🎉") && screen.contains("❯\u{a0}")
    });
    assert!(submitted, "message not submitted:\n{screen}");
    assert!(
        !screen.contains("[Pasted text"),
        "message left unsubmitted:\n{screen}"
    );
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 2);
}
