//! The tmux runtime: sessions, messages, destroy and the handles it owns.

use super::*;

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
