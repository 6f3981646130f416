//! Sandboxed agents (issue #29): `ao-host spawn` confined by the `bubblewrap` plugin against the
//! same spawn unconfined, and a `git commit` in a confined session's box against one outside.
//!
//! The installation lives outside `/tmp` (`support::scratch_dir`): a confined agent gets a
//! private `/tmp`, in which the config its hooks read would not exist.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use crate::{
    measure::{median, ms},
    setup::{spawn_ok, spawn_setup},
    support,
};

/// Spawns per config and round; rounds alternate the two configs.
const SPAWNS: usize = 11;
const ROUNDS: usize = 3;
/// Commits each way, alternated.
const COMMITS: usize = 21;

pub(crate) fn sandbox(plugins: &[PathBuf]) {
    let work = support::scratch_dir();
    let mut plugins = plugins.to_vec();
    plugins.push(support::build_workspace_plugin_release(
        "ao-sandbox-bubblewrap",
    ));
    let setup = spawn_setup(&plugins, work.path(), "sandbox");
    let plain = std::fs::read_to_string(&setup.config).unwrap();
    let confining = support::replaced(
        &plain,
        &[(
            "default_branch: main}",
            "default_branch: main, sandbox: { plugin: bubblewrap, network: full } }",
        )],
    );
    let spawns = |config: &str, label: &str| {
        std::fs::write(&setup.config, config).unwrap();
        let runs: Vec<f64> = (0..SPAWNS)
            .map(|n| {
                let started = Instant::now();
                spawn_ok(&setup, &format!("{label} {n}"));
                ms(started.elapsed())
            })
            .collect();
        median(runs)
    };
    // Alternated, so that drift of this shared machine hits both alike.
    let (mut unconfined, mut confined) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        unconfined.push(spawns(&plain, &format!("unconfined {round}")));
        confined.push(spawns(&confining, &format!("confined {round}")));
    }
    let (unconfined, confined) = (median(unconfined), median(confined));

    // The last session is confined: its box's options, replayed around `git commit`.
    let worktree = setup
        .dir
        .join("data/worktrees/app")
        .join(format!("app-{}", 2 * SPAWNS * ROUNDS));
    let bwrap = box_options(&worktree);
    let commit = |n: usize| {
        let message = format!("bench {n}");
        ["git", "commit", "-q", "--allow-empty", "-m", &message]
            .map(String::from)
            .to_vec()
    };
    let identity = [
        ("GIT_AUTHOR_NAME", "bench"),
        ("GIT_AUTHOR_EMAIL", "bench@test.invalid"),
        ("GIT_COMMITTER_NAME", "bench"),
        ("GIT_COMMITTER_EMAIL", "bench@test.invalid"),
    ];
    let timed = |argv: Vec<String>| {
        let started = Instant::now();
        let output = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(&worktree)
            .envs(identity)
            .output()
            .unwrap();
        let took = ms(started.elapsed());
        assert!(
            output.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        took
    };
    let boxed = |argv: Vec<String>| [bwrap.clone(), vec!["--".into()], argv].concat();
    let (mut outside, mut inside, mut empty) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..COMMITS {
        outside.push(timed(commit(2 * n)));
        inside.push(timed(boxed(commit(2 * n + 1))));
        empty.push(timed(boxed(vec!["true".into()])));
    }
    let (outside, inside, empty) = (median(outside), median(inside), median(empty));
    setup.tmux.tmux(&["kill-server"]);

    println!("## Sandboxed agents\n");
    println!("| operation | unconfined | confined (bubblewrap) | difference | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| `ao-host spawn` ({ROUNDS} x {SPAWNS} spawns each, alternated, medians) | {unconfined:.1} ms | {confined:.1} ms | {:+.1} ms | <= +10 ms |",
        confined - unconfined
    );
    println!(
        "| `git commit --allow-empty` in a session's worktree ({COMMITS} each, alternated) | {outside:.1} ms | {inside:.1} ms | {:+.1} ms | |",
        inside - outside
    );
    println!(
        "| `true` under the same box (bwrap's own start and mounts; {} rules) | | {empty:.1} ms | | |",
        bwrap.iter().filter(|a| a.starts_with("--")).count()
    );
    println!();
}

/// The options of the `bwrap` running the agent in `worktree` (its program first), read from
/// its command line: exactly the box the session's agent runs in.
fn box_options(worktree: &Path) -> Vec<String> {
    let needle = worktree.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| {
            cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
        })
        .find(|args| {
            args.first().is_some_and(|a| a.ends_with("bwrap"))
                && args.iter().any(|a| a.contains(&needle))
        })
        .map(|args| {
            let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
            args[..end].to_vec()
        })
        .unwrap_or_else(|| panic!("no bwrap runs the agent in {}", worktree.display()))
}
