//! The three first-party plugins doing their real job through their real libraries, one module
//! each: tmux sessions, git worktrees and the Claude Code command line.

mod claude_code;
mod git_worktree;
mod tmux;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use ao_core::plugins::{AgentPlugin, PluginRegistry, RuntimePlugin, WorkspacePlugin};
use ao_plugin_api::{
    abi_stable::std_types::{ROption, RString},
    AgentSession, EnvVar, PluginContext, PluginErrorKind, Readiness, RuntimeCreateRequest,
    WorkspaceCreateConfig,
};
use ao_plugin_kit::prelude::*;
use support::{fake_agent, fake_messages, git, init_repo, wait_until, TmuxServer};

const TIMEOUT: Duration = Duration::from_secs(30);

fn registry() -> PluginRegistry {
    PluginRegistry::load(support::first_party_build())
}

fn context(name: &str, data_dir: &Path, settings: &str) -> PluginContext {
    PluginContext {
        plugin_name: RString::from(name),
        data_dir: RString::from(data_dir.display().to_string()),
        config_yaml: RString::from(settings),
    }
}

fn tmux_context(server: &TmuxServer, data_dir: &Path) -> PluginContext {
    context("tmux", data_dir, &format!("socket: {}", server.socket))
}

fn tmux_runtime(server: &TmuxServer, data_dir: &Path) -> RuntimePlugin {
    registry()
        .runtime("tmux", &tmux_context(server, data_dir), TIMEOUT)
        .unwrap()
}

/// The tmux session name the runtime gives session `id` of data dir `data_dir`.
fn tmux_name(server: &TmuxServer, data_dir: &Path, id: &str) -> String {
    format!("{id}_{}", tmux_context(server, data_dir).owner_tag())
}

/// The socket path of `server` as tmux itself reports it (the server must be running).
fn socket_path(server: &TmuxServer) -> String {
    let (ok, path) = server.tmux(&["display-message", "-p", "#{socket_path}"]);
    assert!(ok, "tmux server {} is not running", server.socket);
    path.trim_end().to_string()
}

/// The handle the runtime gives session `id` of data dir `data_dir`: `<name>@<socket path>`.
fn tmux_handle(server: &TmuxServer, data_dir: &Path, id: &str) -> String {
    format!(
        "{}@{}",
        tmux_name(server, data_dir, id),
        socket_path(server)
    )
}

/// The tmux session name in a handle.
fn name_of(handle: &str) -> String {
    handle.split('@').next().unwrap().to_string()
}

fn worktrees(data_dir: &Path, settings: &str) -> WorkspacePlugin {
    registry()
        .workspace(
            "git-worktree",
            &context("git-worktree", data_dir, settings),
            TIMEOUT,
        )
        .unwrap()
}

fn fake_launch(
    id: &str,
    cwd: &Path,
    log: &Path,
    extra_env: &[(&str, &str)],
) -> RuntimeCreateRequest {
    let mut env = vec![EnvVar::new("FAKE_AGENT_LOG", log.display().to_string())];
    env.extend(extra_env.iter().map(|(k, v)| EnvVar::new(*k, *v)));
    RuntimeCreateRequest {
        session_id: id.into(),
        cwd: cwd.display().to_string().into(),
        launch_command: vec![RString::from(fake_agent().display().to_string())].into(),
        env: env.into(),
    }
}

/// What the fake agent recorded at start, once it has written all of it (the file appears
/// before its content).
fn recorded_start(log: &Path) -> serde_json::Value {
    let read = || {
        let text = std::fs::read_to_string(log.join("start.json")).ok()?;
        serde_json::from_str(&text).ok()
    };
    assert!(
        wait_until(TIMEOUT, || read().is_some()),
        "no start.json in {log:?}"
    );
    read().unwrap()
}

async fn wait_for_prompt(runtime: &RuntimePlugin, handle: &str) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let screen = runtime.capture_output(handle, 50).await.unwrap();
        if screen.contains("❯\u{a0}") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agent never drew its prompt:\n{screen}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts the fake agent in tmux and waits for its prompt; returns its handle and log folder.
async fn started_fake(runtime: &RuntimePlugin, id: &str, dir: &Path) -> (String, PathBuf) {
    let log = dir.join(format!("log-{id}"));
    let handle = runtime
        .create(fake_launch(id, dir, &log, &[]))
        .await
        .unwrap();
    wait_for_prompt(runtime, &handle).await;
    (handle, log)
}

/// Processes of group `pgid` that still run (zombies do not: where PID 1 does not reap orphans,
/// a killed process stays one).
fn live_group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // pid (comm) state ppid pgrp …; comm may hold spaces.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            (fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()).then_some(pid)
        })
        .collect()
}
