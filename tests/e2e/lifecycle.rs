//! The session lifecycle under concurrency, crashes and hostile state: each numbered case of the
//! lifecycle issue, then a seeded model-based test that runs random schedules of spawn / kill /
//! send / gc / `kill -9` from several processes against two data dirs on one tmux server and
//! checks the invariants after each schedule.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{
    assert_one_line_error, fake_messages, git, init_repo, json, stderr, stdout, tmux_name,
    wait_until, Harness,
};

/// A second installation sharing `harness`'s plugins and tmux server, with its own data dir and
/// repository: what an operator with two configs on one machine has.
struct SecondDataDir {
    config: PathBuf,
    data_dir: PathBuf,
    repo: PathBuf,
}

impl SecondDataDir {
    fn new(harness: &Harness) -> Self {
        let root = harness.home().join("second");
        let (data_dir, repo) = (root.join("data"), root.join("repo"));
        init_repo(&repo);
        let text = support::replaced(
            &std::fs::read_to_string(harness.config_path()).unwrap(),
            &[
                (
                    &format!("{:?}", harness.data_dir().display().to_string()),
                    &format!("{:?}", data_dir.display().to_string()),
                ),
                (
                    &format!("{:?}", harness.repo().display().to_string()),
                    &format!("{:?}", repo.display().to_string()),
                ),
            ],
        );
        let config = root.join("ao-rs.yaml");
        std::fs::write(&config, text).unwrap();
        Self {
            config,
            data_dir,
            repo,
        }
    }

    fn command(&self, harness: &Harness, args: &[&str]) -> Command {
        let mut command = support::ao_host(harness.home());
        command.arg("--config").arg(&self.config).args(args);
        command
    }
}

/// Runs a command, failing the test if it does not finish within `limit` (a hang is a bug).
fn run_bounded(mut command: Command, limit: Duration) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    run_bounded_child(child, limit)
}

/// Tmux sessions alive on the harness's server, with the data dir each was tagged with.
fn tagged_tmux_sessions(harness: &Harness) -> BTreeMap<String, String> {
    let (_, out) = harness.tmux.tmux(&[
        "list-panes",
        "-a",
        "-F",
        "#{session_name}\t#{pane_dead}\t#{@ao-host-session}",
    ]);
    out.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let (name, dead, owner) = (fields.next()?, fields.next()?, fields.next()?);
            (dead == "0").then(|| (name.to_string(), owner.to_string()))
        })
        .collect()
}

#[test]
fn gc_racing_spawns_never_removes_a_session_whose_spawn_succeeded() {
    let harness = Harness::new(&[], "");
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc_runs = thread::scope(|scope| {
        let gc = scope.spawn(|| {
            let mut runs = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                harness.ok(&["gc"]);
                runs += 1;
            }
            runs
        });
        for n in 0..8 {
            let task = format!("task {n}");
            let spawned = json(&harness.ok(&["spawn", "app", "--task", &task, "--json"]));
            let id = spawned["id"].as_str().unwrap();
            assert!(
                wait_until(Duration::from_secs(10), || fake_messages(
                    &harness.log_dir().join(id)
                ) == [task.clone()]),
                "{id} never got its task"
            );
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        gc.join().unwrap()
    });
    assert!(gc_runs > 1, "gc ran {gc_runs} times");
    harness.ok(&["gc"]);
    let listed = harness.sessions_json(&[]);
    assert_eq!(listed.len(), 8, "{listed:#?}");
    let alive = harness.tmux.sessions();
    for session in &listed {
        assert!(
            alive.contains(&tmux_name(session["runtime_handle"].as_str().unwrap())),
            "{session}"
        );
        assert!(Path::new(session["workspace_path"].as_str().unwrap()).exists());
    }
}

#[test]
fn a_kill_during_a_spawn_stops_it_and_never_reports_both_outcomes() {
    let harness = Harness::new(&[], "");
    harness.edit_config(&[(
        "default_branch: main }",
        "default_branch: main, post_create: [\"sleep 2\"] }",
    )]);
    let spawn = harness
        .command(&["spawn", "app", "--task", "never delivered"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || harness
        .record("app-1", false)
        .exists()));
    let started = Instant::now();
    let kill = harness.ao(&["session", "kill", "app-1"]);
    assert!(kill.status.success(), "{}", stderr(&kill));
    assert!(
        stderr(&kill).contains("still spawning"),
        "{}",
        stderr(&kill)
    );
    let spawned = spawn.wait_with_output().unwrap();
    assert!(!spawned.status.success(), "the spawn must not also succeed");
    assert!(
        stderr(&spawned).contains("stopped by `ao-host session kill`"),
        "{}",
        stderr(&spawned)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // Not active, archived as errored (its id is never handed out again), nothing running, and
    // the task never reached an agent.
    assert!(!harness.record("app-1", false).exists());
    let archived = harness.sessions_json(&["--archived"]);
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0]["status"], "errored");
    assert!(
        archived[0]["note"].as_str().unwrap().contains("stopped by"),
        "{}",
        archived[0]
    );
    harness.assert_untouched();
    assert!(fake_messages(&harness.log_dir().join("app-1")).is_empty());

    // The same while the agent is starting: the kill does not wait for the ready timeout.
    harness.edit_config(&[
        (", post_create: [\"sleep 2\"]", ""),
        ("ready_timeout_ms: 10000", "ready_timeout_ms: 120000"),
        ("env: { ", "env: { FAKE_AGENT_NEVER_READY: \"1\", "),
    ]);
    let spawn = spawn_until_the_agent_starts(&harness, "app-2");
    let started = Instant::now();
    harness.ok(&["session", "kill", "app-2"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!spawn.wait_with_output().unwrap().status.success());
    harness.assert_untouched();
}

#[test]
fn gc_in_a_second_data_dir_on_the_same_tmux_server_touches_nothing_of_the_first() {
    let harness = Harness::new(&[], "");
    let second = SecondDataDir::new(&harness);
    for task in ["a", "b", "c"] {
        harness.ok(&["spawn", "app", "--task", task]);
    }
    let second_spawn = second
        .command(&harness, &["spawn", "app", "--task", "mine", "--json"])
        .output()
        .unwrap();
    assert!(second_spawn.status.success(), "{}", stderr(&second_spawn));
    // Same id in both data dirs, no collision.
    assert_eq!(json(&second_spawn)["id"], "app-1");
    let first_before = harness.sessions_json(&[]);

    let gc = second
        .command(&harness, &["gc", "--json"])
        .output()
        .unwrap();
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(json(&gc).as_array().unwrap().is_empty(), "{}", stdout(&gc));
    let first_after = harness.sessions_json(&[]);
    assert_eq!(first_before.len(), 3);
    let tagged = tagged_tmux_sessions(&harness);
    for session in &first_after {
        assert_ne!(session["status"], "exited", "{session}");
        assert!(tagged.contains_key(&tmux_name(session["runtime_handle"].as_str().unwrap())));
    }
    let listed = second
        .command(&harness, &["session", "ls", "--json"])
        .output()
        .unwrap();
    assert_eq!(json(&listed).as_array().unwrap().len(), 1);
    // Killing everything in the second leaves the first alone, and its gc has nothing to do.
    let kill = second
        .command(&harness, &["session", "kill", "app-1"])
        .output()
        .unwrap();
    assert!(kill.status.success(), "{}", stderr(&kill));
    assert_eq!(harness.sessions_json(&[]).len(), 3);
    assert_eq!(
        tagged_tmux_sessions(&harness)
            .values()
            .filter(|owner| owner.contains(second.data_dir.to_str().unwrap()))
            .count(),
        0
    );
    let gc = json(&harness.ok(&["gc", "--json"]));
    assert!(gc.as_array().unwrap().is_empty(), "{gc:#}");
    assert_eq!(git(&second.repo, &["worktree", "list"]).lines().count(), 1);
}

#[test]
fn an_unreadable_record_is_reported_never_a_reason_to_destroy_and_a_fifo_never_hangs() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "a"]);
    harness.ok(&["spawn", "app", "--task", "b"]);
    let handle = harness.tmux_session("app-1");
    std::fs::write(harness.record("app-1", false), "garbage: [").unwrap();
    let gc = json(&harness.ok(&["gc", "--json"]));
    let actions = gc.as_array().unwrap();
    assert!(
        actions.iter().all(|a| a["done"] == false),
        "gc acted although a record is unreadable: {gc:#}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a["detail"].as_str().unwrap().contains("app-1.yaml")),
        "{gc:#}"
    );
    assert!(harness.tmux.sessions().contains(&handle));
    assert!(harness.worktree("app-1").exists());
    let listed = harness.ao(&["session", "ls", "--json"]);
    assert!(
        !listed.status.success(),
        "an incomplete list must not look complete"
    );
    assert_eq!(json(&listed).as_array().unwrap().len(), 1);
    assert!(
        stderr(&listed).contains("app-1.yaml"),
        "{}",
        stderr(&listed)
    );

    // A records folder that cannot be read hides every session in it: still no reason to
    // destroy anything, and the listing says so instead of "no sessions".
    let records = harness.data_dir().join("sessions").join("app");
    let moved = harness.home().join("records-moved");
    std::fs::rename(&records, &moved).unwrap();
    std::fs::write(&records, "not a folder").unwrap();
    let gc = json(&harness.ok(&["gc", "--json"]));
    assert!(
        gc.as_array().unwrap().iter().all(|a| a["done"] == false),
        "gc acted on sessions it could not see: {gc:#}"
    );
    let listed = harness.ao(&["session", "ls"]);
    assert!(
        stderr(&listed).contains("sessions/app"),
        "{}",
        stderr(&listed)
    );
    std::fs::remove_file(&records).unwrap();
    std::fs::rename(&moved, &records).unwrap();
    assert!(harness.tmux.sessions().contains(&handle));
    assert_eq!(harness.tmux.sessions().len(), 2);

    // A FIFO named like a record: every command answers instead of blocking on it.
    let fifo = std::ffi::CString::new(harness.record("app-7", false).to_str().unwrap().to_string())
        .unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let limit = Duration::from_secs(20);
    let config = harness.config_path();
    let command = |args: &[&str]| {
        let mut command = support::ao_host(harness.home());
        command.arg("--config").arg(&config).args(args);
        command
    };
    let listed = run_bounded(command(&["session", "ls"]), limit);
    assert!(
        stderr(&listed).contains("app-7.yaml"),
        "{}",
        stderr(&listed)
    );
    assert!(run_bounded(command(&["gc"]), limit).status.success());
    let kill = run_bounded(command(&["session", "kill", "app-7"]), limit);
    assert!(!kill.status.success());
    assert!(
        stderr(&kill).contains("not a regular file"),
        "{}",
        stderr(&kill)
    );
    assert!(harness.tmux.sessions().contains(&handle));
}

#[test]
fn a_hung_post_create_is_stopped_with_its_processes_and_leaves_nothing() {
    let harness = Harness::new(&[], "");
    // The plugin's own limit (3 s) is above the call timeout (1 s): making a workspace is
    // bounded by defaults.workspace_timeout_ms instead, so the plugin stops post_create itself.
    harness.edit_config(&[
        (
            "  config:\n",
            "  config:\n    git-worktree: { post_create_timeout_ms: 3000 }\n",
        ),
        (
            "ready_timeout_ms: 10000",
            "ready_timeout_ms: 10000, call_timeout_ms: 1000",
        ),
    ]);
    let pid_file = post_create_recording_its_pid(&harness, 100);
    let output = run_bounded(
        harness.command(&["spawn", "app", "--task", "x"]),
        Duration::from_secs(30),
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("post_create_timeout_ms"), "{err}");
    let pid = recorded_pid(&pid_file);
    let gone = wait_until(Duration::from_secs(5), || process_gone(pid));
    assert!(gone, "the post_create process {pid} is still running");
    harness.assert_nothing_left("app-1");
}

#[test]
fn a_symlink_to_git_is_refused_so_an_agent_can_never_move_main() {
    let harness = Harness::new(&[], "");
    harness.edit_config(&[(
        "default_branch: main }",
        "default_branch: main, symlinks: [\".git\"] }",
    )]);
    let output = harness.ao(&["spawn", "app", "--task", "x"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains(".git"), "{}", stderr(&output));
    harness.assert_nothing_left("app-1");
}

#[test]
fn listings_escape_control_characters_and_a_closed_pipe_exits_quietly() {
    let harness = Harness::new(&[], "");
    let task = "\u{1b}[2J\u{1b}]0;pwned\u{7}clear the screen\u{9b}31m";
    harness.ok(&["spawn", "app", "--task", task]);
    let listed = stdout(&harness.ok(&["session", "ls"]));
    assert!(!listed.contains('\u{1b}') && !listed.contains('\u{7}') && !listed.contains('\u{9b}'));
    assert!(listed.contains("clear the screen"), "{listed}");
    // The JSON listing keeps the task exact.
    assert_eq!(harness.sessions_json(&[])[0]["task"], task);

    for args in [&["session", "ls"][..], &["session", "ls", "--json"][..]] {
        let mut child = harness
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // like `| head -0`: the reader is gone before anything is written
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{args:?}: {status}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn project_arguments_and_colliding_prefixes_are_refused() {
    let harness = Harness::new(&[], "");
    let outside = harness.data_dir().join("x");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("evil-1.yaml"), "id: evil-1\n").unwrap();
    let output = harness.ao(&["session", "ls", "../x"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("invalid project"),
        "{}",
        stderr(&output)
    );

    let repo2 = harness.home().join("repo2");
    init_repo(&repo2);
    harness.append_config(&format!(
        "  web: {{ repo: {:?}, default_branch: main, session_prefix: app }}\n",
        repo2.display().to_string()
    ));
    let output = harness.ao(&["session", "ls"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("app") && err.contains("web") && err.contains("session_prefix"),
        "{err}"
    );
}

/// `doctor` checks each project as a spawn would meet it, naming the real problem and its fix
/// first: a repo that is missing, not a repository, or has no commit; a default branch that
/// cannot be told. A spawn of such a project says the same, not "set `default_branch`".
#[test]
fn doctor_checks_each_projects_repository_and_names_the_fix() {
    let harness = Harness::new(&[], "");
    let (missing, plain, empty, detached) = (
        harness.home().join("missing"),
        harness.home().join("plain"),
        harness.home().join("empty"),
        harness.home().join("detached"),
    );
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    git(&empty, &["init", "-q", "-b", "main"]);
    init_repo(&detached);
    git(&detached, &["checkout", "-q", "--detach"]);
    harness.rewrite_config(|c| {
        let mut c = c;
        for (id, repo) in [
            ("gone", &missing),
            ("plain", &plain),
            ("empty", &empty),
            ("detached", &detached),
        ] {
            c.push_str(&format!(
                "  {id}: {{ repo: {:?} }}\n",
                repo.display().to_string()
            ));
        }
        // A default branch the repository does not have: named before a spawn meets it.
        c.push_str(&format!(
            "  wrong: {{ repo: {:?}, default_branch: nosuch }}\n",
            detached.display().to_string()
        ));
        c
    });
    let output = harness.ao(&["doctor", "--json"]);
    assert!(!output.status.success());
    let lines = json(&output);
    let line = |id: &str| {
        lines
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["what"] == format!("project `{id}`"))
            .unwrap_or_else(|| panic!("no line for {id}: {lines:#}"))
            .clone()
    };
    assert_eq!(line("app")["ok"], true, "{lines:#}");
    let config = harness.config_path().display().to_string();
    for (id, want) in [
        ("gone", "is not a folder"),
        ("plain", "not inside a git repository"),
        ("empty", "has no commit yet"),
        ("detached", "set `projects.detached.default_branch`"),
        (
            "wrong",
            "`nosuch` exists neither locally nor as origin/nosuch",
        ),
    ] {
        let found = line(id);
        let detail = found["detail"].as_str().unwrap();
        assert_eq!(found["ok"], false, "{id}: {detail}");
        assert!(
            detail.contains(want) && detail.contains(&config),
            "{id}: {detail}"
        );
    }
    for id in ["gone", "plain", "empty"] {
        let output = harness.ao(&["spawn", id, "--task", "x"]);
        let err = stderr(&output);
        assert!(
            !output.status.success() && !err.contains("default_branch"),
            "{id}: {err}"
        );
        assert!(err.contains(&format!("projects.{id}.repo")), "{id}: {err}");
    }
}

/// A plugin's messages name the config file in use, not "ao-rs.yaml" whatever it is: its
/// settings error, and the error of one of its calls.
#[test]
fn a_plugins_messages_name_the_config_file_in_use() {
    let harness = Harness::new(&[], "");
    let config = harness.home().join("team.yaml");
    std::fs::rename(harness.config_path(), &config).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let spawn = || {
        let output = support::ao_host(harness.home())
            .arg("--config")
            .arg(&config)
            .args(["spawn", "app", "--task", "x"])
            .output()
            .unwrap();
        assert!(!output.status.success());
        stderr(&output)
    };
    std::fs::write(
        &config,
        support::replaced(&text, &[("tmux: { socket:", "tmux: { sockett:")]),
    )
    .unwrap();
    let err = spawn();
    assert!(
        err.contains("sockett") && err.contains(&format!("in {}", config.display())),
        "{err}"
    );
    // The session's branch is checked out by a worktree of another data dir.
    std::fs::write(&config, &text).unwrap();
    let elsewhere = harness.home().join("elsewhere").display().to_string();
    git(
        &harness.repo(),
        &["worktree", "add", "-q", "-b", "session/app-1", &elsewhere],
    );
    let err = spawn();
    assert!(
        err.contains(&format!("session_prefix in {}", config.display())),
        "{err}"
    );
}

/// Runs `ao-host args` with its open-file limit set to `soft`/`hard` before it starts.
fn with_open_file_limit(harness: &Harness, soft: u64, hard: u64, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut command = harness.command(args);
    // SAFETY: only `setrlimit`, which is async-signal-safe, runs in the child before exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    command.output().unwrap()
}

/// Under a very low open-file limit, no panic from the async runtime's signal setup (the old
/// build panicked under 8, with a backtrace): a limit that can be raised is, and one that
/// cannot is a one-line error naming it and the fix.
#[test]
fn a_low_open_file_limit_is_raised_or_named_never_a_panic() {
    let harness = Harness::new(&[], "");
    let raised = with_open_file_limit(&harness, 8, 4096, &["gc", "--dry-run"]);
    assert!(raised.status.success(), "{}", stderr(&raised));
    for limit in [8, 16] {
        let refused = with_open_file_limit(&harness, limit, limit, &["gc", "--dry-run"]);
        assert_one_line_error(&refused, "ulimit -n");
        assert!(
            stderr(&refused).contains(&format!("only {limit} files")),
            "{}",
            stderr(&refused)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The model-based concurrency test.

/// A small deterministic generator (xorshift64*), so a failing schedule can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the schedule's commands reported, per data dir (0 = the harness's, 1 = the second).
#[derive(Default)]
struct Reported {
    spawned: BTreeSet<(usize, String)>,
    killed: BTreeSet<(usize, String)>,
    violations: Vec<String>,
}

fn pick(rng: &mut Rng, ids: &[String]) -> Option<String> {
    (!ids.is_empty()).then(|| ids[rng.below(ids.len() as u64) as usize].clone())
}

fn active_ids(data_dir: &Path) -> Vec<String> {
    let dir = data_dir.join("sessions").join("app");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".yaml")
                .map(str::to_string)
        })
        .filter(|id| !id.starts_with('.'))
        .collect()
}

fn run_schedule(harness: &Harness, second: &SecondDataDir, seed: u64, steps: usize) {
    let data_dirs = [harness.data_dir(), second.data_dir.clone()];
    let command_for = |dir: usize, args: &[&str]| -> Command {
        if dir == 0 {
            harness.command(args)
        } else {
            second.command(harness, args)
        }
    };
    let reported = Mutex::new(Reported::default());
    let workers = 4;
    thread::scope(|scope| {
        for worker in 0..workers {
            let (reported, data_dirs, command_for) = (&reported, &data_dirs, &command_for);
            scope.spawn(move || {
                let mut rng =
                    Rng(seed.wrapping_add((worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
                for step in 0..steps / workers {
                    let dir = rng.below(2) as usize;
                    let ids = active_ids(&data_dirs[dir]);
                    match rng.below(10) {
                        0..=2 => {
                            let task = format!("w{worker} s{step}");
                            let output =
                                command_for(dir, &["spawn", "app", "--task", &task, "--json"])
                                    .output()
                                    .unwrap();
                            if output.status.success() {
                                let id = json(&output)["id"].as_str().unwrap().to_string();
                                reported.lock().unwrap().spawned.insert((dir, id));
                            }
                        }
                        3..=4 => {
                            let Some(id) = pick(&mut rng, &ids) else {
                                continue;
                            };
                            let output = command_for(dir, &["session", "kill", &id])
                                .output()
                                .unwrap();
                            if output.status.success() {
                                reported.lock().unwrap().killed.insert((dir, id));
                            }
                        }
                        5 => {
                            let Some(id) = pick(&mut rng, &ids) else {
                                continue;
                            };
                            let _ = command_for(dir, &["send", &id, "hello"]).output().unwrap();
                        }
                        6..=7 => {
                            let output = command_for(dir, &["gc", "--json"]).output().unwrap();
                            if !output.status.success() {
                                reported
                                    .lock()
                                    .unwrap()
                                    .violations
                                    .push(format!("gc failed: {}", stderr(&output)));
                            }
                        }
                        8 => {
                            let _ = command_for(dir, &["session", "ls", "--json"])
                                .output()
                                .unwrap();
                        }
                        _ => {
                            // A spawn killed with SIGKILL at a random point.
                            let mut child: Child =
                                command_for(dir, &["spawn", "app", "--task", "doomed"])
                                    .stdout(Stdio::null())
                                    .stderr(Stdio::null())
                                    .spawn()
                                    .unwrap();
                            thread::sleep(Duration::from_millis(rng.below(400)));
                            let _ = child.kill();
                            // A spawn that finished before the signal is a session like any
                            // other; its success went unreported, so no claim is checked for it.
                            child.wait().unwrap();
                        }
                    }
                }
            });
        }
    });
    let reported = reported.into_inner().unwrap();

    // Reconcile what the kill -9s left, as an operator would, then check. A spawn killed during
    // `git worktree add` leaves that git running, and it may finish after a gc looked: the
    // worktree then appears after the gc, named by the spawn's intent file, and the next gc
    // removes it. So gc runs until it finds nothing more to do (as an operator would).
    let mut gc_reports = Vec::new();
    for (dir, data_dir) in data_dirs.iter().enumerate() {
        for _round in 0..5 {
            let output = command_for(dir, &["gc", "--force", "--json"])
                .output()
                .unwrap();
            assert!(output.status.success(), "seed {seed}: {}", stderr(&output));
            let report = String::from_utf8_lossy(&output.stdout).trim().to_string();
            let idle = report == "[]";
            gc_reports.push(format!("dir {dir} gc: {report}"));
            if idle && !git_still_running(data_dir) {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
    let mut violations = reported.violations;
    let tagged = tagged_tmux_sessions(harness);
    let repos = [harness.repo(), second.repo.clone()];
    for dir in 0..2 {
        let data_dir = data_dirs[dir].canonicalize().unwrap();
        let listed = command_for(dir, &["session", "ls", "--json"])
            .output()
            .unwrap();
        let sessions: Vec<Value> = json(&listed).as_array().unwrap().clone();
        let archived = command_for(dir, &["session", "ls", "--archived", "--json"])
            .output()
            .unwrap();
        let archived: HashSet<String> = json(&archived)
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        let handles: HashSet<String> = sessions
            .iter()
            .map(|s| tmux_name(s["runtime_handle"].as_str().unwrap_or("")))
            .collect();
        let live: HashSet<String> = tagged
            .iter()
            .filter(|(_, owner)| Path::new(owner.as_str()) == data_dir)
            .map(|(name, _)| name.clone())
            .collect();
        for session in &sessions {
            let id = session["id"].as_str().unwrap();
            if session["status"] != "working" && session["status"] != "idle" {
                violations.push(format!("dir {dir}: {id} is {} after gc", session["status"]));
            }
            if archived.contains(id) {
                violations.push(format!("dir {dir}: {id} is both active and archived"));
            }
        }
        if handles != live {
            violations.push(format!(
                "dir {dir}: records name {handles:?} but tmux runs {live:?}"
            ));
        }
        let worktrees: HashSet<String> = git(&repos[dir], &["worktree", "list", "--porcelain"])
            .lines()
            .filter_map(|l| l.strip_prefix("worktree "))
            .filter(|p| Path::new(p) != repos[dir])
            .map(str::to_string)
            .collect();
        let paths: HashSet<String> = sessions
            .iter()
            .map(|s| s["workspace_path"].as_str().unwrap_or("").to_string())
            .collect();
        if worktrees != paths {
            let strays: Vec<String> = worktrees
                .difference(&paths)
                .map(|path| {
                    let admin =
                        std::fs::read_to_string(Path::new(path).join(".git")).unwrap_or_default();
                    let entries: Vec<String> = std::fs::read_dir(path)
                        .map(|d| {
                            d.filter_map(Result::ok)
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .collect()
                        })
                        .unwrap_or_default();
                    format!("{path}: .git says {admin:?}, holds {entries:?}")
                })
                .collect();
            violations.push(format!(
                "dir {dir}: records name worktrees {paths:?} but git has {worktrees:?}; strays: {strays:?}; {}",
                gc_reports.join("; ")
            ));
        }
        let active: HashSet<&str> = sessions.iter().map(|s| s["id"].as_str().unwrap()).collect();
        for (d, id) in &reported.spawned {
            if *d == dir
                && !reported.killed.contains(&(dir, id.clone()))
                && !active.contains(id.as_str())
            {
                violations.push(format!(
                    "dir {dir}: {id} was reported spawned and never reported killed, but is gone"
                ));
            }
        }
        for (d, id) in &reported.killed {
            if *d == dir && active.contains(id.as_str()) {
                violations.push(format!("dir {dir}: {id} was reported killed but is active"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "seed {seed} (rerun with AO_MODEL_SEED={seed}): {} violation(s):\n{}",
        violations.len(),
        violations.join("\n")
    );
    // Clean up for the next schedule.
    for (dir, data_dir) in data_dirs.iter().enumerate() {
        for id in active_ids(data_dir) {
            let _ = command_for(dir, &["session", "kill", &id])
                .output()
                .unwrap();
        }
    }
}

/// Whether a `git` process is still at work under `data_dir` (a worktree being added, or
/// checked out, by the git child of a spawn that was killed): /proc tells each process's command
/// line and working folder.
fn git_still_running(data_dir: &Path) -> bool {
    let data_dir = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    let needle = data_dir.display().to_string();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries.filter_map(Result::ok).any(|entry| {
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline);
                let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
                cmdline.starts_with("git\0")
                    && (cmdline.contains(&needle) || cwd.starts_with(&data_dir))
            })
        })
        .unwrap_or(false)
}

#[test]
fn random_schedules_across_processes_and_two_data_dirs_keep_every_invariant() {
    let harness = Harness::new(&[], "");
    let second = SecondDataDir::new(&harness);
    // A seed given that does not parse is an error, never a silent fall back to the clock.
    let base_seed = match std::env::var("AO_MODEL_SEED") {
        Ok(given) => given
            .parse()
            .unwrap_or_else(|e| panic!("AO_MODEL_SEED={given:?} is not a u64: {e}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!("model test: AO_MODEL_SEED={base_seed} reruns these schedules");
    let schedules: u64 = std::env::var("AO_MODEL_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    for n in 0..schedules {
        let seed = base_seed.wrapping_add(n);
        eprintln!("model schedule {n}: seed {seed}");
        run_schedule(&harness, &second, seed, 120);
    }
}

#[test]
fn a_constructor_that_hangs_is_reported_and_the_host_goes_on() {
    let harness = Harness::new(&[], "");
    harness.install_faulty_runtime("{ constructor: hang }");
    harness.edit_config(&[(
        "ready_timeout_ms: 10000",
        "ready_timeout_ms: 10000, call_timeout_ms: 500",
    )]);
    let limit = Duration::from_secs(20);
    let output = run_bounded(
        harness.command(&["spawn", "app", "--task", "x", "--runtime", "faulty"]),
        limit,
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("did not finish starting within 500 ms"),
        "{}",
        stderr(&output)
    );
    let library = harness
        .plugin_dir()
        .join(support::library_file_name("ao-fixture-faulty-real"));
    let check = run_bounded(
        harness.command(&["plugins", "check", library.to_str().unwrap()]),
        limit,
    );
    assert!(!check.status.success());
    assert!(
        stdout(&check).contains("did not finish starting"),
        "{}",
        stdout(&check)
    );
    // Nothing was made, and the other plugins still work.
    harness.assert_untouched();
    harness.ok(&["spawn", "app", "--task", "fine"]);
    assert_eq!(harness.sessions_json(&[]).len(), 1);
}

#[test]
fn an_interrupted_spawn_undoes_itself() {
    let harness = Harness::new(&[("FAKE_AGENT_NEVER_READY", "1")], "");
    harness.edit_config(&[("ready_timeout_ms: 10000", "ready_timeout_ms: 120000")]);
    for (signal, id) in [(libc::SIGINT, "app-1"), (libc::SIGTERM, "app-2")] {
        let spawn = spawn_until_the_agent_starts(&harness, id);
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(spawn.id() as i32, signal) }, 0);
        let output = run_bounded_child(spawn, Duration::from_secs(20));
        assert!(!output.status.success());
        assert!(stderr(&output).contains("interrupt"), "{}", stderr(&output));
        harness.assert_untouched();
    }
}

/// Starts `spawn app` (which will get `id`) in the background and returns once its agent runs
/// (the record names the runtime handle) and the spawn waits for it to get ready.
fn spawn_until_the_agent_starts(harness: &Harness, id: &str) -> Child {
    let spawn = harness
        .command(&["spawn", "app", "--task", "x"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(harness.record(id, false))
            .unwrap_or_default()
            .contains(&format!("runtime_handle: {id}"))
    }));
    spawn
}

/// Waits for a running child, failing the test if it does not finish within `limit`.
fn run_bounded_child(mut child: Child, limit: Duration) -> Output {
    let finished = wait_until(limit, || child.try_wait().unwrap().is_some());
    if !finished {
        child.kill().unwrap();
        panic!("process did not finish within {limit:?}");
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_session_that_kills_itself_is_killed_completely() {
    let harness = Harness::new(&[], "");
    for library in support::examples_build() {
        support::install(library, &harness.plugin_dir(), None);
    }
    // The `shell` agent types its task into bash: the session runs `ao-host session kill` on
    // itself, and the tmux session (its own terminal) goes away half-way through that command.
    let task = format!(
        "{:?} --config {:?} session kill \"$AO_SESSION\"",
        env!("CARGO_BIN_EXE_ao-host"),
        harness.config_path().display().to_string()
    );
    harness.ok(&["spawn", "app", "--agent", "shell", "--task", &task]);
    let archived = wait_until(Duration::from_secs(20), || {
        harness.record("app-1", true).exists() && !harness.record("app-1", false).exists()
    });
    assert!(archived, "the self-kill never archived the record");
    assert!(wait_until(Duration::from_secs(10), || !harness
        .worktree("app-1")
        .exists()));
    assert_eq!(
        harness.sessions_json(&["--archived"])[0]["status"],
        "killed"
    );
    harness.assert_no_sessions();
}

#[test]
fn a_kill_that_cannot_reach_the_sessions_tmux_server_is_refused_not_reported_done() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "x"]);
    let name = harness.tmux_session("app-1");
    let elsewhere = harness.home().join("other-tmux-dir");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let output = harness
        .command(&["session", "kill", "app-1"])
        .env("TMUX_TMPDIR", &elsewhere)
        .output()
        .unwrap();
    // Refused, not reported done: the kill cannot reach the session's tmux server.
    assert_one_line_error(&output, "TMUX_TMPDIR");
    // Listing from there cannot tell either: the session is not called `exited`, and gc plans
    // nothing for it.
    let listed = harness
        .command(&["session", "ls", "--json"])
        .env("TMUX_TMPDIR", &elsewhere)
        .output()
        .unwrap();
    let session = json(&listed)[0].clone();
    assert_ne!(session["status"], "exited", "{session}");
    assert!(
        session["note"].as_str().unwrap().contains("tmux server"),
        "{session}"
    );
    let plan = harness
        .command(&["gc", "--dry-run", "--json"])
        .env("TMUX_TMPDIR", &elsewhere)
        .output()
        .unwrap();
    let marks: Vec<Value> = json(&plan)
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "mark exited")
        .cloned()
        .collect();
    assert!(
        marks
            .iter()
            .all(|a| a["detail"].as_str().unwrap().contains("tmux server")),
        "{marks:?}"
    );
    // Nothing changed: the agent runs, its worktree and active record are there.
    assert!(harness.tmux.sessions().contains(&name));
    assert!(harness.worktree("app-1").exists());
    assert!(harness.record("app-1", false).exists());
    harness.ok(&["session", "kill", "app-1"]);
    harness.assert_no_sessions();
}

#[test]
fn gc_collects_an_orphan_whose_agent_has_exited() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "x"]);
    let name = harness.tmux_session("app-1");
    // The record is lost and the agent exits; its pane stays (remain-on-exit) with its last
    // screen, so the tmux session lives on with nobody's record.
    std::fs::remove_file(harness.record("app-1", false)).unwrap();
    harness
        .tmux
        .tmux(&["send-keys", "-t", &format!("={name}:^"), "C-c"]);
    assert!(wait_until(Duration::from_secs(10), || {
        harness
            .tmux
            .tmux(&[
                "display-message",
                "-p",
                "-t",
                &format!("={name}:^"),
                "#{pane_dead}",
            ])
            .1
            .trim()
            == "1"
    }));
    let gc = json(&harness.ok(&["gc", "--json"]));
    assert!(
        gc.as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "destroy orphan runtime session" && a["done"] == true),
        "{gc:#}"
    );
    assert!(harness.tmux.sessions().is_empty());
    assert!(!harness.worktree("app-1").exists());
}

#[test]
fn an_interrupted_kill_finishes_or_never_starts_it_never_leaves_half_a_session() {
    let harness = Harness::new(&[], "");
    for n in 1..=8u64 {
        let id = format!("app-{n}");
        harness.ok(&["spawn", "app", "--task", "x"]);
        let name = harness.tmux_session(&id);
        let kill = harness
            .command(&["session", "kill", &id])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_millis(5 * n));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(kill.id() as i32, libc::SIGINT) };
        let output = run_bounded_child(kill, Duration::from_secs(20));
        let killed = harness.record(&id, true).exists();
        if killed {
            assert!(output.status.success(), "{id}: {}", stderr(&output));
            assert!(!harness.record(&id, false).exists());
            assert!(!harness.tmux.sessions().contains(&name), "{id} still runs");
            assert!(!harness.worktree(&id).exists(), "{id}'s worktree is left");
        } else {
            // Interrupted before it began: the session is whole.
            assert!(harness.record(&id, false).exists());
            assert!(harness.tmux.sessions().contains(&name), "{id} half killed");
            assert!(harness.worktree(&id).exists(), "{id} half killed");
        }
    }
}

#[test]
fn a_kill_never_discards_uncommitted_work_unless_forced() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "x"]);
    harness.ok(&["spawn", "app", "--task", "y"]);
    for id in ["app-1", "app-2"] {
        std::fs::write(harness.worktree(id).join("notes.txt"), "precious").unwrap();
    }
    let output = harness.ao(&["session", "kill", "app-1"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("uncommitted") && err.contains("--force"),
        "{err}"
    );
    // Refused before anything was touched.
    assert!(harness.record("app-1", false).exists());
    assert!(harness
        .tmux
        .sessions()
        .contains(&harness.tmux_session("app-1")));
    harness.ok(&["session", "kill", "app-1", "--keep-workspace"]);
    assert!(harness.worktree("app-1").join("notes.txt").exists());
    harness.ok(&["session", "kill", "app-2", "--force"]);
    assert!(!harness.worktree("app-2").exists());
    assert!(harness.tmux.sessions().is_empty());
}

/// Gives the project a `post_create` that writes its shell's pid to the returned file, then
/// sleeps `seconds`.
fn post_create_recording_its_pid(harness: &Harness, seconds: u32) -> PathBuf {
    let pid_file = harness.home().join("post-create.pid");
    harness.edit_config(&[(
        "default_branch: main }",
        &format!(
            "default_branch: main, post_create: [\"echo $$ > {}; sleep {seconds}\"] }}",
            pid_file.display()
        ),
    )]);
    pid_file
}

fn recorded_pid(pid_file: &Path) -> i32 {
    std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Whether `pid` is gone or a zombie nobody reaped (this container's init may not reap).
fn process_gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[test]
fn gc_stops_the_post_create_of_a_spawn_killed_with_sigkill() {
    let harness = Harness::new(&[], "");
    let pid_file = post_create_recording_its_pid(&harness, 300);
    let mut spawn = harness
        .command(&["spawn", "app", "--task", "x"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|pid| pid.ends_with('\n'))
    }));
    spawn.kill().unwrap(); // SIGKILL: nothing of ao-host runs after this
    spawn.wait().unwrap();
    let pid = recorded_pid(&pid_file);
    assert!(
        !process_gone(pid),
        "post_create should outlive a killed spawn"
    );
    let gc = json(&harness.ok(&["gc", "--json"]));
    assert!(
        wait_until(Duration::from_secs(5), || process_gone(pid)),
        "gc left post_create running: {gc:#}"
    );
    harness.assert_untouched();
}

#[test]
fn a_record_pointing_at_another_data_dirs_session_cannot_make_kill_touch_it() {
    let harness = Harness::new(&[], "");
    let second = SecondDataDir::new(&harness);
    let spawned = second
        .command(&harness, &["spawn", "app", "--task", "theirs"])
        .output()
        .unwrap();
    assert!(spawned.status.success(), "{}", stderr(&spawned));
    // Their record, copied into this data dir under an id of ours.
    let theirs = std::fs::read_to_string(second.data_dir.join("sessions/app/app-1.yaml")).unwrap();
    std::fs::create_dir_all(harness.data_dir().join("sessions/app")).unwrap();
    std::fs::write(
        harness.record("app-9", false),
        support::replaced(&theirs, &[("id: app-1", "id: app-9")]),
    )
    .unwrap();
    let output = harness.ao(&["session", "kill", "app-9", "--force"]);
    // Refused: the workspace plugin lists that worktree as the other data dir's, not ours.
    assert_one_line_error(&output, "does not list it as a workspace of this data dir");
    let listed = second
        .command(&harness, &["session", "ls", "--json"])
        .output()
        .unwrap();
    assert_ne!(json(&listed)[0]["status"], "exited");
    assert!(Path::new(json(&listed)[0]["workspace_path"].as_str().unwrap()).exists());
}

/// Writes the record of a session `app-2` whose runtime is the `faulty` fixture; returns its path.
fn faulty_session_record(harness: &Harness) -> PathBuf {
    let record = harness.record("app-2", false);
    std::fs::write(
        &record,
        "id: app-2\nproject_id: app\nrole: worker\nstatus: working\nagent: claude-code\nruntime: faulty\nworkspace: git-worktree\nbranch: session/app-2\nworkspace_path: null\nruntime_handle: app-2\ntask: x\ncreated_at: 1\n",
    )
    .unwrap();
    record
}

/// A plugin that kills the whole process (no `catch_unwind` stops a segfault or an abort):
/// the host still says which plugin call it was, and `gc` can go on without that plugin.
#[test]
fn a_plugin_that_crashes_the_process_is_named_and_gc_goes_on_without_it() {
    use std::os::unix::process::ExitStatusExt;
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "a healthy session"]);
    let record = faulty_session_record(&harness);
    for (behaviour, signal, name) in [
        ("segfault", libc::SIGSEGV, "SIGSEGV"),
        ("abort", libc::SIGABRT, "SIGABRT"),
    ] {
        let settings = format!("{{ methods: {behaviour}, only: [alive_handles] }}");
        if behaviour == "segfault" {
            harness.install_faulty_runtime(&settings);
        } else {
            harness.edit_config(&[("methods: segfault", "methods: abort")]);
        }
        for args in [&["session", "ls"][..], &["gc", "--dry-run"]] {
            let output = harness.ao(args);
            assert_eq!(output.status.signal(), Some(signal), "{args:?}");
            let said = stderr(&output);
            assert!(
                said.contains(&format!(
                    "runtime plugin `faulty` crashed ({name}) in alive_handles"
                )) && said.contains("--skip-plugin faulty"),
                "{args:?}: {said}"
            );
        }
        let output = harness.ok(&["gc", "--skip-plugin", "faulty", "--json"]);
        let actions = json(&output);
        assert!(
            actions
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["target"] == "app-2"
                    && a["detail"]
                        .as_str()
                        .unwrap()
                        .contains("skipped plugin `faulty`")),
            "{actions:#}"
        );
    }
    // `exit(0)` in the middle of a call does not pass for success.
    harness.edit_config(&[("methods: abort", "methods: exit")]);
    let output = harness.ao(&["session", "ls"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        stderr(&output)
            .contains("runtime plugin `faulty` crashed (exit() called) in alive_handles"),
        "{}",
        stderr(&output)
    );
    // A library whose own start-up code crashes is named too, and `--skip-plugin` does not
    // even load it; a misspelt name is refused rather than skipping nothing.
    let loading = harness
        .command(&["session", "ls"])
        .env("AO_TEST_CONSTRUCTOR_CRASH", "1")
        .output()
        .unwrap();
    assert_eq!(loading.status.signal(), Some(libc::SIGSEGV));
    assert!(
        stderr(&loading).contains("libao_fixture_faulty_real.so crashed (SIGSEGV) while loading")
            && stderr(&loading).contains("--skip-plugin faulty"),
        "{}",
        stderr(&loading)
    );
    let skipped = harness
        .command(&["gc", "--dry-run", "--skip-plugin", "faulty"])
        .env("AO_TEST_CONSTRUCTOR_CRASH", "1")
        .output()
        .unwrap();
    assert!(skipped.status.success(), "{}", stderr(&skipped));
    let misspelt = harness.ao(&["gc", "--dry-run", "--skip-plugin", "fualty"]);
    assert!(!misspelt.status.success());
    assert!(
        stderr(&misspelt).contains("--skip-plugin fualty: no plugin library provides"),
        "{}",
        stderr(&misspelt)
    );
    // Its session was left alone, and the healthy one untouched.
    assert!(record.exists());
    let healthy = harness.tmux_session("app-1");
    assert!(harness.tmux.sessions().contains(&healthy));
}

/// The same crashes, with the plugin isolated (`plugins.isolate`): each fails only its call,
/// with a message naming the plugin, the cause and the method; `session ls` and `gc` go on with
/// what the other plugins say, and a hang is cut off by killing the plugin's process.
#[test]
fn an_isolated_plugin_that_crashes_fails_one_call_and_the_host_goes_on() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "a healthy session"]);
    let record = faulty_session_record(&harness);
    harness.install_faulty_runtime("{ methods: segfault, only: [alive_handles] }");
    harness.edit_config(&[
        ("  config:\n", "  isolate: [faulty]\n  config:\n"),
        (
            "ready_timeout_ms: 10000",
            "ready_timeout_ms: 10000, call_timeout_ms: 2000",
        ),
    ]);
    for (behaviour, cause) in [
        ("segfault", "crashed (SIGSEGV) in alive_handles"),
        ("abort", "crashed (SIGABRT) in alive_handles"),
        ("exit", "crashed (exit status 0) in alive_handles"),
        ("hang", "did not finish `alive_handles` within 2000 ms"),
    ] {
        harness.rewrite_config(|c| {
            let start = c.find("methods: ").unwrap() + "methods: ".len();
            let end = start + c[start..].find(',').unwrap();
            format!("{}{behaviour}{}", &c[..start], &c[end..])
        });
        let started = Instant::now();
        let listed = harness.ao(&["session", "ls", "--json"]);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{behaviour}: session ls took {:?}",
            started.elapsed()
        );
        assert!(
            matches!(listed.status.code(), Some(0 | 1)),
            "{behaviour}: {listed:?}"
        );
        let sessions = json(&listed);
        let healthy = sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "app-1")
            .unwrap_or_else(|| panic!("{behaviour}: {sessions:#}"));
        assert_ne!(healthy["status"], "exited", "{behaviour}: {healthy:#}");
        let output = harness.ok(&["gc", "--dry-run", "--json"]);
        let actions = stdout(&output);
        assert!(actions.contains(cause), "{behaviour}: {actions}");
        assert!(
            !actions.contains("\"app-1\""),
            "{behaviour}: gc would touch the healthy session: {actions}"
        );
    }
    // Nothing of the plugin's processes is left behind, the hung one included.
    let serving = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|entry| {
                std::fs::read(entry.path().join("cmdline"))
                    .is_ok_and(|cmdline| cmdline.ends_with(b"plugins\0serve\0"))
                    && std::fs::read_link(entry.path().join("cwd"))
                        .is_ok_and(|cwd| cwd.starts_with(harness.home()))
            })
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(5), || serving() == 0),
        "isolated plugin processes left running"
    );
    assert!(
        record.exists(),
        "the crashing plugin's session was never lost"
    );
}

/// Runs `argv` as the local user `nobody` (another user of a shared machine).
fn as_nobody(argv: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .args(argv)
        .output()
        .unwrap()
}

/// Every folder under `dir` whose mode is not 0700 and every regular file not 0600, with its
/// mode; a worktree (a folder holding `.git`: the user's code, git's modes) is not entered.
fn loose_modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut loose = Vec::new();
    let meta = dir.symlink_metadata().unwrap();
    if meta.mode() & 0o7777 != 0o700 {
        loose.push((dir.to_path_buf(), meta.mode() & 0o7777));
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = path.symlink_metadata().unwrap();
        if meta.is_dir() {
            if !path.join(".git").exists() {
                loose.extend(loose_modes(&path));
            }
        } else if meta.is_file() && meta.mode() & 0o7777 != 0o600 {
            loose.push((path, meta.mode() & 0o7777));
        }
    }
    loose
}

/// Every folder and file at or under `dir` (no link followed) that others may write.
fn others_may_write(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let meta = dir.symlink_metadata().unwrap();
    let mut found = Vec::new();
    if meta.mode() & 0o022 != 0 {
        found.push(dir.to_path_buf());
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            found.extend(others_may_write(&entry.unwrap().path()));
        }
    }
    found
}

/// Gives everything under `dir` (worktrees' contents aside) the modes an older ao-host left:
/// `folders` and `files` (0777 and 0666 under `umask 000`, 0755 and 0644 under the usual one).
fn loosen(dir: &Path, folders: u32, files: u32) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    mode(dir, folders);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = path.symlink_metadata().unwrap();
        if meta.is_dir() && !path.join(".git").exists() {
            loosen(&path, folders, files);
        } else if meta.is_file() {
            mode(&path, files);
        }
    }
}

#[test]
fn a_data_dir_an_older_version_left_readable_is_made_owner_only_on_first_use() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "a task"]);
    let data = harness.data_dir();
    // As an older ao-host left it under the usual umask (and before it marked a data dir
    // tightened).
    loosen(&data, 0o755, 0o644);
    std::fs::remove_file(data.join(".private-v1")).unwrap();
    assert!(!loose_modes(&data).is_empty());
    harness.ok(&["session", "ls"]);
    assert_eq!(loose_modes(&data), vec![], "left readable by others");
    harness.ok(&["session", "kill", "app-1"]);
}

#[test]
fn under_umask_000_everything_ao_host_keeps_is_owner_only_and_another_user_reads_no_task() {
    use std::os::unix::{fs::PermissionsExt, process::CommandExt};
    let harness = Harness::new(&[], "");
    // The data dir sits in a folder every user can traverse.
    std::fs::set_permissions(harness.home(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let with_umask_000 = |args: &[&str]| {
        let mut command = harness.command(args);
        // SAFETY: umask is async-signal-safe and touches no memory.
        unsafe {
            command.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        output
    };
    // The first spawn starts the tmux server, so the agent's hooks run under umask 000 too.
    with_umask_000(&["spawn", "app", "--task", "SECRET-TASK-ONE"]);
    with_umask_000(&["spawn", "app", "--task", "SECRET-TASK-TWO"]);
    with_umask_000(&["send", "app-1", "SECRET-MESSAGE"]);
    with_umask_000(&["session", "kill", "app-2", "--force"]);
    with_umask_000(&["gc"]);
    with_umask_000(&["doctor"]);
    let data = harness.data_dir();
    for made in [
        harness.record("app-1", false),
        harness.record("app-2", true),
        data.join("locks/app/app-1.lock"),
        data.join("agent-state/app/app-1/prompt"),
        data.join("worktrees/app"),
    ] {
        assert!(made.exists(), "{} was not made", made.display());
    }
    assert_eq!(loose_modes(&data), vec![], "not owner-only under umask 000");
    // The sessions' git admin folders (in the repository, which keeps its own modes): what git
    // runs there is decided by their files, so no other user may write any of them.
    let admins = harness.repo().join(".git/worktrees");
    assert!(admins.join("app-1/commondir").exists());
    assert_eq!(
        others_may_write(&admins),
        Vec::<PathBuf>::new(),
        "a git admin folder others may write"
    );
    assert_eq!(loose_modes(&admins.join("app-1")), vec![]);

    // Another local user sees nothing of the tasks, whatever file it tries.
    let searched = as_nobody(&["grep", "-r", "SECRET", data.to_str().unwrap()]);
    assert!(
        !stdout(&searched).contains("SECRET"),
        "{}",
        stdout(&searched)
    );
    for file in [
        harness.record("app-1", false),
        data.join("agent-state/app/app-1/prompt"),
    ] {
        let read = as_nobody(&["cat", file.to_str().unwrap()]);
        assert!(!read.status.success(), "nobody read {}", file.display());
    }
    assert!(!as_nobody(&["ls", data.to_str().unwrap()]).status.success());
}

#[test]
fn files_another_user_plants_in_a_loose_data_dir_are_refused_and_touch_nothing_outside() {
    use std::os::unix::fs::PermissionsExt;
    let harness = Harness::new(&[], "");
    std::fs::set_permissions(harness.home(), std::fs::Permissions::from_mode(0o755)).unwrap();
    harness.ok(&["spawn", "app", "--task", "one"]);
    harness.ok(&["spawn", "app", "--task", "two"]);
    let (data, repo, home) = (harness.data_dir(), harness.repo(), harness.home());
    // What must survive: two worktrees made by hand (one with an ignored file), and a private
    // file of the operator's outside the data dir.
    let victim = home.join("victim");
    let by_hand = home.join("by-hand");
    for (path, branch) in [(&victim, "victim"), (&by_hand, "by-hand")] {
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
    }
    std::fs::write(victim.join("MARK"), "mine").unwrap();
    std::fs::write(by_hand.join(".git-ignored-mark"), "mine").unwrap();
    std::fs::write(
        by_hand.join(".gitignore"),
        ".git-ignored-mark\n.gitignore\n",
    )
    .unwrap();
    let secret = home.join("secret");
    std::fs::write(&secret, "precious").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The data dir as an older ao-host left it under umask 000; another user plants and edits.
    loosen(&data, 0o777, 0o666);
    let record = harness.record("app-1", false);
    let edited = support::replaced(
        &std::fs::read_to_string(&record).unwrap(),
        &[(
            &harness.worktree("app-1").display().to_string(),
            &victim.display().to_string(),
        )],
    );
    let nobody_sh = |script: &str, args: &[&str]| {
        let mut argv = vec!["sh", "-c", script, "sh"];
        argv.extend_from_slice(args);
        let output = as_nobody(&argv);
        assert!(output.status.success(), "{script}: {}", stderr(&output));
    };
    nobody_sh(
        "printf %s \"$1\" > \"$2\"",
        &[&edited, record.to_str().unwrap()],
    );
    let pending = data.join("git-worktree/pending");
    nobody_sh(
        "mkdir -p \"$1\" && printf %s \"$2\" > \"$1/app__app-7\"",
        &[pending.to_str().unwrap(), by_hand.to_str().unwrap()],
    );
    let lock = data.join("locks/app/app-2.lock");
    nobody_sh(
        "rm -f \"$1\" && ln -s \"$2\" \"$1\"",
        &[lock.to_str().unwrap(), secret.to_str().unwrap()],
    );
    // The operator's own intent file naming a folder it does not name by its name.
    std::fs::write(pending.join("app__app-8"), by_hand.display().to_string()).unwrap();

    // The edited record: listed as a problem with the fix; kill refuses it.
    let listed = harness.ao(&["session", "ls", "--json"]);
    assert!(!listed.status.success());
    let chmod = format!("install -m 600 {} ", record.display());
    assert!(stderr(&listed).contains(&chmod), "{}", stderr(&listed));
    let kill = harness.ao(&["session", "kill", "app-1", "--force"]);
    assert!(!kill.status.success());
    assert!(
        stderr(&kill).contains("writable by other users"),
        "{}",
        stderr(&kill)
    );
    // The symlinked lock (of a record the operator checked and made theirs again): refused by
    // every command that would take it; its target unchanged.
    std::fs::set_permissions(
        harness.record("app-2", false),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    for args in [
        &["send", "app-2", "hi"][..],
        &["session", "kill", "app-2", "--force"],
    ] {
        let refused = harness.ao(args);
        assert!(!refused.status.success(), "{args:?}");
        assert!(
            stderr(&refused).contains("symbolic link"),
            "{}",
            stderr(&refused)
        );
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "precious");
    // doctor names what it cannot make private.
    let doctor = json(&harness.ao(&["doctor", "--json"]));
    let privacy = doctor
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["what"] == "data dir is private")
        .unwrap();
    assert_eq!(privacy["ok"], false);
    let detail = privacy["detail"].as_str().unwrap();
    assert!(
        detail.contains("app-2.lock") && detail.contains("app__app-7"),
        "{detail}"
    );
    // Tightened on first use: no other user can plant anything any more.
    assert!(
        !as_nobody(&["touch", data.join("sessions/app/x").to_str().unwrap()])
            .status
            .success()
    );

    // The operator makes the edited record theirs again without reading it: the workspace
    // plugin's own records still stop the kill before anything is stopped or removed.
    std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o600)).unwrap();
    let handle = harness.tmux_session("app-1");
    let kill = harness.ao(&["session", "kill", "app-1", "--force"]);
    assert!(!kill.status.success());
    assert!(
        stderr(&kill).contains("does not list it as a workspace of this data dir"),
        "{}",
        stderr(&kill)
    );
    assert!(
        harness.tmux.sessions().contains(&handle),
        "the kill stopped the agent"
    );
    // gc, with no record in its way, still removes neither hand-made worktree.
    let original = support::replaced(
        &std::fs::read_to_string(&record).unwrap(),
        &[(
            &victim.display().to_string(),
            &harness.worktree("app-1").display().to_string(),
        )],
    );
    std::fs::write(&record, original).unwrap();
    let gc = json(&harness.ok(&["gc", "--json"]));
    assert!(
        !gc.to_string().contains(&by_hand.display().to_string()),
        "{gc:#}"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("MARK")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(by_hand.join(".git-ignored-mark")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "precious");
    // The session's own worktree is still removed by its own kill.
    harness.ok(&["session", "kill", "app-1", "--force"]);
    assert!(!harness.worktree("app-1").exists());
    assert!(victim.join("MARK").exists() && by_hand.exists());
}

#[test]
fn a_record_edited_to_name_another_sessions_worktree_cannot_make_kill_remove_it() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "one"]);
    harness.ok(&["spawn", "app", "--task", "two"]);
    let record = harness.record("app-1", false);
    let edited = support::replaced(
        &std::fs::read_to_string(&record).unwrap(),
        &[(
            &harness.worktree("app-1").display().to_string(),
            &harness.worktree("app-2").display().to_string(),
        )],
    );
    std::fs::write(&record, edited).unwrap();
    std::fs::write(harness.worktree("app-2").join("MARK"), "work").unwrap();
    let handle = harness.tmux_session("app-1");
    let kill = harness.ao(&["session", "kill", "app-1", "--force"]);
    assert_one_line_error(&kill, "the record of app-2 names it too");
    assert!(
        harness.tmux.sessions().contains(&handle),
        "the kill stopped the agent"
    );
    assert!(harness.worktree("app-2").join("MARK").exists());
    // Kept aside, the session goes; the other session's worktree stays.
    harness.ok(&["session", "kill", "app-1", "--keep-workspace"]);
    assert!(harness.worktree("app-2").join("MARK").exists());
}

#[test]
fn a_git_admin_folder_another_user_could_edit_is_refused_and_no_git_runs_in_it() {
    use std::os::unix::fs::PermissionsExt;
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "one"]);
    let (home, repo) = (harness.home(), harness.repo());
    let admin = repo.join(".git/worktrees/app-1");
    // As git left it under `umask 000` before this rule, reachable through folders every user
    // can traverse.
    for folder in [
        home.to_path_buf(),
        repo.clone(),
        repo.join(".git"),
        repo.join(".git/worktrees"),
    ] {
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    loosen(&admin, 0o777, 0o666);
    // A git dir whose config runs a program as whoever runs git with it.
    let mark = home.join("FSMONITOR-RAN");
    let evil = home.join("evil.git");
    assert!(Command::new("cp")
        .args([
            "-a",
            repo.join(".git").to_str().unwrap(),
            evil.to_str().unwrap()
        ])
        .status()
        .unwrap()
        .success());
    git(
        &repo,
        &[
            "config",
            "--file",
            evil.join("config").to_str().unwrap(),
            "core.fsmonitor",
            &format!("touch {}", mark.display()),
        ],
    );
    // Another user points the session's admin folder at it.
    let commondir = admin.join("commondir");
    let planted = as_nobody(&[
        "sh",
        "-c",
        "printf '%s\\n' \"$1\" > \"$2\"",
        "sh",
        evil.to_str().unwrap(),
        commondir.to_str().unwrap(),
    ]);
    assert!(planted.status.success(), "{}", stderr(&planted));

    for args in [
        &["session", "kill", "app-1"][..],
        &["session", "kill", "app-1", "--force"],
    ] {
        let kill = harness.ao(args);
        assert!(!mark.exists(), "git ran with the planted admin folder");
        assert!(!kill.status.success(), "{args:?} went ahead");
        let err = stderr(&kill);
        assert!(err.contains(&admin.display().to_string()), "{err}");
        assert!(err.contains("writable by other users"), "{err}");
    }
    harness.ok(&["gc"]);
    assert!(!mark.exists(), "git ran with the planted admin folder");
    // Refused before anything was stopped.
    assert!(tagged_tmux_sessions(&harness).contains_key(&harness.tmux_session("app-1")));
    assert!(harness.worktree("app-1").join(".git").exists());
}

/// A link another user plants where the operator's data dir would be (in a sticky `/tmp`)
/// must not point ao-host, which tightens what it finds in its data dir, at someone's folder.
#[test]
fn a_data_dir_named_through_another_users_link_is_refused_and_its_target_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let harness = Harness::new(&[], "");
    let shared = harness.home().join("shared");
    let victim = harness.home().join("victim");
    std::fs::create_dir_all(victim.join("sub")).unwrap();
    std::fs::write(victim.join("file"), "mine").unwrap();
    for (path, mode) in [
        (harness.home(), 0o755),
        (victim.as_path(), 0o755),
        (victim.join("sub").as_path(), 0o755),
        (victim.join("file").as_path(), 0o644),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let link = shared.join("data");
    let planted = as_nobody(&["ln", "-s", victim.to_str().unwrap(), link.to_str().unwrap()]);
    assert!(planted.status.success(), "{}", stderr(&planted));

    for args in [
        &["session", "ls"][..],
        &["spawn", "app", "--task", "one"],
        &["gc"],
    ] {
        let mut argv = vec!["--data-dir", link.to_str().unwrap()];
        argv.extend_from_slice(args);
        let output = harness.ao(&argv);
        assert_one_line_error(&output, &link.display().to_string());
        assert!(
            stderr(&output).contains("owned by uid"),
            "{}",
            stderr(&output)
        );
    }
    let mode = |path: &Path| path.symlink_metadata().unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        (
            mode(&victim),
            mode(&victim.join("sub")),
            mode(&victim.join("file"))
        ),
        (0o755, 0o755, 0o644),
        "the link's target was tightened"
    );
    let entries: Vec<_> = std::fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 2, "made in the link's target: {entries:?}");
}

#[test]
fn a_data_dir_or_worktree_root_of_another_user_is_refused_and_nothing_is_made_in_it() {
    use std::os::unix::fs::PermissionsExt;
    let harness = Harness::new(&[], "");
    let shared = harness.home().join("shared");
    std::fs::create_dir(&shared).unwrap();
    for (folder, mode) in [(harness.home(), 0o755), (shared.as_path(), 0o1777)] {
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let (data, root) = (shared.join("data"), shared.join("wt"));
    let made = as_nobody(&[
        "mkdir",
        "-m",
        "777",
        data.to_str().unwrap(),
        root.to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{}", stderr(&made));

    // Every command that acts refuses the data dir, naming it and the fix.
    for args in [
        &["spawn", "app", "--task", "one"][..],
        &["session", "ls"],
        &["session", "kill", "app-1"],
        &["send", "app-1", "hi"],
        &["gc"],
    ] {
        let mut argv = vec!["--data-dir", data.to_str().unwrap()];
        argv.extend_from_slice(args);
        let output = harness.ao(&argv);
        assert_one_line_error(&output, &data.display().to_string());
        assert!(stderr(&output).contains("chown"), "{}", stderr(&output));
    }
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0, "made in it");
    assert!(tagged_tmux_sessions(&harness).is_empty());

    // A worktree root of another user: the spawn is refused and undone.
    harness.edit_config(&[(
        "  config:\n",
        &format!(
            "  config:\n    git-worktree: {{ root: {:?} }}\n",
            root.display().to_string()
        ),
    )]);
    let spawn = harness.ao(&["spawn", "app", "--task", "one"]);
    assert!(!spawn.status.success());
    let err = stderr(&spawn);
    assert!(
        err.contains(&root.display().to_string()) && err.contains("chown"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "made in it");
    assert!(tagged_tmux_sessions(&harness).is_empty());
    assert!(harness.sessions_json(&[]).is_empty());
}

#[test]
fn gc_never_takes_a_moved_records_folder_for_orphaned_sessions() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "one"]);
    let tmux = harness.tmux_session("app-1");
    let data = harness.data_dir();
    std::fs::rename(data.join("sessions"), data.join("hidden")).unwrap();
    let gc = harness.ao(&["gc"]);
    let said = format!("{}{}", stdout(&gc), stderr(&gc));
    assert!(said.contains("moved or replaced"), "{said}");
    assert!(tagged_tmux_sessions(&harness).contains_key(&tmux), "{said}");
    assert!(harness.worktree("app-1").join(".git").exists(), "{said}");
    // Put back, everything is found again.
    std::fs::remove_dir(data.join("sessions")).unwrap();
    std::fs::rename(data.join("hidden"), data.join("sessions")).unwrap();
    let gc = harness.ok(&["gc", "--json"]);
    assert!(
        !stdout(&gc).contains("moved or replaced"),
        "{}",
        stdout(&gc)
    );
    assert!(tagged_tmux_sessions(&harness).contains_key(&tmux));
    harness.ok(&["session", "kill", "app-1"]);
}

#[test]
fn gc_dry_run_tells_the_steps_it_would_take_from_the_ones_it_would_skip() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "a"]);
    harness.ok(&["spawn", "app", "--task", "b"]);
    // app-1 exited (a step); app-2 lost its record, so its runtime and worktree are orphans,
    // which an unreadable record keeps gc from removing (skips).
    let exited = harness.tmux_session("app-1");
    harness
        .tmux
        .tmux(&["kill-session", "-t", &format!("={exited}")]);
    std::fs::remove_file(harness.record("app-2", false)).unwrap();
    std::fs::write(harness.record("app-9", false), "garbage: [").unwrap();

    let text = stdout(&harness.ok(&["gc", "--dry-run"]));
    let line = |action: &str| {
        text.lines()
            .find(|l| l[5..].trim_start().starts_with(action))
            .unwrap_or_else(|| panic!("no {action}: {text}"))
            .to_string()
    };
    assert!(line("mark exited").starts_with("would"), "{text}");
    for skipped in ["destroy orphan runtime session", "remove orphan workspace"] {
        assert!(line(skipped).starts_with("skip "), "{text}");
    }

    let actions = json(&harness.ok(&["gc", "--dry-run", "--json"]));
    let outcome = |action: &str| {
        actions
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == action)
            .unwrap_or_else(|| panic!("no {action}: {actions:#}"))["outcome"]
            .clone()
    };
    assert_eq!(outcome("mark exited"), "planned", "{actions:#}");
    assert_eq!(outcome("destroy orphan runtime session"), "skipped");
    assert_eq!(outcome("remove orphan workspace"), "skipped");
    // Nothing was done: the session is still `running` on record, the orphans are there.
    assert!(harness.worktree("app-2").exists());
    let applied = json(&harness.ok(&["gc", "--json"]));
    assert!(
        applied
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "mark exited" && a["outcome"] == "done"),
        "{applied:#}"
    );
}

#[test]
fn a_sessions_lock_file_goes_with_it_and_gc_removes_those_of_sessions_gone_and_stray_temp_files() {
    let harness = Harness::new(&[], "");
    let locks = harness.data_dir().join("locks").join("app");
    harness.ok(&["spawn", "app", "--task", "a"]);
    harness.ok(&["spawn", "app", "--task", "b"]);
    assert!(locks.join("app-1.lock").exists());
    harness.ok(&["session", "kill", "app-1"]);
    assert!(
        !locks.join("app-1.lock").exists(),
        "kill left its lock file"
    );

    // Left by sessions gone before (an older ao-host, a crash): one free, one held by a
    // process of its own; and a temporary file a dead hook left deep in the agent state.
    std::fs::write(locks.join("app-7.lock"), "").unwrap();
    std::fs::write(locks.join("app-8.lock"), "").unwrap();
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(locks.join("app-8.lock"))
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let held = wait_until(Duration::from_secs(10), || {
        Command::new("flock")
            .args(["-n"])
            .arg(locks.join("app-8.lock"))
            .arg("true")
            .status()
            .is_ok_and(|s| !s.success())
    });
    assert!(held);
    let nested = harness.data_dir().join("agent-state/app/app-9");
    std::fs::create_dir_all(&nested).unwrap();
    let temp = nested.join(".app-9.json.99999999-00000000000000aa.tmp");
    std::fs::write(&temp, "half a state").unwrap();

    let plan = json(&harness.ok(&["gc", "--dry-run", "--json"]));
    let planned = |action: &str, target: &str| {
        plan.as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == action && a["target"] == target && a["outcome"] == "planned")
    };
    assert!(planned("remove lock file", "app/app-7"), "{plan:#}");
    assert!(!planned("remove lock file", "app/app-2"), "{plan:#}");
    assert!(
        planned("remove temporary file", temp.to_str().unwrap()),
        "{plan:#}"
    );

    let applied = json(&harness.ok(&["gc", "--json"]));
    let busy = applied
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["target"] == "app/app-8")
        .unwrap_or_else(|| panic!("{applied:#}"));
    assert_eq!(busy["outcome"], "skipped", "{applied:#}");
    assert!(!locks.join("app-7.lock").exists());
    assert!(locks.join("app-8.lock").exists(), "a held lock was removed");
    assert!(
        locks.join("app-2.lock").exists(),
        "a live session's lock was removed"
    );
    assert!(!temp.exists());
    holder.kill().unwrap();
    holder.wait().unwrap();
    harness.ok(&["gc"]);
    assert!(!locks.join("app-8.lock").exists());
    harness.ok(&["send", "app-2", "still mine"]);
}

/// `git worktree list --porcelain` entries of `repo` that git marks prunable.
fn prunable_worktrees(repo: &Path) -> usize {
    git(repo, &["worktree", "list", "--porcelain"])
        .lines()
        .filter(|l| l.starts_with("prunable"))
        .count()
}

#[test]
fn a_worktree_removed_by_hand_leaves_no_prunable_entry_or_idle_branch_after_kill_or_gc() {
    let harness = Harness::new(&[], "");
    let branches = || git(&harness.repo(), &["branch", "--format=%(refname:short)"]);
    for task in ["a", "b", "c"] {
        harness.ok(&["spawn", "app", "--task", task]);
    }

    // Killed keeping its workspace, which is then removed by hand: gc forgets it.
    harness.ok(&["session", "kill", "app-2", "--keep-workspace"]);
    std::fs::remove_dir_all(harness.worktree("app-2")).unwrap();
    assert_eq!(prunable_worktrees(&harness.repo()), 1);
    let plan = json(&harness.ok(&["gc", "--dry-run", "--json"]));
    let worktree = harness.worktree("app-2").display().to_string();
    assert!(
        plan.as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "remove orphan workspace"
                && a["target"] == worktree.as_str()
                && a["outcome"] == "planned"),
        "{plan:#}"
    );
    harness.ok(&["gc"]);
    assert_eq!(prunable_worktrees(&harness.repo()), 0);
    assert!(!branches().contains("app-2"), "{}", branches());

    // Removed by hand under live sessions, then killed; app-3's branch holds a commit. Killing
    // app-3 prunes app-1's entry too: app-1's branch is found without it.
    let third = harness.worktree("app-3");
    std::fs::write(third.join("work.txt"), "work\n").unwrap();
    git(&third, &["add", "work.txt"]);
    git(&third, &["commit", "-q", "-m", "work"]);
    for id in ["app-1", "app-3"] {
        std::fs::remove_dir_all(harness.worktree(id)).unwrap();
    }
    assert_eq!(prunable_worktrees(&harness.repo()), 2);
    harness.ok(&["session", "kill", "app-3"]);
    assert_eq!(prunable_worktrees(&harness.repo()), 0);
    harness.ok(&["session", "kill", "app-1"]);
    let left = branches();
    assert!(!left.contains("app-1"), "{left}");
    assert!(
        left.contains("app-3"),
        "a branch with work was removed: {left}"
    );
    let gc = json(&harness.ok(&["gc", "--json"]));
    assert!(gc.as_array().unwrap().is_empty(), "{gc:#}");
}

/// `command` run with `data_dir` mounted read-only, in a mount namespace of its own (root is
/// not stopped by permission bits).
fn on_read_only_data_dir(data_dir: &Path, command: Command) -> Output {
    support::in_private_mounts(
        r#"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@""#,
        &[data_dir.as_os_str()],
        &command,
    )
    .output()
    .unwrap()
}

#[test]
fn a_read_only_data_dir_still_lists_and_diagnoses_and_a_write_says_the_fix() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "a"]);
    let read_only =
        |args: &[&str]| on_read_only_data_dir(&harness.data_dir(), harness.command(args));

    let listed = read_only(&["session", "ls", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert_eq!(json(&listed)[0]["id"], "app-1");
    let table = read_only(&["session", "ls"]);
    assert!(table.status.success(), "{}", stderr(&table));
    assert!(stdout(&table).contains("app-1"), "{}", stdout(&table));

    let doctor = read_only(&["doctor"]);
    let report = stdout(&doctor);
    let fix = report
        .lines()
        .find(|l| l.starts_with("FIX") && l.contains("read-only"))
        .unwrap_or_else(|| {
            panic!(
                "no FIX line for the read-only data dir: {report}{}",
                stderr(&doctor)
            )
        });
    assert!(fix.contains("remount"), "{fix}");

    // gc's steps cannot be done there: each is named as failed, and gc fails.
    let stray = harness
        .data_dir()
        .join("sessions/app/.app-9.yaml.999999999-0.tmp");
    std::fs::write(&stray, "half").unwrap();
    let gc = read_only(&["gc", "--json"]);
    assert!(!gc.status.success(), "{}", stdout(&gc));
    let failed = json(&gc);
    assert_eq!(failed[0]["outcome"], "failed", "{failed:#}");
    assert!(stray.exists());
    assert!(
        !stderr(&listed).contains("WARN") && !stderr(&table).contains("WARN"),
        "a listing of a read-only data dir warns: {}",
        stderr(&table)
    );

    let kill = read_only(&["session", "kill", "app-1"]);
    assert!(!kill.status.success());
    assert_one_line_error(&kill, "read-only");
    assert!(stderr(&kill).contains("remount"), "{}", stderr(&kill));
    // Nothing was lost: the session is whole, and a writable data dir acts on it again.
    assert!(harness
        .tmux
        .sessions()
        .contains(&harness.tmux_session("app-1")));
    harness.ok(&["session", "kill", "app-1"]);
    harness.assert_no_sessions();

    // One that never held records (nothing could be made in it): no sessions, no error.
    let empty = harness.home().join("empty-data");
    std::fs::create_dir(&empty).unwrap();
    let empty_text = empty.display().to_string();
    let listed = on_read_only_data_dir(
        &empty,
        harness.command(&["--data-dir", &empty_text, "session", "ls", "--json"]),
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert_eq!(json(&listed), serde_json::json!([]));
    let doctor = on_read_only_data_dir(
        &empty,
        harness.command(&["--data-dir", &empty_text, "doctor"]),
    );
    assert!(
        stdout(&doctor)
            .lines()
            .any(|l| l.starts_with("FIX") && l.contains("read-only")),
        "{}{}",
        stdout(&doctor),
        stderr(&doctor)
    );
}
