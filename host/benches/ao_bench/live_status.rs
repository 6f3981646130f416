//! Live status: `session ls` over 100 live sessions whose agents report their state.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{
    dashboard::dashboard_cost,
    measure::{median, ms},
    setup::{ao_host, spawn_ok, spawn_setup},
    support::wait_until,
};

/// `session ls` over 100 live sessions: one `alive_handles` call, then every screen read and
/// judged concurrently.
pub(crate) fn live_listing(plugins: &[PathBuf], work: &Path) {
    let setup = spawn_setup(plugins, work, "live-listing");
    let sessions = 100;
    for n in 0..sessions {
        spawn_ok(&setup, &format!("live {n}"));
    }
    // Every session reports its state through its hooks (going idle once its first turn ends):
    // none of their screens is read.
    let states = setup.dir.join("data").join("agent-state").join("app");
    let idle = |n: &usize| {
        std::fs::read_to_string(states.join(format!("app-{n}.json")))
            .is_ok_and(|state| state.contains("\"status\":\"idle\""))
    };
    let all_idle = wait_until(Duration::from_secs(30), || (1..=sessions).all(|n| idle(&n)));
    assert!(all_idle, "every agent reported going idle");
    let runs: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            let output = ao_host(&setup, &["session", "ls", "--json"])
                .output()
                .unwrap();
            assert!(output.status.success());
            let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(listed.as_array().unwrap().len(), sessions);
            ms(started.elapsed())
        })
        .collect();
    println!("## Live status\n");
    println!("| operation | median | target |");
    println!("|---|---|---|");
    println!(
        "| `ao-host session ls --json` with {sessions} live sessions whose agents report their state (hook state files read; one `alive_handles` call, no screen captured) | {:.0} ms | <= 60 ms |",
        median(runs)
    );
    println!();
    dashboard_cost(&setup, sessions);
}
