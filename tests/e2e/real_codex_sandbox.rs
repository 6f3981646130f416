//! The real Codex CLI confined by the bubblewrap sandbox, offline against the Responses API
//! stand-in (`network: full`, so it reaches the loopback stand-in), unattended (its own no-prompt
//! mode, allowed because it is confined): a whole turn completes, and its shell tool, asked to
//! read the operator's planted SSH key, gets a failure back, which is what the model is sent.
//! (`real_claude_sandbox.rs` does the same with Claude Code.)

use std::time::Duration;

use support::standin_http::StandInApi;
use support::{agent_cli, build_workspace_plugin, install, stderr, Harness};

use crate::{real_codex::real_codex_in, sandbox::bwrap_here};

const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY----- planted-for-the-real-cli\n";

#[test]
fn the_real_codex_cli_runs_a_whole_turn_confined_and_its_shell_tool_cannot_read_the_key() {
    if !bwrap_here() {
        return;
    }
    let Some((api, harness)) = real_codex_in(|| Harness::outside_tmp(&[], "")) else {
        return;
    };
    install(
        &build_workspace_plugin("ao-sandbox-bubblewrap"),
        &harness.plugin_dir(),
        None,
    );
    // Codex keeps the operator's HOME (ao-host's), whose `~/.ssh` the sandbox hides.
    std::fs::create_dir_all(harness.home().join(".ssh")).unwrap();
    std::fs::write(harness.home().join(".ssh/id_ed25519"), KEY).unwrap();
    harness.edit_config(&[(
        "default_branch: main, agent_config:",
        "default_branch: main, sandbox: { plugin: bubblewrap, network: full, unattended: true }, \
         agent_config:",
    )]);

    // Unescalated: unattended Codex runs with the `never` approval policy.
    let task = "show me the key AO_UNESCALATED\nAO_TOOL:cat ~/.ssh/id_ed25519";
    let output = harness.ao(&["spawn", "app", "--task", task]);
    assert!(output.status.success(), "spawn failed: {}", stderr(&output));
    let session = agent_cli::wait_for_status(&harness, "app-1", "idle", Duration::from_secs(90));
    assert_eq!(
        session["sandbox"],
        serde_json::json!({"plugin": "bubblewrap", "network": "full"})
    );
    let mut outputs = Vec::new();
    let arrived = support::wait_until(Duration::from_secs(30), || {
        outputs = api
            .requests()
            .iter()
            .filter_map(|request| request.body["input"].as_array().cloned())
            .flatten()
            .filter(|item| item["type"] == "function_call_output")
            .map(|item| item["output"].to_string())
            .collect();
        !outputs.is_empty()
    });
    assert!(
        arrived,
        "no command output reached the model; screen:\n{}",
        agent_cli::screen(&harness, "app-1")
    );
    for body in &outputs {
        assert!(!body.contains("planted-for-the-real-cli"), "{body}");
    }
    assert!(
        outputs.iter().any(|body| body.contains("No such file")),
        "{outputs:#?}"
    );
}
