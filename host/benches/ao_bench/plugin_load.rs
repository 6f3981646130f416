//! Plugin load and verification: `PluginRegistry::load` of 3 to 100 libraries, in a fresh
//! process each run.

use std::path::{Path, PathBuf};

use crate::{child::run_child, measure::median, support};

/// Median milliseconds to load every library in `dir`, over `runs` fresh processes.
fn load_ms(dir: &Path, runs: usize) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                run_child(&["load", dir.to_str().unwrap()])
                    .parse::<f64>()
                    .unwrap()
                    / 1e6
            })
            .collect(),
    )
}

pub(crate) fn plugin_load(plugins: &[PathBuf], work: &Path) {
    let all = work.join("load-first-party");
    for p in plugins {
        support::install(p, &all, None);
    }
    let first_party = load_ms(&all, 21);
    println!("## Plugin load and verification\n");
    println!("Discover, read the manifest, check the API version and abi_stable's layout, and");
    println!("register, in a fresh process each run (`PluginRegistry::load`).\n");
    println!("| libraries | median | per library | target |");
    println!("|---|---|---|---|");
    println!(
        "| {} first-party | {first_party:.2} ms | {:.2} ms | < 5 ms total |",
        plugins.len(),
        first_party / plugins.len() as f64
    );
    for count in [25, 50, 100] {
        let dir = work.join(format!("load-{count}"));
        for n in 0..count {
            let source = &plugins[n % plugins.len()];
            support::install(source, &dir, Some(&format!("libao_bench_{n:03}.so")));
        }
        let total = load_ms(&dir, 11);
        let target = if count == 100 { "< 100 ms, linear" } else { "" };
        println!(
            "| {count} copies | {total:.2} ms | {:.3} ms | {target} |",
            total / count as f64
        );
    }
    println!(
        "\nThe 100 libraries are copies of the {} first-party ones under distinct file names:",
        plugins.len()
    );
    println!(
        "each is a separate `dlopen` and a separate layout check; all but {} are reported",
        plugins.len()
    );
    println!("as shadowed.\n");
}
