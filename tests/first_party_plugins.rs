//! The three first-party plugins doing their real job through their real libraries: tmux
//! sessions, git worktrees and the Claude Code command line.

mod support;

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
    // tmux ends a command at an argument ending in `;`, even in argv.
    request.launch_command.push(RString::from("ends with;"));
    let handle = runtime.create(request).await.unwrap();
    assert_eq!(handle, tmux_handle(&server, temp.path(), "env-1"));
    // The fake agent logs under $FAKE_AGENT_LOG/$AO_SESSION.
    let log = log.join("env-1");
    let start = recorded_start(&log);
    assert_eq!(
        start["cwd"],
        temp.path().canonicalize().unwrap().display().to_string()
    );
    assert_eq!(start["env"]["AO_SESSION"], "env-1");
    assert_eq!(start["env"]["TRICKY"], tricky);
    assert_eq!(start["argv"][1], "$HOME; echo not expanded");
    assert_eq!(start["argv"][2], "ends with;");
    assert_eq!(server.sessions(), vec![name_of(&handle)]);
    assert!(runtime.is_alive(&handle).await.unwrap());
    assert!(
        !runtime.is_alive("env-1").await.unwrap(),
        "the handle is the name"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_line_hostile_message_arrives_once_and_byte_exact() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let (handle, log) = started_fake(&runtime, "msg-1", temp.path()).await;
    let message = "first line\nsay \"hi\" and 'bye'\n$(rm -rf /) and `reboot`\n\ttabbed \\ backslash\nemoji 🎉 ünïcödé";
    runtime.send_message(&handle, message).await.unwrap();
    assert!(wait_until(TIMEOUT, || !fake_messages(&log).is_empty()));
    // Give a duplicate every chance to show up before checking there is none.
    let second = "second message";
    runtime.send_message(&handle, second).await.unwrap();
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
    let (handle, log) = started_fake(&runtime, "big-1", temp.path()).await;
    let line = "0123456789 abcdefghij\t\"quoted\" $VAR `cmd` ✓\n";
    let message: String = line.repeat(100 * 1024 / line.len());
    runtime.send_message(&handle, &message).await.unwrap();
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
    assert_eq!(recorded_start(&log)["argv"][1], long_arg.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_is_idempotent_and_an_exited_agent_is_not_alive() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let log = temp.path().join("log");
    let handle = runtime
        .create(fake_launch(
            "dies-1",
            temp.path(),
            &log,
            &[("FAKE_AGENT_EXIT_AT_ONCE", "1")],
        ))
        .await
        .unwrap();
    let handle = handle.as_str();
    let alive = || async { runtime.is_alive(handle).await.unwrap() };
    let deadline = std::time::Instant::now() + TIMEOUT;
    while alive().await {
        assert!(std::time::Instant::now() < deadline, "agent never exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The dead pane keeps its last screen, so the failure can be read.
    let screen = runtime.capture_output(handle, 20).await.unwrap();
    assert!(
        screen.contains("the fake agent was told to fail"),
        "{screen}"
    );
    assert_eq!(
        runtime.attach_command(handle).await.unwrap(),
        vec![
            "tmux",
            "-S",
            &socket_path(&server),
            "attach-session",
            "-t",
            &format!("={}", name_of(handle))
        ]
    );
    assert!(
        runtime.alive_handles().await.unwrap().is_empty(),
        "a dead pane is not alive"
    );
    runtime.destroy(handle).await.unwrap();
    runtime.destroy(handle).await.unwrap();
    assert!(server.sessions().is_empty());
    assert!(
        runtime.alive_handles().await.unwrap().is_empty(),
        "no server, no sessions"
    );
    assert!(!runtime.is_alive(handle).await.unwrap());
    let err = runtime.send_message(handle, "hello").await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::NotFound, "{err}");
    let err = runtime.send_keys(handle, &["Enter"]).await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::NotFound, "{err}");
    let err = runtime.capture_output(handle, 5).await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::NotFound, "{err}");
}

/// Closing a terminal only hangs it up: an agent that ignores SIGHUP (Gemini CLI does) would
/// live on unseen. `destroy` stops the pane's whole process group first.
#[tokio::test(flavor = "multi_thread")]
async fn destroy_stops_an_agent_that_ignores_hangups_with_what_it_started() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let pid_file = temp.path().join("agent.pid");
    let script = format!(
        "trap '' HUP TERM; echo $$ > '{}'; sleep 300 & sleep 300",
        pid_file.display()
    );
    let handle = runtime
        .create(RuntimeCreateRequest {
            session_id: "stubborn-1".into(),
            cwd: temp.path().display().to_string().into(),
            launch_command: vec![RString::from("sh"), "-c".into(), script.into()].into(),
            env: Vec::new().into(),
        })
        .await
        .unwrap();
    assert!(wait_until(TIMEOUT, || std::fs::read_to_string(&pid_file)
        .is_ok_and(|pid| pid.ends_with('\n'))));
    let pgid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(wait_until(TIMEOUT, || live_group_members(pgid).len() >= 3));
    runtime.destroy(&handle).await.unwrap();
    assert_eq!(live_group_members(pgid), Vec::<u32>::new());
    assert!(server.sessions().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn session_names_are_matched_exactly_and_validated() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let (handle, _) = started_fake(&runtime, "app-10", temp.path()).await;
    assert_eq!(runtime.alive_handles().await.unwrap(), vec![handle.clone()]);
    // `-t app-10` would match `app-10_<tag>` by prefix; the plugin must not.
    assert!(!runtime.is_alive("app-10").await.unwrap());
    runtime.destroy("app-10").await.unwrap();
    assert_eq!(server.sessions(), vec![name_of(&handle)]);
    for bad in ["a;b", "-t", "x y", "../x", "$(id)"] {
        let err = runtime
            .create(fake_launch(bad, temp.path(), &temp.path().join("l"), &[]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), PluginErrorKind::InvalidInput, "{bad}: {err}");
    }
    assert_eq!(server.sessions(), vec![name_of(&handle)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_data_dirs_on_one_tmux_server_never_see_each_others_sessions() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let (dir_a, dir_b) = (temp.path().join("a"), temp.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let (a, b) = (tmux_runtime(&server, &dir_a), tmux_runtime(&server, &dir_b));
    let (handle_a, log_a) = started_fake(&a, "app-1", &dir_a).await;
    let (handle_b, _) = started_fake(&b, "app-1", &dir_b).await;
    assert_eq!(handle_a, tmux_handle(&server, &dir_a, "app-1"));
    assert_eq!(handle_b, tmux_handle(&server, &dir_b, "app-1"));
    assert_ne!(handle_a, handle_b);
    let mut both = vec![name_of(&handle_a), name_of(&handle_b)];
    both.sort();
    assert_eq!(server.sessions(), both);
    assert_eq!(a.alive_handles().await.unwrap(), vec![handle_a.clone()]);
    assert_eq!(b.alive_handles().await.unwrap(), vec![handle_b.clone()]);
    // A data dir that only differs by a suffix is another owner.
    let a_longer = tmux_runtime(&server, &temp.path().join("a2"));
    assert!(a_longer.alive_handles().await.unwrap().is_empty());

    b.destroy(&handle_b).await.unwrap();
    assert_eq!(server.sessions(), vec![name_of(&handle_a)]);
    a.send_message(&handle_a, "still here").await.unwrap();
    assert!(wait_until(TIMEOUT, || fake_messages(&log_a)
        == vec!["still here".to_string()]));
}

#[tokio::test(flavor = "multi_thread")]
async fn alive_handles_ignores_the_operators_own_tmux_sessions() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let (ok, _) = server.tmux(&["new-session", "-d", "-s", "mine", "--", "env", "cat"]);
    assert!(ok);
    assert!(runtime.alive_handles().await.unwrap().is_empty());
    // A session of v0.1.2, marked `1` before tags named the data dir: alive for the record that
    // names it (by its bare name, v0.1.2's handle), but never this data dir's own to remove.
    let (ok, _) = server.tmux(&["new-session", "-d", "-s", "old_tag", "--", "env", "cat"]);
    assert!(ok);
    let (ok, _) = server.tmux(&["set-option", "-t", "=old_tag:^", "@ao-host-session", "1"]);
    assert!(ok);
    let (handle, _) = started_fake(&runtime, "app-1", temp.path()).await;
    assert_eq!(
        runtime.alive_handles().await.unwrap(),
        vec![handle.clone(), "old_tag".to_string()]
    );
    assert!(runtime.is_alive("old_tag").await.unwrap());
    assert_eq!(runtime.owned_handles().await.unwrap(), vec![handle]);
    assert_eq!(server.sessions().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn tmux_refuses_a_taken_name_and_leaves_that_session_as_it_was() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let log = temp.path().join("log");
    let handle = runtime
        .create(fake_launch(
            "dup-1",
            temp.path(),
            &log,
            &[("AO_SESSION", "dup-1")],
        ))
        .await
        .unwrap();
    let pid = |server: &TmuxServer| {
        server
            .tmux(&["list-panes", "-a", "-F", "#{pane_pid} #{@ao-host-handle}"])
            .1
    };
    let before = pid(&server);
    let err = runtime
        .create(fake_launch(
            "dup-1",
            temp.path(),
            &log,
            &[("AO_SESSION", "dup-1")],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(pid(&server), before, "the running agent was not replaced");
    assert!(runtime.is_alive(&handle).await.unwrap());
}

/// Two data dirs whose tags collide name their sessions alike; one's session is never alive to
/// the other, so nothing is typed into it.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_of_another_data_dir_under_the_same_name_is_not_alive_here() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let (ours, theirs) = (temp.path().join("ours"), temp.path().join("theirs"));
    let runtime = tmux_runtime(&server, &ours);
    // Their session, under the very name ours would have.
    let name = tmux_name(&server, &ours, "col-1");
    assert!(
        server
            .tmux(&["new-session", "-d", "-s", &name, "sleep", "60"])
            .0
    );
    let owner = theirs.display().to_string();
    assert!(
        server
            .tmux(&["set-option", "-t", &name, "@ao-host-session", &owner])
            .0
    );
    let handle = tmux_handle(&server, &ours, "col-1");
    assert!(!runtime.is_alive(&handle).await.unwrap());
    let err = runtime
        .send_message(&handle, "not for them")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::NotFound, "{err}");
    // Ours, once it carries our data dir, is.
    assert!(
        server
            .tmux(&[
                "set-option",
                "-t",
                &name,
                "@ao-host-session",
                &ours.display().to_string()
            ])
            .0
    );
    assert!(runtime.is_alive(&handle).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn tmux_doctor_finds_tmux_and_its_version() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let checks = tmux_runtime(&server, temp.path()).doctor().await.unwrap();
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert!(checks[0].ok, "{checks:?}");
    assert_eq!(checks[0].what, "tmux");
    assert!(checks[0].detail.starts_with("tmux "), "{checks:?}");
}

/// Waits until the agent in `handle` has exited (its pane is kept, dead).
async fn wait_for_exit(runtime: &RuntimePlugin, handle: &str) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    while runtime.is_alive(handle).await.unwrap() {
        assert!(std::time::Instant::now() < deadline, "agent never exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn owned_handles_lists_sessions_whose_agent_exited_which_alive_handles_leaves_out() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let (live, _) = started_fake(&runtime, "own-1", temp.path()).await;
    let exit_at_once = [("FAKE_AGENT_EXIT_AT_ONCE", "1")];
    let log = temp.path().join("log");
    let dead = runtime
        .create(fake_launch("own-2", temp.path(), &log, &exit_at_once))
        .await
        .unwrap();
    wait_for_exit(&runtime, &dead).await;
    // Neither the operator's own sessions nor another data dir's are this data dir's.
    let (ok, _) = server.tmux(&["new-session", "-d", "-s", "mine", "--", "env", "cat"]);
    assert!(ok);
    let other = tmux_runtime(&server, &temp.path().join("other"));
    started_fake(&other, "own-3", temp.path()).await;
    // A session made before handles named their server is listed by its bare name, the handle
    // its record holds.
    let old = tmux_name(&server, temp.path(), "own-4");
    let (ok, _) = server.tmux(&["new-session", "-d", "-s", &old, "--", "env", "cat"]);
    assert!(ok);
    let owner = temp.path().display().to_string();
    let target = format!("={old}:^");
    let (ok, _) = server.tmux(&["set-option", "-t", &target, "@ao-host-session", &owner]);
    assert!(ok);

    let mut live_ones = vec![live.clone(), old.clone()];
    live_ones.sort();
    assert_eq!(runtime.alive_handles().await.unwrap(), live_ones);
    let mut all = vec![live.clone(), dead.clone(), old.clone()];
    all.sort();
    assert_eq!(runtime.owned_handles().await.unwrap(), all);
    runtime.destroy(&dead).await.unwrap();
    runtime.destroy(&old).await.unwrap();
    assert_eq!(runtime.owned_handles().await.unwrap(), vec![live]);
    assert_eq!(server.sessions().len(), 3, "{:?}", server.sessions());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handle_for_another_tmux_server_is_refused_naming_both_servers() {
    let temp = tempfile::tempdir().unwrap();
    let (first, second) = (TmuxServer::new(), TmuxServer::new());
    let here = tmux_runtime(&first, temp.path());
    // The same data dir reaching another server: a shell with another TMUX_TMPDIR, or an edited
    // plugins.config.tmux.socket.
    let elsewhere = tmux_runtime(&second, temp.path());
    let (handle, log) = started_fake(&here, "srv-1", temp.path()).await;
    let (own, _) = started_fake(&elsewhere, "srv-2", temp.path()).await;
    let (path_first, path_second) = (socket_path(&first), socket_path(&second));
    assert_ne!(path_first, path_second);
    assert_eq!(handle, tmux_handle(&first, temp.path(), "srv-1"));
    let assert_refused = |kind: PluginErrorKind, message: &str| {
        assert_eq!(kind, PluginErrorKind::InvalidInput, "{message}");
        let parts = [
            path_first.as_str(),
            path_second.as_str(),
            "TMUX_TMPDIR",
            "plugins.config.tmux.socket",
        ];
        for part in parts {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
    };
    let err = elsewhere.destroy(&handle).await.unwrap_err();
    assert_refused(err.kind(), &err.to_string());
    let err = elsewhere.is_alive(&handle).await.unwrap_err();
    assert_refused(err.kind(), &err.to_string());
    let err = elsewhere.send_message(&handle, "hi").await.unwrap_err();
    assert_refused(err.kind(), &err.to_string());
    let err = elsewhere.send_keys(&handle, &["Enter"]).await.unwrap_err();
    assert_refused(err.kind(), &err.to_string());
    let err = elsewhere.capture_output(&handle, 10).await.unwrap_err();
    assert_refused(err.kind(), &err.to_string());
    let screens = elsewhere
        .capture_outputs(vec![handle.clone(), own.clone()], 10)
        .await
        .unwrap();
    let err = screens[0].as_ref().unwrap_err();
    assert_refused(err.kind, err.message());
    assert!(screens[1].as_ref().unwrap().contains("❯\u{a0}"));
    // The command to watch it names its own server, whoever asks.
    assert_eq!(
        elsewhere.attach_command(&handle).await.unwrap(),
        vec![
            "tmux",
            "-S",
            &path_first,
            "attach-session",
            "-t",
            &format!("={}", name_of(&handle))
        ]
    );

    // Untouched on its own server, where the handle works, and so does one from before handles
    // named their server (the bare session name).
    assert_eq!(first.sessions(), vec![name_of(&handle)]);
    assert!(fake_messages(&log).is_empty());
    assert!(here.is_alive(&handle).await.unwrap());
    assert!(here.is_alive(&name_of(&handle)).await.unwrap());
    assert_eq!(here.owned_handles().await.unwrap(), vec![handle.clone()]);
    here.send_message(&handle, "still here").await.unwrap();
    assert!(wait_until(TIMEOUT, || fake_messages(&log)
        == vec!["still here".to_string()]));

    // After a reboot its server is gone, and the session with it: destroying it succeeds.
    let (ok, _) = first.tmux(&["kill-server"]);
    assert!(ok);
    here.destroy(&handle).await.unwrap();
    assert!(!here.is_alive(&handle).await.unwrap());
    let err = here.send_message(&handle, "hello").await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::NotFound, "{err}");
    let err = elsewhere.destroy(&handle).await.unwrap_err();
    assert_refused(err.kind(), &err.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_built_before_owned_handles_gets_the_default() {
    let library = support::build_fixture("old-runtime", support::ApiPatch::OldRuntime);
    let registry = PluginRegistry::load(std::slice::from_ref(&library));
    let context = context("old-runtime", Path::new("/nonexistent"), "");
    let runtime = registry.runtime("old-runtime", &context, TIMEOUT).unwrap();
    let err = runtime.owned_handles().await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::Unsupported, "{err}");
    assert!(
        err.to_string()
            .contains("built before `owned_handles` existed"),
        "{err}"
    );
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

    // Work committed on the branch keeps it alive past the workspace.
    git(
        &path,
        &["commit", "-q", "--allow-empty", "-m", "agent work"],
    );
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
        "a branch with work is kept"
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
    assert!(pending_files(temp.path()).is_empty(), "intent file left");
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

#[tokio::test(flavor = "multi_thread")]
async fn symlinks_naming_a_git_folder_are_refused_and_leave_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    std::fs::create_dir_all(repo.join("sub/.GIT")).unwrap();
    let workspace = worktrees(temp.path(), "");
    for entry in [".git", "sub/.GIT"] {
        let mut request = worktree_request(&repo, "app-6");
        request.symlinks = vec![RString::from(entry)].into();
        let err = workspace.create(request).await.unwrap_err();
        assert_eq!(err.kind(), PluginErrorKind::InvalidInput, "{entry}: {err}");
        assert!(err.to_string().contains("`.git` folder"), "{entry}: {err}");
    }
    assert_eq!(branches(&repo), vec!["main".to_string()]);
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 1);
    assert!(!temp.path().join("worktrees/app/app-6").exists());
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

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_post_create_is_stopped_with_its_processes_and_leaves_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let pid_file = temp.path().join("post-create.pid");
    let mut request = worktree_request(&repo, "app-8");
    request.post_create = vec![RString::from(format!(
        "echo $$ > '{}'; sleep 30",
        pid_file.display()
    ))]
    .into();
    let started = std::time::Instant::now();
    let err = worktrees(temp.path(), "post_create_timeout_ms: 500")
        .create(request)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(15), "{err}");
    let message = err.to_string();
    for part in [
        "sleep 30",
        "500 ms",
        "it and the processes of its process group were stopped",
        "post_create_timeout_ms",
        "defaults.call_timeout_ms",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    assert!(!temp.path().join("worktrees/app/app-8").exists());
    assert_eq!(branches(&repo), vec!["main".to_string()]);
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 1);
    let group: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || live_group_members(group)
            .is_empty()),
        "post_create processes survived: {:?}",
        live_group_members(group)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn discover_repository_finds_the_main_repository_from_anywhere_inside_it() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    std::fs::create_dir_all(repo.join("sub/deeper")).unwrap();
    let workspace = worktrees(temp.path(), "");
    let linked = PathBuf::from(
        workspace
            .create(worktree_request(&repo, "app-1"))
            .await
            .unwrap(),
    );
    std::fs::create_dir_all(linked.join("inner")).unwrap();
    let discover = |dir: PathBuf| {
        let workspace = workspace.clone();
        async move {
            workspace
                .discover_repository(&dir.display().to_string())
                .await
        }
    };
    let root = repo.canonicalize().unwrap();
    for dir in [
        repo.clone(),
        repo.join("sub/deeper"),
        linked.clone(),
        linked.join("inner"),
    ] {
        let info = discover(dir.clone()).await.unwrap();
        assert_eq!(
            Path::new(info.root.as_str()).canonicalize().unwrap(),
            root,
            "{dir:?}"
        );
        assert_eq!(
            info.default_branch,
            ROption::RSome(RString::from("main")),
            "{dir:?}"
        );
    }

    // origin's HEAD branch wins over whatever the main worktree has checked out.
    let upstream = temp.path().join("upstream");
    init_repo(&upstream);
    git(&upstream, &["branch", "-m", "main", "trunk"]);
    let clone = temp.path().join("clone");
    git(
        temp.path(),
        &[
            "clone",
            "-q",
            upstream.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    git(&clone, &["switch", "-q", "-c", "feature"]);
    let info = discover(clone.clone()).await.unwrap();
    assert_eq!(info.default_branch, ROption::RSome(RString::from("trunk")));

    // No remote and a detached HEAD: nothing to tell.
    git(&repo, &["checkout", "-q", "--detach"]);
    assert_eq!(
        discover(repo.clone()).await.unwrap().default_branch,
        ROption::RNone
    );

    let plain = temp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let err = discover(plain).await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::NotFound, "{err}");
    assert!(
        err.to_string().contains("not inside a git repository"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_owned_lists_only_this_data_dirs_worktrees() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let shared_root = temp.path().join("shared-worktrees");
    let settings = format!("root: {:?}", shared_root.display().to_string());
    let (data_a, data_b) = (temp.path().join("data-a"), temp.path().join("data-b"));
    let (a, b) = (worktrees(&data_a, &settings), worktrees(&data_b, &settings));
    let path_a = a.create(worktree_request(&repo, "app-1")).await.unwrap();
    let path_b = b.create(worktree_request(&repo, "app-2")).await.unwrap();
    // A worktree made by hand (or by a version that recorded no owner) is no one's.
    let by_hand = shared_root.join("app").join("app-3");
    git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "by-hand",
            by_hand.to_str().unwrap(),
            "main",
        ],
    );
    assert_eq!(a.list_owned().await.unwrap(), vec![path_a.clone()]);
    assert_eq!(b.list_owned().await.unwrap(), vec![path_b]);
    let admin = git(
        Path::new(&path_a),
        &["rev-parse", "--path-format=absolute", "--git-dir"],
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(&admin).join("ao-owner")).unwrap(),
        data_a.display().to_string()
    );

    // Even in the default root, inside the data dir, a worktree without an owner record and
    // without an intent file of this data dir (see the killed-spawn test) is no one's.
    let private = worktrees(&data_a, "");
    let path = private
        .create(worktree_request(&repo, "app-4"))
        .await
        .unwrap();
    std::fs::remove_file(admin_dir(&path).join("ao-owner")).unwrap();
    assert!(private.list_owned().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_removes_only_worktrees_this_data_dir_made_under_its_root() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let data = temp.path().join("data");
    let workspace = worktrees(&data, "");
    let ours = workspace
        .create(worktree_request(&repo, "app-1"))
        .await
        .unwrap();
    // Made by hand: outside the root, and inside it where a session's would be.
    let outside = temp.path().join("by-hand");
    let inside = data.join("worktrees/app/app-2");
    for (path, branch) in [(&outside, "outside"), (&inside, "inside")] {
        git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                branch,
                path.to_str().unwrap(),
                "main",
            ],
        );
        std::fs::write(path.join("MARK"), "mine").unwrap();
    }
    // An intent file naming the outside one under another session's name.
    std::fs::create_dir_all(data.join("git-worktree/pending")).unwrap();
    std::fs::write(
        data.join("git-worktree/pending/app__app-3"),
        outside.display().to_string(),
    )
    .unwrap();
    for path in [&outside, &inside] {
        let err = workspace
            .destroy(path.to_str().unwrap(), true)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not remove it"), "{err}");
        assert!(path.join("MARK").exists(), "{}", path.display());
    }
    assert_eq!(workspace.list_owned().await.unwrap(), vec![ours.clone()]);
    // A link in the root to a worktree elsewhere is not a worktree of the root.
    let link = data.join("worktrees/app/app-4");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    assert!(workspace
        .destroy(link.to_str().unwrap(), true)
        .await
        .is_err());
    assert!(outside.join("MARK").exists());
    workspace.destroy(&ours, true).await.unwrap();
    assert!(!Path::new(&ours).exists());
}

/// A worktree's admin folder, where the plugin keeps its records.
fn admin_dir(worktree: &str) -> PathBuf {
    PathBuf::from(git(
        Path::new(worktree),
        &["rev-parse", "--path-format=absolute", "--git-dir"],
    ))
}

fn pending_files(data_dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(data_dir.join("git-worktree/pending")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// What a spawn killed between `git worktree add` and the owner record leaves: the worktree
/// (checked out with `--no-checkout`, as the plugin does) and the plugin's intent file.
fn interrupted_create(repo: &Path, data_dir: &Path, root: &Path, session: &str) -> String {
    let path = root.join("app").join(session).display().to_string();
    let branch = format!("session/{session}");
    let args = [
        "worktree",
        "add",
        "-q",
        "--no-checkout",
        "-b",
        &branch,
        &path,
    ];
    git(repo, &[&args[..], &["main"]].concat());
    let pending = data_dir.join("git-worktree/pending");
    std::fs::create_dir_all(&pending).unwrap();
    std::fs::write(pending.join(format!("app__{session}")), &path).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worktree_left_by_a_killed_spawn_is_listed_holds_no_work_and_goes_with_its_branch() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    // A custom root, which lies inside another installation's data dir.
    let outer = temp.path().join("outer");
    let root = outer.join("wt");
    let settings = format!("root: {:?}", root.display().to_string());
    let data = temp.path().join("data");
    let workspace = worktrees(&data, &settings);
    let leaked = interrupted_create(&repo, &data, &root, "app-1");
    assert!(
        git(Path::new(&leaked), &["status", "--porcelain"]).contains("D  README.md"),
        "a half-done checkout shows every file deleted"
    );
    assert_eq!(workspace.list_owned().await.unwrap(), vec![leaked.clone()]);
    assert!(!workspace.has_unsaved_work(&leaked).await.unwrap());
    // The installation whose data dir holds that root claims none of it, with that root or its
    // own.
    for settings in [settings.as_str(), ""] {
        let other = worktrees(&outer, settings);
        assert!(other.list_owned().await.unwrap().is_empty(), "{settings}");
    }

    workspace.destroy(&leaked, false).await.unwrap();
    assert!(!Path::new(&leaked).exists());
    assert_eq!(branches(&repo), vec!["main".to_string()]);
    assert!(workspace.list_owned().await.unwrap().is_empty());

    // An intent file naming no worktree is dropped when listing, unless it is young enough to
    // belong to a create still running.
    let [stale] = &pending_files(&data)[..] else {
        panic!("{:?}", pending_files(&data));
    };
    let fresh = data.join("git-worktree/pending/app__app-2");
    std::fs::write(&fresh, root.join("app/app-2").display().to_string()).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(600);
    std::fs::File::options()
        .write(true)
        .open(stale)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert!(workspace.list_owned().await.unwrap().is_empty());
    assert_eq!(pending_files(&data), vec![fresh]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worktree_whose_create_never_finished_keeps_a_branch_that_holds_commits() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let workspace = worktrees(temp.path(), "");
    let path = workspace
        .create(worktree_request(&repo, "app-1"))
        .await
        .unwrap();
    let admin = admin_dir(&path);
    assert!(admin.join("ao-ready").exists());
    assert!(admin.join("ao-owner").exists());
    assert!(pending_files(temp.path()).is_empty());
    std::fs::write(Path::new(&path).join("work.txt"), "work\n").unwrap();
    assert!(workspace.has_unsaved_work(&path).await.unwrap());

    // Killed during post_create: the owner record is written, the ready one is not.
    std::fs::remove_file(admin.join("ao-ready")).unwrap();
    assert!(!workspace.has_unsaved_work(&path).await.unwrap());
    assert_eq!(workspace.list_owned().await.unwrap(), vec![path.clone()]);
    // Commits on the branch are work: `git branch -d` refuses the branch, and it is kept.
    git(Path::new(&path), &["add", "."]);
    git(Path::new(&path), &["commit", "-q", "-m", "work"]);
    workspace.destroy(&path, false).await.unwrap();
    assert!(!Path::new(&path).exists());
    assert!(
        branches(&repo).contains(&"session/app-1".to_string()),
        "{:?}",
        branches(&repo)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repo_that_is_not_a_git_repository_is_named_as_such() {
    let temp = tempfile::tempdir().unwrap();
    let plain = temp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let err = worktrees(temp.path(), "")
        .create(worktree_request(&plain, "app-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::InvalidInput, "{err}");
    let message = err.to_string();
    let named = format!("{} is not a git repository (git: ", plain.display());
    for part in [
        named.as_str(),
        "not a git repository",
        "fix `repo` for project `app`",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    assert!(!message.contains("default branch"), "{message}");
    assert!(!temp.path().join("worktrees/app/app-1").exists());
    assert!(pending_files(temp.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_branch_checked_out_elsewhere_is_refused_naming_where() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let a = worktrees(&temp.path().join("data-a"), "");
    let b = worktrees(&temp.path().join("data-b"), "");
    // Another installation with the same repository and session_prefix took `session/app-1`.
    let path_a = a.create(worktree_request(&repo, "app-1")).await.unwrap();
    let err = b
        .create(worktree_request(&repo, "app-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::InvalidInput, "{err}");
    for part in [path_a.as_str(), "another session", "session_prefix"] {
        assert!(
            err.to_string().contains(part),
            "{part:?} missing from: {err}"
        );
    }
    assert!(!temp.path().join("data-b/worktrees/app/app-1").exists());
    assert!(Path::new(&path_a).join(".git").exists());

    git(&repo, &["branch", "session/app-5"]);
    git(&repo, &["switch", "-q", "session/app-5"]);
    let err = b
        .create(worktree_request(&repo, "app-5"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("main worktree"), "{err}");
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn worktree_doctor_checks_git_and_the_root() {
    let temp = tempfile::tempdir().unwrap();
    let checks = worktrees(temp.path(), "").doctor().await.unwrap();
    let whats: Vec<&str> = checks.iter().map(|c| c.what.as_str()).collect();
    assert_eq!(whats, ["git", "worktree root"]);
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    assert!(checks[0].detail.starts_with("git version"), "{checks:?}");

    // A root under a plain file can never be made, whoever runs the test.
    std::fs::write(temp.path().join("file"), "").unwrap();
    let settings = format!(
        "root: {:?}",
        temp.path().join("file/sub").display().to_string()
    );
    let checks = worktrees(temp.path(), &settings).doctor().await.unwrap();
    assert!(!checks[1].ok, "{checks:?}");
    assert!(
        checks[1]
            .detail
            .contains("plugins.config.git-worktree.root"),
        "{checks:?}"
    );
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

#[tokio::test(flavor = "multi_thread")]
async fn claude_doctor_runs_the_configured_command_or_says_how_to_install_it() {
    let temp = tempfile::tempdir().unwrap();
    let cli = temp.path().join("claude");
    std::fs::write(&cli, "#!/bin/sh\necho '9.9.9 (Claude Code)'\n").unwrap();
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
    let settings = format!("command: {:?}", cli.display().to_string());
    let checks = claude(temp.path(), &settings).doctor().await.unwrap();
    // The CLI, then whether a managed policy lets it run the hooks (see agent_state.rs).
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert!(checks[0].ok, "{checks:?}");
    assert_eq!(checks[1].what, "Claude Code runs ao-host's hooks");
    assert_eq!(
        checks[0].detail,
        format!("9.9.9 (Claude Code) ({})", cli.display())
    );

    let checks = claude(temp.path(), "command: ao-no-such-claude")
        .doctor()
        .await
        .unwrap();
    assert!(!checks[0].ok, "{checks:?}");
    for part in [
        "npm install -g @anthropic-ai/claude-code",
        "plugins.config.claude-code.command",
    ] {
        assert!(checks[0].detail.contains(part), "{checks:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn capture_outputs_reads_many_screens_in_order_and_fails_each_on_its_own() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let (one, _) = started_fake(&runtime, "cap-1", temp.path()).await;
    let (two, _) = started_fake(&runtime, "cap-2", temp.path()).await;
    let handles = vec![
        one.clone(),
        "cap-gone".to_string(),
        two.clone(),
        "not a handle".to_string(),
        one.clone(),
    ];
    let screens = runtime.capture_outputs(handles, 50).await.unwrap();
    assert_eq!(screens.len(), 5);
    let single = runtime.capture_output(&one, 50).await.unwrap();
    assert_eq!(screens[0].as_ref().unwrap(), &single);
    assert_eq!(
        screens[1].as_ref().unwrap_err().kind,
        PluginErrorKind::NotFound
    );
    assert!(screens[2].as_ref().unwrap().contains("❯\u{a0}"));
    assert_eq!(
        screens[3].as_ref().unwrap_err().kind,
        PluginErrorKind::InvalidInput
    );
    assert_eq!(screens[4].as_ref().unwrap(), &single);
    // Many at once: more than one tmux command's worth.
    let many: Vec<String> = std::iter::repeat_n(two.clone(), 150).collect();
    let screens = runtime.capture_outputs(many, 50).await.unwrap();
    assert_eq!(screens.len(), 150);
    assert!(screens
        .iter()
        .all(|s| s.as_ref().unwrap().contains("❯\u{a0}")));
}
