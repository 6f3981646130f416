//! An installation for the sections that run `ao-host`: release plugins, a repository, a
//! private tmux server, the fake agent as claude-code's program.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::support::{self, init_repo, TmuxServer};

/// An installation for spawn benchmarks: release plugins, a repository, a private tmux server.
pub(crate) struct SpawnSetup {
    pub(crate) dir: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) repo: PathBuf,
    /// The fake agent program, optimised: claude-code's `command`.
    pub(crate) agent: PathBuf,
    pub(crate) tmux: TmuxServer,
}

/// An installation in `work/name` with `plugins`.
pub(crate) fn spawn_setup(plugins: &[PathBuf], work: &Path, name: &str) -> SpawnSetup {
    let dir = work.join(name);
    let agent = support::fake_agent_release();
    let plugin_dir = dir.join("plugins");
    for p in plugins {
        support::install(p, &plugin_dir, None);
    }
    let repo = dir.join("repo");
    init_repo(&repo);
    let tmux = TmuxServer::new();
    let config = dir.join("ao-rs.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {:?}\nplugins:\n  dirs: [{:?}]\n  config:\n    tmux: {{ socket: {} }}\n    claude-code: {{ command: {:?} }}\nprojects:\n  app: {{ repo: {:?}, default_branch: main}}\n",
            dir.join("data").display().to_string(),
            plugin_dir.display().to_string(),
            tmux.socket,
            agent.display().to_string(),
            repo.display().to_string(),
        ),
    )
    .unwrap();
    SpawnSetup {
        dir,
        config,
        repo,
        agent,
        tmux,
    }
}

pub(crate) fn ao_host(setup: &SpawnSetup, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ao-host"));
    command
        .arg("--config")
        .arg(&setup.config)
        .args(args)
        .current_dir(&setup.dir)
        .env_remove("AO_PLUGIN_PATH")
        .env_remove("AO_CONFIG_PATH")
        .env_remove("AO_LOG");
    command
}

/// `ao-host spawn app --task TASK`, which must succeed.
pub(crate) fn spawn_ok(setup: &SpawnSetup, task: &str) {
    let output = ao_host(setup, &["spawn", "app", "--task", task])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
