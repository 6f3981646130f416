//! The ABI level, proven on real libraries: a plugin built against the real source of every
//! `ao-plugin-api` release before the format-2 manifest (0.1.0–0.1.6, extracted from git
//! history, not today's source cut back, which would inherit every change since) loads in this
//! host and answers — 0.1.0, whose interface 0.1.1 changed in place, through the 0.1.0 layouts
//! the host keeps (ABI level 0); 0.1.4's first commit, which changed in place again, is refused
//! naming why; one built with a newer crate version of the same
//! ABI level loads and passes the conformance kit; one that needs a host feature this host lacks
//! is refused, naming it.

use std::time::Duration;

use ao_core::plugins::PluginRegistry;
use ao_plugin_api::{
    abi_stable::std_types::{ROption, RString},
    AgentSession, PluginContext, PluginErrorKind, ABI_LEVEL, HOST_FEATURES, INTERFACE_REVISION,
};
use serde_json::Value;
use support::{
    ao_host, build_fixture, build_historical_fixture, install, json, plugins_list, rows_in, stderr,
    stdout, ApiPatch, TmuxServer, API_RELEASES,
};

const TIMEOUT: Duration = Duration::from_secs(10);

fn context(name: &str) -> PluginContext {
    PluginContext {
        plugin_name: RString::from(name),
        data_dir: RString::from("/nonexistent"),
        config_yaml: RString::new(),
    }
}

/// The releases whose libraries this host refuses, and the refusal.
///
/// `LaunchRequest` gained `allowed_commands` while the version stayed 0.1.4 (never tagged): a
/// library built at 0.1.4's first commit fails the layout check, which names the type (the
/// version cannot tell the two 0.1.4s apart). The last 0.1.4 loads.
const REFUSED: [(&str, &str); 1] = [(
    "086cb57",
    "interface layout differs from this host's (`LaunchRequest`: incompatible type size",
)];

#[tokio::test]
async fn plugins_built_against_every_release_from_0_1_0_to_0_1_6_load_and_answer() {
    let home = tempfile::tempdir().unwrap();
    for release in &API_RELEASES {
        let dir = home.path().join(release.commit);
        // 0.1.0's traits lack what 0.1.1 made required.
        let features: &[&str] = if release.version == "0.1.0" {
            &["first-release"]
        } else {
            &[]
        };
        let library = build_historical_fixture("history", release, features, &dir);
        if let Some((_, refusal)) = REFUSED.iter().find(|(commit, _)| *commit == release.commit) {
            let output = ao_host(home.path())
                .args(["plugins", "check"])
                .arg(&library)
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(1), "{}", release.commit);
            let error = stderr(&output);
            assert_eq!(error.trim().lines().count(), 1, "{error}");
            assert!(
                error.contains(&format!("{}: ", library.display())) && error.contains(refusal),
                "{}: {error}",
                release.commit
            );
            continue;
        }

        let listed = plugins_list(home.path(), &dir);
        assert_eq!(listed["host"]["abi_level"], ABI_LEVEL);
        let rows = rows_in(&listed, &dir);
        assert_eq!(rows.len(), 3, "{}: {rows:#?}", release.commit);
        // 0.1.1 changed the 0.1.0 interfaces in place (`Agent::input_pending` joined the agent's
        // fixed prefix, `Workspace::destroy` gained `delete_branch`), so 0.1.0 is ABI level 0,
        // loaded through its own layouts; every later library before the format-2 manifest is
        // level 1. None needs a host feature.
        let first_release = release.version == "0.1.0";
        for row in &rows {
            assert_eq!(row["status"], "ok", "{}: {row:#}", release.commit);
            assert_eq!(
                row["abi_level"],
                if first_release { 0 } else { 1 },
                "{row:#}"
            );
            assert_eq!(row["api_version"], release.version, "{row:#}");
            assert_eq!(row["interface_revision"], release.version, "{row:#}");
            assert_eq!(row["needs"], serde_json::json!([]), "{row:#}");
            assert_eq!(row["kit_version"], Value::Null, "{row:#}");
        }

        // Isolated (`plugins.isolate`), a child process loads the library and builds each plugin.
        let isolating = home.path().join("isolate.yaml");
        std::fs::write(&isolating, "plugins:\n  isolate: [\"*\"]\n").unwrap();
        let output = ao_host(home.path())
            .arg("--config")
            .arg(&isolating)
            .args(["plugins", "check", "--json"])
            .arg(&library)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}: {}",
            release.commit,
            stderr(&output)
        );
        let checked = json(&output);
        assert_eq!(checked.as_array().unwrap().len(), 3, "{checked:#}");
        for row in checked.as_array().unwrap() {
            assert_eq!(row["status"], "ok", "{}: {row:#}", release.commit);
            assert_eq!(row["isolated"], true, "{row:#}");
        }

        if first_release {
            // Calls reach a 0.1.0 plugin through the child and the adapters too: the kit's agent
            // checks answer, and the workspace's `destroy` error is the plugin's own.
            let output = ao_host(home.path())
                .arg("--config")
                .arg(&isolating)
                .args(["plugins", "test", "--json"])
                .arg(&library)
                .output()
                .unwrap();
            let report = json(&output);
            let row = |kind: &str, check: &str| {
                report
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|row| row["kind"] == kind && row["check"] == check)
                    .unwrap_or_else(|| panic!("no {kind} check `{check}`: {report:#}"))
                    .clone()
            };
            assert_eq!(row("agent", "launch_command")["ok"], true, "{report:#}");
            assert_eq!(row("agent", "environment")["ok"], true, "{report:#}");
            let destroy = row("workspace", "destroy");
            assert!(
                destroy["detail"]
                    .as_str()
                    .unwrap()
                    .contains("destroy: no workspace at /"),
                "{destroy:#}"
            );
        }

        let registry = PluginRegistry::load(std::slice::from_ref(&library));
        let runtime = registry
            .runtime("history-runtime", &context("history-runtime"), TIMEOUT)
            .unwrap();
        assert_eq!(
            runtime.capture_output("s-1", 10).await.unwrap(),
            format!(
                "s-1 on a runtime built with ao-plugin-api {}",
                release.version
            )
        );
        match runtime.alive_handles().await {
            Err(error) if first_release => {
                assert_eq!(error.kind(), PluginErrorKind::Unsupported, "{error}")
            }
            handles => assert_eq!(handles.unwrap(), [format!("alive-{}", release.version)]),
        }
        // `doctor` (0.1.3): a library built before it lacks it in its vtable, and the host gets
        // the FFI default; one built since has the plain trait's default, no checks.
        match runtime.doctor().await {
            Err(error) if release.version < "0.1.3" => {
                assert_eq!(error.kind(), PluginErrorKind::Unsupported, "{error}")
            }
            outcome => assert!(
                release.version >= "0.1.3" && outcome.as_ref().unwrap().is_empty(),
                "{}: {outcome:?}",
                release.commit
            ),
        }
        let agent = registry
            .agent("history-agent", &context("history-agent"), TIMEOUT)
            .unwrap();
        let session = AgentSession {
            session_id: "s-1".into(),
            project_id: "p".into(),
            branch: "session/s-1".into(),
            workspace_path: "/tmp".into(),
            system_prompt: ROption::RNone,
            agent_config: "".into(),
        };
        let environment = agent.environment(&session).await.unwrap();
        assert_eq!(environment.len(), 1);
        assert_eq!(environment[0].value.as_str(), release.version);
        // 0.1.0 agents cannot tell: nothing is pending, as hosts of that release assumed.
        assert!(!agent.input_pending("ready").await.unwrap());
        let workspace = registry
            .workspace("history-workspace", &context("history-workspace"), TIMEOUT)
            .unwrap();
        assert!(workspace
            .exists(&format!("/x/{}", release.version))
            .await
            .unwrap());
        // 0.1.0's `destroy` has no `delete_branch`: the path reaches it all the same.
        for delete_branch in [false, true] {
            workspace
                .destroy(&format!("/x/{}", release.version), delete_branch)
                .await
                .unwrap();
            let error = workspace
                .destroy("/x/other", delete_branch)
                .await
                .unwrap_err();
            assert_eq!(error.kind(), PluginErrorKind::NotFound, "{error}");
        }
    }
}

/// abi_stable records the crate version in every type layout, and compares it loosely: for
/// 0.x the same minor, any patch either way. So a library built with a later 0.1.x of the same
/// ABI level loads, and passes the kit, in this host.
#[test]
fn a_plugin_built_with_a_newer_api_patch_loads_and_passes_the_kit() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    let library = install(
        &build_fixture("sloppy", ApiPatch::Version("0.1.99")),
        &dir,
        None,
    );
    let rows = rows_in(&plugins_list(home.path(), &dir), &dir);
    assert!(!rows.is_empty());
    for row in &rows {
        assert_eq!(row["status"], "ok", "{row:#}");
        assert_eq!(row["abi_level"], ABI_LEVEL);
        assert_eq!(row["api_version"], "0.1.99");
        assert_eq!(row["interface_revision"], INTERFACE_REVISION);
    }

    // What a host from before the format-2 manifest reads: format 1 alone, which states the
    // interface revision, not 0.1.99, so such a host of that interface loads the library too.
    let bytes = std::fs::read(&library).unwrap();
    let symbol = b"AO_PLUGIN_ABI\0";
    assert!(bytes.windows(symbol.len()).any(|w| w == symbol));
    let mut hidden = Vec::with_capacity(bytes.len());
    let mut rest = &bytes[..];
    while let Some(at) = rest.windows(symbol.len()).position(|w| w == symbol) {
        hidden.extend_from_slice(&rest[..at]);
        hidden.extend_from_slice(b"AO_PLUGIN_ZZZ\0");
        rest = &rest[at + symbol.len()..];
    }
    hidden.extend_from_slice(rest);
    let old_view = home.path().join("format-1");
    std::fs::create_dir(&old_view).unwrap();
    std::fs::write(old_view.join(library.file_name().unwrap()), hidden).unwrap();
    let old_rows = rows_in(&plugins_list(home.path(), &old_view), &old_view);
    assert_eq!(old_rows.len(), rows.len());
    for row in old_rows {
        assert_eq!(row["status"], "ok", "{row:#}");
        assert_eq!(row["api_version"], INTERFACE_REVISION, "{row:#}");
    }

    let tmux = TmuxServer::new();
    let config = home.path().join("ao-rs.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {:?}\nplugins:\n  config:\n    tmux: {{ socket: {} }}\n",
            home.path().join("data").display().to_string(),
            tmux.socket
        ),
    )
    .unwrap();
    let output = ao_host(home.path())
        .arg("--config")
        .arg(&config)
        .args(["plugins", "test", "--json"])
        .arg(&library)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
}

#[test]
fn a_plugin_that_needs_a_host_feature_this_host_lacks_is_refused_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    let library = install(&build_fixture("needy", ApiPatch::None), &dir, None);
    let mark = home.path().join("constructed");
    let output = ao_host(home.path())
        .env("AO_TEST_CONSTRUCTOR_MARK", &mark)
        .args(["plugins", "check"])
        .arg(&library)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let error = stderr(&output);
    assert_eq!(error.trim().lines().count(), 1, "{error}");
    assert!(
        error.contains(&format!(
            "{}: needs host feature `teleport`, which this ao-host (ABI level {ABI_LEVEL}, features {}) does not offer: upgrade ao-host",
            library.display(),
            HOST_FEATURES.join(", ")
        )),
        "{error}"
    );
    assert!(!mark.exists(), "the refused library was loaded");

    let rows = rows_in(&plugins_list(home.path(), &dir), &dir);
    assert_eq!(rows[0]["status"], "error");
    assert_eq!(
        rows[0]["needs"],
        serde_json::json!(["runtime-start", "teleport"])
    );
    assert_eq!(rows[0]["api_version"], ao_plugin_api::API_VERSION);
}

#[test]
fn the_host_reports_its_abi_level_and_features() {
    let home = tempfile::tempdir().unwrap();
    let output = ao_host(home.path()).arg("--version").output().unwrap();
    assert!(output.status.success());
    let features = HOST_FEATURES.join(", ");
    assert!(
        stdout(&output).contains(&format!("ABI level {ABI_LEVEL}, features {features}")),
        "{}",
        stdout(&output)
    );
    let listed = plugins_list(home.path(), &home.path().join("none"));
    assert_eq!(listed["host"]["abi_level"], ABI_LEVEL);
    assert_eq!(listed["host"]["features"], serde_json::json!(HOST_FEATURES));
    assert_eq!(listed["host"]["interface_revision"], INTERFACE_REVISION);
}
