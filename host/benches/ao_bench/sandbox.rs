//! Confinement's cost: `ao-host spawn` with the bubblewrap sandbox against `--sandbox off`,
//! alternately in one installation, and a `git commit` made by an agent inside its sandbox
//! against one made by an unconfined agent.
//!
//! The installation lives under the e2e target folder, not `/tmp`: a confined agent gets a
//! private `/tmp`, in which the config and plugins would not exist.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{
    measure::{median, ms},
    setup::{ao_host, spawn_setup, SpawnSetup},
    support,
};

/// Commits each agent times, the first dropped as a warm-up.
const COMMITS: usize = 21;

pub(crate) fn sandbox(plugins: &[PathBuf]) {
    println!("## Sandbox\n");
    if support::on_path(&["bwrap"]).is_none() {
        println!("Skipped: bwrap is not installed (apt-get install bubblewrap).\n");
        return;
    }
    let scratch = support::scratch_dir();
    let mut plugins = plugins.to_vec();
    plugins.push(support::build_workspace_plugin_release(
        "ao-sandbox-bubblewrap",
    ));
    let setup = spawn_setup(&plugins, scratch.path(), "sandbox-spawn");
    let runs = 15;
    let (mut off, mut confined) = (Vec::new(), Vec::new());
    for n in 0..runs {
        // Alternately, so load on the shared machine falls on both alike.
        for (choice, times) in [("off", &mut off), ("bubblewrap", &mut confined)] {
            let task = format!("benchmark task {n}");
            let started = Instant::now();
            spawn(&setup, choice, &task);
            times.push(ms(started.elapsed()));
        }
    }
    let (off, confined) = (median(off), median(confined));
    println!(
        "`ao-host spawn app --sandbox off|bubblewrap --task …`, process start to exit, the fake agent"
    );
    println!(
        "(optimised, ready at once), {runs} spawns of each, alternately in one installation; medians.\n"
    );
    println!("| spawn | median |");
    println!("|---|---|");
    println!("| unconfined (`--sandbox off`) | {off:.1} ms |");
    println!("| confined (`--sandbox bubblewrap`, network full) | {confined:.1} ms |");
    println!(
        "| **confined − unconfined** | **{:+.1} ms** (target <= +10 ms) |\n",
        confined - off
    );

    let (off, confined) = (
        commit_times(&plugins, scratch.path(), "off"),
        commit_times(&plugins, scratch.path(), "bubblewrap"),
    );
    println!(
        "`git commit` of a one-line change, timed by the agent itself in its worktree ({} commits",
        COMMITS - 1
    );
    println!("after a warm-up; medians): what a confined agent pays per commit.\n");
    println!("| git commit | median |");
    println!("|---|---|");
    println!("| unconfined agent | {off:.2} ms |");
    println!("| confined agent (bubblewrap) | {confined:.2} ms |");
    println!("| confined / unconfined | {:.2}x |\n", confined / off);
}

fn spawn(setup: &SpawnSetup, sandbox: &str, task: &str) {
    let output = ao_host(
        setup,
        &["spawn", "app", "--sandbox", sandbox, "--task", task],
    )
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "spawn --sandbox {sandbox}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Microseconds per `git commit` an agent measured in its own worktree, spawned with
/// `--sandbox sandbox`; the median in ms.
fn commit_times(plugins: &[PathBuf], work: &Path, sandbox: &str) -> f64 {
    let setup = spawn_setup(plugins, work, &format!("sandbox-commit-{sandbox}"));
    let script = setup.dir.join("committer");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/bash
# Only in a session's worktree: elsewhere git would walk up into whatever repository holds it.
[ -n "$AO_SESSION" ] && [ -e .git ] || exec '{0}' "$@"
export GIT_CEILING_DIRECTORIES="${{PWD%/*}}"
for i in $(seq 1 {COMMITS}); do
  echo "$i" > counter.txt
  git add counter.txt
  start=$(date +%s%N)
  git -c user.name=bench -c user.email=bench@test.invalid commit -q -m "commit $i"
  end=$(date +%s%N)
  echo $(( (end - start) / 1000 ))
done > commits.tmp
mv commits.tmp commits.txt
exec '{0}' "$@"
"#,
            setup.agent.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = std::fs::read_to_string(&setup.config).unwrap();
    let agent = format!("{:?}", setup.agent.display().to_string());
    assert!(config.contains(&agent));
    std::fs::write(
        &setup.config,
        config.replace(&agent, &format!("{:?}", script.display().to_string())),
    )
    .unwrap();
    spawn(&setup, sandbox, "commit");
    let file = setup
        .dir
        .join("data/worktrees/app/app-1")
        .join("commits.txt");
    assert!(
        support::wait_until(Duration::from_secs(60), || file.exists()),
        "the agent never wrote {}",
        file.display()
    );
    let micros: Vec<f64> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.parse::<f64>().unwrap() / 1000.0)
        .collect();
    median(micros)
}
