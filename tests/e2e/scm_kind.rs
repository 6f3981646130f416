//! The `scm` plugin kind through the whole contract: a library of it loads beside the other
//! kinds and changes nothing for them, is listed and doctored, and is called like any plugin —
//! off the reactor, under the call timeout, a panic an error of its own kind — with the
//! forge's answers crossing intact, and a setting that names something else refused by name.

use std::time::Duration;

use ao_core::plugins::{check_plugin_choice, PluginCallError, PluginRegistry};
use ao_plugin_api::{
    abi_stable::std_types::{ROption, RString},
    scm::{
        ChecksQuery, Fetched, MergeRequest, PullRequestQuery, PullRequestState, ReviewsQuery,
        ScmRepository, WebhookDelivery, WebhookHeader,
    },
    ErrorKind, InterfaceKind, PluginContext, PluginErrorKind,
};
use serde_json::Value;
use support::{build_fixture, fake_messages, json, stdout, wait_until, ApiPatch, Harness};

const TIMEOUT: Duration = Duration::from_secs(10);

fn context(settings: &str) -> PluginContext {
    PluginContext {
        plugin_name: RString::from("fixture-scm"),
        data_dir: RString::from("/nonexistent"),
        config_yaml: RString::from(settings),
    }
}

fn repository() -> ScmRepository {
    ScmRepository {
        repo_path: "/nonexistent/repo".into(),
        slug: ROption::RSome("owner/name".into()),
    }
}

fn pulls_query(branches: &[&str], validator: &str) -> PullRequestQuery {
    PullRequestQuery {
        repository: repository(),
        branches: branches.iter().map(|b| RString::from(*b)).collect(),
        validator: validator.into(),
    }
}

fn delivery(secret: &str, body: &str) -> WebhookDelivery {
    let header = |name: &str, value: &str| WebhookHeader {
        name: name.into(),
        value: value.into(),
    };
    WebhookDelivery {
        headers: vec![
            header("x-fixture-secret", secret),
            header("x-fixture-delivery", "d-1"),
        ]
        .into(),
        body: body.as_bytes().to_vec().into(),
    }
}

const ANSWERING: &str = "{ validator: v1, webhook_secret: s3cret, pull_requests: [{ number: 7, branch: session/app-1, head_sha: abc123 }] }";

#[tokio::test]
async fn an_scm_plugin_answers_through_the_host_with_its_forges_facts_intact() {
    let registry = PluginRegistry::load(&[build_fixture("scm", ApiPatch::None)]);
    let scm = registry
        .scm("fixture-scm", &context(ANSWERING), TIMEOUT)
        .unwrap();
    assert_eq!(scm.name(), "fixture-scm");
    assert!(
        scm.rate_limits().await.unwrap().is_empty(),
        "none before a call"
    );

    let Fetched::Changed { value, validator } = scm
        .pull_requests(pulls_query(&["session/app-1", "session/app-2"], ""))
        .await
        .unwrap()
    else {
        panic!("a first answer is a changed one");
    };
    assert_eq!(validator, "v1");
    assert_eq!(value.len(), 1, "{value:?}");
    let pull = &value[0];
    assert_eq!(
        (pull.number, pull.branch.as_str(), pull.head_sha.as_str()),
        (7, "session/app-1", "abc123")
    );
    assert_eq!(pull.state.as_enum().ok(), Some(&PullRequestState::Open));
    assert_eq!(
        scm.pull_requests(pulls_query(&["session/app-1"], "v1"))
            .await
            .unwrap(),
        Fetched::Unchanged,
        "the validator of the last answer gets `Unchanged`"
    );
    let checks = scm
        .checks(ChecksQuery {
            repository: repository(),
            head_sha: "abc123".into(),
            validator: RString::new(),
            log_lines: 20,
        })
        .await
        .unwrap();
    assert!(matches!(checks, Fetched::Changed { value, .. } if value.is_empty()));
    let reviews = scm
        .reviews(ReviewsQuery {
            repository: repository(),
            numbers: vec![7, 9].into(),
        })
        .await
        .unwrap();
    let numbers: Vec<u64> = reviews.iter().map(|r| r.number).collect();
    assert_eq!(numbers, [7, 9], "one entry per number, in order");
    scm.merge(MergeRequest {
        repository: repository(),
        number: 7,
        head_sha: "abc123".into(),
    })
    .await
    .unwrap();

    let refused = scm.webhook(delivery("guess", "session/app-1")).await;
    let refused = refused.expect_err("an unsigned delivery is refused");
    assert_eq!(refused.error_kind(), ErrorKind::InvalidInput, "{refused}");
    let hint = scm
        .webhook(delivery("s3cret", "session/app-1"))
        .await
        .unwrap();
    assert_eq!(hint.delivery_id, "d-1");
    assert_eq!(hint.branches.as_slice(), [RString::from("session/app-1")]);

    let limits = scm.rate_limits().await.unwrap();
    assert_eq!(
        limits.len(),
        1,
        "known once the forge was asked: {limits:?}"
    );
    let checks = scm.doctor().await.unwrap();
    assert_eq!(checks[0].what, "fixture forge");
}

#[tokio::test]
async fn an_scm_plugin_that_fails_panics_or_is_rate_limited_fails_one_call_with_its_kind() {
    let registry = PluginRegistry::load(&[build_fixture("scm", ApiPatch::None)]);
    let built = registry.scm("fixture-scm", &context("{ constructor: panic }"), TIMEOUT);
    let error = built.err().expect("a panicking constructor is an error");
    assert!(error.to_string().contains("panicked in `new`"), "{error}");
    let built = registry.scm("fixture-scm", &context("{ constructor: error }"), TIMEOUT);
    let error = built.err().expect("a refusing constructor is an error");
    assert!(
        error.to_string().contains("plugins.config.fixture-scm"),
        "{error}"
    );

    let limited = registry
        .scm(
            "fixture-scm",
            &context("{ methods: rate_limited }"),
            TIMEOUT,
        )
        .unwrap();
    let error = limited
        .pull_requests(pulls_query(&["b"], ""))
        .await
        .unwrap_err();
    assert_eq!(error.error_kind(), ErrorKind::RateLimited, "{error}");
    assert_eq!(
        error.kind(),
        PluginErrorKind::Failed,
        "the old kinds lack it"
    );
    assert!(
        error
            .to_string()
            .starts_with("scm plugin `fixture-scm`: pull_requests: "),
        "{error}"
    );

    let panicking = registry
        .scm(
            "fixture-scm",
            &context("{ methods: panic, only: [reviews] }"),
            TIMEOUT,
        )
        .unwrap();
    for _ in 0..2 {
        let error = panicking
            .reviews(ReviewsQuery {
                repository: repository(),
                numbers: vec![1].into(),
            })
            .await
            .unwrap_err();
        assert_eq!(error.error_kind(), ErrorKind::Panicked, "{error}");
        assert!(
            error.to_string().contains("scm fixture panics in reviews"),
            "{error}"
        );
    }
    assert!(
        panicking.rate_limits().await.is_ok(),
        "the instance still answers"
    );
}

#[test]
fn a_hanging_scm_call_is_cut_off_by_the_timeout() {
    // Dropping a runtime waits for its blocking threads, and this one hangs for an hour.
    let reactor = tokio::runtime::Runtime::new().unwrap();
    reactor.block_on(async {
        let registry = PluginRegistry::load(&[build_fixture("scm", ApiPatch::None)]);
        let scm = registry
            .scm(
                "fixture-scm",
                &context("{ methods: hang }"),
                Duration::from_millis(200),
            )
            .unwrap();
        let error = scm
            .pull_requests(pulls_query(&["b"], ""))
            .await
            .unwrap_err();
        assert!(matches!(error, PluginCallError::Timeout { .. }), "{error}");
        assert!(error.to_string().contains("call_timeout_ms"), "{error}");
    });
    reactor.shutdown_background();
}

#[test]
fn a_setting_that_names_no_scm_plugin_is_refused_naming_the_field_and_what_the_name_is() {
    let registry = PluginRegistry::load(&[
        build_fixture("scm", ApiPatch::None),
        build_fixture("faulty", ApiPatch::None),
    ]);
    check_plugin_choice(
        &registry,
        InterfaceKind::Scm,
        "fixture-scm",
        "projects.app.scm",
        "/etc/ao-rs.yaml",
    )
    .unwrap();
    let runtime = check_plugin_choice(
        &registry,
        InterfaceKind::Scm,
        "faulty",
        "projects.app.scm",
        "/etc/ao-rs.yaml",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        runtime,
        "projects.app.scm in /etc/ao-rs.yaml names `faulty`, which is a runtime plugin, not an scm plugin; name one of the loaded scm plugins (fixture-scm), or run `ao-host plugins list`"
    );
    let missing = check_plugin_choice(
        &registry,
        InterfaceKind::Scm,
        "gitlab",
        "scm",
        "/etc/ao-rs.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        missing.starts_with("scm in /etc/ao-rs.yaml names `gitlab`, but no scm plugin of that name is loaded (loaded scm plugins: fixture-scm)"),
        "{missing}"
    );
}

#[test]
fn an_scm_library_is_listed_and_doctored_and_changes_nothing_for_the_other_kinds() {
    let harness = Harness::new(&[], "");
    harness.install_scm_fixture("{}");
    let listing = json(&harness.ok(&["plugins", "list", "--json"]));
    let rows: &Vec<Value> = listing["plugins"].as_array().unwrap();
    let scm: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "scm").collect();
    assert_eq!(scm.len(), 1, "{rows:#?}");
    assert_eq!(
        (&scm[0]["name"], &scm[0]["status"], &scm[0]["remote"]),
        (
            &Value::from("fixture-scm"),
            &Value::from("ok"),
            &Value::from(false)
        )
    );
    assert!(
        rows.iter().all(|r| r["status"] == "ok"),
        "every library loads: {rows:#?}"
    );
    let doctor = stdout(&harness.ao(&["doctor"]));
    assert!(
        doctor.contains("ok    scm plugin `fixture-scm`: loaded from ")
            && doctor.contains(
                "ok    scm plugin `fixture-scm`: fixture forge: answers from its settings"
            ),
        "{doctor}"
    );

    let spawned = json(&harness.ok(&["spawn", "app", "--task", "beside an scm", "--json"]));
    let id = spawned["id"].as_str().unwrap().to_string();
    let log = harness.log_dir().join(&id);
    assert!(
        wait_until(TIMEOUT, || fake_messages(&log) == ["beside an scm"]),
        "the task reached the agent: {:?}",
        fake_messages(&log)
    );
    harness.ok(&["session", "kill", &id]);
    harness.assert_nothing_left(&id);
}
