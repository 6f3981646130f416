//! Isolated plugins (`plugins.isolate`) against loaded ones.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use ao_core::plugins::PluginRegistry;
use ao_plugin_api::PluginContext;

use crate::{
    measure::{median, ms},
    setup::{spawn_ok, spawn_setup},
};

/// Isolated plugins (`plugins.isolate`) against loaded ones: one call, and a whole spawn.
pub(crate) fn isolation(plugins: &[PathBuf], work: &Path) {
    let reactor = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let context = PluginContext {
        plugin_name: "claude-code".into(),
        data_dir: work.display().to_string().into(),
        config_yaml: "".into(),
    };
    let screen = "─".repeat(60) + "\n❯\u{a0}\n" + &"─".repeat(60) + "\n  ? for shortcuts\n";
    let per_call = |isolate: &[String]| {
        let registry = PluginRegistry::load_isolating(plugins, &Default::default(), isolate);
        let agent = registry
            .agent("claude-code", &context, Duration::from_secs(30))
            .unwrap();
        reactor.block_on(async {
            for _ in 0..200 {
                agent.is_ready(&screen).await.unwrap();
            }
            let calls = 2000;
            let started = Instant::now();
            for _ in 0..calls {
                agent.is_ready(&screen).await.unwrap();
            }
            started.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
        })
    };
    let loaded = per_call(&[]);
    let isolated = per_call(&["*".to_string()]);

    let setup = spawn_setup(plugins, work, "isolation");
    let plain = std::fs::read_to_string(&setup.config).unwrap();
    let isolating = plain.replace("plugins:\n", "plugins:\n  isolate: [\"*\"]\n");
    let spawns = |config: &str, label: &str| {
        std::fs::write(&setup.config, config).unwrap();
        let runs: Vec<f64> = (0..11)
            .map(|n| {
                let started = Instant::now();
                spawn_ok(&setup, &format!("{label} {n}"));
                ms(started.elapsed())
            })
            .collect();
        median(runs)
    };
    // Alternated, so that drift of this shared machine hits both alike.
    let (mut in_process, mut in_child) = (Vec::new(), Vec::new());
    for round in 0..3 {
        in_process.push(spawns(&plain, &format!("loaded {round}")));
        in_child.push(spawns(&isolating, &format!("isolated {round}")));
    }
    let (in_process, in_child) = (median(in_process), median(in_child));
    println!("## Isolated plugins\n");
    println!("| operation | loaded (in-process) | isolated (child process) | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| one call: `Agent::is_ready` on a screen (2000 calls, after 200 warm-up) | {loaded:.1} µs | {isolated:.1} µs | {:.0}x | |",
        isolated / loaded
    );
    println!(
        "| `ao-host spawn` with runtime, agent and workspace all isolated (3 x 11 spawns, medians) | {in_process:.1} ms | {in_child:.1} ms | +{:.0}% | within +10% |",
        (in_child / in_process - 1.0) * 100.0
    );
    println!();
}
