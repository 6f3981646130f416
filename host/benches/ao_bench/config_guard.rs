//! Config guard: `Config::parse` on documents made to slow a YAML parser down.

use std::{path::Path, time::Instant};

use ao_core::config::Config;

use crate::measure::{median, ms};

/// `Config::parse` on documents built to make a YAML parser slow, each up to the 1 MiB a config
/// may have: the guard must accept or refuse every one quickly.
pub(crate) fn config_guard() {
    const MIB: usize = 1024 * 1024;
    let fill = |head: &str, unit: &str, tail: &str| {
        let mut text = head.to_string();
        while text.len() + unit.len() + tail.len() <= MIB {
            text.push_str(unit);
        }
        text + tail
    };
    let products = (MIB - 80) / 6;
    let documents = [
        (
            "`repo: it's`, then 50,000 `[`",
            format!(
                "projects:\n  app:\n    repo: it's\nport: {}",
                "[".repeat(50_000)
            ),
        ),
        ("500,000 `[`", "[".repeat(500_000)),
        ("1 MiB of `{a: `", fill("", "{a: ", "")),
        ("1 MiB of `a: 1` lines", fill("", "a: 1\n", "")),
        (
            "1 MiB alias product (`b: [*a, …]` over `a: &a [1, …]`)",
            format!(
                "plugins:\n  config:\n    x:\n      a: &a [{}]\n      b: [{}]\n",
                vec!["1"; products].join(","),
                vec!["*a"; products].join(",")
            ),
        ),
        (
            "24,900 keys, just under the value cap (accepted)",
            format!(
                "plugins:\n  config:\n    x: {{{}}}\n",
                (0..24_900)
                    .map(|i| format!("k{i}: 1"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (
            "1 MiB of `[` in a quoted string (accepted)",
            fill("data_dir: \"", "[", "\"\n"),
        ),
        (
            "1 MiB of `[` in a comment (accepted)",
            fill("port: 3000 # ", "[", "\n"),
        ),
    ];
    println!("## Config guard\n");
    println!(
        "`Config::parse` of documents made to slow a YAML parser down, at most 1 MiB each (the"
    );
    println!("size cap); medians of 5 runs.\n");
    println!("| document | median | outcome | target |");
    println!("|---|---|---|---|");
    let path = Path::new("/bench/ao-rs.yaml");
    for (name, text) in &documents {
        let mut outcome = String::new();
        let runs = (0..5)
            .map(|_| {
                let started = Instant::now();
                let parsed = Config::parse(text, path);
                let elapsed = ms(started.elapsed());
                outcome = match parsed {
                    Ok(_) => "accepted".into(),
                    Err(e) => e
                        .to_string()
                        .replace("invalid config /bench/ao-rs.yaml: ", "refused: "),
                };
                elapsed
            })
            .collect();
        println!("| {name} | {:.1} ms | {outcome} | < 100 ms |", median(runs));
    }
    println!();
}
