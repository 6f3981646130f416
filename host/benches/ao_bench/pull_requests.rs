//! Pull requests, CI and reviews: what watching costs against GitHub's rate limits, and how
//! soon a CI failure reaches an idle agent.
//!
//! The watcher (`ao_core::watch::Watcher`, as `ao-host watch` runs it) runs in this process
//! against the loopback GitHub stand-in (`support::github_api`), through the `github` plugin's
//! release library loaded like any plugin, for real sessions (tmux, git worktrees, the fake
//! agent). The stand-in counts the requests that count
//! against a limit, REST and GraphQL apart; a `304` is counted apart and costs nothing.
//!
//! Rates are measured in compressed time: every interval is divided by [`SCALE`] (polls every
//! second instead of every 30 s, reviews and the plugin's refresh every 4 s instead of 2 min),
//! so [`SIMULATED_HOUR`] of real time is one hour of the watcher's life at the defaults.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use ao_core::{
    config::Config,
    lifecycle::Lifecycle,
    watch::{PluginForges, Watcher, WebhookVerdict},
};

use crate::{
    measure::{median, ms},
    setup::{spawn_ok, SpawnSetup},
    support::{
        self,
        github_api::{CheckRun, Counts, Delivery, GitHubApi},
        init_repo, TmuxServer,
    },
};

/// The default intervals divided by this: poll 30 s → 1 s, reviews and refresh 120 s → 4 s.
const SCALE: u64 = 30;
/// One hour at the default intervals.
const SIMULATED_HOUR: Duration = Duration::from_secs(3600 / SCALE);
const REPO: &str = "o/r";
const TOKEN: &str = "ghp_bench";
const SECRET: &str = "bench-secret";
/// Idle open pull requests in the rate-limit rows.
const OPEN_PULLS: usize = 20;
/// CI failures timed per row.
const SAMPLES: usize = 3;

/// Real sessions of a project watched through the stand-in.
struct Watched {
    /// Kept for its tmux server, stopped when this is dropped.
    _setup: SpawnSetup,
    api: GitHubApi,
    watcher: Arc<Watcher>,
    log_dir: PathBuf,
}

/// `sessions` idle sessions, each with an open pull request whose one check passed.
fn watched(
    plugins: &[PathBuf],
    work: &Path,
    name: &str,
    sessions: usize,
    poll_secs: u64,
    reviews_secs: u64,
) -> Watched {
    let api = GitHubApi::start();
    let dir = work.join(name);
    let plugin_dir = dir.join("plugins");
    for p in plugins {
        support::install(p, &plugin_dir, None);
    }
    support::install(
        &support::build_workspace_plugin_release("ao-scm-github"),
        &plugin_dir,
        None,
    );
    let repo = dir.join("repo");
    init_repo(&repo);
    let log_dir = dir.join("agent-log");
    let tmux = TmuxServer::new();
    let agent = support::fake_agent_release();
    let github_settings = format!(
        "{{ api_url: {:?}, token: {TOKEN}, webhook_secret: {SECRET}, refresh_secs: {reviews_secs} }}",
        api.api_url()
    );
    let config = dir.join("ao-rs.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {:?}\nwatch: {{ poll_secs: {poll_secs}, reviews_secs: {reviews_secs} }}\nplugins:\n  dirs: [{:?}]\n  config:\n    tmux: {{ socket: {} }}\n    claude-code: {{ command: {:?}, env: {{ FAKE_AGENT_LOG: {:?} }} }}\n    github: {github_settings}\nprojects:\n  app: {{ repo: {:?}, default_branch: main, scm: github, scm_repository: {REPO} }}\n",
            dir.join("data").display().to_string(),
            plugin_dir.display().to_string(),
            tmux.socket,
            agent.display().to_string(),
            log_dir.display().to_string(),
            repo.display().to_string(),
        ),
    )
    .unwrap();
    let setup = SpawnSetup {
        dir,
        config,
        repo,
        agent,
        tmux,
    };
    for n in 1..=sessions {
        spawn_ok(&setup, &format!("task {n}"));
        let sha = commit(&setup.repo, n);
        api.open_pull(REPO, &format!("session/app-{n}"), &sha, &format!("PR {n}"));
        api.add_check_run(REPO, &sha, CheckRun::completed("build", "success", "ok"));
    }
    let config = Config::load(Some(&setup.config)).unwrap();
    let lifecycle = Arc::new(
        Lifecycle::open(config, &[])
            .unwrap()
            .with_event_program(PathBuf::from(env!("CARGO_BIN_EXE_ao-host"))),
    );
    let watcher = Arc::new(Watcher::new(
        Arc::clone(&lifecycle),
        PluginForges::shared(lifecycle),
    ));
    Watched {
        _setup: setup,
        api,
        watcher,
        log_dir,
    }
}

/// A new commit on session `n`'s branch, made in its worktree as its agent would: the
/// watcher takes a pull request for a session's only when its head is in the session's history.
fn commit(repo: &Path, n: usize) -> String {
    let branch = format!("branch refs/heads/session/app-{n}");
    let worktrees = support::git(repo, &["worktree", "list", "--porcelain"]);
    let worktree = worktrees
        .split("\n\n")
        .find(|entry| entry.lines().any(|line| line == branch))
        .and_then(|entry| entry.lines().next()?.strip_prefix("worktree "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no worktree of session app-{n}: {worktrees}"));
    support::git(&worktree, &["commit", "-q", "--allow-empty", "-m", "work"]);
    support::git(&worktree, &["rev-parse", "HEAD"])
        .trim()
        .to_string()
}

impl Watched {
    /// Requests counted while `watcher` polls every second for one simulated hour, with
    /// `change` run once every simulated minute; returns what was counted and the polls made.
    async fn hour(&self, mut change: impl FnMut(u64)) -> (Counts, u64) {
        let before = self.api.counts();
        let start = Instant::now();
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut polls = 0;
        while start.elapsed() < SIMULATED_HOUR {
            ticks.tick().await;
            if polls % 2 == 1 {
                change(polls);
            }
            self.watcher.poll_on_interval().await;
            polls += 1;
        }
        let after = self.api.counts();
        let counted = Counts {
            rest: after.rest - before.rest,
            rest_not_modified: after.rest_not_modified - before.rest_not_modified,
            graphql: after.graphql - before.graphql,
            log_downloads: after.log_downloads - before.log_downloads,
        };
        (counted, polls)
    }

    fn messages(&self, id: &str) -> usize {
        support::fake_messages(&self.log_dir.join(id)).len()
    }

    /// Fails CI on session `n`'s pull request with a new head commit.
    fn fail_ci(&self, n: usize) {
        let sha = commit(&self._setup.repo, n);
        self.api.add_check_run(
            REPO,
            &sha,
            CheckRun::completed("build", "failure", "error: boom"),
        );
        self.api
            .update_pull(REPO, n as u64, |pull| pull.head_sha = sha.clone());
    }

    /// Waits until session `n`'s agent has one more message than `before`; how long it took.
    async fn delivered(&self, n: usize, before: usize, since: Instant) -> Duration {
        let id = format!("app-{n}");
        while self.messages(&id) <= before {
            assert!(
                since.elapsed() < Duration::from_secs(120),
                "{id} never got its CI failure"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        since.elapsed()
    }
}

fn per_hour(count: u64, polls: u64) -> f64 {
    // Polls run a little slower than one a second; scaled to the 120 of an hour.
    count as f64 * (3600 / 30) as f64 / polls.max(1) as f64
}

fn row(what: &str, counted: Counts, polls: u64) {
    println!(
        "| {what} | {polls} | {:.0} | {:.0} | {:.0} | {:.0} |",
        per_hour(counted.rest, polls),
        per_hour(counted.graphql, polls),
        per_hour(counted.counted(), polls),
        per_hour(counted.rest_not_modified, polls),
    );
}

pub(crate) fn pull_requests(plugins: &[PathBuf], work: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("## Pull requests, CI and reviews\n");
    println!(
        "The watcher against the loopback GitHub stand-in, through the `github` plugin's release library, for \
         real idle sessions. Requests per hour that count against a rate limit (the stand-in \
         counts them; `304`s apart, free), measured over one hour compressed {SCALE}× (polls \
         every 1 s, reviews and the plugin's refresh every 4 s, for {} s; the first poll, which \
         fills the caches, is left out), scaled to 120 polls:\n",
        SIMULATED_HOUR.as_secs()
    );
    println!("| open PRs | polls | REST/h | GraphQL/h | counted/h | 304s/h (free) |");
    println!("|---|---:|---:|---:|---:|---:|");
    let budget = watched(plugins, work, "pr-budget", OPEN_PULLS, 1, 120 / SCALE);
    runtime.block_on(async {
        budget.watcher.poll().await;
        let (idle, polls) = budget.hour(|_| {}).await;
        row(&format!("{OPEN_PULLS} idle"), idle, polls);
        let (changing, polls) = budget
            .hour(|_| {
                let sha = commit(&budget._setup.repo, 1);
                budget
                    .api
                    .add_check_run(REPO, &sha, CheckRun::completed("build", "success", "ok"));
                budget
                    .api
                    .update_pull(REPO, 1, |pull| pull.head_sha = sha.clone());
            })
            .await;
        row(
            &format!("{OPEN_PULLS}, one pushed to every minute"),
            changing,
            polls,
        );
    });
    drop(budget);

    // Latency: a session whose CI fails while its agent is idle.
    let latency = watched(plugins, work, "pr-latency", 2 * SAMPLES, 30, 120);
    let (polled, hooked) = runtime.block_on(async {
        latency.watcher.poll().await;
        let mut polled = Vec::new();
        for n in 1..=SAMPLES {
            let before = latency.messages(&format!("app-{n}"));
            latency.fail_ci(n);
            let since = Instant::now();
            latency.watcher.poll_on_interval().await;
            polled.push(ms(latency.delivered(n, before, since).await));
        }
        // With a webhook: the watcher runs at the default 30 s interval; a verified delivery
        // wakes it, as `ao-host watch --webhook` does.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = {
            let watcher = Arc::clone(&latency.watcher);
            tokio::spawn(async move {
                watcher
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut hooked = Vec::new();
        for n in SAMPLES + 1..=2 * SAMPLES {
            let before = latency.messages(&format!("app-{n}"));
            latency.fail_ci(n);
            let since = Instant::now();
            let payload = latency
                .api
                .pull_request_payload(REPO, n as u64, "synchronize");
            let delivery =
                Delivery::signed("pull_request", &format!("bench-{n}"), &payload, SECRET);
            let verdict = latency
                .watcher
                .webhook(delivery.to_webhook_delivery())
                .await;
            assert!(
                matches!(verdict, WebhookVerdict::Accepted { .. }),
                "{verdict:?}"
            );
            hooked.push(ms(latency.delivered(n, before, since).await));
        }
        let _ = stop.send(());
        let _ = running.await;
        (polled, hooked)
    });
    let worst = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    println!(
        "\nFrom a CI failure to the message at an idle agent ({SAMPLES} failures each, on new \
         commits; the message is confirmed taken by the agent's own event):\n"
    );
    println!(
        "| how the watcher learns | pipeline median | pipeline max | expected at 30 s polling |"
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| polling (one poll, then delivery) | {:.0} ms | {:.0} ms | mean {:.1} s, worst {:.1} s |",
        median(polled.clone()),
        worst(&polled),
        15.0 + median(polled.clone()) / 1000.0,
        30.0 + worst(&polled) / 1000.0,
    );
    println!(
        "| webhook (verified, wakes a poll) | {:.0} ms | {:.0} ms | {:.1} s at most: no wait for a poll |",
        median(hooked.clone()),
        worst(&hooked),
        worst(&hooked) / 1000.0,
    );
    println!(
        "\nA failure lands anywhere in a 30 s poll interval: at most 30 s (15 s on average) \
         until the next poll, plus the pipeline measured here. A webhook starts that poll at \
         once; the HTTP receipt (`ao-host watch --webhook`) is not in these figures.\n"
    );
}
