//! ao-host benchmarks. `cargo bench -p ao-host --bench ao_bench` builds the plugins optimised,
//! runs every measurement on this machine and prints a Markdown report (BENCHMARKS.md is one).
//!
//! Figures are medians over repeated runs, and ratios compare numbers measured side by side in
//! the same run: the machine is shared and noisy, so absolute numbers move between runs.
//! Benchmarks report; they never fail on a timing (tests check behaviour only). One module per
//! section of the report; the agent is the fake agent (`ao-fake-agent`), optimised.

mod child;
mod concurrency;
mod config_guard;
mod dashboard;
mod dispatch;
mod isolation;
mod live_status;
mod measure;
mod plugin_load;
mod pull_requests;
mod remote;
mod sandbox;
mod scale;
mod setup;
mod spawn;
mod usage;

use std::process::Command;

// The sections reach the end-to-end tests' support crate as `crate::support` and `crate::sshd`.
use ::support;
use support::sshd;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        child::child(&args[pos + 1..]);
        return;
    }
    // An isolated plugin runs in a child of the program that loads it: here, this benchmark.
    if args.get(1..3) == Some(&["plugins".to_string(), "serve".to_string()][..]) {
        ao_core::plugins::isolated::serve::serve().unwrap();
        return;
    }
    // `cargo bench --bench ao_bench -- live` runs only the sections whose names contain `live`.
    let filters: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    let wanted =
        |section: &str| filters.is_empty() || filters.iter().any(|f| section.contains(f.as_str()));
    // Built when a section first needs them: `-- config` runs at once.
    let plugins = support::first_party_build_release;
    let work = tempfile::tempdir().unwrap();
    println!("# ao-host benchmarks\n");
    println!("{}\n", machine());
    if wanted("plugin-load") {
        plugin_load::plugin_load(plugins(), work.path());
    }
    if wanted("dispatch") {
        dispatch::dispatch(plugins());
    }
    if wanted("spawn") {
        let single = spawn::spawn_latency(plugins(), work.path());
        concurrency::concurrency(plugins(), work.path(), single);
    }
    if wanted("scale") {
        scale::scale(plugins(), work.path());
    }
    if wanted("config") {
        config_guard::config_guard();
    }
    if wanted("live-status dashboard") {
        live_status::live_listing(plugins(), work.path());
    }
    if wanted("isolation") {
        isolation::isolation(plugins(), work.path());
    }
    if wanted("remote") {
        remote::remote(plugins(), work.path());
    }
    if wanted("pull-requests") {
        pull_requests::pull_requests(plugins(), work.path());
    }
    if wanted("sandbox") {
        sandbox::sandbox(plugins());
    }
    if wanted("usage") {
        usage::usage(plugins(), work.path());
    }
}

/// One line on the machine and the tools measured with.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let tmux = Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let git_version = Command::new("git")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("Machine: {cpu}, {cores} cores; {tmux}; {git_version}; release build.")
}
