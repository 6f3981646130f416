//! Remote hosts: sessions on other hosts over real OpenSSH (two sshd on loopback addresses).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{
    measure::{median, ms},
    setup::{ao_host, spawn_setup, SpawnSetup},
    sshd,
    support::git,
};

/// Sessions on other hosts over real OpenSSH (two sshd on 127.0.0.2 and .3 of this machine):
/// a remote spawn against a local one, side by side; `session ls` of 20 sessions on 2 hosts;
/// and how many ssh connections a spawn, a message and a listing open.
pub(crate) fn remote(plugins: &[PathBuf], work: &Path) {
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
        host.tmux(&setup.tmux.socket, &["kill-server"]);
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
