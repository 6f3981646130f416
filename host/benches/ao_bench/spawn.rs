//! Spawn latency: `ao-host spawn` phase by phase, its peak memory, and the least any tool can
//! do to start a session by hand.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    child::run_child,
    measure::{median, ms},
    setup::{ao_host, spawn_setup, SpawnSetup},
    support::git,
};

/// The `-v` timing lines' phases, in order.
const PHASES: [&str; 7] = [
    "config",
    "plugin-load",
    "reserve",
    "workspace",
    "runtime",
    "ready-wait",
    "send",
];

/// The single-spawn section; returns the median spawn, for the concurrency section.
pub(crate) fn spawn_latency(plugins: &[PathBuf], work: &Path) -> f64 {
    let setup = spawn_setup(plugins, work, "spawn-latency");
    let runs = 15;
    let mut totals = Vec::new();
    let mut phases: Vec<Vec<f64>> = vec![Vec::new(); PHASES.len()];
    for n in 0..runs {
        let started = Instant::now();
        let output = ao_host(
            &setup,
            &[
                "-v",
                "spawn",
                "app",
                "--task",
                &format!("benchmark task {n}"),
            ],
        )
        .output()
        .unwrap();
        totals.push(ms(started.elapsed()));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        for line in String::from_utf8_lossy(&output.stderr).lines() {
            let Some(rest) = line.split("timing phase=\"").nth(1) else {
                continue;
            };
            let (phase, value) = rest.split_once("\" ms=").unwrap();
            if let Some(i) = PHASES.iter().position(|p| *p == phase) {
                phases[i].push(value.trim().parse().unwrap());
            }
        }
    }
    let rss_runs: Vec<f64> = (0..5)
        .map(|n| {
            let task = format!("rss task {n}");
            let command = ao_host(&setup, &["spawn", "app", "--task", &task]);
            let mut args: Vec<String> = vec![
                "rss".into(),
                command.get_program().to_string_lossy().into_owned(),
            ];
            args.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_child(&args).parse::<f64>().unwrap()
        })
        .collect();
    let rss = median(rss_runs);
    let total = median(totals);
    let floor = bare_floor(&setup, runs, false);
    let paste_floor = bare_floor(&setup, runs, true);
    let phase_medians: Vec<f64> = phases.into_iter().map(median).collect();
    let ready = phase_medians[5];
    println!("## Spawn latency\n");
    println!(
        "`ao-host spawn app --task …`, process start to exit, with real tmux and git and a fake"
    );
    println!("agent that is ready at once (`ao-fake-agent` of ao-plugin-test, optimised). {runs} spawns,");
    println!("medians; phases from the `-v` timing lines.\n");
    println!("| phase | median |");
    println!("|---|---|");
    for (phase, value) in PHASES.iter().zip(&phase_medians) {
        println!("| {phase} | {value:.1} ms |");
    }
    println!("| **total (wall, incl. process start)** | **{total:.1} ms** (target <= 150 ms) |");
    println!(
        "| reference behaviour: fixed 2.5 s sleep instead of the ready-wait | {:.1} ms (computed: total − ready-wait + 2500) |",
        total - ready + 2500.0
    );
    println!(
        "| bare floor: `git worktree add` + `tmux new-session` running the agent with its task, until the agent has it | {floor:.1} ms |"
    );
    println!(
        "| **spawn / floor** | **{:.2}x** (target <= 1.25x) |",
        total / floor
    );
    println!(
        "| bare floor typing the task instead: wait for the input box, paste, Enter | {paste_floor:.1} ms |"
    );
    println!("| spawn / typing floor | {:.2}x |", total / paste_floor);
    println!("\nPeak RSS of an `ao-host spawn` process: {rss:.1} MiB (target <= 15 MB).\n");
    total
}

/// The least any tool can do to start one session: a worktree on a new branch and a tmux
/// session running the agent with its task as an argument, by hand (two processes), timed until
/// the agent has the task. What ao-host adds on top is the price of its guarantees.
fn bare_floor(setup: &SpawnSetup, runs: usize, paste: bool) -> f64 {
    let agent = setup.agent.display().to_string();
    let kind = if paste { "paste" } else { "inline" };
    let tmux = |args: &[&str]| {
        let output = Command::new("tmux")
            .args(["-L", &setup.tmux.socket])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "tmux {args:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let totals: Vec<f64> = (0..runs)
        .map(|n| {
            let logs = setup.dir.join(format!("floor-{kind}-logs"));
            let path = setup
                .dir
                .join(format!("floor-{kind}-{n}"))
                .display()
                .to_string();
            let name = format!("floor-{kind}-{n}");
            let target = format!("={name}:");
            let task = format!("floor task {n}");
            // The fake agent records the message it took in `<FAKE_AGENT_LOG>/<AO_SESSION>`.
            let log_env = format!("FAKE_AGENT_LOG={}", logs.display());
            let session_env = format!("AO_SESSION={name}");
            let taken = logs.join(&name).join("messages.jsonl");
            let branch = format!("floor-{kind}/{n}");
            let started = Instant::now();
            git(
                &setup.repo,
                &["worktree", "add", "-q", "-b", &branch, &path, "main"],
            );
            let mut start = vec![
                "new-session",
                "-d",
                "-s",
                &name,
                "-c",
                &path,
                "-e",
                &log_env,
                "-e",
                &session_env,
                &agent,
            ];
            if paste {
                tmux(&start);
                // Typed in, as every tool did before agents took a first message at launch:
                // wait for the input box, paste, submit.
                while !tmux(&["capture-pane", "-p", "-t", &target]).contains("❯\u{a0}") {
                    std::thread::sleep(Duration::from_millis(1));
                }
                tmux(&["set-buffer", "-b", &name, "--", &task]);
                tmux(&["paste-buffer", "-p", "-d", "-b", &name, "-t", &target]);
                tmux(&["send-keys", "-t", &target, "Enter"]);
            } else {
                start.extend(["--", &task]);
                tmux(&start);
            }
            while !taken.exists() {
                std::thread::sleep(Duration::from_millis(1));
            }
            ms(started.elapsed())
        })
        .collect();
    median(totals)
}
