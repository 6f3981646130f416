//! Whether bwrap can confine on the host the agent runs on: found, and a program started under
//! the same options a confined agent gets actually runs.
//!
//! bwrap being installed is not enough: without unprivileged user namespaces (a Debian sysctl,
//! Ubuntu's AppArmor restriction, a container's seccomp profile) it fails at every start. The
//! probe finds that out once per plugin instance, with the exact error and its fix, instead of
//! letting a session start and die in its terminal.

use std::time::Duration;

use ao_plugin_api::{sandbox::NetworkAccess, DoctorCheck, PluginError};
use ao_plugin_kit::program::Program;

use crate::policy;

/// How long the probe may take: a host that hangs starting a namespace is reported, not
/// waited on.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Marks where the answer starts: a login shell on another host may print a banner first.
const MARK: &str = "AO-BWRAP-PROBE";
/// Finds the program, says where (and, for the doctor, which version), then starts `true`
/// confined: `$0` is the marker, `$1` the program, `$2` `--version` or `-`, the rest bwrap's
/// options.
const SCRIPT: &str = r#"p=$(command -v "$1") || exit 127
printf '%s\n%s\n' "$0" "$p"
if [ "$2" = --version ]; then "$p" --version 2>/dev/null | head -n 1; else echo; fi
shift 2
exec "$p" "$@""#;

/// How thoroughly to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Before confining: the options every confined agent gets, no more. It runs at each
    /// `ao-host spawn` (a new process), so it leaves out the version and the network
    /// namespace (a few milliseconds more; one user namespaces allow is allowed too).
    Quick,
    /// For `ao-host doctor`: the version, and `network: none`'s namespace as well.
    Thorough,
}

/// The bwrap the probe found.
#[derive(Debug, Clone)]
pub struct Found {
    /// Where it is (absolute, so a confined launch does not depend on the agent's `PATH`).
    pub path: String,
    /// What `--version` printed (only a thorough probe asks).
    pub version: String,
}

/// What the probe learnt; kept for the plugin instance's life.
#[derive(Debug, Clone)]
pub enum Probed {
    /// It confines here.
    Ready(Found),
    /// It is not installed (the message says how to install it).
    Missing(String),
    /// It is there but cannot confine (the message says why and the fix).
    Broken(Found, String),
}

impl Probed {
    /// The bwrap to run, or `Unavailable` saying why and the fix.
    pub fn ready(&self) -> Result<&Found, PluginError> {
        match self {
            Probed::Ready(found) => Ok(found),
            Probed::Missing(why) | Probed::Broken(_, why) => {
                Err(PluginError::unavailable(why.clone()))
            }
        }
    }

    /// The `ao-host doctor` lines: the program, and whether it confines.
    pub fn doctor(&self) -> Vec<DoctorCheck> {
        const CONFINES: &str = "bwrap confinement";
        match self {
            Probed::Ready(found) => vec![
                DoctorCheck::passed("bwrap", format!("{} ({})", found.version, found.path)),
                DoctorCheck::passed(
                    CONFINES,
                    "a program starts in new namespaces (pid, ipc, uts, network) with the root \
                     read-only",
                ),
            ],
            Probed::Missing(why) => vec![DoctorCheck::failed("bwrap", why)],
            Probed::Broken(found, why) => vec![
                DoctorCheck::passed("bwrap", format!("{} ({})", found.version, found.path)),
                DoctorCheck::failed(CONFINES, why),
            ],
        }
    }
}

/// Runs the probe for `program` (a name on `PATH` or a path) of plugin `plugin`. An error is
/// the host not answering.
pub fn probe(program: &str, plugin: &str, depth: Depth) -> Result<Probed, PluginError> {
    let sh = Program::new("sh", "a POSIX shell");
    let (version, network) = match depth {
        Depth::Quick => ("-", NetworkAccess::Full),
        Depth::Thorough => ("--version", NetworkAccess::None),
    };
    let mut args = vec![
        "-c".to_string(),
        SCRIPT.to_string(),
        MARK.to_string(),
        program.to_string(),
        version.to_string(),
    ];
    args.extend(policy::base_args(network));
    args.extend(["--".to_string(), "true".to_string()]);
    let output = sh.run_with_deadline(None, &args, PROBE_TIMEOUT)?;
    let place = place();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answer = stdout
        .rsplit_once(&format!("{MARK}\n"))
        .map(|(_, answer)| answer);
    let Some(answer) = answer else {
        if let Some(lost) = sh.lost_connection(&output, "the bubblewrap probe") {
            return Err(lost);
        }
        if output.status.code() == Some(ao_plugin_kit::remote::NOT_FOUND_STATUS) {
            let place = if place.is_empty() && !program.contains('/') {
                " on PATH"
            } else {
                &place
            };
            return Ok(Probed::Missing(format!(
                "`{program}` not found{place}: install bubblewrap (apt-get install bubblewrap, \
                 dnf install bubblewrap), or set plugins.config.{plugin}.program to where it is"
            )));
        }
        return Err(sh.failure(&output));
    };
    let mut lines = answer.lines();
    let found = Found {
        path: lines.next().unwrap_or(program).to_string(),
        version: lines
            .next()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or("bubblewrap, version unknown")
            .trim()
            .to_string(),
    };
    if output.status.success() {
        return Ok(Probed::Ready(found));
    }
    if let Some(error) = sh.lost_connection(&output, "the bubblewrap probe") {
        return Err(error);
    }
    let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
    let why = format!(
        "`{}` cannot start a confined program{place} ({}): {}; {}",
        found.path,
        output.status,
        if said.is_empty() {
            "it printed nothing"
        } else {
            &said
        },
        fix(&said, &found.path)
    );
    Ok(Probed::Broken(found, why))
}

/// The fix for what bwrap said.
fn fix(said: &str, path: &str) -> String {
    let namespaces = [
        "namespace",
        "uid map",
        "Operation not permitted",
        "Permission denied",
    ];
    if namespaces.iter().any(|sign| said.contains(sign)) {
        "enable unprivileged user namespaces: `sysctl -w kernel.unprivileged_userns_clone=1` \
         (Debian kernels), a non-zero `user.max_user_namespaces`, and on Ubuntu 23.10 and later \
         `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor profile that \
         lets bwrap use them; in a container, allow user namespaces (its seccomp profile)"
            .to_string()
    } else {
        format!("run `{path} --ro-bind / / true` there to see what fails, and fix that")
    }
}

/// " on host `NAME`" for a plugin instance on another host, else nothing.
pub fn place() -> String {
    use ao_plugin_kit::remote::TransportExt as _;
    ao_plugin_kit::remote::current()
        .map(|t| t.on_host())
        .unwrap_or_default()
}
