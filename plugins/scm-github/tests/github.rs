//! The `github` plugin through the `Scm` trait against the loopback GitHub stand-in: each
//! method, conditional requests, batching, and GitHub's refusals as the operator reads them.

use std::time::Duration;

use ao_plugin_api::{
    abi_stable::std_types::{RNone, ROption, RSome, RString},
    scm::{
        CheckState, ChecksQuery, Fetched, MergeRequest, Mergeability, PullRequest,
        PullRequestQuery, PullRequestState, ReviewDecision, ReviewsQuery, ScmRepository,
    },
    ErrorKind, PluginContext, PluginFailure, Scm,
};
use ao_scm_github::GitHub;
use ao_test_support::github_api::{BareOrigin, CheckRun, Delivery, Fault, GitHubApi};

const REPO: &str = "o/r";
const TOKEN: &str = "ghp_standin_secret_token";
const SECRET: &str = "hook-secret";

fn plugin_with(api: &GitHubApi, extra: &str) -> GitHub {
    let config = format!(
        "api_url: {}\ntoken: {TOKEN}\nwebhook_secret: {SECRET}\n{extra}",
        api.api_url()
    );
    GitHub::new(&PluginContext {
        plugin_name: "github".into(),
        data_dir: "/nonexistent-data-dir".into(),
        config_yaml: config.into(),
    })
    .unwrap_or_else(|e| panic!("{}", e.message()))
}

fn plugin(api: &GitHubApi) -> GitHub {
    plugin_with(api, "")
}

fn repository() -> ScmRepository {
    ScmRepository {
        repo_path: "/nonexistent-clone".into(),
        slug: RSome(REPO.into()),
    }
}

fn pulls_query(branches: &[&str], validator: &str) -> PullRequestQuery {
    PullRequestQuery {
        repository: repository(),
        branches: branches.iter().map(|b| RString::from(*b)).collect(),
        validator: validator.into(),
    }
}

fn checks_query(sha: &str, validator: &str) -> ChecksQuery {
    ChecksQuery {
        repository: repository(),
        head_sha: sha.into(),
        validator: validator.into(),
        log_lines: 3,
    }
}

fn changed<T: std::fmt::Debug>(fetched: Fetched<T>) -> (T, String) {
    match fetched {
        Fetched::Changed { value, validator } => (value, validator.into()),
        Fetched::Unchanged => panic!("expected a changed answer"),
    }
}

fn kind(failure: &PluginFailure) -> ErrorKind {
    *failure.kind.as_enum().unwrap()
}

const SHA_A: &str = "aaaaaaa1";
const SHA_B: &str = "bbbbbbb2";

fn by_branch<'a>(pulls: &'a [PullRequest], branch: &str) -> &'a PullRequest {
    pulls
        .iter()
        .find(|p| p.branch.as_str() == branch)
        .unwrap_or_else(|| panic!("no pull request of {branch} in {pulls:?}"))
}

#[test]
fn pull_requests_of_many_branches_cost_one_request_and_an_unchanged_list_nothing() {
    let api = GitHubApi::start();
    api.open_pull(REPO, "ao/one", SHA_A, "One");
    api.open_pull(REPO, "ao/two", SHA_B, "Two");
    api.open_pull(REPO, "someone-else", SHA_B, "Not ours");
    api.update_pull(REPO, 2, |pull| {
        pull.mergeable = Some(false);
        pull.review_decision = Some("CHANGES_REQUESTED".into());
    });
    let github = plugin(&api);
    let (pulls, validator) = changed(
        github
            .pull_requests(&pulls_query(&["ao/one", "ao/two", "ao/three"], ""))
            .unwrap(),
    );
    assert_eq!(pulls.len(), 2, "{pulls:?}");
    let one = by_branch(&pulls, "ao/one");
    assert_eq!(one.number, 1);
    assert_eq!(one.head_sha.as_str(), SHA_A);
    assert_eq!(one.url.as_str(), "https://github.com/o/r/pull/1");
    assert_eq!(one.node_id.as_str(), "PR_1");
    assert_eq!(*one.state.as_enum().unwrap(), PullRequestState::Open);
    assert_eq!(*one.mergeable.as_enum().unwrap(), Mergeability::Mergeable);
    let two = by_branch(&pulls, "ao/two");
    assert_eq!(*two.mergeable.as_enum().unwrap(), Mergeability::Conflicting);
    assert_eq!(
        *two.review_decision.as_enum().unwrap(),
        ReviewDecision::ChangesRequested
    );
    let after_first = api.counts();
    assert_eq!(
        (after_first.rest, after_first.graphql),
        (1, 1),
        "{after_first:?}"
    );

    // Nothing changed: a 304, which costs nothing, and no GraphQL.
    let again = github
        .pull_requests(&pulls_query(&["ao/one", "ao/two", "ao/three"], &validator))
        .unwrap();
    assert_eq!(again, Fetched::Unchanged);
    let counts = api.counts();
    assert_eq!(
        (counts.rest, counts.rest_not_modified, counts.graphql),
        (1, 1, 1),
        "{counts:?}"
    );
    // The request carried the ETag and the token, never the token elsewhere.
    let last = api.requests().pop().unwrap();
    assert!(last.header("if-none-match").is_some());
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[test]
fn a_push_a_merge_and_a_close_change_the_answer() {
    let api = GitHubApi::start();
    api.open_pull(REPO, "ao/one", SHA_A, "One");
    api.open_pull(REPO, "ao/two", SHA_A, "Two");
    let github = plugin(&api);
    let branches = ["ao/one", "ao/two"];
    let (_, validator) = changed(github.pull_requests(&pulls_query(&branches, "")).unwrap());
    api.update_pull(REPO, 1, |pull| pull.head_sha = SHA_B.into());
    api.merge_pull(REPO, 2);
    let (pulls, validator) = changed(
        github
            .pull_requests(&pulls_query(&branches, &validator))
            .unwrap(),
    );
    assert_eq!(by_branch(&pulls, "ao/one").head_sha.as_str(), SHA_B);
    assert_eq!(
        *by_branch(&pulls, "ao/two").state.as_enum().unwrap(),
        PullRequestState::Merged
    );
    api.update_pull(REPO, 1, |pull| pull.state = "closed".into());
    let (pulls, _) = changed(
        github
            .pull_requests(&pulls_query(&branches, &validator))
            .unwrap(),
    );
    assert_eq!(
        *by_branch(&pulls, "ao/one").state.as_enum().unwrap(),
        PullRequestState::Closed
    );
}

#[test]
fn a_conflict_from_a_moved_base_is_seen_at_the_refresh() {
    let api = GitHubApi::start();
    api.open_pull(REPO, "ao/one", SHA_A, "One");
    let seen = |github: &GitHub, validator: &str| {
        github
            .pull_requests(&pulls_query(&["ao/one"], validator))
            .unwrap()
    };
    // Refreshed every second, the shortest interval.
    let eager = plugin_with(&api, "refresh_secs: 1");
    let (_, eager_validator) = changed(seen(&eager, ""));
    // Refreshed every 2 minutes (the default): not within this test.
    let lazy = plugin(&api);
    let (_, lazy_validator) = changed(seen(&lazy, ""));
    api.set_mergeable_quietly(REPO, 1, Some(false));
    // Unchanged until the refresh is due, then the conflict (asked again, as a watcher polls).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let pulls = loop {
        if let Fetched::Changed { value, .. } = seen(&eager, &eager_validator) {
            break value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the refresh never came"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        *pulls[0].mergeable.as_enum().unwrap(),
        Mergeability::Conflicting
    );
    let graphql_before = api.counts().graphql;
    assert_eq!(seen(&lazy, &lazy_validator), Fetched::Unchanged);
    assert_eq!(api.counts().graphql, graphql_before, "not due: no GraphQL");
}

#[test]
fn the_repository_is_read_from_the_clones_origin() {
    let scratch = tempfile::tempdir().unwrap();
    let clone = scratch.path().join("clone");
    ao_test_support::init_repo(&clone);
    let origin = BareOrigin::create(scratch.path(), "octo/widgets", &clone);
    assert!(origin.head_of("main").is_some());
    let api = GitHubApi::start();
    api.open_pull("octo/widgets", "ao/one", SHA_A, "One");
    let github = plugin(&api);
    let query = PullRequestQuery {
        repository: ScmRepository {
            repo_path: clone.to_str().unwrap().into(),
            slug: RNone,
        },
        branches: vec![RString::from("ao/one")].into(),
        validator: "".into(),
    };
    let (pulls, _) = changed(github.pull_requests(&query).unwrap());
    assert_eq!(pulls.len(), 1);
    assert_eq!(api.requests()[0].path, "/repos/octo/widgets/pulls");
}

#[test]
fn a_clone_without_origin_and_a_bad_slug_name_the_fix() {
    let scratch = tempfile::tempdir().unwrap();
    ao_test_support::init_repo(scratch.path());
    let api = GitHubApi::start();
    let github = plugin(&api);
    let mut query = pulls_query(&["x"], "");
    query.repository = ScmRepository {
        repo_path: scratch.path().to_str().unwrap().into(),
        slug: RNone,
    };
    let error = github.pull_requests(&query).unwrap_err();
    assert_eq!(kind(&error), ErrorKind::Config);
    assert!(
        error.message().contains("scm_repository"),
        "{}",
        error.message()
    );
    query.repository.slug = RSome("o/r/../x".into());
    let error = github.pull_requests(&query).unwrap_err();
    assert!(
        error
            .message()
            .contains("`o/r/../x` is not a GitHub `owner/name`"),
        "{}",
        error.message()
    );
    assert!(api.requests().is_empty());
}

#[test]
fn failed_checks_carry_their_url_and_log_tail_and_an_unchanged_commit_costs_nothing() {
    let api = GitHubApi::start();
    api.add_check_run(REPO, SHA_A, CheckRun::completed("build", "success", "ok\n"));
    let test_id = api.add_check_run(
        REPO,
        SHA_A,
        CheckRun::completed(
            "test",
            "failure",
            "2026-01-01T00:00:00.0000000Z running 3 tests\n2026-01-01T00:00:01.0000000Z \
             test a ... ok\nthread 'b' panicked at src/lib.rs:9\ntest b ... FAILED\nerror: 1 \
             test failed\n",
        ),
    );
    api.add_check_run(REPO, SHA_A, CheckRun::running("lint"));
    let github = plugin(&api);
    let (checks, validator) = changed(github.checks(&checks_query(SHA_A, "")).unwrap());
    assert_eq!(checks.len(), 3);
    let test = checks.iter().find(|c| c.name.as_str() == "test").unwrap();
    assert_eq!(*test.state.as_enum().unwrap(), CheckState::Failed);
    assert_eq!(test.conclusion.as_str(), "failure");
    assert_eq!(test.id.as_str(), test_id.to_string());
    assert_eq!(
        test.url.as_str(),
        format!("https://github.com/o/r/actions/runs/1/job/{test_id}")
    );
    assert_eq!(
        test.log_tail.as_str(),
        "thread 'b' panicked at src/lib.rs:9\ntest b ... FAILED\nerror: 1 test failed"
    );
    let build = checks.iter().find(|c| c.name.as_str() == "build").unwrap();
    assert_eq!(*build.state.as_enum().unwrap(), CheckState::Passed);
    assert_eq!(build.log_tail.as_str(), "");
    let lint = checks.iter().find(|c| c.name.as_str() == "lint").unwrap();
    assert_eq!(*lint.state.as_enum().unwrap(), CheckState::Pending);
    // The log came through GitHub's redirect, without the token.
    let download = api
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/_logs/"))
        .expect("the log was downloaded");
    assert_eq!(download.header("authorization"), None);

    let before = api.counts();
    assert_eq!(
        github.checks(&checks_query(SHA_A, &validator)).unwrap(),
        Fetched::Unchanged
    );
    let after = api.counts();
    assert_eq!(after.rest, before.rest);
    // Check runs and statuses, both unchanged.
    assert_eq!(after.rest_not_modified, before.rest_not_modified + 2);
}

#[test]
fn a_failed_runs_log_is_read_once_while_the_others_finish() {
    let api = GitHubApi::start();
    api.add_check_run(
        REPO,
        SHA_A,
        CheckRun::completed("test", "failure", "boom\n"),
    );
    api.add_check_run(REPO, SHA_A, CheckRun::running("lint"));
    let github = plugin(&api);
    let (_, validator) = changed(github.checks(&checks_query(SHA_A, "")).unwrap());
    api.add_check_run(REPO, SHA_A, CheckRun::completed("lint", "success", ""));
    let (checks, _) = changed(github.checks(&checks_query(SHA_A, &validator)).unwrap());
    let test = checks.iter().find(|c| c.name.as_str() == "test").unwrap();
    assert_eq!(test.log_tail.as_str(), "boom");
    assert_eq!(api.counts().log_downloads, 1);
}

#[test]
fn statuses_of_other_ci_services_are_checks_too() {
    let api = GitHubApi::start();
    api.set_status(REPO, SHA_A, "ci/jenkins", "pending", "building");
    api.set_status(REPO, SHA_A, "ci/jenkins", "failure", "3 tests failed");
    api.set_status(REPO, SHA_A, "deploy/preview", "error", "no capacity");
    api.set_status(REPO, SHA_A, "ci/lint", "success", "clean");
    let github = plugin(&api);
    let (checks, validator) = changed(github.checks(&checks_query(SHA_A, "")).unwrap());
    let state = |name: &str| {
        let check = checks.iter().find(|c| c.name.as_str() == name).unwrap();
        (
            *check.state.as_enum().unwrap(),
            check.log_tail.as_str().to_string(),
        )
    };
    assert_eq!(
        state("ci/jenkins"),
        (CheckState::Failed, "3 tests failed".into())
    );
    assert_eq!(state("deploy/preview").0, CheckState::FailedToRun);
    assert_eq!(state("ci/lint").0, CheckState::Passed);
    assert_eq!(checks.len(), 3);
    assert!(checks
        .iter()
        .all(|c| c.url.as_str().starts_with("https://ci.example.com/")));
    // A new status changes the answer even though the check runs did not.
    api.set_status(REPO, SHA_A, "ci/jenkins", "success", "green");
    let (checks, _) = changed(github.checks(&checks_query(SHA_A, &validator)).unwrap());
    let jenkins = checks
        .iter()
        .find(|c| c.name.as_str() == "ci/jenkins")
        .unwrap();
    assert_eq!(*jenkins.state.as_enum().unwrap(), CheckState::Passed);
}

#[test]
fn a_rerun_is_a_new_run_with_the_same_name_and_conclusion() {
    let api = GitHubApi::start();
    let first = api.add_check_run(
        REPO,
        SHA_A,
        CheckRun::completed("test", "failure", "boom\n"),
    );
    let github = plugin(&api);
    let (_, validator) = changed(github.checks(&checks_query(SHA_A, "")).unwrap());
    let second = api.add_check_run(
        REPO,
        SHA_A,
        CheckRun::completed("test", "failure", "boom\n"),
    );
    let (checks, _) = changed(github.checks(&checks_query(SHA_A, &validator)).unwrap());
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].id.as_str(), second.to_string());
    assert_ne!(first, second);
    assert_eq!(
        (checks[0].name.as_str(), checks[0].conclusion.as_str()),
        ("test", "failure")
    );
}

#[test]
fn billing_and_infrastructure_failures_are_failed_to_run() {
    let api = GitHubApi::start();
    let mut billing = CheckRun::completed("build", "failure", "");
    billing.log = None;
    billing.annotations = vec![
        "The job was not started because recent account payments have failed or your \
         spending limit needs to be increased. Please check the 'Billing & plans' section \
         in your settings"
            .into(),
    ];
    api.add_check_run(REPO, SHA_A, billing);
    let mut never_ran = CheckRun::completed("test", "failure", "");
    never_ran.log = None;
    api.add_check_run(REPO, SHA_A, never_ran);
    api.add_check_run(
        REPO,
        SHA_A,
        CheckRun::completed("deploy", "startup_failure", ""),
    );
    let github = plugin(&api);
    let (checks, _) = changed(github.checks(&checks_query(SHA_A, "")).unwrap());
    for check in &checks {
        assert_eq!(
            *check.state.as_enum().unwrap(),
            CheckState::FailedToRun,
            "{check:?}"
        );
    }
    let build = checks.iter().find(|c| c.name.as_str() == "build").unwrap();
    assert!(
        build.log_tail.as_str().contains("spending limit"),
        "{build:?}"
    );
}

#[test]
fn a_commit_id_that_is_not_hex_is_refused_before_asking() {
    let api = GitHubApi::start();
    let error = plugin(&api)
        .checks(&checks_query("../../user", ""))
        .unwrap_err();
    assert_eq!(kind(&error), ErrorKind::InvalidInput);
    assert!(api.requests().is_empty());
}

#[test]
fn reviews_of_several_pull_requests_are_one_query_with_only_unresolved_threads() {
    let api = GitHubApi::start();
    api.open_pull(REPO, "ao/one", SHA_A, "One");
    api.open_pull(REPO, "ao/two", SHA_B, "Two");
    api.add_review(
        REPO,
        1,
        "alice",
        "CHANGES_REQUESTED",
        "Please handle errors.",
    );
    api.add_review(REPO, 1, "bob", "COMMENTED", "");
    let kept = api.add_thread(REPO, 1, ("src/lib.rs", 12), "alice", "unwrap here panics");
    api.add_thread(REPO, 1, ("src/main.rs", 3), "alice", "typo in the name");
    let resolved = api.add_thread(REPO, 1, ("README.md", 1), "bob", "fixed already");
    api.resolve_thread(REPO, 1, &resolved);
    api.add_review(REPO, 2, "carol", "APPROVED", "");
    let github = plugin(&api);
    let feedback = github
        .reviews(&ReviewsQuery {
            repository: repository(),
            numbers: vec![1, 2, 99].into(),
        })
        .unwrap();
    assert_eq!(api.counts().graphql, 1);
    assert_eq!(
        feedback.iter().map(|f| f.number).collect::<Vec<_>>(),
        vec![1, 2, 99]
    );
    let one = &feedback[0];
    assert_eq!(
        one.reviews.len(),
        1,
        "an empty comment-only review is no review"
    );
    assert_eq!(one.reviews[0].author.as_str(), "alice");
    assert_eq!(
        *one.reviews[0].decision.as_enum().unwrap(),
        ReviewDecision::ChangesRequested
    );
    assert_eq!(one.unresolved.len(), 2);
    let first = &one.unresolved[0];
    assert_eq!(first.thread_id.as_str(), kept);
    assert_eq!(
        (first.path.as_str(), first.line, first.body.as_str()),
        ("src/lib.rs", ROption::RSome(12), "unwrap here panics")
    );
    assert_eq!(first.author.as_str(), "alice");
    assert_eq!(
        *feedback[1].reviews[0].decision.as_enum().unwrap(),
        ReviewDecision::Approved
    );
    assert!(feedback[2].reviews.is_empty() && feedback[2].unresolved.is_empty());
}

#[test]
fn merge_happens_only_at_the_head_that_was_seen() {
    let api = GitHubApi::start();
    api.open_pull(REPO, "ao/one", SHA_A, "One");
    let github = plugin(&api);
    let stale = github
        .merge(&MergeRequest {
            repository: repository(),
            number: 1,
            head_sha: SHA_B.into(),
        })
        .unwrap_err();
    assert!(
        stale.message().contains("was not merged")
            && stale.message().contains("Head branch was modified"),
        "{}",
        stale.message()
    );
    assert!(!api.pull(REPO, 1).merged);
    github
        .merge(&MergeRequest {
            repository: repository(),
            number: 1,
            head_sha: SHA_A.into(),
        })
        .unwrap();
    assert!(api.pull(REPO, 1).merged);
    let put = api
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.body["sha"], SHA_A);
    assert_eq!(put.body["merge_method"], "merge");
}

#[test]
fn a_signed_webhook_names_its_delivery_and_branch_and_a_forged_one_is_refused() {
    let api = GitHubApi::start();
    api.open_pull(REPO, "ao/one", SHA_A, "One");
    let github = plugin(&api);
    let payload = api.pull_request_payload(REPO, 1, "synchronize");
    let good = Delivery::signed("pull_request", "delivery-1", &payload, SECRET);
    let hint = github.webhook(&good.to_webhook_delivery()).unwrap();
    assert_eq!(hint.delivery_id.as_str(), "delivery-1");
    assert_eq!(
        hint.branches.iter().map(|b| b.as_str()).collect::<Vec<_>>(),
        vec!["ao/one"]
    );

    let forged = github
        .webhook(&good.clone().wrongly_signed().to_webhook_delivery())
        .unwrap_err();
    assert_eq!(kind(&forged), ErrorKind::InvalidInput);
    assert!(
        forged.message().contains("signature does not match"),
        "{}",
        forged.message()
    );

    let mut tampered = good.clone();
    tampered.body.extend_from_slice(b" ");
    assert_eq!(
        kind(&github.webhook(&tampered.to_webhook_delivery()).unwrap_err()),
        ErrorKind::InvalidInput
    );

    let mut unsigned = good;
    unsigned.signature = None;
    let error = github.webhook(&unsigned.to_webhook_delivery()).unwrap_err();
    assert!(
        error.message().contains("no X-Hub-Signature-256"),
        "{}",
        error.message()
    );

    let push = Delivery::signed(
        "push",
        "delivery-2",
        &serde_json::json!({ "ref": "refs/heads/ao/two" }),
        SECRET,
    );
    let hint = github.webhook(&push.to_webhook_delivery()).unwrap();
    assert_eq!(hint.branches[0].as_str(), "ao/two");
    assert!(api.requests().is_empty(), "a webhook asks GitHub nothing");
}

#[test]
fn a_webhook_without_a_configured_secret_says_how_to_set_one() {
    let api = GitHubApi::start();
    let github = GitHub::new(&PluginContext {
        plugin_name: "github".into(),
        data_dir: "/nonexistent".into(),
        config_yaml: format!("api_url: {}\ntoken: t", api.api_url()).into(),
    })
    .unwrap();
    let payload = serde_json::json!({});
    let error = github
        .webhook(&Delivery::signed("ping", "d", &payload, SECRET).to_webhook_delivery())
        .unwrap_err();
    assert_eq!(kind(&error), ErrorKind::Config);
    assert!(
        error.message().contains("webhook_secret_env"),
        "{}",
        error.message()
    );
}

#[test]
fn a_rejected_token_is_a_config_error_that_never_shows_the_token() {
    let api = GitHubApi::start();
    api.require_token("another-token");
    let error = plugin(&api)
        .pull_requests(&pulls_query(&["x"], ""))
        .unwrap_err();
    assert_eq!(kind(&error), ErrorKind::Config);
    let message = error.message();
    assert!(
        message.contains("401")
            && message.contains("Bad credentials")
            && message.contains("plugins.config.github.token"),
        "{message}"
    );
    assert!(!message.contains(TOKEN), "the token leaked: {message}");
}

#[test]
fn a_used_up_rate_limit_says_until_when_and_is_not_asked_again_before() {
    let api = GitHubApi::start();
    api.open_pull(REPO, "ao/one", SHA_A, "One");
    api.fault(Some(Fault::RateLimited { reset_in_secs: 600 }));
    let github = plugin(&api);
    let error = github.checks(&checks_query(SHA_A, "")).unwrap_err();
    assert_eq!(kind(&error), ErrorKind::RateLimited);
    assert!(
        error.message().contains("403")
            && error.message().contains("rest rate limit is used up until")
            && error.message().contains("UTC"),
        "{}",
        error.message()
    );
    let limits = github.rate_limits().unwrap();
    let rest = limits.iter().find(|l| l.api.as_str() == "rest").unwrap();
    assert_eq!(rest.remaining, 0);
    assert!(rest.reset_at > 0);
    // Until the reset, the plugin does not ask at all.
    let asked = api.requests().len();
    api.fault(None);
    let again = github.checks(&checks_query(SHA_A, "")).unwrap_err();
    assert_eq!(kind(&again), ErrorKind::RateLimited);
    assert!(
        again.message().contains("not asking before then"),
        "{}",
        again.message()
    );
    assert_eq!(api.requests().len(), asked);
}

#[test]
fn too_many_requests_says_how_long_to_wait() {
    let api = GitHubApi::start();
    api.fault(Some(Fault::TooManyRequests {
        retry_after_secs: 7,
    }));
    let github = plugin(&api);
    let error = github.checks(&checks_query(SHA_A, "")).unwrap_err();
    assert_eq!(kind(&error), ErrorKind::RateLimited);
    assert!(error.message().contains("wait 7 s"), "{}", error.message());
    let limits = github.rate_limits().unwrap();
    assert_eq!(limits[0].retry_after, 7);
}

#[test]
fn malformed_huge_and_slow_answers_are_errors_that_say_so() {
    let api = GitHubApi::start();
    let github = plugin_with(&api, "timeout_secs: 1");
    api.fault(Some(Fault::Malformed));
    let error = github.checks(&checks_query(SHA_A, "")).unwrap_err();
    assert_eq!(kind(&error), ErrorKind::Failed);
    assert!(
        error.message().contains("is not the JSON expected"),
        "{}",
        error.message()
    );

    api.fault(Some(Fault::Huge { bytes: 9 << 20 }));
    let error = github.checks(&checks_query(SHA_A, "")).unwrap_err();
    assert!(
        error.message().contains("more than 8 MiB"),
        "{}",
        error.message()
    );

    api.fault(Some(Fault::Slow(Duration::from_secs(3))));
    let error = github.checks(&checks_query(SHA_A, "")).unwrap_err();
    assert!(
        error.message().contains("took too long"),
        "{}",
        error.message()
    );

    // Nothing was lost: the next good answer is whole.
    api.fault(None);
    api.add_check_run(REPO, SHA_A, CheckRun::completed("build", "success", ""));
    let (checks, _) = changed(github.checks(&checks_query(SHA_A, "")).unwrap());
    assert_eq!(checks.len(), 1);
}

#[test]
fn a_server_error_is_unavailable_for_now() {
    let api = GitHubApi::start();
    api.fault(Some(Fault::ServerError));
    let error = plugin(&api).checks(&checks_query(SHA_A, "")).unwrap_err();
    assert_eq!(kind(&error), ErrorKind::Unavailable);
    assert!(
        error.message().contains("502") && error.message().contains("having trouble"),
        "{}",
        error.message()
    );
}

#[test]
fn rate_limits_are_kept_per_api() {
    let api = GitHubApi::start();
    api.open_pull(REPO, "ao/one", SHA_A, "One");
    let github = plugin(&api);
    assert!(github.rate_limits().unwrap().is_empty());
    github.pull_requests(&pulls_query(&["ao/one"], "")).unwrap();
    let limits = github.rate_limits().unwrap();
    let names: Vec<&str> = limits.iter().map(|l| l.api.as_str()).collect();
    assert_eq!(names, vec!["rest", "graphql"]);
    assert!(limits
        .iter()
        .all(|l| l.limit == 5000 && l.remaining == 4999));
}

#[test]
fn doctor_checks_the_token_and_the_api() {
    let api = GitHubApi::start();
    let checks = plugin(&api).doctor().unwrap();
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    assert!(checks[0]
        .detail
        .as_str()
        .contains("plugins.config.github.token"));
    assert_eq!(api.counts().counted(), 0, "the doctor's request is free");
    api.require_token("another");
    let checks = plugin(&api).doctor().unwrap();
    assert!(
        !checks[1].ok && checks[1].detail.as_str().contains("rejected"),
        "{checks:?}"
    );
}

#[test]
fn an_unknown_setting_is_refused_by_name() {
    let error = GitHub::new(&PluginContext {
        plugin_name: "github".into(),
        data_dir: "/nonexistent".into(),
        config_yaml: "api_ulr: https://x".into(),
    })
    .err()
    .unwrap();
    assert!(
        error.message().contains("plugins.config.github") && error.message().contains("api_ulr"),
        "{}",
        error.message()
    );
}

#[test]
fn a_used_up_graphql_limit_is_rate_limited_too() {
    let api = GitHubApi::start();
    api.open_pull(REPO, "ao/one", SHA_A, "One");
    api.fault(Some(Fault::RateLimited { reset_in_secs: 900 }));
    let github = plugin(&api);
    let error = github
        .reviews(&ReviewsQuery {
            repository: repository(),
            numbers: vec![1].into(),
        })
        .unwrap_err();
    assert_eq!(kind(&error), ErrorKind::RateLimited);
    assert!(
        error
            .message()
            .contains("graphql rate limit is used up until"),
        "{}",
        error.message()
    );
    let limits = github.rate_limits().unwrap();
    assert_eq!(limits[0].api.as_str(), "graphql");
    assert_eq!(limits[0].remaining, 0);
}

#[test]
fn a_secondary_rate_limit_waits_a_minute_before_asking_again() {
    let api = GitHubApi::start();
    api.fault(Some(Fault::SecondaryRateLimit));
    let github = plugin(&api);
    let error = github.checks(&checks_query(SHA_A, "")).unwrap_err();
    assert_eq!(kind(&error), ErrorKind::RateLimited);
    assert!(error.message().contains("wait 60 s"), "{}", error.message());
    api.fault(None);
    let asked = api.requests().len();
    let again = github.checks(&checks_query(SHA_A, "")).unwrap_err();
    assert_eq!(kind(&again), ErrorKind::RateLimited);
    assert_eq!(api.requests().len(), asked, "asked again before the wait");
}

#[test]
fn twenty_idle_pull_requests_cost_nothing_after_the_first_poll() {
    let api = GitHubApi::start();
    let branches: Vec<String> = (1..=20).map(|n| format!("ao/s-{n}")).collect();
    let shas: Vec<String> = (1..=20).map(|n| format!("{n:08x}")).collect();
    for (branch, sha) in branches.iter().zip(&shas) {
        api.open_pull(REPO, branch, sha, branch);
        api.add_check_run(REPO, sha, CheckRun::completed("test", "success", ""));
    }
    let github = plugin(&api);
    let names: Vec<&str> = branches.iter().map(String::as_str).collect();
    let mut pulls_validator = String::new();
    let mut checks_validators = vec![String::new(); shas.len()];
    let mut poll = |first: bool| {
        let fetched = github
            .pull_requests(&pulls_query(&names, &pulls_validator))
            .unwrap();
        match fetched {
            Fetched::Changed { value, validator } => {
                assert!(first, "an idle list changed");
                assert_eq!(value.len(), 20);
                pulls_validator = validator.into();
            }
            Fetched::Unchanged => assert!(!first),
        }
        for (sha, validator) in shas.iter().zip(checks_validators.iter_mut()) {
            match github.checks(&checks_query(sha, validator)).unwrap() {
                Fetched::Changed { validator: new, .. } => {
                    assert!(first, "idle checks changed");
                    *validator = new.into();
                }
                Fetched::Unchanged => assert!(!first),
            }
        }
    };
    poll(true);
    let first = api.counts();
    // One list, one GraphQL query for all twenty, two lists per commit.
    assert_eq!((first.rest, first.graphql), (1 + 40, 1), "{first:?}");
    for _ in 0..10 {
        poll(false);
    }
    let idle = api.counts();
    assert_eq!(
        (idle.rest, idle.graphql),
        (first.rest, first.graphql),
        "{idle:?}"
    );
    assert_eq!(idle.rest_not_modified, first.rest_not_modified + 10 * 41);
}
