//! A data dir keeps its identity when it is moved, and a copy claims nothing of the original:
//! real git, real tmux, the real plugins, the fake agent.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use support::{fake_messages, git, json, stderr, wait_until, Harness};

const LIVE: [&str; 3] = ["working", "idle", "waiting_input"];

/// Spawns `app-1` and `app-2` and waits until each agent has its task.
fn spawn_two(command: impl Fn(&[&str]) -> std::process::Output, log_dir: &Path) {
    for task in ["first task", "second task"] {
        let spawned = command(&["spawn", "app", "--task", task, "--json"]);
        assert!(spawned.status.success(), "spawn: {}", stderr(&spawned));
        let id = json(&spawned)["id"].as_str().unwrap().to_string();
        assert!(
            wait_until(Duration::from_secs(10), || fake_messages(
                &log_dir.join(&id)
            ) == [task]),
            "{id} never got its task"
        );
    }
}

/// The status `session ls` gives each of `ids`, in that order.
fn statuses(listed: &[serde_json::Value], ids: &[&str]) -> Vec<String> {
    ids.iter()
        .map(|id| {
            let session = listed
                .iter()
                .find(|s| s["id"] == *id)
                .unwrap_or_else(|| panic!("{id} not listed: {listed:#?}"));
            session["status"].as_str().unwrap().to_string()
        })
        .collect()
}

fn assert_live(harness: &Harness, ids: &[&str]) {
    let listed = harness.sessions_json(&[]);
    for (id, status) in ids.iter().zip(statuses(&listed, ids)) {
        assert!(LIVE.contains(&status.as_str()), "{id} is {status}");
    }
}

/// Sends a message to `id` and waits until its agent has it.
fn assert_reaches(harness: &Harness, id: &str) {
    let message = format!("hello {id}");
    harness.ok(&["send", id, &message]);
    let log = harness.log_dir().join(id);
    assert!(
        wait_until(Duration::from_secs(10), || fake_messages(&log)
            .contains(&message)),
        "{:?}",
        fake_messages(&log)
    );
}

/// Kills both sessions, then asserts that nothing of theirs is left once `gc` ran.
fn kill_both_cleanly(harness: &Harness) {
    for id in ["app-1", "app-2"] {
        let killed = harness.ao(&["session", "kill", id]);
        assert!(killed.status.success(), "kill {id}: {}", stderr(&killed));
        assert!(harness.record(id, true).exists(), "{id} not archived");
        assert!(!harness.worktree(id).exists(), "worktree of {id} left");
    }
    let gc = json(&harness.ok(&["gc", "--json"]));
    assert!(gc.as_array().unwrap().is_empty(), "{gc:#}");
    harness.assert_untouched();
}

fn move_dir(from: &Path, to: &Path) {
    let moved = Command::new("mv").arg(from).arg(to).status().unwrap();
    assert!(moved.success());
}

/// Runs the harness's config with `data_dir` pointing at `at`.
fn data_dir_at(harness: &Harness, at: &Path) -> impl Fn(&[&str]) -> std::process::Output {
    let config = harness.home().join(format!(
        "{}.yaml",
        at.file_name().unwrap().to_string_lossy()
    ));
    let text = support::replaced(
        &std::fs::read_to_string(harness.config_path()).unwrap(),
        &[(
            &format!("{:?}", harness.data_dir().display().to_string()),
            &format!("{:?}", at.display().to_string()),
        )],
    );
    std::fs::write(&config, text).unwrap();
    let home = harness.home().to_path_buf();
    move |args: &[&str]| {
        support::ao_host(&home)
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    }
}

#[test]
fn a_moved_data_dir_keeps_its_sessions_live_and_kills_them_cleanly() {
    let harness = Harness::new(&[], "");
    // Made at `before`, then moved to the harness's data dir, where every helper looks.
    let before: PathBuf = harness.home().join("before");
    spawn_two(data_dir_at(&harness, &before), &harness.log_dir());
    move_dir(&before, &harness.data_dir());
    // `kill -9` at any moment of the first opens after the move (while the identity is
    // rewritten and the records re-pointed) leaves a data dir that the next command finishes.
    for delay in (0..40).step_by(4) {
        let mut listing = harness
            .command(&["session", "ls", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = listing.kill();
        listing.wait().unwrap();
    }

    assert_live(&harness, &["app-1", "app-2"]);
    for session in harness.sessions_json(&[]) {
        let workspace = session["workspace_path"].as_str().unwrap();
        assert!(
            Path::new(workspace).starts_with(harness.data_dir()) && Path::new(workspace).exists(),
            "{session:#}"
        );
    }
    assert_reaches(&harness, "app-1");
    assert!(
        !before.exists(),
        "something made a data dir at the old path again"
    );
    // gc keeps what the data dir made before its move; it only removes what the killed
    // processes left half-written.
    let gc = json(&harness.ok(&["gc", "--json"]));
    let kept = |step: &&serde_json::Value| step["action"] != "remove temporary file";
    assert_eq!(
        gc.as_array().unwrap().iter().filter(kept).count(),
        0,
        "{gc:#}"
    );
    let leftovers = std::fs::read_dir(harness.data_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(leftovers, 0);
    assert_live(&harness, &["app-1", "app-2"]);
    // An agent started before the move runs `ao-host` with the old data dir in its environment:
    // refused, rather than a new, empty data dir made at the old path.
    let from_agent = support::ao_host(harness.home())
        .args(["session", "ls"])
        .env("AO_SESSION", "app-1")
        .env("AO_DATA_DIR", &before)
        .env("AO_CONFIG_PATH", harness.config_path())
        .output()
        .unwrap();
    assert!(!from_agent.status.success());
    assert!(
        stderr(&from_agent).contains("--data-dir"),
        "{}",
        stderr(&from_agent)
    );
    assert!(!before.exists(), "a data dir was made at the old path");
    // The status is the true one: an agent that exits after the move is listed as exited.
    let (found, pid) = harness.tmux.tmux(&[
        "display-message",
        "-p",
        "-t",
        &harness.tmux_session("app-2"),
        "#{pane_pid}",
    ]);
    assert!(found, "{pid}");
    let killed = Command::new("kill").arg(pid.trim()).status().unwrap();
    assert!(killed.success());
    assert!(wait_until(Duration::from_secs(10), || statuses(
        &harness.sessions_json(&[]),
        &["app-2"]
    ) == ["exited"]));
    assert_live(&harness, &["app-1"]);
    kill_both_cleanly(&harness);
}

/// After a move, git still names the old worktree paths until they are repaired; a
/// `git worktree prune` before that (forgetting a later session's worktree removed by hand)
/// would drop the moved worktrees' admin folders and leave them broken.
#[test]
fn forgetting_a_worktree_removed_by_hand_after_a_move_keeps_the_moved_ones_whole() {
    let harness = Harness::new(&[], "");
    let before: PathBuf = harness.home().join("before");
    spawn_two(data_dir_at(&harness, &before), &harness.log_dir());
    move_dir(&before, &harness.data_dir());
    let spawned = harness.ao(&["spawn", "app", "--task", "third task", "--json"]);
    assert!(spawned.status.success(), "spawn: {}", stderr(&spawned));
    let third = json(&spawned)["id"].as_str().unwrap().to_string();
    std::fs::remove_dir_all(harness.worktree(&third)).unwrap();
    harness.ok(&["session", "kill", &third]);
    for id in ["app-1", "app-2"] {
        let status = git(&harness.worktree(id), &["status", "--porcelain"]);
        assert!(status.is_empty(), "{id}: {status}");
    }
    assert_live(&harness, &["app-1", "app-2"]);
    kill_both_cleanly(&harness);
}

#[test]
fn a_copied_data_dir_claims_none_of_the_originals_sessions() {
    let harness = Harness::new(&[], "");
    spawn_two(|args| harness.ao(args), &harness.log_dir());
    let copy = harness.home().join("copy");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(harness.data_dir())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(copied.success());
    let in_copy = data_dir_at(&harness, &copy);
    let original_tmux = harness.tmux.sessions();

    // The copy's records name the original's sessions: none of them is live there, and
    // nothing the copy does touches them.
    let listed = in_copy(&["session", "ls", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let listed = json(&listed).as_array().unwrap().clone();
    for status in statuses(&listed, &["app-1", "app-2"]) {
        assert!(
            !LIVE.contains(&status.as_str()),
            "live in the copy: {listed:#?}"
        );
    }
    let gc = in_copy(&["gc", "--json"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    let sent = in_copy(&["send", "app-2", "not for the original"]);
    assert!(!sent.status.success(), "a send from the copy succeeded");
    for kill in [
        &["session", "kill", "app-1"][..],
        &["session", "kill", "--keep-workspace", "app-1"],
        &["session", "kill", "--force", "app-2"],
    ] {
        let refused = in_copy(kill);
        assert!(!refused.status.success(), "{kill:?} succeeded in the copy");
    }
    let gc = in_copy(&["gc", "--force", "--json"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert_eq!(harness.tmux.sessions(), original_tmux);
    for id in ["app-1", "app-2"] {
        assert!(
            harness.worktree(id).exists(),
            "the copy removed {id}'s worktree"
        );
    }
    assert!(
        !fake_messages(&harness.log_dir().join("app-2")).contains(&"not for the original".into())
    );
    assert_eq!(
        git(&harness.repo(), &["worktree", "list"]).lines().count(),
        3
    );

    // The original, used at the same time, still has everything.
    assert_live(&harness, &["app-1", "app-2"]);
    assert_reaches(&harness, "app-2");
    kill_both_cleanly(&harness);

    // Once the original killed them, the copy's records of them go too, and leave nothing.
    for id in ["app-1", "app-2"] {
        let killed = in_copy(&["session", "kill", id]);
        assert!(killed.status.success(), "{}", stderr(&killed));
    }
    harness.assert_untouched();
}
