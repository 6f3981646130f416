//! The web dashboard, end to end: the real `ao-host dashboard` serving real sessions (tmux, git
//! worktrees, the fake Claude Code CLI with its hooks) to an HTTP client, and to a real headless
//! Chromium driven over WebDriver.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use support::sshd;
use support::{fake_messages, git, wait_until, Harness};

const TRICKY_TASK: &str =
    "\tindented with a tab\n  \"double\" and 'single' quotes, $(touch pwned) `tick`\r\nünïcødé 🎉\n-dash\n";

/// `ao-host dashboard --port 0` running for one test; killed if the test ends without
/// [`Dashboard::stop`].
pub(crate) struct Dashboard {
    child: Child,
    /// `http://127.0.0.1:PORT` (no trailing slash).
    base: String,
    http: ureq::Agent,
    token: Option<String>,
    stderr_log: std::path::PathBuf,
}

/// A reply: status and body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Asserts a JSON error with `status` whose message contains `needle`.
    fn assert_error(&self, status: u16, needle: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let error = self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(needle), "{error:?} lacks {needle:?}");
    }
}

impl Dashboard {
    pub(crate) fn start(harness: &Harness, args: &[&str], env: &[(&str, &str)]) -> Self {
        let stderr_log = harness
            .home()
            .join(format!("dashboard-{}.log", rand_suffix()));
        let mut command = harness.command(&["dashboard", "--port", "0"]);
        command
            .args(args)
            .env_remove("AO_DASHBOARD_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap());
        let mut child = command.spawn().unwrap();
        let base = support::dashboard_address(&mut child, &stderr_log);
        // What it says on stderr comes after the address on stdout.
        assert!(wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&stderr_log).is_ok_and(|log| log.contains("dashboard on"))
        }));
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        // Every API request needs the token unless it was turned off; tests send the one
        // in the data dir, or in the environment.
        let token = env
            .iter()
            .find(|(name, _)| *name == "AO_DASHBOARD_TOKEN")
            .map(|(_, token)| token.to_string())
            .or_else(|| {
                std::fs::read_to_string(harness.data_dir().join("dashboard.token"))
                    .ok()
                    .map(|token| token.trim().to_string())
            })
            .filter(|_| !args.contains(&"--no-token"));
        Self {
            child,
            base,
            http,
            token,
            stderr_log,
        }
    }

    /// The page's link with its token, as printed when the token was made.
    fn printed_link(&self) -> String {
        let log = self.stderr();
        log.split_whitespace()
            .find(|word| word.starts_with("http://") && word.contains("#token="))
            .unwrap_or_else(|| panic!("no link with the token printed: {log}"))
            .to_string()
    }

    /// `Authorization: …` for a raw HTTP request, with its line end; empty without a token.
    fn authorization_line(&self) -> String {
        self.token
            .as_ref()
            .map(|token| format!("Authorization: Bearer {token}\r\n"))
            .unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn reply(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = response.unwrap();
        Reply {
            status: response.status().as_u16(),
            body: response
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string()
                .unwrap(),
        }
    }

    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    pub(crate) fn get(&self, path: &str) -> Reply {
        Self::reply(self.authorized(self.http.get(self.url(path))).call())
    }

    fn post_json(&self, path: &str, body: &Value) -> Reply {
        Self::reply(
            self.authorized(self.http.post(self.url(path)))
                .content_type("application/json")
                .send(body.to_string()),
        )
    }

    fn post_bytes(&self, path: &str, body: &[u8]) -> Reply {
        Self::reply(
            self.authorized(self.http.post(self.url(path)))
                .content_type("text/plain; charset=utf-8")
                .send(body),
        )
    }

    fn delete(&self, path: &str) -> Reply {
        Self::reply(self.authorized(self.http.delete(self.url(path))).call())
    }

    /// The live feed, read on a thread of its own.
    pub(crate) fn events(&self) -> Feed {
        let response = self
            .authorized(self.http.get(self.url("/api/events")))
            .call()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let events = support::server_sent_events(response.into_body().into_reader());
        Feed { events }
    }

    /// Stops it as an operator would (SIGTERM) and returns how it exited.
    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        signal(&self.child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the dashboard did not stop within 30 s: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Server-sent events as (event name, JSON data).
pub(crate) struct Feed {
    events: mpsc::Receiver<(String, Value)>,
}

impl Feed {
    /// Waits for an event that `wanted` accepts; panics with what came instead.
    pub(crate) fn wait_for(
        &self,
        what: &str,
        mut wanted: impl FnMut(&str, &Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok((kind, data)) if wanted(&kind, &data) => return data,
                Ok(other) => seen.push(other),
                Err(_) => break,
            }
        }
        panic!("no {what} in the feed; got {seen:#?}");
    }
}

/// The keys of a JSON object, sorted.
fn keys(object: &Value) -> Vec<String> {
    let mut keys: Vec<String> = object.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[test]
fn the_api_spawns_shows_messages_and_kills_a_session_and_the_feed_follows() {
    let harness = Harness::new(&[], "");
    // Its agents get the dashboard's environment, not that of the tmux server, started
    // beforehand with another value.
    harness
        .tmux
        .start_with_env(&[("MYKEY", "from-the-tmux-server")]);
    let dashboard = Dashboard::start(&harness, &[], &[("MYKEY", "from-the-dashboard")]);
    let feed = dashboard.events();
    let snapshot = feed.wait_for("snapshot", |kind, _| kind == "snapshot");
    assert_eq!(snapshot["sessions"], json!([]));

    let spawned = dashboard.post_json(
        "/api/sessions",
        &json!({"project": "app", "task": TRICKY_TASK}),
    );
    assert_eq!(spawned.status, 201, "{}", spawned.body);
    let session = spawned.json();
    let id = session["id"].as_str().unwrap().to_string();
    assert_eq!(session["task"], TRICKY_TASK);
    assert_eq!(session["branch"], format!("session/{id}"));
    let log = harness.log_dir().join(&id);
    assert_eq!(
        fake_messages(&log),
        [TRICKY_TASK],
        "the task, byte-exact, once"
    );
    assert_eq!(
        support::fake_start(&log)["env"]["MYKEY"],
        "from-the-dashboard"
    );

    // Live: the new session shows up in the feed and goes idle when its agent says so.
    feed.wait_for("the session going idle", |kind, data| {
        kind == "session" && data["id"] == id && data["status"] == "idle"
    });

    // The same objects as `session ls --json` (which adds only whether it is the caller's).
    let listed = dashboard.get("/api/sessions");
    assert_eq!(listed.status, 200);
    let listed = listed.json();
    let from_api = listed.as_array().unwrap().iter().find(|s| s["id"] == id);
    let mut from_cli = harness
        .sessions_json(&[])
        .into_iter()
        .find(|s| s["id"] == id)
        .unwrap();
    from_cli.as_object_mut().unwrap().remove("caller");
    assert_eq!(keys(from_api.unwrap()), keys(&from_cli));
    assert_eq!(from_api.unwrap()["status"], from_cli["status"]);

    // The screen, plain and with its colours.
    let screen = dashboard.get(&format!("/api/sessions/{id}/screen"));
    assert_eq!(screen.status, 200);
    assert!(
        screen.body.contains("got: indented with a tab"),
        "{}",
        screen.body
    );
    assert!(!screen.body.contains('\x1b'), "plain text has no escapes");
    let styled = dashboard.get(&format!("/api/sessions/{id}/screen?ansi=1&lines=20"));
    assert!(styled.body.contains("\x1b[32m⏺"), "{:?}", styled.body);

    // A message, byte-exact, as `send`.
    let message = "second: ünï \"q\" $(x) `y`\n\tline two\r\n";
    let sent = dashboard.post_bytes(&format!("/api/sessions/{id}/messages"), message.as_bytes());
    assert_eq!(sent.status, 204, "{}", sent.body);
    assert_eq!(fake_messages(&log), [TRICKY_TASK, message]);
    // Status changes come without the task, which did not change (it may be a megabyte).
    feed.wait_for("a change without the unchanged task", |kind, data| {
        kind == "session" && data["id"] == id && data.get("task").is_none()
    });
    assert!(wait_until(Duration::from_secs(10), || dashboard
        .get(&format!("/api/sessions/{id}/screen"))
        .body
        .contains("got: second: ünï")));

    let attach = dashboard.get(&format!("/api/sessions/{id}/attach")).json();
    assert!(
        attach["argv"][0].as_str().unwrap().ends_with("tmux"),
        "{attach}"
    );
    assert!(
        attach["command"].as_str().unwrap().contains("attach"),
        "{attach}"
    );

    let killed = dashboard.delete(&format!("/api/sessions/{id}"));
    assert_eq!(killed.status, 200, "{}", killed.body);
    assert_eq!(killed.json()["outcome"], "killed");
    feed.wait_for("the removal", |kind, data| {
        kind == "removed" && data["id"] == id
    });
    assert_eq!(dashboard.get("/api/sessions").json(), json!([]));
    let archived = dashboard.get("/api/sessions?archived=1").json();
    assert_eq!(archived[0]["id"], id);
    assert_eq!(archived[0]["status"], "killed");
    assert!(harness.tmux.tmux(&["kill-session", "-t", "keeper"]).0);
    harness.assert_no_sessions();
    assert!(dashboard.stop().success());
}

#[test]
fn bad_requests_get_a_json_error_with_their_status_and_change_nothing() {
    let harness = Harness::new(&[], "");
    let dashboard = Dashboard::start(&harness, &[], &[]);
    let (max, sessions) = (1024 * 1024, "/api/sessions");

    dashboard
        .get("/api/sessions/app-9/screen")
        .assert_error(404, "no session `app-9`");
    dashboard
        .post_bytes("/api/sessions/app-9/messages", b"hi")
        .assert_error(404, "no session `app-9`");
    dashboard
        .delete("/api/sessions/app-9")
        .assert_error(404, "no session `app-9`");
    dashboard
        .delete("/api/sessions/..%2F..%2Fetc")
        .assert_error(400, "");
    dashboard
        .post_bytes("/api/sessions/app-9/messages", &vec![b'a'; max + 1])
        .assert_error(413, "larger than");
    dashboard
        .post_bytes("/api/sessions/app-9/messages", b"\xff\xfe")
        .assert_error(400, "not UTF-8");
    dashboard
        .post_bytes("/api/sessions/app-9/messages", b" \n")
        .assert_error(400, "empty");

    let raw = |body: &str, content_type: &str| {
        Dashboard::reply(
            dashboard
                .authorized(dashboard.http.post(dashboard.url(sessions)))
                .content_type(content_type)
                .send(body),
        )
    };
    raw("{\"task\": ", "application/json").assert_error(400, "parse");
    raw("{\"task\": \"x\"}", "text/plain").assert_error(415, "application/json");
    dashboard
        .post_json(sessions, &json!({"task": "x", "agnet": "claude-code"}))
        .assert_error(422, "unknown field `agnet`");
    dashboard
        .post_json(sessions, &json!({"task": 5}))
        .assert_error(422, "");
    dashboard
        .post_json(sessions, &json!({"project": "nope", "task": "x"}))
        .assert_error(404, "no project \"nope\"");
    dashboard
        .post_json(sessions, &json!({"project": "app", "task": "  "}))
        .assert_error(400, "empty");
    dashboard
        .post_json(sessions, &json!({"project": "app"}))
        .assert_error(400, "task");
    dashboard
        .post_json(
            sessions,
            &json!({"project": "app", "task": "x", "host": "far"}),
        )
        .assert_error(404, "no host `far`");
    dashboard
        .post_json(
            sessions,
            &json!({"project": "app", "task": "x", "agent": "nobody"}),
        )
        .assert_error(404, "no agent plugin named `nobody`");
    dashboard
        .post_json(
            sessions,
            &json!({"project": "app", "task": "x", "no_prompt": true}),
        )
        .assert_error(400, "no_prompt");
    dashboard
        .post_json(
            sessions,
            &json!({"project": "app", "task": "a".repeat(max + 1)}),
        )
        .assert_error(413, "larger than");
    dashboard
        .get("/api/sessions?archived=maybe")
        .assert_error(400, "maybe");
    dashboard.get("/api/nothing").assert_error(404, "no such");
    dashboard.get("//api/sessions").assert_error(404, "no such");
    dashboard
        .get("/api/sessions/app-9/screen?lines=0")
        .assert_error(400, "lines");
    Dashboard::reply(
        dashboard
            .authorized(dashboard.http.put(dashboard.url(sessions)))
            .send(""),
    )
    .assert_error(405, "method");

    harness.assert_untouched();
    assert!(dashboard.stop().success());
}

#[test]
fn changes_asked_by_another_site_and_requests_without_the_token_are_refused() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "stay alive"]);
    let dashboard = Dashboard::start(&harness, &[], &[]);
    let foreign = |request: ureq::RequestBuilder<ureq::typestate::WithoutBody>| {
        Dashboard::reply(request.header("Origin", "http://evil.example").call())
    };
    foreign(dashboard.http.delete(dashboard.url("/api/sessions/app-1")))
        .assert_error(403, "another site");
    let post = Dashboard::reply(
        dashboard
            .http
            .post(dashboard.url("/api/sessions/app-1/messages"))
            .header("Origin", "null")
            .send("rm -rf"),
    );
    post.assert_error(403, "another site");
    assert_eq!(
        fake_messages(&harness.log_dir().join("app-1")),
        ["stay alive"]
    );
    // A page on a name that resolves here (DNS rebinding) cannot even read.
    Dashboard::reply(
        dashboard
            .http
            .get(dashboard.url("/api/sessions"))
            .header("Host", "evil.example")
            .call(),
    )
    .assert_error(403, "loopback only");
    // Nor can another site's page make a browser read (a GET from `<img src=…>`).
    Dashboard::reply(
        dashboard
            .http
            .get(dashboard.url("/api/doctor"))
            .header("Sec-Fetch-Site", "cross-site")
            .call(),
    )
    .assert_error(403, "another site");
    // The dashboard's own page may.
    let own = Dashboard::reply(
        dashboard
            .authorized(
                dashboard
                    .http
                    .post(dashboard.url("/api/sessions/app-1/messages")),
            )
            .header("Origin", &dashboard.base)
            .send("from the page"),
    );
    assert_eq!(own.status, 204, "{}", own.body);
    let first_log = dashboard.stderr();
    assert!(dashboard.stop().success());

    // Not even on loopback does anything go without the token: generated once into the data
    // dir, private, and printed in the page's link when made.
    let token_file = harness.data_dir().join("dashboard.token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    let mode = std::fs::metadata(&token_file).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert!(
        first_log.contains(&format!("#token={token}")),
        "the link carries it: {first_log}"
    );
    let mut loopback = Dashboard::start(&harness, &[], &[]);
    assert!(
        !loopback.stderr().contains(&token),
        "printed only when made"
    );
    loopback.token = None;
    loopback.get("/api/sessions").assert_error(401, "token");
    let sent = loopback.post_bytes("/api/sessions/app-1/messages", b"from another user");
    sent.assert_error(401, "token");
    assert_eq!(
        fake_messages(&harness.log_dir().join("app-1")),
        ["stay alive", "from the page"]
    );
    loopback.token = Some(format!("{token}x"));
    loopback.get("/api/sessions").assert_error(401, "token");
    loopback.token = Some(token.clone());
    assert_eq!(loopback.get("/api/sessions").json()[0]["id"], "app-1");
    assert_eq!(
        loopback.get("/").status,
        200,
        "the page itself holds no data"
    );
    assert!(loopback.stop().success());

    // `--no-token`: today's loopback dashboard for a machine no one else uses; never open.
    let single_user = Dashboard::start(&harness, &["--no-token"], &[]);
    assert!(
        single_user.stderr().contains("without a token"),
        "{}",
        single_user.stderr()
    );
    assert_eq!(single_user.get("/api/sessions").json()[0]["id"], "app-1");
    assert!(single_user.stop().success());
    let refused = harness.ao(&[
        "dashboard",
        "--port",
        "0",
        "--bind",
        "0.0.0.0",
        "--no-token",
    ]);
    support::assert_one_line_error(&refused, "only for a loopback");

    // Any other address needs the same token.
    let mut open = Dashboard::start(&harness, &["--bind", "0.0.0.0"], &[]);
    open.token = None;
    open.get("/api/sessions").assert_error(401, "token");
    open.token = Some(token.clone());
    assert_eq!(open.get("/api/sessions").status, 200);
    let lower_case = Dashboard::reply(
        open.http
            .get(open.url("/api/sessions"))
            .header("Authorization", format!("bearer {token}"))
            .call(),
    );
    assert_eq!(
        lower_case.status, 200,
        "the scheme name is case-insensitive"
    );
    assert!(open.stop().success());

    // A token in the environment replaces the file's.
    let env_token = "an-operator-chosen-token-0123456789";
    let mut guarded = Dashboard::start(&harness, &[], &[("AO_DASHBOARD_TOKEN", env_token)]);
    guarded.token = Some(token.clone());
    guarded.get("/api/sessions").assert_error(401, "token");
    guarded.token = Some(env_token.to_string());
    assert_eq!(guarded.get("/api/sessions").json()[0]["id"], "app-1");
    assert!(guarded.stop().success());
}

/// What a raw client reads back: the status and the headers, lower-cased.
struct Head {
    status: u16,
    headers: String,
}

/// Sends a raw GET of `path` on `stream` and reads the answer's status line and headers, within
/// `within`; `None` when the dashboard did not answer in time.
fn raw_get(
    stream: &mut TcpStream,
    dashboard: &Dashboard,
    path: &str,
    within: Duration,
) -> Option<Head> {
    send_get(stream, dashboard, path).ok()?;
    read_head(stream, within)
}

/// Sends a raw GET of `path` on `stream`.
fn send_get(stream: &mut TcpStream, dashboard: &Dashboard, path: &str) -> std::io::Result<()> {
    let host = dashboard.base.trim_start_matches("http://");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
        dashboard.authorization_line()
    )
}

/// Reads the status line and headers of the answer on `stream`, within `within`.
fn read_head(stream: &mut TcpStream, within: Duration) -> Option<Head> {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => head.push_str(&line.to_ascii_lowercase()),
        }
    }
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Head {
        status,
        headers: head,
    })
}

/// The dashboard process's resident memory, in KiB.
fn resident_kib(dashboard: &Dashboard) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", dashboard.child.id())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// An answer over a cap is a 503 that says when to come back.
fn assert_busy(head: &Head, what: &str) {
    assert_eq!(head.status, 503, "{what}: {}", head.headers);
    assert!(
        head.headers.contains("retry-after: "),
        "{what}: no Retry-After in {}",
        head.headers
    );
}

#[test]
fn three_hundred_live_feeds_and_a_flood_of_connections_leave_the_dashboard_answering() {
    let harness = Harness::new(&[], "");
    harness.ok(&["spawn", "app", "--task", "stay alive"]);
    // Any local process can open feeds on a loopback dashboard without a token.
    let dashboard = Dashboard::start(&harness, &["--no-token"], &[]);
    let address = dashboard.base.trim_start_matches("http://").to_string();
    let before = resident_kib(&dashboard);
    let answer_time = Duration::from_secs(10);

    let mut feeds = Vec::new();
    let (mut streaming, mut refused) = (0, 0);
    for i in 0..300 {
        let mut feed = TcpStream::connect(&address).unwrap();
        let head = raw_get(&mut feed, &dashboard, "/api/events", answer_time)
            .unwrap_or_else(|| panic!("feed {i} got no answer: the dashboard stopped answering"));
        match head.status {
            200 => streaming += 1,
            _ => {
                assert_busy(&head, &format!("feed {i}"));
                refused += 1;
            }
        }
        feeds.push(feed);
    }
    assert!(
        streaming > 0 && refused > 0,
        "{streaming} feeds, {refused} refused: the cap"
    );
    // With every feed it takes open, ordinary requests still get their slots.
    let listed = dashboard.get("/api/sessions");
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.json()[0]["id"], "app-1");

    // Connections that never send a request fill every slot: the next is told 503 at once,
    // not left in the listen queue.
    let silent: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(&address).unwrap())
        .collect();
    let mut late = TcpStream::connect(&address).unwrap();
    let head = raw_get(&mut late, &dashboard, "/api/sessions", answer_time)
        .expect("a client over the connection cap got no answer");
    if head.status != 200 {
        assert_busy(&head, "a request over the connection cap");
    }
    let grown = resident_kib(&dashboard).saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "the dashboard grew by {grown} KiB with 300 feeds and 400 idle connections"
    );

    // Once they go, the slots are free again: a new feed streams.
    drop((feeds, silent, late));
    assert!(wait_until(Duration::from_secs(20), || {
        let mut feed = TcpStream::connect(&address).unwrap();
        raw_get(&mut feed, &dashboard, "/api/events", answer_time).is_some_and(|h| h.status == 200)
    }));
    assert!(dashboard.stop().success());
}

#[test]
fn doctor_requests_queued_behind_a_host_that_never_answers_are_told_503_at_once() {
    let harness = Harness::new(&[], "");
    // A host that accepts connections and never speaks: doctor waits its connect timeout.
    let black_hole = std::net::TcpListener::bind("127.0.0.4:0").unwrap();
    let port = black_hole.local_addr().unwrap().port();
    harness.append_config(&format!(
        "hosts:\n  hole: {{ ssh: root@127.0.0.4, port: {port} }}\n"
    ));
    let dashboard = Dashboard::start(&harness, &["--no-token"], &[]);
    let address = dashboard.base.trim_start_matches("http://").to_string();
    let mut clients: Vec<TcpStream> = (0..12)
        .map(|_| {
            let mut client = TcpStream::connect(&address).unwrap();
            send_get(&mut client, &dashboard, "/api/doctor").unwrap();
            client
        })
        .collect();
    // One runs, a few wait their turn; the rest are told to come back, at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    let busy = clients
        .iter_mut()
        .filter_map(|client| {
            let left = deadline.saturating_duration_since(Instant::now());
            read_head(client, left.max(Duration::from_millis(10)))
        })
        .inspect(|head| assert_busy(head, "a doctor request over the queue"))
        .count();
    assert!(busy > 0, "every doctor request waits behind the host");
    // Ordinary requests are not held up meanwhile.
    assert_eq!(dashboard.get("/api/sessions").status, 200);
    drop(clients);
    assert!(dashboard.stop().success());
}

#[test]
fn a_page_on_another_port_cannot_make_the_dashboard_log_in_to_hosts() {
    if !support::require_program(sshd::SshServer::unavailable()) {
        return;
    }
    let harness = Harness::new(&[], "");
    let client = sshd::ClientKey::generate(harness.home());
    let host = sshd::SshServer::start("alpha", 2, harness.home(), &client);
    let known_hosts = harness.home().join("known_hosts");
    std::fs::write(&known_hosts, host.known_hosts_line()).unwrap();
    harness.append_config(&format!(
        "hosts:\n{}",
        host.config_entry(&client, &known_hosts)
    ));
    let dashboard = Dashboard::start(&harness, &["--no-token"], &[]);
    let from = |site: &str, path: &str| {
        Dashboard::reply(
            dashboard
                .http
                .get(dashboard.url(path))
                .header("Sec-Fetch-Site", site)
                .call(),
        )
    };
    // `<img src=http://localhost:PORT/api/doctor>` on a page of localhost:OTHER_PORT.
    for path in [
        "/api/doctor",
        "/api/sessions",
        "/api/events",
        "/api/plugins",
    ] {
        for site in ["same-site", "cross-site"] {
            from(site, path).assert_error(403, "another port");
        }
    }
    assert_eq!(host.logins(), 0, "a refused request logged in to the host");
    // The dashboard's own page, a typed address and scripts may; and doctor does log in, so
    // the count above would have seen it.
    for site in ["same-origin", "none"] {
        let listed = from(site, "/api/sessions");
        assert_eq!(listed.status, 200, "{site}: {}", listed.body);
    }
    assert_eq!(dashboard.get("/api/sessions").status, 200);
    let checked = from("same-origin", "/api/doctor");
    assert_eq!(checked.status, 200, "{}", checked.body);
    assert!(
        host.logins() > 0,
        "doctor checked the host without logging in"
    );
    assert!(dashboard.stop().success());
    sshd::close_shared_connections(&harness.data_dir());
}

/// A raw HTTP request whose client hangs up at once.
fn post_and_hang_up(dashboard: &Dashboard, path: &str, body: &str) {
    let address = dashboard.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        dashboard.authorization_line(),
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(stream);
}

#[test]
fn a_spawn_finishes_when_its_client_hangs_up_and_stopping_the_dashboard_undoes_one_in_progress() {
    let harness = Harness::new(&[], "");
    let dashboard = Dashboard::start(&harness, &[], &[]);
    post_and_hang_up(
        &dashboard,
        "/api/sessions",
        &json!({"project": "app", "task": "finish me"}).to_string(),
    );
    assert!(
        wait_until(Duration::from_secs(20), || harness
            .sessions_json(&[])
            .iter()
            .any(|s| s["id"] == "app-1" && s["status"] == "idle")),
        "the spawn did not finish: {:#?}\n{}",
        harness.sessions_json(&[]),
        dashboard.stderr()
    );
    assert_eq!(
        fake_messages(&harness.log_dir().join("app-1")),
        ["finish me"]
    );
    harness.ok(&["session", "kill", "app-1"]);
    assert!(dashboard.stop().success());

    // An agent that never gets ready: the spawn is still waiting when the dashboard stops.
    let never = Harness::new(&[("FAKE_AGENT_NEVER_READY", "1")], "");
    let dashboard = Dashboard::start(&never, &[], &[]);
    let (base, authorization) = (dashboard.base.clone(), dashboard.authorization_line());
    let client = std::thread::spawn(move || {
        let address = base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).unwrap();
        let body = json!({"project": "app", "task": "never read"}).to_string();
        write!(
            stream,
            "POST /api/sessions HTTP/1.1\r\nHost: {address}\r\n{authorization}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply
    });
    assert!(wait_until(Duration::from_secs(10), || never
        .tmux
        .sessions()
        .len()
        == 1));
    // A client that never finishes its request's headers does not keep it from stopping.
    let address = dashboard.base.trim_start_matches("http://").to_string();
    let mut slow = TcpStream::connect(&address).unwrap();
    write!(slow, "GET /api/sessions HTTP/1.1\r\nHost: {address}\r\n").unwrap();
    let stopping = Instant::now();
    let stopped = dashboard.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "stopping took {:?}",
        stopping.elapsed()
    );
    drop(slow);
    assert!(stopped.success(), "{stopped:?}");
    let reply = client.join().unwrap();
    assert!(reply.contains("stopped"), "{reply}");
    never.assert_no_sessions();
    let branches = git(&never.repo(), &["branch", "--format=%(refname:short)"]);
    assert_eq!(branches, "main", "the spawn's branch was removed too");
}

#[test]
fn the_page_and_its_files_are_served_with_a_policy_that_keeps_hostile_text_from_running() {
    let harness = Harness::new(&[], "");
    let dashboard = Dashboard::start(&harness, &[], &[]);
    // Every file of the page's folder, so a script module added there and not served fails here.
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboard/src/page");
    let mut files: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert!(files.len() > 3, "the page is split into modules: {files:?}");
    for file in &files {
        let (path, kind) = match file.rsplit_once('.').map(|(_, ext)| ext) {
            Some("html") => ("/".to_string(), "text/html"),
            Some("js") => (format!("/{file}"), "text/javascript"),
            Some("css") => (format!("/{file}"), "text/css"),
            _ => panic!("{file}: a page file of a kind the page does not serve"),
        };
        let path = path.as_str();
        let response = dashboard.http.get(dashboard.url(path)).call().unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        assert!(header("content-security-policy").contains("script-src 'self'"));
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    let log = dashboard.stderr();
    assert!(dashboard.stop().success(), "{log}");
}

/// `chromedriver` on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(program: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        assert!(
            wait_until(Duration::from_secs(20), || ureq::get(&status)
                .call()
                .is_ok()),
            "chromedriver did not start"
        );
        Self { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the README's screenshot lives; the browser test rewrites it when
/// `AO_UPDATE_SCREENSHOT=1`, and always leaves a fresh one in `target/`.
fn screenshot_paths(name: &str) -> Vec<std::path::PathBuf> {
    let root = support::repo_root();
    let mut paths = vec![root.join("target").join(name)];
    if std::env::var_os("AO_UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        paths.push(root.join("docs").join(name));
    }
    paths
}

/// The real page in a real headless Chromium: spawn from the form, see the session appear
/// without a reload, open it, send a message and see the agent's answer, kill it and see it go.
#[test]
fn a_browser_spawns_watches_messages_and_kills_a_session_from_the_page() {
    let browser = support::on_path(&["chromium", "chromium-browser", "google-chrome"])
        .zip(support::on_path(&["chromedriver"]));
    if !support::require_program(browser.is_none().then(|| {
        "no chromium and chromedriver on PATH (apt-get install chromium chromium-driver)".into()
    })) {
        return;
    }
    let (chromium, chromedriver) = browser.unwrap();
    let harness = Harness::new(&[], "");
    let dashboard = Dashboard::start(&harness, &[], &[]);
    let driver = Driver::start(&chromedriver);
    let profile = harness.home().join("chromium-profile");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,800", "--hide-scrollbars", "--lang=en-US",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use fantoccini::{ClientBuilder, Locator};
        let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("starting headless chromium through chromedriver");
        let text_of = async |browser: &fantoccini::Client, css: &str| {
            browser
                .find(Locator::Css(css))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        };
        /// Waits until the element `css` shows text containing `needle`.
        async fn wait_for_text(browser: &fantoccini::Client, css: &str, needle: &str) {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut last = String::new();
            while Instant::now() < deadline {
                if let Ok(element) = browser.find(Locator::Css(css)).await {
                    last = element.text().await.unwrap_or_default();
                    if last.contains(needle) {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{css} never showed {needle:?}; it shows {last:?}");
        }

        async fn click(browser: &fantoccini::Client, css: &str) {
            let element = browser.find(Locator::Css(css)).await.unwrap();
            element.click().await.unwrap();
        }
        async fn type_into(browser: &fantoccini::Client, css: &str, text: &str) {
            let element = browser.find(Locator::Css(css)).await.unwrap();
            element.send_keys(text).await.unwrap();
        }
        /// Saves the page as `name` (see [`screenshot_paths`]).
        async fn save_screenshot(browser: &fantoccini::Client, name: &str) {
            let screenshot = browser.screenshot().await.unwrap();
            for path in screenshot_paths(name) {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, &screenshot).unwrap();
            }
        }

        // The link it printed, token and all, is all the page needs.
        browser.goto(&dashboard.printed_link()).await.unwrap();
        wait_for_text(&browser, "#live", "live").await;

        // Spawn from the form.
        let project = browser.find(Locator::Css("#spawn-project")).await.unwrap();
        project.clear().await.unwrap();
        project.send_keys("app").await.unwrap();
        type_into(
            &browser,
            "#spawn-task",
            "hello from the browser\nand a second line",
        )
        .await;
        click(&browser, "#spawn-submit").await;
        // It appears in the table without a reload, and goes idle once the agent has its task.
        browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("tr[data-id='app-1']"))
            .await
            .unwrap();
        wait_for_text(&browser, "tr[data-id='app-1'] .status", "idle").await;
        wait_for_text(&browser, "#spawn-result", "spawned app-1").await;
        assert_eq!(
            fake_messages(&harness.log_dir().join("app-1")),
            ["hello from the browser\nand a second line"]
        );
        assert!(text_of(&browser, "tr[data-id='app-1'] .task")
            .await
            .contains("hello from the browser"));

        // Two more sessions, spawned by a script, appear live too (and make the screenshot).
        for task in [
            "Fix the flaky login test",
            "Write the release notes for 0.2",
        ] {
            let spawned =
                dashboard.post_json("/api/sessions", &json!({"project": "app", "task": task}));
            assert_eq!(spawned.status, 201, "{}", spawned.body);
        }
        wait_for_text(&browser, "tr[data-id='app-3'] .status", "idle").await;
        // A pull request the watcher stored shows in its row, live.
        crate::pull_request_view::store_failing_pr(&harness, "app-2");
        wait_for_text(&browser, "tr[data-id='app-2'] .pr", "#12").await;
        let cell = text_of(&browser, "tr[data-id='app-2'] .pr").await;
        assert!(
            cell.contains("ci fail") && cell.contains("changes") && cell.contains("1 queued"),
            "{cell}"
        );
        save_screenshot(&browser, "dashboard.png").await;

        // Open it: the agent's screen, then a message and the agent's answer to it.
        click(&browser, "tr[data-id='app-1'] .id a").await;
        wait_for_text(&browser, "#screen", "got: hello from the browser").await;
        assert!(text_of(&browser, "#attach-command").await.contains("tmux"));
        let message = "second message: ünï \"quoted\" $(not run)\nits second line";
        type_into(&browser, "#message", message).await;
        click(&browser, "#send").await;
        wait_for_text(&browser, "#send-result", "sent").await;
        wait_for_text(&browser, "#screen", "got: second message: ünï \"quoted\"").await;
        assert_eq!(
            fake_messages(&harness.log_dir().join("app-1"))[1],
            message,
            "delivered byte-exact"
        );
        save_screenshot(&browser, "dashboard-session.png").await;

        // Kill it, confirming the dialog: it leaves the table.
        click(&browser, "#kill").await;
        browser.accept_alert().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser
            .find(Locator::Css("tr[data-id='app-1']"))
            .await
            .is_ok()
        {
            assert!(Instant::now() < deadline, "app-1 stayed in the table");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(browser
            .find(Locator::Css("tr[data-id='app-2']"))
            .await
            .is_ok());
        // A session's view shows its pull request in detail (the kill went back to the list).
        click(&browser, "tr[data-id='app-2'] .id a").await;
        wait_for_text(&browser, "#sv-pr", "#12 Fix the login").await;
        let panel = text_of(&browser, "#sv-pr").await;
        for needle in ["build", "lint", "2 unresolved", "conflicting", "ci_failed"] {
            assert!(panel.contains(needle), "{needle:?} not in {panel:?}");
        }
        save_screenshot(&browser, "dashboard-pull-request.png").await;
        browser.close().await.unwrap();
    });
    let archived = harness.sessions_json(&["--archived"]);
    assert!(archived
        .iter()
        .any(|s| s["id"] == "app-1" && s["status"] == "killed"));
    for id in ["app-2", "app-3"] {
        harness.ok(&["session", "kill", id]);
    }
    harness.assert_no_sessions();
    assert!(dashboard.stop().success());
}

// One test per class of lifecycle error: each answers with its own status and a message that
// names what to fix, and a refused spawn leaves nothing behind.

#[test]
fn an_unknown_project_or_plugin_is_404_and_names_what_there_is() {
    let harness = Harness::new(&[], "");
    let dashboard = Dashboard::start(&harness, &[], &[]);
    dashboard
        .post_json("/api/sessions", &json!({"project": "nope", "task": "x"}))
        .assert_error(404, "configured projects: app");
    let spawn = json!({"project": "app", "task": "x", "agent": "nobody"});
    let reply = dashboard.post_json("/api/sessions", &spawn);
    reply.assert_error(404, "no agent plugin named `nobody` is loaded");
    reply.assert_error(404, "claude-code");
    assert!(dashboard.stop().success());

    // The project's own plugins are checked as the overrides are, but one missing is no fault
    // of the request: unavailable, naming the config file in use.
    harness.edit_config(&[(
        "ready_timeout_ms: 10000",
        "ready_timeout_ms: 10000, runtime: nobody",
    )]);
    let dashboard = Dashboard::start(&harness, &[], &[]);
    let reply = dashboard.post_json("/api/sessions", &json!({"project": "app", "task": "x"}));
    reply.assert_error(503, "no runtime plugin named `nobody` is loaded");
    reply.assert_error(503, "loaded runtime plugins: tmux");
    reply.assert_error(
        503,
        &format!(
            "check the name in {} (project `app`)",
            harness.config_path().display()
        ),
    );
    harness.assert_untouched();
    assert!(dashboard.stop().success());
}

#[test]
fn a_bad_task_is_400_and_one_too_large_413_each_naming_the_fix() {
    let harness = Harness::new(&[], "");
    let dashboard = Dashboard::start(&harness, &[], &[]);
    dashboard
        .post_json(
            "/api/sessions",
            &json!({"project": "app", "task": "a\u{0}b"}),
        )
        .assert_error(400, "NUL");
    dashboard
        .post_json("/api/sessions", &json!({"project": "app", "task": " \n"}))
        .assert_error(
            400,
            "the task is empty; say what the agent should do (`task`)",
        );
    dashboard
        .post_json("/api/sessions", &json!({"project": "app"}))
        .assert_error(400, "`\"no_prompt\": true`");
    dashboard
        .post_json(
            "/api/sessions",
            &json!({"project": "app", "role": "orchestrator", "task": "x"}),
        )
        .assert_error(400, "leave `task` out");
    dashboard
        .post_json(
            "/api/sessions",
            &json!({"project": "app", "task": "a".repeat(1024 * 1024 + 1)}),
        )
        .assert_error(413, "put the details in a file");
    harness.assert_untouched();
    assert!(dashboard.stop().success());
}

#[test]
fn a_message_to_a_session_that_stopped_running_is_409_and_says_how_to_clean_up() {
    let harness = Harness::new(&[], "");
    let dashboard = Dashboard::start(&harness, &[], &[]);
    let spawned = dashboard.post_json("/api/sessions", &json!({"project": "app", "task": "x"}));
    assert_eq!(spawned.status, 201, "{}", spawned.body);
    let id = spawned.json()["id"].as_str().unwrap().to_string();
    assert!(harness.tmux.tmux(&["kill-session", "-t", &id]).0);
    dashboard
        .post_bytes(&format!("/api/sessions/{id}/messages"), b"hello")
        .assert_error(409, "is not running any more");
    let killed = dashboard.delete(&format!("/api/sessions/{id}"));
    assert_eq!(killed.status, 200, "{}", killed.body);
    assert!(dashboard.stop().success());
}

#[test]
fn a_runtime_whose_constructor_fails_or_panics_is_502_and_named() {
    let harness = Harness::new(&[], "");
    harness.install_faulty_runtime("{ constructor: error }");
    let spawn = json!({"project": "app", "task": "x", "runtime": "faulty"});
    let dashboard = Dashboard::start(&harness, &[], &[]);
    let reply = dashboard.post_json("/api/sessions", &spawn);
    reply.assert_error(502, "runtime plugin `faulty`");
    reply.assert_error(502, "faulty fixture refuses");
    assert!(dashboard.stop().success());

    harness.edit_config(&[("constructor: error", "constructor: panic")]);
    let dashboard = Dashboard::start(&harness, &[], &[]);
    let reply = dashboard.post_json("/api/sessions", &spawn);
    reply.assert_error(502, "runtime plugin `faulty`");
    reply.assert_error(502, "panics");
    harness.assert_untouched();
    assert!(dashboard.stop().success());
}

#[test]
fn a_runtime_whose_constructor_hangs_is_504_and_names_the_setting() {
    let harness = Harness::new(&[], "");
    harness.install_faulty_runtime("{ constructor: hang }");
    harness.edit_config(&[(
        "ready_timeout_ms: 10000",
        "ready_timeout_ms: 10000, call_timeout_ms: 500",
    )]);
    let dashboard = Dashboard::start(&harness, &[], &[]);
    let reply = dashboard.post_json(
        "/api/sessions",
        &json!({"project": "app", "task": "x", "runtime": "faulty"}),
    );
    reply.assert_error(504, "did not finish starting within 500 ms");
    reply.assert_error(504, "call_timeout_ms");
    harness.assert_untouched();
    assert!(dashboard.stop().success());
}

#[test]
fn a_session_whose_runtime_is_no_longer_loaded_is_503_and_says_where_to_look() {
    let harness = Harness::new(&[], "");
    let dashboard = Dashboard::start(&harness, &[], &[]);
    let spawned = dashboard.post_json("/api/sessions", &json!({"project": "app", "task": "x"}));
    assert_eq!(spawned.status, 201, "{}", spawned.body);
    let id = spawned.json()["id"].as_str().unwrap().to_string();
    assert!(dashboard.stop().success());

    let tmux = harness
        .plugin_dir()
        .join(support::library_file_name("ao-runtime-tmux"));
    std::fs::remove_file(&tmux).unwrap();
    let dashboard = Dashboard::start(&harness, &[], &[]);
    let reply = dashboard.get(&format!("/api/sessions/{id}/screen"));
    reply.assert_error(503, "no runtime plugin named `tmux` is loaded");
    reply.assert_error(503, "plugins list");
    assert!(dashboard.stop().success());
}

#[test]
fn a_session_whose_record_is_damaged_is_500_and_names_the_file() {
    let harness = Harness::new(&[], "");
    let dashboard = Dashboard::start(&harness, &[], &[]);
    let spawned = dashboard.post_json("/api/sessions", &json!({"project": "app", "task": "x"}));
    assert_eq!(spawned.status, 201, "{}", spawned.body);
    let id = spawned.json()["id"].as_str().unwrap().to_string();
    let record = harness.record(&id, false);
    let kept = std::fs::read(&record).unwrap();
    std::fs::write(&record, "status: [unclosed\n").unwrap();
    let reply = dashboard.post_bytes(&format!("/api/sessions/{id}/messages"), b"hello");
    reply.assert_error(500, &record.display().to_string());
    // The damage was reported, not acted on: with the record mended the session is killed.
    std::fs::write(&record, kept).unwrap();
    let killed = dashboard.delete(&format!("/api/sessions/{id}"));
    assert_eq!(killed.status, 200, "{}", killed.body);
    assert!(dashboard.stop().success());
}
