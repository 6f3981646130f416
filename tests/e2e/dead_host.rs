//! A host that accepts connections and never speaks (a "black hole": sshd hung, a firewall that
//! swallows packets after the handshake) beside a good one, against real OpenSSH servers: the
//! good host's and this machine's sessions never wait on it, later commands do not ask it again
//! while it is known to be silent, and it is used again once it answers.
//!
//! The black hole takes over the address and port of a real sshd that is stopped, so the
//! sessions spawned there before stay on record and come back with it.
//!
//! Skipped, with a message, where sshd cannot run (not installed, not root); under CI, failed.

use std::{
    collections::BTreeMap,
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{
    json, remote_world::RemoteWorld, sshd::BlackHole, stderr, stdout, wait_until, Harness,
};

/// Well under ssh's 10 s connect timeout, which every command paid per silent host before; far
/// above what a command takes that does not wait on one (the precise figures are in
/// BENCHMARKS.md).
const NOT_WAITING: Duration = Duration::from_secs(4);

/// A good host, and `hole`, which becomes the black hole.
const HOSTS: [(&str, u8); 2] = [("good", 7), ("hole", 8)];

/// Spawns a worker with `task` on `host`; its id.
fn spawned_id(world: &RemoteWorld, host: &str, task: &str) -> String {
    world.spawn(host, task)["id"].as_str().unwrap().to_string()
}

/// Stops the hole's sshd (its connections die with it) and listens in its place.
fn black_hole(world: &mut RemoteWorld) -> BlackHole {
    let hole = world.host_mut("hole");
    hole.stop();
    BlackHole::listen(&hole.address, hole.port)
}

/// `session ls --json`, and how long it took.
fn timed_ls(world: &RemoteWorld) -> (HashMapById, Duration) {
    let started = Instant::now();
    let listed = world.harness.sessions_json(&[]);
    let took = started.elapsed();
    (
        listed
            .into_iter()
            .map(|s| (s["id"].as_str().unwrap().to_string(), s))
            .collect(),
        took,
    )
}

type HashMapById = std::collections::HashMap<String, Value>;

/// A session's status is one its agent can have while running (not a host's trouble).
fn live(session: &Value) -> bool {
    ["working", "idle", "waiting_input"].contains(&session["status"].as_str().unwrap())
}

#[test]
fn a_black_holed_host_costs_one_short_wait_then_none_is_skipped_by_any_and_comes_back() {
    let Some(mut world) = RemoteWorld::start(&HOSTS, None) else {
        return;
    };
    let on_good = spawned_id(&world, "good", "on the good host");
    let on_good_too = spawned_id(&world, "good", "on the good host too");
    let on_hole = spawned_id(&world, "hole", "on the host that goes silent");
    let hole = black_hole(&mut world);

    // First listing: the silent host's connection is still being made when the listing stops
    // waiting for it, so its session shows `connecting`, since then.
    let (first, took) = timed_ls(&world);
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

    // Once ssh's connect timeout (10 s) has passed without a connection: `unreachable`,
    // since the first attempt, without asking it again.
    let mut listed = first;
    assert!(wait_until(Duration::from_secs(30), || {
        let (now, took) = timed_ls(&world);
        assert!(took < NOT_WAITING, "a later ls took {took:?}");
        assert!(live(&now[&on_good]), "{:#}", now[&on_good]);
        listed = now;
        listed[&on_hole]["status"] == "unreachable"
    }));
    assert_eq!(listed[&on_hole]["unreachable_since"], since);
    // Found silent just now: not asked again for a while, by a listing or by `--host any`,
    // which prefers the host with fewer sessions but lands on the good one.
    let asked = hole.accepted();
    let (again, took) = timed_ls(&world);
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
    world.harness.edit_config(&[(
        &format!(
            "good: {:?}, ",
            world.host("good").home().join("app").display().to_string()
        ),
        "",
    )]);
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
    world.host_mut("hole").resume();
    assert!(
        wait_until(Duration::from_secs(30), || live(
            &timed_ls(&world).0[&on_hole]
        )),
        "{:#}",
        timed_ls(&world).0[&on_hole]
    );
    let back = timed_ls(&world).0;
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
        let base = support::dashboard_address(&mut child, &log);
        let response = ureq::get(format!("{base}/api/events")).call().unwrap();
        let events = support::server_sent_events(response.into_body().into_reader());
        Self {
            child,
            base,
            events,
        }
    }

    /// Follows the feed for up to `within`, until the sessions it has shown (by id: the
    /// snapshot, then each change) satisfy `wanted`; how long that took, or what was shown.
    fn wait_until(
        &self,
        shown: &mut BTreeMap<String, Value>,
        within: Duration,
        mut wanted: impl FnMut(&BTreeMap<String, Value>) -> bool,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        loop {
            if wanted(shown) {
                return Ok(started.elapsed());
            }
            let Some(left) = (started + within).checked_duration_since(Instant::now()) else {
                return Err(format!("{shown:#?}"));
            };
            let Ok((kind, data)) = self.events.recv_timeout(left) else {
                return Err(format!("{shown:#?}"));
            };
            let id = |session: &Value| session["id"].as_str().unwrap().to_string();
            match kind.as_str() {
                "snapshot" => {
                    shown.clear();
                    for session in data["sessions"].as_array().unwrap() {
                        shown.insert(id(session), session.clone());
                    }
                }
                "session" => {
                    shown.insert(id(&data), data);
                }
                "removed" => {
                    shown.remove(&id(&data));
                }
                _ => {}
            }
        }
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
    let Some(mut world) = RemoteWorld::start(&HOSTS, None) else {
        return;
    };
    let on_good = spawned_id(&world, "good", "on the good host");
    let on_hole = spawned_id(&world, "hole", "on the host that goes silent");
    let local = json(
        &world
            .harness
            .ok(&["spawn", "app", "--task", "here", "--json"]),
    );
    let local = local["id"].as_str().unwrap().to_string();
    // Nothing is noted of it yet: the dashboard meets the black hole cold.
    let _hole = black_hole(&mut world);

    let started = Instant::now();
    let dashboard = Dashboard::start(&world.harness);
    let mut shown = BTreeMap::new();
    let status = |shown: &BTreeMap<String, Value>, id: &str| {
        shown
            .get(id)
            .map(|s| s["status"].as_str().unwrap().to_string())
    };
    // A fresh page gets this machine's sessions at once, the good host's soon after.
    let first = dashboard.wait_until(&mut shown, NOT_WAITING, |shown| {
        status(shown, &local).is_some() && status(shown, &on_good).is_some()
    });
    assert!(first.is_ok(), "{first:?}");
    assert!(
        started.elapsed() < NOT_WAITING * 2,
        "{:?}",
        started.elapsed()
    );
    // The silent host's session comes in its own time, as what it is.
    let hole_shown = dashboard.wait_until(&mut shown, Duration::from_secs(20), |shown| {
        status(shown, &on_hole).is_some_and(|s| s == "connecting" || s == "unreachable")
    });
    assert!(hole_shown.is_ok(), "{hole_shown:?}");

    // A change on the good host and one here each show within seconds, while the black hole's
    // first connection is still being made (ssh gives it 10 s) and after.
    for (id, server) in [(&on_good, Some(world.host("good"))), (&local, None)] {
        let target = format!("={}", world.harness.tmux_session(id));
        let kill = ["kill-session", "-t", target.as_str()];
        let killed = match server {
            Some(server) => server.tmux(&world.harness.tmux.socket, &kill).0,
            None => world.harness.tmux.tmux(&kill).0,
        };
        assert!(killed, "{id}'s tmux session");
        let took = dashboard
            .wait_until(&mut shown, Duration::from_secs(20), |shown| {
                status(shown, id).is_some_and(|s| s == "exited")
            })
            .unwrap_or_else(|shown| panic!("{id} never shown exited: {shown}"));
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
