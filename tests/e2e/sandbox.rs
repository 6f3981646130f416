//! Agents in a box, end to end: real bubblewrap (`bwrap`), real tmux, real git and the real
//! plugin libraries. The agent is a bash script (the claude-code plugin's `command:`) that,
//! inside the sandbox, tries what a confined agent must not do and what it must still do, writes
//! what happened into its worktree (the one place it may write) and then becomes the fake Claude
//! Code CLI, so the session's hooks (`ao-host hook`) report as usual. The same script run
//! unconfined (`--sandbox off`) shows each probe can succeed: a refusal is the sandbox's doing.
//!
//! The installations live under the e2e target folder, not `/tmp`: the confined agent gets a
//! private `/tmp`, behind which a scratch HOME under `/tmp` would be out of sight anyway.

use std::{
    collections::BTreeMap,
    io::ErrorKind,
    net::TcpListener,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use serde_json::{json, Value};
use support::{
    fake_agent, fake_start, git, on_path, require_program, stderr, stdout, wait_until, Harness,
};

const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY----- planted-by-the-sandbox-test\n";
const TIMEOUT: Duration = Duration::from_secs(30);
/// The probes every run reports, in the script's order.
const PROBES: &[&str] = &[
    "write-main-checkout",
    "write-other-worktree",
    "write-home",
    "write-etc",
    "read-key",
    "list-data-dir",
    "connect",
    "tmux-server",
    "commit",
    "move-main",
    "move-other-branch",
    "write-git-config",
    "write-git-hooks",
    "write-git-info",
    "write-config-home",
    "write-operator-claude",
];

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

/// An installation whose project `app` is confined by the bubblewrap plugin with `network`
/// (and `extra` policy fields), whose agent is the probe script, with a key planted in its
/// scratch HOME and a loopback listener the probe tries to reach.
struct Boxed {
    harness: Harness,
    listener: TcpListener,
}

impl Boxed {
    fn new(network: &str, extra: &str) -> Self {
        let harness = Harness::outside_tmp(&[], "");
        let ssh = harness.home().join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(ssh.join("id_ed25519"), KEY).unwrap();
        std::fs::create_dir_all(harness.log_dir()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let boxed = Self { harness, listener };
        let script = boxed.write_probe();
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
                     writable: [{:?}], env: [AO_TEST_PASSED]{extra} }} }}",
                    boxed.harness.log_dir().display().to_string()
                ),
            ),
        ]);
        boxed
    }

    /// The tmux server's socket, as `tmux -L NAME` finds it outside.
    fn tmux_socket(&self) -> PathBuf {
        let uid = std::fs::metadata(self.harness.home()).unwrap().uid();
        let base = std::env::var_os("TMUX_TMPDIR").unwrap_or_else(|| "/tmp".into());
        Path::new(&base)
            .join(format!("tmux-{uid}"))
            .join(&self.harness.tmux.socket)
    }

    /// What the probe tries to write in `/etc`: named after this installation, so that tests
    /// running at once never see each other's (the unconfined run does write it).
    fn planted_in_etc(&self) -> PathBuf {
        let name = self.harness.home().file_name().unwrap().to_string_lossy();
        PathBuf::from(format!("/etc/ao-sandbox-planted-{name}"))
    }

    /// The agent: every probe, its results in `probe.txt` of its worktree, then the fake CLI
    /// with the plugin's argv. Every path is written into the script: a confined agent's
    /// environment is an allow-list.
    fn write_probe(&self) -> PathBuf {
        let h = &self.harness;
        let script = h.home().join("bin").join("agent");
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        let worktree = |id: &str| quoted(h.worktree(id).display().to_string());
        let text = format!(
            r#"#!/bin/bash
# Outside a session (`ao-host doctor` runs the agent's command to ask its version) nothing is
# probed: there git would walk up from the test's folder into the repository holding it.
[ -n "$AO_SESSION" ] && [ -e .git ] || exec {fake} "$@"
export GIT_CEILING_DIRECTORIES="${{PWD%/*}}"
# Each probe: "NAME: allowed" or "NAME: refused".
try() {{ local name=$1; shift; if "$@" >/dev/null 2>&1; then echo "$name: allowed"; else echo "$name: refused"; fi; }}
in_folder() {{ [ -n "$1" ] && mkdir -p "$1" && touch "$1/ao-probe"; }}
g() {{ git -c user.name=agent -c user.email=agent@test.invalid "$@"; }}
case "$AO_SESSION" in
  app-1) other={other2}; other_branch=session/app-2/work;;
  *) other={other1}; other_branch=session/app-1/work;;
esac
{{
try write-main-checkout touch {repo}/planted
try write-other-worktree touch "$other/planted"
try write-home touch "$HOME/planted"
try write-etc touch {etc}
try read-key cat "$HOME/.ssh/id_ed25519"
try list-data-dir ls {data}/sessions
try connect timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' {port}
try tmux-server tmux -S {socket} list-sessions
echo "env AWS_SECRET_ACCESS_KEY=${{AWS_SECRET_ACCESS_KEY-unset}}"
echo "env GITHUB_TOKEN=${{GITHUB_TOKEN-unset}}"
echo "env AO_TEST_PASSED=${{AO_TEST_PASSED-unset}}"
echo "$AO_SESSION" > "note-$AO_SESSION.txt"
g add "note-$AO_SESSION.txt"
try commit g commit -q -m "confined commit of $AO_SESSION"
try move-main g update-ref refs/heads/main HEAD
try move-other-branch g update-ref "refs/heads/$other_branch" HEAD
try write-git-config g config --local ao.planted yes
try write-git-hooks touch "$(g rev-parse --git-common-dir)/hooks/post-checkout"
try write-git-info touch "$(g rev-parse --git-common-dir)/info/planted"
try write-config-home in_folder "$CLAUDE_CONFIG_DIR"
try write-operator-claude in_folder "$HOME/.claude"
}} > probe.tmp 2>&1
mv probe.tmp probe.txt
exec {fake} "$@"
"#,
            other1 = worktree("app-1"),
            other2 = worktree("app-2"),
            repo = quoted(h.repo().display().to_string()),
            data = quoted(h.data_dir().display().to_string()),
            etc = quoted(self.planted_in_etc().display().to_string()),
            port = self.listener.local_addr().unwrap().port(),
            socket = quoted(self.tmux_socket().display().to_string()),
            fake = quoted(fake_agent().display().to_string()),
        );
        std::fs::write(&script, text).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        script
    }

    /// `ao-host ARGS` with secrets and a passed name in the host's environment.
    fn run(&self, args: &[&str]) -> Output {
        self.harness
            .command(args)
            .env("AWS_SECRET_ACCESS_KEY", "aws-secret")
            .env("GITHUB_TOKEN", "gh-token")
            .env("AO_TEST_PASSED", "passed-through")
            .output()
            .unwrap()
    }

    fn spawn(&self, extra: &[&str]) {
        let mut args = vec!["spawn", "app", "--task", "probe"];
        args.extend_from_slice(extra);
        let spawned = self.run(&args);
        assert!(spawned.status.success(), "{args:?}: {}", stderr(&spawned));
    }

    /// What session `id`'s probe found, by name (`probe.txt` is taken, so a restored agent
    /// writes a fresh one).
    fn probe(&self, id: &str) -> BTreeMap<String, String> {
        let file = self.harness.worktree(id).join("probe.txt");
        assert!(
            wait_until(TIMEOUT, || file.exists()),
            "{id}'s agent never wrote {}",
            file.display()
        );
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        let found: BTreeMap<String, String> = text
            .lines()
            .filter_map(|line| {
                let line = line.strip_prefix("env ").unwrap_or(line);
                line.split_once(": ")
                    .or_else(|| line.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        for probe in PROBES {
            assert!(found.contains_key(*probe), "{probe} did not run: {text}");
        }
        found
    }

    /// Whether the loopback listener took a connection since last asked.
    fn connected(&self) -> bool {
        match self.listener.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        }
    }
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

fn wait_for_status(harness: &Harness, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    assert!(
        wait_until(TIMEOUT, || {
            last = listed(harness, id);
            last["status"] == status
        }),
        "{id} never became {status}: {last:#}"
    );
    last
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

/// Bwrap processes confining `id` of `harness` (their argv binds its worktree).
fn boxes_of(harness: &Harness, id: &str) -> Vec<String> {
    processes("bwrap", &harness.worktree(id).canonicalize().unwrap())
}

#[test]
fn a_confined_agent_writes_only_its_worktree_and_branch_sees_no_secret_reaches_no_network_and_still_reports(
) {
    if !bwrap_here() {
        return;
    }
    let boxed = Boxed::new("none", ", unattended: true");
    let h = &boxed.harness;
    // Another data dir on the same tmux server, unconfined: untouched by all of this.
    let neighbour = Harness::outside_tmp(&[], "");
    neighbour.edit_config(&[(
        &format!("socket: {}", neighbour.tmux.socket),
        &format!("socket: {}", h.tmux.socket),
    )]);
    neighbour.ok(&["spawn", "app", "--task", "next door"]);

    boxed.spawn(&[]);
    boxed.spawn(&[]);
    let found = boxed.probe("app-2");
    expect(
        &found,
        &[
            ("write-main-checkout", "refused"),
            ("write-other-worktree", "refused"),
            ("write-home", "refused"),
            ("write-etc", "refused"),
            ("read-key", "refused"),
            ("list-data-dir", "refused"),
            ("connect", "refused"),
            ("tmux-server", "refused"),
            ("AWS_SECRET_ACCESS_KEY", "unset"),
            ("GITHUB_TOKEN", "unset"),
            ("AO_TEST_PASSED", "passed-through"),
            ("commit", "allowed"),
            ("move-main", "refused"),
            ("move-other-branch", "refused"),
            ("write-git-config", "refused"),
            ("write-git-hooks", "refused"),
            ("write-git-info", "refused"),
            ("write-config-home", "allowed"),
            ("write-operator-claude", "refused"),
        ],
    );
    expect(&boxed.probe("app-1"), &[("commit", "allowed")]);
    assert!(
        !h.home().join(".claude").exists(),
        "the agent wrote the operator's ~/.claude"
    );
    assert!(
        !boxed.connected(),
        "a connection got out with network: none"
    );

    // Outside, nothing the agents tried is there; their commits are, each on its own branch.
    for planted in [
        h.repo().join("planted"),
        h.worktree("app-1").join("planted"),
        h.worktree("app-2").join("planted"),
        h.home().join("planted"),
        boxed.planted_in_etc(),
        h.repo().join(".git/hooks/post-checkout"),
        h.repo().join(".git/info/planted"),
    ] {
        assert!(!planted.exists(), "{} was written", planted.display());
    }
    assert_eq!(git(&h.repo(), &["log", "--format=%s", "main"]), "initial");
    for id in ["app-1", "app-2"] {
        assert_eq!(
            git(
                &h.repo(),
                &["log", "--format=%s", &format!("session/{id}/work")]
            ),
            format!("confined commit of {id}\ninitial"),
            "{id}'s branch"
        );
    }
    let config = std::fs::read_to_string(h.repo().join(".git/config")).unwrap();
    assert!(!config.contains("planted"), "{config}");

    // The hooks still report: the status comes from the agent's own events, and the agent ran
    // in its own no-prompt mode (`unattended: true`) with only the allowed environment.
    let session = wait_for_status(h, "app-2", "idle");
    assert_eq!(session["reports_events"], true, "{session:#}");
    assert_eq!(
        session["sandbox"],
        json!({"plugin": "bubblewrap", "network": "none"})
    );
    let start = fake_start(&h.log_dir().join("app-2"));
    let argv: Vec<String> = serde_json::from_value(start["argv"].clone()).unwrap();
    let mode = argv.iter().position(|a| a == "--permission-mode");
    assert_eq!(
        mode.map(|i| argv[i + 1].as_str()),
        Some("bypassPermissions"),
        "{argv:?}"
    );
    for secret in ["AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"] {
        assert!(start["env"][secret].is_null(), "{secret} reached the agent");
    }
    let table = stdout(&h.ok(&["session", "ls"]));
    assert!(
        table.contains("SANDBOX") && table.contains("bubblewrap (no network)"),
        "{table}"
    );
    for id in ["app-1", "app-2"] {
        assert!(!boxes_of(h, id).is_empty(), "{id} does not run under bwrap");
    }

    // Restored after its runtime died, a session is confined again.
    h.tmux
        .tmux(&["kill-session", "-t", &h.tmux_session("app-1")]);
    wait_for_status(h, "app-1", "exited");
    let restored = boxed.run(&["session", "restore", "app-1"]);
    assert!(restored.status.success(), "{}", stderr(&restored));
    expect(
        &boxed.probe("app-1"),
        &[
            ("read-key", "refused"),
            ("write-main-checkout", "refused"),
            ("connect", "refused"),
            ("AWS_SECRET_ACCESS_KEY", "unset"),
        ],
    );
    wait_for_status(h, "app-1", "idle");
    assert!(!boxes_of(h, "app-1").is_empty(), "restored unconfined");

    // Kill and gc leave nothing: worktrees, branches, tmux sessions, bwrap, session files.
    let worktrees: Vec<PathBuf> = ["app-1", "app-2"]
        .iter()
        .map(|id| h.worktree(id).canonicalize().unwrap())
        .collect();
    for id in ["app-1", "app-2"] {
        h.ok(&["session", "kill", id, "--force"]);
    }
    h.ok(&["gc"]);
    assert!(h.sessions_json(&[]).is_empty());
    for id in ["app-1", "app-2"] {
        assert!(!h.worktree(id).exists(), "{id}'s worktree is left");
        for left in [
            h.data_dir().join("agent-state").join("app").join(id),
            h.data_dir().join("claude-code").join("sessions").join(id),
        ] {
            assert!(!left.exists(), "{} is left", left.display());
        }
    }
    assert_eq!(git(&h.repo(), &["worktree", "list"]).lines().count(), 1);
    // A killed session's branch is kept only for the commits on it, as an unconfined
    // session's is (`git branch -d`): the agent's work outlives its box, nothing else does.
    assert_eq!(
        git(&h.repo(), &["branch", "--format=%(refname:short)"]),
        "main\nsession/app-1/work\nsession/app-2/work",
        "branches left"
    );

    let mut left = Vec::new();
    assert!(
        wait_until(TIMEOUT, || {
            left = worktrees
                .iter()
                .flat_map(|w| processes("bwrap", w))
                .collect();
            left.is_empty()
        }),
        "bwrap still runs: {left:?}"
    );

    // On the shared server only the neighbour's session is left, and it lives on unconfined.
    assert_eq!(h.tmux.sessions(), [neighbour.tmux_session("app-1")]);
    let next_door = wait_for_status(&neighbour, "app-1", "idle");
    assert!(next_door["sandbox"].is_null(), "{next_door:#}");
}

#[test]
fn with_full_network_a_confined_agent_reaches_a_loopback_listener_and_sandbox_off_runs_unconfined()
{
    if !bwrap_here() {
        return;
    }
    let boxed = Boxed::new("full", "");
    let h = &boxed.harness;
    boxed.spawn(&[]);
    expect(
        &boxed.probe("app-1"),
        &[
            ("connect", "allowed"),
            ("read-key", "refused"),
            ("write-home", "refused"),
            ("tmux-server", "refused"),
        ],
    );
    // `doctor` checks that bwrap confines here.
    let doctor = support::stdout(&h.ao(&["doctor"]));
    assert!(doctor.contains("bwrap confinement"), "{doctor}");
    assert!(
        wait_until(TIMEOUT, || boxed.connected()),
        "the listener saw no connection"
    );
    assert_eq!(
        listed(h, "app-1")["sandbox"],
        json!({"plugin": "bubblewrap", "network": "full"})
    );

    // `--sandbox off`: the same script, unconfined, can do what the box stopped.
    boxed.spawn(&["--sandbox", "off"]);
    let found = boxed.probe("app-2");
    let wrote_etc = std::fs::remove_file(boxed.planted_in_etc()).is_ok();
    expect(
        &found,
        &[
            ("read-key", "allowed"),
            ("write-home", "allowed"),
            ("write-main-checkout", "allowed"),
            ("write-etc", "allowed"),
            ("tmux-server", "allowed"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ("commit", "allowed"),
        ],
    );
    assert!(
        wrote_etc,
        "the unconfined probe claims a write to /etc it did not make"
    );
    assert!(listed(h, "app-2")["sandbox"].is_null());
    assert!(
        boxes_of(h, "app-2").is_empty(),
        "--sandbox off ran in a box"
    );
    assert!(h.home().join("planted").exists());
    assert_eq!(
        git(&h.repo(), &["log", "--format=%s", "-1", "session/app-2"]),
        "confined commit of app-2",
        "an unconfined session keeps its `session/<id>` branch"
    );
    let table = stdout(&h.ok(&["session", "ls"]));
    assert!(table.contains("bubblewrap"), "{table}");
}

#[test]
fn no_prompt_modes_outside_a_sandbox_are_refused_naming_unattended_and_sandbox() {
    if !bwrap_here() {
        return;
    }
    // `unattended: true` in a confined project, spawned with `--sandbox off`.
    let boxed = Boxed::new("full", ", unattended: true");
    let refused = boxed.run(&["spawn", "app", "--sandbox", "off", "--task", "t"]);
    let err = stderr(&refused);
    assert!(!refused.status.success(), "unattended ran unconfined");
    assert!(
        err.contains("unattended") && err.contains("sandbox"),
        "{err}"
    );
    boxed.harness.assert_untouched();

    // `unattended: true` with no sandbox plugin at all: the config itself is refused.
    let harness = Harness::new(&[], "");
    harness.edit_config(&[(
        "default_branch: main }",
        "default_branch: main, sandbox: { unattended: true } }",
    )]);
    let refused = harness.ao(&["spawn", "app", "--task", "t"]);
    let err = stderr(&refused);
    assert!(!refused.status.success());
    assert!(
        err.contains("projects.app.sandbox.unattended") && err.contains("sandbox: { plugin"),
        "{err}"
    );
    assert!(harness.tmux.sessions().is_empty());
    assert!(!harness.worktree("app-1").exists());
    assert_eq!(
        git(&harness.repo(), &["branch", "--format=%(refname:short)"]),
        "main"
    );

    // Claude Code's own no-prompt settings, unconfined.
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
    let boxed = Boxed::new("none", "");
    let h = &boxed.harness;
    h.edit_config(&[(
        "  config:\n",
        "  config:\n    bubblewrap: { program: /nonexistent/bwrap }\n",
    )]);
    let refused = boxed.run(&["spawn", "app", "--task", "probe"]);
    let err = stderr(&refused);
    assert!(!refused.status.success(), "spawned without its sandbox");
    assert!(
        err.contains("/nonexistent/bwrap") && err.contains("apt-get install bubblewrap"),
        "{err}"
    );
    h.assert_nothing_left("app-1");
    assert!(processes("bwrap", h.home()).is_empty());
    assert!(
        !h.log_dir().join("app-1").exists(),
        "the agent ran without its box"
    );

    // `doctor` says the same, with the fix.
    let doctor = h.ao(&["doctor"]);
    let said = format!("{}{}", support::stdout(&doctor), stderr(&doctor));
    assert!(!doctor.status.success(), "{said}");
    assert!(said.contains("apt-get install bubblewrap"), "{said}");
}
