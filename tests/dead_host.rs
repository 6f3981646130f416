//! A host that accepts connections and never speaks (a "black hole": sshd hung, a firewall that
//! swallows packets after the handshake) beside a good one, against real OpenSSH servers: the
//! good host's and this machine's sessions never wait on it, later commands do not ask it again
//! while it is known to be silent, and it is used again once it answers.
//!
//! The black hole takes over the address and port of a real sshd that is stopped, so the
//! sessions spawned there before stay on record and come back with it.
//!
//! Skipped, with a message, where sshd cannot run (not installed, not root).

#[path = "support/sshd.rs"]
mod sshd;
mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
use sshd::{close_shared_connections, BlackHole, ClientKey, SshServer};
use support::{git, json, stderr, stdout, wait_until, Harness};

/// Well under ssh's 10 s connect timeout, which every command paid per silent host before; far
/// above what a command takes that does not wait on one (the precise figures are in
/// BENCHMARKS.md).
const NOT_WAITING: Duration = Duration::from_secs(4);

/// Two hosts with a clone of the project each; `hole` becomes the black hole.
struct World {
    harness: Harness,
    good: SshServer,
    hole: SshServer,
}

impl World {
    fn new() -> Option<Self> {
        if let Some(why) = SshServer::unavailable() {
            eprintln!("skipped: {why}");
            return None;
        }
        let harness = Harness::new(&[], "");
        let client = ClientKey::generate(harness.home());
        let good = SshServer::start("good", 7, harness.home(), &client);
        let hole = SshServer::start("hole", 8, harness.home(), &client);
        let known_hosts = harness.home().join("known_hosts");
        std::fs::write(
            &known_hosts,
            good.known_hosts_line() + &hole.known_hosts_line(),
        )
        .unwrap();
        for host in [&good, &hole] {
            let clone = host.home().join("app").display().to_string();
            let repo = harness.repo().display().to_string();
            git(harness.home(), &["clone", "-q", &repo, &clone]);
        }
        let clones = format!(
            "hosts: {{ good: {:?}, hole: {:?} }}",
            good.home().join("app").display().to_string(),
            hole.home().join("app").display().to_string(),
        );
        // ssh's connect timeout shortened for the black hole, so a test sees its first
        // connection give up; the deadline of a listing is the default one.
        let hole_entry = hole
            .config_entry(&client, &known_hosts)
            .replace("options: {", "options: { ConnectTimeout: 3,");
        harness.edit_config(|config| {
            config.replace(
                "default_branch: main }",
                &format!("default_branch: main, {clones} }}"),
            ) + "hosts:\n"
                + &good.config_entry(&client, &known_hosts)
                + &hole_entry
        });
        Some(Self {
            harness,
            good,
            hole,
        })
    }

    fn spawn(&self, host: &str, task: &str) -> String {
        let task = format!("--task={task}");
        let spawned = json(
            &self
                .harness
                .ok(&["spawn", "app", "--host", host, &task, "--json"]),
        );
        spawned["id"].as_str().unwrap().to_string()
    }

    /// Stops the hole's sshd (its connections die with it) and listens in its place.
    fn black_hole(&mut self) -> BlackHole {
        self.hole.stop();
        BlackHole::listen(&self.hole.address, self.hole.port)
    }

    /// `session ls --json`, and how long it took.
    fn timed_ls(&self) -> (HashMapById, Duration) {
        let started = Instant::now();
        let listed = self.harness.sessions_json(&[]);
        let took = started.elapsed();
        (
            listed
                .into_iter()
                .map(|s| (s["id"].as_str().unwrap().to_string(), s))
                .collect(),
            took,
        )
    }
}

type HashMapById = std::collections::HashMap<String, Value>;

impl Drop for World {
    fn drop(&mut self) {
        close_shared_connections(&self.harness.data_dir());
        for host in [&self.good, &self.hole] {
            host.tmux(&self.harness.tmux.socket, &["kill-server"]);
        }
    }
}

/// A session's status is one its agent can have while running (not a host's trouble).
fn live(session: &Value) -> bool {
    ["working", "idle", "waiting_input"].contains(&session["status"].as_str().unwrap())
}

#[test]
fn a_black_holed_host_costs_one_short_wait_then_none_is_skipped_by_any_and_comes_back() {
    let Some(mut world) = World::new() else {
        return;
    };
    let on_good = world.spawn("good", "on the good host");
    let on_good_too = world.spawn("good", "on the good host too");
    let on_hole = world.spawn("hole", "on the host that goes silent");
    let hole = world.black_hole();

    // First listing: the silent host's connection is still being made when the listing stops
    // waiting for it, so its session shows `connecting`, since then.
    let (first, took) = world.timed_ls();
    assert!(took < NOT_WAITING, "the first ls took {took:?}");
    assert_eq!(
        first[&on_hole]["status"], "connecting",
        "{:#}",
        first[&on_hole]
    );
    let since = first[&on_hole]["unreachable_since"].as_u64().unwrap();
    let note = first[&on_hole]["note"].as_str().unwrap();
    assert!(note.contains("connecting to host `hole` since"), "{note}");
    for id in [&on_good, &on_good_too] {
        assert!(live(&first[id]), "{:#}", first[id]);
        assert!(
            first[id].get("unreachable_since").is_none(),
            "{:#}",
            first[id]
        );
    }
    assert!(hole.accepted() >= 1, "the black hole was never asked");

    // Once ssh's connect timeout (3 s here) has passed without a connection: `unreachable`,
    // since the first attempt, without asking it again.
    let mut listed = first;
    assert!(wait_until(Duration::from_secs(20), || {
        let (now, took) = world.timed_ls();
        assert!(took < NOT_WAITING, "a later ls took {took:?}");
        assert!(live(&now[&on_good]), "{:#}", now[&on_good]);
        listed = now;
        listed[&on_hole]["status"] == "unreachable"
    }));
    assert_eq!(listed[&on_hole]["unreachable_since"], since);
    // Found silent just now: not asked again for a while, by a listing or by `--host any`,
    // which prefers the host with fewer sessions but lands on the good one.
    let asked = hole.accepted();
    let (again, took) = world.timed_ls();
    assert!(took < NOT_WAITING, "{took:?}");
    assert_eq!(again[&on_hole]["status"], "unreachable");
    let anywhere = json(&world.harness.ok(&[
        "spawn", "app", "--host", "any", "--task", "anywhere", "--json",
    ]));
    assert_eq!(anywhere["host"], "good");
    assert_eq!(
        hole.accepted(),
        asked,
        "a host known to be silent was asked again at once"
    );
    let note = again[&on_hole]["note"].as_str().unwrap();
    assert!(
        note.contains("host `hole`") && note.contains("unreachable since"),
        "{note}"
    );
    let table = stdout(&world.harness.ok(&["session", "ls"]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&on_hole) && l.contains("unreachable")),
        "{table}"
    );
    assert!(table.contains("unreachable since"), "{table}");

    // When every host of the project is down, it says so, again without waiting.
    let config = std::fs::read_to_string(world.harness.config_path()).unwrap();
    world.harness.edit_config(|config| {
        config.replace(
            &format!(
                "good: {:?}, ",
                world.good.home().join("app").display().to_string()
            ),
            "",
        )
    });
    let started = Instant::now();
    let refused = world
        .harness
        .ao(&["spawn", "app", "--host", "any", "--task", "x"]);
    assert!(started.elapsed() < NOT_WAITING, "{:?}", started.elapsed());
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(
        err.contains("no host of project `app` answers") && err.contains("unreachable since"),
        "{err}"
    );
    std::fs::write(world.harness.config_path(), config).unwrap();

    // It answers again: its session is listed live again, soon.
    hole.close();
    world.hole.resume();
    assert!(
        wait_until(Duration::from_secs(30), || live(
            &world.timed_ls().0[&on_hole]
        )),
        "{:#}",
        world.timed_ls().0[&on_hole]
    );
    let back = world.timed_ls().0;
    assert!(
        back[&on_hole].get("unreachable_since").is_none(),
        "{:#}",
        back[&on_hole]
    );
    assert!(back[&on_hole].get("note").is_none(), "{:#}", back[&on_hole]);
    for id in [&on_good, &on_good_too, &on_hole] {
        world.harness.ok(&["session", "kill", id]);
    }
    world
        .harness
        .ok(&["session", "kill", anywhere["id"].as_str().unwrap()]);
}

/// `ao-host dashboard --no-token` for one test, and its live feed read on a thread.
struct Dashboard {
    child: Child,
    base: String,
    events: mpsc::Receiver<(String, Value)>,
}

impl Dashboard {
    fn start(harness: &Harness) -> Self {
        let log = harness.home().join("dashboard.log");
        let mut child = harness
            .command(&["dashboard", "--port", "0", "--no-token"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("http://"),
            "{line:?}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let base = line.trim().trim_end_matches('/').to_string();
        let response = ureq::get(format!("{base}/api/events")).call().unwrap();
        let (sender, events) = mpsc::channel();
        std::thread::spawn(move || {
            let reader = BufReader::new(response.into_body().into_reader());
            let (mut kind, mut data) = (String::new(), String::new());
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if let Some(value) = line.strip_prefix("event: ") {
                    kind = value.to_string();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push_str(value);
                } else if line.is_empty() && !kind.is_empty() {
                    let value = serde_json::from_str(&data).unwrap();
                    if sender.send((std::mem::take(&mut kind), value)).is_err() {
                        return;
                    }
                    data.clear();
                }
            }
        });
        Self {
            child,
            base,
            events,
        }
    }

    /// Waits up to `within` for an event `wanted` accepts; how long it took, or what came.
    fn wait_for(
        &self,
        within: Duration,
        mut wanted: impl FnMut(&str, &Value) -> bool,
    ) -> Result<Duration, Vec<(String, Value)>> {
        let started = Instant::now();
        let mut seen = Vec::new();
        while let Some(left) = (started + within).checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok((kind, data)) if wanted(&kind, &data) => return Ok(started.elapsed()),
                Ok(other) => seen.push(other),
                Err(_) => break,
            }
        }
        Err(seen)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_dashboard_feed_follows_this_machine_and_a_good_host_while_another_is_black_holed() {
    let Some(mut world) = World::new() else {
        return;
    };
    let on_good = world.spawn("good", "on the good host");
    let on_hole = world.spawn("hole", "on the host that goes silent");
    let local = json(
        &world
            .harness
            .ok(&["spawn", "app", "--task", "here", "--json"]),
    );
    let local = local["id"].as_str().unwrap().to_string();
    // Nothing is noted of it yet: the dashboard meets the black hole cold.
    let _hole = world.black_hole();

    let started = Instant::now();
    let dashboard = Dashboard::start(&world.harness);
    let snapshot = dashboard.wait_for(NOT_WAITING, |kind, data| {
        kind == "snapshot"
            && data["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["id"] == local.as_str())
    });
    assert!(
        snapshot.is_ok(),
        "no snapshot with the local session: {snapshot:?}"
    );
    assert!(
        started.elapsed() < NOT_WAITING * 2,
        "{:?}",
        started.elapsed()
    );
    // The silent host's session comes in its own time, as what it is.
    let hole_shown = dashboard.wait_for(Duration::from_secs(20), |kind, data| {
        kind == "session"
            && data["id"] == on_hole.as_str()
            && ["connecting", "unreachable"].contains(&data["status"].as_str().unwrap())
    });
    assert!(hole_shown.is_ok(), "{hole_shown:?}");

    // A change on the good host and one here each show within seconds, while the black hole
    // is still being connected to (ssh gives it 3 s here) and after.
    for (id, tmux) in [(&on_good, Some(&world.good)), (&local, None)] {
        let handle = world.harness.tmux_session(id);
        let killed = match tmux {
            Some(server) => {
                server
                    .tmux(
                        &world.harness.tmux.socket,
                        &["kill-session", "-t", &format!("={handle}")],
                    )
                    .0
            }
            None => {
                world
                    .harness
                    .tmux
                    .tmux(&["kill-session", "-t", &format!("={handle}")])
                    .0
            }
        };
        assert!(killed, "{id}'s tmux session");
        let shown = dashboard.wait_for(Duration::from_secs(10), |kind, data| {
            kind == "session" && data["id"] == id.as_str() && data["status"] == "exited"
        });
        let took = shown.unwrap_or_else(|seen| panic!("{id} never shown exited: {seen:#?}"));
        assert!(took < NOT_WAITING, "{id}'s exit took {took:?} to show");
    }
    // The listing the API serves does not wait on it either.
    let started = Instant::now();
    let listed: Value = serde_json::from_str(
        &ureq::get(format!("{}/api/sessions", dashboard.base))
            .call()
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    assert!(started.elapsed() < NOT_WAITING, "{:?}", started.elapsed());
    let hole_listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == on_hole.as_str())
        .unwrap();
    assert!(
        ["connecting", "unreachable"].contains(&hole_listed["status"].as_str().unwrap()),
        "{hole_listed:#}"
    );
    drop(dashboard);
    for id in [&on_good, &on_hole, &local] {
        let _ = world
            .harness
            .ao(&["session", "kill", "--keep-workspace", id]);
    }
}
