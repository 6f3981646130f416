//! The three first-party plugins doing their real job through their real libraries: tmux
//! sessions, git worktrees and the Claude Code command line.

mod support;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use ao_host::plugins::{AgentPlugin, PluginRegistry, RuntimePlugin, WorkspacePlugin};
use ao_plugin_api::{
    abi_stable::std_types::{ROption, RString},
    AgentSession, EnvVar, PluginContext, PluginErrorKind, Readiness, RuntimeCreateRequest,
    WorkspaceCreateConfig,
};
use support::{fake_agent, fake_messages, fake_start, git, init_repo, wait_until, TmuxServer};

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

fn tmux_runtime(server: &TmuxServer, data_dir: &Path) -> RuntimePlugin {
    registry()
        .runtime(
            "tmux",
            &context("tmux", data_dir, &format!("socket: {}", server.socket)),
            TIMEOUT,
        )
        .unwrap()
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

/// Starts the fake agent in tmux and waits for its prompt; returns its log folder.
async fn started_fake(runtime: &RuntimePlugin, id: &str, dir: &Path) -> PathBuf {
    let log = dir.join(format!("log-{id}"));
    let handle = runtime
        .create(fake_launch(id, dir, &log, &[]))
        .await
        .unwrap();
    assert_eq!(handle, id);
    wait_for_prompt(runtime, id).await;
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn tmux_session_gets_the_cwd_and_env_and_runs_argv_without_a_shell() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let log = temp.path().join("log");
    let tricky = "a value with spaces; $(touch /tmp/pwned) `x`";
    let mut request = fake_launch(
        "env-1",
        temp.path(),
        &log,
        &[("AO_SESSION", "env-1"), ("TRICKY", tricky)],
    );
    request
        .launch_command
        .push(RString::from("$HOME; echo not expanded"));
    runtime.create(request).await.unwrap();
    // The fake agent logs under $FAKE_AGENT_LOG/$AO_SESSION.
    let log = log.join("env-1");
    assert!(wait_until(TIMEOUT, || log.join("start.json").exists()));
    let start = fake_start(&log);
    assert_eq!(
        start["cwd"],
        temp.path().canonicalize().unwrap().display().to_string()
    );
    assert_eq!(start["env"]["AO_SESSION"], "env-1");
    assert_eq!(start["env"]["TRICKY"], tricky);
    assert_eq!(start["argv"][1], "$HOME; echo not expanded");
    assert_eq!(server.sessions(), vec!["env-1".to_string()]);
    assert!(runtime.is_alive("env-1").await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_line_hostile_message_arrives_once_and_byte_exact() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let log = started_fake(&runtime, "msg-1", temp.path()).await;
    let message = "first line\nsay \"hi\" and 'bye'\n$(rm -rf /) and `reboot`\n\ttabbed \\ backslash\nemoji 🎉 ünïcödé";
    runtime.send_message("msg-1", message).await.unwrap();
    assert!(wait_until(TIMEOUT, || !fake_messages(&log).is_empty()));
    // Give a duplicate every chance to show up before checking there is none.
    let second = "second message";
    runtime.send_message("msg-1", second).await.unwrap();
    assert!(wait_until(TIMEOUT, || fake_messages(&log).len() >= 2));
    assert_eq!(
        fake_messages(&log),
        vec![message.to_string(), second.to_string()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_100_kb_message_arrives_byte_exact() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let log = started_fake(&runtime, "big-1", temp.path()).await;
    let line = "0123456789 abcdefghij\t\"quoted\" $VAR `cmd` ✓\n";
    let message: String = line.repeat(100 * 1024 / line.len());
    runtime.send_message("big-1", &message).await.unwrap();
    assert!(wait_until(TIMEOUT, || !fake_messages(&log).is_empty()));
    let got = fake_messages(&log);
    assert_eq!(got.len(), 1);
    assert!(
        got[0] == message,
        "message differs: {} vs {} bytes",
        got[0].len(),
        message.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_command_longer_than_a_tmux_message_still_starts() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let log = temp.path().join("log");
    let mut request = fake_launch("long-1", temp.path(), &log, &[]);
    let long_arg = "x'\"$(y)".repeat(5_000);
    request
        .launch_command
        .push(RString::from(long_arg.as_str()));
    runtime.create(request).await.unwrap();
    assert!(wait_until(TIMEOUT, || log.join("start.json").exists()));
    assert_eq!(fake_start(&log)["argv"][1], long_arg.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_is_idempotent_and_an_exited_agent_is_not_alive() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let log = temp.path().join("log");
    runtime
        .create(fake_launch(
            "dies-1",
            temp.path(),
            &log,
            &[("FAKE_AGENT_EXIT_AT_ONCE", "1")],
        ))
        .await
        .unwrap();
    let alive = || async { runtime.is_alive("dies-1").await.unwrap() };
    let deadline = std::time::Instant::now() + TIMEOUT;
    while alive().await {
        assert!(std::time::Instant::now() < deadline, "agent never exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The dead pane keeps its last screen, so the failure can be read.
    let screen = runtime.capture_output("dies-1", 20).await.unwrap();
    assert!(
        screen.contains("the fake agent was told to fail"),
        "{screen}"
    );
    assert_eq!(
        runtime.attach_command("dies-1").await.unwrap(),
        vec![
            "tmux",
            "-L",
            &server.socket,
            "attach-session",
            "-t",
            "=dies-1"
        ]
    );
    assert!(
        runtime.alive_handles().await.unwrap().is_empty(),
        "a dead pane is not alive"
    );
    runtime.destroy("dies-1").await.unwrap();
    runtime.destroy("dies-1").await.unwrap();
    assert!(server.sessions().is_empty());
    assert!(
        runtime.alive_handles().await.unwrap().is_empty(),
        "no server, no sessions"
    );
    let err = runtime.send_message("dies-1", "hello").await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::NotFound, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn session_names_are_matched_exactly_and_validated() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    started_fake(&runtime, "app-10", temp.path()).await;
    assert_eq!(
        runtime.alive_handles().await.unwrap(),
        vec!["app-10".to_string()]
    );
    // `-t app-1` would match `app-10` by prefix; the plugin must not.
    assert!(!runtime.is_alive("app-1").await.unwrap());
    runtime.destroy("app-1").await.unwrap();
    assert_eq!(server.sessions(), vec!["app-10".to_string()]);
    for bad in ["a;b", "-t", "x y", "../x", "$(id)"] {
        let err = runtime
            .create(fake_launch(bad, temp.path(), &temp.path().join("l"), &[]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), PluginErrorKind::InvalidInput, "{bad}: {err}");
    }
    assert_eq!(server.sessions(), vec!["app-10".to_string()]);
}

fn worktree_request(repo: &Path, session: &str) -> WorkspaceCreateConfig {
    WorkspaceCreateConfig {
        project_id: "app".into(),
        session_id: session.into(),
        branch: format!("session/{session}").into(),
        repo_path: repo.display().to_string().into(),
        default_branch: "main".into(),
        symlinks: Vec::new().into(),
        post_create: Vec::new().into(),
        reuse_branch: false,
    }
}

fn branches(repo: &Path) -> Vec<String> {
    git(repo, &["branch", "--format=%(refname:short)"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worktree_gets_its_branch_symlinks_and_post_create() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    std::fs::write(repo.join(".env"), "SECRET=1\n").unwrap();
    let workspace = worktrees(temp.path(), "");
    let mut request = worktree_request(&repo, "app-1");
    request.symlinks = vec![RString::from(".env")].into();
    request.post_create = vec![RString::from("echo ran > post-create.txt")].into();
    let path = PathBuf::from(workspace.create(request).await.unwrap());
    assert_eq!(
        path,
        temp.path().join("worktrees").join("app").join("app-1")
    );
    assert_eq!(
        git(&path, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "session/app-1"
    );
    assert_eq!(
        git(&path, &["rev-parse", "HEAD"]),
        git(&repo, &["rev-parse", "main"])
    );
    assert!(path.join(".env").is_symlink());
    assert_eq!(
        std::fs::read_to_string(path.join(".env")).unwrap(),
        "SECRET=1\n"
    );
    assert_eq!(
        std::fs::read_to_string(path.join("post-create.txt")).unwrap(),
        "ran\n"
    );
    assert!(workspace.exists(&path.display().to_string()).await.unwrap());

    workspace
        .destroy(&path.display().to_string(), false)
        .await
        .unwrap();
    workspace
        .destroy(&path.display().to_string(), false)
        .await
        .unwrap();
    assert!(!path.exists());
    assert!(
        branches(&repo).contains(&"session/app-1".to_string()),
        "branch is kept"
    );
    assert!(!git(&repo, &["worktree", "list"]).contains("app-1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn destroying_a_failed_spawns_worktree_can_delete_its_branch() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let workspace = worktrees(temp.path(), "");
    let path = workspace
        .create(worktree_request(&repo, "app-9"))
        .await
        .unwrap();
    workspace.destroy(&path, true).await.unwrap();
    assert_eq!(branches(&repo), vec!["main".to_string()]);
    assert!(!Path::new(&path).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worktree_starts_from_origin_when_the_remote_has_the_branch() {
    let temp = tempfile::tempdir().unwrap();
    let upstream = temp.path().join("upstream");
    init_repo(&upstream);
    let repo = temp.path().join("clone");
    git(
        temp.path(),
        &[
            "clone",
            "-q",
            upstream.to_str().unwrap(),
            repo.to_str().unwrap(),
        ],
    );
    // Local main moves ahead of origin/main; the worktree must start from origin/main.
    std::fs::write(repo.join("local.txt"), "unpushed\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "local only"]);
    let path = worktrees(temp.path(), "")
        .create(worktree_request(&repo, "app-2"))
        .await
        .unwrap();
    assert_eq!(
        git(Path::new(&path), &["rev-parse", "HEAD"]),
        git(&repo, &["rev-parse", "origin/main"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_worktrees_in_one_repo_all_succeed() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let workspace = worktrees(temp.path(), "");
    let creates = (1..=20).map(|n| {
        let workspace = workspace.clone();
        let request = worktree_request(&repo, &format!("app-{n}"));
        tokio::spawn(async move { workspace.create(request).await })
    });
    let results = futures_join(creates.collect()).await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let listed = git(&repo, &["worktree", "list"]);
    assert_eq!(listed.lines().count(), 21, "{listed}");
    assert_eq!(branches(&repo).len(), 21);
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_post_create_leaves_no_worktree_and_no_branch() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let mut request = worktree_request(&repo, "app-3");
    request.post_create = vec![RString::from("echo boom >&2; exit 7")].into();
    let err = worktrees(temp.path(), "")
        .create(request)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    assert!(err.to_string().contains("exit status: 7"), "{err}");
    assert!(!temp.path().join("worktrees/app/app-3").exists());
    assert_eq!(branches(&repo), vec!["main".to_string()]);
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn escaping_symlinks_and_bad_branches_are_refused_and_leave_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let workspace = worktrees(temp.path(), "");
    for entry in ["../../etc/passwd", "/etc/passwd"] {
        let mut request = worktree_request(&repo, "app-4");
        request.symlinks = vec![RString::from(entry)].into();
        let err = workspace.create(request).await.unwrap_err();
        assert_eq!(err.kind(), PluginErrorKind::InvalidInput, "{entry}: {err}");
    }
    for branch in ["bad..branch", "-x", "has space", "ends.lock"] {
        let mut request = worktree_request(&repo, "app-5");
        request.branch = branch.into();
        let err = workspace.create(request).await.unwrap_err();
        assert!(
            err.to_string().contains("not a valid git branch name"),
            "{branch}: {err}"
        );
    }
    assert_eq!(branches(&repo), vec!["main".to_string()]);
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 1);
    assert!(!temp.path().join("worktrees/app/app-4").exists());
}

fn claude(data_dir: &Path, settings: &str) -> AgentPlugin {
    registry()
        .agent(
            "claude-code",
            &context("claude-code", data_dir, settings),
            TIMEOUT,
        )
        .unwrap()
}

fn agent_session(agent_config: &str, system_prompt: Option<&str>) -> AgentSession {
    AgentSession {
        session_id: "app-7".into(),
        project_id: "app".into(),
        branch: "session/app-7".into(),
        workspace_path: "/work/app-7".into(),
        system_prompt: match system_prompt {
            Some(p) => ROption::RSome(p.into()),
            None => ROption::RNone,
        },
        agent_config: agent_config.into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_launch_command_carries_model_permissions_and_a_prompt_file() {
    let temp = tempfile::tempdir().unwrap();
    let agent = claude(
        temp.path(),
        "command: /opt/claude\nenv: { IS_SANDBOX: \"1\" }\n",
    );
    let prompt = "You are worker app-7.\nReport with `ao-host send`.\n";
    let argv = agent
        .launch_command(&agent_session(
            "model: opus\nskip_permissions: true\n",
            Some(prompt),
        ))
        .await
        .unwrap();
    assert_eq!(
        &argv[..4],
        [
            "/opt/claude",
            "--model",
            "opus",
            "--dangerously-skip-permissions"
        ]
    );
    assert_eq!(argv[4], "--append-system-prompt-file");
    assert_eq!(std::fs::read_to_string(&argv[5]).unwrap(), prompt);

    let argv = agent
        .launch_command(&agent_session("permission_mode: acceptEdits\n", None))
        .await
        .unwrap();
    assert_eq!(argv, ["/opt/claude", "--permission-mode", "acceptEdits"]);

    let env = agent.environment(&agent_session("", None)).await.unwrap();
    assert_eq!(env, vec![EnvVar::new("IS_SANDBOX", "1")]);

    let err = agent
        .launch_command(&agent_session("modle: opus\n", None))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("projects.app.agent_config"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_readiness_answers_the_trust_dialog_only_when_allowed() {
    let temp = tempfile::tempdir().unwrap();
    let screen = std::fs::read_to_string(
        support::repo_root().join("plugins/agent-claude-code/tests/screens/trust-dialog.txt"),
    )
    .unwrap();
    match claude(temp.path(), "trust_workspaces: true")
        .is_ready(&screen)
        .await
        .unwrap()
    {
        Readiness::Blocked { answer, .. } => assert_eq!(answer.len(), 1),
        other => panic!("{other:?}"),
    }
    match claude(temp.path(), "").is_ready(&screen).await.unwrap() {
        Readiness::Blocked { answer, reason } => {
            assert!(answer.is_empty());
            assert!(reason.contains("trust_workspaces: true"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
