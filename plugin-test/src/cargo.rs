//! The kit run from a plugin crate's own `cargo test` ([`conformance_test!`]).
//!
//! Two things a plugin's test lacks, solved here:
//! - `cargo test` does not build a cdylib-only crate's library, so the kit builds it: `cargo
//!   build --lib` of the crate under test, with the test's own profile and target folder (so
//!   nothing is built twice), and says which file it tests. `AO_PLUGIN_TEST_LIBRARY` names a
//!   library to test instead (one built another way).
//! - The kit's probe agent is a program a runtime starts; a plugin's test has no `ao-host` to
//!   start. The test binary itself is the probe: the runtime runs it with the kit's test as the
//!   only filter and [`PROBE_MARK`] then the probe's folder after it; the test sees the mark and
//!   runs the probe instead of the kit. The library runs in the test's process (its calls are
//!   still off the async reactor and under timeouts; a panic in it is caught by the adapter),
//!   since only `ao-host` can serve an isolated plugin.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use super::{test_library, CheckResult, KitSettings};

/// The argument after which the probe's folder comes, when the test binary runs as the probe.
pub const PROBE_MARK: &str = "ao-plugin-test-probe";
/// Names a library to test instead of building the crate's.
const LIBRARY_VARIABLE: &str = "AO_PLUGIN_TEST_LIBRARY";

/// Declares the test that runs the conformance kit on this crate's own library. Put it at the
/// top level of an integration test (`tests/conformance.rs`) holding nothing else: the kit
/// watches stdout while it runs, which other tests' results would write to.
///
/// ```ignore
/// ao_plugin_test::conformance_test!();
/// ```
#[macro_export]
macro_rules! conformance_test {
    () => {
        #[test]
        fn ao_plugin_conformance() {
            $crate::run_from_cargo_test(env!("CARGO_MANIFEST_DIR"), "ao_plugin_conformance");
        }
    };
}

/// Which library the kit tests, and how it got it.
#[derive(Debug, Clone)]
pub struct LibraryUnderTest {
    /// The library file.
    pub path: PathBuf,
    /// `built with …` or `named by AO_PLUGIN_TEST_LIBRARY`, for the report.
    pub how: String,
}

/// The body of [`conformance_test!`]: the probe when the runtime under test started this binary
/// as one; else builds the library of the crate at `manifest_dir`, runs every check on it, and
/// panics naming each failed check.
pub fn run_from_cargo_test(manifest_dir: &str, test_name: &str) {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == PROBE_MARK) {
        let dir = args.get(at + 1).expect("the probe's folder after its mark");
        let outcome = super::probe::run(Path::new(dir));
        std::process::exit(i32::from(outcome.is_err()));
    }
    let library = library_under_test(Path::new(manifest_dir)).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "ao-plugin-test: testing {} ({})",
        library.path.display(),
        library.how
    );
    let exe = std::env::current_exe().expect("the test binary's own path, to run it as the probe");
    let probe = vec![
        exe.display().to_string(),
        test_name.to_string(),
        "--exact".to_string(),
        "--nocapture".to_string(),
        "--test-threads=1".to_string(),
        PROBE_MARK.to_string(),
    ];
    let reactor = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("an async runtime for the kit");
    let results = reactor
        .block_on(test_library(
            &library.path,
            None,
            &KitSettings::default(),
            probe,
            None,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    reactor.shutdown_background();
    for r in &results {
        eprintln!("{}", r.line());
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.ok)
        .map(CheckResult::line)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} conformance checks failed for {}:\n{}",
        failed.len(),
        results.len(),
        library.path.display(),
        failed.join("\n")
    );
}

/// The library of the crate at `manifest_dir`: the one `AO_PLUGIN_TEST_LIBRARY` names, else
/// built now with `cargo build --lib` in this test binary's profile and target folder.
pub fn library_under_test(manifest_dir: &Path) -> Result<LibraryUnderTest, String> {
    if let Some(path) = std::env::var_os(LIBRARY_VARIABLE) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(format!(
                "{LIBRARY_VARIABLE}={} names no file; unset it to have the kit build the crate's library",
                path.display()
            ));
        }
        return Ok(LibraryUnderTest {
            path,
            how: format!("named by {LIBRARY_VARIABLE}"),
        });
    }
    let exe = std::env::current_exe().map_err(|e| format!("finding the test binary: {e}"))?;
    let output_dir = exe
        .parent()
        .filter(|deps| deps.file_name().is_some_and(|n| n == "deps"))
        .and_then(Path::parent)
        .ok_or_else(|| {
            format!(
                "{} is not in a cargo target folder (…/<profile>/deps/); set {LIBRARY_VARIABLE} to the library to test",
                exe.display()
            )
        })?;
    let profile = match output_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(other) => other.to_string(),
        None => return Err(format!("no profile folder above {}", exe.display())),
    };
    let (target_dir, triple) = target_of(output_dir);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .arg("build")
        .arg("--lib")
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .arg("--profile")
        .arg(&profile)
        .arg("--target-dir")
        .arg(target_dir);
    if let Some(triple) = triple {
        command.arg("--target").arg(triple);
    }
    let shown = format!("{command:?}");
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("running {shown}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{shown} failed ({}); see its errors above",
            output.status
        ));
    }
    let path = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| {
            message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
        })
        .filter_map(|message| {
            message["filenames"].as_array()?.iter().find_map(|f| {
                let f = f.as_str()?;
                (f.ends_with(".so") || f.ends_with(".dylib")).then(|| PathBuf::from(f))
            })
        })
        .next_back()
        .ok_or_else(|| {
            format!(
                "{shown} built no cdylib: a plugin crate needs `crate-type = [\"cdylib\"]` in its [lib]"
            )
        })?;
    Ok(LibraryUnderTest {
        path,
        how: format!("built with `cargo build --lib --profile {profile}`"),
    })
}

/// The target folder and target triple (if any) of a `<profile>` output folder: `<target>/<profile>`,
/// or `<target>/<triple>/<profile>` when built for a given target. Cargo keeps
/// `.rustc_info.json` in a target folder (and writes `CACHEDIR.TAG` only into one it made
/// itself: a folder that existed before, holding npm installs say, has none).
fn target_of(output_dir: &Path) -> (&Path, Option<&str>) {
    let is_target_dir =
        |dir: &Path| dir.join(".rustc_info.json").exists() || dir.join("CACHEDIR.TAG").exists();
    let above = output_dir.parent().unwrap_or(output_dir);
    match above.parent() {
        Some(target) if !is_target_dir(above) && is_target_dir(target) => {
            (target, above.file_name().and_then(|n| n.to_str()))
        }
        _ => (above, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_folder_is_found_with_or_without_a_triple_and_a_cachedir_tag() {
        let temp = tempfile::tempdir().unwrap();
        let target = temp.path().join("target");
        std::fs::create_dir_all(target.join("debug")).unwrap();
        std::fs::create_dir_all(target.join("x86_64-unknown-linux-gnu/release")).unwrap();
        // A folder cargo did not make itself: no CACHEDIR.TAG, only its rustc cache.
        std::fs::write(target.join(".rustc_info.json"), "{}").unwrap();
        assert_eq!(target_of(&target.join("debug")), (target.as_path(), None));
        assert_eq!(
            target_of(&target.join("x86_64-unknown-linux-gnu/release")),
            (target.as_path(), Some("x86_64-unknown-linux-gnu"))
        );
    }
}
