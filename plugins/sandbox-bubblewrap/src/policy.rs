//! A policy turned into `bwrap` arguments: the request checked, each rule made a mount.
//!
//! bwrap applies its mount options in order, each over what came before, which is the policy's
//! own rule ([`ao_plugin_api::sandbox`]). Two things of bwrap's need care:
//!
//! - A rule that a later rule on the same path or a folder above it covers is dropped, not
//!   mounted: what it made is out of sight anyway, and a folder hidden by it would otherwise be
//!   remounted read-only after it stopped being a mount (bwrap fails: "Unable to remount").
//! - A hidden folder is an empty tmpfs, made read-only only after every later rule has been
//!   mounted: the mount points of the rules inside it (a session's worktree inside the hidden
//!   data dir) are folders bwrap makes in that tmpfs, which it cannot once it is read-only.
//!   `--remount-ro` is not recursive, so the writable folders mounted inside stay writable.

use std::path::{Component, Path, PathBuf};

use ao_plugin_api::{
    sandbox::{NetworkAccess, PathAccess, SandboxRequest},
    ErrorKind, PluginFailure,
};
use ao_plugin_kit::files::PathKind;

/// The options every confined program gets, before the policy's rules.
///
/// No `--new-session`: the agent keeps its terminal's job control and window-size signals
/// (SIGWINCH), which a full-screen CLI needs. What `--new-session` guards against is TIOCSTI
/// (typing into the controlling terminal); a confined agent's terminal is its own pane, whose
/// reader is the agent itself, so it could type only what it could run anyway.
const BASE: &[&str] = &[
    "--die-with-parent",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--cap-drop",
    "ALL",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
];

/// The base options and the network's, as the availability probe runs them too: a host where
/// the probe passes can confine.
pub fn base_args(network: NetworkAccess) -> Vec<String> {
    let mut args: Vec<String> = BASE.iter().map(|a| a.to_string()).collect();
    if network == NetworkAccess::None {
        // A network namespace of its own: only a loopback device, nothing outside reachable,
        // the host's loopback services included.
        args.insert(0, "--unshare-net".to_string());
    }
    args
}

/// A request whose paths were checked: each rule's path normalised, in order.
pub struct Checked {
    /// `(path, access)` of each rule, as the request gave them.
    pub rules: Vec<(PathBuf, PathAccess)>,
    pub cwd: PathBuf,
}

/// Checks what needs no look at the disk: a program to run, every path absolute and plain, and
/// the working folder inside a writable rule. An error names the rule and the fix.
pub fn check(request: &SandboxRequest) -> Result<Checked, PluginFailure> {
    if request.argv.is_empty() {
        return Err(invalid(
            "the sandbox request has an empty argv: there is no program to confine".to_string(),
        ));
    }
    if let Some(i) = request.argv.iter().position(|a| a.contains('\0')) {
        return Err(invalid(format!(
            "argv[{i}] holds a NUL byte, which no program argument can carry"
        )));
    }
    let rules = request
        .paths
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let what = format!("paths[{i}] ({} `{}`)", access_name(rule.access), rule.path);
            plain_path(&rule.path, &what).map(|path| (path, rule.access))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = plain_path(&request.cwd, &format!("cwd `{}`", request.cwd))?;
    let governing = rules.iter().rev().find(|(path, _)| cwd.starts_with(path));
    if !matches!(governing, Some((_, PathAccess::Writable))) {
        let why = match governing {
            Some((path, access)) => format!(
                "the last rule over it is {} `{}`",
                access_name(*access),
                path.display()
            ),
            None => "no rule names it or a folder above it".to_string(),
        };
        return Err(invalid(format!(
            "cwd `{}` is not inside a writable rule ({why}): the program would start where it \
             cannot write; add a writable rule for the session's workspace",
            cwd.display()
        )));
    }
    Ok(Checked { rules, cwd })
}

/// The mount options for the checked rules, given what is at each path (`kinds`, in the rules'
/// order). `place` names the host in messages (" on host `x`", or nothing).
pub fn mounts(
    checked: &Checked,
    kinds: &[PathKind],
    place: &str,
) -> Result<Vec<String>, PluginFailure> {
    let rules = &checked.rules;
    let mut args = Vec::new();
    let mut hidden_dirs = Vec::new();
    // The rules mounted so far: (path, access, whether it is an empty tmpfs where it stands).
    let mut mounted: Vec<(&Path, PathAccess, bool)> = Vec::new();
    for (i, ((path, access), kind)) in rules.iter().zip(kinds).enumerate() {
        let covered_later = rules[i + 1..]
            .iter()
            .any(|(later, _)| path.starts_with(later));
        if covered_later {
            continue;
        }
        let what = || format!("paths[{i}] ({} `{}`)", access_name(*access), path.display());
        if *kind == PathKind::Link {
            return Err(invalid(format!(
                "{} is a symbolic link{place}: a rule's path must be canonical (links resolved), \
                 or the link could point the mount elsewhere; give the path it resolves to",
                what()
            )));
        }
        // The nearest rule already mounted over a folder above it: what the path looks like
        // before this rule.
        let above = mounted
            .iter()
            .rev()
            .find(|(earlier, _, _)| path.starts_with(earlier));
        let in_empty_tmpfs = above.is_some_and(|(_, _, empty)| *empty);
        let p = path.to_string_lossy().into_owned();
        match (access, kind) {
            // Nothing there to hide or protect: an empty tmpfs above shows nothing at the path,
            // and a missing path stays missing.
            (PathAccess::Hidden | PathAccess::ReadOnly, PathKind::Missing) => continue,
            (PathAccess::Hidden, _) if in_empty_tmpfs => continue,
            (PathAccess::Hidden, PathKind::Dir) => {
                args.extend(["--tmpfs".to_string(), p.clone()]);
                hidden_dirs.push(p);
                mounted.push((path, *access, true));
            }
            (PathAccess::Hidden, _) => {
                // The null device reads empty, so a program that reads the file (git its
                // config, curl its .netrc) finds nothing rather than failing, and what it
                // writes there goes nowhere: the real file is neither read nor changed.
                // (`--ro-bind` would mount it without device access: reads fail.)
                args.extend(["--dev-bind".to_string(), "/dev/null".to_string(), p]);
                mounted.push((path, *access, false));
            }
            (PathAccess::ReadOnly, _) => {
                // Under no rule, or under a read-only one, it is read-only already.
                if above.is_some_and(|(_, a, _)| *a != PathAccess::ReadOnly) {
                    args.extend(["--ro-bind".to_string(), p.clone(), p]);
                    mounted.push((path, *access, false));
                }
            }
            (PathAccess::Writable, PathKind::Missing) => {
                return Err(PluginFailure::new(
                    ErrorKind::Failed,
                    format!(
                        "{} does not exist{place}: the host makes a writable path before it \
                         confines a program; make it, or remove it from `sandbox.writable`",
                        what()
                    ),
                ));
            }
            (PathAccess::Writable, _) => {
                args.extend(["--bind".to_string(), p.clone(), p]);
                mounted.push((path, *access, false));
            }
            (PathAccess::Private, PathKind::Dir) => {
                args.extend(["--tmpfs".to_string(), p]);
                mounted.push((path, *access, true));
            }
            // bwrap would make the folder in the empty tmpfs above, not on the disk.
            (PathAccess::Private, PathKind::Missing) if in_empty_tmpfs => {
                args.extend(["--tmpfs".to_string(), p]);
                mounted.push((path, *access, true));
            }
            (PathAccess::Private, PathKind::Missing) => {
                return Err(PluginFailure::new(
                    ErrorKind::Failed,
                    format!(
                        "{} does not exist{place}: a private folder is mounted over an existing \
                         one; make it first",
                        what()
                    ),
                ));
            }
            (PathAccess::Private, _) => {
                return Err(invalid(format!(
                    "{} is not a folder{place}: only a folder can be private",
                    what()
                )));
            }
        }
    }
    for dir in hidden_dirs {
        args.extend(["--remount-ro".to_string(), dir]);
    }
    args.extend([
        "--chdir".to_string(),
        checked.cwd.to_string_lossy().into_owned(),
    ]);
    Ok(args)
}

/// `text` as an absolute path without `.`, `..` or NUL, repeated and trailing slashes dropped.
fn plain_path(text: &str, what: &str) -> Result<PathBuf, PluginFailure> {
    if text.contains('\0') {
        return Err(invalid(format!("{what} holds a NUL byte")));
    }
    if !text.starts_with('/') {
        return Err(invalid(format!(
            "{what} is not an absolute path: paths in a sandbox policy start with `/`; a path \
             in `sandbox.writable` or `sandbox.hidden` must be given whole"
        )));
    }
    // `Path::components` already drops `.` after the root and empty parts; a literal `.` or
    // `..` anywhere is refused, since the host resolves paths before it asks.
    if text.split('/').any(|part| part == "." || part == "..") {
        return Err(invalid(format!(
            "{what} holds `.` or `..`: give the path it resolves to"
        )));
    }
    Ok(Path::new(text)
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect())
}

/// The rule's access as the config spells it, for messages.
fn access_name(access: PathAccess) -> &'static str {
    match access {
        PathAccess::Hidden => "hidden",
        PathAccess::ReadOnly => "read-only",
        PathAccess::Writable => "writable",
        PathAccess::Private => "private",
    }
}

fn invalid(message: String) -> PluginFailure {
    PluginFailure::new(ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use ao_plugin_api::sandbox::PathRule;

    use super::*;

    fn request(paths: &[(&str, PathAccess)], cwd: &str) -> SandboxRequest {
        SandboxRequest {
            session_id: "app-1".into(),
            argv: vec!["claude".into()].into(),
            cwd: cwd.into(),
            paths: paths
                .iter()
                .map(|(p, a)| PathRule::new(*p, *a))
                .collect::<Vec<_>>()
                .into(),
            network: NetworkAccess::Full,
        }
    }

    fn plan(paths: &[(&str, PathAccess)], kinds: &[PathKind], cwd: &str) -> Vec<String> {
        let checked = check(&request(paths, cwd)).unwrap();
        mounts(&checked, kinds, "").unwrap()
    }

    /// The host's usual order: the data dir hidden, the worktree inside it writable, its
    /// `.git` file read-only, the other worktrees hidden again.
    #[test]
    fn a_hidden_folder_is_made_read_only_after_the_rules_mounted_inside_it() {
        use PathAccess::*;
        let args = plan(
            &[
                ("/home/me/.ssh", Hidden),
                ("/home/me/.netrc", Hidden),
                ("/home/me/.ao", Hidden),
                ("/tmp", Private),
                ("/home/me/.ao/wt/app-1", Writable),
                ("/home/me/.ao/wt/app-1/.git", ReadOnly),
                ("/home/me/.ao/wt/app-1/.git/hooks", ReadOnly),
                ("/srv/app/.git/objects", Writable),
                ("/srv/app/.git/objects/pack", ReadOnly),
            ],
            &[
                PathKind::Dir,
                PathKind::File,
                PathKind::Dir,
                PathKind::Dir,
                PathKind::Dir,
                PathKind::File,
                PathKind::Missing,
                PathKind::Dir,
                PathKind::Dir,
            ],
            "/home/me/.ao/wt/app-1",
        );
        let expected = "--tmpfs /home/me/.ssh \
             --dev-bind /dev/null /home/me/.netrc \
             --tmpfs /home/me/.ao \
             --tmpfs /tmp \
             --bind /home/me/.ao/wt/app-1 /home/me/.ao/wt/app-1 \
             --ro-bind /home/me/.ao/wt/app-1/.git /home/me/.ao/wt/app-1/.git \
             --bind /srv/app/.git/objects /srv/app/.git/objects \
             --ro-bind /srv/app/.git/objects/pack /srv/app/.git/objects/pack \
             --remount-ro /home/me/.ssh \
             --remount-ro /home/me/.ao \
             --chdir /home/me/.ao/wt/app-1";
        assert_eq!(args.join(" "), expected);
    }

    #[test]
    fn a_rule_covered_by_a_later_one_is_not_mounted() {
        use PathAccess::*;
        // The data dir inside /tmp (as in tests): the private /tmp covers it; the worktree is
        // mounted into the private /tmp, and nothing is remounted.
        let args = plan(
            &[
                ("/tmp/x/data", Hidden),
                ("/tmp", Private),
                ("/tmp/x/data/wt/a", Writable),
                ("/tmp/x/data/wt/b", Hidden),
                ("/tmp/x/data/private", Private),
            ],
            &[
                PathKind::Dir,
                PathKind::Dir,
                PathKind::Dir,
                PathKind::Dir,
                PathKind::Missing,
            ],
            "/tmp/x/data/wt/a",
        );
        assert_eq!(
            args.join(" "),
            "--tmpfs /tmp --bind /tmp/x/data/wt/a /tmp/x/data/wt/a \
             --tmpfs /tmp/x/data/private --chdir /tmp/x/data/wt/a"
        );
        // Read-only where everything is already: nothing to mount.
        let args = plan(
            &[("/w", Writable), ("/etc/passwd", ReadOnly)],
            &[PathKind::Dir, PathKind::File],
            "/w",
        );
        assert_eq!(args.join(" "), "--bind /w /w --chdir /w");
    }

    #[test]
    fn bad_requests_are_refused_naming_the_rule_and_the_fix() {
        use PathAccess::*;
        let refused = |paths: &[(&str, PathAccess)], cwd: &str| {
            let failure = check(&request(paths, cwd)).err().expect("refused");
            assert_eq!(failure.kind.as_enum().ok(), Some(&ErrorKind::InvalidInput));
            failure.message().to_string()
        };
        let said = refused(&[("/w", Writable), ("relative/key", Hidden)], "/w");
        assert!(said.contains("paths[1] (hidden `relative/key`) is not an absolute path"));
        let said = refused(&[("/w", Writable), ("/w/../etc", Writable)], "/w");
        assert!(said.contains("paths[1] (writable `/w/../etc`) holds `.` or `..`"));
        let said = refused(&[("/w", Writable), ("/a\0b", Hidden)], "/w");
        assert!(said.contains("NUL"), "{said}");
        let said = refused(&[("/w", Writable), ("/w/sub", ReadOnly)], "/w/sub/x");
        assert!(
            said.contains("cwd `/w/sub/x` is not inside a writable rule (the last rule over it is read-only `/w/sub`)"),
            "{said}"
        );
        let said = refused(&[("/w", Writable)], "/elsewhere");
        assert!(said.contains("no rule names it"), "{said}");
        let mut empty = request(&[("/w", Writable)], "/w");
        empty.argv = Vec::new().into();
        assert!(check(&empty)
            .err()
            .unwrap()
            .message()
            .contains("empty argv"));

        let checked = check(&request(&[("/w", Writable), ("/w/gone", Writable)], "/w")).unwrap();
        let failure = mounts(
            &checked,
            &[PathKind::Dir, PathKind::Missing],
            " on host `box`",
        )
        .unwrap_err();
        assert_eq!(failure.kind.as_enum().ok(), Some(&ErrorKind::Failed));
        assert!(
            failure
                .message()
                .starts_with("paths[1] (writable `/w/gone`) does not exist on host `box`"),
            "{failure}"
        );
        let checked = check(&request(&[("/w", Writable), ("/w/l", Hidden)], "/w")).unwrap();
        let failure = mounts(&checked, &[PathKind::Dir, PathKind::Link], "").unwrap_err();
        assert!(
            failure.message().contains("is a symbolic link"),
            "{failure}"
        );
    }

    #[test]
    fn paths_are_normalised() {
        let checked = check(&request(&[("//w//", PathAccess::Writable)], "/w/")).unwrap();
        assert_eq!(checked.rules[0].0, Path::new("/w"));
        assert_eq!(checked.cwd, Path::new("/w"));
    }
}
