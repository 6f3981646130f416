//! A confined session on another host: the `bubblewrap` plugin is remote-capable, so it probes
//! and runs bwrap on the host the agent runs on (here a real sshd on 127.0.0.2; bwrap is
//! installed on this same machine). The agent is a script that probes from inside its box, then
//! becomes the fake agent.
//!
//! Skipped, with a message, where sshd cannot run; under CI, failed.

use std::{path::PathBuf, time::Duration};

use support::{remote_world::RemoteWorld, wait_until};

use crate::real_claude_sandbox::boxes_around;

/// What the key planted in the host's HOME holds.
const KEY_TEXT: &str = "remote-planted-secret";

/// Probes from inside the box, each answer on a line of `.probe` in the worktree (written whole
/// by a rename, so a reader never sees half of it), then runs the fake agent (`@AGENT@`),
/// which needs no log folder: the harness's is read-only in the box.
const PROBE: &str = r#"#!/bin/bash
{
  echo "key: $(cat "$HOME/.ssh/id_ed25519" 2>&1)"
  echo "worktree: $(echo ok > "$PWD/written" 2>&1 && cat "$PWD/written")"
  echo "home: $(touch "$HOME/planted" 2>&1 && echo written)"
} > "$PWD/.probe.part" 2>&1
mv "$PWD/.probe.part" "$PWD/.probe"
unset FAKE_AGENT_LOG
exec @AGENT@ "$@"
"#;

#[test]
fn a_confined_session_on_an_ssh_host_runs_its_bwrap_there_writes_its_worktree_and_not_the_hosts_key(
) {
    let Some(world) = RemoteWorld::outside_tmp(&[("alpha", 2)]) else {
        return;
    };
    let harness = &world.harness;
    support::install(
        &support::build_workspace_plugin("ao-sandbox-bubblewrap"),
        &harness.plugin_dir(),
        None,
    );
    let host_home = world.host("alpha").home();
    std::fs::create_dir_all(host_home.join(".ssh")).unwrap();
    std::fs::write(host_home.join(".ssh/id_ed25519"), KEY_TEXT).unwrap();
    let script = harness.home().join("confined-agent.sh");
    let fake = support::fake_agent().display().to_string();
    std::fs::write(&script, PROBE.replace("@AGENT@", &format!("{fake:?}"))).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    harness.edit_config(&[
        (
            &format!("command: {fake:?}"),
            &format!("command: {:?}", script.display().to_string()),
        ),
        (
            "default_branch: main, hosts:",
            "default_branch: main, sandbox: { plugin: bubblewrap, network: full }, hosts:",
        ),
    ]);

    let session = world.spawn("alpha", "work in the box");
    let id = session["id"].as_str().unwrap().to_string();
    assert_eq!(session["host"], "alpha");
    assert_eq!(
        session["sandbox"],
        serde_json::json!({ "plugin": "bubblewrap", "network": "full" }),
        "{session:#}"
    );
    let worktree = PathBuf::from(session["workspace_path"].as_str().unwrap());
    assert!(
        worktree.starts_with(&host_home),
        "{} is not on alpha",
        worktree.display()
    );
    assert!(
        !boxes_around(&worktree).is_empty(),
        "no bwrap process runs the agent in {}",
        worktree.display()
    );
    let probe = worktree.join(".probe");
    assert!(
        wait_until(Duration::from_secs(20), || probe.is_file()),
        "the agent never ran its probes"
    );
    let answers = std::fs::read_to_string(&probe).unwrap();
    assert!(
        answers.contains("worktree: ok"),
        "the worktree is not writable in the box:\n{answers}"
    );
    assert!(
        !answers.contains(KEY_TEXT),
        "the host's key was readable in the box:\n{answers}"
    );
    assert!(
        !answers.contains("home: written") && !host_home.join("planted").exists(),
        "the host's HOME was writable in the box:\n{answers}"
    );
    assert_eq!(world.session(&id)["sandbox"]["plugin"], "bubblewrap");

    // The probes' files are uncommitted work: discarded on purpose.
    world.ok(&["session", "kill", "--force", &id]);
    assert!(
        wait_until(Duration::from_secs(10), || boxes_around(&worktree)
            .is_empty()),
        "bwrap outlived the kill"
    );
    assert!(!worktree.exists(), "the worktree outlived the kill");
    assert!(world.sessions().is_empty());
}
