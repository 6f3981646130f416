//! Shared set-up for the end-to-end tests: building real plugin libraries and running the real
//! `ao-host` binary in an isolated environment.
//!
//! Libraries are built with a nested `cargo build` into `target/e2e/` (a separate target folder,
//! because the outer `cargo test` holds the lock on `target/`), so `cargo test --workspace` on a
//! fresh clone needs nothing prepared beforehand.
//!
//! A crate of its own (`publish = false`), so the test binaries and the benchmarks link it
//! instead of each compiling these files again through `#[path]`.

pub mod agent_cli;
pub mod chat_completions_api;
pub mod gemini_api;
pub mod github_api;
pub mod listed_usage;
pub mod macho;
pub mod messages_api;
pub mod remote_world;
pub mod responses_api;
pub mod sshd;
pub mod standin_http;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

pub const FIRST_PARTY: [&str; 4] = [
    "ao-runtime-tmux",
    "ao-workspace-git-worktree",
    "ao-agent-claude-code",
    "ao-sandbox-bubblewrap",
];

/// The workspace's root: this crate is `tests/support` in it.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

fn e2e_dir() -> PathBuf {
    repo_root().join("target").join("e2e")
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.env_remove("CARGO_TARGET_DIR");
    command
}

fn run_build(mut command: Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running cargo for {what}: {e}"));
    assert!(
        output.status.success(),
        "building {what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// File name of a cdylib built from package `package`.
pub fn library_file_name(package: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        package.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

fn built_library(package: &str) -> PathBuf {
    e2e_dir()
        .join("target")
        .join("debug")
        .join(library_file_name(package))
}

/// Builds workspace packages (cdylibs) into the e2e target folder; returns their libraries.
fn build_packages(packages: &[&str], release: bool) -> Vec<PathBuf> {
    let mut command = cargo();
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(repo_root().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(e2e_dir().join("target"));
    if release {
        command.arg("--release");
    }
    for package in packages {
        command.args(["-p", package]);
    }
    run_build(command, &packages.join(", "));
    let profile = if release { "release" } else { "debug" };
    packages
        .iter()
        .map(|p| {
            e2e_dir()
                .join("target")
                .join(profile)
                .join(library_file_name(p))
        })
        .collect()
}

/// One workspace plugin package (e.g. `ao-agent-codex`), built into the e2e target folder once
/// per test process; its library.
pub fn build_workspace_plugin(package: &'static str) -> PathBuf {
    build_workspace_plugin_once(package, false)
}

/// The same, optimised, for benchmarks.
pub fn build_workspace_plugin_release(package: &'static str) -> PathBuf {
    build_workspace_plugin_once(package, true)
}

fn build_workspace_plugin_once(package: &'static str, release: bool) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(&str, bool, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if let Some((_, _, library)) = built
        .iter()
        .find(|(name, optimised, _)| *name == package && *optimised == release)
    {
        return library.clone();
    }
    let library = build_packages(&[package], release).remove(0);
    built.push((package, release, library.clone()));
    library
}

fn build_first_party(release: bool) -> Vec<PathBuf> {
    build_packages(&FIRST_PARTY, release)
}

/// The example plugins (`examples/`), built once per test process.
pub fn examples_build() -> &'static [PathBuf] {
    static BUILT: OnceLock<Vec<PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        build_packages(
            &["ao-example-runtime-process", "ao-example-agent-shell"],
            false,
        )
    })
}

/// Copies `examples/<name>` out of the workspace, points its path dependency at this checkout's
/// plugin-api, builds it there as a standalone crate, and returns the library: what a third
/// party who copied the example would get.
pub fn build_example_standalone(name: &str) -> PathBuf {
    let (copy, command) = standalone_example(name, "build");
    let package = format!("ao-example-{name}");
    run_build(command, &format!("standalone {package}"));
    copy.join("target")
        .join("debug")
        .join(library_file_name(&package))
}

/// Copies `examples/NAME` out of the workspace (sources, tests and a lock file), its path
/// dependencies pointing back at this workspace's crates; returns the copy and `cargo
/// SUBCOMMAND` set up to run on it alone.
pub fn standalone_example(name: &str, subcommand: &str) -> (PathBuf, Command) {
    let source = repo_root().join("examples").join(name);
    let copy = e2e_dir().join("standalone").join(name);
    let mut manifest = std::fs::read_to_string(source.join("Cargo.toml")).unwrap();
    for crate_folder in ["plugin-api", "plugin-kit", "plugin-test"] {
        let relative = format!("path = \"../../{crate_folder}\"");
        let absolute = format!(
            "path = {:?}",
            repo_root().join(crate_folder).display().to_string()
        );
        manifest = manifest.replace(&relative, &absolute);
    }
    assert!(
        !manifest.contains("path = \"../"),
        "examples/{name}/Cargo.toml has a relative path this copy cannot follow"
    );
    // An empty [workspace] makes the copy its own workspace wherever it sits.
    write_if_changed(
        &copy.join("Cargo.toml"),
        &format!("{manifest}\n[workspace]\n"),
    );
    for folder in ["src", "tests"] {
        let Ok(entries) = std::fs::read_dir(source.join(folder)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let text = std::fs::read_to_string(entry.path()).unwrap();
            write_if_changed(&copy.join(folder).join(entry.file_name()), &text);
        }
    }
    if !copy.join("Cargo.lock").exists() {
        let lock = std::fs::read_to_string(repo_root().join("Cargo.lock")).unwrap();
        write_if_changed(&copy.join("Cargo.lock"), &lock);
    }
    let mut command = cargo();
    command
        .arg(subcommand)
        .arg("--manifest-path")
        .arg(copy.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(copy.join("target"));
    (copy, command)
}

/// Builds the first-party plugins ([`FIRST_PARTY`]) once per test process; returns where they were built.
pub fn first_party_build() -> &'static [PathBuf] {
    static BUILT: OnceLock<Vec<PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| build_first_party(false))
}

/// The same, optimised, for benchmarks.
pub fn first_party_build_release() -> &'static [PathBuf] {
    static BUILT: OnceLock<Vec<PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| build_first_party(true))
}

/// Copies the first-party plugins into `dir` (a folder only this test reads).
pub fn install_first_party(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for library in first_party_build() {
        std::fs::copy(library, dir.join(library.file_name().unwrap())).unwrap();
    }
}

/// How a fixture's copy of `plugin-api` differs from the real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiPatch {
    /// The real crate.
    None,
    /// Same interface, another declared version.
    Version(&'static str),
    /// Same version, one more field in `RuntimeCreateRequest`.
    LayoutDrift,
    /// The interfaces as first released (0.1.0): without `alive_handles` and every method added
    /// after it.
    OldRuntime,
    /// Same version, one more variant in each enum that can grow (`ActivityState::Reviewing`,
    /// `ReadinessState::Paused`, `ErrorKind::Throttled`), as a later release may add.
    FutureVariants,
}

impl ApiPatch {
    fn tag(self) -> String {
        match self {
            Self::None => "real".into(),
            Self::Version(v) => format!("api-{}", v.replace('.', "-")),
            Self::LayoutDrift => "drift".into(),
            Self::OldRuntime => "old-runtime".into(),
            Self::FutureVariants => "future-variants".into(),
        }
    }
}

/// Writes `contents` to `path` only if it differs, atomically, so that concurrent test processes
/// can prepare the same folder and cargo sees no spurious change.
fn write_if_changed(path: &Path, contents: &str) {
    if std::fs::read_to_string(path).ok().as_deref() == Some(contents) {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    static WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let unique = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = path.with_extension(format!("tmp{}-{unique}", std::process::id()));
    std::fs::write(&temp, contents).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// The `[section]` of a TOML text, header included, up to the next header.
fn toml_section(text: &str, header: &str) -> String {
    let start = text
        .find(header)
        .unwrap_or_else(|| panic!("{header} in Cargo.toml"));
    let rest = &text[start + header.len()..];
    let end = rest.find("\n[").map(|i| i + 1).unwrap_or(rest.len());
    format!("{header}{}", &rest[..end])
}

fn patched_plugin_api(patch: ApiPatch, into: &Path) {
    let source = repo_root().join("plugin-api");
    let mut manifest = std::fs::read_to_string(source.join("Cargo.toml")).unwrap();
    let version = match patch {
        ApiPatch::Version(version) => Some(version),
        // The release before `alive_handles` was added.
        ApiPatch::OldRuntime => Some("0.1.0"),
        _ => None,
    };
    if let Some(version) = version {
        let current = format!("version = \"{}\"", ao_plugin_api::API_VERSION);
        assert!(
            manifest.contains(&current),
            "plugin-api version line not found"
        );
        manifest = manifest.replacen(&current, &format!("version = \"{version}\""), 1);
    }
    write_if_changed(&into.join("Cargo.toml"), &manifest);
    for entry in std::fs::read_dir(source.join("src")).unwrap() {
        let entry = entry.unwrap();
        let mut text = std::fs::read_to_string(entry.path()).unwrap();
        if patch == ApiPatch::OldRuntime {
            text = as_first_released(&entry.file_name().to_string_lossy(), text);
        }
        if patch == ApiPatch::FutureVariants && entry.file_name() == "successors.rs" {
            text = with_future_variants(text);
        }
        if patch == ApiPatch::LayoutDrift && entry.file_name() == "types.rs" {
            let anchor = "    pub env: RVec<EnvVar>,\n}";
            assert!(
                text.contains(anchor),
                "layout-drift patch no longer applies to types.rs"
            );
            text = text.replace(
                anchor,
                "    pub env: RVec<EnvVar>,\n    /// Not in this host's layout.\n    pub layout_drift: u64,\n}",
            );
        }
        write_if_changed(&into.join("src").join(entry.file_name()), &text);
    }
}

/// A copy of `plugin-kit` at `into` whose ao-plugin-api is the patched copy in the sibling
/// folder `api_dir`.
fn kit_against(api_dir: &str, into: &Path) {
    let source = repo_root().join("plugin-kit");
    let manifest = std::fs::read_to_string(source.join("Cargo.toml")).unwrap();
    let dependency = manifest
        .lines()
        .find(|line| line.starts_with("ao-plugin-api"))
        .expect("plugin-kit depends on ao-plugin-api");
    let manifest = manifest.replacen(
        dependency,
        &format!("ao-plugin-api = {{ path = \"../{api_dir}\" }}"),
        1,
    );
    write_if_changed(&into.join("Cargo.toml"), &manifest);
    for entry in std::fs::read_dir(source.join("src")).unwrap() {
        let entry = entry.unwrap();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        write_if_changed(&into.join("src").join(entry.file_name()), &text);
    }
}

/// `successors.rs` with one more variant at the end of each enum that can grow.
fn with_future_variants(text: String) -> String {
    [
        (
            "    Exited,\n}",
            "    Exited,\n    /// A later release's.\n    Reviewing,\n}",
        ),
        (
            "        answer: RVec<RString>,\n    },\n}",
            "        answer: RVec<RString>,\n    },\n    /// A later release's.\n    Paused,\n}",
        ),
        (
            "    RateLimited,\n}",
            "    RateLimited,\n    /// A later release's.\n    Throttled,\n}",
        ),
    ]
    .into_iter()
    .fold(text, |text, (anchor, grown)| {
        assert!(
            text.contains(anchor),
            "future-variants patch no longer applies to successors.rs: {anchor:?}"
        );
        text.replacen(anchor, grown, 1)
    })
}

/// A copy of plugin-api's source cut back to the interfaces as first released (0.1.0): every
/// method of each interface's `added` section in the method table (`methods.rs`; all added since,
/// `alive_handles` the first) goes, and so do the plain traits' methods after each interface's
/// `last_of_first_release` method. Keyed on the table's sections rather than on method names,
/// so methods added later are cut without editing this.
fn as_first_released(file: &str, text: String) -> String {
    const LAST: &str = "last_of_first_release {";
    const ADDED: &str = "added {";
    let table = match file {
        "methods.rs" | "traits.rs" => {
            std::fs::read_to_string(repo_root().join("plugin-api/src/methods.rs")).unwrap()
        }
        "ffi.rs" => return format!("#![allow(dead_code)]\n{text}"),
        _ => return text,
    };
    // (plain trait, its last method of the first release) for each interface.
    let mut interfaces = Vec::new();
    let mut rest = table.as_str();
    while let Some(at) = rest.find(LAST) {
        let trait_name = rest[..at]
            .rsplit_once("interface ")
            .and_then(|(_, name)| name.split(':').next())
            .unwrap_or_else(|| panic!("methods.rs: no interface before {LAST:?}"));
        let method = rest[at + LAST.len()..]
            .trim_start()
            .strip_prefix("fn ")
            .and_then(|m| m.split('(').next())
            .unwrap_or_else(|| panic!("methods.rs: no method after {LAST:?} in {trait_name}"));
        rest = &rest[at + LAST.len()..];
        // An interface with nothing added since its first release (`scm`) has nothing to cut.
        let added_nothing = rest
            .find(ADDED)
            .is_some_and(|added| rest[added + ADDED.len()..].trim_start().starts_with('}'));
        if !added_nothing {
            interfaces.push((trait_name.to_string(), method.to_string()));
        }
    }
    assert_eq!(
        interfaces.len(),
        3,
        "methods.rs: expected three interfaces with methods added since their first release"
    );
    if file == "methods.rs" {
        // Empties each `added { … }`, braces matched.
        let mut text = text;
        let mut from = 0;
        while let Some(found) = text[from..].find(ADDED) {
            let open = from + found + ADDED.len();
            let mut depth = 1;
            let close = open
                + text[open..]
                    .char_indices()
                    .find(|(_, c)| {
                        depth += match c {
                            '{' => 1,
                            '}' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map(|(i, _)| i)
                    .unwrap_or_else(|| panic!("methods.rs: unclosed {ADDED:?}"));
            text.replace_range(open..close, "");
            from = open;
        }
        return text;
    }
    // Keeps `text` up to the end of `method` in `block` (the first `;` line end after its
    // `fn`), and from the block's closing `}` on.
    let mut text = text;
    for (trait_name, method) in &interfaces {
        let block = format!("pub trait {trait_name}:");
        let start = text
            .find(&block)
            .unwrap_or_else(|| panic!("{file}: {block:?} not found"));
        let method_at = start
            + text[start..]
                .find(&format!("    fn {method}("))
                .unwrap_or_else(|| panic!("{file}: {method} not found in {block:?}"));
        let keep_to = method_at
            + text[method_at..]
                .find(";\n")
                .unwrap_or_else(|| panic!("{file}: end of {method} not found"))
            + 2;
        let close = keep_to
            + text[keep_to..]
                .find("\n}\n")
                .unwrap_or_else(|| panic!("{file}: end of {block:?} not found"));
        text = format!("{}{}", &text[..keep_to], &text[close + 1..]);
    }
    // Imports and helpers only the cut methods used.
    format!("#![allow(unused_imports, dead_code)]\n{text}")
}

/// Builds fixture crate `tests/fixtures/<fixture>` against `patch`'s `plugin-api`, and returns
/// the library. Each (fixture, patch) gets its own package name, so outputs never collide.
pub fn build_fixture(fixture: &str, patch: ApiPatch) -> PathBuf {
    let package = format!("ao-fixture-{fixture}-{}", patch.tag());
    let root = repo_root();
    let generated = e2e_dir().join("gen").join(&package);
    let patched_dir = format!("plugin-api-{}", patch.tag());
    let kit_dir = format!("plugin-kit-{}", patch.tag());
    let (api_dependency, kit_dependency) = if patch == ApiPatch::None {
        (
            format!(
                "ao-plugin-api = {{ path = {:?} }}",
                root.join("plugin-api").display().to_string()
            ),
            format!(
                "ao-plugin-kit = {{ path = {:?} }}",
                root.join("plugin-kit").display().to_string()
            ),
        )
    } else {
        // Cargo hashes a path package by its path relative to the workspace root: a patched copy
        // at `plugin-api/` would share artifacts with the real crate in the shared target folder.
        patched_plugin_api(patch, &generated.join(&patched_dir));
        // The kit follows the patched interface, as it would on a registry.
        kit_against(&patched_dir, &generated.join(&kit_dir));
        (
            format!("ao-plugin-api = {{ path = \"{patched_dir}\" }}"),
            format!("ao-plugin-kit = {{ path = \"{kit_dir}\" }}"),
        )
    };
    let members = if patch == ApiPatch::None {
        vec!["fixture".to_string()]
    } else {
        vec!["fixture".to_string(), patched_dir, kit_dir]
    };
    let command = fixture_workspace(fixture, &package, &generated, &members, |line| {
        if line.starts_with("ao-plugin-api") {
            Some(api_dependency.clone())
        } else if line.starts_with("ao-plugin-kit") {
            Some(kit_dependency.clone())
        } else {
            None
        }
    });
    run_build(command, &package);
    built_library(&package)
}

/// Writes, under `generated`, a workspace of its own holding fixture crate
/// `tests/fixtures/<fixture>` as package `package` (beside `members`, folders of `generated`),
/// with this workspace's dependencies except those `replace` rewrites (given each dependency
/// line); returns `cargo build -p PACKAGE` on it, sharing the e2e target folder.
fn fixture_workspace(
    fixture: &str,
    package: &str,
    generated: &Path,
    members: &[String],
    replace: impl Fn(&str) -> Option<String>,
) -> Command {
    let root = repo_root();
    let workspace_toml = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let dependencies: String = toml_section(&workspace_toml, "[workspace.dependencies]")
        .lines()
        .map(|line| replace(line).unwrap_or_else(|| line.to_string()))
        .collect::<Vec<_>>()
        .join("\n");
    let members = members
        .iter()
        .map(|member| format!("{member:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    write_if_changed(
        &generated.join("Cargo.toml"),
        &format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{members}]\n\n{}\n{dependencies}\n",
            toml_section(&workspace_toml, "[workspace.package]")
        ),
    );
    let fixture_dir = root.join("tests").join("fixtures").join(fixture);
    let fixture_toml = std::fs::read_to_string(fixture_dir.join("Cargo.toml"))
        .unwrap()
        .replacen(
            &format!("name = \"ao-fixture-{fixture}\""),
            &format!("name = \"{package}\""),
            1,
        )
        .replacen(
            "[lib]\n",
            &format!(
                "[lib]\npath = {:?}\n",
                fixture_dir.join("src/lib.rs").display().to_string()
            ),
            1,
        )
        .replacen(
            "build = \"build.rs\"",
            &format!(
                "build = {:?}",
                fixture_dir.join("build.rs").display().to_string()
            ),
            1,
        );
    write_if_changed(&generated.join("fixture").join("Cargo.toml"), &fixture_toml);
    if !generated.join("Cargo.lock").exists() {
        if let Ok(lock) = std::fs::read_to_string(root.join("Cargo.lock")) {
            write_if_changed(&generated.join("Cargo.lock"), &lock);
        }
    }
    let mut command = cargo();
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(generated.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(e2e_dir().join("target"))
        .args(["-p", package]);
    command
}

/// A release of `ao-plugin-api` whose real source the ABI fixtures are built from.
pub struct ApiRelease {
    pub version: &'static str,
    /// The commit that released it.
    pub commit: &'static str,
}

/// Every release before the format-2 manifest: the commits that set 0.1.0 to 0.1.6
/// (`git log -- plugin-api/Cargo.toml`); the last commit of 0.1.4, whose `LaunchRequest` had
/// gained a field since its first; and the commit tagged v0.1.6 (named by hash: a clone need not
/// have tags), which released 0.1.6 with more than its first commit had (remote constructors,
/// `Agent::forget`).
pub const API_RELEASES: [ApiRelease; 9] = [
    ApiRelease {
        version: "0.1.0",
        commit: "7925995",
    },
    ApiRelease {
        version: "0.1.1",
        commit: "def5f48",
    },
    ApiRelease {
        version: "0.1.2",
        commit: "b9e5940",
    },
    ApiRelease {
        version: "0.1.3",
        commit: "d07a219",
    },
    ApiRelease {
        version: "0.1.4",
        commit: "086cb57",
    },
    ApiRelease {
        version: "0.1.4",
        commit: "c1799b9",
    },
    ApiRelease {
        version: "0.1.5",
        commit: "06da833",
    },
    ApiRelease {
        version: "0.1.6",
        commit: "fd99e2c",
    },
    ApiRelease {
        version: "0.1.6",
        commit: "ffcbf40",
    },
];

/// `plugin-api/` as `release` shipped it, extracted from git history into `into` (once: later
/// runs reuse it, and the commit's timestamps keep cargo's cache valid).
fn extract_plugin_api(release: &ApiRelease, into: &Path) {
    if into.join("Cargo.toml").exists() {
        return;
    }
    let root = repo_root();
    let known = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["cat-file", "-e", &format!("{}^{{commit}}", release.commit)])
        .status()
        .unwrap();
    assert!(
        known.success(),
        "commit {} (ao-plugin-api {}) is not in this clone: its history is shallow or missing; run `git fetch --unshallow` (the ABI fixtures are built from each release's real source)",
        release.commit,
        release.version
    );
    let staging = into.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).unwrap();
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["archive", "--format=tar", release.commit, "plugin-api"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let untarred = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&staging)
        .stdin(archive.stdout.take().unwrap())
        .status()
        .unwrap();
    assert!(
        archive.wait().unwrap().success() && untarred.success(),
        "extracting plugin-api at {}",
        release.commit
    );
    // Another test process may have won the race; its copy is the same.
    let _ = std::fs::rename(staging.join("plugin-api"), into);
    let _ = std::fs::remove_dir_all(&staging);
}

/// Builds `tests/fixtures/<fixture>` against the real `plugin-api` source of `release`, in a
/// workspace of its own under `target/e2e/history/` (old releases inherit their package fields
/// from the workspace), sharing the e2e target folder so abi_stable is built once; returns the
/// library, installed into `dir`. `features` are the only fixture features enabled.
pub fn build_historical_fixture(
    fixture: &str,
    release: &ApiRelease,
    features: &[&str],
    dir: &Path,
) -> PathBuf {
    // Each set of features builds to the same file: one build and copy at a time.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _building = BUILDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let package = format!("ao-fixture-{fixture}-{}", release.commit.replace('.', "-"));
    let generated = e2e_dir().join("history").join(&package);
    // Cargo hashes a path package by its path relative to the workspace root: two releases with
    // one version (0.1.4's first and last commits) at `plugin-api/` would share artifacts.
    let api_dir = format!("plugin-api-{}", release.commit.replace('.', "-"));
    extract_plugin_api(release, &generated.join(&api_dir));
    let mut command = fixture_workspace(
        fixture,
        &package,
        &generated,
        &["fixture".to_string(), api_dir.clone()],
        |line| {
            line.starts_with("ao-plugin-api")
                .then(|| format!("ao-plugin-api = {{ path = \"{api_dir}\" }}"))
        },
    );
    command.arg("--no-default-features");
    if !features.is_empty() {
        command.arg("--features").arg(features.join(","));
    }
    run_build(command, &package);
    install(&built_library(&package), dir, None)
}

/// Copies a built library into `dir`, under `name` if given.
pub fn install(library: &Path, dir: &Path, name: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let target = dir.join(
        name.map(PathBuf::from)
            .unwrap_or_else(|| library.file_name().unwrap().into()),
    );
    std::fs::copy(library, &target).unwrap();
    target
}

/// The `ao-host` binary under test, copied once per test process into a folder holding nothing
/// else. The host also loads plugins from its executable's folder, and cargo's `target/debug`
/// holds whatever libraries builds left there (the examples, stale first-party plugins): run
/// from there, every test would see them. Cargo names the binary to its package's test and
/// bench binaries, when they are built and when they run; read at run time, as this crate is
/// built before it.
pub fn ao_host_binary() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let built = std::env::var_os("CARGO_BIN_EXE_ao-host")
                .map(PathBuf::from)
                .expect("CARGO_BIN_EXE_ao-host is not set: run the tests with `cargo test`, which builds ao-host and names it");
            // Named by size and build time: hashing a debug binary's ~100 MB would cost seconds.
            let metadata = std::fs::metadata(&built).unwrap();
            let built_at = metadata
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let copies = e2e_dir().join("host");
            let folder = copies.join(format!("{:x}-{built_at:x}", metadata.len()));
            // Copies of earlier builds go once no test could still be running them.
            for entry in std::fs::read_dir(&copies).into_iter().flatten().flatten() {
                let stale = entry.metadata().and_then(|m| m.modified()).is_ok_and(|at| {
                    at.elapsed()
                        .is_ok_and(|age| age > std::time::Duration::from_secs(3600))
                });
                if stale && entry.path() != folder {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
            install_program(&built, &folder.join("ao-host"))
        })
        .clone()
}

/// The real `ao-host` binary with an environment that only the test controls.
pub fn ao_host(home: &Path) -> Command {
    let mut command = Command::new(ao_host_binary());
    command
        .env("HOME", home)
        .env_remove("AO_PLUGIN_PATH")
        .env_remove("AO_CONFIG_PATH")
        .env_remove("AO_LOG")
        // Tests run inside an ao-host session act on their own data dirs, not the session's.
        .env_remove("AO_SESSION")
        .env_remove("AO_DATA_DIR")
        .env_remove("AO_PROJECT_ID")
        .current_dir(home);
    command
}

/// `ao-host plugins list --json` over `plugin_dir` alone.
pub fn plugins_list(home: &Path, plugin_dir: &Path) -> serde_json::Value {
    let output = ao_host(home)
        .arg("--plugin-dir")
        .arg(plugin_dir)
        .args(["plugins", "list", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    json(&output)
}

/// The rows of a `plugins list --json` listing for libraries in `dir`.
pub fn rows_in(listing: &serde_json::Value, dir: &Path) -> Vec<serde_json::Value> {
    listing["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| Path::new(row["path"].as_str().unwrap()).starts_with(dir))
        .cloned()
        .collect()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(output),
            stderr(output)
        )
    })
}

/// The command failed with exactly one line on stderr containing `want`.
pub fn assert_one_line_error(output: &std::process::Output, want: &str) {
    assert!(
        !output.status.success(),
        "succeeded; wanted an error about {want}"
    );
    let err = stderr(output);
    assert_eq!(err.trim().lines().count(), 1, "not one line:\n{err}");
    assert!(err.contains(want), "error lacks {want:?}:\n{err}");
}

/// The fake agent program (`ao-plugin-test`'s `ao-fake-agent`, a stand-in for Claude Code: see
/// `ao_plugin_test::fake_agent`), built once per test process.
pub fn fake_agent() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_fake_agent(false)).clone()
}

/// The same, optimised, for benchmarks.
pub fn fake_agent_release() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_fake_agent(true)).clone()
}

/// Builds `ao-fake-agent` into the e2e target folder and returns a copy named by its content
/// (`target/e2e/bin/ao-fake-agent-<hash>`): cargo puts its output back in place on every build,
/// even a fresh one, so another test process starting the agent from there meanwhile could
/// find no file. A copy is put in place by a rename, once, and never changed.
fn build_fake_agent(release: bool) -> PathBuf {
    const PROGRAM: &str = "ao-fake-agent";
    let mut command = cargo();
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(repo_root().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(e2e_dir().join("target"))
        .args(["-p", "ao-plugin-test", "--bin", PROGRAM]);
    if release {
        command.arg("--release");
    }
    run_build(command, PROGRAM);
    let profile = if release { "release" } else { "debug" };
    let built = e2e_dir().join("target").join(profile).join(PROGRAM);
    // Another test process's cargo may be putting the same file back in place right now.
    let mut bytes = Vec::new();
    assert!(
        wait_until(std::time::Duration::from_secs(10), || {
            std::fs::read(&built).map(|read| bytes = read).is_ok()
        }),
        "{} cannot be read",
        built.display()
    );
    let digest = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        bytes.hash(&mut hasher);
        hasher.finish()
    };
    install_program(
        &built,
        &e2e_dir()
            .join("bin")
            .join(format!("{PROGRAM}-{digest:016x}")),
    )
}

/// Copies the program `built` to `program` unless a copy is there already (its name says which
/// build it is), atomically: test processes running at once find it whole or not at all.
fn install_program(built: &Path, program: &Path) -> PathBuf {
    if !program.exists() {
        std::fs::create_dir_all(program.parent().unwrap()).unwrap();
        let temp = program.with_extension(format!("tmp{}", std::process::id()));
        // Copied by `cp`: a file this process held open for writing could be inherited by a
        // child it forks meanwhile, and running the program would fail (ETXTBSY) until that
        // child execs.
        let copy = || {
            Command::new("cp")
                .arg(built)
                .arg(&temp)
                .status()
                .unwrap()
                .success()
        };
        assert!(
            wait_until(std::time::Duration::from_secs(10), copy),
            "cp {} {}",
            built.display(),
            temp.display()
        );
        std::fs::rename(&temp, program).unwrap();
    }
    program.to_path_buf()
}

/// Runs git with a fixed identity (CI machines have none configured) and returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=ao test",
            "-c",
            "user.email=ao@test.invalid",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A repository with one commit on `main`.
pub fn init_repo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "test repo\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "initial"]);
}

/// The tmux session name in a tmux runtime handle (`<name>@<server socket>`).
pub fn tmux_name(handle: &str) -> String {
    handle.split('@').next().unwrap_or_default().to_string()
}

/// A private tmux server for one test, killed when dropped so no session outlives the test.
pub struct TmuxServer {
    pub socket: String,
}

impl TmuxServer {
    pub fn new() -> Self {
        static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            socket: format!("ao-test-{}-{n}", std::process::id()),
        }
    }

    /// Runs `tmux -L <socket> args…`, returning whether it succeeded and its stdout.
    pub fn tmux(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    /// Starts the server ahead of any spawn, with `env` in its environment: what a long-lived
    /// server keeps from whoever started it, which no agent may inherit.
    pub fn start_with_env(&self, env: &[(&str, &str)]) {
        let started = Command::new("tmux")
            .args(["-L", &self.socket, "new-session", "-d", "-s", "keeper"])
            .envs(env.iter().copied())
            .status()
            .expect("tmux runs");
        assert!(started.success(), "tmux new-session failed");
    }

    pub fn sessions(&self) -> Vec<String> {
        let (ok, out) = self.tmux(&["list-sessions", "-F", "#{session_name}"]);
        if ok {
            out.lines().map(str::to_string).collect()
        } else {
            Vec::new()
        }
    }
}

impl Default for TmuxServer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TmuxServer {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// `command`, started by `script` (run by `sh -c` with `args` as `$1`…, and ending in
/// `shift N; exec "$@"`) in a mount namespace of its own: what the script mounts, `command` and
/// everything it starts see, and nothing outside does. Its environment and folder are kept.
pub fn in_private_mounts(script: &str, args: &[&std::ffi::OsStr], command: &Command) -> Command {
    let mut namespaced = Command::new("unshare");
    namespaced
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args(args)
        .arg(command.get_program())
        .args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => namespaced.env(name, value),
            None => namespaced.env_remove(name),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        namespaced.current_dir(dir);
    }
    namespaced
}

/// Runs `command` in a private mount namespace whose `/etc` is an overlay (its layers under
/// `scratch`) holding Claude Code's managed policy file, `/etc/claude-code/managed-settings.json`
/// (where 2.1.197 reads it on Linux), with `policy`. What `command` starts (a tmux server and
/// every agent it runs) sees the file; nothing outside does, and the real `/etc` is never
/// written. `None` when this machine cannot make such a namespace (not root, no overlayfs).
pub fn run_under_claude_policy(scratch: &Path, policy: &str, command: &Command) -> Option<Output> {
    let (upper, work) = (scratch.join("upper"), scratch.join("work"));
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let policy_file = scratch.join("managed-settings.json");
    std::fs::write(&policy_file, policy).unwrap();
    // Everything comes in as arguments: nothing the test made is pasted into the script.
    // 97: the namespace could not be made, told apart from what `command` itself exits with.
    let script = r#"mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc || exit 97
mkdir -p /etc/claude-code || exit 97
cp "$3" /etc/claude-code/managed-settings.json || exit 97
shift 3
exec "$@""#;
    let mut namespaced = in_private_mounts(
        script,
        &[upper.as_os_str(), work.as_os_str(), policy_file.as_os_str()],
        command,
    );
    let output = namespaced.output().ok()?;
    let namespace_failed = output.status.code() == Some(97)
        || String::from_utf8_lossy(&output.stderr).starts_with("unshare: ");
    if namespace_failed {
        eprintln!(
            "skipped: no private mount namespace with an overlay on /etc here: {}",
            stderr(&output)
        );
        return None;
    }
    Some(output)
}

/// Whether a test may run that needs a program this machine may lack: `missing` says what is
/// missing and how to install it. Without it the test skips, saying so, except under CI (`CI`
/// set, as `.ci/run` is run: it installs everything), where a test that passed as skipped would
/// hide that it never ran; there it fails.
pub fn require_program(missing: Option<String>) -> bool {
    let Some(missing) = missing else {
        return true;
    };
    let under_ci = std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false");
    assert!(!under_ci, "CI must run this test: {missing}");
    eprintln!("skipped: {missing}");
    false
}

/// A program on PATH, by any of `names`.
pub fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: std::time::Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Messages the fake agent recorded under `log_dir`. Only whole lines: a long message's line
/// is appended by one `write` that a reader can catch half done (a 100 KB message under load).
pub fn fake_messages(log_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(log_dir.join("messages.jsonl"))
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter_map(|line| line.strip_suffix('\n'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The address an `ao-host dashboard` started as `child` (stdout piped) printed first, without a
/// trailing `/`; `stderr_log` is where its stderr goes, shown when it printed no address.
pub fn dashboard_address(child: &mut std::process::Child, stderr_log: &Path) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(
        child
            .stdout
            .take()
            .expect("the dashboard's stdout is piped"),
    )
    .read_line(&mut line)
    .unwrap();
    assert!(
        line.starts_with("http://"),
        "no address printed: {line:?}; stderr: {}",
        std::fs::read_to_string(stderr_log).unwrap_or_default()
    );
    line.trim().trim_end_matches('/').to_string()
}

/// Server-sent events read from `stream` on a thread of its own, as (event name, JSON data),
/// until it ends or the receiver is dropped.
pub fn server_sent_events(
    stream: impl std::io::Read + Send + 'static,
) -> std::sync::mpsc::Receiver<(String, serde_json::Value)> {
    use std::io::BufRead;
    let (sender, events) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut kind, mut data) = (String::new(), String::new());
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if let Some(value) = line.strip_prefix("event: ") {
                kind = value.to_string();
            } else if let Some(value) = line.strip_prefix("data: ") {
                data.push_str(value);
            } else if line.is_empty() && !kind.is_empty() {
                let value = serde_json::from_str(&data).unwrap();
                if sender.send((std::mem::take(&mut kind), value)).is_err() {
                    return;
                }
                data.clear();
            }
        }
    });
    events
}

/// What the fake agent recorded at start: argv, cwd, env.
pub fn fake_start(log_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(log_dir.join("start.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `text` with each `(from, to)` of `replacements` applied in turn, every occurrence; panics
/// naming a `from` that occurs nowhere, so that a change to what the harness writes can never
/// silently turn a test of a bad config into a test of the good one.
pub fn replaced(text: &str, replacements: &[(&str, &str)]) -> String {
    replacements
        .iter()
        .fold(text.to_string(), |text, (from, to)| {
            assert!(
                text.contains(from),
                "the edit of {from:?} matches nothing in:\n{text}"
            );
            text.replace(from, to)
        })
}

/// A temporary folder under the e2e target folder, not `/tmp`: what a confined agent must
/// reach of a test's files would vanish behind its private `/tmp`. Removed when dropped.
pub fn scratch_dir() -> tempfile::TempDir {
    let base = e2e_dir().join("scratch");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// One isolated installation: plugins, data dir, repository, tmux server, config file.
pub struct Harness {
    pub temp: tempfile::TempDir,
    pub tmux: TmuxServer,
}

impl Harness {
    /// `agent_env` is extra environment for the fake agent (its behaviour switches);
    /// `claude_settings` extra lines under `plugins.config.claude-code`.
    pub fn new(agent_env: &[(&str, &str)], claude_settings: &str) -> Self {
        Self::in_temp(tempfile::tempdir().unwrap(), agent_env, claude_settings)
    }

    /// The same, in a folder outside `/tmp` (under the e2e target folder): a confined agent
    /// gets a private `/tmp`, in which an installation under `/tmp` (its scratch HOME, its
    /// repository, the agent's log folder) would not exist, so a probe of what it may not
    /// touch there would pass for the wrong reason.
    pub fn outside_tmp(agent_env: &[(&str, &str)], claude_settings: &str) -> Self {
        Self::in_temp(scratch_dir(), agent_env, claude_settings)
    }

    fn in_temp(temp: tempfile::TempDir, agent_env: &[(&str, &str)], claude_settings: &str) -> Self {
        let harness = Self {
            temp,
            tmux: TmuxServer::new(),
        };
        install_first_party(&harness.plugin_dir());
        init_repo(&harness.repo());
        let mut env = format!(
            "FAKE_AGENT_LOG: {:?}",
            harness.log_dir().display().to_string()
        );
        for (k, v) in agent_env {
            env.push_str(&format!(", {k}: {v:?}"));
        }
        let config = format!(
            "data_dir: {data:?}\n\
             defaults: {{ ready_timeout_ms: 10000 }}\n\
             plugins:\n  dirs: [{plugins:?}]\n  config:\n\
             \x20   tmux: {{ socket: {socket} }}\n\
             \x20   claude-code:\n      command: {fake:?}\n      env: {{ {env} }}\n{claude_settings}\
             projects:\n  app: {{ repo: {repo:?}, default_branch: main }}\n",
            data = harness.data_dir().display().to_string(),
            plugins = harness.plugin_dir().display().to_string(),
            socket = harness.tmux.socket,
            fake = fake_agent().display().to_string(),
            repo = harness.repo().display().to_string(),
        );
        std::fs::write(harness.config_path(), config).unwrap();
        harness
    }

    /// Applies `replacements` to the config file (see [`replaced`]): a test's edit that no
    /// longer matches what the harness writes fails the test instead of leaving it unedited.
    pub fn edit_config(&self, replacements: &[(&str, &str)]) {
        self.rewrite_config(|text| replaced(&text, replacements));
    }

    /// Adds `lines` at the end of the config file.
    pub fn append_config(&self, lines: &str) {
        self.rewrite_config(|text| text + lines);
    }

    /// Rewrites the config file with `edit`, for edits that are not replacements; `edit` must
    /// itself fail when it finds nothing to change.
    pub fn rewrite_config(&self, edit: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(self.config_path()).unwrap();
        std::fs::write(self.config_path(), edit(text)).unwrap();
    }

    /// Installs the `scm` fixture (plugin `fixture-scm`) next to the real plugins, with
    /// `settings`.
    pub fn install_scm_fixture(&self, settings: &str) {
        install(
            &build_fixture("scm", ApiPatch::None),
            &self.plugin_dir(),
            None,
        );
        self.edit_config(&[(
            "  config:\n",
            &format!("  config:\n    fixture-scm: {settings}\n"),
        )]);
    }

    /// Installs the `faulty` runtime fixture next to the real plugins, with `settings`.
    pub fn install_faulty_runtime(&self, settings: &str) {
        install(
            &build_fixture("faulty", ApiPatch::None),
            &self.plugin_dir(),
            None,
        );
        self.edit_config(&[(
            "  config:\n",
            &format!("  config:\n    faulty: {settings}\n"),
        )]);
    }

    pub fn home(&self) -> &Path {
        self.temp.path()
    }
    pub fn plugin_dir(&self) -> PathBuf {
        self.home().join("plugins")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.home().join("data")
    }
    pub fn repo(&self) -> PathBuf {
        self.home().join("repo")
    }
    pub fn log_dir(&self) -> PathBuf {
        self.home().join("agent-logs")
    }
    pub fn config_path(&self) -> PathBuf {
        self.home().join("ao-rs.yaml")
    }
    pub fn worktree(&self, id: &str) -> PathBuf {
        self.data_dir().join("worktrees").join("app").join(id)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = ao_host(self.home());
        command.arg("--config").arg(self.config_path()).args(args);
        command
    }

    pub fn ao(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed.
    pub fn ok(&self, args: &[&str]) -> Output {
        let output = self.ao(args);
        assert!(
            output.status.success(),
            "ao-host {args:?} failed:\n{}",
            stderr(&output)
        );
        output
    }

    pub fn sessions_json(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["session", "ls", "--json"];
        args.extend_from_slice(extra);
        json(&self.ok(&args)).as_array().unwrap().clone()
    }

    /// The tmux session name of `id`, from the runtime handle in its record.
    pub fn tmux_session(&self, id: &str) -> String {
        let text = std::fs::read_to_string(self.record(id, false)).unwrap();
        let record: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        tmux_name(record["runtime_handle"].as_str().unwrap())
    }

    pub fn record(&self, id: &str, archived: bool) -> PathBuf {
        let mut dir = self.data_dir().join("sessions").join("app");
        if archived {
            dir.push("archive");
        }
        dir.join(format!("{id}.yaml"))
    }

    /// Asserts a failed spawn left nothing: no record, worktree, tmux session or branch.
    /// No active record, no tmux session and no worktree besides the repository itself.
    pub fn assert_no_sessions(&self) {
        assert!(self.sessions_json(&[]).is_empty(), "active records left");
        assert!(
            self.tmux.sessions().is_empty(),
            "tmux sessions left: {:?}",
            self.tmux.sessions()
        );
        assert_eq!(git(&self.repo(), &["worktree", "list"]).lines().count(), 1);
    }

    /// Nothing was ever created: no session, worktree, tmux session, and no branch but `main`.
    pub fn assert_untouched(&self) {
        self.assert_no_sessions();
        let branches = git(&self.repo(), &["branch", "--format=%(refname:short)"]);
        assert_eq!(branches, "main", "branches left behind");
    }

    /// A failed spawn of `id` left nothing behind.
    pub fn assert_nothing_left(&self, id: &str) {
        assert!(
            !self.record(id, false).exists(),
            "record of {id} left behind"
        );
        assert!(!self.worktree(id).exists(), "worktree of {id} left behind");
        self.assert_untouched();
    }
}

#[cfg(test)]
mod tests {
    use super::replaced;

    #[test]
    fn replacements_apply_in_turn_to_every_occurrence() {
        let text = "a: 1\nb: 1\n";
        assert_eq!(
            replaced(text, &[("1", "2"), ("b: 2", "b: 3")]),
            "a: 2\nb: 3\n"
        );
    }

    #[test]
    #[should_panic(expected = "the edit of \"c: 1\" matches nothing")]
    fn a_replacement_that_matches_nothing_fails() {
        replaced("a: 1\n", &[("a: 1", "a: 2"), ("c: 1", "c: 2")]);
    }
}
