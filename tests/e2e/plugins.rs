//! Loading real plugin libraries: the first-party ones, and every kind of bad library.

use std::{path::Path, process::Output, time::Duration};

use ao_core::plugins::{PluginCallError, PluginRegistry};
use ao_plugin_api::{
    abi_stable::std_types::RString, PluginContext, PluginErrorKind, RuntimeCreateRequest,
};
use support::macho;
use support::{
    ao_host, build_fixture, install, install_first_party, json, plugins_list, rows_in, stderr,
    ApiPatch,
};

fn check(home: &Path, library: &Path) -> Output {
    ao_host(home)
        .args(["plugins", "check", "--json"])
        .arg(library)
        .output()
        .unwrap()
}

/// `plugins check` refuses the library, with one line on stderr naming it and containing `want`.
fn assert_refused(home: &Path, library: &Path, want: &str) {
    let output = check(home, library);
    assert!(
        !output.status.success(),
        "check accepted {}",
        library.display()
    );
    let err = stderr(&output);
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one-line error expected:\n{err}"
    );
    assert!(
        err.contains(&library.display().to_string()),
        "error does not name the file: {err}"
    );
    assert!(err.contains(want), "error lacks `{want}`: {err}");
    let rows = json(&output);
    assert_eq!(rows[0]["status"], "error");
}

#[test]
fn first_party_plugins_are_listed_ok_with_versions() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    install_first_party(&dir);
    let listing = plugins_list(home.path(), &dir);
    let rows = rows_in(&listing, &dir);
    let mut found: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "ok", "{r}");
            assert_eq!(r["version"], "0.1.0");
            assert_eq!(r["api_version"], ao_plugin_api::API_VERSION);
            (
                r["kind"].as_str().unwrap().into(),
                r["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("agent".into(), "claude-code".into()),
            ("runtime".into(), "tmux".into()),
            ("sandbox".into(), "bubblewrap".into()),
            ("workspace".into(), "git-worktree".into()),
        ]
    );
    for library in std::fs::read_dir(&dir).unwrap() {
        let output = check(home.path(), &library.unwrap().path());
        assert!(output.status.success(), "{}", stderr(&output));
    }
}

#[test]
fn broken_files_are_refused_and_do_not_stop_the_others() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    install_first_party(&dir);
    let junk = dir.join("libjunk.so");
    std::fs::write(&junk, "this is a text file\n").unwrap();
    let empty = dir.join("libempty.so");
    std::fs::write(&empty, "").unwrap();
    let real = std::fs::read(dir.join(support::library_file_name("ao-runtime-tmux"))).unwrap();
    let truncated = dir.join("libtruncated.so");
    std::fs::write(&truncated, &real[..4096]).unwrap();

    assert_refused(home.path(), &junk, "not a shared library");
    assert_refused(home.path(), &empty, "empty file");
    assert_refused(home.path(), &truncated, "truncated");

    let listing = plugins_list(home.path(), &dir);
    let rows = rows_in(&listing, &dir);
    let ok = rows.iter().filter(|r| r["status"] == "ok").count();
    let errors = rows.iter().filter(|r| r["status"] == "error").count();
    assert_eq!((ok, errors), (support::FIRST_PARTY.len(), 3), "{rows:#?}");
}

#[test]
fn a_shared_library_without_the_manifest_is_not_an_ao_plugin() {
    let home = tempfile::tempdir().unwrap();
    let library = install(
        &build_fixture("not-a-plugin", ApiPatch::None),
        &home.path().join("plugins"),
        None,
    );
    assert_refused(home.path(), &library, "not an ao plugin");
}

#[test]
fn a_library_with_a_different_interface_layout_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let library = install(
        &build_fixture("faulty", ApiPatch::LayoutDrift),
        &home.path().join("plugins"),
        None,
    );
    // The first difference, in one line, at default verbosity: the drifted struct has a field
    // more than the host's.
    assert_refused(
        home.path(),
        &library,
        "interface layout differs from this host's (`RuntimeCreateRequest`: incompatible type size (the library's: 136, this host's: 128); too many fields (the library's: 5, this host's: 4))",
    );
    // The manifest still names what the library is.
    let rows = json(&check(home.path(), &library));
    assert_eq!(rows[0]["name"], "faulty");
    assert_eq!(rows[0]["api_version"], ao_plugin_api::API_VERSION);
}

/// Its manifest says ABI level 1, but abi_stable compares the crate version recorded in every
/// type layout, for 0.x by minor: an `ao-plugin-api` 0.2 never loads in a 0.1 host (which is why
/// the interface crate stays on 0.1), and the refusal names both versions.
#[test]
fn a_library_built_with_another_api_minor_is_refused_with_both_versions() {
    let home = tempfile::tempdir().unwrap();
    let library = install(
        &build_fixture("faulty", ApiPatch::Version("0.2.0")),
        &home.path().join("plugins"),
        None,
    );
    assert_refused(
        home.path(),
        &library,
        &format!(
            "declares ao-plugin-api 0.2.0 but its interface layout differs from this host's (`PluginLibrary`: incompatible package versions (the library's: 0.2.0, this host's: {0})): rebuild it against the ao-plugin-api {0} release",
            ao_plugin_api::API_VERSION
        ),
    );
}

#[test]
fn a_constructor_error_fails_check_with_the_plugins_message() {
    let home = tempfile::tempdir().unwrap();
    let library = install(
        &build_fixture("faulty", ApiPatch::None),
        &home.path().join("plugins"),
        None,
    );
    std::fs::write(
        home.path().join("ao-rs.yaml"),
        "plugins:\n  config:\n    faulty: { constructor: error }\n",
    )
    .unwrap();
    assert_refused(home.path(), &library, "faulty fixture refuses to start");

    std::fs::write(
        home.path().join("ao-rs.yaml"),
        "plugins:\n  config:\n    faulty: { no_such_setting: 1 }\n",
    )
    .unwrap();
    assert_refused(
        home.path(),
        &library,
        "plugins.config.faulty: unknown field `no_such_setting`",
    );
}

#[test]
fn a_second_library_with_the_same_plugin_is_reported_as_shadowed() {
    let home = tempfile::tempdir().unwrap();
    let first = home.path().join("first");
    let second = home.path().join("second");
    let tmux = support::library_file_name("ao-runtime-tmux");
    install(&support::first_party_build()[0], &first, Some(&tmux));
    install(&support::first_party_build()[0], &second, Some(&tmux));
    let output = ao_host(home.path())
        .args(["plugins", "list", "--json", "--plugin-dir"])
        .arg(&first)
        .arg("--plugin-dir")
        .arg(&second)
        .output()
        .unwrap();
    let listing = json(&output);
    let winner = rows_in(&listing, &first);
    let loser = rows_in(&listing, &second);
    assert_eq!(winner[0]["status"], "ok");
    assert_eq!(loser[0]["status"], "shadowed");
    assert!(loser[0]["reason"]
        .as_str()
        .unwrap()
        .contains(first.to_str().unwrap()));
}

fn faulty_context(settings: &str) -> PluginContext {
    PluginContext {
        plugin_name: RString::from("faulty"),
        data_dir: RString::from("/nonexistent"),
        config_yaml: RString::from(settings),
    }
}

#[tokio::test]
async fn a_panicking_plugin_becomes_an_error_and_the_host_keeps_running() {
    let registry = PluginRegistry::load(&[build_fixture("faulty", ApiPatch::None)]);

    let err = registry
        .runtime(
            "faulty",
            &faulty_context("constructor: panic"),
            Duration::from_secs(5),
        )
        .err()
        .expect("a panicking constructor is an error");
    assert!(err.to_string().contains("panicked in `new`"), "{err}");

    let runtime = registry
        .runtime(
            "faulty",
            &faulty_context("methods: panic"),
            Duration::from_secs(5),
        )
        .unwrap();
    for _ in 0..2 {
        let err = runtime.is_alive("s-1").await.unwrap_err();
        assert_eq!(err.kind(), PluginErrorKind::Panicked);
        assert!(
            err.to_string()
                .contains("faulty fixture panics in is_alive"),
            "{err}"
        );
    }
    let healthy = registry
        .runtime("faulty", &faulty_context(""), Duration::from_secs(5))
        .unwrap();
    assert!(healthy.is_alive("s-1").await.unwrap());
}

#[test]
fn a_hanging_plugin_call_is_cut_off_by_the_timeout() {
    // Dropping a runtime waits for its blocking threads, and this one hangs for an hour.
    let reactor = tokio::runtime::Runtime::new().unwrap();
    reactor.block_on(hanging_call_times_out());
    reactor.shutdown_background();
}

async fn hanging_call_times_out() {
    let registry = PluginRegistry::load(&[build_fixture("faulty", ApiPatch::None)]);
    let runtime = registry
        .runtime(
            "faulty",
            &faulty_context("methods: hang"),
            Duration::from_millis(200),
        )
        .unwrap();
    let request = RuntimeCreateRequest {
        session_id: "s-1".into(),
        cwd: "/".into(),
        launch_command: vec![RString::from("true")].into(),
        env: Vec::new().into(),
    };
    let err = runtime.create(request).await.unwrap_err();
    assert!(matches!(err, PluginCallError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("call_timeout_ms"), "{err}");
}

#[test]
fn a_pinned_plugin_loads_only_with_the_matching_digest() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    install_first_party(&dir);
    let tmux = dir.join(support::library_file_name("ao-runtime-tmux"));
    let listing = plugins_list(home.path(), &dir);
    let digest = rows_in(&listing, &dir)
        .into_iter()
        .find(|r| r["name"] == "tmux")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 7 + 64,
        "{digest}"
    );

    let config = home.path().join("ao-rs.yaml");
    std::fs::write(
        &config,
        format!("plugins:\n  pin:\n    tmux: \"{digest}\"\n"),
    )
    .unwrap();
    let output = check(home.path(), &tmux);
    assert!(output.status.success(), "{}", stderr(&output));

    let wrong = format!("sha256:{}", "0".repeat(64));
    std::fs::write(
        &config,
        format!("plugins:\n  pin:\n    tmux: \"{wrong}\"\n"),
    )
    .unwrap();
    assert_refused(home.path(), &tmux, "does not match plugins.pin.tmux");
    // Unpinned plugins are unaffected.
    let rows = rows_in(&plugins_list(home.path(), &dir), &dir);
    let ok: Vec<_> = rows
        .iter()
        .filter(|r| r["status"] == "ok")
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(ok.len(), support::FIRST_PARTY.len() - 1, "{rows:#?}");
}

#[tokio::test]
async fn a_plugin_built_before_a_method_was_added_still_loads_and_gets_the_default() {
    let library = build_fixture("old-runtime", ApiPatch::OldRuntime);
    let registry = PluginRegistry::load(std::slice::from_ref(&library));
    let rows = registry.rows();
    assert_eq!(
        rows[0].status,
        ao_core::plugins::PluginStatus::Ok,
        "{rows:?}"
    );
    // Built against 0.1.0, loaded by a newer host of the same line.
    assert_eq!(rows[0].api_version.as_deref(), Some("0.1.0"));
    assert_ne!(ao_plugin_api::API_VERSION, "0.1.0");
    let runtime = registry
        .runtime("old-runtime", &faulty_context(""), Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        runtime.capture_output("s-1", 10).await.unwrap(),
        "old runtime screen"
    );
    let err = runtime.alive_handles().await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::Unsupported);
    assert!(
        err.to_string()
            .contains("built before `alive_handles` existed"),
        "{err}"
    );
    // Every method added since (0.1.3) answers with its default too, so the host falls back.
    let err = runtime.doctor().await.unwrap_err();
    assert!(
        err.to_string().contains("built before `doctor` existed"),
        "{err}"
    );
    let err = runtime
        .capture_outputs(vec!["s-1".into()], 10)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::Unsupported);
    // `start` (0.1.7): the host is given the runtime's `create` instead, and a handle.
    let request = ao_plugin_api::RuntimeCreateRequest {
        session_id: "s-2".into(),
        cwd: "/".into(),
        launch_command: vec!["true".into()].into(),
        env: vec![ao_plugin_api::EnvVar::new("WHOLE", "environment")].into(),
    };
    let added = vec![ao_plugin_api::EnvVar::new("AO_SESSION", "s-2")];
    assert_eq!(runtime.start(request, added).await.unwrap(), "s-2");
}

/// A library built against a later ao-plugin-api, whose enums that can grow have variants this
/// host does not know, loads; each such answer is read as its enum's fallback (logged), never
/// as the old method's answer, a refusal or a panic.
#[tokio::test]
async fn variants_a_newer_library_added_are_read_as_fallbacks() {
    use ao_plugin_api::{Activity, Readiness};
    let library = build_fixture("future-agent", ApiPatch::FutureVariants);
    let registry = PluginRegistry::load(std::slice::from_ref(&library));
    let rows = registry.rows();
    assert_eq!(
        rows[0].status,
        ao_core::plugins::PluginStatus::Ok,
        "{rows:?}"
    );
    let agent = registry
        .agent("future-agent", &faulty_context(""), Duration::from_secs(5))
        .unwrap();
    // `Reviewing` and `Paused`: the library's old methods would have said Idle and Ready.
    assert_eq!(agent.activity("screen").await.unwrap(), Activity::Working);
    assert_eq!(agent.is_ready("screen").await.unwrap(), Readiness::Starting);
    let err = agent.activity("throttled").await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::Failed);
    assert!(
        err.to_string().contains("throttled; wait a minute"),
        "{err}"
    );
}

/// The same library isolated (the kit's default): the child knows the variants no more than
/// the host, and sends their names, which the host logs as it reads the fallbacks.
#[test]
fn variants_a_newer_isolated_library_added_are_named_in_the_log() {
    let library = build_fixture("future-agent", ApiPatch::FutureVariants);
    let home = tempfile::tempdir().unwrap();
    let output = ao_host(home.path())
        .args(["plugins", "test", "--json"])
        .arg(&library)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let checks = json(&output);
    let reading = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "reading an empty screen")
        .unwrap_or_else(|| panic!("{checks:#}"));
    assert_eq!(reading["ok"], true, "{reading}");
    let log = stderr(&output);
    for named in [
        "answered activity `Reviewing`, which this ao-host does not know",
        "read as Working",
        "answered readiness `Paused`",
        "read as Starting",
    ] {
        assert!(log.contains(named), "no {named:?} in: {log}");
    }
}

/// An agent built before `activity_state` and `readiness_state` (0.1.7) is asked its
/// `activity` and `is_ready` instead.
#[tokio::test]
async fn an_agent_built_before_the_growing_states_is_asked_the_old_methods() {
    use ao_plugin_api::{Activity, Readiness};
    let library = build_fixture("old-runtime", ApiPatch::OldRuntime);
    let registry = PluginRegistry::load(std::slice::from_ref(&library));
    let agent = registry
        .agent("old-agent", &faulty_context(""), Duration::from_secs(5))
        .unwrap();
    assert_eq!(agent.activity("screen").await.unwrap(), Activity::Idle);
    assert_eq!(agent.is_ready("screen").await.unwrap(), Readiness::Ready);
}

/// An agent built before `Agent::launch` (0.1.4) starts through its `launch_command`: the host
/// types the first message, reads the screen, and cannot resume it.
#[tokio::test]
async fn an_agent_built_before_launch_is_started_by_its_launch_command() {
    use ao_plugin_api::{abi_stable::std_types::ROption, AgentSession, LaunchRequest};
    let library = build_fixture("old-runtime", ApiPatch::OldRuntime);
    let registry = PluginRegistry::load(std::slice::from_ref(&library));
    let agent = registry
        .agent("old-agent", &faulty_context(""), Duration::from_secs(5))
        .unwrap();
    let session = AgentSession {
        session_id: "s-1".into(),
        project_id: "p".into(),
        branch: "session/s-1".into(),
        workspace_path: "/tmp".into(),
        system_prompt: ROption::RNone,
        agent_config: "".into(),
    };
    let request = LaunchRequest {
        session: session.clone(),
        first_message: ROption::RSome("task".into()),
        event_command: vec!["ao-host".into(), "hook".into()].into(),
        resume: ROption::RNone,
        allowed_commands: Default::default(),
    };
    let plan = agent.launch(&request).await.unwrap();
    assert_eq!(
        plan.argv.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        agent.launch_command(&session).await.unwrap()
    );
    assert!(!plan.takes_first_message && !plan.reports_events);
    assert!(plan.conversation_id.is_none());
    let resume = LaunchRequest {
        resume: ROption::RSome("abc".into()),
        ..request
    };
    let err = agent.launch(&resume).await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::Unsupported);
}

/// Nothing of a library runs before it is trusted: `dlopen` runs its constructors, so every
/// refusal must come from its bytes. Each fixture's constructor writes a mark file.
#[test]
fn a_refused_library_never_runs_a_line_of_its_code() {
    let home = tempfile::tempdir().unwrap();
    let mark = home.path().join("constructor-ran");
    let ran = || std::fs::read_to_string(&mark).ok();
    let run = |args: &[&str], plugin_dir: &Path| {
        ao_host(home.path())
            .env("AO_TEST_CONSTRUCTOR_MARK", &mark)
            .arg("--plugin-dir")
            .arg(plugin_dir)
            .args(args)
            .output()
            .unwrap()
    };

    // A library that is not an ao plugin, in a plugin folder and named directly.
    let plain = home.path().join("plain");
    let not_a_plugin = install(&build_fixture("not-a-plugin", ApiPatch::None), &plain, None);
    for args in [
        &["plugins", "list"][..],
        &["plugins", "check", not_a_plugin.to_str().unwrap()],
        &["session", "ls"],
        &["doctor"],
    ] {
        let output = run(args, &plain);
        assert_eq!(ran(), None, "`ao-host {args:?}` ran its constructor");
        if args[0] == "plugins" {
            assert!(
                String::from_utf8_lossy(&output.stdout).contains("not an ao plugin")
                    || stderr(&output).contains("not an ao plugin"),
                "{args:?}: {}",
                stderr(&output)
            );
        }
    }

    // An impostor under a pinned plugin's name.
    let impostors = home.path().join("impostors");
    let faulty = install(&build_fixture("faulty", ApiPatch::None), &impostors, None);
    std::fs::write(
        home.path().join("ao-rs.yaml"),
        format!(
            "plugins:\n  pin:\n    faulty: \"sha256:{}\"\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    for args in [
        &["plugins", "list"][..],
        &["session", "ls"],
        &["spawn", "--task", "x", "--runtime", "faulty"],
    ] {
        run(args, &impostors);
        assert_eq!(
            ran(),
            None,
            "`ao-host {args:?}` ran a library whose pin differs"
        );
    }
    let output = run(&["plugins", "check", faulty.to_str().unwrap()], &impostors);
    assert!(
        stderr(&output).contains("does not match plugins.pin.faulty"),
        "{}",
        stderr(&output)
    );
    assert_eq!(ran(), None);
    std::fs::remove_file(home.path().join("ao-rs.yaml")).unwrap();

    // A good library reached through a link in a folder anyone can write to.
    let open = home.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let link = open.join(faulty.file_name().unwrap());
    std::os::unix::fs::symlink(&faulty, &link).unwrap();
    let output = run(&["plugins", "check", link.to_str().unwrap()], &open);
    assert!(
        stderr(&output).contains("writable by everyone"),
        "{}",
        stderr(&output)
    );
    run(&["plugins", "list"], &open);
    assert_eq!(
        ran(),
        None,
        "a library behind an open folder's link was loaded"
    );

    // The mark does work: the same library, trusted, runs its constructor when loaded.
    let output = run(&["plugins", "check", faulty.to_str().unwrap()], &impostors);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(ran().as_deref(), Some("faulty ran\n"));
}

/// A FIFO named like a library would block a plain `open` forever: it is refused at once.
#[test]
fn a_fifo_named_like_a_library_is_refused_without_hanging() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let fifo = dir.join("libfifo.so");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid, NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    assert_refused(home.path(), &fifo, "not a regular file");
}

/// A format-2 manifest naming one runtime `name`, as a Mach-O export.
fn abi_export(name: &str) -> (&'static str, macho::Export) {
    (
        "AO_PLUGIN_ABI",
        macho::Export::Bytes(macho::abi_manifest(&macho::payload(
            "runtime", name, "0.3.0",
        ))),
    )
}

#[test]
fn a_macos_librarys_manifest_is_read_from_the_file_and_the_library_named_then_refused_here() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    // Other exports after it: Mach-O has no symbol sizes, the manifest's own length bounds it.
    let image = macho::dylib(
        macho::host_cpu(),
        &[
            abi_export("mac-runtime"),
            ("unrelated", macho::Export::Bytes(vec![0xff; 64])),
        ],
    );
    let library = dir.join(format!("libmac_runtime{}", std::env::consts::DLL_SUFFIX));
    std::fs::write(&library, image).unwrap();

    let rows = rows_in(&plugins_list(home.path(), &dir), &dir);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["name"], "mac-runtime", "{rows:#?}");
    assert_eq!(rows[0]["kind"], "runtime", "{rows:#?}");
    assert_eq!(rows[0]["version"], "0.3.0", "{rows:#?}");
    assert_eq!(rows[0]["status"], "error", "{rows:#?}");
    if cfg!(target_os = "linux") {
        let reason = rows[0]["reason"].as_str().unwrap();
        assert!(
            reason.contains("a library for macOS (Mach-O)")
                && reason.contains("install the plugin's build for linux"),
            "{reason}"
        );
        assert_refused(home.path(), &library, "a library for macOS");
    }
}

#[test]
fn a_macos_library_with_only_the_pointer_manifest_is_refused_before_loading() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let image = macho::dylib(
        macho::host_cpu(),
        &[(
            "AO_PLUGIN_MANIFEST",
            macho::Export::PointerManifest {
                kind: "runtime".into(),
                name: "old-mac".into(),
                version: "0.1.0".into(),
            },
        )],
    );
    let library = dir.join(format!("libold_mac{}", std::env::consts::DLL_SUFFIX));
    std::fs::write(&library, image).unwrap();
    assert_refused(
        home.path(),
        &library,
        "rebuild it against an ao-plugin-api that also writes the pointer-free `AO_PLUGIN_ABI`",
    );
    // Without either manifest, it is no ao plugin at all.
    let plain = dir.join(format!("libplain{}", std::env::consts::DLL_SUFFIX));
    let exports = [("something", macho::Export::Bytes(vec![1; 8]))];
    std::fs::write(&plain, macho::dylib(macho::host_cpu(), &exports)).unwrap();
    assert_refused(home.path(), &plain, "not an ao plugin");
}

#[test]
fn a_universal_library_is_read_for_this_hosts_architecture_or_refused_naming_its_own() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let image = |cpu: u32, name: &str| (cpu, macho::dylib(cpu, &[abi_export(name)]));
    let both = dir.join(format!("libboth{}", std::env::consts::DLL_SUFFIX));
    std::fs::write(
        &both,
        macho::universal(&[
            image(macho::other_cpu(), "other-slice"),
            image(macho::host_cpu(), "host-slice"),
        ]),
    )
    .unwrap();
    let rows = rows_in(&plugins_list(home.path(), &dir), &dir);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["name"], "host-slice", "{rows:#?}");

    let thin = dir.join(format!("libthin{}", std::env::consts::DLL_SUFFIX));
    let (cpu, thin_image) = image(macho::other_cpu(), "other-thin");
    std::fs::write(&thin, thin_image).unwrap();
    let other = if cpu == macho::CPU_TYPE_ARM64 {
        "arm64"
    } else {
        "x86_64"
    };
    assert_refused(
        home.path(),
        &thin,
        &format!("built for {other}, but this host is"),
    );

    let foreign = dir.join(format!("libforeign{}", std::env::consts::DLL_SUFFIX));
    std::fs::write(
        &foreign,
        macho::universal(&[
            image(macho::other_cpu(), "other-slice"),
            image(macho::CPU_TYPE_X86, "old-slice"),
        ]),
    )
    .unwrap();
    assert_refused(
        home.path(),
        &foreign,
        &format!(
            "built for {other}, i386 only (a universal library without this host's architecture)"
        ),
    );
}

#[test]
fn truncated_or_lying_macos_libraries_are_refused_cleanly() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let image = macho::dylib(macho::host_cpu(), &[abi_export("cut")]);
    let fat = macho::universal(&[(macho::host_cpu(), image.clone())]);
    // The header, the load commands, the data, the symbols: each cut short.
    for (n, cut) in [4, 20, 100, 600, 0x1000 + 10, image.len() - 1]
        .into_iter()
        .enumerate()
    {
        let library = dir.join(format!("libcut{n}{}", std::env::consts::DLL_SUFFIX));
        std::fs::write(&library, &image[..cut]).unwrap();
        assert_refused(home.path(), &library, "damaged Mach-O library");
        assert_refused(home.path(), &library, "truncated");
    }
    let library = dir.join(format!("libcutfat{}", std::env::consts::DLL_SUFFIX));
    std::fs::write(&library, &fat[..fat.len() - 1]).unwrap();
    assert_refused(home.path(), &library, "image ends past the end of the file");
    // A section that says it runs past the end of the file, in a file that is whole.
    let mut lying = image.clone();
    let const_section = 32 + 72 + 2 * 80 + 72;
    let size_field = const_section + 40;
    lying[size_field..size_field + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let library = dir.join(format!("liblying{}", std::env::consts::DLL_SUFFIX));
    std::fs::write(&library, lying).unwrap();
    assert_refused(
        home.path(),
        &library,
        "section __const ends past the end of the file",
    );
}
