//! The watcher: one poll asks each project's `scm` plugin about its live sessions' branches,
//! decides reactions ([`super::reactions`]), delivers them to idle agents, and stores what
//! listings show ([`super::view`]).
//!
//! One poll, per project with `scm:`: its live worker sessions (with their status as a listing
//! sees it) → one batched `pull_requests` question, asked with the last answer's validator so an
//! unchanged answer is free → `checks` of each open pull request's head (validator per commit)
//! → `reviews` of the open ones in one batch, every `watch.reviews_secs` (a webhook's wake too
//! waits for that floor) →
//! decisions, recorded in the session's ledger *before* anything is acted on, so a crash
//! decides nothing twice → notifications, merges, clean-ups → delivery of one queued reaction
//! per session whose agent is idle → the stored view.
//!
//! Delivery happens only at an idle prompt: while the agent works, waits for an answer or is
//! still spawning, reactions stay queued (listings show them); a session whose agent exited
//! holds them and the operator is told once (`pr_held`): nothing is typed into nothing. Typing
//! goes through [`Lifecycle::send`], which refuses a prompt that waits for an answer and
//! confirms the message was taken.
//!
//! A forge that says "wait" (`RateLimited`) is not asked again, for any project using that
//! plugin, until the window the plugin reports (`rate_limits`: `Retry-After`, else the reset of
//! the exhausted API, REST and GraphQL apart) has passed; that is logged once. Settings or a
//! token the forge refused (`Config`, a 401) back the plugin off for five minutes, logged once;
//! an unavailable forge (5xx) is asked again each poll, logged at most once a minute. Any other
//! failure is logged and asked again next poll: nothing decided is lost, since nothing is
//! decided without an answer.

use std::{
    collections::{BTreeSet, HashMap},
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use ao_plugin_api::{
    abi_stable::std_types::{ROption, RString},
    scm::{
        Check, ChecksQuery, Fetched, MergeRequest, Mergeability, PullRequest, PullRequestQuery,
        PullRequestState, RateLimit, ReviewDecision, ReviewFeedback, ReviewsQuery, ScmRepository,
        WebhookDelivery,
    },
};

use super::{
    forge::{Forge, ForgeError, ForgeErrorKind, Forges},
    ledger::{ChecksMemo, Ledger, Pending, ProjectMemo, PullRequestMemo},
    reactions::{ci_of, decide, Decision, Observed},
    sanitize,
    view::{PullRequestView, SessionWatch, WatchDir, WatcherBeat, SCHEMA},
};
use crate::{
    config::{ProjectConfig, ScmConfig},
    lifecycle::{
        events::run_notify, CommitsUnknown, DeliverError, Lifecycle, LifecycleError,
        WATCH_READ_BYTES,
    },
    session::{now_ms, Session, SessionRole, SessionStatus},
};

/// How long to wait for a forge that said "wait" without saying until when.
const DEFAULT_BACKOFF_MS: u64 = 60_000;
/// How long a plugin whose settings or token the forge refused is left alone: the operator has
/// to fix them, and asking every poll would only repeat the refusal in the log.
const CONFIG_BACKOFF_MS: u64 = 5 * 60_000;
/// The least time between the start of a poll and a poll a webhook woke: deliveries come in
/// bursts (a push, its checks, their statuses), and one poll answers them all.
const WAKE_GAP: Duration = Duration::from_secs(1);
/// How often an unavailable forge (5xx) is logged per plugin, though it is asked every poll.
const UNAVAILABLE_LOG_EVERY_MS: u64 = 60_000;

/// The watcher of one data dir (hold its [`super::lock::WatcherLock`] while it runs).
pub struct Watcher {
    lifecycle: Arc<Lifecycle>,
    forges: Arc<dyn Forges>,
    dir: WatchDir,
    started_at_ms: u64,
    /// Per scm plugin: no request before this time (ms since the epoch).
    backoff: Mutex<HashMap<String, u64>>,
    /// Per scm plugin: when its forge being unavailable was last logged (ms since the epoch).
    unavailable_logged: Mutex<HashMap<String, u64>>,
    /// Per project: when its reviews were last fetched (ms since the epoch).
    reviews_at: Mutex<HashMap<String, u64>>,
    /// Rings when a webhook delivery asks for a poll now.
    wake: tokio::sync::Notify,
    /// The branches the deliveries since the last poll named; `None` for all of them.
    woken_for: Mutex<Option<BTreeSet<String>>>,
}

/// What one poll did, for `watch --once` and the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    /// Reactions typed to agents.
    pub delivered: usize,
    /// Notifications run.
    pub notified: usize,
    /// What could not be asked or done, one line each (also logged).
    pub problems: Vec<String>,
}

/// What became of a webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookVerdict {
    /// Verified and new: poll now (the branches it names, for the log).
    Accepted { branches: Vec<String> },
    /// Verified, but its delivery id was taken before: nothing happens.
    Replayed { delivery_id: String },
    /// It does not verify (signature, format): nothing happens.
    Refused { reason: String },
    /// No project's scm plugin takes webhooks.
    Unsupported,
}

impl Watcher {
    pub fn new(lifecycle: Arc<Lifecycle>, forges: Arc<dyn Forges>) -> Self {
        let dir = WatchDir::new(lifecycle.store().data_dir());
        Self {
            lifecycle,
            forges,
            dir,
            started_at_ms: now_ms(),
            backoff: Mutex::new(HashMap::new()),
            unavailable_logged: Mutex::new(HashMap::new()),
            reviews_at: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            woken_for: Mutex::new(Some(BTreeSet::new())),
        }
    }

    /// Asks the running watcher to poll now, only the sessions on `branches` (all of them when
    /// empty): what a verified webhook delivery does.
    pub fn wake(&self, branches: &[String]) {
        {
            let mut woken = self.woken_for.lock().unwrap_or_else(|e| e.into_inner());
            match (&mut *woken, branches.is_empty()) {
                (Some(named), false) => named.extend(branches.iter().cloned()),
                (woken_for, _) => *woken_for = None,
            }
        }
        self.wake.notify_one();
    }

    pub fn dir(&self) -> &WatchDir {
        &self.dir
    }

    /// Polls until `stop` completes, then finishes the poll in progress: every
    /// `watch.poll_secs`, and soon when woken ([`Self::wake`]: the sessions on the branches
    /// named). Wakes are coalesced: a woken poll starts at least [`WAKE_GAP`] after the one
    /// before, and the wakes that arrive meanwhile (however many) make one poll. Reviews are
    /// asked only when `watch.reviews_secs` has passed, woken or not: GraphQL's limit is the
    /// scarce one, and a burst of deliveries must not spend it.
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let poll_every = Duration::from_secs(self.lifecycle.config().watch.poll_secs);
        let mut woken = false;
        loop {
            let started = tokio::time::Instant::now();
            let only = if woken {
                self.woken_for
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .replace(BTreeSet::new())
            } else {
                None
            };
            self.poll_only(false, only.as_ref()).await;
            // Between polls, the background reader of usage (listings then find little left to
            // read); a wake or a stop cuts it short, and it goes on from there next time.
            let read_usage = async {
                self.lifecycle.advance_usage(WATCH_READ_BYTES).await;
                std::future::pending::<()>().await
            };
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(poll_every) => woken = false,
                () = self.wake.notified() => woken = true,
                () = read_usage => {}
            }
            if woken {
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep_until(started + WAKE_GAP) => {}
                }
            }
        }
    }

    /// One poll of every project with `scm:`, reviews included (`watch --once`). Records the
    /// heartbeat.
    pub async fn poll(&self) -> PollReport {
        self.poll_only(true, None).await
    }

    /// One poll as [`Self::run`] makes it each interval: reviews only when due (benchmarks).
    pub async fn poll_on_interval(&self) -> PollReport {
        self.poll_only(false, None).await
    }

    /// One poll; `reviews_now` fetches reviews whatever their interval says; `only` limits it to
    /// the sessions on those branches.
    async fn poll_only(&self, reviews_now: bool, only: Option<&BTreeSet<String>>) -> PollReport {
        let config = self.lifecycle.config();
        let mut report = PollReport::default();
        for project in config.projects.values() {
            let Some(scm) = &project.scm else {
                continue;
            };
            if let Err(problem) = self
                .poll_project(project, scm, reviews_now, only, &mut report)
                .await
            {
                tracing::warn!(project = %project.id, "{problem}");
                report.problems.push(problem);
            }
        }
        let beat = WatcherBeat {
            schema: SCHEMA,
            pid: std::process::id(),
            started_at_ms: self.started_at_ms,
            polled_at_ms: now_ms(),
            poll_interval_secs: config.watch.poll_secs,
        };
        if let Err(e) = self.dir.save_beat(&beat) {
            tracing::warn!("recording the watcher's heartbeat: {e}");
        }
        report
    }

    async fn poll_project(
        &self,
        project: &ProjectConfig,
        scm: &ScmConfig,
        reviews_now: bool,
        only: Option<&BTreeSet<String>>,
        report: &mut PollReport,
    ) -> Result<(), String> {
        let listing = self
            .lifecycle
            .list(Some(&project.id), false)
            .await
            .map_err(|e| format!("listing its sessions: {e}"))?;
        let sessions: Vec<Session> = listing
            .sessions
            .into_iter()
            .filter(|s| s.role == SessionRole::Worker && !s.branch.is_empty())
            .collect();
        let named = |session: &Session| only.is_none_or(|only| only.contains(&session.branch));
        if !sessions.iter().any(named) {
            return Ok(());
        }
        let now = now_ms();
        if let Some(until) = self.backed_off(&scm.plugin, now) {
            tracing::debug!(plugin = %scm.plugin, "backed off for {} s more", (until - now) / 1000);
            return Ok(());
        }
        let setting = format!("projects.{}.scm", project.id);
        let forge = self.forges.forge(&scm.plugin, &setting).await?;
        let repository = repository_of(project, scm);
        let mut branches: Vec<String> = sessions.iter().map(|s| s.branch.clone()).collect();
        branches.sort();
        branches.dedup();
        let mut memo = self
            .dir
            .project_memo(&project.id)
            .map_err(|e| e.to_string())?;
        let validator = if memo.branches == branches {
            memo.validator.clone()
        } else {
            String::new()
        };
        let query = PullRequestQuery {
            repository: repository.clone(),
            branches: branches.iter().map(|b| RString::from(b.as_str())).collect(),
            validator: validator.into(),
        };
        match forge.pull_requests(query).await {
            Ok(Fetched::Unchanged) => {}
            Ok(Fetched::Changed { value, validator }) => {
                memo = ProjectMemo {
                    schema: SCHEMA,
                    branches,
                    validator: validator.into(),
                    pull_requests: value.iter().map(memo_of).collect(),
                };
                self.dir
                    .save_project_memo(&project.id, &memo)
                    .map_err(|e| e.to_string())?;
            }
            Err(e) => {
                // Logged by `failed`, as often as its kind deserves.
                let problem = self.failed(&*forge, &scm.plugin, "pull requests", e).await;
                report.problems.push(problem);
                return Ok(());
            }
        }
        let mut targets: Vec<(Session, Option<PullRequestMemo>)> = Vec::new();
        for session in sessions.into_iter().filter(named) {
            let pr = self.pull_request_of(&session, &memo.pull_requests).await;
            targets.push((session, pr));
        }
        let reviews = self
            .reviews(
                &*forge,
                scm,
                project,
                &repository,
                &targets,
                reviews_now,
                report,
            )
            .await;
        for (session, pr) in &targets {
            let fetched = pr.as_ref().and_then(|pr| reviews.get(&pr.number));
            if let Err(problem) = self
                .watch_session(
                    &*forge,
                    &repository,
                    scm,
                    session,
                    pr.as_ref(),
                    fetched,
                    report,
                )
                .await
            {
                tracing::warn!(id = %session.id, "{problem}");
                report.problems.push(format!("{}: {problem}", session.id));
            }
        }
        Ok(())
    }

    /// The pull request that is `session`'s: an open one on its branch whose head is in the
    /// session's history (newest first), else the one taken before, now merged or closed.
    /// Branch names repeat across data dirs and clones (`session/app-1`), so a branch of the
    /// same name pushed from elsewhere is not the session's; nor is a pull request merged or
    /// closed before a watcher saw it open. A workspace plugin that cannot tell leaves the
    /// branch name to decide, for open pull requests only.
    async fn pull_request_of(
        &self,
        session: &Session,
        pulls: &[PullRequestMemo],
    ) -> Option<PullRequestMemo> {
        let taken = self
            .dir
            .ledger(&session.project_id, &session.id)
            .ok()
            .and_then(|ledger| ledger.pull_request);
        let mut open: Vec<&PullRequestMemo> = pulls
            .iter()
            .filter(|pr| pr.branch == session.branch && pr.state == "open")
            .collect();
        open.sort_by_key(|pr| std::cmp::Reverse(pr.number));
        for pr in open {
            if Some(pr.number) == taken {
                return Some(pr.clone());
            }
            match self.lifecycle.commits_since(session, &pr.head_sha).await {
                Ok(Some(_)) | Err(CommitsUnknown::Unsupported) => return Some(pr.clone()),
                Ok(None) => tracing::debug!(
                    id = %session.id,
                    "pull request #{} is on a branch named like this session's, but its head {} is not in the session's history: not this session's",
                    pr.number,
                    pr.head_sha
                ),
                Err(CommitsUnknown::Failed(why)) => tracing::warn!(
                    id = %session.id,
                    "cannot tell whether pull request #{} is this session's: {why}",
                    pr.number
                ),
            }
        }
        pulls
            .iter()
            .find(|pr| Some(pr.number) == taken && pr.branch == session.branch)
            .cloned()
    }

    /// The reviews of the open pull requests, in one batch, when due.
    #[allow(clippy::too_many_arguments)]
    async fn reviews(
        &self,
        forge: &dyn Forge,
        scm: &ScmConfig,
        project: &ProjectConfig,
        repository: &ScmRepository,
        targets: &[(Session, Option<PullRequestMemo>)],
        now_due: bool,
        report: &mut PollReport,
    ) -> HashMap<u64, ReviewFeedback> {
        let numbers: BTreeSet<u64> = targets
            .iter()
            .filter_map(|(_, pr)| pr.as_ref().filter(|pr| pr.state == "open"))
            .map(|pr| pr.number)
            .collect();
        let now = now_ms();
        let every = self.lifecycle.config().watch.reviews_secs * 1000;
        let last = self.reviews_at_of(&project.id);
        if numbers.is_empty() || !(now_due || now >= last + every) {
            return HashMap::new();
        }
        let query = ReviewsQuery {
            repository: repository.clone(),
            numbers: numbers.into_iter().collect(),
        };
        match forge.reviews(query).await {
            Ok(feedback) => {
                self.reviews_at
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(project.id.clone(), now);
                feedback.into_iter().map(|f| (f.number, f)).collect()
            }
            Err(e) => {
                let problem = self.failed(forge, &scm.plugin, "reviews", e).await;
                report.problems.push(problem);
                HashMap::new()
            }
        }
    }

    fn reviews_at_of(&self, project: &str) -> u64 {
        self.reviews_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(project)
            .copied()
            .unwrap_or(0)
    }

    #[allow(clippy::too_many_arguments)]
    async fn watch_session(
        &self,
        forge: &dyn Forge,
        repository: &ScmRepository,
        scm: &ScmConfig,
        session: &Session,
        pr: Option<&PullRequestMemo>,
        reviews: Option<&ReviewFeedback>,
        report: &mut PollReport,
    ) -> Result<(), String> {
        let (project, id) = (session.project_id.as_str(), session.id.as_str());
        let store = |e: crate::session::StoreError| e.to_string();
        let mut ledger = self.dir.ledger(project, id).map_err(store)?;
        if let Some(cut) = ledger.delivering.take() {
            tracing::warn!(
                %id,
                "the last watcher stopped while typing the {} reaction; it counts as delivered and is not typed again",
                cut.reaction
            );
        }
        let now = now_ms();
        let mut view = SessionWatch {
            schema: SCHEMA,
            checked_at_ms: now,
            pr: None,
            queued: Vec::new(),
        };
        if let Some(pr) = pr {
            ledger.pull_request = Some(pr.number);
            let fetched = if pr.state == "open" {
                self.fresh_checks(forge, repository, scm, session, pr, &mut ledger, report)
                    .await
            } else {
                None
            };
            let checks = ledger
                .checks
                .clone()
                .filter(|memo| memo.head_sha == pr.head_sha);
            let ci = checks
                .as_ref()
                .map_or_else(|| "pending".to_string(), |memo| memo.ci.clone());
            let observed = Observed {
                session_id: id,
                pr,
                checks: fetched.as_deref(),
                ci: &ci,
                reviews,
                now_ms: now,
            };
            let decisions = decide(&mut ledger, &observed, &scm.reactions);
            view.pr = Some(PullRequestView {
                number: pr.number,
                url: pr.url.clone(),
                title: pr.title.clone(),
                state: pr.state.clone(),
                draft: pr.draft,
                head_sha: pr.head_sha.clone(),
                ci,
                failed_checks: checks.map(|memo| memo.failed).unwrap_or_default(),
                review: pr.review_decision.clone(),
                unresolved_comments: reviews.map_or(0, |r| r.unresolved.len() as u32),
                mergeable: pr.mergeable.clone(),
            });
            // Decided facts are recorded before anything is acted on: nothing is decided twice.
            self.dir.save_ledger(project, id, &ledger).map_err(store)?;
            for decision in decisions {
                match decision {
                    Decision::Notify { event, message } => {
                        self.notify(session, &event, &message);
                        report.notified += 1;
                    }
                    Decision::Merge { number, head_sha } => {
                        self.merge(forge, repository, scm, session, number, head_sha, report)
                            .await
                    }
                    Decision::Cleanup => ledger.cleanup_due = true,
                }
            }
        }
        let merged_head = pr.map(|pr| pr.head_sha.as_str());
        if ledger.cleanup_due
            && self
                .clean_up(session, merged_head, &mut ledger, report)
                .await
        {
            return Ok(());
        }
        self.deliver(session, &mut ledger, report).await;
        if let Some(pr) = &mut view.pr {
            if pr.unresolved_comments == 0 && reviews.is_none() {
                // Not fetched this poll: keep what the last poll saw.
                if let Ok(Some(before)) = self.dir.session(project, id) {
                    pr.unresolved_comments = before.pr.map_or(0, |p| p.unresolved_comments);
                }
            }
        }
        view.queued = ledger.pending.iter().map(Pending::view).collect();
        // Killed while this poll asked the forge: its kill forgot its files, which must not
        // come back (gc collects any a kill racing this line leaves).
        if self
            .lifecycle
            .store()
            .reread(project, id)
            .map_err(store)?
            .is_none()
        {
            return Ok(());
        }
        self.dir.save_ledger(project, id, &ledger).map_err(store)?;
        self.dir.save_session(project, id, &view).map_err(store)
    }

    /// The checks of an open pull request's head when they changed since the ledger's (which
    /// it updates); `None` when unchanged, not asked (rate limited) or not answered (logged).
    #[allow(clippy::too_many_arguments)]
    async fn fresh_checks(
        &self,
        forge: &dyn Forge,
        repository: &ScmRepository,
        scm: &ScmConfig,
        session: &Session,
        pr: &PullRequestMemo,
        ledger: &mut Ledger,
        report: &mut PollReport,
    ) -> Option<Vec<Check>> {
        if self.backed_off(&scm.plugin, now_ms()).is_some() {
            return None;
        }
        let validator = ledger
            .checks
            .as_ref()
            .filter(|memo| memo.head_sha == pr.head_sha)
            .map_or_else(String::new, |memo| memo.validator.clone());
        let query = ChecksQuery {
            repository: repository.clone(),
            head_sha: pr.head_sha.as_str().into(),
            validator: validator.into(),
            log_lines: sanitize::LOG_LINES as u32,
        };
        match forge.checks(query).await {
            Ok(Fetched::Unchanged) => None,
            Ok(Fetched::Changed { value, validator }) => {
                let (ci, failed) = ci_of(&value);
                ledger.checks = Some(ChecksMemo {
                    head_sha: pr.head_sha.clone(),
                    validator: validator.into(),
                    ci,
                    failed,
                });
                Some(value.into_iter().collect())
            }
            Err(e) => {
                let problem = self.failed(forge, &scm.plugin, "checks", e).await;
                report.problems.push(format!("{}: {problem}", session.id));
                None
            }
        }
    }

    /// Types the oldest queued reaction if the agent is idle at its prompt; tells the operator
    /// once when its agent exited with reactions waiting.
    async fn deliver(&self, session: &Session, ledger: &mut Ledger, report: &mut PollReport) {
        let (project, id) = (session.project_id.as_str(), session.id.as_str());
        match session.status {
            SessionStatus::Idle if !ledger.pending.is_empty() => {
                ledger.held_told = false;
                let next = ledger.pending.remove(0);
                *ledger.sends.entry(next.reaction.clone()).or_default() += 1;
                ledger.delivering = Some(next.clone());
                if let Err(e) = self.dir.save_ledger(project, id, ledger) {
                    tracing::warn!(%id, "recording a delivery before typing it: {e}; trying next poll");
                    undo(ledger, next);
                    return;
                }
                let quiet = |_: &str| {};
                match self.lifecycle.send(id, &next.message, false, &quiet).await {
                    Ok(()) => {
                        tracing::info!(%id, reaction = %next.reaction, "delivered: {}", next.summary);
                        report.delivered += 1;
                    }
                    Err(e) if not_typed(&e) => {
                        tracing::info!(%id, reaction = %next.reaction, "not delivered yet ({e}); kept for the next poll");
                        undo(ledger, next);
                    }
                    Err(e) => {
                        tracing::warn!(%id, reaction = %next.reaction, "typing it failed after it may have been typed ({e}); it counts as delivered and is not typed again");
                    }
                }
                ledger.delivering = None;
            }
            SessionStatus::Exited if !ledger.pending.is_empty() && !ledger.held_told => {
                let kinds: Vec<&str> = ledger.pending.iter().map(|p| p.reaction.as_str()).collect();
                self.notify(
                    session,
                    "pr_held",
                    &format!(
                        "{id} exited while its pull request is open; held for it: {} (`ao-host session restore {id}` brings it back, and they are delivered when it is idle)",
                        kinds.join(", ")
                    ),
                );
                report.notified += 1;
                ledger.held_told = true;
            }
            _ => {}
        }
    }

    /// Kills a session whose pull request merged at `merged_head` and removes its worktree,
    /// once its agent is not in the middle of something, and only when the session holds
    /// nothing on top of what merged (a commit made or amended after the last push, pushed
    /// with or without an upstream); the kill itself refuses a worktree holding uncommitted
    /// changes, and never deletes a branch holding commits that are not merged. `true` when
    /// the session is gone.
    async fn clean_up(
        &self,
        session: &Session,
        merged_head: Option<&str>,
        ledger: &mut Ledger,
        report: &mut PollReport,
    ) -> bool {
        let (project, id) = (session.project_id.as_str(), session.id.as_str());
        if !matches!(session.status, SessionStatus::Idle | SessionStatus::Exited) {
            return false;
        }
        if let Some(head) = merged_head {
            let beyond = match self.lifecycle.commits_since(session, head).await {
                Ok(Some(0)) | Err(CommitsUnknown::Unsupported) => None,
                Ok(Some(n)) => Some(format!("{n} commit(s) made after the merged head {head}")),
                Ok(None) => Some(format!(
                    "its branch no longer holds the merged head {head} (amended or reset after the push)"
                )),
                Err(CommitsUnknown::Failed(why)) => {
                    tracing::warn!(%id, "cannot tell whether its work merged, asking again next poll: {why}");
                    return false;
                }
            };
            if let Some(beyond) = beyond {
                ledger.cleanup_due = false;
                self.notify(
                    session,
                    "pr_merged_kept",
                    &format!("{id}: its pull request merged, but the session was kept: it holds {beyond}; push them in a new pull request, or `ao-host session kill {id}`"),
                );
                report.notified += 1;
                return false;
            }
        }
        ledger.cleanup_due = false;
        let quiet = |_: &str| {};
        match self.lifecycle.kill(id, false, false, &quiet).await {
            Ok(_) => {
                tracing::info!(%id, "its pull request merged: the session was killed and its worktree removed");
                for removed in [
                    self.dir.remove_session(project, id),
                    self.dir.remove_ledger(project, id),
                ] {
                    if let Err(e) = removed {
                        tracing::warn!(%id, "{e}");
                    }
                }
                true
            }
            Err(e) => {
                self.notify(
                    session,
                    "pr_merged_kept",
                    &format!("{id}: its pull request merged, but the session was kept: {e}"),
                );
                report.notified += 1;
                false
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn merge(
        &self,
        forge: &dyn Forge,
        repository: &ScmRepository,
        scm: &ScmConfig,
        session: &Session,
        number: u64,
        head_sha: String,
        report: &mut PollReport,
    ) {
        let request = MergeRequest {
            repository: repository.clone(),
            number,
            head_sha: head_sha.into(),
        };
        if let Err(e) = forge.merge(request).await {
            let problem = self.failed(forge, &scm.plugin, "a merge", e).await;
            self.notify(
                session,
                "pr_merge_failed",
                &format!("{}: merging pull request #{number}: {problem}", session.id),
            );
            report.notified += 1;
        }
    }

    /// Logs `message` and runs `notify:` with `AO_EVENT` = `event`.
    fn notify(&self, session: &Session, event: &str, message: &str) {
        tracing::info!(id = %session.id, %event, "{message}");
        if let Some(notify) = &self.lifecycle.config().notify {
            run_notify(notify, &session.project_id, &session.id, event, message);
        }
    }

    /// Until when `plugin` is not to be asked, if that is still ahead.
    fn backed_off(&self, plugin: &str, now: u64) -> Option<u64> {
        self.backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(plugin)
            .copied()
            .filter(|&until| until > now)
    }

    /// Logs a failed call and returns its line for the poll's report. A rate limit stops every
    /// call to `plugin` until its window resets, refused settings or credentials for
    /// [`CONFIG_BACKOFF_MS`] (each said once per back-off); an unavailable forge is asked again
    /// next poll but logged at most every [`UNAVAILABLE_LOG_EVERY_MS`]; anything else each time.
    async fn failed(
        &self,
        forge: &dyn Forge,
        plugin: &str,
        what: &str,
        error: ForgeError,
    ) -> String {
        let now = now_ms();
        match error.kind {
            ForgeErrorKind::RateLimited => {
                let limits = forge.rate_limits().await.unwrap_or_default();
                let until = backoff_until(&limits, now);
                if self.back_off(plugin, now, until) {
                    tracing::warn!(
                        %plugin,
                        "the forge's rate limit is reached ({error}); no request until it resets in {} s",
                        until.saturating_sub(now).div_ceil(1000)
                    );
                }
                format!("{plugin}: rate limited asking for {what}; waiting until the limit resets")
            }
            ForgeErrorKind::Config => {
                if self.back_off(plugin, now, now + CONFIG_BACKOFF_MS) {
                    tracing::warn!(
                        %plugin,
                        "asking for {what}: {error}; not asking again for {} min",
                        CONFIG_BACKOFF_MS / 60_000
                    );
                }
                format!("{plugin}: asking for {what}: {error}")
            }
            ForgeErrorKind::Unavailable => {
                let line = format!("{plugin}: asking for {what}: {error}");
                if self.unavailable_log_due(plugin, now) {
                    tracing::warn!("{line} (asked again each poll; said at most once a minute)");
                }
                line
            }
            _ => {
                let line = format!("{plugin}: asking for {what}: {error}");
                tracing::warn!("{line}");
                line
            }
        }
    }

    /// Whether `plugin`'s forge being unavailable is to be logged now (and, if so, noted).
    fn unavailable_log_due(&self, plugin: &str, now: u64) -> bool {
        let mut logged = self
            .unavailable_logged
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let due = logged
            .get(plugin)
            .is_none_or(|&at| now >= at + UNAVAILABLE_LOG_EVERY_MS);
        if due {
            logged.insert(plugin.to_string(), now);
        }
        due
    }

    /// No call to `plugin` before `until`; whether this starts a back-off (none was running),
    /// so that it is said once.
    fn back_off(&self, plugin: &str, now: u64, until: u64) -> bool {
        let already = self.backed_off(plugin, now).is_some();
        self.backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(plugin.to_string(), until);
        !already
    }

    /// Hands a webhook delivery to the projects' scm plugins to verify; a verified one that was
    /// not taken before wakes a poll of the sessions on the branches it names.
    pub async fn webhook(&self, delivery: WebhookDelivery) -> WebhookVerdict {
        // Each scm plugin once, with a field that names it.
        let mut plugins: Vec<(&str, String)> = Vec::new();
        for project in self.lifecycle.config().projects.values() {
            if let Some(scm) = &project.scm {
                if plugins.iter().all(|(name, _)| *name != scm.plugin) {
                    plugins.push((&scm.plugin, format!("projects.{}.scm", project.id)));
                }
            }
        }
        let mut refusal = None;
        for (plugin, setting) in plugins {
            let forge = match self.forges.forge(plugin, &setting).await {
                Ok(forge) => forge,
                Err(e) => {
                    refusal = Some(e);
                    continue;
                }
            };
            let hint = match forge.webhook(delivery.clone()).await {
                Ok(hint) => hint,
                Err(e) if e.kind == ForgeErrorKind::Unsupported => continue,
                Err(e) => {
                    refusal = Some(format!("{plugin}: {e}"));
                    continue;
                }
            };
            let delivery_id = hint.delivery_id.to_string();
            if delivery_id.is_empty() {
                return WebhookVerdict::Refused {
                    reason: format!(
                        "{plugin}: the delivery has no id, so a replay could not be told apart"
                    ),
                };
            }
            let taken = self.dir.deliveries().map(|mut deliveries| {
                let new = deliveries.take(&delivery_id);
                (new, deliveries)
            });
            return match taken {
                Ok((false, _)) => WebhookVerdict::Replayed { delivery_id },
                Ok((true, deliveries)) => {
                    if let Err(e) = self.dir.save_deliveries(&deliveries) {
                        tracing::warn!("recording webhook delivery {delivery_id}: {e}");
                    }
                    let branches: Vec<String> =
                        hint.branches.iter().map(|b| b.to_string()).collect();
                    self.wake(&branches);
                    WebhookVerdict::Accepted { branches }
                }
                Err(e) => WebhookVerdict::Refused {
                    reason: format!("reading the deliveries already taken: {e}"),
                },
            };
        }
        refusal.map_or(WebhookVerdict::Unsupported, |reason| {
            WebhookVerdict::Refused { reason }
        })
    }
}

/// Puts a reaction that was not typed back at the head of the queue, uncounted.
fn undo(ledger: &mut Ledger, pending: Pending) {
    if let Some(count) = ledger.sends.get_mut(&pending.reaction) {
        *count = count.saturating_sub(1);
    }
    ledger.delivering = None;
    ledger.pending.insert(0, pending);
}

/// Whether a failed send certainly typed nothing: refused before the agent was touched (busy,
/// waiting for an answer, gone).
fn not_typed(error: &LifecycleError) -> bool {
    matches!(
        error,
        LifecycleError::Refused(_)
            | LifecycleError::Budget(_)
            | LifecycleError::Lock(_)
            | LifecycleError::Store(_)
            | LifecycleError::Deliver(
                DeliverError::Blocked { .. }
                    | DeliverError::Exited { .. }
                    | DeliverError::NotReady { .. }
            )
    )
}

/// When a rate-limited plugin may be asked again (ms since the epoch): after what `Retry-After`
/// asks, and after the reset of each exhausted limit; a minute when nothing says.
pub fn backoff_until(limits: &[RateLimit], now_ms: u64) -> u64 {
    limits
        .iter()
        .filter_map(|limit| {
            let retry = (limit.retry_after > 0).then(|| now_ms + limit.retry_after * 1000);
            let reset = (limit.remaining == 0 && limit.reset_at > 0).then(|| limit.reset_at * 1000);
            retry.max(reset)
        })
        .max()
        .filter(|&until| until > now_ms)
        .unwrap_or(now_ms + DEFAULT_BACKOFF_MS)
}

/// A pull request as the ledger keeps it, its forge text made plain.
fn memo_of(pr: &PullRequest) -> PullRequestMemo {
    let state = match pr.state.as_enum() {
        Ok(PullRequestState::Merged) => "merged",
        Ok(PullRequestState::Closed) => "closed",
        _ => "open",
    };
    let mergeable = match pr.mergeable.as_enum() {
        Ok(Mergeability::Mergeable) => "mergeable",
        Ok(Mergeability::Conflicting) => "conflicting",
        _ => "unknown",
    };
    let review = match pr.review_decision.as_enum() {
        Ok(ReviewDecision::ReviewRequired) => "review_required",
        Ok(ReviewDecision::Approved) => "approved",
        Ok(ReviewDecision::ChangesRequested) => "changes_requested",
        _ => "none",
    };
    PullRequestMemo {
        number: pr.number,
        url: sanitize::line(&pr.url),
        title: sanitize::line(&pr.title),
        branch: pr.branch.to_string(),
        head_sha: sanitize::line(&pr.head_sha),
        state: state.into(),
        draft: pr.draft,
        mergeable: mergeable.into(),
        review_decision: review.into(),
    }
}

/// The repository a project's pull requests live in, for callers outside the poll.
pub fn repository_of(project: &ProjectConfig, scm: &ScmConfig) -> ScmRepository {
    ScmRepository {
        repo_path: project.repo.display().to_string().into(),
        slug: match &scm.repository {
            Some(slug) => ROption::RSome(slug.as_str().into()),
            None => ROption::RNone,
        },
    }
}

#[cfg(test)]
mod tests {
    use ao_plugin_api::scm::{Check, WebhookHint};
    use futures_util::future::BoxFuture;

    use super::{super::forge::ForgeResult, *};

    /// A forge that says "wait" to everything, until `reset_at`.
    struct Limited {
        reset_at: u64,
    }

    impl Forge for Limited {
        fn pull_requests(
            &self,
            _: PullRequestQuery,
        ) -> BoxFuture<'_, ForgeResult<Fetched<Vec<PullRequest>>>> {
            unreachable!()
        }
        fn checks(&self, _: ChecksQuery) -> BoxFuture<'_, ForgeResult<Fetched<Vec<Check>>>> {
            unreachable!()
        }
        fn reviews(&self, _: ReviewsQuery) -> BoxFuture<'_, ForgeResult<Vec<ReviewFeedback>>> {
            unreachable!()
        }
        fn merge(&self, _: MergeRequest) -> BoxFuture<'_, ForgeResult<()>> {
            unreachable!()
        }
        fn webhook(&self, _: WebhookDelivery) -> BoxFuture<'_, ForgeResult<WebhookHint>> {
            unreachable!()
        }
        fn rate_limits(&self) -> BoxFuture<'_, ForgeResult<Vec<RateLimit>>> {
            let limits = vec![limit("graphql", 0, self.reset_at, 0)];
            Box::pin(async move { Ok(limits) })
        }
    }

    struct NoForges;

    impl Forges for NoForges {
        fn forge<'a>(
            &'a self,
            name: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Arc<dyn Forge>, String>> {
            Box::pin(async move { Err(format!("no {name}")) })
        }
    }

    #[tokio::test]
    async fn a_rate_limited_plugin_is_not_asked_until_its_window_resets() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::parse("", &dir.path().join("ao-rs.yaml")).unwrap();
        config.data_dir = dir.path().join("data");
        let lifecycle = Arc::new(Lifecycle::open(config, &[]).unwrap());
        let watcher = Watcher::new(lifecycle, Arc::new(NoForges));
        let now = now_ms();
        assert_eq!(watcher.backed_off("github", now), None);
        let reset_at = now / 1000 + 120;
        let limited = ForgeError {
            kind: ForgeErrorKind::RateLimited,
            message: "used up".into(),
        };
        let said = watcher
            .failed(&Limited { reset_at }, "github", "checks", limited)
            .await;
        assert!(said.contains("rate limited"), "{said}");
        assert_eq!(watcher.backed_off("github", now), Some(reset_at * 1000));
        assert_eq!(watcher.backed_off("gitlab", now), None);
        assert_eq!(watcher.backed_off("github", reset_at * 1000), None);
        // Any other failure backs nothing off.
        let failed = ForgeError {
            kind: ForgeErrorKind::Failed,
            message: "boom".into(),
        };
        let said = watcher
            .failed(&Limited { reset_at }, "gitlab", "checks", failed)
            .await;
        assert!(said.contains("boom"));
        assert_eq!(watcher.backed_off("gitlab", now), None);
    }

    #[tokio::test]
    async fn a_refused_token_backs_off_and_an_unavailable_forge_is_logged_once_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::parse("", &dir.path().join("ao-rs.yaml")).unwrap();
        config.data_dir = dir.path().join("data");
        let lifecycle = Arc::new(Lifecycle::open(config, &[]).unwrap());
        let watcher = Watcher::new(lifecycle, Arc::new(NoForges));
        let forge = Limited { reset_at: 0 };
        let error = |kind| ForgeError {
            kind,
            message: "401 Bad credentials".into(),
        };
        let now = now_ms();
        let said = watcher
            .failed(
                &forge,
                "github",
                "pull requests",
                error(ForgeErrorKind::Config),
            )
            .await;
        assert!(said.contains("401 Bad credentials"), "{said}");
        let until = watcher.backed_off("github", now).expect("a back-off");
        assert!(until >= now + CONFIG_BACKOFF_MS, "{until} {now}");
        assert_eq!(watcher.backed_off("github", until), None);
        // A back-off running is not started (nor said) again.
        assert!(!watcher.back_off("github", now, until));
        assert!(watcher.back_off("gitlab", now, until));
        // Unavailable: asked again next poll, said at most once a minute.
        watcher
            .failed(
                &forge,
                "gitea",
                "checks",
                error(ForgeErrorKind::Unavailable),
            )
            .await;
        assert_eq!(watcher.backed_off("gitea", now), None);
        let later = now_ms();
        assert!(!watcher.unavailable_log_due("gitea", later));
        assert!(!watcher.unavailable_log_due("gitea", later + UNAVAILABLE_LOG_EVERY_MS - 1000));
        assert!(watcher.unavailable_log_due("gitea", later + UNAVAILABLE_LOG_EVERY_MS));
        assert!(watcher.unavailable_log_due("github", later));
    }

    fn limit(api: &str, remaining: u64, reset_at: u64, retry_after: u64) -> RateLimit {
        RateLimit {
            api: api.into(),
            limit: 5000,
            remaining,
            reset_at,
            retry_after,
        }
    }

    #[test]
    fn a_rate_limit_is_honoured_until_its_reset_or_retry_after() {
        let now = 1_000_000;
        // GraphQL exhausted until 1100 s; REST fine: wait for GraphQL's reset.
        assert_eq!(
            backoff_until(
                &[limit("rest", 4000, 1200, 0), limit("graphql", 0, 1100, 0)],
                now
            ),
            1_100_000
        );
        // Retry-After wins when later.
        assert_eq!(
            backoff_until(&[limit("rest", 0, 1001, 30)], now),
            now + 30_000
        );
        // Nothing said (or a reset already past): a minute.
        assert_eq!(backoff_until(&[], now), now + DEFAULT_BACKOFF_MS);
        assert_eq!(
            backoff_until(&[limit("rest", 0, 10, 0)], now),
            now + DEFAULT_BACKOFF_MS
        );
    }
}
