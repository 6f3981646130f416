//! The sandbox checks: what a sandbox plugin must answer without running anything.
//!
//! A sandbox plugin only turns a policy and an argv into the argv that runs it confined, so
//! the kit asks exactly that, offline: the agent's argv must come through unchanged at the end
//! (a byte changed there is a different program, or an argument a shell re-read), and a request
//! the host should never send (a relative or `..` path, no program) must be refused as invalid
//! input whether or not the tool is installed here. The tool may be missing on the machine the
//! kit runs on: `Unavailable` (or `Unsupported` for the kit's policy) skips the confining check
//! with its reason, it does not fail it.

use ao_plugin_api::{
    sandbox::{NetworkAccess, PathAccess, PathRule, SandboxRequest},
    ErrorKind,
};
use ao_plugin_host::{PluginCallError, SandboxPlugin};

use super::Kit;

/// An argv with everything a shell or a careless join would change.
const HOSTILE_ARGV: [&str; 6] = [
    "/bin/echo",
    "-starts with a dash",
    "$(not run) `nor this`",
    "two  spaces\tand a tab",
    "",
    "ünï 🎉 'quotes\"",
];

/// The kit's policy on its scratch folder: the workspace writable, a secret beside it hidden, a
/// private `/tmp`.
fn request(kit: &Kit<'_>, argv: &[&str], extra: Option<PathRule>) -> SandboxRequest {
    let workspace = kit.scratch.join("workspace");
    let secret = kit.scratch.join("secret");
    let mut paths = vec![
        PathRule::new(secret.display().to_string(), PathAccess::Hidden),
        PathRule::new("/tmp", PathAccess::Private),
        PathRule::new(workspace.display().to_string(), PathAccess::Writable),
    ];
    paths.extend(extra);
    SandboxRequest {
        session_id: "aokit-1".into(),
        argv: argv.iter().map(|a| (*a).into()).collect(),
        cwd: workspace.display().to_string().into(),
        paths: paths.into(),
        network: NetworkAccess::None,
    }
}

/// A call's error as the check's detail, a panic named as one.
fn failed(error: &PluginCallError) -> String {
    if error.error_kind() == ErrorKind::Panicked {
        format!("it panicked: {error}")
    } else {
        error.to_string()
    }
}

pub(super) async fn check(kit: &mut Kit<'_>) {
    let home = kit.data_dir("data");
    for folder in ["workspace", "secret"] {
        if let Err(e) = std::fs::create_dir_all(kit.scratch.join(folder)) {
            kit.record(
                "scratch",
                Err(format!("cannot make the kit's folders: {e}")),
            );
            return;
        }
    }
    let built = kit
        .registry
        .sandbox(&kit.plugin, &kit.context(&home), None, kit.timeout);
    let Some(sandbox) = kit.built(built) else {
        return;
    };
    confines(kit, &sandbox).await;
    for (check, argv, extra) in [
        (
            "a relative path is refused",
            &HOSTILE_ARGV[..],
            Some(PathRule::new("relative/folder", PathAccess::Writable)),
        ),
        (
            "a path with `..` is refused",
            &HOSTILE_ARGV[..],
            Some(PathRule::new("/tmp/../etc", PathAccess::Writable)),
        ),
        ("an empty argv is refused", &[][..], None),
    ] {
        let answer = sandbox.confine(&request(kit, argv, extra)).await;
        kit.record(check, refused(answer));
    }
    let checks = sandbox.doctor().await;
    kit.record(
        "doctor",
        match checks {
            Ok(checks) => Ok(format!(
                "{} check(s) ({} failing, as they may where the tool is missing)",
                checks.len(),
                checks.iter().filter(|c| !c.ok).count()
            )),
            Err(e) => Err(failed(&e)),
        },
    );
}

/// The check `confine`: the kit's policy over [`HOSTILE_ARGV`] gives a longer argv that ends
/// with it, unchanged.
async fn confines(kit: &mut Kit<'_>, sandbox: &SandboxPlugin) {
    const CHECK: &str = "confine keeps the argv";
    match sandbox.confine(&request(kit, &HOSTILE_ARGV, None)).await {
        Ok(confined) => {
            let argv: Vec<&str> = confined.argv.iter().map(|a| a.as_str()).collect();
            let outcome = if !argv.ends_with(&HOSTILE_ARGV) {
                Err(format!(
                    "the confined argv does not end with the request's, unchanged: {argv:?}"
                ))
            } else if argv.len() == HOSTILE_ARGV.len() {
                Err("the argv came back as it was: nothing confines it".into())
            } else {
                Ok(format!(
                    "`{}` and {} argument(s) before the program",
                    argv[0],
                    argv.len() - HOSTILE_ARGV.len() - 1
                ))
            };
            kit.record(CHECK, outcome);
        }
        Err(e)
            if matches!(
                e.error_kind(),
                ErrorKind::Unavailable | ErrorKind::Unsupported
            ) =>
        {
            kit.skip(
                CHECK,
                format!("the tool cannot confine here: {}", e.plugin_message()),
            );
        }
        Err(e) => {
            kit.record(CHECK, Err(failed(&e)));
        }
    }
}

/// A request the host never sends must be `InvalidInput`, wherever the tool is installed.
fn refused(answer: Result<impl std::fmt::Debug, PluginCallError>) -> Result<String, String> {
    match answer {
        Err(e) if e.error_kind() == ErrorKind::InvalidInput => {
            Ok(format!("refused: {}", e.plugin_message()))
        }
        Err(e) => Err(format!(
            "{}; refuse it as invalid input, before asking whether the tool is there",
            failed(&e)
        )),
        Ok(confined) => Err(format!(
            "confined anyway ({confined:?}): the tool would be handed a rule it cannot apply as meant"
        )),
    }
}
