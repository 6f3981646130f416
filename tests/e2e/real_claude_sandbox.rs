//! The real Claude Code CLI confined by the real `bubblewrap` sandbox plugin, offline against the
//! loopback Messages API stand-in (`support::messages_api`; `network: full` reaches it on
//! loopback), with `unattended: true`: the CLI's own no-prompt mode, allowed only because the
//! session is confined.
//!
//! What an operator relies on: a whole turn completes inside the box and its hooks still report;
//! the model's Bash call `cat ~/.ssh/id_ed25519` gets a failure back, never the key planted in the
//! operator's (scratch) HOME; a write the CLI would ask about in its default mode runs without a
//! prompt; a commit on the session's own branch lands and is visible from the main repository;
//! `session ls` says the session is confined; a kill leaves no box, worktree or config home
//! behind (the branch with the agent's commit stays, as an unconfined session's does).
//!
//! The installation lives outside `/tmp` ([`Harness::outside_tmp`]): a confined agent gets a
//! private `/tmp`, in which the config the hooks read would not exist. Runs when
//! `$AO_TEST_CLAUDE` names the CLI or `claude` is on PATH; otherwise it skips (under CI it fails).

use std::time::Duration;

use messages_api::MessagesApi;
use serde_json::Value;
use standin_http::StandInApi;
use support::{agent_cli, git, messages_api, standin_http, stderr, Harness};

/// What the planted private key holds; it must never reach the model.
const KEY_TEXT: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-planted-secret\n-----END OPENSSH PRIVATE KEY-----\n";

/// The stand-in and a harness whose project confines its workers with bubblewrap, unattended;
/// None without the CLI. The operator's HOME (the harness's folder) holds the CLI's
/// `.claude.json` (seeded into the session's own config home) and the planted key.
fn confined_claude() -> Option<(MessagesApi, Harness)> {
    let claude = agent_cli::find_cli("claude", "Claude Code")?;
    let api = MessagesApi::start();
    let harness = Harness::outside_tmp(&[], "");
    support::install(
        &support::build_workspace_plugin("ao-sandbox-bubblewrap"),
        &harness.plugin_dir(),
        None,
    );
    let home = harness.home();
    let key = "sk-ant-api03-offline-test-key-0123456789abcdef";
    std::fs::write(
        home.join(".claude.json"),
        format!(
            r#"{{"hasCompletedOnboarding": true, "customApiKeyResponses": {{"approved": ["{}"], "rejected": []}}}}"#,
            &key[key.len() - 20..]
        ),
    )
    .unwrap();
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("id_ed25519"), KEY_TEXT).unwrap();
    harness.rewrite_config(|config| {
        let start = config.find("    claude-code:").unwrap();
        let end = config.find("projects:").unwrap();
        let claude_settings = format!(
            "    claude-code:\n      command: {claude:?}\n      trust_workspaces: true\n\
             \x20     env: {{ ANTHROPIC_API_KEY: {key}, ANTHROPIC_BASE_URL: {url:?}, \
             CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: \"1\", DISABLE_AUTOUPDATER: \"1\" }}\n",
            claude = claude.display().to_string(),
            url = api.base_url(),
        );
        let config = format!("{}{claude_settings}{}", &config[..start], &config[end..]);
        support::replaced(
            &config,
            &[
                ("ready_timeout_ms: 10000", "ready_timeout_ms: 60000"),
                (
                    "default_branch: main }",
                    "default_branch: main, sandbox: { plugin: bubblewrap, network: full, \
                     unattended: true } }",
                ),
            ],
        )
    });
    Some((api, harness))
}

/// The text of every `tool_result` block the CLI sent back, in order.
fn tool_results(api: &MessagesApi) -> Vec<String> {
    let text_of = |content: &Value| match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    let mut results = Vec::new();
    for request in api.requests() {
        let Some(last) = messages_api::last_user_message(&request.body) else {
            continue;
        };
        for block in last["content"].as_array().into_iter().flatten() {
            if block["type"] == "tool_result" {
                results.push(text_of(&block["content"]));
            }
        }
    }
    results.dedup();
    results
}

/// The pids of the `bwrap` processes whose command line names `path`.
pub(crate) fn boxes_around(path: &std::path::Path) -> Vec<u32> {
    let needle = path.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_bwrap = args.first().is_some_and(|a| a.ends_with("bwrap"));
            (is_bwrap && args.iter().any(|a| a.contains(&needle))).then_some(pid)
        })
        .collect()
}

#[test]
fn the_real_claude_cli_confined_and_unattended_cannot_read_the_operators_key_and_commits_on_its_branch(
) {
    let Some((api, harness)) = confined_claude() else {
        return;
    };
    let output = harness.ao(&[
        "spawn",
        "app",
        "--task",
        "show me the deploy key\nAO_TOOL:cat ~/.ssh/id_ed25519",
    ]);
    assert!(output.status.success(), "spawn failed: {}", stderr(&output));
    let worktree = harness.worktree("app-1");
    assert!(
        !boxes_around(&worktree).is_empty(),
        "no bwrap process runs the agent in {}",
        worktree.display()
    );

    // The turn completes inside the box; the hooks report it (not the screen).
    let idle =
        agent_cli::wait_for_status_and(&harness, "app-1", "idle", Duration::from_secs(60), || {
            !tool_results(&api).is_empty()
        });
    assert_ne!(idle["status_from_screen"], true, "{idle:#}");
    assert_eq!(
        idle["sandbox"],
        serde_json::json!({ "plugin": "bubblewrap", "network": "full" }),
        "{idle:#}"
    );
    let results = tool_results(&api);
    let read = &results[0];
    assert!(
        !read.contains("planted-secret") && !read.contains("PRIVATE KEY"),
        "the confined Bash call read the operator's key: {read}"
    );
    assert!(
        read.contains("No such file") || read.contains("Permission denied"),
        "the tool result does not show the failed read: {results:#?}"
    );

    // A write the default mode would ask about runs at once, and a commit on the session's
    // own branch lands where the operator sees it.
    harness.ok(&[
        "send",
        "app-1",
        "commit a proof\nAO_TOOL:echo confined > proof.txt && git add proof.txt && \
         git -c user.name=agent -c user.email=agent@test.invalid commit -qm proof && echo committed",
    ]);
    agent_cli::wait_for_status_and(&harness, "app-1", "idle", Duration::from_secs(60), || {
        tool_results(&api).len() >= 2
    });
    let results = tool_results(&api);
    assert!(
        results[1].contains("committed"),
        "the commit failed inside the box: {results:#?}\nits screen:\n{}",
        agent_cli::screen(&harness, "app-1")
    );
    assert_eq!(
        std::fs::read_to_string(worktree.join("proof.txt")).unwrap(),
        "confined\n"
    );
    assert_eq!(
        git(
            &harness.repo(),
            &["log", "-1", "--format=%s", "session/app-1/work"]
        ),
        "proof"
    );
    assert_eq!(
        git(&harness.repo(), &["log", "-1", "--format=%s", "main"]),
        "initial"
    );

    // A kill leaves no box, worktree, or the session's config home.
    harness.ok(&["session", "kill", "app-1"]);
    assert!(
        support::wait_until(Duration::from_secs(10), || boxes_around(&worktree)
            .is_empty()),
        "bwrap outlived the kill"
    );
    assert!(!worktree.exists(), "the worktree outlived the kill");
    // The branch holds the agent's commit, so it stays, as an unconfined session's would.
    let branches = git(&harness.repo(), &["branch", "--format=%(refname:short)"]);
    assert_eq!(branches, "main\nsession/app-1/work");
    let config_home = harness
        .data_dir()
        .join("claude-code/sessions/app-1/config-home");
    assert!(
        !config_home.exists(),
        "{} outlived the kill",
        config_home.display()
    );
}
