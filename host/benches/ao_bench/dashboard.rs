//! Dashboard: `GET /api/sessions` over live sessions, and the server's CPU with and without a
//! page watching the live feed.

use std::time::{Duration, Instant};

use crate::{
    measure::{median, ms},
    setup::{ao_host, SpawnSetup},
};

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
pub(crate) fn dashboard_cost(setup: &SpawnSetup, sessions: usize) {
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
