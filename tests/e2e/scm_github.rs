//! The real `github` library (`plugins/scm-github`), loaded by the host like any plugin, against
//! the loopback GitHub stand-in and a clone whose `origin` names the repository: a branch
//! pushed for real becomes a pull request the host sees, an unchanged answer costs nothing, a
//! failed check arrives with its log tail, and GitHub's refusals keep their kind across the
//! boundary.

use std::time::Duration;

use ao_core::plugins::PluginRegistry;
use ao_plugin_api::{
    abi_stable::std_types::{ROption, RString},
    scm::{CheckState, ChecksQuery, Fetched, PullRequestQuery, ReviewsQuery, ScmRepository},
    ErrorKind, PluginContext,
};
use support::{
    build_workspace_plugin, git,
    github_api::{BareOrigin, CheckRun, Delivery, Fault, GitHubApi},
    init_repo,
};

const TIMEOUT: Duration = Duration::from_secs(30);
const SLUG: &str = "octo/widgets";

fn context(api: &GitHubApi) -> PluginContext {
    PluginContext {
        plugin_name: RString::from("github"),
        data_dir: RString::from("/nonexistent"),
        config_yaml: RString::from(format!(
            "api_url: {}\ntoken: e2e-token\nwebhook_secret: e2e-secret",
            api.api_url()
        )),
    }
}

/// A plain test: the stand-in runs a runtime of its own, which cannot start inside another.
#[test]
fn a_pushed_branch_its_failed_check_and_its_review_reach_the_host_through_the_library() {
    let scratch = tempfile::tempdir().unwrap();
    let clone = scratch.path().join("clone");
    init_repo(&clone);
    let origin = BareOrigin::create(scratch.path(), SLUG, &clone);
    git(&clone, &["switch", "-q", "-c", "session/app-1"]);
    std::fs::write(clone.join("lib.rs"), "fn main() {}\n").unwrap();
    git(&clone, &["add", "lib.rs"]);
    git(&clone, &["commit", "-q", "-m", "work"]);
    git(&clone, &["push", "-q", "origin", "session/app-1"]);

    let api = GitHubApi::start();
    let (number, head) =
        api.open_pull_when_pushed(SLUG, &origin, "session/app-1", Duration::from_secs(5));
    api.add_check_run(
        SLUG,
        &head,
        CheckRun::completed("test", "failure", "compiling\nerror[E0425]: oops\n"),
    );
    api.add_thread(SLUG, number, ("lib.rs", 1), "alice", "name it better");

    let registry = PluginRegistry::load(&[build_workspace_plugin("ao-scm-github")]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let scm = registry.scm("github", &context(&api), TIMEOUT).unwrap();
        let repository = ScmRepository {
            repo_path: clone.display().to_string().into(),
            slug: ROption::RNone,
        };
        let query = |validator: &str| PullRequestQuery {
            repository: repository.clone(),
            branches: vec![RString::from("session/app-1")].into(),
            validator: validator.into(),
        };
        let Fetched::Changed { value, validator } = scm.pull_requests(query("")).await.unwrap()
        else {
            panic!("a first answer is a changed one");
        };
        assert_eq!(value.len(), 1, "{value:?}");
        assert_eq!(
            (value[0].number, value[0].head_sha.as_str()),
            (number, head.as_str())
        );
        assert_eq!(
            scm.pull_requests(query(validator.as_str())).await.unwrap(),
            Fetched::Unchanged
        );
        assert_eq!(api.counts().rest_not_modified, 1);

        let Fetched::Changed { value: checks, .. } = scm
            .checks(ChecksQuery {
                repository: repository.clone(),
                head_sha: head.as_str().into(),
                validator: RString::new(),
                log_lines: 1,
            })
            .await
            .unwrap()
        else {
            panic!("a first answer is a changed one");
        };
        assert_eq!(checks[0].state.as_enum().ok(), Some(&CheckState::Failed));
        assert_eq!(checks[0].log_tail.as_str(), "error[E0425]: oops");

        let feedback = scm
            .reviews(ReviewsQuery {
                repository: repository.clone(),
                numbers: vec![number].into(),
            })
            .await
            .unwrap();
        assert_eq!(feedback[0].unresolved[0].body.as_str(), "name it better");

        let push = Delivery::signed(
            "push",
            "d-1",
            &serde_json::json!({ "ref": "refs/heads/session/app-1" }),
            "e2e-secret",
        );
        let hint = scm.webhook(push.to_webhook_delivery()).await.unwrap();
        assert_eq!(hint.branches.as_slice(), [RString::from("session/app-1")]);

        api.fault(Some(Fault::RateLimited { reset_in_secs: 300 }));
        let error = scm.pull_requests(query("")).await.unwrap_err();
        assert_eq!(error.error_kind(), ErrorKind::RateLimited, "{error}");
        assert!(
            error.to_string().contains("rate limit is used up until"),
            "{error}"
        );
        let limits = scm.rate_limits().await.unwrap();
        assert!(
            limits.iter().any(|l| l.api == "rest" && l.remaining == 0),
            "{limits:?}"
        );
    });
}
