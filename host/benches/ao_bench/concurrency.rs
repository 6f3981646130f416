//! Concurrency: 20 `ao-host spawn` at once in one repository.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Instant,
};

use crate::{
    measure::{median, ms},
    setup::{ao_host, spawn_setup},
    support::git,
};

/// `single` is one spawn's median, from the spawn section.
pub(crate) fn concurrency(plugins: &[PathBuf], work: &Path, single: f64) {
    println!("## Concurrency\n");
    println!("20 `ao-host spawn` processes started at once in one repository (fresh repository each round).\n");
    println!("| round | wall time | / one spawn | failures |");
    println!("|---|---|---|---|");
    let mut walls = Vec::new();
    for round in 1..=3 {
        let setup = spawn_setup(plugins, work, &format!("concurrency-{round}"));
        let started = Instant::now();
        let children: Vec<_> = (0..20)
            .map(|n| {
                ao_host(
                    &setup,
                    &["spawn", "app", "--task", &format!("parallel task {n}")],
                )
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        let failures = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .filter(|o| !o.status.success())
            .count();
        let wall = ms(started.elapsed());
        walls.push(wall);
        let worktrees = git(&setup.repo, &["worktree", "list"]).lines().count() - 1;
        assert_eq!(worktrees + failures, 20);
        println!(
            "| {round} | {wall:.0} ms | {:.1}x | {failures} |",
            wall / single
        );
    }
    println!(
        "\nMedian: {:.0} ms, {:.1}x one spawn (target <= 3x, zero failures).\n",
        median(walls.clone()),
        median(walls) / single
    );
}
