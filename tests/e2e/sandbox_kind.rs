//! The `sandbox` plugin kind through the host, with a fixture plugin that wraps the argv with a
//! marker program (no sandboxing tool needed): loading it in process (and isolated, through
//! `ao-host plugins test`), for this machine and for another host (`[remote]`), its answers and refusals crossing intact, and a
//! failing, panicking or hanging plugin failing that one call with its kind.

use std::time::Duration;

use ao_core::plugins::{check_plugin_choice, PluginCallError, PluginRegistry};
use ao_plugin_api::{
    abi_stable::std_types::RString,
    sandbox::{NetworkAccess, PathAccess, PathRule, SandboxRequest},
    ErrorKind, InterfaceKind, PluginContext, Transport,
};
use serde_json::Value;
use support::{build_fixture, install, json, stdout, ApiPatch, Harness};

const TIMEOUT: Duration = Duration::from_secs(10);

fn context(settings: &str) -> PluginContext {
    PluginContext {
        plugin_name: RString::from("fixture-sandbox"),
        data_dir: RString::from("/nonexistent"),
        config_yaml: RString::from(settings),
    }
}

/// An argv with what a shell would change, under a policy of absolute paths.
fn request(paths: &[(&str, PathAccess)]) -> SandboxRequest {
    SandboxRequest {
        session_id: "app-1".into(),
        argv: ["claude", "--session-id", "$(id)", "two words", ""]
            .into_iter()
            .map(RString::from)
            .collect(),
        cwd: "/nonexistent/worktrees/app-1".into(),
        paths: paths
            .iter()
            .map(|(path, access)| PathRule::new(*path, *access))
            .collect(),
        network: NetworkAccess::None,
    }
}

fn policy() -> SandboxRequest {
    request(&[
        ("/root/.ssh", PathAccess::Hidden),
        ("/tmp", PathAccess::Private),
        ("/nonexistent/worktrees/app-1", PathAccess::Writable),
    ])
}

/// A host no test reaches: building for it runs no command there.
fn elsewhere() -> Transport {
    Transport {
        host: "devbox".into(),
        command: vec!["/bin/false".into()].into(),
    }
}

#[tokio::test]
async fn a_sandbox_plugin_confines_through_the_host_for_this_machine_and_for_another_host() {
    let registry = PluginRegistry::load(&[build_fixture("sandbox", ApiPatch::None)]);
    assert!(
        registry.is_remote(InterfaceKind::Sandbox, "fixture-sandbox"),
        "`[remote]` is read for an added kind"
    );
    for transport in [None, Some(elsewhere())] {
        let sandbox = registry
            .sandbox(
                "fixture-sandbox",
                &context("{}"),
                transport.as_ref(),
                TIMEOUT,
            )
            .unwrap();
        assert_eq!(sandbox.name(), "fixture-sandbox");
        let request = policy();
        let confined = sandbox.confine(&request).await.unwrap();
        let mut want = vec![RString::from("/usr/bin/env")];
        want.extend(request.argv.iter().cloned());
        assert_eq!(confined.argv.as_slice(), want, "{transport:?}");
        assert_eq!(
            confined.notes.as_slice(),
            [RString::from("the fixture confines nothing")]
        );
        let checks = sandbox.doctor().await.unwrap();
        let on = match &transport {
            None => "this machine",
            Some(_) => "host `devbox`",
        };
        assert_eq!(
            checks[0].detail,
            format!("wraps argv with /usr/bin/env on {on}"),
            "the remote constructor gets the transport"
        );
    }
    for (what, request) in [
        (
            "a relative path",
            request(&[("relative/dir", PathAccess::Writable)]),
        ),
        (
            "an empty argv",
            SandboxRequest {
                argv: Vec::new().into(),
                ..policy()
            },
        ),
    ] {
        let sandbox = registry
            .sandbox("fixture-sandbox", &context("{}"), None, TIMEOUT)
            .unwrap();
        let error = sandbox.confine(&request).await.unwrap_err();
        assert_eq!(
            error.error_kind(),
            ErrorKind::InvalidInput,
            "{what}: {error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("sandbox plugin `fixture-sandbox`: confine: "),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_sandbox_plugin_that_fails_panics_or_is_unavailable_fails_one_call_with_its_kind() {
    let registry = PluginRegistry::load(&[build_fixture("sandbox", ApiPatch::None)]);
    let built = registry.sandbox(
        "fixture-sandbox",
        &context("{ constructor: panic }"),
        None,
        TIMEOUT,
    );
    let error = built.err().expect("a panicking constructor is an error");
    assert!(error.to_string().contains("panicked in `new`"), "{error}");
    let built = registry.sandbox(
        "fixture-sandbox",
        &context("{ constructor: error }"),
        None,
        TIMEOUT,
    );
    let error = built.err().expect("a refusing constructor is an error");
    assert!(
        error.to_string().contains("plugins.config.fixture-sandbox"),
        "{error}"
    );

    let unavailable = registry
        .sandbox(
            "fixture-sandbox",
            &context("{ methods: unavailable, only: [confine] }"),
            None,
            TIMEOUT,
        )
        .unwrap();
    let error = unavailable.confine(&policy()).await.unwrap_err();
    assert_eq!(error.error_kind(), ErrorKind::Unavailable, "{error}");

    let panicking = registry
        .sandbox(
            "fixture-sandbox",
            &context("{ methods: panic, only: [confine] }"),
            None,
            TIMEOUT,
        )
        .unwrap();
    for _ in 0..2 {
        let error = panicking.confine(&policy()).await.unwrap_err();
        assert_eq!(error.error_kind(), ErrorKind::Panicked, "{error}");
        assert!(
            error
                .to_string()
                .contains("sandbox fixture panics in confine"),
            "{error}"
        );
    }
    assert!(
        panicking.doctor().await.is_ok(),
        "the instance still answers"
    );
}

#[test]
fn a_hanging_confine_is_cut_off_by_the_timeout() {
    // Dropping a runtime waits for its blocking threads, and this one hangs for an hour.
    let reactor = tokio::runtime::Runtime::new().unwrap();
    reactor.block_on(async {
        let registry = PluginRegistry::load(&[build_fixture("sandbox", ApiPatch::None)]);
        let sandbox = registry
            .sandbox(
                "fixture-sandbox",
                &context("{ methods: hang }"),
                None,
                Duration::from_millis(200),
            )
            .unwrap();
        let error = sandbox.confine(&policy()).await.unwrap_err();
        assert!(matches!(error, PluginCallError::Timeout { .. }), "{error}");
        assert!(error.to_string().contains("call_timeout_ms"), "{error}");
    });
    reactor.shutdown_background();
}

#[test]
fn a_setting_that_names_no_sandbox_plugin_is_refused_naming_the_field_and_what_the_name_is() {
    let registry = PluginRegistry::load(&[
        build_fixture("sandbox", ApiPatch::None),
        build_fixture("scm", ApiPatch::None),
    ]);
    let check = |name: &str| {
        check_plugin_choice(
            &registry,
            InterfaceKind::Sandbox,
            name,
            "projects.app.sandbox.plugin",
            "/etc/ao-rs.yaml",
        )
        .map_err(|e| e.to_string())
    };
    check("fixture-sandbox").unwrap();
    assert_eq!(
        check("fixture-scm").unwrap_err(),
        "projects.app.sandbox.plugin in /etc/ao-rs.yaml names `fixture-scm`, which is an scm plugin, not a sandbox plugin; name one of the loaded sandbox plugins (fixture-sandbox), or run `ao-host plugins list`"
    );
    let missing = check("firejail").unwrap_err();
    assert!(
        missing.starts_with("projects.app.sandbox.plugin in /etc/ao-rs.yaml names `firejail`, but no sandbox plugin of that name is loaded (loaded sandbox plugins: fixture-sandbox)"),
        "{missing}"
    );
}

#[test]
fn a_sandbox_library_is_listed_as_remote_and_checked_by_the_kit() {
    // The harness installs the first-party `bubblewrap` too; the fixture is listed beside it.
    let harness = Harness::new(&[], "");
    let library = build_fixture("sandbox", ApiPatch::None);
    install(&library, &harness.plugin_dir(), None);
    let listing = json(&harness.ok(&["plugins", "list", "--json"]));
    let rows: &Vec<Value> = listing["plugins"].as_array().unwrap();
    let sandbox: Vec<&Value> = rows
        .iter()
        .filter(|r| r["kind"] == "sandbox" && r["name"] != "bubblewrap")
        .collect();
    assert_eq!(sandbox.len(), 1, "{rows:#?}");
    assert_eq!(
        (
            &sandbox[0]["name"],
            &sandbox[0]["status"],
            &sandbox[0]["remote"]
        ),
        (
            &Value::from("fixture-sandbox"),
            &Value::from("ok"),
            &Value::from(true)
        )
    );
    assert!(
        rows.iter().all(|r| r["status"] == "ok"),
        "every library loads: {rows:#?}"
    );
    let tested = harness.ao(&[
        "plugins",
        "test",
        &library.display().to_string(),
        "--kind",
        "sandbox",
    ]);
    let report = stdout(&tested);
    assert!(tested.status.success(), "{report}");
    assert!(report.contains("confine keeps the argv"), "{report}");
}
