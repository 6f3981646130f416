//! The orchestrator orchestrates: from inside its session, `ao-host` works as its prompt says —
//! not installed, on no PATH of the operator's, with no config file.

use std::{path::Path, process::Command, time::Duration};

use support::{fake_agent, fake_messages, git, init_repo, install_first_party, wait_until};

#[test]
fn an_orchestrator_runs_workers_from_inside_its_session_without_install_or_config() {
    let temp = tempfile::tempdir().unwrap();
    let home = temp.path();
    let plugins = home.join("plugins");
    install_first_party(&plugins);
    let repo = home.join("app");
    init_repo(&repo);
    // `claude` is the fake; ao-host itself is on no PATH.
    let bin = home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(fake_agent(), bin.join("claude")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    assert!(!path
        .split(':')
        .any(|dir| Path::new(dir).join("ao-host").exists()));
    let logs = home.join("logs");
    let out = logs.join("app-orchestrator-1");
    // What the orchestrator does through its Bash tool.
    let script = format!(
        "set -x; cd {out:?} && \
         ao-host spawn --task 'first job' > spawn1.out 2>&1 && \
         ao-host spawn --task 'second job' > spawn2.out 2>&1 && \
         ao-host session ls --json > ls.json 2>&1 && \
         ao-host send app-1 'hello worker' > send.out 2>&1 && \
         \"$AO_HOST_BIN\" session kill app-2 > kill.out 2>&1; \
         echo $? > {done:?}",
        out = out.display().to_string(),
        done = home.join("script.done").display().to_string(),
    );
    let ao = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ao-host"))
            .args(args)
            .current_dir(&repo)
            .env("HOME", home)
            .env("TMUX_TMPDIR", home)
            .env("PATH", &path)
            .env("AO_PLUGIN_PATH", &plugins)
            .env("FAKE_AGENT_LOG", &logs)
            .env("FAKE_ORCHESTRATOR_SCRIPT", &script)
            .env_remove("TMUX")
            .env_remove("AO_CONFIG_PATH")
            .env_remove("AO_SESSION")
            .env_remove("AO_DATA_DIR")
            .env_remove("AO_PROJECT_ID")
            .output()
            .unwrap()
    };
    // A tmux server started by someone else's shell holds their AO_CONFIG_PATH in its global
    // environment; sessions must not inherit it.
    let decoy = home.join("decoy.yaml");
    std::fs::write(&decoy, "projects: { other: { repo: /nonexistent } }\n").unwrap();
    let started = Command::new("tmux")
        .args(["new-session", "-d", "-s", "decoy", "sleep", "600"])
        .env("HOME", home)
        .env("TMUX_TMPDIR", home)
        .env("PATH", &path)
        .env("FAKE_AGENT_LOG", &logs)
        .env("FAKE_ORCHESTRATOR_SCRIPT", &script)
        .env("AO_CONFIG_PATH", &decoy)
        .env_remove("TMUX")
        .status()
        .unwrap();
    assert!(started.success());
    let output = ao(&["orchestrator"]);
    assert!(output.status.success(), "{}", support::stderr(&output));
    assert!(
        // Whole, not merely created: `echo $? > script.done` creates the file before it writes.
        wait_until(Duration::from_secs(60), || std::fs::read_to_string(
            home.join("script.done")
        )
        .is_ok_and(|done| done.ends_with('\n'))),
        "the orchestrator's commands never finished; its log:\n{}",
        std::fs::read_to_string(out.join("script.log")).unwrap_or_default()
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    assert_eq!(
        std::fs::read_to_string(home.join("script.done"))
            .unwrap()
            .trim(),
        "0",
        "{}\n{}",
        read("script.log"),
        ["spawn1.out", "spawn2.out", "send.out", "kill.out"]
            .map(read)
            .join("\n")
    );

    // The records agree: two workers of the orchestrator's project, one killed.
    let listed: serde_json::Value = serde_json::from_str(&read("ls.json")).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{listed:#}");
    for session in listed.as_array().unwrap() {
        assert_eq!(session["project_id"], "app");
        assert_eq!(
            session["caller"],
            session["id"] == "app-orchestrator-1",
            "{session:#}"
        );
    }
    let now = ao(&["session", "ls", "--json"]);
    let now: serde_json::Value = serde_json::from_slice(&now.stdout).unwrap();
    let mut active: Vec<&str> = now
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    active.sort();
    assert_eq!(active, ["app-1", "app-orchestrator-1"]);
    assert!(wait_until(Duration::from_secs(10), || fake_messages(
        &logs.join("app-1")
    )
    .contains(&"hello worker".to_string())));
    assert_eq!(fake_messages(&logs.join("app-1"))[0], "first job");
    // The workers' worktrees are of the same repository, on their own branches.
    let worktrees = git(&repo, &["worktree", "list"]);
    assert!(worktrees.contains("[session/app-1]"), "{worktrees}");
    assert!(!worktrees.contains("[session/app-2]"), "{worktrees}");
    for id in ["app-1", "app-orchestrator-1"] {
        let _ = ao(&["session", "kill", id, "--force"]);
    }
    let _ = Command::new("tmux")
        .args(["kill-server"])
        .env("TMUX_TMPDIR", home)
        .env_remove("TMUX")
        .status();
}
