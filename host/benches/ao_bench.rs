//! ao-host benchmarks. `cargo bench -p ao-host --bench ao_bench` builds the plugins optimised,
//! runs every measurement on this machine and prints a Markdown report (BENCHMARKS.md is one).
//!
//! Figures are medians over repeated runs, and ratios compare numbers measured side by side in
//! the same run: the machine is shared and noisy, so absolute numbers move between runs.
//! Benchmarks report; they never fail on a timing (tests check behaviour only).

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use ao_core::{
    config::Config,
    plugins::{
        discovery,
        library::{load_library, LoadedPlugin},
        PluginRegistry,
    },
    session::{now_ms, Session, SessionRole, SessionStatus, SessionStore},
};
use ao_plugin_api::{abi_stable::std_types::RStr, Agent, PluginConstructor, PluginContext};
use support::{git, init_repo, sshd, TmuxServer};

const IDLE_SCREEN: &str = include_str!("../../plugins/agent-claude-code/tests/screens/idle.txt");

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        child(&args[pos + 1..]);
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
    let plugins = support::first_party_build_release();
    let work = tempfile::tempdir().unwrap();
    println!("# ao-host benchmarks\n");
    println!("{}\n", machine());
    if wanted("plugin-load") {
        plugin_load(plugins, work.path());
    }
    if wanted("dispatch") {
        dispatch(plugins);
    }
    if wanted("spawn") {
        let single = spawn_latency(plugins, work.path());
        concurrency(plugins, work.path(), single);
    }
    if wanted("scale") {
        scale(plugins, work.path());
    }
    if wanted("config") {
        config_guard();
    }
    if wanted("live-status dashboard") {
        live_listing(plugins, work.path());
    }
    if wanted("isolation") {
        isolation(plugins, work.path());
    }
    if wanted("remote") {
        remote(plugins, work.path());
    }
}

/// Sessions on other hosts over real OpenSSH (two sshd on 127.0.0.2 and .3 of this machine):
/// a remote spawn against a local one, side by side; `session ls` of 20 sessions on 2 hosts;
/// and how many ssh connections a spawn, a message and a listing open.
fn remote(plugins: &[PathBuf], work: &Path) {
    println!(
        "## Remote hosts
"
    );
    if let Some(why) = sshd::SshServer::unavailable() {
        println!("Skipped: {why}.\n");
        return;
    }
    let setup = spawn_setup(plugins, work, "remote");
    let client = sshd::ClientKey::generate(&setup.dir);
    let alpha = sshd::SshServer::start("alpha", 2, &setup.dir, &client);
    let mut beta = sshd::SshServer::start("beta", 3, &setup.dir, &client);
    let known_hosts = setup.dir.join("known_hosts");
    std::fs::write(
        &known_hosts,
        alpha.known_hosts_line() + &beta.known_hosts_line(),
    )
    .unwrap();
    let mut clones = Vec::new();
    for host in [&alpha, &beta] {
        let clone = host.home().join("app");
        git(
            &setup.dir,
            &[
                "clone",
                "-q",
                &setup.repo.display().to_string(),
                &clone.display().to_string(),
            ],
        );
        clones.push(format!("{}: {:?}", host.name, clone.display().to_string()));
    }
    let config = std::fs::read_to_string(&setup.config).unwrap();
    let config = config.replace(
        "default_branch: main}",
        &format!(
            "default_branch: main, hosts: {{ {} }} }}",
            clones.join(", ")
        ),
    );
    std::fs::write(
        &setup.config,
        format!(
            "{config}hosts:\n{}{}",
            alpha.config_entry(&client, &known_hosts),
            beta.config_entry(&client, &known_hosts)
        ),
    )
    .unwrap();
    let timed_spawn = |host: Option<&str>, n: usize| {
        let task = format!("remote benchmark task {n}");
        let mut args = vec!["spawn", "app", "--task", &task];
        if let Some(host) = host {
            args.extend(["--host", host]);
        }
        let started = Instant::now();
        let output = ao_host(&setup, &args).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        ms(started.elapsed())
    };
    // Cold: the first spawn on a host makes its shared connection.
    let cold_started = Instant::now();
    timed_spawn(Some("alpha"), 0);
    let cold = ms(cold_started.elapsed());
    let before = alpha.logins();
    let runs = 9;
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for n in 0..runs {
        local.push(timed_spawn(None, n));
        remote.push(timed_spawn(Some("alpha"), n + 1));
    }
    let logins_during = alpha.logins() - before;
    for n in 0..runs {
        timed_spawn(Some("beta"), n);
    }
    // 10 sessions on each host, 9 here.
    let listing = |extra: &[&str]| {
        let mut args = vec!["session", "ls", "--json"];
        args.extend_from_slice(extra);
        let started = Instant::now();
        let output = ao_host(&setup, &args).output().unwrap();
        assert!(output.status.success());
        let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        (ms(started.elapsed()), listed.as_array().unwrap().len())
    };
    let ls: Vec<(f64, usize)> = (0..7).map(|_| listing(&[])).collect();
    let total_sessions = ls[0].1;
    let ls_ms = median(ls.iter().map(|(t, _)| *t).collect());
    // From cold: spawn + send + ls, counting new ssh logins.
    sshd::close_shared_connections(&setup.dir.join("data"));
    let before = beta.logins();
    timed_spawn(Some("beta"), 100);
    let output = ao_host(&setup, &["session", "ls", "--json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let last = listed
        .as_array()
        .unwrap()
        .iter()
        .rfind(|s| s["host"] == "beta")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .unwrap();
    assert!(ao_host(&setup, &["send", &last, "a message"])
        .status()
        .unwrap()
        .success());
    listing(&[]);
    let logins_cold = beta.logins() - before;
    let (local, remote) = (median(local), median(remote));
    println!(
        "`ao-host spawn` with the fake agent, this machine against host `alpha` over loopback ssh (shared connection made by the first spawn), {runs} each, alternating.\n"
    );
    println!("| operation | median | target |");
    println!("|---|---|---|");
    println!("| spawn here | {local:.0} ms | |");
    println!("| spawn on a host (warm shared connection) | {remote:.0} ms | |");
    println!(
        "| **remote / local** | **{:.2}x** | <= 2x |",
        remote / local
    );
    println!("| first spawn on a host (makes the connection) | {cold:.0} ms | |");
    println!(
        "| `session ls --json`, {total_sessions} sessions: 10 on each of 2 hosts (asked at once), the rest here | {ls_ms:.0} ms | |"
    );
    println!(
        "| ssh logins (TCP connections) during {runs} spawns on `alpha` | {logins_during} | |"
    );
    println!("| ssh logins for spawn + send + ls from cold | {logins_cold} | <= 3 |");
    println!();
    black_holed_listing(&setup, &mut beta, ls_ms);
    sshd::close_shared_connections(&setup.dir.join("data"));
    for host in [&alpha, &beta] {
        host.tmux(&setup._tmux.socket, &["kill-server"]);
    }
}

/// `session ls --json` while host `beta` of the remote setup accepts connections and never
/// speaks (its sshd stopped, a listener in its place): the first listing after, the ones while
/// its connection would still be coming up, the ones once it is known silent, and the one that
/// asks it again; `both_answer_ms` is the same listing with both hosts answering.
fn black_holed_listing(setup: &SpawnSetup, beta: &mut sshd::SshServer, both_answer_ms: f64) {
    beta.stop();
    let hole = sshd::BlackHole::listen(&beta.address, beta.port);
    let listing = || {
        let started = Instant::now();
        let output = ao_host(setup, &["session", "ls", "--json"])
            .output()
            .unwrap();
        assert!(output.status.success());
        let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let status = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["host"] == "beta")
            .map(|s| s["status"].as_str().unwrap().to_string())
            .unwrap();
        (ms(started.elapsed()), status)
    };
    let first = listing();
    let connecting: Vec<(f64, String)> = (0..5).map(|_| listing()).collect();
    // ssh's connect timeout (10 s) from the first listing: the host is known silent after.
    std::thread::sleep(Duration::from_secs(11));
    listing();
    let asked = hole.accepted();
    let silent: Vec<(f64, String)> = (0..5).map(|_| listing()).collect();
    let asked = hole.accepted() - asked;
    // The note's recheck time (10 s) passed: the next listing asks it again.
    std::thread::sleep(Duration::from_secs(11));
    let again = listing();
    let row = |what: &str, runs: &[(f64, String)]| {
        let times: Vec<f64> = runs.iter().map(|(t, _)| *t).collect();
        let max = times.iter().copied().fold(0.0, f64::max);
        println!(
            "| {what} | {:.0} ms (max {max:.0}) | `{}` |",
            median(times),
            runs[0].1
        );
    };
    println!(
        "`session ls --json` of the sessions above while host `beta` accepts connections and never speaks (its sshd stopped, a listener on its address); `alpha` answers. Median of 5 where several.\n"
    );
    println!("| listing | time | beta's sessions |");
    println!("|---|---|---|");
    println!("| both hosts answering (above) | {both_answer_ms:.0} ms | |");
    row("first, beta silent", std::slice::from_ref(&first));
    row(
        "next ones, its first connection still within ssh's connect timeout",
        &connecting,
    );
    row("once known silent (noted; beta not asked)", &silent);
    row(
        "after the note's 10 s, asking beta again",
        std::slice::from_ref(&again),
    );
    println!("| connections beta took during the 5 listings once known silent | {asked} | 0 |");
    println!();
    hole.close();
    beta.resume();
}

/// Isolated plugins (`plugins.isolate`) against loaded ones: one call, and a whole spawn.
fn isolation(plugins: &[PathBuf], work: &Path) {
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

/// `Config::parse` on documents built to make a YAML parser slow, each up to the 1 MiB a config
/// may have: the guard must accept or refuse every one quickly.
fn config_guard() {
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

/// Child processes, so that each load starts from a process with nothing loaded yet.
fn child(args: &[String]) {
    match args[0].as_str() {
        "load" => {
            let dir = PathBuf::from(&args[1]);
            let started = Instant::now();
            let dirs = [discovery::SearchDir {
                path: dir,
                origin: "bench",
            }];
            let registry = PluginRegistry::load(&discovery::candidates(&dirs));
            let elapsed = started.elapsed();
            assert!(registry
                .rows()
                .iter()
                .all(|r| r.reason.as_deref().is_none_or(|r| r.contains("shadowed"))));
            println!("{}", elapsed.as_nanos());
        }
        "pipe-server" => {
            let agent = native_agent();
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            let mut out = std::io::stdout().lock();
            let mut len = [0u8; 4];
            let mut buffer = Vec::new();
            while input.read_exact(&mut len).is_ok() {
                buffer.resize(u32::from_le_bytes(len) as usize, 0);
                input.read_exact(&mut buffer).unwrap();
                let activity = agent
                    .activity(std::str::from_utf8(&buffer).unwrap())
                    .unwrap();
                out.write_all(&[activity as u8]).unwrap();
                out.flush().unwrap();
            }
        }
        "fake-agent" => fake_agent(&args[1..]),
        "rss" => {
            // Runs the command and reports its peak RSS alone (this process has no other child).
            let status = Command::new(&args[1])
                .args(&args[2..])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            println!("{}", children_peak_rss_mib());
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Runs the hooks of `event` from a Claude Code settings document, as Claude Code does:
/// `sh -c COMMAND` with the event as JSON on stdin.
fn run_hooks(settings: &serde_json::Value, event: &str, payload: serde_json::Value) {
    let groups = settings["hooks"][event]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for group in groups {
        for hook in group["hooks"].as_array().cloned().unwrap_or_default() {
            let Some(command) = hook["command"].as_str() else {
                continue;
            };
            let mut child = Command::new("sh")
                .args(["-c", command])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let _ = child
                .stdin
                .take()
                .unwrap()
                .write_all(payload.to_string().as_bytes());
            let _ = child.wait();
        }
    }
}

/// A stand-in agent that is ready at once: the Python fake of the tests spends most of a spawn's
/// ready-wait starting the interpreter. Same contract as Claude Code where ao-host relies on it:
/// a prompt argument after `--` is its first message, the hooks of `--settings FILE` run on
/// SessionStart, UserPromptSubmit and Stop; raw mode, bracketed paste, an input box whose line
/// starts with "❯" + NO-BREAK SPACE, a "✻" line while busy. With `BENCH_TAKEN=FILE` it creates
/// FILE when it has its first message (for the bare floor, which has no hooks).
fn fake_agent(args: &[String]) {
    let after = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let prompt = after("--");
    let settings: serde_json::Value = after("--settings")
        .and_then(|file| std::fs::read(file).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    // SAFETY: plain termios calls on stdin, which tmux made a terminal.
    unsafe {
        let mut term: libc::termios = std::mem::zeroed();
        libc::tcgetattr(0, &mut term);
        libc::cfmakeraw(&mut term);
        libc::tcsetattr(0, libc::TCSANOW, &term);
    }
    let rule = "─".repeat(60);
    let draw = |content: &str, busy: bool| {
        let spinner = if busy { "✻ Working…\r\n" } else { "" };
        let mut out = std::io::stdout().lock();
        let _ = write!(
            out,
            "\x1b[2J\x1b[H{spinner}{rule}\r\n❯\u{a0}{content}\r\n{rule}\r\n  ? for shortcuts\r\n"
        );
        let _ = out.flush();
    };
    print!("\x1b[?2004h");
    run_hooks(
        &settings,
        "SessionStart",
        serde_json::json!({ "source": "startup" }),
    );
    draw("", false);
    if let Some(prompt) = prompt {
        if let Some(file) = std::env::var_os("BENCH_TAKEN") {
            std::fs::write(file, &prompt).unwrap();
        }
        run_hooks(
            &settings,
            "UserPromptSubmit",
            serde_json::json!({ "prompt": prompt }),
        );
        draw("", true);
        run_hooks(&settings, "Stop", serde_json::json!({}));
        draw("", false);
    }
    let (start, end) = (b"\x1b[200~".as_slice(), b"\x1b[201~".as_slice());
    let mut pending: Vec<u8> = Vec::new();
    let mut text: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let read = std::io::stdin().read(&mut chunk).unwrap_or(0);
        if read == 0 {
            return;
        }
        pending.extend_from_slice(&chunk[..read]);
        if let (Some(s), Some(e)) = (find(&pending, start), find(&pending, end)) {
            text.extend_from_slice(&pending[s + start.len()..e]);
            pending.drain(..e + end.len());
            draw("[Pasted text #1]", false);
        }
        if find(&pending, start).is_none() {
            if let Some(enter) = pending.iter().position(|b| *b == b'\r') {
                pending.drain(..=enter);
                if !text.is_empty() {
                    if let Some(file) = std::env::var_os("BENCH_TAKEN") {
                        std::fs::write(file, &text).unwrap();
                    }
                    text.clear();
                    draw("", true);
                }
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn run_child(args: &[&str]) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .arg("--child")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

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

fn plugin_load(plugins: &[PathBuf], work: &Path) {
    let three = work.join("load-3");
    for p in plugins {
        support::install(p, &three, None);
    }
    let first_party = load_ms(&three, 21);
    println!("## Plugin load and verification\n");
    println!("Discover, read the manifest, check the API version and abi_stable's layout, and");
    println!("register, in a fresh process each run (`PluginRegistry::load`).\n");
    println!("| libraries | median | per library | target |");
    println!("|---|---|---|---|");
    println!(
        "| 3 first-party | {first_party:.2} ms | {:.2} ms | < 5 ms total |",
        first_party / 3.0
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
        "\nThe 100 libraries are copies of the three first-party ones under distinct file names:"
    );
    println!("each is a separate `dlopen` and a separate layout check; all but three are reported");
    println!("as shadowed.\n");
}

fn native_agent() -> Box<dyn Agent> {
    let context = PluginContext {
        plugin_name: "claude-code".into(),
        data_dir: "/tmp".into(),
        config_yaml: "".into(),
    };
    Box::new(ao_agent_claude_code::ClaudeCode::new(&context).unwrap())
}

fn per_call_ns(iterations: u32, mut call: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        call();
    }
    let samples: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                call();
            }
            started.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect();
    median(samples)
}

fn dispatch(plugins: &[PathBuf]) {
    let library = plugins
        .iter()
        .find(|p| p.to_string_lossy().contains("claude"))
        .unwrap();
    let report = load_library(library);
    let loaded = report.outcome.unwrap().remove(0);
    let LoadedPlugin::InProcess(declaration, _) = loaded else {
        panic!("loaded without isolation")
    };
    let PluginConstructor::Agent(construct) = declaration.constructor else {
        panic!("claude-code is an agent")
    };
    let context = PluginContext {
        plugin_name: "claude-code".into(),
        data_dir: "/tmp".into(),
        config_yaml: "".into(),
    };
    let ffi = construct(&context).unwrap();
    let native = native_agent();

    let mut pipe = Command::new(std::env::current_exe().unwrap())
        .args(["--child", "pipe-server"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_child = pipe.stdin.take().unwrap();
    let mut from_child = std::io::BufReader::new(pipe.stdout.take().unwrap());
    let mut pipe_call = |screen: &str| {
        to_child
            .write_all(&(screen.len() as u32).to_le_bytes())
            .unwrap();
        to_child.write_all(screen.as_bytes()).unwrap();
        to_child.flush().unwrap();
        let mut answer = [0u8; 1];
        from_child.read_exact(&mut answer).unwrap();
        std::hint::black_box(answer);
    };

    println!("## Dispatch overhead\n");
    println!(
        "`Agent::activity(screen)` of the claude-code plugin: the same code called through the"
    );
    println!(
        "stable ABI (`AgentFfi_TO` from the loaded library, `catch_unwind` included), natively"
    );
    println!(
        "through `Box<dyn Agent>`, and in a child process over a pipe (length-prefixed request,"
    );
    println!("one-byte answer), as process-isolated plugin hosts do.\n");
    println!(
        "| input | native `Box<dyn>` | stable ABI | ABI / native | pipe round-trip | pipe / ABI |"
    );
    println!("|---|---|---|---|---|---|");
    for (label, screen) in [
        ("idle screen (40 lines)", IDLE_SCREEN),
        ("empty screen", ""),
    ] {
        let native_ns = per_call_ns(20_000, || {
            std::hint::black_box(native.activity(std::hint::black_box(screen)).unwrap());
        });
        let ffi_ns = per_call_ns(20_000, || {
            std::hint::black_box(
                ffi.activity(RStr::from_str(std::hint::black_box(screen)))
                    .unwrap(),
            );
        });
        let pipe_ns = per_call_ns(2_000, || pipe_call(screen));
        println!(
            "| {label} | {native_ns:.0} ns | {ffi_ns:.0} ns | {:.2}x | {:.1} µs | {:.0}x |",
            ffi_ns / native_ns,
            pipe_ns / 1000.0,
            pipe_ns / ffi_ns
        );
    }
    drop(to_child);
    let _ = pipe.wait();
    println!("\nTarget: ABI / native <= 1.5x.\n");
}

/// An installation for spawn benchmarks: release plugins, a repository, a private tmux server.
struct SpawnSetup {
    dir: PathBuf,
    config: PathBuf,
    repo: PathBuf,
    _tmux: TmuxServer,
}

fn spawn_setup(plugins: &[PathBuf], work: &Path, name: &str) -> SpawnSetup {
    let dir = work.join(name);
    let plugin_dir = dir.join("plugins");
    for p in plugins {
        support::install(p, &plugin_dir, None);
    }
    let repo = dir.join("repo");
    init_repo(&repo);
    let tmux = TmuxServer::new();
    let config = dir.join("ao-rs.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {:?}\nplugins:\n  dirs: [{:?}]\n  config:\n    tmux: {{ socket: {} }}\n    claude-code: {{ command: {:?} }}\nprojects:\n  app: {{ repo: {:?}, default_branch: main}}\n",
            dir.join("data").display().to_string(),
            plugin_dir.display().to_string(),
            tmux.socket,
            fake_agent_launcher(&dir).display().to_string(),
            repo.display().to_string(),
        ),
    )
    .unwrap();
    SpawnSetup {
        dir,
        config,
        repo,
        _tmux: tmux,
    }
}

/// claude-code runs `command --model M …`; this launcher turns that into `ao_bench --child
/// fake-agent`, so the benchmark's own binary is the agent.
fn fake_agent_launcher(dir: &Path) -> PathBuf {
    let launcher = dir.join("fake-agent");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        &launcher,
        format!(
            "#!/bin/sh\nexec {:?} --child fake-agent \"$@\"\n",
            std::env::current_exe().unwrap()
        ),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&launcher).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&launcher, permissions).unwrap();
    launcher
}

fn ao_host(setup: &SpawnSetup, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ao-host"));
    command
        .arg("--config")
        .arg(&setup.config)
        .args(args)
        .current_dir(&setup.dir)
        .env_remove("AO_PLUGIN_PATH")
        .env_remove("AO_CONFIG_PATH")
        .env_remove("AO_LOG");
    command
}

/// `ao-host spawn app --task TASK`, which must succeed.
fn spawn_ok(setup: &SpawnSetup, task: &str) {
    let output = ao_host(setup, &["spawn", "app", "--task", task])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Peak resident set of the largest child waited for so far, in MiB.
fn children_peak_rss_mib() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

const PHASES: [&str; 7] = [
    "config",
    "plugin-load",
    "reserve",
    "workspace",
    "runtime",
    "ready-wait",
    "send",
];

fn spawn_latency(plugins: &[PathBuf], work: &Path) -> f64 {
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
    println!("agent that is ready at once (this benchmark's binary in `fake-agent` mode, started through");
    println!("a `/bin/sh` launcher). {runs} spawns, medians; phases from the `-v` timing lines.\n");
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
    let launcher = setup.dir.join("fake-agent").display().to_string();
    let kind = if paste { "paste" } else { "inline" };
    let tmux = |args: &[&str]| {
        let output = Command::new("tmux")
            .args(["-L", &setup._tmux.socket])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "tmux {args:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let totals: Vec<f64> = (0..runs)
        .map(|n| {
            let taken = setup.dir.join(format!("floor-{kind}-taken-{n}"));
            let path = setup
                .dir
                .join(format!("floor-{kind}-{n}"))
                .display()
                .to_string();
            let name = format!("floor-{kind}-{n}");
            let target = format!("={name}:");
            let task = format!("floor task {n}");
            let taken_env = format!("BENCH_TAKEN={}", taken.display());
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
                &taken_env,
                &launcher,
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

fn concurrency(plugins: &[PathBuf], work: &Path, single: f64) {
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

fn record(id: &str, n: u64) -> Session {
    Session {
        id: id.into(),
        project_id: "app".into(),
        role: SessionRole::Worker,
        status: SessionStatus::Working,
        agent: "claude-code".into(),
        runtime: "tmux".into(),
        workspace: "git-worktree".into(),
        branch: format!("session/{id}"),
        workspace_path: Some(format!("/nonexistent/{id}")),
        runtime_handle: Some(id.into()),
        task: Some(format!("task number {n}\nwith a second line")),
        created_at: now_ms() + n,
        host: None,
        activity_at: None,
        waiting_for: None,
        conversation_id: None,
        reports_events: false,
        status_from_screen: false,
        unreachable_since: None,
        note: None,
    }
}

fn scale(plugins: &[PathBuf], work: &Path) {
    let setup = spawn_setup(plugins, work, "scale");
    let sessions = setup.dir.join("data").join("sessions").join("app");
    std::fs::create_dir_all(&sessions).unwrap();
    // 10,000 active records of project `app`, and 10,000 archived ones of project `old`.
    let archive = setup
        .dir
        .join("data")
        .join("sessions")
        .join("old")
        .join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    for n in 1..=10_000u64 {
        let id = format!("app-{n}");
        let text = serde_yaml::to_string(&record(&id, n)).unwrap();
        std::fs::write(sessions.join(format!("{id}.yaml")), text).unwrap();
        let old = format!("old-{n}");
        let mut archived = record(&old, n);
        archived.project_id = "old".into();
        archived.status = SessionStatus::Killed;
        std::fs::write(
            archive.join(format!("{old}.yaml")),
            serde_yaml::to_string(&archived).unwrap(),
        )
        .unwrap();
    }
    let ls = |archived: bool| {
        median(
            (0..5)
                .map(|_| {
                    let mut args = vec!["session", "ls", "--json"];
                    if archived {
                        args.push("--archived");
                    }
                    let started = Instant::now();
                    let output = ao_host(&setup, &args).output().unwrap();
                    assert!(
                        output.status.success(),
                        "{}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                    ms(started.elapsed())
                })
                .collect(),
        )
    };
    let active = ls(false);
    let archived = ls(true);

    let store = SessionStore::open(&setup.dir.join("data")).unwrap();
    let reserve: Vec<f64> = (0..20)
        .map(|_| {
            let started = Instant::now();
            let (session, _lock) = store
                .reserve("app", SessionRole::Orchestrator, record("", 0))
                .unwrap();
            let elapsed = ms(started.elapsed());
            store.delete("app", &session.id).unwrap();
            elapsed
        })
        .collect();
    println!("## Scale\n");
    println!(
        "10,000 active session records on disk (none of their tmux sessions alive) and 10,000"
    );
    println!("archived ones.\n");
    println!("| operation | median | target |");
    println!("|---|---|---|");
    println!("| `ao-host session ls --json` (live status: one `alive_handles` call, then parse and print) | {active:.0} ms | <= 200 ms |");
    println!(
        "| orchestrator id reservation (`app-orchestrator-1` among 10,000 workers) | {:.2} ms | |",
        median(reserve)
    );
    println!(
        "| `ao-host session ls --archived --json` (no live status) | {:.0} ms | |",
        archived
    );
    println!();
}

/// `session ls` over 100 live sessions: one `alive_handles` call, then every screen read and
/// judged concurrently.
fn live_listing(plugins: &[PathBuf], work: &Path) {
    let setup = spawn_setup(plugins, work, "live-listing");
    let sessions = 100;
    for n in 0..sessions {
        spawn_ok(&setup, &format!("live {n}"));
    }
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
    // Every session reported its state through its hooks: none of their screens is read.
    let states = setup.dir.join("data").join("agent-state").join("app");
    let reported = (1..=sessions)
        .filter(|n| {
            std::fs::read_to_string(states.join(format!("app-{n}.json")))
                .is_ok_and(|state| state.contains("\"status\":\"idle\""))
        })
        .count();
    assert_eq!(reported, sessions, "every agent reported going idle");
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

/// CPU time (user + system) of process `pid` and of its children it has waited for, in clock
/// ticks, from `/proc/PID/stat`.
fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<u64> = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14-17 of the whole line: 11-14 after the state.
    (fields[11] + fields[12], fields[13] + fields[14])
}

/// The dashboard over the same live sessions: `GET /api/sessions`, and the server's CPU while
/// one page watches the live feed (and while nobody does).
fn dashboard_cost(setup: &SpawnSetup, sessions: usize) {
    use std::io::{BufRead, Read};
    let mut server = ao_host(setup, &["dashboard", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut address = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    let base = address.trim().trim_end_matches('/').to_string();
    let list = format!("{base}/api/sessions");
    let runs: Vec<f64> = (0..21)
        .map(|_| {
            let started = Instant::now();
            let listed: serde_json::Value = ureq::get(&list)
                .call()
                .unwrap()
                .body_mut()
                .read_json()
                .unwrap();
            assert_eq!(listed.as_array().unwrap().len(), sessions);
            ms(started.elapsed())
        })
        .collect();
    let tick_hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let window = Duration::from_secs(30);
    let share = |pid: u32| {
        let (own, children) = cpu_ticks(pid);
        std::thread::sleep(window);
        let (own_after, children_after) = cpu_ticks(pid);
        let percent = |ticks: u64| ticks as f64 / tick_hz / window.as_secs_f64() * 100.0;
        (percent(own_after - own), percent(children_after - children))
    };
    let (idle_own, idle_children) = share(server.id());
    // One page open: its live feed, read as a browser would.
    let feed = ureq::get(&format!("{base}/api/events")).call().unwrap();
    let reader = std::thread::spawn(move || {
        let mut events = 0usize;
        let mut body = feed.into_body().into_reader();
        let mut chunk = [0u8; 65536];
        while let Ok(n) = body.read(&mut chunk) {
            if n == 0 {
                break;
            }
            events += chunk[..n].windows(7).filter(|w| w == b"event: ").count();
        }
        events
    });
    std::thread::sleep(Duration::from_secs(2));
    let (watched_own, watched_children) = share(server.id());
    // SAFETY: stopping our own child as an operator would.
    unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    server.wait().unwrap();
    let events = reader.join().unwrap();
    println!("## Dashboard\n");
    println!("| operation | median | target |");
    println!("|---|---|---|");
    println!(
        "| `GET /api/sessions` with {sessions} live sessions (21 requests) | {:.1} ms | <= 50 ms |",
        median(runs)
    );
    println!(
        "| server CPU, {sessions} idle sessions, one page open (live feed, {}s window; the server + the `tmux` clients it ran) | {:.2}% + {:.2}% of one core | < 5% |",
        window.as_secs(),
        watched_own,
        watched_children
    );
    println!(
        "| server CPU, {sessions} idle sessions, no page open | {:.2}% + {:.2}% of one core | |",
        idle_own, idle_children
    );
    println!(
        "\nThe page's feed got {events} event(s): the snapshot; idle sessions change nothing.\n"
    );
}
