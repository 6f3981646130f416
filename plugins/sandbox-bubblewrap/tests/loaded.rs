//! The plugin as ao-host uses it: its built library loaded by the host's registry, called
//! through the ABI, for this machine and for a host reached through a transport (here `sh -c`
//! standing in for ssh: the same command lines, the same round trips).

use std::{fs, path::Path, process::Command, time::Duration};

use ao_plugin_api::{
    sandbox::{NetworkAccess, PathAccess, PathRule, SandboxRequest},
    ErrorKind, PluginContext, Transport,
};
use ao_plugin_host::PluginRegistry;

const TIMEOUT: Duration = Duration::from_secs(30);

fn registry() -> PluginRegistry {
    let library = ao_plugin_test::library_under_test(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{e}"));
    PluginRegistry::load(&[library.path])
}

fn context() -> PluginContext {
    PluginContext {
        plugin_name: "bubblewrap".into(),
        data_dir: "/nonexistent/data".into(),
        config_yaml: "".into(),
    }
}

/// `sh -c LINE`: what ssh does with the line on the other host.
fn through_a_shell() -> Transport {
    Transport {
        host: "here".into(),
        command: vec!["sh".into(), "-c".into()].into(),
    }
}

fn request(work: &Path, rules: Vec<PathRule>, argv: &[&str]) -> SandboxRequest {
    let mut paths = vec![PathRule::new(
        work.display().to_string(),
        PathAccess::Writable,
    )];
    paths.extend(rules);
    SandboxRequest {
        session_id: "app-1".into(),
        argv: argv.iter().map(|a| (*a).into()).collect::<Vec<_>>().into(),
        cwd: work.display().to_string().into(),
        paths: paths.into(),
        network: NetworkAccess::None,
    }
}

#[tokio::test]
async fn the_loaded_plugin_confines_here_and_on_a_host_behind_a_transport() {
    let registry = registry();
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = scratch.path().canonicalize().unwrap();
    let work = root.join("work");
    fs::create_dir_all(root.join("secret")).unwrap();
    fs::create_dir_all(&work).unwrap();
    fs::write(root.join("secret/key"), "KEY").unwrap();
    let secret = PathRule::new(
        root.join("secret").display().to_string(),
        PathAccess::Hidden,
    );
    let script = "cat ../secret/key 2>/dev/null || echo hidden; echo done > made";
    for transport in [None, Some(through_a_shell())] {
        let place = if transport.is_some() {
            " on host `here`"
        } else {
            ""
        };
        let sandbox = registry
            .sandbox("bubblewrap", &context(), transport.as_ref(), TIMEOUT)
            .unwrap();
        let checks = sandbox.doctor().await.unwrap();
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        let confined = sandbox
            .confine(&request(&work, vec![secret.clone()], &["sh", "-c", script]))
            .await
            .unwrap();
        let argv: Vec<&str> = confined.argv.iter().map(|a| a.as_str()).collect();
        let output = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "hidden\n",
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(fs::read_to_string(work.join("made")).unwrap(), "done\n");
        fs::remove_file(work.join("made")).unwrap();

        let gone = root.join("gone").display().to_string();
        let failure = sandbox
            .confine(&request(
                &work,
                vec![PathRule::new(gone.clone(), PathAccess::Writable)],
                &["true"],
            ))
            .await
            .unwrap_err();
        assert_eq!(failure.error_kind(), ErrorKind::Failed);
        assert!(
            failure.to_string().contains(&format!(
                "paths[1] (writable `{gone}`) does not exist{place}:"
            )),
            "{failure}"
        );
    }
}
