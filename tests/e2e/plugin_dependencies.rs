//! A plugin's dependencies are held to the plugin's own trust rules before anything is loaded,
//! and every load failure names the real file and cause. The libraries are real: a Rust plugin
//! linked against a C library it ships beside itself (`RUNPATH $ORIGIN/../lib`), and C libraries
//! built here with `gcc` whose constructors leave a mark file, so a test can tell whether the
//! host ever ran them.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use ao_core::plugins::PluginRegistry;
use support::{ao_host, build_fixture, install, json, stderr, ApiPatch};

/// A test's own folder tree, every folder 0755 (the temporary folder itself is 0700 in sticky
/// `/tmp`, which the trust rules accept on the way to a file).
struct Tree {
    home: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        set_mode(home.path(), 0o755);
        Self { home }
    }

    fn path(&self) -> &Path {
        self.home.path()
    }

    /// A folder of the tree with `mode`.
    fn folder(&self, name: &str, mode: u32) -> PathBuf {
        let dir = self.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        set_mode(&dir, mode);
        dir
    }

    /// The `with-dependency` plugin installed in `<name>/plugins`; its dependency is looked for
    /// in `<name>/lib`.
    fn plugin(&self, name: &str) -> PathBuf {
        self.folder(name, 0o755);
        let library = install(
            &build_fixture("with-dependency", ApiPatch::None),
            &self.folder(&format!("{name}/plugins"), 0o755),
            None,
        );
        set_mode(&library, 0o755);
        library
    }

    fn mark(&self, name: &str) -> PathBuf {
        self.path().join(format!("{name}.ran"))
    }

    fn check(&self, library: &Path) -> Output {
        self.check_with(library, &[])
    }

    fn check_with(&self, library: &Path, env: &[(&str, &Path)]) -> Output {
        let mut command = ao_host(self.path());
        command
            .args(["plugins", "check", "--json"])
            .arg(library)
            .env_remove("LD_LIBRARY_PATH");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32) {
    let name = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: lchown of a path this test made.
    assert_eq!(unsafe { libc::lchown(name.as_ptr(), uid, uid) }, 0);
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Builds a shared library from C `source` with gcc into `output` (mode 0644).
fn gcc(source: &str, output: &Path, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("source.c");
    std::fs::write(&file, source).unwrap();
    let result = Command::new("gcc")
        .args(args)
        .arg("-o")
        .arg(output)
        .arg(&file)
        .output()
        .expect("gcc is needed to build the fixture libraries");
    assert!(
        result.status.success(),
        "gcc failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    set_mode(output, 0o644);
}

/// C code for a constructor that writes `mark`.
fn constructor_writing(mark: &Path) -> String {
    format!(
        "#include <stdio.h>\n__attribute__((constructor)) static void leave_mark(void) {{ FILE *f = fopen({:?}, \"w\"); if (f) {{ fputs(\"ran\\n\", f); fclose(f); }} }}\n",
        mark.to_str().unwrap()
    )
}

/// `libaodep.so` as the plugin needs it, its constructor writing `mark`.
fn dependency(output: &Path, mark: &Path) {
    gcc(
        &format!(
            "{}int aodep_value(void) {{ return 42; }}\n",
            constructor_writing(mark)
        ),
        output,
        &["-shared", "-fPIC", "-Wl,-soname,libaodep.so"],
    );
}

/// An ao manifest in C: `kind` `name`, this host's API version.
fn manifest_source(kind: &str, name: &str) -> String {
    format!(
        "struct entry {{ const char *kind, *name, *version; }};\n\
         struct manifest {{ char magic[8]; unsigned int format; const char *api; unsigned long count; const struct entry *plugins; }};\n\
         static const struct entry entries[] = {{ {{ {kind:?}, {name:?}, \"0.1.0\" }} }};\n\
         __attribute__((visibility(\"default\"))) const struct manifest AO_PLUGIN_MANIFEST = {{ \"AOPLUGIN\", 1, {api:?}, 1, entries }};\n",
        api = ao_plugin_api::API_VERSION
    )
}

/// `plugins check` refused `library` with an error naming it and containing every `want`.
fn assert_refused(output: &Output, library: &Path, wants: &[&str]) {
    let err = stderr(output);
    assert!(
        !output.status.success(),
        "check accepted {}",
        library.display()
    );
    assert!(
        err.contains(&library.display().to_string()),
        "the error does not name {}: {err}",
        library.display()
    );
    for want in wants {
        assert!(err.contains(want), "the error lacks `{want}`: {err}");
    }
    assert!(!err.contains("/proc/self/fd"), "{err}");
    assert_eq!(json(output)[0]["status"], "error");
}

#[test]
fn a_dependency_shipped_beside_the_plugin_loads_through_origin() {
    let tree = Tree::new();
    let plugin = tree.plugin("good");
    let mark = tree.mark("good");
    dependency(&tree.folder("good/lib", 0o755).join("libaodep.so"), &mark);
    let output = tree.check(&plugin);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = json(&output);
    assert_eq!(rows[0]["status"], "ok", "{rows}");
    assert_eq!(rows[0]["name"], "with-dependency");
    // The dependency really loaded (its constructor ran) and the plugin's constructor, which
    // calls into it, succeeded (`plugins check` builds every plugin).
    assert_eq!(std::fs::read_to_string(&mark).unwrap(), "ran\n");

    // Isolated, the child process that runs it finds the dependency the same way.
    std::fs::remove_file(&mark).unwrap();
    std::fs::write(
        tree.path().join("ao-rs.yaml"),
        "plugins:\n  isolate: [\"*\"]\n",
    )
    .unwrap();
    let output = tree.check(&plugin);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = json(&output);
    assert_eq!(rows[0]["status"], "ok", "{rows}");
    assert_eq!(rows[0]["isolated"], true, "{rows}");
    assert_eq!(std::fs::read_to_string(&mark).unwrap(), "ran\n");
}

#[test]
fn a_dependency_others_could_replace_is_refused_and_never_runs() {
    let tree = Tree::new();

    // The folder the plugin's RUNPATH names is open to everyone (sticky or not).
    let plugin = tree.plugin("open");
    let lib = tree.folder("open/lib", 0o777);
    let mark = tree.mark("open");
    dependency(&lib.join("libaodep.so"), &mark);
    for mode in [0o777, 0o1777] {
        set_mode(&lib, mode);
        assert_refused(
            &tree.check(&plugin),
            &plugin,
            &["libaodep.so", &lib.display().to_string(), "chmod go-w"],
        );
        assert!(!mark.exists(), "the dependency's constructor ran");
    }

    // The dependency is reached through a link in an open folder.
    let plugin = tree.plugin("linked");
    let open = tree.folder("linked/open", 0o777);
    let mark = tree.mark("linked");
    dependency(&open.join("libaodep.so"), &mark);
    std::os::unix::fs::symlink(
        open.join("libaodep.so"),
        tree.folder("linked/lib", 0o755).join("libaodep.so"),
    )
    .unwrap();
    assert_refused(
        &tree.check(&plugin),
        &plugin,
        &["libaodep.so", &open.display().to_string(), "everyone"],
    );
    assert!(!mark.exists(), "the dependency's constructor ran");

    // A folder searched before the one that has it (LD_LIBRARY_PATH) is open: a library planted
    // there would win.
    let plugin = tree.plugin("planted");
    let mark = tree.mark("planted");
    dependency(
        &tree.folder("planted/lib", 0o755).join("libaodep.so"),
        &mark,
    );
    let early = tree.folder("planted/early", 0o1777);
    let planted_mark = tree.mark("planted-early");
    dependency(&early.join("libaodep.so"), &planted_mark);
    assert_refused(
        &tree.check_with(&plugin, &[("LD_LIBRARY_PATH", &early)]),
        &plugin,
        &[
            "libaodep.so",
            &early.display().to_string(),
            "LD_LIBRARY_PATH",
        ],
    );
    assert!(!mark.exists() && !planted_mark.exists());
    // Even empty, such a folder is refused: anyone may plant the file later.
    std::fs::remove_file(early.join("libaodep.so")).unwrap();
    assert_refused(
        &tree.check_with(&plugin, &[("LD_LIBRARY_PATH", &early)]),
        &plugin,
        &["libaodep.so", &early.display().to_string()],
    );
    assert!(!mark.exists());

    if running_as_root() {
        // The dependency belongs to another user (nobody).
        let plugin = tree.plugin("theirs");
        let mark = tree.mark("theirs");
        let theirs = tree.folder("theirs/lib", 0o755).join("libaodep.so");
        dependency(&theirs, &mark);
        chown(&theirs, 65534);
        assert_refused(
            &tree.check(&plugin),
            &plugin,
            &[&theirs.display().to_string(), "uid 65534"],
        );
        assert!(!mark.exists(), "the dependency's constructor ran");
    }
}

#[test]
fn filtees_are_held_to_the_dependency_rules_and_a_missing_auxiliary_is_no_error() {
    let tree = Tree::new();
    for (flag, name) in [("-f", "auxiliary"), ("-F", "filter")] {
        // The plugin's trusted dependency names a filtee in a folder anyone can add to.
        let plugin = tree.plugin(name);
        let open = tree.folder(&format!("{name}/open"), 0o1777);
        let filtee = open.join("libevil.so");
        let evil_mark = tree.mark(&format!("{name}-evil"));
        gcc(
            &constructor_writing(&evil_mark),
            &filtee,
            &["-shared", "-fPIC"],
        );
        if running_as_root() {
            chown(&filtee, 65534);
        } else {
            set_mode(&filtee, 0o666);
        }
        let mark = tree.mark(name);
        gcc(
            &format!(
                "{}int aodep_value(void) {{ return 42; }}\n",
                constructor_writing(&mark)
            ),
            &tree
                .folder(&format!("{name}/lib"), 0o755)
                .join("libaodep.so"),
            &[
                "-shared",
                "-fPIC",
                "-Wl,-soname,libaodep.so",
                &format!("-Wl,{flag},{}", filtee.display()),
            ],
        );
        assert_refused(
            &tree.check(&plugin),
            &plugin,
            &[&filtee.display().to_string()],
        );
        assert!(!evil_mark.exists(), "the {name} filtee's constructor ran");
        assert!(!mark.exists(), "the dependency's constructor ran");

        // A trusted filtee is mapped, and its code runs, as the loader does.
        std::fs::remove_file(&filtee).unwrap();
        set_mode(&open, 0o755);
        gcc(
            &constructor_writing(&evil_mark),
            &filtee,
            &["-shared", "-fPIC"],
        );
        let output = tree.check(&plugin);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(std::fs::read_to_string(&evil_mark).unwrap(), "ran\n");
        std::fs::remove_file(&evil_mark).unwrap();
        std::fs::remove_file(&mark).unwrap();

        // Missing: the loader goes on without an auxiliary filtee, and fails without a filter.
        std::fs::remove_file(&filtee).unwrap();
        let output = tree.check(&plugin);
        if name == "auxiliary" {
            assert!(output.status.success(), "{}", stderr(&output));
            assert_eq!(std::fs::read_to_string(&mark).unwrap(), "ran\n");
        } else {
            assert_refused(&output, &plugin, &["libevil.so", "missing"]);
            assert!(!mark.exists(), "the dependency's constructor ran");
        }
    }
}

#[test]
fn every_load_failure_names_the_real_file_and_cause() {
    let tree = Tree::new();

    // The dependency is nowhere.
    let plugin = tree.plugin("missing");
    assert_refused(
        &tree.check(&plugin),
        &plugin,
        &["missing dependency `libaodep.so`"],
    );

    let folder = tree.folder("bad", 0o755);
    // An executable named like a library.
    let executable = folder.join("libexecutable.so");
    gcc("int main(void) { return 0; }\n", &executable, &["-no-pie"]);
    assert_refused(&tree.check(&executable), &executable, &["ET_EXEC"]);

    // A real plugin patched to say it is for another machine, word size or byte order.
    let real = std::fs::read(build_fixture("with-dependency", ApiPatch::None)).unwrap();
    for (name, offset, bytes, want) in [
        ("libaarch64.so", 18, vec![183, 0], "built for aarch64"),
        ("lib32bit.so", 4, vec![1], "built for a 32-bit machine"),
        (
            "libbigendian.so",
            5,
            vec![2],
            "built for a big-endian machine",
        ),
    ] {
        let mut patched = real.clone();
        patched[offset..offset + bytes.len()].copy_from_slice(&bytes);
        let library = folder.join(name);
        std::fs::write(&library, patched).unwrap();
        set_mode(&library, 0o644);
        assert_refused(&tree.check(&library), &library, &[want]);
    }
}

#[test]
fn a_manifest_with_an_unknown_kind_or_a_path_for_a_name_is_refused_before_loading() {
    let tree = Tree::new();
    let folder = tree.folder("manifests", 0o755);
    for (file, kind, name, want) in [
        // A kind of a later release (as `sandbox` is to a host before 0.1.9): refused by its
        // name.
        (
            "libunknownkind.so",
            "tracker",
            "fine",
            "unknown kind `tracker` (this host knows runtime, agent, workspace, scm, sandbox): upgrade ao-host",
        ),
        (
            "libpathname.so",
            "runtime",
            "../../etc/evil",
            "not a plain identifier",
        ),
    ] {
        let library = folder.join(file);
        let mark = tree.mark(file);
        gcc(
            &format!(
                "{}{}",
                constructor_writing(&mark),
                manifest_source(kind, name)
            ),
            &library,
            &["-shared", "-fPIC"],
        );
        // In-process, and isolated (judged in this process, loaded by a child).
        std::fs::write(tree.path().join("ao-rs.yaml"), "").unwrap();
        assert_refused(&tree.check(&library), &library, &[want]);
        std::fs::write(
            tree.path().join("ao-rs.yaml"),
            "plugins:\n  isolate: [\"*\"]\n",
        )
        .unwrap();
        assert_refused(&tree.check(&library), &library, &[want]);
        let listed = ao_host(tree.path())
            .args(["plugins", "list", "--json", "--plugin-dir"])
            .arg(&folder)
            .output()
            .unwrap();
        assert!(listed.status.success(), "{}", stderr(&listed));
        let listing = json(&listed);
        let row = listing["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["path"] == library.display().to_string())
            .unwrap_or_else(|| panic!("{file} not listed: {listing}"));
        assert_eq!(row["status"], "error", "{row}");
        assert!(row["reason"].as_str().unwrap().contains(want), "{row}");
        assert!(!mark.exists(), "{file}'s constructor ran");
    }
}

#[test]
fn a_shadowed_library_is_never_loaded() {
    let tree = Tree::new();
    let first = tree.plugin("first");
    dependency(
        &tree.folder("first/lib", 0o755).join("libaodep.so"),
        &tree.mark("first"),
    );
    let second = tree.plugin("second");
    let second_mark = tree.mark("second");
    dependency(
        &tree.folder("second/lib", 0o755).join("libaodep.so"),
        &second_mark,
    );
    let output = ao_host(tree.path())
        .args(["plugins", "list", "--json", "--plugin-dir"])
        .arg(first.parent().unwrap())
        .arg("--plugin-dir")
        .arg(second.parent().unwrap())
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let listing = json(&output);
    let row = |library: &Path| {
        listing["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["path"] == library.display().to_string())
            .cloned()
            .unwrap_or_else(|| panic!("{} not listed: {listing}", library.display()))
    };
    assert_eq!(row(&first)["status"], "ok");
    assert_eq!(row(&second)["status"], "shadowed");
    assert!(tree.mark("first").exists());
    assert!(!second_mark.exists(), "the shadowed library was loaded");
}

#[test]
fn start_up_code_that_hangs_is_named_and_the_command_exits() {
    let tree = Tree::new();
    let folder = tree.folder("hangs", 0o755);
    let library = folder.join("libhangs.so");
    gcc(
        &format!(
            "#include <unistd.h>\n__attribute__((constructor)) static void hang(void) {{ for (;;) sleep(1000); }}\n{}",
            manifest_source("runtime", "hangs")
        ),
        &library,
        &["-shared", "-fPIC"],
    );
    std::fs::write(
        tree.path().join("ao-rs.yaml"),
        "defaults: { call_timeout_ms: 1000 }\n",
    )
    .unwrap();
    for args in [&["plugins", "check"][..], &["plugins", "list"]] {
        let mut command = ao_host(tree.path());
        command.args(args);
        if args[1] == "check" {
            command.arg(&library);
        } else {
            command.arg("--plugin-dir").arg(&folder);
        }
        let mut child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Generous: the point is that it ends, not how fast.
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("`ao-host {args:?}` hangs with the library");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = child.wait_with_output().unwrap();
        let err = stderr(&output);
        assert!(!status.success(), "{args:?}");
        assert!(
            err.contains(&library.display().to_string())
                && err.contains("did not finish loading")
                && err.contains("defaults.call_timeout_ms"),
            "{args:?}: {err}"
        );
    }
}

/// glibc knows a loaded library by its path: asked again after the file there was replaced, it
/// would hand back the old copy while the new one is what was checked (and pinned).
#[test]
fn a_library_replaced_after_this_process_loaded_it_is_not_taken_for_the_new_one() {
    let tree = Tree::new();
    let plugin = tree.plugin("swap");
    dependency(
        &tree.folder("swap/lib", 0o755).join("libaodep.so"),
        &tree.mark("swap"),
    );
    // Loading the same file twice is fine: the loader hands back the library it already has.
    for _ in 0..2 {
        let registry = PluginRegistry::load(std::slice::from_ref(&plugin));
        if let Err(error) = &registry.reports()[0].outcome {
            panic!("{error}");
        }
    }
    let staged = plugin.with_extension("new");
    std::fs::copy(&plugin, &staged).unwrap();
    set_mode(&staged, 0o755);
    std::fs::rename(&staged, &plugin).unwrap();
    let second = PluginRegistry::load(std::slice::from_ref(&plugin));
    let error = second.reports()[0]
        .outcome
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("replaced since this process loaded it") && error.contains("restart"),
        "{error}"
    );
}

/// `plugins list --json` of `folder` with every plugin isolated (so nothing is loaded in this
/// process and a library the host can read lists as `ok`): the row of `library`.
fn isolated_row(tree: &Tree, folder: &Path, library: &Path) -> serde_json::Value {
    std::fs::write(
        tree.path().join("ao-rs.yaml"),
        "plugins:\n  isolate: [\"*\"]\n",
    )
    .unwrap();
    let listed = ao_host(tree.path())
        .args(["plugins", "list", "--json", "--plugin-dir"])
        .arg(folder)
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", stderr(&listed));
    let listing = json(&listed);
    listing["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["path"] == library.display().to_string())
        .unwrap_or_else(|| panic!("{} not listed: {listing}", library.display()))
        .clone()
}

/// Section headers gone, as `sstrip` leaves a library: the loader's own view remains.
fn without_section_headers(library: &Path) {
    let mut bytes = std::fs::read(library).unwrap();
    bytes[0x28..0x30].fill(0); // e_shoff
    bytes[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
    std::fs::write(library, bytes).unwrap();
}

#[test]
fn manifests_are_read_through_every_relocation_kind_and_a_symbol_pointer_is_refused() {
    let tree = Tree::new();
    let folder = tree.folder("relocations", 0o755);
    let rela = ["-shared", "-fPIC"];
    for (name, args, stripped) in [
        ("rela", &rela[..], false),
        (
            "relr",
            &["-shared", "-fPIC", "-Wl,-z,pack-relative-relocs"][..],
            false,
        ),
        (
            "gnu-hash-only",
            &["-shared", "-fPIC", "-Wl,--hash-style=gnu"][..],
            true,
        ),
        (
            "sysv-hash-only",
            &["-shared", "-fPIC", "-Wl,--hash-style=sysv"][..],
            true,
        ),
    ] {
        let library = folder.join(format!("lib{name}.so"));
        let mark = tree.mark(name);
        gcc(
            &format!(
                "{}{}",
                constructor_writing(&mark),
                manifest_source("runtime", name)
            ),
            &library,
            args,
        );
        if stripped {
            without_section_headers(&library);
        }
        let row = isolated_row(&tree, &folder, &library);
        assert_eq!(row["status"], "ok", "{name}: {row}");
        assert_eq!(row["name"], name, "{row}");
        assert_eq!(row["kind"], "runtime", "{row}");
        assert_eq!(row["version"], "0.1.0", "{row}");
        assert!(!mark.exists(), "{name}'s constructor ran");
    }
    // A pointer to an exported (so interposable) symbol is relocated against that symbol: its
    // value is only known once loaded.
    let library = folder.join("libsymbolic.so");
    let source = manifest_source("runtime", "symbolic").replace(
        &format!("{:?}, 1, entries", ao_plugin_api::API_VERSION),
        "ao_api, 1, entries",
    );
    gcc(
        &format!(
            "__attribute__((visibility(\"default\"))) const char ao_api[] = {:?};\n{source}",
            ao_plugin_api::API_VERSION
        ),
        &library,
        &rela,
    );
    assert_refused(
        &tree.check(&library),
        &library,
        &["corrupt plugin manifest", "relocated against a symbol"],
    );
}

#[test]
fn a_segment_or_section_past_the_end_of_the_file_is_refused_before_loading() {
    let tree = Tree::new();
    let folder = tree.folder("lying", 0o755);
    let word = |bytes: &[u8], at: usize, size: usize| {
        let mut field = [0u8; 8];
        field[..size].copy_from_slice(&bytes[at..at + size]);
        u64::from_le_bytes(field) as usize
    };
    for (name, want) in [("segment", "segment"), ("section", "section")] {
        let library = folder.join(format!("lib{name}.so"));
        let mark = tree.mark(name);
        gcc(
            &format!(
                "{}{}",
                constructor_writing(&mark),
                manifest_source("runtime", name)
            ),
            &library,
            &["-shared", "-fPIC"],
        );
        let mut bytes = std::fs::read(&library).unwrap();
        let huge = 1u64 << 40;
        if name == "segment" {
            // A note segment (never mapped by the loader) that claims more than the file holds.
            let (phoff, phnum) = (word(&bytes, 0x20, 8), word(&bytes, 0x38, 2));
            let note = (0..phnum)
                .map(|index| phoff + index * 56)
                .find(|at| word(&bytes, *at, 4) == 4)
                .expect("gcc writes a PT_NOTE segment");
            bytes[note + 32..note + 40].copy_from_slice(&huge.to_le_bytes());
        } else {
            // The last section (a string table the loader never reads) runs past the end.
            let (shoff, shnum) = (word(&bytes, 0x28, 8), word(&bytes, 0x3c, 2));
            let last = shoff + (shnum - 1) * 64;
            bytes[last + 32..last + 40].copy_from_slice(&huge.to_le_bytes());
        }
        std::fs::write(&library, bytes).unwrap();
        let row = isolated_row(&tree, &folder, &library);
        assert_eq!(row["status"], "error", "{row}");
        let reason = row["reason"].as_str().unwrap();
        assert!(
            reason.contains("damaged ELF library")
                && reason.contains(want)
                && reason.contains("ends past the end of the file"),
            "{reason}"
        );
        std::fs::write(tree.path().join("ao-rs.yaml"), "").unwrap();
        assert_refused(&tree.check(&library), &library, &["truncated"]);
        assert!(!mark.exists(), "{name}'s constructor ran");
    }
}
