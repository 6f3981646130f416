//! The plugin with the real bwrap: each test confines a small script, runs the argv `confine`
//! returned, and checks what the script could and could not do, inside and outside.
//!
//! Scratch folders live under the target folder, not `/tmp`, so that a private `/tmp` does not
//! cover them.

use std::{
    fs,
    net::TcpListener,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use ao_plugin_api::{
    sandbox::{NetworkAccess, PathAccess, PathRule, SandboxRequest},
    ErrorKind, PluginContext, PluginFailure, Sandbox,
};
use ao_sandbox_bubblewrap::Bubblewrap;

fn plugin(config_yaml: &str) -> Bubblewrap {
    Bubblewrap::new(&PluginContext {
        plugin_name: "bubblewrap".into(),
        data_dir: "/nonexistent/data".into(),
        config_yaml: config_yaml.into(),
    })
    .unwrap()
}

/// A scratch folder with a writable `work` folder and a `home` holding secrets.
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("work/.git")).unwrap();
        fs::write(root.join("work/.git/config"), "[core]\n").unwrap();
        fs::create_dir_all(root.join("home/.ssh")).unwrap();
        fs::write(root.join("home/.ssh/id_ed25519"), "PRIVATE KEY").unwrap();
        fs::write(root.join("home/.netrc"), "machine x password hunter2").unwrap();
        fs::write(root.join("home/notes"), "mine").unwrap();
        Self { _dir: dir, root }
    }

    fn path(&self, relative: &str) -> String {
        self.root.join(relative).to_string_lossy().into_owned()
    }

    /// A request to run `script` (with `args` as `$1`…) in `work`, writable, under `rules`.
    fn request(
        &self,
        rules: &[(&str, PathAccess)],
        network: NetworkAccess,
        argv: &[&str],
    ) -> SandboxRequest {
        let mut paths = vec![PathRule::new(self.path("work"), PathAccess::Writable)];
        paths.extend(rules.iter().map(|(p, a)| PathRule::new(*p, *a)));
        SandboxRequest {
            session_id: "app-1".into(),
            argv: argv.iter().map(|a| (*a).into()).collect::<Vec<_>>().into(),
            cwd: self.path("work").into(),
            paths: paths.into(),
            network,
        }
    }
}

/// Runs what `confine` returned.
fn run(plugin: &Bubblewrap, request: &SandboxRequest) -> Output {
    let confined = plugin.confine(request).unwrap();
    let argv: Vec<&str> = confined.argv.iter().map(|a| a.as_str()).collect();
    assert_eq!(
        argv[argv.len() - request.argv.len()..],
        request.argv.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "the agent's argv is not at the end, unchanged"
    );
    Command::new(argv[0]).args(&argv[1..]).output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "the confined script failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Tries to write each of its arguments; says "wrote P" or "denied P" for each.
const TRY_WRITES: &str = r#"for p; do if (echo new > "$p") 2>/dev/null; then echo "wrote $p"; else echo "denied $p"; fi; done"#;

#[test]
fn only_writable_folders_can_be_written_and_changes_there_are_seen_outside() {
    let scratch = Scratch::new();
    let bwrap = plugin("");
    let targets = [
        scratch.path("work/made"),
        scratch.path("home/notes"),
        scratch.path("home/new"),
        "/etc/ao-sandbox-test".to_string(),
        scratch.path("outside"),
    ];
    let mut argv = vec!["sh", "-c", TRY_WRITES, "sh"];
    argv.extend(targets.iter().map(String::as_str));
    let said = stdout(&run(
        &bwrap,
        &scratch.request(&[], NetworkAccess::Full, &argv),
    ));
    let expected: String = targets
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{} {t}\n", if i == 0 { "wrote" } else { "denied" }))
        .collect();
    assert_eq!(said, expected);
    assert_eq!(
        fs::read_to_string(scratch.path("work/made")).unwrap(),
        "new\n"
    );
    assert_eq!(
        fs::read_to_string(scratch.path("home/notes")).unwrap(),
        "mine"
    );
    assert!(!Path::new(&scratch.path("home/new")).exists());
    assert!(!Path::new("/etc/ao-sandbox-test").exists());
}

#[test]
fn hidden_secrets_cannot_be_read_and_read_only_stays_so_inside_a_writable_folder() {
    let scratch = Scratch::new();
    let bwrap = plugin("");
    let (ssh, netrc, git) = (
        scratch.path("home/.ssh"),
        scratch.path("home/.netrc"),
        scratch.path("work/.git"),
    );
    let script = r#"
        cat "$1/id_ed25519" >/dev/null 2>&1 && echo "read the key" || echo "key unreadable"
        echo "in .ssh: [$(ls -A "$1")]"
        echo ".netrc: [$(cat "$2")]"
        (echo x > "$1/planted") 2>/dev/null && echo "planted in .ssh" || echo ".ssh read-only"
        (echo x > "$3/config") 2>/dev/null && echo "wrote git config" || echo "git config read-only"
        (echo x > "$3/hooks-pre-commit") 2>/dev/null && echo "wrote in .git" || echo ".git read-only"
        echo ok > committed && echo "worktree writable"
    "#;
    let request = scratch.request(
        &[
            (&ssh, PathAccess::Hidden),
            (&netrc, PathAccess::Hidden),
            (&git, PathAccess::ReadOnly),
        ],
        NetworkAccess::Full,
        &["sh", "-c", script, "sh", &ssh, &netrc, &git],
    );
    assert_eq!(
        stdout(&run(&bwrap, &request)),
        "key unreadable\nin .ssh: []\n.netrc: []\n.ssh read-only\ngit config read-only\n\
         .git read-only\nworktree writable\n"
    );
    assert_eq!(
        fs::read_to_string(scratch.path("home/.ssh/id_ed25519")).unwrap(),
        "PRIVATE KEY"
    );
    assert_eq!(
        fs::read_to_string(scratch.path("home/.netrc")).unwrap(),
        "machine x password hunter2"
    );
    assert!(!Path::new(&scratch.path("home/.ssh/planted")).exists());
    assert_eq!(
        fs::read_to_string(scratch.path("work/.git/config")).unwrap(),
        "[core]\n"
    );
    assert!(Path::new(&scratch.path("work/committed")).exists());
}

/// The data dir hidden, one worktree inside it writable: the hidden folder is read-only
/// around it, the worktree writable, its siblings gone.
#[test]
fn a_writable_folder_inside_a_hidden_one_stays_writable() {
    let scratch = Scratch::new();
    let bwrap = plugin("");
    let data = scratch.path("data");
    fs::create_dir_all(scratch.path("data/wt/app-1")).unwrap();
    fs::create_dir_all(scratch.path("data/wt/app-2")).unwrap();
    fs::write(scratch.path("data/wt/app-2/secret"), "other").unwrap();
    let own = scratch.path("data/wt/app-1");
    let mut request = scratch.request(
        &[(&data, PathAccess::Hidden), (&own, PathAccess::Writable)],
        NetworkAccess::Full,
        &[
            "sh",
            "-c",
            r#"echo mine > "$1/file" && echo "wrote own"; ls -A "$2/wt"; cat "$2/wt/app-2/secret" 2>/dev/null || echo "sibling gone"; (echo x > "$2/x") 2>/dev/null || echo "data read-only""#,
            "sh",
            &own,
            &data,
        ],
    );
    request.cwd = own.clone().into();
    assert_eq!(
        stdout(&run(&bwrap, &request)),
        "wrote own\napp-1\nsibling gone\ndata read-only\n"
    );
    assert_eq!(fs::read_to_string(format!("{own}/file")).unwrap(), "mine\n");
}

#[test]
fn a_private_tmp_starts_empty_and_its_files_stay_inside() {
    let scratch = Scratch::new();
    let bwrap = plugin("");
    let marker = format!("ao-private-{}", std::process::id());
    // The real /tmp is not empty.
    let outside = Path::new("/tmp").join(format!("{marker}-outside"));
    fs::write(&outside, "x").unwrap();
    let request = scratch.request(
        &[("/tmp", PathAccess::Private)],
        NetworkAccess::Full,
        &[
            "sh",
            "-c",
            r#"echo "[$(ls -A /tmp)]"; echo x > "/tmp/$1" && echo "wrote /tmp/$1""#,
            "sh",
            &marker,
        ],
    );
    let said = stdout(&run(&bwrap, &request));
    fs::remove_file(&outside).unwrap();
    assert_eq!(said, format!("[]\nwrote /tmp/{marker}\n"));
    assert!(!Path::new("/tmp").join(&marker).exists());
}

#[test]
fn without_network_a_loopback_listener_outside_cannot_be_reached() {
    let scratch = Scratch::new();
    let bwrap = plugin("");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    // bash's /dev/tcp: a connect(2) and nothing else; the kernel completes it from the backlog.
    let argv = [
        "bash",
        "-c",
        r#"if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then echo connected; else echo refused; fi"#,
        "bash",
        &port,
    ];
    let full = scratch.request(&[], NetworkAccess::Full, &argv);
    assert_eq!(stdout(&run(&bwrap, &full)), "connected\n");
    let none = scratch.request(&[], NetworkAccess::None, &argv);
    assert_eq!(stdout(&run(&bwrap, &none)), "refused\n");
}

#[test]
fn the_agents_argv_reaches_it_byte_for_byte() {
    let scratch = Scratch::new();
    let bwrap = plugin("");
    let args = [
        "a b",
        "it's",
        "\"double\"",
        "line\nbreak",
        "$(touch pwned)",
        "`touch pwned`",
        "--",
        "--ro-bind",
        "*",
        "",
    ];
    let mut argv = vec!["printf", "%s\\0"];
    argv.extend(args);
    let output = run(&bwrap, &scratch.request(&[], NetworkAccess::Full, &argv));
    let said = stdout(&output);
    let got: Vec<&str> = said.split('\0').collect();
    assert_eq!(got[..got.len() - 1], args);
    assert!(!Path::new(&scratch.path("work/pwned")).exists());
}

fn refused(bwrap: &Bubblewrap, request: &SandboxRequest) -> PluginFailure {
    bwrap
        .confine(request)
        .expect_err("the request was confined")
}

#[test]
fn a_missing_writable_path_and_a_relative_path_are_refused() {
    let scratch = Scratch::new();
    let bwrap = plugin("");
    let gone = scratch.path("gone");
    let failure = refused(
        &bwrap,
        &scratch.request(
            &[(&gone, PathAccess::Writable)],
            NetworkAccess::Full,
            &["true"],
        ),
    );
    assert_eq!(failure.kind.as_enum().ok(), Some(&ErrorKind::Failed));
    assert!(
        failure
            .message()
            .starts_with(&format!("paths[1] (writable `{gone}`) does not exist")),
        "{failure}"
    );
    let failure = refused(
        &bwrap,
        &scratch.request(
            &[("home/.ssh", PathAccess::Hidden)],
            NetworkAccess::Full,
            &["true"],
        ),
    );
    assert_eq!(failure.kind.as_enum().ok(), Some(&ErrorKind::InvalidInput));
    assert!(
        failure
            .message()
            .starts_with("paths[1] (hidden `home/.ssh`) is not an absolute path"),
        "{failure}"
    );
    // A planted link where a rule points: refused, not followed.
    let link = scratch.path("work/link");
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    let failure = refused(
        &bwrap,
        &scratch.request(
            &[(&link, PathAccess::Writable)],
            NetworkAccess::Full,
            &["true"],
        ),
    );
    assert!(
        failure.message().contains("is a symbolic link"),
        "{failure}"
    );
}

#[test]
fn a_bwrap_that_is_not_there_is_unavailable_with_the_install_fix() {
    let scratch = Scratch::new();
    let bwrap = plugin("program: /nonexistent/bwrap\n");
    let failure = refused(
        &bwrap,
        &scratch.request(&[], NetworkAccess::Full, &["true"]),
    );
    assert_eq!(failure.kind.as_enum().ok(), Some(&ErrorKind::Unavailable));
    assert_eq!(
        failure.message(),
        "`/nonexistent/bwrap` not found: install bubblewrap (apt-get install bubblewrap, dnf \
         install bubblewrap), or set plugins.config.bubblewrap.program to where it is"
    );
    let checks = bwrap.doctor().unwrap();
    assert_eq!(checks.len(), 1);
    assert!(!checks[0].ok);
    assert_eq!(checks[0].detail.as_str(), failure.message());
}

/// A bwrap that cannot make namespaces (what a kernel without unprivileged user namespaces
/// makes of it) is reported with what it said and the sysctl fix.
#[test]
fn a_bwrap_that_cannot_confine_is_unavailable_with_the_namespace_fix() {
    let scratch = Scratch::new();
    let fake = scratch.path("bwrap");
    fs::write(
        &fake,
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'bubblewrap 0.8.0'; exit 0; }\n\
         echo 'bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let bwrap = plugin(&format!("program: {fake}\n"));
    let failure = refused(
        &bwrap,
        &scratch.request(&[], NetworkAccess::Full, &["true"]),
    );
    assert_eq!(failure.kind.as_enum().ok(), Some(&ErrorKind::Unavailable));
    let said = failure.message();
    assert!(
        said.starts_with(&format!("`{fake}` cannot start a confined program")),
        "{said}"
    );
    assert!(
        said.contains("No permissions to creating new namespace"),
        "{said}"
    );
    assert!(
        said.contains("kernel.unprivileged_userns_clone=1"),
        "{said}"
    );
    assert!(
        said.contains("kernel.apparmor_restrict_unprivileged_userns=0"),
        "{said}"
    );
    let checks = bwrap.doctor().unwrap();
    assert_eq!(
        checks.iter().map(|c| c.ok).collect::<Vec<_>>(),
        [true, false]
    );
    assert_eq!(
        checks[0].detail.as_str(),
        format!("bubblewrap 0.8.0 ({fake})")
    );
}

#[test]
fn doctor_passes_where_bwrap_confines_and_bad_settings_are_refused() {
    let checks = plugin("").doctor().unwrap();
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    assert!(checks[0].detail.starts_with("bubblewrap "), "{checks:?}");
    let bad = Bubblewrap::new(&PluginContext {
        plugin_name: "bubblewrap".into(),
        data_dir: "/nonexistent/data".into(),
        config_yaml: "progam: bwrap\n".into(),
    })
    .err()
    .expect("a misspelt setting was accepted");
    assert!(bad.message().contains("plugins.config.bubblewrap"), "{bad}");
    assert!(bad.message().contains("progam"), "{bad}");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The git worktree plugin's rules (see the sandbox contract): a commit on the session's own
/// branch goes through and is seen from the main repository; `main`, the repository's config
/// and its hooks stay as they were.
#[test]
fn a_commit_on_its_own_branch_succeeds_and_nothing_else_of_the_repository_moves() {
    let scratch = Scratch::new();
    let bwrap = plugin("");
    let repo = scratch.root.join("repo");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    fs::write(repo.join("README"), "hello\n").unwrap();
    git(&repo, &["add", "README"]);
    git(&repo, &["commit", "-qm", "first"]);
    let main_before = git(&repo, &["rev-parse", "main"]);
    let worktree = scratch.root.join("data/wt/app-1");
    git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "session/app-1/work",
            &worktree.display().to_string(),
        ],
    );
    let common = repo.join(".git");
    let at = |p: &Path, rel: &str| p.join(rel).display().to_string();
    let rules = [
        (at(&scratch.root, "data"), PathAccess::Hidden),
        ("/tmp".to_string(), PathAccess::Private),
        (at(&worktree, ""), PathAccess::Writable),
        (at(&common, "worktrees/app-1"), PathAccess::Writable),
        (at(&common, "objects"), PathAccess::Writable),
        (at(&common, "objects/pack"), PathAccess::ReadOnly),
        (at(&common, "objects/info"), PathAccess::ReadOnly),
        (
            at(&common, "refs/heads/session/app-1"),
            PathAccess::Writable,
        ),
        (
            at(&common, "logs/refs/heads/session/app-1"),
            PathAccess::Writable,
        ),
        (at(&worktree, ".git"), PathAccess::ReadOnly),
        (
            at(&common, "worktrees/app-1/commondir"),
            PathAccess::ReadOnly,
        ),
        (at(&common, "worktrees/app-1/gitdir"), PathAccess::ReadOnly),
        (
            at(&common, "worktrees/app-1/config.worktree"),
            PathAccess::ReadOnly,
        ),
    ];
    let script = r#"
        g() { git -c user.name=agent -c user.email=agent@example.com "$@"; }
        echo change > file && g add file && g commit -qm confined && echo committed
        g update-ref refs/heads/main HEAD 2>/dev/null && echo "moved main" || echo "main kept"
        g branch other 2>/dev/null && echo "made a branch" || echo "no other branch"
        g config core.hooksPath /tmp 2>/dev/null && echo "changed config" || echo "config kept"
        (echo 'echo pwned' > "$1/hooks/post-checkout") 2>/dev/null && echo "planted a hook" || echo "hooks kept"
    "#;
    let worktree_path = worktree.display().to_string();
    let common_path = common.display().to_string();
    let request = SandboxRequest {
        session_id: "app-1".into(),
        argv: vec!["sh", "-c", script, "sh", &common_path]
            .into_iter()
            .map(Into::into)
            .collect::<Vec<_>>()
            .into(),
        cwd: worktree_path.as_str().into(),
        paths: rules
            .iter()
            .map(|(p, a)| PathRule::new(p.trim_end_matches('/'), *a))
            .collect::<Vec<_>>()
            .into(),
        network: NetworkAccess::None,
    };
    assert_eq!(
        stdout(&run(&bwrap, &request)),
        "committed\nmain kept\nno other branch\nconfig kept\nhooks kept\n"
    );
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%s", "session/app-1/work"]),
        "confined\n"
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), main_before);
    assert_eq!(git(&repo, &["branch", "--list", "other"]), "");
    assert!(!common.join("hooks/post-checkout").exists());
    assert!(!fs::read_to_string(common.join("config"))
        .unwrap()
        .contains("hooksPath"));
}
