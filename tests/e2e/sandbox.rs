//! Agents in a box, end to end: real bubblewrap (`bwrap`), real tmux, real git and the real
//! plugin libraries. The agent is a bash script (the claude-code plugin's `command:`) that, inside
//! the sandbox, tries what a confined agent must not do and what it must still do, writes what
//! happened into its worktree (the one place it may write) and then becomes the fake Claude Code
//! CLI, so the session's hooks (`ao-host hook`) report as usual.
//!
//! The installations live under the e2e target folder, not `/tmp`: the confined agent gets a
//! private `/tmp`, in which the config, the plugins and the agent's log folder would not exist.

use std::{
    collections::BTreeMap,
    io::ErrorKind,
    net::TcpListener,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;
use support::{
    build_workspace_plugin, fake_agent, git, install, on_path, require_program, stderr, wait_until,
    Harness,
};

const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY----- planted-by-the-sandbox-test\n";
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether bwrap is here; skips (fails under CI) otherwise.
pub(crate) fn bwrap_here() -> bool {
    require_program(
        on_path(&["bwrap"])
            .is_none()
            .then(|| "bwrap is not installed (apt-get install bubblewrap)".to_string()),
    )
}

/// `text` single-quoted for bash; the test's own paths never hold a quote.
fn quoted(text: impl AsRef<str>) -> String {
    let text = text.as_ref();
    assert!(!text.contains('\''), "{text:?} holds a quote");
    format!("'{text}'")
}

/// An installation whose project `app` is confined by the bubblewrap plugin with `network`,
/// whose agent is the probe script, with a key planted in its scratch HOME and a loopback
/// listener the probe tries to reach.
struct Boxed {
    harness: Harness,
    listener: TcpListener,
}

impl Boxed {
    fn new(network: &str) -> Self {
        let harness = Harness::outside_tmp(&[], "");
        install(
            &build_workspace_plugin("ao-sandbox-bubblewrap"),
            &harness.plugin_dir(),
            None,
        );
        let ssh = harness.home().join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(ssh.join("id_ed25519"), KEY).unwrap();
        std::fs::create_dir_all(harness.log_dir()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let boxed = Self { harness, listener };
        let h = &boxed.harness;
        let script = write_probe(
            &h.home().join("bin"),
            &Targets {
                repo: h.repo(),
                data: h.data_dir(),
                worktrees: [h.worktree("app-1"), h.worktree("app-2")],
                port: boxed.listener.local_addr().unwrap().port(),
            },
        );
        let fake = format!("{:?}", fake_agent().display().to_string());
        boxed.harness.edit_config(&[
            (
                &format!("command: {fake}"),
                &format!("command: {:?}", script.display().to_string()),
            ),
            (
                "default_branch: main }",
                &format!(
                    "default_branch: main, sandbox: {{ plugin: bubblewrap, network: {network}, \
                     writable: [{:?}], env: [AO_TEST_PASSED] }} }}",
                    boxed.harness.log_dir().display().to_string()
                ),
            ),
        ]);
        boxed
    }

    /// `ao-host ARGS` with secrets and a passed name in the host's environment.
    fn spawn(&self, args: &[&str]) -> std::process::Output {
        self.harness
            .command(args)
            .env("AWS_SECRET_ACCESS_KEY", "aws-secret")
            .env("GITHUB_TOKEN", "gh-token")
            .env("AO_TEST_PASSED", "passed-through")
            .output()
            .unwrap()
    }

    /// What session `id`'s probe found, by name.
    fn probe(&self, id: &str) -> BTreeMap<String, String> {
        let file = self.harness.worktree(id).join("probe.txt");
        assert!(
            wait_until(PROBE_TIMEOUT, || file.exists()),
            "{id}'s agent never wrote {}",
            file.display()
        );
        std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter_map(|line| {
                let line = line.strip_prefix("env ").unwrap_or(line);
                line.split_once(": ")
                    .or_else(|| line.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    }

    /// Whether the loopback listener took a connection.
    fn connected(&self) -> bool {
        match self.listener.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Places the probe tries, on the host the agent runs on.
struct Targets {
    /// The main checkout of the project.
    repo: PathBuf,
    /// The data dir (a confined agent must not list it).
    data: PathBuf,
    /// The worktrees of sessions `app-1` and `app-2`: each session tries the other's.
    worktrees: [PathBuf; 2],
    /// A loopback listener's port.
    port: u16,
}

/// Writes the agent into `dir`: every probe, its results in `probe.txt` of its worktree, then
/// the fake CLI with the plugin's argv. Every path is written into the script: a confined
/// agent's environment is an allow-list.
fn write_probe(dir: &Path, targets: &Targets) -> PathBuf {
    let script = dir.join("agent");
    std::fs::create_dir_all(dir).unwrap();
    let path = |p: &Path| quoted(p.display().to_string());
    let text = format!(
        r#"#!/bin/bash
# Outside a session (`ao-host doctor` runs the agent's command to ask its version) nothing is
# probed: there git would walk up from the test's folder into the repository holding it.
[ -n "$AO_SESSION" ] && [ -e .git ] || exec {fake} "$@"
export GIT_CEILING_DIRECTORIES="${{PWD%/*}}"
# Each probe: "NAME: allowed" or "NAME: refused".
try() {{ local name=$1; shift; if "$@" >/dev/null 2>&1; then echo "$name: allowed"; else echo "$name: refused"; fi; }}
g() {{ git -c user.name=agent -c user.email=agent@test.invalid "$@"; }}
case "$AO_SESSION" in app-1) other={other2}; other_branch=session/app-2/work;; *) other={other1}; other_branch=session/app-1/work;; esac
{{
try write-main-checkout touch {repo}/planted
try write-other-worktree touch "$other/planted"
try write-home touch "$HOME/planted"
# Only under bwrap (its own pid namespace, whose first process is bwrap): an unconfined run
# (`--sandbox off`) must not write to the machine's /etc.
echo "pid-1: $(cat /proc/1/comm)"
if [ "$(cat /proc/1/comm)" = bwrap ]; then try write-etc touch /etc/ao-sandbox-planted; fi
try read-key cat "$HOME/.ssh/id_ed25519"
try list-data-dir ls {data}/sessions
try connect timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' {port}
echo "env AWS_SECRET_ACCESS_KEY=${{AWS_SECRET_ACCESS_KEY-unset}}"
echo "env GITHUB_TOKEN=${{GITHUB_TOKEN-unset}}"
echo "env AO_TEST_PASSED=${{AO_TEST_PASSED-unset}}"
echo "$AO_SESSION" > note.txt
git add note.txt
try commit g commit -q -m "confined commit of $AO_SESSION"
try move-main g update-ref refs/heads/main HEAD
try move-other-branch g update-ref "refs/heads/$other_branch" HEAD
try write-git-config g config --local ao.planted yes
try write-git-hooks touch "$(g rev-parse --git-common-dir)/hooks/post-checkout"
try write-git-info touch "$(g rev-parse --git-common-dir)/info/planted"
}} > probe.tmp 2>&1
mv probe.tmp probe.txt
exec {fake} "$@"
"#,
        other1 = path(&targets.worktrees[0]),
        other2 = path(&targets.worktrees[1]),
        repo = path(&targets.repo),
        data = path(&targets.data),
        port = targets.port,
        fake = quoted(fake_agent().display().to_string()),
    );
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

fn expect(found: &BTreeMap<String, String>, want: &[(&str, &str)]) {
    for (name, value) in want {
        assert_eq!(
            found.get(*name).map(String::as_str),
            Some(*value),
            "{name}; everything the agent found: {found:#?}"
        );
    }
}

fn listed(harness: &Harness, id: &str) -> Value {
    harness
        .sessions_json(&[])
        .into_iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed"))
}

/// Processes whose command line names `needle` (a test's own folder) and runs `program`.
fn processes(program: &str, needle: &Path) -> Vec<String> {
    let needle = needle.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|raw| {
            raw.split(|b| *b == 0)
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect::<Vec<_>>()
        })
        .filter(|argv| {
            argv.first()
                .is_some_and(|first| Path::new(first).file_name() == Some(program.as_ref()))
                && argv.iter().any(|a| a.contains(&needle))
        })
        .map(|argv| argv.join(" "))
        .collect()
}

#[test]
fn a_confined_agent_writes_only_its_worktree_and_branch_sees_no_secret_reaches_no_network_and_still_reports(
) {
    if !bwrap_here() {
        return;
    }
    let boxed = Boxed::new("none");
    let h = &boxed.harness;
    // Another installation on the same tmux server, unconfined: untouched by all of this.
    let neighbour = Harness::outside_tmp(&[], "");
    neighbour.edit_config(&[(
        &format!("socket: {}", neighbour.tmux.socket),
        &format!("socket: {}", h.tmux.socket),
    )]);
    neighbour.ok(&["spawn", "app", "--task", "next door"]);

    for id in ["app-1", "app-2"] {
        let spawned = boxed.spawn(&["spawn", "app", "--task", "probe"]);
        assert!(spawned.status.success(), "{id}: {}", stderr(&spawned));
    }
    let found = boxed.probe("app-2");
    expect(
        &found,
        &[
            ("pid-1", "bwrap"),
            ("write-main-checkout", "refused"),
            ("write-other-worktree", "refused"),
            ("write-home", "refused"),
            ("write-etc", "refused"),
            ("read-key", "refused"),
            ("list-data-dir", "refused"),
            ("connect", "refused"),
            ("AWS_SECRET_ACCESS_KEY", "unset"),
            ("GITHUB_TOKEN", "unset"),
            ("AO_TEST_PASSED", "passed-through"),
            ("commit", "allowed"),
            ("move-main", "refused"),
            ("move-other-branch", "refused"),
            ("write-git-config", "refused"),
            ("write-git-hooks", "refused"),
            ("write-git-info", "refused"),
        ],
    );
    expect(&boxed.probe("app-1"), &[("commit", "allowed")]);
    assert!(
        !boxed.connected(),
        "a connection got out with network: none"
    );

    // Outside, nothing the agent tried is there; its commit is.
    for planted in [
        h.repo().join("planted"),
        h.worktree("app-1").join("planted"),
        h.home().join("planted"),
        PathBuf::from("/etc/ao-sandbox-planted"),
        h.repo().join(".git/hooks/post-checkout"),
        h.repo().join(".git/info/planted"),
    ] {
        assert!(!planted.exists(), "{} was written", planted.display());
    }
    let main = git(&h.repo(), &["rev-parse", "main"]);
    assert_eq!(git(&h.repo(), &["log", "--format=%s", "main"]), "initial");
    let log = git(&h.repo(), &["log", "--format=%s", "session/app-2/work"]);
    assert_eq!(log, "confined commit of app-2\ninitial");
    assert_eq!(
        git(
            &h.repo(),
            &["log", "--format=%s", "-1", "session/app-1/work"]
        ),
        "confined commit of app-1",
        "app-2 moved app-1's branch"
    );
    assert_ne!(git(&h.repo(), &["rev-parse", "session/app-2/work"]), main);
    let config = std::fs::read_to_string(h.repo().join(".git/config")).unwrap();
    assert!(!config.contains("planted"), "{config}");

    // The hooks still report: the status comes from the agent's own events.
    let mut session = Value::Null;
    assert!(
        wait_until(PROBE_TIMEOUT, || {
            session = listed(h, "app-2");
            session["status"] == "idle"
        }),
        "the confined agent's events never arrived: {session:#}"
    );
    assert_eq!(session["reports_events"], true, "{session:#}");
    assert_eq!(
        session["sandbox"],
        serde_json::json!({"plugin": "bubblewrap", "network": "none"})
    );
    let table = support::stdout(&h.ok(&["session", "ls"]));
    assert!(
        table.contains("SANDBOX") && table.contains("bubblewrap (no network)"),
        "{table}"
    );
    assert!(
        !processes("bwrap", h.home()).is_empty(),
        "the agents do not run under bwrap"
    );

    // Kill and gc leave nothing: worktrees, branches, tmux sessions, bwrap, session files.
    // `--force`: the agents' commits were never pushed.
    for id in ["app-1", "app-2"] {
        h.ok(&["session", "kill", id, "--force"]);
    }
    h.ok(&["gc"]);
    assert!(h.sessions_json(&[]).is_empty());
    for id in ["app-1", "app-2"] {
        assert!(!h.worktree(id).exists(), "{id}'s worktree is left");
    }
    assert_eq!(git(&h.repo(), &["worktree", "list"]).lines().count(), 1);
    // A branch holding work is kept, as for any session: the agents' commits are the
    // operator's now. Nothing else is left of the sessions in the repository.
    assert_eq!(
        git(&h.repo(), &["branch", "--format=%(refname:short)"]),
        "main\nsession/app-1/work\nsession/app-2/work",
        "branches left"
    );
    assert_eq!(
        git(
            &h.repo(),
            &["log", "--format=%s", "-1", "session/app-2/work"]
        ),
        "confined commit of app-2"
    );
    assert!(
        !h.repo().join(".git/worktrees").exists()
            || std::fs::read_dir(h.repo().join(".git/worktrees"))
                .unwrap()
                .next()
                .is_none()
    );
    let mut left = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            left = processes("bwrap", h.home());
            left.is_empty()
        }),
        "bwrap still runs: {left:?}"
    );
    let agent_state = h.data_dir().join("agent-state").join("app");
    for id in ["app-1", "app-2"] {
        assert!(!agent_state.join(id).exists(), "{id}'s agent state is left");
    }

    // On the shared server only the neighbour's session is left, and it lives on.
    assert_eq!(h.tmux.sessions(), [neighbour.tmux_session("app-1")]);
    let mut neighbour_session = Value::Null;
    assert!(
        wait_until(PROBE_TIMEOUT, || {
            neighbour_session = listed(&neighbour, "app-1");
            neighbour_session["status"] == "idle"
        }),
        "{neighbour_session:#}"
    );
    assert!(
        neighbour_session["sandbox"].is_null(),
        "{neighbour_session:#}"
    );
}

#[test]
fn with_full_network_a_confined_agent_reaches_a_loopback_listener_and_sandbox_off_runs_unconfined()
{
    if !bwrap_here() {
        return;
    }
    let boxed = Boxed::new("full");
    let h = &boxed.harness;
    let spawned = boxed.spawn(&["spawn", "app", "--task", "probe"]);
    assert!(spawned.status.success(), "{}", stderr(&spawned));
    expect(
        &boxed.probe("app-1"),
        &[
            ("pid-1", "bwrap"),
            ("connect", "allowed"),
            ("read-key", "refused"),
            ("write-home", "refused"),
        ],
    );
    assert!(
        wait_until(PROBE_TIMEOUT, || boxed.connected()),
        "the listener saw no connection"
    );
    assert_eq!(
        listed(h, "app-1")["sandbox"],
        serde_json::json!({"plugin": "bubblewrap", "network": "full"})
    );
    // `doctor` checks that bwrap confines here.
    let doctor = support::stdout(&h.ao(&["doctor"]));
    assert!(doctor.contains("bwrap confinement"), "{doctor}");

    // `--sandbox off`: this spawn runs as an unconfined agent would, over the project's policy.
    let spawned = boxed.spawn(&["spawn", "app", "--sandbox", "off", "--task", "probe"]);
    assert!(spawned.status.success(), "{}", stderr(&spawned));
    expect(
        &boxed.probe("app-2"),
        &[
            ("read-key", "allowed"),
            ("write-home", "allowed"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ],
    );
    assert_ne!(boxed.probe("app-2")["pid-1"], "bwrap");
    assert!(listed(h, "app-2")["sandbox"].is_null());
    assert!(h.home().join("planted").exists());
}

#[test]
fn no_prompt_modes_outside_a_sandbox_are_refused_naming_unattended_and_sandbox() {
    let harness = Harness::new(&[], "");
    harness.edit_config(&[(
        "default_branch: main }",
        "default_branch: main, sandbox: { unattended: true } }",
    )]);
    let refused = harness.ao(&["spawn", "app", "--task", "t"]);
    let err = stderr(&refused);
    assert!(!refused.status.success());
    assert!(
        err.contains("unattended") && err.contains("sandbox:"),
        "{err}"
    );
    harness.edit_config(&[(", sandbox: { unattended: true }", "")]);
    harness.assert_untouched();

    for setting in [
        "skip_permissions: true",
        "permission_mode: bypassPermissions",
    ] {
        let harness = Harness::new(&[], "");
        harness.edit_config(&[(
            "default_branch: main }",
            &format!("default_branch: main, agent_config: {{ {setting} }} }}"),
        )]);
        let refused = harness.ao(&["spawn", "app", "--task", "t"]);
        let err = stderr(&refused);
        assert!(!refused.status.success(), "{setting} ran unconfined");
        assert!(
            err.contains(setting) && err.contains("unattended: true") && err.contains("sandbox:"),
            "{setting}: {err}"
        );
        harness.assert_nothing_left("app-1");
    }
}

#[test]
fn a_sandbox_that_cannot_confine_here_fails_the_spawn_with_its_fix_and_leaves_nothing() {
    let boxed = Boxed::new("none");
    let h = &boxed.harness;
    h.edit_config(&[(
        "  config:\n",
        "  config:\n    bubblewrap: { program: /nonexistent/bwrap }\n",
    )]);
    let refused = boxed.spawn(&["spawn", "app", "--task", "probe"]);
    let err = stderr(&refused);
    assert!(!refused.status.success(), "spawned without its sandbox");
    assert!(
        err.contains("/nonexistent/bwrap") && err.contains("apt-get install bubblewrap"),
        "{err}"
    );
    h.assert_nothing_left("app-1");
    assert!(processes("bwrap", h.home()).is_empty());

    // `doctor` says the same, with the fix.
    let doctor = h.ao(&["doctor"]);
    let said = format!("{}{}", support::stdout(&doctor), stderr(&doctor));
    assert!(!doctor.status.success(), "{said}");
    assert!(said.contains("apt-get install bubblewrap"), "{said}");
}

/// One confined session on an ssh host (a real sshd on 127.0.0.2, bwrap found and run there):
/// the host's own home and key are what the sandbox guards, the commit lands in the host's
/// clone, and kill leaves nothing running.
#[test]
fn a_confined_session_on_an_ssh_host_is_boxed_on_that_host() {
    if !bwrap_here() {
        return;
    }
    let Some(world) = support::remote_world::RemoteWorld::start_in(&[("alpha", 2)], None, || {
        Harness::outside_tmp(&[], "")
    }) else {
        return;
    };
    let h = &world.harness;
    install(
        &build_workspace_plugin("ao-sandbox-bubblewrap"),
        &h.plugin_dir(),
        None,
    );
    let alpha = world.host("alpha").home();
    std::fs::create_dir_all(alpha.join(".ssh")).unwrap();
    std::fs::write(alpha.join(".ssh/id_ed25519"), KEY).unwrap();
    std::fs::create_dir_all(h.log_dir()).unwrap();
    let clone = alpha.join("app");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let script = write_probe(
        &h.home().join("bin"),
        &Targets {
            repo: clone.clone(),
            data: alpha.join(".ao-rs"),
            worktrees: [alpha.join("nowhere-1"), alpha.join("nowhere-2")],
            port: listener.local_addr().unwrap().port(),
        },
    );
    let fake = format!("{:?}", fake_agent().display().to_string());
    h.edit_config(&[
        (
            &format!("command: {fake}"),
            &format!("command: {:?}", script.display().to_string()),
        ),
        (
            "default_branch: main,",
            &format!(
                "default_branch: main, sandbox: {{ plugin: bubblewrap, network: none, \
                 writable: [{:?}] }},",
                h.log_dir().display().to_string()
            ),
        ),
    ]);

    let session = world.spawn("alpha", "probe");
    let id = session["id"].as_str().unwrap().to_string();
    assert_eq!(session["host"], "alpha");
    let worktree = PathBuf::from(session["workspace_path"].as_str().unwrap());
    let file = worktree.join("probe.txt");
    assert!(wait_until(PROBE_TIMEOUT, || file.exists()), "no probe.txt");
    let found: BTreeMap<String, String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    expect(
        &found,
        &[
            ("pid-1", "bwrap"),
            ("write-main-checkout", "refused"),
            ("write-home", "refused"),
            ("read-key", "refused"),
            ("connect", "refused"),
            ("commit", "allowed"),
            ("move-main", "refused"),
            ("write-git-config", "refused"),
        ],
    );
    let branch = format!("session/{id}/work");
    assert_eq!(
        git(&clone, &["log", "--format=%s", "-1", &branch]),
        format!("confined commit of {id}")
    );
    assert!(!alpha.join("planted").exists() && !clone.join("planted").exists());
    assert_eq!(
        world.session(&id)["sandbox"],
        serde_json::json!({"plugin": "bubblewrap", "network": "none"})
    );
    assert!(!processes("bwrap", &worktree).is_empty(), "not under bwrap");

    world.ok(&["session", "kill", &id, "--force"]);
    assert!(!worktree.exists(), "the worktree on alpha is left");
    let mut left = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            left = processes("bwrap", &worktree);
            left.is_empty()
        }),
        "bwrap still runs on alpha: {left:?}"
    );
}
