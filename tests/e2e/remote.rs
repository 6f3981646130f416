//! Sessions on other hosts, against real OpenSSH servers: two hosts with addresses of their own
//! (127.0.0.2 and 127.0.0.3), generated host and client keys, the real tmux and git-worktree
//! plugins running their programs over ssh, and the fake agent.
//!
//! Skipped, with a message, where sshd cannot run (not installed, not root); under CI, failed.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use support::{
    fake_messages, git, json, remote_world::RemoteWorld, sshd, stderr, stdout, wait_until,
};

use ao_plugin_kit::prelude::*;

/// The two hosts: alpha at 127.0.0.2, beta at 127.0.0.3.
const HOSTS: [(&str, u8); 2] = [("alpha", 2), ("beta", 3)];

/// The fake agent's log folder of session `id`.
fn agent_log(world: &RemoteWorld, id: &str) -> PathBuf {
    world.harness.log_dir().join(id)
}

#[test]
fn sessions_on_two_hosts_through_spawn_send_ls_unreachable_restore_kill_and_gc() {
    let Some(mut world) = RemoteWorld::start(&HOSTS, None) else {
        return;
    };
    let task = "-first\ttask, \"quoted\" $(not run) `x` 🎉\nsecond line";
    let a = world.spawn("alpha", task);
    let id_a = a["id"].as_str().unwrap().to_string();
    assert_eq!(a["host"], "alpha");
    // The agent runs on alpha, in a worktree of alpha's clone, under this data dir's folder there.
    let worktree = PathBuf::from(a["workspace_path"].as_str().unwrap());
    assert!(
        worktree.starts_with(world.host("alpha").home().join(".ao-rs/hosts")),
        "{}",
        worktree.display()
    );
    assert!(worktree.join(".git").is_file());
    assert!(world.tmux_alive(&a), "no tmux session on alpha");
    let log = agent_log(&world, &id_a);
    assert!(wait_until(Duration::from_secs(10), || fake_messages(&log)
        .first()
        .is_some_and(|m| m == task)));

    let message = "a message\twith tabs, 'quotes' and ünïcödé\nover two lines";
    world.ok(&["send", &id_a, message]);
    assert!(wait_until(Duration::from_secs(10), || fake_messages(&log)
        .iter()
        .any(|m| m == message)));
    let listed = world.session(&id_a);
    assert_eq!(listed["host"], "alpha");
    assert_ne!(listed["status"], "exited");
    // One shared connection carried all of it: spawn, send and listing.
    let logins = world.host("alpha").logins();
    assert!(
        (1..=3).contains(&logins),
        "{logins} ssh connections to alpha"
    );

    let b = world.spawn("beta", "work on beta");
    let id_b = b["id"].as_str().unwrap().to_string();
    assert_eq!(b["host"], "beta");
    assert!(world.tmux_alive(&b));
    // `any`: both hosts run one session; the first by name wins the tie, then the other.
    let c = world.spawn("any", "anywhere");
    assert_eq!(c["host"], "alpha");
    let d = world.spawn("any", "anywhere else");
    assert_eq!(d["host"], "beta");
    let id_c = c["id"].as_str().unwrap().to_string();
    let id_d = d["id"].as_str().unwrap().to_string();
    let text = stdout(&world.ok(&["session", "ls"]));
    assert!(text.contains("HOST"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&id_b) && l.contains("beta")),
        "{text}"
    );

    // Beta goes away: its sessions are unreachable, never exited, and nothing is lost.
    world.host_mut("beta").stop();
    let sessions = world.sessions();
    for session in &sessions {
        let id = session["id"].as_str().unwrap();
        if session["host"] == "beta" {
            assert_eq!(session["status"], "unreachable", "{session}");
            assert!(
                session["note"].as_str().unwrap().contains("`beta`"),
                "{session}"
            );
        } else {
            assert_ne!(session["status"], "unreachable", "{id}: {session}");
        }
    }
    let gc = stdout(&world.ok(&["gc"]));
    assert!(gc.contains("beta"), "gc says nothing of beta: {gc}");
    for id in [&id_b, &id_d] {
        assert_eq!(world.session(id)["status"], "unreachable");
        assert!(world.harness.record(id, false).exists(), "{id} lost");
    }
    let refused = world.ao(&["send", &id_b, "hello?"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("beta"), "{}", stderr(&refused));
    assert!(fake_messages(&agent_log(&world, &id_b))
        .iter()
        .all(|m| m != "hello?"));
    let refused = world.ao(&["spawn", "app", "--host", "beta", "--task", "x"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("host `beta`"),
        "{}",
        stderr(&refused)
    );

    // Back again: the statuses come back too.
    world.host_mut("beta").resume();
    assert!(wait_until(Duration::from_secs(20), || {
        world
            .sessions()
            .iter()
            .all(|s| s["status"] != "unreachable")
    }));
    assert!(world.tmux_alive(&world.session(&id_b)));

    // The agent on beta exits (its tmux server dies): exited, then restored there.
    world
        .host("beta")
        .tmux(&world.harness.tmux.socket, &["kill-server"]);
    assert!(wait_until(Duration::from_secs(10), || world.session(&id_b)
        ["status"]
        == "exited"));
    world.ok(&["session", "restore", &id_b]);
    let restored = world.session(&id_b);
    assert_ne!(restored["status"], "exited");
    assert_eq!(restored["host"], "beta");
    assert!(world.tmux_alive(&restored));

    // Kill on each host removes what it made there.
    for id in [&id_a, &id_b, &id_c, &id_d] {
        let session = world.session(id);
        world.ok(&["session", "kill", id]);
        assert!(!world.tmux_alive(&session), "{id}'s tmux session left");
        let path = PathBuf::from(session["workspace_path"].as_str().unwrap());
        assert!(!path.exists(), "{id}'s worktree left: {}", path.display());
        // The agent's own files of the session there (its system prompt) go too.
        let host_data = path.ancestors().nth(3).unwrap();
        let agent_files = host_data.join("claude-code/sessions").join(id);
        assert!(
            host_data.join("worktrees").is_dir(),
            "{}",
            host_data.display()
        );
        assert!(!agent_files.exists(), "{} left", agent_files.display());
    }
    assert!(world.sessions().is_empty());
    let plan = stdout(&world.ok(&["gc", "--dry-run"]));
    assert!(
        !plan.contains("destroy") && !plan.contains("remove orphan"),
        "{plan}"
    );
}

#[test]
fn an_unreachable_host_or_an_unknown_key_makes_nothing_anywhere_and_says_the_fix() {
    let Some(world) = RemoteWorld::start(&HOSTS, None) else {
        return;
    };
    // Nothing listens there.
    world.write_hosts(&[(
        "gamma",
        "  gamma: { ssh: root@127.0.0.4, port: 9, options: { ConnectTimeout: 2 } }\n",
    )]);
    let refused = world.ao(&["spawn", "app", "--host", "gamma", "--task", "x"]);
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(
        err.contains("host `gamma`") && err.contains("did not answer"),
        "{err}"
    );
    assert!(world.harness.sessions_json(&["--archived"]).is_empty());

    // Alpha's key is not known: refused, with the fix for this very file.
    std::fs::write(&world.known_hosts, world.host("beta").known_hosts_line()).unwrap();
    let refused = world.ao(&["spawn", "app", "--host", "alpha", "--task", "x"]);
    let err = stderr(&refused);
    assert!(!refused.status.success());
    let fix = format!(
        "ssh-keyscan -p {} 127.0.0.2 >> {}",
        world.host("alpha").port,
        world.known_hosts.display()
    );
    assert!(err.contains(&fix), "{err}");
    // A changed key: refused, and the old one named for removal.
    let other = world.host("beta").known_hosts_line().replace(
        &format!("[127.0.0.3]:{}", world.host("beta").port),
        &format!("[127.0.0.2]:{}", world.host("alpha").port),
    );
    std::fs::write(
        &world.known_hosts,
        other + &world.host("beta").known_hosts_line(),
    )
    .unwrap();
    let refused = world.ao(&["spawn", "app", "--host", "alpha", "--task", "x"]);
    let err = stderr(&refused);
    assert!(err.contains("CHANGED"), "{err}");
    assert!(
        err.contains(&format!("-R '[127.0.0.2]:{}'", world.host("alpha").port)),
        "{err}"
    );
    let doctor = stdout(&world.ao(&["doctor"]));
    assert!(
        doctor.contains("host `alpha`") && doctor.contains("CHANGED"),
        "{doctor}"
    );
    assert!(world.harness.sessions_json(&["--archived"]).is_empty());
    assert_eq!(
        world.host("alpha").logins(),
        0,
        "no login with an unverified key"
    );
    let worktrees = world.host("alpha").home().join(".ao-rs");
    assert!(!worktrees.exists(), "something was made on alpha");
}

#[test]
fn a_100_kb_message_reaches_a_remote_agent_byte_exact_and_doctor_checks_each_host() {
    let Some(world) = RemoteWorld::start(&HOSTS, None) else {
        return;
    };
    // The agent there gets beta's login environment, plus what `pass_env` names of this one.
    world.harness.edit_config(&[(
        "  beta: { ssh:",
        "  beta: { pass_env: [AO_TEST_PASS*, AO_DASH*], ssh:",
    )]);
    let local_path = format!("/local-only-marker:{}", std::env::var("PATH").unwrap());
    let spawned = world
        .harness
        .command(&[
            "spawn", "app", "--host", "beta", "--task", "start", "--json",
        ])
        .env("AO_TEST_PASSED", "handed on")
        .env("AO_TEST_KEPT", "stays here")
        // Matched by a prefix only: the dashboard's token needs its full name in `pass_env`.
        .env("AO_DASHBOARD_TOKEN", "the-dashboards-token")
        .env("SSH_AUTH_SOCK", "/local/agent.sock")
        .env("PATH", &local_path)
        .output()
        .unwrap();
    assert!(spawned.status.success(), "{}", stderr(&spawned));
    let session = json(&spawned);
    let id = session["id"].as_str().unwrap();
    let env = &support::fake_start(&agent_log(&world, id))["env"];
    assert_eq!(env["AO_TEST_PASSED"], "handed on");
    assert!(env.get("AO_TEST_KEPT").is_none(), "{env}");
    assert!(env.get("AO_DASHBOARD_TOKEN").is_none(), "{env}");
    assert_ne!(env["SSH_AUTH_SOCK"], "/local/agent.sock");
    let path = env["PATH"].as_str().unwrap();
    assert!(!path.contains("local-only-marker"), "{path}");
    // What sshd gives a login there.
    assert!(env["SSH_CONNECTION"].is_string(), "{env}");
    let line = "\tindented line with 'quotes', \"double\", $(x) and ünï 🎉\n";
    let message: String = line.repeat(100 * 1024 / line.len());
    world.ok(&["send", id, &message]);
    let log = agent_log(&world, id);
    assert!(wait_until(Duration::from_secs(20), || fake_messages(&log)
        .contains(&message)));
    let doctor = json(&world.ok(&["doctor", "--json"]));
    let lines = doctor.as_array().unwrap();
    for host in ["alpha", "beta"] {
        let prefix = format!("host `{host}`");
        assert!(
            lines
                .iter()
                .any(|l| l["what"] == prefix.as_str() && l["ok"] == true),
            "{doctor:#}"
        );
        for program in ["tmux", "git"] {
            assert!(
                lines.iter().any(|l| {
                    let what = l["what"].as_str().unwrap();
                    what.starts_with(&prefix)
                        && what.ends_with(&format!(": {program}"))
                        && l["ok"] == true
                }),
                "no {program} check on {host}: {doctor:#}"
            );
        }
    }
    world.ok(&["session", "kill", id]);
}

#[test]
fn a_banner_a_missing_tmux_and_a_second_data_dir_sharing_a_host_folder_change_nothing_they_should_not(
) {
    let Some(mut world) = RemoteWorld::start(&HOSTS, None) else {
        return;
    };
    // A login shell that talks: every answer still parses.
    std::fs::write(
        world.host("beta").home().join(".bashrc"),
        "echo 'Welcome to beta, a banner'\n",
    )
    .unwrap();
    let session = world.spawn("beta", "with a banner");
    let id = session["id"].as_str().unwrap().to_string();
    world.ok(&["send", &id, "still fine"]);
    assert_ne!(world.session(&id)["status"], "unreachable");

    // A second installation, its data dir's path hostile to ssh's config syntax, sharing the
    // host folder: its sessions and this one's never touch.
    let other_data = world.harness.home().join("data two %h 'q'");
    let our_tag = ao_plugin_api::PluginContext {
        plugin_name: "".into(),
        data_dir: world.harness.data_dir().display().to_string().into(),
        config_yaml: "".into(),
    }
    .owner_tag();
    let other_config = world.harness.home().join("other.yaml");
    let config = std::fs::read_to_string(world.harness.config_path()).unwrap();
    let config = support::replaced(
        &config,
        &[
            (
                &format!(
                    "data_dir: {:?}",
                    world.harness.data_dir().display().to_string()
                ),
                &format!("data_dir: {:?}", other_data.display().to_string()),
            ),
            (
                "default_branch: main,",
                "default_branch: main, session_prefix: other,",
            ),
            // The very folder this installation's own things are in there (each data dir must
            // still get a folder of its own below it).
            (
                "options:",
                &format!("data_dir: ~/.ao-rs/hosts/{our_tag}, options:"),
            ),
        ],
    );
    std::fs::write(&other_config, config).unwrap();
    let home = world.harness.home().to_path_buf();
    let other = |args: &[&str]| {
        support::ao_host(&home)
            .arg("--config")
            .arg(&other_config)
            .args(args)
            .output()
            .unwrap()
    };
    let theirs = other(&[
        "spawn", "app", "--host", "beta", "--task", "theirs", "--json",
    ]);
    assert!(theirs.status.success(), "{}", stderr(&theirs));
    let theirs = json(&theirs);
    // Each data dir rides a connection of its own.
    // Its path is no ssh config word: its sockets are in a private folder under /tmp.
    let their_tag = ao_plugin_api::PluginContext {
        plugin_name: "".into(),
        data_dir: other_data.display().to_string().into(),
        config_yaml: "".into(),
    }
    .owner_tag();
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    let their_dir = std::env::temp_dir().join(format!("ao-host-ssh-{uid}-{their_tag}"));
    let (ours, their_sockets) = (sockets(&world.harness.data_dir()), sockets_in(&their_dir));
    assert_eq!(
        (ours.len(), their_sockets.len()),
        (1, 1),
        "{ours:?} {their_sockets:?}"
    );
    let (our_master, their_master) = (master_pid(&ours[0]), master_pid(&their_sockets[0]));
    assert!(our_master.is_some() && their_master.is_some() && our_master != their_master);
    assert!(other(&["gc"]).status.success());
    world.ok(&["gc"]);
    assert!(
        world.tmux_alive(&session),
        "gc of the other data dir took ours"
    );
    assert!(
        world.tmux_alive(&theirs),
        "our gc took the other data dir's"
    );
    sshd::close_shared_connections(&other_data);

    // tmux gone from the host: a kill cannot remove the session there, so it fails and keeps
    // the record (it never reports a kill that did not happen).
    world.host_mut("beta").restart_with_env("PATH=/nonexistent");
    let refused = world.ao(&["session", "kill", &id]);
    assert!(!refused.status.success(), "{}", stdout(&refused));
    assert!(stderr(&refused).contains("tmux"), "{}", stderr(&refused));
    assert!(world.harness.record(&id, false).exists());
    world.host_mut("beta").restart_with_env("");
    world.ok(&["session", "kill", &id]);
    assert!(!world.tmux_alive(&session));
    let theirs_id = theirs["id"].as_str().unwrap();
    assert!(other(&["session", "kill", theirs_id]).status.success());
}

#[test]
fn every_login_shell_runs_post_create_and_doctor_alike() {
    for shell in [
        "/bin/bash",
        "/bin/dash",
        "/usr/bin/zsh",
        "/usr/bin/fish",
        "/usr/bin/tcsh",
    ] {
        let missing = format!("{shell} (apt-get install zsh fish tcsh)");
        if !support::require_program((!Path::new(shell).exists()).then_some(missing)) {
            continue;
        }
        let Some(world) = RemoteWorld::start(&HOSTS, Some(Path::new(shell))) else {
            return;
        };
        // Every shell's startup file talks, as a login greeting would.
        let home = world.host("alpha").home();
        for rc in [".bashrc", ".zshenv", ".tcshrc", ".config/fish/config.fish"] {
            let rc = home.join(rc);
            std::fs::create_dir_all(rc.parent().unwrap()).unwrap();
            std::fs::write(&rc, "echo 'Welcome 9.9, a banner'\n").unwrap();
        }
        // Quotes, `!`, `$`, a redirection and a newline: each read differently by some login
        // shell, and by `sh` alike.
        world.harness.edit_config(&[(
            "default_branch: main,",
            r#"default_branch: main, post_create: ["printf '%s\\n' \"it's $((6 * 7))!\" > post-created.txt 2>&1", "test -s post-created.txt"],"#,
        )]);
        let session = world.spawn("alpha", "from any shell");
        let worktree = PathBuf::from(session["workspace_path"].as_str().unwrap());
        assert_eq!(
            std::fs::read_to_string(worktree.join("post-created.txt"))
                .unwrap_or_else(|e| format!("{e}")),
            "it's 42!\n",
            "post_create under {shell}"
        );
        let doctor = json(&world.ok(&["doctor", "--json"]));
        let tmux = doctor
            .as_array()
            .unwrap()
            .iter()
            .find(|l| {
                let what = l["what"].as_str().unwrap_or_default();
                what.starts_with("host `alpha`") && what.ends_with(": tmux")
            })
            .unwrap_or_else(|| panic!("no tmux check on alpha under {shell}: {doctor:#}"));
        let detail = tmux["detail"].as_str().unwrap_or_default();
        assert!(
            tmux["ok"] == true && detail.starts_with("tmux 3.") && !detail.contains("Welcome"),
            "tmux on alpha under {shell}: {tmux:#}"
        );
        // What post_create wrote is uncommitted work: discarded on purpose.
        world.ok(&[
            "session",
            "kill",
            "--force",
            session["id"].as_str().unwrap(),
        ]);

        // A failing post_create fails the spawn, whatever the shell, and leaves nothing.
        world
            .harness
            .edit_config(&[("\"test -s post-created.txt\"", "\"false\"")]);
        let refused = world.ao(&["spawn", "app", "--host", "alpha", "--task", "fails"]);
        assert!(
            !refused.status.success(),
            "a failing post_create passed under {shell}: {}",
            stdout(&refused)
        );
        assert!(
            stderr(&refused).contains("post_create command \"false\" failed")
                && stderr(&refused).contains("printed nothing on stderr"),
            "{shell}: {}",
            stderr(&refused)
        );
        let clone = world.host("alpha").home().join("app");
        let worktrees = git(&clone, &["worktree", "list", "--porcelain"]);
        assert_eq!(
            worktrees.matches("worktree ").count(),
            1,
            "{shell} left a worktree: {worktrees}"
        );
        assert!(
            world.sessions().is_empty(),
            "{shell}: {:?}",
            world.sessions()
        );
    }
}

/// A `git` for a host, ahead of the real one on its `PATH`: a `git worktree remove` run while
/// the file `cut-connection` exists in the host's folder cuts the ssh connection it came over
/// (killing the sshd processes serving it) and removes the file, so the next connection works;
/// while `stop-host` exists, it stops the host's sshd too (a host going down half-way through a
/// kill); while `kill-the-kill` exists, it `kill -9`s the process whose pid the test writes
/// to `kill-pid` (the kill itself, cut off half-way). Anything else is the real git.
const HALF_WAY_GIT: &str = r#"#!/bin/sh
case " $* " in
*" worktree remove "*)
  if [ -e "$HOST_DIR/kill-the-kill" ]; then
    # The test writes the pid of its `ao-host session kill` once started.
    while [ ! -s "$HOST_DIR/kill-pid" ]; do sleep 0.05; done
    pid=$(cat "$HOST_DIR/kill-pid")
    # Gone before the kill is, so the test sees them gone once the kill has ended.
    rm -f "$HOST_DIR/kill-the-kill" "$HOST_DIR/kill-pid"
    kill -9 "$pid"
    exit 1
  fi
  if [ -e "$HOST_DIR/cut-connection" ] || [ -e "$HOST_DIR/stop-host" ]; then
    rm -f "$HOST_DIR/cut-connection"
    p=$$
    while [ "$p" -gt 1 ]; do
      parent=$(cut -d' ' -f4 "/proc/$p/stat")
      case "$(cat /proc/$p/comm)" in
      sshd*)
        # The listener is the sshd whose parent is no sshd: stopped only with the host.
        case "$(cat /proc/$parent/comm)" in
        sshd*) kill -9 "$p" ;;
        *) [ -e "$HOST_DIR/stop-host" ] && kill -9 "$p" ;;
        esac ;;
      esac
      p=$parent
    done
    exit 1
  fi ;;
esac
exec "$REAL_GIT" "$@"
"#;

#[test]
fn a_kill_cut_off_half_way_is_retried_or_kept_as_killing_until_kill_or_gc_finishes_it() {
    let Some(mut world) = RemoteWorld::start(&HOSTS, None) else {
        return;
    };
    let bin = world.host("alpha").dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let git_path = bin.join("git");
    std::fs::write(
        &git_path,
        HALF_WAY_GIT
            .replace("$HOST_DIR", &world.host("alpha").dir.display().to_string())
            .replace("$REAL_GIT", &real_git()),
    )
    .unwrap();
    std::fs::set_permissions(
        &git_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    world.host_mut("alpha").restart_with_env(&format!(
        "PATH={}:/usr/local/bin:/usr/bin:/bin",
        bin.display()
    ));
    let cut = world.host("alpha").dir.join("cut-connection");
    let stop = world.host("alpha").dir.join("stop-host");

    // The connection is lost once, between stopping the agent and removing its worktree: the
    // kill tries again and finishes.
    let retried = world.spawn("alpha", "cut once");
    let id = retried["id"].as_str().unwrap().to_string();
    let worktree = PathBuf::from(retried["workspace_path"].as_str().unwrap());
    std::fs::write(&cut, "").unwrap();
    world.ok(&["session", "kill", &id]);
    assert!(!cut.exists(), "the connection was never cut");
    assert!(!world.tmux_alive(&retried));
    assert!(!worktree.exists(), "{} left", worktree.display());
    assert!(world.sessions().is_empty());

    // The host goes down at that point and stays down: the kill fails, saying what is left,
    // and the session is `killing` (not `exited`, not archived) until a kill or gc finishes it.
    let mut left = Vec::new();
    for task in ["finished by kill", "finished by gc"] {
        let session = world.spawn("alpha", task);
        let id = session["id"].as_str().unwrap().to_string();
        std::fs::write(&stop, "").unwrap();
        let failed = world.ao(&["session", "kill", &id]);
        assert!(!failed.status.success(), "a half-done kill reported done");
        let message = stderr(&failed);
        let worktree = session["workspace_path"].as_str().unwrap().to_string();
        assert!(
            message.contains("`killing`") && message.contains(&worktree),
            "{message}"
        );
        std::fs::remove_file(&stop).unwrap();
        world.host_mut("alpha").stop();
        world.host_mut("alpha").resume();
        sshd::close_shared_connections(&world.harness.data_dir());
        assert!(!world.tmux_alive(&session), "{id}'s agent still runs");
        assert!(PathBuf::from(&worktree).exists());
        let listed = world.session(&id);
        assert_eq!(listed["status"], "killing", "{listed}");
        assert!(
            listed["note"].as_str().unwrap().contains(&worktree),
            "{listed}"
        );
        left.push((id, PathBuf::from(worktree)));
    }
    let archived_status = |id: &str| {
        world
            .harness
            .sessions_json(&["--archived"])
            .into_iter()
            .find(|s| s["id"] == id)
            .map(|s| s["status"].clone())
    };
    let (by_kill, by_kill_worktree) = &left[0];
    world.ok(&["session", "kill", by_kill]);
    assert!(!by_kill_worktree.exists());
    assert_eq!(archived_status(by_kill).unwrap(), "killed");
    let (by_gc, by_gc_worktree) = &left[1];
    let gc = stdout(&world.ok(&["gc"]));
    assert!(gc.contains("finish kill"), "{gc}");
    assert!(!by_gc_worktree.exists());
    assert_eq!(archived_status(by_gc).unwrap(), "killed");
    assert!(world.sessions().is_empty());

    // The kill itself `kill -9`ed between stopping the agent and removing its worktree: the
    // session lists as `killing` (never `exited`, which reads as restorable) and gc finishes it.
    let session = world.spawn("alpha", "its kill is killed");
    let id = session["id"].as_str().unwrap().to_string();
    let worktree = PathBuf::from(session["workspace_path"].as_str().unwrap());
    let kill_the_kill = world.host("alpha").dir.join("kill-the-kill");
    std::fs::write(&kill_the_kill, "").unwrap();
    let mut kill = world
        .harness
        .command(&["session", "kill", &id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::fs::write(
        world.host("alpha").dir.join("kill-pid"),
        kill.id().to_string(),
    )
    .unwrap();
    let ended = kill.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&ended),
        Some(9),
        "the kill was not cut off"
    );
    assert!(!kill_the_kill.exists());
    assert!(!world.tmux_alive(&session));
    assert!(worktree.exists());
    let listed = world.session(&id);
    assert_eq!(listed["status"], "killing", "{listed}");
    let gc = stdout(&world.ok(&["gc"]));
    assert!(gc.contains("finish kill"), "{gc}");
    assert!(!worktree.exists(), "{} left", worktree.display());
    assert_eq!(archived_status(&id).unwrap(), "killed");
    assert!(world.sessions().is_empty());
}

/// Where git is on this machine (and so on the test hosts).
fn real_git() -> String {
    ["/usr/local/bin/git", "/usr/bin/git", "/bin/git"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect("git is installed")
        .to_string()
}

/// A folder of links to every program in /usr/bin, /usr/local/bin and /bin but git's: a `PATH`
/// for a host where git is not installed.
fn programs_but_git(dir: &std::path::Path) -> PathBuf {
    let bin = dir.join("bin-without-git");
    std::fs::create_dir_all(&bin).unwrap();
    for folder in ["/usr/local/bin", "/usr/bin", "/bin"] {
        for entry in std::fs::read_dir(folder).unwrap().flatten() {
            let name = entry.file_name();
            let link = bin.join(&name);
            if !name.to_string_lossy().starts_with("git") && !link.exists() {
                std::os::unix::fs::symlink(entry.path(), link).unwrap();
            }
        }
    }
    bin
}

/// A spawn on `host` that fails; its error line.
fn failed_spawn(world: &RemoteWorld, host: &str) -> String {
    let failed = world.ao(&["spawn", "app", "--host", host, "--task", "x"]);
    assert!(!failed.status.success(), "spawned: {}", stdout(&failed));
    stderr(&failed)
}

#[test]
fn failures_on_a_host_name_their_cause_and_the_setting_to_fix() {
    let Some(mut world) = RemoteWorld::start(&HOSTS, None) else {
        return;
    };
    // A wrong clone path is the host's entry of the project, not its `repo`.
    let clone = format!(
        "{:?}",
        world.host("alpha").home().join("app").display().to_string()
    );
    world
        .harness
        .edit_config(&[(&clone, "\"/srv/no-such-clone\"")]);
    let said = failed_spawn(&world, "alpha");
    assert!(
        said.contains("`projects.app.hosts.alpha`") && !said.contains("fix `repo`"),
        "{said}"
    );
    world.write_hosts(&[]);

    // git missing on the host is said so, not that the clone is no repository.
    let without_git = programs_but_git(&world.host("alpha").dir);
    world
        .host_mut("alpha")
        .restart_with_env(&format!("PATH={}", without_git.display()));
    let said = failed_spawn(&world, "alpha");
    assert!(
        said.contains("`git` not found on host `alpha`") && !said.contains("not a git repository"),
        "{said}"
    );
    world.host_mut("alpha").restart_with_env("");
    sshd::close_shared_connections(&world.harness.data_dir());

    // The connection lost while post_create runs: said so, with the host and the phase, not
    // as post_create's failure with ssh's status. The spawn is undone over a new connection.
    let cut = world.host("alpha").dir.join("cut-connection.sh");
    std::fs::write(
        &cut,
        r#"p=$$
while [ "$p" -gt 1 ]; do
  parent=$(cut -d' ' -f4 "/proc/$p/stat")
  case "$(cat /proc/$p/comm)" in
  sshd*) case "$(cat /proc/$parent/comm)" in sshd*) kill -9 "$p" ;; esac ;;
  esac
  p=$parent
done
"#,
    )
    .unwrap();
    world.harness.edit_config(&[(
        "default_branch: main,",
        &format!(
            "default_branch: main, post_create: [\"sh {}\"],",
            cut.display()
        ),
    )]);
    let said = failed_spawn(&world, "alpha");
    assert!(
        said.contains("connection to host `alpha` was lost during post_create")
            && !said.contains("255"),
        "{said}"
    );
    assert!(world.sessions().is_empty());
    world.write_hosts(&[]);
    sshd::close_shared_connections(&world.harness.data_dir());

    // A full disk on the host: said so, not as a program's "I/O error".
    let data = world.host("alpha").home().join(".ao-rs");
    std::fs::create_dir_all(&data).unwrap();
    world.host_mut("alpha").restart_with_mounts(&format!(
        "mount -t tmpfs -o size=64k,mode=0700 tmpfs '{data}' && \
         {{ dd if=/dev/zero of='{data}/fill' bs=4k 2>/dev/null; exec \"$@\"; }}",
        data = data.display()
    ));
    let said = failed_spawn(&world, "alpha");
    assert!(
        said.contains("disk full on host `alpha`") && !said.contains("I/O error"),
        "{said}"
    );
    assert!(world.sessions().is_empty());
}

/// The shared connections' sockets of a data dir (see `ao_core::remote::connection`).
fn sockets(data_dir: &std::path::Path) -> Vec<PathBuf> {
    sockets_in(&data_dir.join("ssh"))
}

/// The sockets in folder `dir`.
fn sockets_in(dir: &std::path::Path) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
        .map(|e| e.path())
        .collect()
}

/// The pid of the ssh master listening on `socket` (`ssh -O check`).
fn master_pid(socket: &std::path::Path) -> Option<i32> {
    let output = std::process::Command::new("ssh")
        .arg("-o")
        .arg(format!("ControlPath={}", socket.display()))
        .args(["-O", "check", "unused"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    said.split("pid=").nth(1)?.split(')').next()?.parse().ok()
}

#[test]
fn twenty_five_cold_parallel_spawns_and_ten_parallel_kills_share_one_connection_within_sshds_limits(
) {
    let Some(world) = RemoteWorld::start(&HOSTS, None) else {
        return;
    };
    // sshd's defaults (MaxStartups 10:30:100, MaxSessions 10): nothing in its config says
    // otherwise.
    let config = std::fs::read_to_string(world.host("beta").dir.join("sshd_config")).unwrap();
    assert!(
        !config.contains("MaxStartups") && !config.contains("MaxSessions"),
        "{config}"
    );
    assert!(sockets(&world.harness.data_dir()).is_empty());
    let spawns = (0..25).map(|i| {
        ["spawn", "app", "--host", "beta", "--json"]
            .map(String::from)
            .into_iter()
            .chain([format!("--task=parallel {i}")])
            .collect()
    });
    let mut ids = Vec::new();
    let mut failures = Vec::new();
    for output in world.at_once(spawns) {
        if output.status.success() {
            ids.push(json(&output)["id"].as_str().unwrap().to_string());
        } else {
            failures.push(stderr(&output));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    let logins = world.host("beta").logins();
    assert!(logins <= 2, "{logins} connections opened to beta");
    let log = std::fs::read_to_string(world.host("beta").dir.join("sshd.log")).unwrap();
    assert!(
        !log.contains("MaxStartups") && !log.contains("no more sessions"),
        "sshd refused some: {log}"
    );
    assert_eq!(world.sessions().len(), 25);

    world.kill_at_once(&ids[..10]);
    let left = world.sessions();
    assert_eq!(left.len(), 15, "{left:#?}");
    for id in &ids[..10] {
        assert!(left.iter().all(|s| s["id"] != id.as_str()));
    }
    let log = std::fs::read_to_string(world.host("beta").dir.join("sshd.log")).unwrap();
    assert!(!log.contains("no more sessions"), "{log}");
    assert!(
        world.host("beta").logins() <= 2,
        "{} connections",
        world.host("beta").logins()
    );
    for id in &ids[10..] {
        world.ok(&["session", "kill", id]);
    }
}

#[test]
fn a_master_killed_mid_use_leaves_a_dead_socket_that_the_next_command_replaces() {
    let Some(world) = RemoteWorld::start(&HOSTS, None) else {
        return;
    };
    let session = world.spawn("alpha", "before the kill");
    let id = session["id"].as_str().unwrap();
    let sockets_now = sockets(&world.harness.data_dir());
    assert_eq!(sockets_now.len(), 1, "{sockets_now:?}");
    let pid = master_pid(&sockets_now[0]).expect("a master answers");
    // SAFETY: kill only sends a signal.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(wait_until(Duration::from_secs(10), || master_pid(
        &sockets_now[0]
    )
    .is_none()));
    // Its socket is still there, refusing connections.
    assert!(sockets_now[0].exists());
    let before = world.host("alpha").logins();
    world.ok(&["send", id, "after the kill"]);
    assert!(wait_until(Duration::from_secs(10), || fake_messages(
        &agent_log(&world, id)
    )
    .iter()
    .any(|m| m == "after the kill")));
    assert_ne!(world.session(id)["status"], "unreachable");
    let again = master_pid(&sockets_now[0]).expect("a new master");
    assert_ne!(again, pid);
    assert_eq!(world.host("alpha").logins(), before + 1);
    world.ok(&["session", "kill", id]);
}

#[test]
fn a_session_the_host_refuses_is_asked_for_again_and_the_command_runs_once() {
    let Some(mut world) = RemoteWorld::start(&HOSTS, None) else {
        return;
    };
    // sshd allows fewer sessions per connection than ao-host's bound (8).
    let config = world.host("beta").dir.join("sshd_config");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("MaxSessions 2\n");
    std::fs::write(&config, text).unwrap();
    world.host_mut("beta").stop();
    world.host_mut("beta").resume();
    let log = world.host("beta").dir.join("sshd.log");
    let socket = world.harness.home().join("refusals/connection");
    let ran = world.harness.home().join("ran");
    std::fs::create_dir(&ran).unwrap();
    // Each command waits until sshd has refused a session, so refusals surely happen; each
    // leaves a file, so a command run twice would show.
    let commands: Vec<_> = (0..6)
        .map(|i| {
            let line = format!(
                "until grep -q 'no more sessions' {log}; do sleep 0.05; done; mkdir {ran}/{i} && echo ran {i}",
                log = log.display(),
                ran = ran.display()
            );
            support::ao_host(world.harness.home())
                .args(["transport", "--host", "beta", "--socket"])
                .arg(&socket)
                .args(["--max-sessions", "8", "--connect-wait-ms", "20000", "--"])
                .args(["ssh", "-o"])
                .arg(format!("ControlPath={}", socket.display()))
                .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o"])
                .arg(format!("UserKnownHostsFile={}", world.known_hosts.display()))
                .arg("-i")
                .arg(&world.client.private)
                .args(["-p", &world.host("beta").port.to_string(), "-T"])
                .arg(format!("root@{}", world.host("beta").address))
                .arg(line)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in commands.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{i}: {}", stderr(&output));
        assert_eq!(stdout(&output), format!("ran {i}\n"));
        assert!(!stderr(&output).contains("refused"), "{}", stderr(&output));
    }
    assert_eq!(std::fs::read_dir(&ran).unwrap().count(), 6);
    assert_eq!(world.host("beta").logins(), 1);
    sshd::close_shared_connections(world.harness.home());
    let _ = std::process::Command::new("ssh")
        .arg("-o")
        .arg(format!("ControlPath={}", socket.display()))
        .args(["-O", "exit", "unused"])
        .output();
}
