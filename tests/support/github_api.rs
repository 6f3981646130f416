//! A loopback stand-in for GitHub's REST and GraphQL APIs, enough of them for the `github` scm
//! plugin and the watcher: a test sets the world (pull requests, check runs with their job logs,
//! reviews and review threads), the stand-in answers as GitHub does, and counts what a rate
//! limit would count.
//!
//! Routes (REST at the root, as `api.github.com`; GraphQL at `/graphql`):
//! - `GET /repos/O/R/pulls?…`: the repository's pull requests, most recently updated first (the
//!   query's `state`, `head` (`owner:branch`) and `per_page` honoured);
//! - `GET /repos/O/R/pulls/N` (with `mergeable`), `PUT /repos/O/R/pulls/N/merge` (`{"sha"}`:
//!   409 when the head moved, 405 when it conflicts);
//! - `GET /repos/O/R/commits/SHA/check-runs`: the latest run of each check on that commit;
//! - `GET /repos/O/R/commits/SHA/status`: the latest status of each context on that commit;
//! - `GET /repos/O/R/check-runs/ID/annotations`;
//! - `GET /repos/O/R/actions/jobs/ID/logs`: `302` to `/_logs/ID` (as GitHub redirects to a
//!   blob store), which answers the log as text without asking for a token (404 for a job that
//!   never ran);
//! - `GET /rate_limit` (not counted, as on GitHub), `GET /user`;
//! - `POST /graphql`: each `ALIAS: pullRequest(number: N)` of the query is answered with the
//!   whole pull request (state, mergeable, reviewDecision, reviews, reviewThreads with their
//!   comments): a client reads what it asked for.
//!
//! Every answer carries `x-ratelimit-{limit,remaining,used,reset,resource}` for its API (`core`
//! or `graphql`). A `GET` answer has an `ETag`; a request whose `If-None-Match` matches is a
//! `304` that costs nothing. [`GitHubApi::counts`] says how many requests each API counted.
//! [`GitHubApi::fault`] makes the next answers fail the ways GitHub fails.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ao_plugin_api::scm::{WebhookDelivery, WebhookHeader};
use serde_json::{json, Value};

pub use crate::standin_http::RecordedRequest;
use crate::standin_http::{Reply, StandIn};

/// Requests per hour each API allows in the stand-in, as GitHub allows an authenticated user.
pub const LIMIT_PER_HOUR: u64 = 5000;

/// A way the next answers fail, as GitHub fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `401 Bad credentials`.
    Unauthorized,
    /// `x-ratelimit-remaining: 0` and the reset this many seconds away: REST answers `403`,
    /// GraphQL `200` with a `RATE_LIMITED` error.
    RateLimited { reset_in_secs: u64 },
    /// `403` "You have exceeded a secondary rate limit", naming no time to wait.
    SecondaryRateLimit,
    /// `429` with `Retry-After`.
    TooManyRequests { retry_after_secs: u64 },
    /// `502 Bad Gateway`, as GitHub answers when it is having trouble.
    ServerError,
    /// `200` with a body that is not JSON.
    Malformed,
    /// `200` with a JSON body this many bytes long.
    Huge { bytes: usize },
    /// The right answer, after this long.
    Slow(Duration),
}

/// What the stand-in counted, per API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// REST requests that count against the `core` limit (every answer but a `304`).
    pub rest: u64,
    /// REST requests answered `304 Not Modified`: free.
    pub rest_not_modified: u64,
    /// GraphQL requests (each costs a point).
    pub graphql: u64,
    /// Log downloads from the blob store the logs endpoint redirects to (no API limit).
    pub log_downloads: u64,
}

impl Counts {
    /// The requests that count against a rate limit, both APIs.
    pub fn counted(&self) -> u64 {
        self.rest + self.graphql
    }
}

/// One pull request as the stand-in keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    /// The branch it merges from (in the same repository).
    pub branch: String,
    pub head_sha: String,
    pub base: String,
    /// `open` or `closed`.
    pub state: String,
    pub merged: bool,
    pub draft: bool,
    /// `Some(true)` clean, `Some(false)` conflicting, `None` not computed yet.
    pub mergeable: Option<bool>,
    /// GraphQL's `reviewDecision`: `APPROVED`, `CHANGES_REQUESTED`, `REVIEW_REQUIRED` or none.
    pub review_decision: Option<String>,
    pub reviews: Vec<ReviewSpec>,
    pub threads: Vec<Thread>,
    /// Bumped on every change, as GitHub's `updated_at`.
    pub updated: u64,
}

/// One submitted review.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewSpec {
    pub id: String,
    pub author: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED`.
    pub state: String,
    pub body: String,
}

/// One review thread and its comments.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    pub id: String,
    pub resolved: bool,
    pub path: String,
    pub line: Option<u32>,
    pub comments: Vec<CommentSpec>,
}

/// One comment of a thread.
#[derive(Debug, Clone, PartialEq)]
pub struct CommentSpec {
    pub id: String,
    pub author: String,
    pub body: String,
}

/// One run of a check on a commit; its id is also its Actions job's id.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRun {
    pub id: u64,
    pub name: String,
    /// `queued`, `in_progress`, `completed`.
    pub status: String,
    /// When completed: `success`, `failure`, `timed_out`, `cancelled`, `skipped`,
    /// `startup_failure`, `action_required`, `neutral`.
    pub conclusion: Option<String>,
    /// The job's log; `None` for a job that never ran (the logs endpoint says 404).
    pub log: Option<String>,
    /// The check's annotations' messages (GitHub puts "the job was not started because…" there).
    pub annotations: Vec<String>,
}

impl CheckRun {
    /// A completed run of `name` that ended `conclusion`, with `log`.
    pub fn completed(name: &str, conclusion: &str, log: &str) -> CheckRun {
        CheckRun {
            id: 0,
            name: name.into(),
            status: "completed".into(),
            conclusion: Some(conclusion.into()),
            log: Some(log.into()),
            annotations: Vec::new(),
        }
    }

    /// A run of `name` still going.
    pub fn running(name: &str) -> CheckRun {
        CheckRun {
            id: 0,
            name: name.into(),
            status: "in_progress".into(),
            conclusion: None,
            log: None,
            annotations: Vec::new(),
        }
    }
}

#[derive(Default)]
struct Repo {
    pulls: Vec<Pull>,
    /// Per commit, every run in the order made (a re-run adds one).
    check_runs: BTreeMap<String, Vec<CheckRun>>,
    /// Per commit, every status set, oldest first.
    statuses: BTreeMap<String, Vec<Status>>,
}

/// One commit status as set.
#[derive(Debug, Clone)]
struct Status {
    id: u64,
    context: String,
    state: String,
    target_url: String,
    description: String,
}

struct World {
    repos: BTreeMap<String, Repo>,
    fault: Option<Fault>,
    counts: Counts,
    next_id: u64,
    clock: u64,
    /// When the rate-limit windows reset (seconds since the epoch).
    reset_at: u64,
    /// The token a request must carry, when set.
    token: Option<String>,
}

/// The stand-in. Dropping it stops the server.
pub struct GitHubApi {
    server: StandIn,
    world: Arc<Mutex<World>>,
}

impl GitHubApi {
    /// Binds 127.0.0.1 on a free port and starts serving an empty world that takes any token.
    pub fn start() -> GitHubApi {
        let world = Arc::new(Mutex::new(World {
            repos: BTreeMap::new(),
            fault: None,
            counts: Counts::default(),
            next_id: 1000,
            clock: 0,
            reset_at: now_secs() + 3600,
            token: None,
        }));
        let served = world.clone();
        let server = StandIn::start("github-api", move |request, reply| {
            answer(&served, request, reply)
        });
        GitHubApi { server, world }
    }

    /// `http://127.0.0.1:PORT`: the plugin's `api_url`.
    pub fn api_url(&self) -> String {
        self.server.base_url()
    }

    /// The GraphQL endpoint (`api_url` + `/graphql`, as on github.com).
    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.server.base_url())
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// Waits until `done` holds for the recorded requests, or `timeout` passes.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[RecordedRequest]) -> bool) -> bool {
        self.server.wait_for(timeout, done)
    }

    /// What each API counted so far.
    pub fn counts(&self) -> Counts {
        self.world().counts
    }

    /// Refuses (401) every request without `Authorization: Bearer TOKEN` from now on.
    pub fn require_token(&self, token: &str) {
        self.world().token = Some(token.into());
    }

    /// Makes every answer from now on fail as `fault` says; `None` answers normally again.
    pub fn fault(&self, fault: Option<Fault>) {
        self.world().fault = fault;
    }

    /// Opens a pull request from `branch` (of `repo`, `owner/name`) at `head_sha` into `main`;
    /// returns its number.
    pub fn open_pull(&self, repo: &str, branch: &str, head_sha: &str, title: &str) -> u64 {
        let mut world = self.world();
        let updated = world.tick();
        let repo = world.repos.entry(repo.into()).or_default();
        let number = repo.pulls.len() as u64 + 1;
        repo.pulls.push(Pull {
            number,
            title: title.into(),
            branch: branch.into(),
            head_sha: head_sha.into(),
            base: "main".into(),
            state: "open".into(),
            merged: false,
            draft: false,
            mergeable: Some(true),
            review_decision: None,
            reviews: Vec::new(),
            threads: Vec::new(),
            updated,
        });
        number
    }

    /// Changes pull request `number` of `repo` (a push, a conflict, a decision, a merge…).
    pub fn update_pull(&self, repo: &str, number: u64, change: impl FnOnce(&mut Pull)) {
        let mut world = self.world();
        let updated = world.tick();
        let pull = world.pull_mut(repo, number);
        change(pull);
        pull.updated = updated;
    }

    /// Opens a pull request from `branch` at the commit `origin` has for it, as an agent's
    /// `gh pr create` after its push, once the push arrived (within `timeout`); returns its
    /// number and head.
    pub fn open_pull_when_pushed(
        &self,
        repo: &str,
        origin: &BareOrigin,
        branch: &str,
        timeout: Duration,
    ) -> (u64, String) {
        let deadline = std::time::Instant::now() + timeout;
        let head = loop {
            if let Some(head) = origin.head_of(branch) {
                break head;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{branch} was not pushed to {} within {timeout:?}",
                origin.path.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        (self.open_pull(repo, branch, &head, branch), head)
    }

    /// Moves each open pull request of `repo` to the commit `origin` has for its branch (a
    /// push updates its pull request); returns the numbers that moved.
    pub fn sync_heads(&self, repo: &str, origin: &BareOrigin) -> Vec<u64> {
        let open: Vec<(u64, String, String)> = {
            let world = self.world();
            world
                .repos
                .get(repo)
                .map(|r| {
                    r.pulls
                        .iter()
                        .filter(|p| p.state == "open")
                        .map(|p| (p.number, p.branch.clone(), p.head_sha.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut moved = Vec::new();
        for (number, branch, head) in open {
            if let Some(pushed) = origin.head_of(&branch).filter(|pushed| *pushed != head) {
                self.update_pull(repo, number, |pull| pull.head_sha = pushed);
                moved.push(number);
            }
        }
        moved
    }

    /// Pull request `number` of `repo` as it stands.
    pub fn pull(&self, repo: &str, number: u64) -> Pull {
        self.world().pull_mut(repo, number).clone()
    }

    /// Marks pull request `number` merged, as a person merging it on the site.
    pub fn merge_pull(&self, repo: &str, number: u64) {
        self.update_pull(repo, number, |pull| {
            pull.state = "closed".into();
            pull.merged = true;
        });
    }

    /// Adds a review by `author` (`state` `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`) to pull
    /// request `number`, and sets its review decision to match a decisive one.
    pub fn add_review(&self, repo: &str, number: u64, author: &str, state: &str, body: &str) {
        let id = format!("PRR_{}", self.world().fresh_id());
        self.update_pull(repo, number, |pull| {
            if state == "APPROVED" || state == "CHANGES_REQUESTED" {
                pull.review_decision = Some(state.into());
            }
            pull.reviews.push(ReviewSpec {
                id,
                author: author.into(),
                state: state.into(),
                body: body.into(),
            });
        });
    }

    /// Opens a review thread on `path:line` of pull request `number` with one comment; returns
    /// the thread's id.
    pub fn add_thread(
        &self,
        repo: &str,
        number: u64,
        (path, line): (&str, u32),
        author: &str,
        body: &str,
    ) -> String {
        let (thread_id, comment_id) = {
            let mut world = self.world();
            (
                format!("PRRT_{}", world.fresh_id()),
                format!("PRRC_{}", world.fresh_id()),
            )
        };
        let id = thread_id.clone();
        self.update_pull(repo, number, |pull| {
            pull.threads.push(Thread {
                id,
                resolved: false,
                path: path.into(),
                line: Some(line),
                comments: vec![CommentSpec {
                    id: comment_id,
                    author: author.into(),
                    body: body.into(),
                }],
            })
        });
        thread_id
    }

    /// Resolves review thread `thread_id` of pull request `number`.
    pub fn resolve_thread(&self, repo: &str, number: u64, thread_id: &str) {
        self.update_pull(repo, number, |pull| {
            for thread in &mut pull.threads {
                if thread.id == thread_id {
                    thread.resolved = true;
                }
            }
        });
    }

    /// Adds a run of a check on commit `sha` of `repo` (a re-run of a name already there
    /// replaces it in the listing, as GitHub lists the latest run); returns its id (also its
    /// job's id).
    pub fn add_check_run(&self, repo: &str, sha: &str, mut run: CheckRun) -> u64 {
        let mut world = self.world();
        run.id = world.fresh_id();
        let id = run.id;
        world
            .repos
            .entry(repo.into())
            .or_default()
            .check_runs
            .entry(sha.into())
            .or_default()
            .push(run);
        id
    }

    /// Sets a commit status (the API other CI services use): `state` is `pending`, `success`,
    /// `failure` or `error`.
    pub fn set_status(&self, repo: &str, sha: &str, context: &str, state: &str, description: &str) {
        let mut world = self.world();
        let id = world.fresh_id();
        world
            .repos
            .entry(repo.into())
            .or_default()
            .statuses
            .entry(sha.into())
            .or_default()
            .push(Status {
                id,
                context: context.into(),
                state: state.into(),
                target_url: format!("https://ci.example.com/{repo}/{id}"),
                description: description.into(),
            });
    }

    /// Sets whether pull request `number` merges cleanly without touching it otherwise: its
    /// base moved, which changes neither its update time nor the pull request list.
    pub fn set_mergeable_quietly(&self, repo: &str, number: u64, mergeable: Option<bool>) {
        self.world().pull_mut(repo, number).mergeable = mergeable;
    }

    /// A webhook delivery's payload for pull request `number` of `repo` as it stands: the
    /// `pull_request` event's shape (`action`, `number`, `pull_request`, `repository`).
    pub fn pull_request_payload(&self, repo: &str, number: u64, action: &str) -> Value {
        let mut world = self.world();
        let pull = world.pull_mut(repo, number).clone();
        json!({
            "action": action,
            "number": number,
            "pull_request": rest_pull(repo, &pull, true),
            "repository": { "full_name": repo },
        })
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }
}

impl World {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn pull_mut(&mut self, repo: &str, number: u64) -> &mut Pull {
        self.repos
            .get_mut(repo)
            .and_then(|r| r.pulls.iter_mut().find(|p| p.number == number))
            .unwrap_or_else(|| panic!("the stand-in has no pull request {repo}#{number}"))
    }

    /// The latest run of each check on `sha`, in the order their names first appeared.
    fn latest_runs(&self, repo: &str, sha: &str) -> Vec<CheckRun> {
        let runs = self
            .repos
            .get(repo)
            .and_then(|r| r.check_runs.get(sha))
            .cloned()
            .unwrap_or_default();
        let mut latest: Vec<CheckRun> = Vec::new();
        for run in runs {
            match latest.iter_mut().find(|r| r.name == run.name) {
                Some(slot) => *slot = run,
                None => latest.push(run),
            }
        }
        latest
    }

    fn run(&self, repo: &str, id: u64) -> Option<CheckRun> {
        self.repos
            .get(repo)?
            .check_runs
            .values()
            .flatten()
            .find(|r| r.id == id)
            .cloned()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Which rate limit a request counts against.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Rest,
    GraphQl,
}

/// An answer before the rate-limit and ETag headers are added.
struct Answer {
    status: u16,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer {
            status: 200,
            body,
            headers: Vec::new(),
        }
    }

    fn error(status: u16, message: &str) -> Answer {
        Answer {
            status,
            body: json!({
                "message": message,
                "documentation_url": "https://docs.github.com/rest",
                "status": status.to_string(),
            }),
            headers: Vec::new(),
        }
    }
}

fn answer(
    world: &Mutex<World>,
    request: &RecordedRequest,
    reply: &mut Reply,
) -> std::io::Result<()> {
    // The blob store the logs endpoint redirects to: no token, no API limit.
    if let Some(id) = request.path.strip_prefix("/_logs/") {
        let mut world = world.lock().unwrap();
        world.counts.log_downloads += 1;
        let log = id.parse().ok().and_then(|id| {
            world
                .repos
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .iter()
                .find_map(|repo| world.run(repo, id))
                .and_then(|run| run.log)
        });
        return match log {
            Some(log) => reply.raw(
                200,
                &[("content-type", "text/plain".into())],
                log.into_bytes(),
            ),
            None => reply.raw(404, &[], b"The specified blob does not exist.".to_vec()),
        };
    }
    let api = if request.path == "/graphql" {
        Api::GraphQl
    } else {
        Api::Rest
    };
    let fault = world.lock().unwrap().fault.clone();
    if let Some(Fault::Slow(delay)) = fault {
        std::thread::sleep(delay);
    }
    let mut world = world.lock().unwrap();
    let authorized = match &world.token {
        Some(token) => request.header("authorization") == Some(&format!("Bearer {token}")),
        None => request.header("authorization").is_some(),
    };
    let free = request.path == "/rate_limit";
    let answer = match fault {
        _ if !authorized => Answer::error(401, "Bad credentials"),
        Some(Fault::Unauthorized) => Answer::error(401, "Bad credentials"),
        Some(Fault::RateLimited { reset_in_secs }) if api == Api::GraphQl => {
            // GraphQL says it in a successful answer's errors.
            world.reset_at = now_secs() + reset_in_secs;
            Answer {
                status: 200,
                body: json!({ "errors": [{
                    "type": "RATE_LIMITED",
                    "code": "graphql_rate_limit",
                    "message": "API rate limit exceeded for user ID 1.",
                }] }),
                headers: vec![("x-ratelimit-remaining", "0".into())],
            }
        }
        Some(Fault::RateLimited { reset_in_secs }) => {
            world.reset_at = now_secs() + reset_in_secs;
            let mut answer = Answer::error(
                403,
                "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.",
            );
            answer.headers.push(("x-ratelimit-remaining", "0".into()));
            answer
        }
        Some(Fault::ServerError) => Answer::error(502, "Server Error"),
        Some(Fault::SecondaryRateLimit) => Answer::error(
            403,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        ),
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut answer = Answer::error(
                429,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            answer
                .headers
                .push(("retry-after", retry_after_secs.to_string()));
            answer
        }
        _ if api == Api::GraphQl => graphql(&mut world, request),
        _ => rest(&mut world, request),
    };
    // The location of a redirect is absolute, as GitHub's.
    let location = answer
        .headers
        .iter()
        .find(|(name, _)| *name == "location")
        .map(|(_, value)| value.clone());
    let mut headers: Vec<(&str, String)> = answer
        .headers
        .iter()
        .filter(|(name, _)| *name != "location")
        .map(|(name, value)| (*name, value.clone()))
        .collect();
    if let Some(location) = location {
        let host = request.header("host").unwrap_or("127.0.0.1");
        headers.push(("location", format!("http://{host}{location}")));
    }
    let body = match (&fault, answer.status) {
        (Some(Fault::Malformed), 200) => {
            b"{\"total_count\": 1, \"check_runs\": [{\"id\": ".to_vec()
        }
        (Some(Fault::Huge { bytes }), 200) => {
            let padding = "x".repeat(bytes.saturating_sub(20));
            format!("{{\"padding\": \"{padding}\"}}").into_bytes()
        }
        (_, 302) => Vec::new(),
        _ => serde_json::to_vec(&answer.body).unwrap(),
    };
    let etag = format!("W/\"{:016x}\"", fnv(&body));
    let not_modified = request.method == "GET"
        && answer.status == 200
        && request.header("if-none-match") == Some(etag.as_str());
    let counts = !free && !not_modified && answer.status != 401;
    match (api, counts, not_modified) {
        (Api::Rest, true, _) => world.counts.rest += 1,
        (Api::Rest, false, true) => world.counts.rest_not_modified += 1,
        (Api::GraphQl, true, _) => world.counts.graphql += 1,
        _ => {}
    }
    let used = match api {
        Api::Rest => world.counts.rest,
        Api::GraphQl => world.counts.graphql,
    };
    if !headers
        .iter()
        .any(|(name, _)| *name == "x-ratelimit-remaining")
    {
        headers.push((
            "x-ratelimit-remaining",
            LIMIT_PER_HOUR.saturating_sub(used).to_string(),
        ));
    }
    headers.extend([
        ("x-ratelimit-limit", LIMIT_PER_HOUR.to_string()),
        ("x-ratelimit-used", used.to_string()),
        ("x-ratelimit-reset", world.reset_at.to_string()),
        (
            "x-ratelimit-resource",
            match api {
                Api::Rest => "core",
                Api::GraphQl => "graphql",
            }
            .to_string(),
        ),
        ("x-github-request-id", "STANDIN:0001".to_string()),
    ]);
    drop(world);
    if not_modified {
        headers.push(("etag", etag));
        return reply.raw(304, &headers, Vec::new());
    }
    if answer.status == 200 && request.method == "GET" {
        headers.push(("etag", etag));
    }
    if !body.is_empty() {
        headers.push(("content-type", "application/json; charset=utf-8".into()));
    }
    reply.raw(answer.status, &headers, body)
}

/// FNV-1a over `bytes`: the ETag of a body.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn query_param<'a>(request: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    request
        .query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn rest(world: &mut World, request: &RecordedRequest) -> Answer {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["rate_limit"]) => Answer::ok(json!({
            "resources": {
                "core": { "limit": LIMIT_PER_HOUR, "remaining": LIMIT_PER_HOUR - world.counts.rest, "reset": world.reset_at },
                "graphql": { "limit": LIMIT_PER_HOUR, "remaining": LIMIT_PER_HOUR - world.counts.graphql, "reset": world.reset_at },
            }
        })),
        ("GET", ["user"]) => Answer::ok(json!({ "login": "ao-standin", "id": 1 })),
        ("GET", ["repos", owner, name, "pulls"]) => {
            let repo = format!("{owner}/{name}");
            let state = query_param(request, "state").unwrap_or("open");
            let head = query_param(request, "head").map(|h| h.replace("%3A", ":"));
            let per_page = query_param(request, "per_page")
                .and_then(|n| n.parse().ok())
                .unwrap_or(30usize);
            let mut pulls: Vec<&Pull> = world
                .repos
                .get(&repo)
                .map(|r| r.pulls.iter().collect())
                .unwrap_or_default();
            pulls.retain(|p| state == "all" || p.state == state);
            if let Some(head) = head {
                pulls.retain(|p| format!("{owner}:{}", p.branch) == head);
            }
            pulls.sort_by_key(|p| std::cmp::Reverse(p.updated));
            pulls.truncate(per_page);
            Answer::ok(Value::Array(
                pulls.iter().map(|p| rest_pull(&repo, p, false)).collect(),
            ))
        }
        ("GET", ["repos", owner, name, "pulls", number]) => {
            let repo = format!("{owner}/{name}");
            match find_pull(world, &repo, number) {
                Some(pull) => Answer::ok(rest_pull(&repo, pull, true)),
                None => Answer::error(404, "Not Found"),
            }
        }
        ("PUT", ["repos", owner, name, "pulls", number, "merge"]) => {
            let repo = format!("{owner}/{name}");
            let sha = request.body["sha"].as_str().map(str::to_string);
            let tick = world.tick();
            let Some(pull) = world
                .repos
                .get_mut(&repo)
                .and_then(|r| r.pulls.iter_mut().find(|p| p.number.to_string() == *number))
            else {
                return Answer::error(404, "Not Found");
            };
            if pull.state != "open" {
                return Answer::error(405, "Pull Request is not mergeable");
            }
            if sha.is_some_and(|sha| sha != pull.head_sha) {
                return Answer::error(
                    409,
                    "Head branch was modified. Review and try the merge again.",
                );
            }
            if pull.mergeable != Some(true) {
                return Answer::error(405, "Pull Request is not mergeable");
            }
            pull.state = "closed".into();
            pull.merged = true;
            pull.updated = tick;
            Answer::ok(json!({
                "sha": format!("merge-of-{}", pull.head_sha),
                "merged": true,
                "message": "Pull Request successfully merged",
            }))
        }
        ("GET", ["repos", owner, name, "commits", sha, "check-runs"]) => {
            let repo = format!("{owner}/{name}");
            let runs = world.latest_runs(&repo, sha);
            Answer::ok(json!({
                "total_count": runs.len(),
                "check_runs": runs.iter().map(|run| rest_check_run(&repo, sha, run)).collect::<Vec<_>>(),
            }))
        }
        ("GET", ["repos", owner, name, "commits", sha, "status"]) => {
            let repo = format!("{owner}/{name}");
            let mut latest: Vec<&Status> = Vec::new();
            let all = world.repos.get(&repo).and_then(|r| r.statuses.get(*sha));
            for status in all.into_iter().flatten().rev() {
                if !latest.iter().any(|known| known.context == status.context) {
                    latest.push(status);
                }
            }
            Answer::ok(json!({
                "sha": sha,
                "state": "pending",
                "total_count": latest.len(),
                "statuses": latest.iter().map(|status| json!({
                    "id": status.id,
                    "context": status.context,
                    "state": status.state,
                    "target_url": status.target_url,
                    "description": status.description,
                })).collect::<Vec<_>>(),
            }))
        }
        ("GET", ["repos", owner, name, "check-runs", id, "annotations"]) => {
            let repo = format!("{owner}/{name}");
            match id.parse().ok().and_then(|id| world.run(&repo, id)) {
                Some(run) => Answer::ok(Value::Array(
                    run.annotations
                        .iter()
                        .map(|message| {
                            json!({
                                "path": ".github",
                                "annotation_level": "failure",
                                "title": "",
                                "message": message,
                            })
                        })
                        .collect(),
                )),
                None => Answer::error(404, "Not Found"),
            }
        }
        ("GET", ["repos", owner, name, "actions", "jobs", id, "logs"]) => {
            let repo = format!("{owner}/{name}");
            match id.parse().ok().and_then(|id| world.run(&repo, id)) {
                Some(run) if run.log.is_some() => Answer {
                    status: 302,
                    body: Value::Null,
                    headers: vec![("location", format!("/_logs/{}", run.id))],
                },
                Some(_) => Answer::error(410, "Gone: the job has no logs"),
                None => Answer::error(404, "Not Found"),
            }
        }
        _ => Answer::error(404, "Not Found"),
    }
}

fn find_pull<'w>(world: &'w World, repo: &str, number: &str) -> Option<&'w Pull> {
    world
        .repos
        .get(repo)?
        .pulls
        .iter()
        .find(|p| p.number.to_string() == number)
}

fn rest_pull(repo: &str, pull: &Pull, detailed: bool) -> Value {
    let owner = repo.split('/').next().unwrap_or_default();
    let mut value = json!({
        "number": pull.number,
        "node_id": format!("PR_{}", pull.number),
        "html_url": format!("https://github.com/{repo}/pull/{}", pull.number),
        "title": pull.title,
        "state": pull.state,
        "draft": pull.draft,
        "merged_at": pull.merged.then_some("2026-01-01T00:00:00Z"),
        "updated_at": format!("2026-01-01T00:00:{:02}Z", pull.updated % 60),
        "head": {
            "ref": pull.branch,
            "sha": pull.head_sha,
            "label": format!("{owner}:{}", pull.branch),
            "repo": { "full_name": repo },
        },
        "base": { "ref": pull.base, "repo": { "full_name": repo } },
    });
    if detailed {
        value["merged"] = json!(pull.merged);
        value["mergeable"] = json!(pull.mergeable);
        value["mergeable_state"] = json!(match pull.mergeable {
            Some(true) => "clean",
            Some(false) => "dirty",
            None => "unknown",
        });
    }
    value
}

fn rest_check_run(repo: &str, sha: &str, run: &CheckRun) -> Value {
    json!({
        "id": run.id,
        "node_id": format!("CR_{}", run.id),
        "head_sha": sha,
        "name": run.name,
        "status": run.status,
        "conclusion": run.conclusion,
        "html_url": format!("https://github.com/{repo}/actions/runs/1/job/{}", run.id),
        "details_url": format!("https://github.com/{repo}/actions/runs/1/job/{}", run.id),
        "output": {
            "title": null,
            "summary": null,
            "text": null,
            "annotations_count": run.annotations.len(),
        },
        "app": { "slug": "github-actions" },
    })
}

/// Answers the `ALIAS: pullRequest(number: N)` fields of a GraphQL query with whole pull
/// requests; an unknown number is `null` with a `NOT_FOUND` error, as GitHub answers.
fn graphql(world: &mut World, request: &RecordedRequest) -> Answer {
    let Some(query) = request.body["query"].as_str() else {
        return Answer::ok(
            json!({ "errors": [{ "message": "A query attribute must be specified and must be a string." }] }),
        );
    };
    let variables = &request.body["variables"];
    let repo = format!(
        "{}/{}",
        variables["owner"].as_str().unwrap_or_default(),
        variables["name"].as_str().unwrap_or_default()
    );
    let mut answered = serde_json::Map::new();
    let mut errors = Vec::new();
    for (alias, number) in pull_request_fields(query) {
        match find_pull(world, &repo, &number.to_string()) {
            Some(pull) => {
                answered.insert(alias, graphql_pull(&repo, pull));
            }
            None => {
                errors.push(json!({
                    "type": "NOT_FOUND",
                    "path": ["repository", alias],
                    "message": format!("Could not resolve to a PullRequest with the number of {number}."),
                }));
                answered.insert(alias, Value::Null);
            }
        }
    }
    let repository = if world.repos.contains_key(&repo) {
        Value::Object(answered)
    } else {
        errors.push(json!({
            "type": "NOT_FOUND",
            "path": ["repository"],
            "message": format!("Could not resolve to a Repository with the name '{repo}'."),
        }));
        Value::Null
    };
    let mut body = json!({ "data": { "repository": repository } });
    if !errors.is_empty() {
        body["errors"] = Value::Array(errors);
    }
    Answer::ok(body)
}

/// `(alias, number)` of each `alias: pullRequest(number: N)` in `query`.
fn pull_request_fields(query: &str) -> Vec<(String, u64)> {
    let mut fields = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("pullRequest(number:") {
        let before = rest[..at].trim_end().trim_end_matches(':').trim_end();
        let alias = before
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or_default()
            .to_string();
        let after = &rest[at + "pullRequest(number:".len()..];
        let digits: String = after
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(number) = digits.parse() {
            fields.push((alias, number));
        }
        rest = after;
    }
    fields
}

fn graphql_pull(repo: &str, pull: &Pull) -> Value {
    json!({
        "number": pull.number,
        "id": format!("PR_{}", pull.number),
        "url": format!("https://github.com/{repo}/pull/{}", pull.number),
        "title": pull.title,
        "headRefName": pull.branch,
        "headRefOid": pull.head_sha,
        "state": match (pull.state.as_str(), pull.merged) {
            (_, true) => "MERGED",
            ("open", _) => "OPEN",
            _ => "CLOSED",
        },
        "isDraft": pull.draft,
        "mergeable": match pull.mergeable {
            Some(true) => "MERGEABLE",
            Some(false) => "CONFLICTING",
            None => "UNKNOWN",
        },
        "reviewDecision": pull.review_decision,
        "reviews": {
            "nodes": pull.reviews.iter().map(|review| json!({
                "id": review.id,
                "author": { "login": review.author },
                "state": review.state,
                "body": review.body,
                "url": format!("https://github.com/{repo}/pull/{}#pullrequestreview-{}", pull.number, review.id),
            })).collect::<Vec<_>>(),
        },
        "reviewThreads": {
            "nodes": pull.threads.iter().map(|thread| json!({
                "id": thread.id,
                "isResolved": thread.resolved,
                "path": thread.path,
                "line": thread.line,
                "comments": {
                    "nodes": thread.comments.iter().map(|comment| json!({
                        "id": comment.id,
                        "author": { "login": comment.author },
                        "body": comment.body,
                        "path": thread.path,
                        "line": thread.line,
                        "url": format!("https://github.com/{repo}/pull/{}#discussion_{}", pull.number, comment.id),
                    })).collect::<Vec<_>>(),
                },
            })).collect::<Vec<_>>(),
        },
    })
}

/// `sha256=<hex>`: the `X-Hub-Signature-256` GitHub sends for `body` signed with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A webhook delivery to send: GitHub's headers around a JSON payload.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `X-GitHub-Event`: `pull_request`, `check_run`, `push`, …
    pub event: String,
    /// `X-GitHub-Delivery`: a fresh id per delivery (a replay repeats one).
    pub id: String,
    /// The body, byte-exact.
    pub body: Vec<u8>,
    /// `X-Hub-Signature-256`, or none.
    pub signature: Option<String>,
}

impl Delivery {
    /// A delivery of `payload` as `event`, signed with `secret`.
    pub fn signed(event: &str, id: &str, payload: &Value, secret: &str) -> Delivery {
        let body = serde_json::to_vec(payload).unwrap();
        Delivery {
            event: event.into(),
            id: id.into(),
            signature: Some(signature(secret, &body)),
            body,
        }
    }

    /// The same delivery with a signature made with the wrong secret.
    pub fn wrongly_signed(mut self) -> Delivery {
        self.signature = Some(signature("not-the-secret", &self.body));
        self
    }

    /// Its headers, names in lower case, as a receiver sees them.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![
            ("x-github-event".to_string(), self.event.clone()),
            ("x-github-delivery".to_string(), self.id.clone()),
            ("content-type".to_string(), "application/json".to_string()),
            (
                "user-agent".to_string(),
                "GitHub-Hookshot/standin".to_string(),
            ),
        ];
        if let Some(signature) = &self.signature {
            headers.push(("x-hub-signature-256".to_string(), signature.clone()));
        }
        headers
    }

    /// The delivery as the webhook receiver hands it to an scm plugin.
    pub fn to_webhook_delivery(&self) -> WebhookDelivery {
        WebhookDelivery {
            headers: self
                .headers()
                .into_iter()
                .map(|(name, value)| WebhookHeader {
                    name: name.into(),
                    value: value.into(),
                })
                .collect(),
            body: self.body.clone().into(),
        }
    }

    /// POSTs it to `address` (`HOST:PORT`) at `path`, as GitHub does; returns the status code.
    pub fn send(&self, address: &str, path: &str) -> std::io::Result<u16> {
        let mut stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut head = format!("POST {path} HTTP/1.1\r\nhost: {address}\r\n");
        for (name, value) in self.headers() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            self.body.len()
        ));
        stream.write_all(head.as_bytes())?;
        stream.write_all(&self.body)?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {response:?}")))
    }
}

/// A local bare repository standing in for GitHub's copy of `slug` (`owner/name`): a clone's
/// `origin` says `https://github.com/<slug>.git` (what the plugin parses), and git's
/// `url.<bare>.insteadOf` in the clone's config sends its pushes and fetches to the bare
/// repository.
pub struct BareOrigin {
    /// The bare repository.
    pub path: PathBuf,
    /// `https://github.com/<slug>.git`.
    pub url: String,
}

impl BareOrigin {
    /// Makes a bare repository under `dir` for `slug`, and points `clone`'s `origin` at it as
    /// described above, pushing `clone`'s `main` there.
    pub fn create(dir: &Path, slug: &str, clone: &Path) -> BareOrigin {
        let path = dir.join(format!("{}.git", slug.replace('/', "-")));
        crate::git(
            dir,
            &["init", "-q", "--bare", "-b", "main", path.to_str().unwrap()],
        );
        let url = format!("https://github.com/{slug}.git");
        crate::git(clone, &["remote", "add", "origin", &url]);
        crate::git(
            clone,
            &["config", &format!("url.{}.insteadOf", path.display()), &url],
        );
        crate::git(clone, &["push", "-q", "origin", "main"]);
        BareOrigin { path, url }
    }

    /// The commit `branch` points at in the bare repository, if it was pushed.
    pub fn head_of(&self, branch: &str) -> Option<String> {
        let output = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&self.path)
            .args([
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{branch}"),
            ])
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_get(
        api: &GitHubApi,
        path: &str,
        etag: Option<&str>,
    ) -> (u16, Vec<(String, String)>, Value) {
        let mut stream = TcpStream::connect(("127.0.0.1", api.server.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let condition = etag
            .map(|e| format!("if-none-match: {e}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer t\r\n{condition}connection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(": "))
            .map(|(n, v)| (n.to_lowercase(), v.to_string()))
            .collect();
        (
            status,
            headers,
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    #[test]
    fn an_unchanged_listing_is_a_free_304_and_a_change_a_new_etag() {
        let api = GitHubApi::start();
        api.open_pull("o/r", "feat", "aaa", "Feature");
        let (status, headers, body) = api_get(&api, "/repos/o/r/pulls?state=all", None);
        assert_eq!(status, 200);
        assert_eq!(body[0]["head"]["ref"], "feat");
        let etag = header(&headers, "etag").to_string();
        assert_eq!(header(&headers, "x-ratelimit-resource"), "core");
        let (status, _, _) = api_get(&api, "/repos/o/r/pulls?state=all", Some(&etag));
        assert_eq!(status, 304);
        api.update_pull("o/r", 1, |pull| pull.head_sha = "bbb".into());
        let (status, headers, _) = api_get(&api, "/repos/o/r/pulls?state=all", Some(&etag));
        assert_eq!(status, 200);
        assert_ne!(header(&headers, "etag"), etag);
        assert_eq!(
            api.counts(),
            Counts {
                rest: 2,
                rest_not_modified: 1,
                graphql: 0,
                log_downloads: 0
            }
        );
    }

    #[test]
    fn a_rate_limit_fault_says_remaining_0_and_the_reset() {
        let api = GitHubApi::start();
        api.fault(Some(Fault::RateLimited { reset_in_secs: 60 }));
        let (status, headers, _) = api_get(&api, "/user", None);
        assert_eq!(status, 403);
        assert_eq!(header(&headers, "x-ratelimit-remaining"), "0");
        let reset: u64 = header(&headers, "x-ratelimit-reset").parse().unwrap();
        assert!(reset > now_secs() && reset <= now_secs() + 60);
    }

    #[test]
    fn a_delivery_arrives_signed_byte_exact_and_a_replay_repeats_its_id() {
        let receiver = StandIn::start("webhook-receiver", |_, reply| {
            reply.raw(204, &[], Vec::new())
        });
        let address = format!("127.0.0.1:{}", receiver.port());
        let payload = json!({ "ref": "refs/heads/ao/one", "text": "é\u{0}" });
        let delivery = Delivery::signed("push", "d-1", &payload, "s3cret");
        assert_eq!(delivery.send(&address, "/hooks/github").unwrap(), 204);
        assert_eq!(delivery.send(&address, "/hooks/github").unwrap(), 204);
        assert_eq!(
            delivery
                .clone()
                .wrongly_signed()
                .send(&address, "/hooks/github")
                .unwrap(),
            204
        );
        let received = receiver.requests();
        assert_eq!(received.len(), 3);
        assert_eq!(received[0].path, "/hooks/github");
        assert_eq!(received[0].raw_body, delivery.body);
        assert_eq!(received[0].header("x-github-event"), Some("push"));
        assert_eq!(received[1].header("x-github-delivery"), Some("d-1"));
        assert_eq!(
            received[0].header("x-hub-signature-256"),
            Some(signature("s3cret", &delivery.body).as_str())
        );
        assert_ne!(
            received[2].header("x-hub-signature-256"),
            received[0].header("x-hub-signature-256")
        );
    }

    #[test]
    fn a_worktree_pushes_to_the_bare_origin_while_origin_still_names_the_slug() {
        let scratch = tempfile::tempdir().unwrap();
        let clone = scratch.path().join("clone");
        crate::init_repo(&clone);
        let origin = BareOrigin::create(scratch.path(), "octo/widgets", &clone);
        assert_eq!(
            crate::git(&clone, &["config", "--get", "remote.origin.url"]),
            "https://github.com/octo/widgets.git"
        );
        let worktree = scratch.path().join("wt");
        crate::git(
            &clone,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                "ao/one",
                worktree.to_str().unwrap(),
            ],
        );
        std::fs::write(worktree.join("f"), "x").unwrap();
        crate::git(&worktree, &["add", "f"]);
        crate::git(&worktree, &["commit", "-q", "-m", "work"]);
        crate::git(&worktree, &["push", "-q", "-u", "origin", "ao/one"]);
        let first = crate::git(&worktree, &["rev-parse", "HEAD"]);
        assert_eq!(origin.head_of("ao/one"), Some(first.clone()));
        let api = GitHubApi::start();
        let (number, head) =
            api.open_pull_when_pushed("octo/widgets", &origin, "ao/one", Duration::from_secs(5));
        assert_eq!(head, first);
        assert!(api.sync_heads("octo/widgets", &origin).is_empty());
        std::fs::write(worktree.join("f"), "y").unwrap();
        crate::git(&worktree, &["commit", "-q", "-am", "more"]);
        crate::git(&worktree, &["push", "-q"]);
        assert_eq!(api.sync_heads("octo/widgets", &origin), vec![number]);
        assert_eq!(
            api.pull("octo/widgets", number).head_sha,
            crate::git(&worktree, &["rev-parse", "HEAD"])
        );
    }

    #[test]
    fn the_signature_is_githubs_hmac_sha256() {
        // GitHub's documented example: secret "It's a Secret to Everybody", payload "Hello, World!".
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn pull_request_fields_reads_aliases_and_numbers() {
        assert_eq!(
            pull_request_fields("query { repository(owner: $o) { pr1: pullRequest(number: 1) { id } pr22 : pullRequest(number:22) { id } } }"),
            vec![("pr1".to_string(), 1), ("pr22".to_string(), 22)]
        );
    }
}
