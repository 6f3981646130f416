//! Loading one plugin library and deciding whether this host can use it.
//!
//! Nothing of a library runs before it is judged: `dlopen` runs its constructors, so every
//! check that can refuse it works on the file's bytes. The path is checked first, every
//! component of it (symlinks included); the file is then opened once, and its structure, its
//! manifest, its pin and its API version are judged on the bytes read from that descriptor;
//! the libraries the loader would map with it are resolved and held to the same rules
//! (`dependencies`); only then does the loader map it, by its real path once that path is
//! proven to name the very file that was opened and checked (same device and inode, before and
//! after), so the bytes that run are the bytes that were checked — and `$ORIGIN` means the
//! library's own folder.
//!
//! Which libraries this host accepts (`check_abi`) is decided by the ABI level, not by the
//! crate version that built them: one of this host's [`ABI_LEVEL`] loads whatever
//! `ao-plugin-api` 0.1.x built it, older or newer, if its interface revision is not newer than
//! this host's and the host offers every feature it needs; abi_stable's layout check then has
//! the last word. That check compares the crate versions recorded in each type's layout
//! loosely — the same crate name and, for 0.x, the same minor, any patch either way — so a
//! library built with a later 0.1.x passes it, and one from a 0.2 crate fails it (proven by
//! `tests/abi_history.rs` and `tests/plugins.rs`). This policy runs before the layout check so
//! that a library of another level gets "upgrade ao-host" or "rebuild" rather than a layout dump.
//! A library of ABI level 0 (built against 0.1.0, whose interface 0.1.1 changed in place) is
//! checked against the 0.1.0 layouts `ao_plugin_api::first_release` keeps instead, and its
//! instances adapted to today's interface.
//!
//! A library's start-up code runs inside `dlopen`, holding glibc's loader lock. If it never
//! returns, no other library can be loaded by this process again, and the lock cannot be taken
//! back from a thread. So the load runs on a thread of its own and is waited for at most
//! `defaults.call_timeout_ms` (at least [`MIN_START_TIMEOUT`]: loading is not a plugin call, and
//! a busy machine must not turn a slow start into a lost command); past that the host says
//! which library hangs and exits at once (`_exit`: the normal exit path runs the libraries'
//! destructors, which take the same lock).
//! Judging start-up in a child process instead would double every command's loading cost and
//! still leave the parent to load the same library afterwards.

use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::fs::MetadataExt,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex},
    time::Duration,
};

use ao_plugin_api::{
    abi_stable::{
        abi_stability::abi_checking::check_layout_compatibility,
        library::{lib_header_from_path, IsLayoutChecked, LibraryError},
        StableAbi,
    },
    first_release,
    manifest::{ABI_SYMBOL, MANIFEST_SYMBOL},
    AddedKindConstructor, AddedKindRemoteConstructor, InterfaceKind, PluginDeclaration,
    PluginLibraryRef, RemoteConstructor, ABI_LEVEL, API_VERSION, HOST_FEATURES, INTERFACE_REVISION,
};
use semver::Version;

use super::{
    dependencies::check_dependencies,
    elf_target::TargetMismatch,
    file_format::LibraryFile,
    manifest::{check_manifest_plugins, read_manifest, ManifestError},
};
use crate::trust::check_library_trust;
/// The largest library read: a debug build of a plugin is tens of megabytes.
const MAX_LIBRARY_BYTES: u64 = 512 << 20;
/// Layout errors from abi_stable run to hundreds of lines; the one-line reason keeps this much.
const MAX_DETAIL_CHARS: usize = 300;
/// How long a library's start-up code may run when no configuration says (as the default
/// `defaults.call_timeout_ms`).
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);
/// The least time a library's start-up code gets, whatever `defaults.call_timeout_ms` says.
pub const MIN_START_TIMEOUT: Duration = Duration::from_secs(5);
/// The exit status when a library's start-up code hangs.
const HUNG_START_EXIT: i32 = 1;

/// What the manifest says one plugin is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPlugin {
    /// `None` when the manifest names a kind this host does not know.
    pub kind: Option<InterfaceKind>,
    pub kind_name: String,
    pub name: String,
    pub version: String,
}

/// What a library says about itself in its manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// Its ABI level: stated by the format-2 manifest; for a library built before it, 1 when it
    /// was built with a 0.1.x, `None` (no level this host knows) otherwise.
    pub abi_level: Option<u32>,
    /// The release at which the interface it was built against last changed (for a library
    /// built before the format-2 manifest, the crate version).
    pub interface_revision: String,
    /// The `ao-plugin-api` version that built it.
    pub api_version: String,
    /// The author kit's version, when a kit wrote its manifest.
    pub kit_version: Option<String>,
    /// Host features it cannot work without.
    pub needs: Vec<String>,
    pub plugins: Vec<ManifestPlugin>,
    /// The plugins that work on another host (`[remote]`; none for a library before 0.1.6).
    pub remote: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {detail}; remove it from the plugin folder or replace it with a plugin library", path = path.display())]
    NotSharedLibrary { path: PathBuf, detail: String },
    #[error("{path}: {detail}", path = path.display())]
    Untrusted { path: PathBuf, detail: String },
    /// Built for another machine, word size or byte order.
    #[error("{path}: {detail}", path = path.display())]
    Foreign { path: PathBuf, detail: String },
    /// A library the loader would map with it is missing or refused.
    #[error("{path}: not loaded: {detail}", path = path.display())]
    Dependency { path: PathBuf, detail: String },
    #[error("{path}: cannot be loaded: {detail}", path = path.display())]
    Open { path: PathBuf, detail: String },
    #[error("{path}: not an ao plugin (no `{MANIFEST_SYMBOL}` symbol); plugins export it with `ao_plugin_api::export_plugins!`", path = path.display())]
    NotAPlugin { path: PathBuf },
    /// A Mach-O library with only the format-1 manifest, whose pointers are dyld fixups.
    #[error("{path}: a Mach-O library with only the old pointer manifest (`{MANIFEST_SYMBOL}`), which cannot be read before loading it: rebuild it against an ao-plugin-api that also writes the pointer-free `{ABI_SYMBOL}` (this host's {API_VERSION} does)", path = path.display())]
    PointerManifest { path: PathBuf },
    #[error("{path}: corrupt plugin manifest: {detail}; rebuild the library", path = path.display())]
    BadManifest { path: PathBuf, detail: String },
    /// A kind of plugin added after this host was built (as `scm` is to hosts before 0.1.9).
    #[error("{path}: plugin `{plugin}` has an unknown kind `{kind}` (this host knows {}): upgrade ao-host to one that knows it", known_kinds(), path = path.display())]
    UnknownKind {
        path: PathBuf,
        plugin: String,
        kind: String,
    },
    #[error("{path}: built with ao-plugin-api {api}, which states no ABI level this ao-host knows (it speaks ABI level {ABI_LEVEL}): rebuild it against ao-plugin-api 0.1", path = path.display())]
    UnknownAbiLevel { path: PathBuf, api: String },
    #[error("{path}: built for ABI level {library}, this ao-host speaks ABI level {ABI_LEVEL}: {}", abi_level_fix(*library), path = path.display())]
    OtherAbiLevel { path: PathBuf, library: u32 },
    #[error("{path}: needs host feature `{feature}`, which this ao-host ({}) does not offer: upgrade ao-host", host_abi_summary(), path = path.display())]
    MissingFeature { path: PathBuf, feature: String },
    #[error("{path}: built for interface revision {library}, newer than this ao-host's {INTERFACE_REVISION}: upgrade ao-host to one built with ao-plugin-api {library} or later", path = path.display())]
    NewerInterface { path: PathBuf, library: String },
    #[error("{path}: not loaded: --skip-plugin {plugin}", path = path.display())]
    Skipped { path: PathBuf, plugin: String },
    #[error("{path}: not loaded: this command needs none of its plugins", path = path.display())]
    NotNeeded { path: PathBuf },
    #[error("{path}: its digest {actual} does not match plugins.pin.{plugin} ({expected}); install the pinned build or update the pin", path = path.display())]
    PinMismatch {
        path: PathBuf,
        plugin: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: declares ao-plugin-api {library} but its interface layout differs from this host's ({detail}): rebuild it against the ao-plugin-api {host} release", path = path.display())]
    LayoutMismatch {
        path: PathBuf,
        library: String,
        host: String,
        detail: String,
    },
}

/// The outcome of loading one candidate file: what it said about itself, and either its
/// plugins' constructors or the reason it was refused.
#[derive(Debug, Clone)]
pub struct LibraryReport {
    pub path: PathBuf,
    pub manifest: Option<ManifestInfo>,
    pub outcome: Result<Vec<LoadedPlugin>, LoadError>,
}

/// A plugin ready to be instantiated.
#[derive(Clone)]
pub enum LoadedPlugin {
    /// Loaded into this process: its constructors are at hand (the one for other hosts when
    /// it is marked `[remote]`).
    InProcess(PluginDeclaration, Option<RemoteConstructor>),
    /// Loaded into this process, of a kind added after the first release (`scm`, `sandbox`):
    /// the root module's `added_kinds`, with the constructor for other hosts when it is marked
    /// `[remote]`.
    InProcessAdded {
        name: String,
        version: String,
        constructor: AddedKindConstructor,
        remote: Option<AddedKindRemoteConstructor>,
    },
    /// Loaded into this process from a library built against ao-plugin-api 0.1.0 (ABI level
    /// 0): its instances are adapted to today's interface (see `ao_plugin_api::first_release`).
    FirstRelease(first_release::PluginDeclaration),
    /// Judged from its file only and never loaded: every plugin it provides is shadowed by a
    /// library found earlier, so its code has no reason to run.
    Unloaded {
        kind: InterfaceKind,
        name: String,
        version: String,
        remote: bool,
    },
    /// Judged from its file only, to be loaded by a child process (`plugins.isolate`).
    Isolated {
        kind: InterfaceKind,
        name: String,
        version: String,
        /// Marked `[remote]` (from the file's [`ao_plugin_api::manifest::REMOTE_SYMBOL`]).
        remote: bool,
    },
}

impl LoadedPlugin {
    pub fn kind(&self) -> InterfaceKind {
        match self {
            Self::InProcess(declaration, _) => declaration.constructor.kind().into(),
            Self::InProcessAdded { constructor, .. } => constructor.kind(),
            Self::FirstRelease(declaration) => declaration.constructor.kind().into(),
            Self::Isolated { kind, .. } | Self::Unloaded { kind, .. } => *kind,
        }
    }
    pub fn name(&self) -> &str {
        match self {
            Self::InProcess(declaration, _) => declaration.name.as_str(),
            Self::FirstRelease(declaration) => declaration.name.as_str(),
            Self::InProcessAdded { name, .. }
            | Self::Isolated { name, .. }
            | Self::Unloaded { name, .. } => name,
        }
    }
    pub fn version(&self) -> &str {
        match self {
            Self::InProcess(declaration, _) => declaration.version.as_str(),
            Self::FirstRelease(declaration) => declaration.version.as_str(),
            Self::InProcessAdded { version, .. }
            | Self::Isolated { version, .. }
            | Self::Unloaded { version, .. } => version,
        }
    }
    /// Whether it works on another host (`ao-host spawn --host`).
    pub fn remote(&self) -> bool {
        match self {
            Self::InProcess(_, remote) => remote.is_some(),
            Self::InProcessAdded { remote, .. } => remote.is_some(),
            // `[remote]` came with 0.1.6.
            Self::FirstRelease(_) => false,
            Self::Isolated { remote, .. } | Self::Unloaded { remote, .. } => *remote,
        }
    }
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("kind", &self.kind())
            .field("name", &self.name())
            .field("version", &self.version())
            .field("isolated", &matches!(self, Self::Isolated { .. }))
            .field("remote", &self.remote())
            .finish()
    }
}

/// The ao-plugin-api version this host was built with.
pub fn host_api_version() -> Version {
    Version::parse(API_VERSION).expect("CARGO_PKG_VERSION is semver")
}

/// "ABI level 1, features a, b": what this host offers, as refusals and `--version` say it.
pub fn host_abi_summary() -> String {
    let features = if HOST_FEATURES.is_empty() {
        "none".to_string()
    } else {
        HOST_FEATURES.join(", ")
    };
    format!("ABI level {ABI_LEVEL}, features {features}")
}

/// The kinds of plugin this host knows, as a refusal lists them.
fn known_kinds() -> String {
    let known: Vec<&str> = InterfaceKind::ALL.iter().map(|k| k.as_str()).collect();
    known.join(", ")
}

/// What to do about a library of ABI level `library`, not this host's.
fn abi_level_fix(library: u32) -> String {
    if library > ABI_LEVEL {
        format!("upgrade ao-host to one of ABI level {library}")
    } else {
        format!("rebuild it against an ao-plugin-api of ABI level {ABI_LEVEL}")
    }
}

/// Opens and reads a candidate library: a regular file only, opened without blocking, so that
/// a FIFO or a device named like a library cannot hang the host.
fn read_library_file(path: &Path) -> std::io::Result<(std::fs::File, Vec<u8>)> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other(
            "not a regular file; remove it from the plugin folder",
        ));
    }
    if metadata.len() > MAX_LIBRARY_BYTES {
        return Err(std::io::Error::other(format!(
            "{} bytes, more than the {MAX_LIBRARY_BYTES} a plugin library may have; remove it from the plugin folder",
            metadata.len()
        )));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok((file, bytes))
}

/// `sha256:<hex>` of a file, the form `plugins.pin` uses.
pub fn file_digest(path: &Path) -> std::io::Result<String> {
    Ok(digest(&read_library_file(path)?.1))
}

/// `sha256:<hex>` of a library's bytes.
fn digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Refuses a library that provides a pinned plugin unless the digest of `bytes` (the very bytes
/// that will be loaded) matches the pin. Checked after the manifest is read (which names the
/// plugins) and before the library is loaded.
fn check_pins(
    bytes: &[u8],
    shown: &Path,
    manifest: &ManifestInfo,
    pins: &BTreeMap<String, String>,
) -> Result<(), LoadError> {
    let mut actual = None;
    for plugin in &manifest.plugins {
        let Some(expected) = pins.get(&plugin.name) else {
            continue;
        };
        let actual = actual.get_or_insert_with(|| digest(bytes));
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(LoadError::PinMismatch {
                path: shown.to_path_buf(),
                plugin: plugin.name.clone(),
                expected: expected.clone(),
                actual: actual.to_string(),
            });
        }
    }
    Ok(())
}

/// Loads `path` and checks it. Never panics and never unloads: a loaded library stays mapped for
/// the life of the process (unloading Rust libraries is unsound).
pub fn load_library(path: &Path) -> LibraryReport {
    load_library_pinned(path, &BTreeMap::new(), &|_: &str| false)
}

/// [`load_library`], refusing libraries whose digest differs from their plugins' pins. A library
/// with a plugin that `isolated` names is judged from its file alone and never loaded here: a
/// child process loads it (see `isolated`). One with a plugin `skipped` names is not loaded at
/// all (`gc --skip-plugin`: its start-up code may be what crashes).
pub fn load_library_pinned(
    path: &Path,
    pins: &BTreeMap<String, String>,
    isolated: &dyn Fn(&str) -> bool,
) -> LibraryReport {
    load_library_checked(
        path,
        &LoadPolicy {
            pins,
            isolated,
            skipped: &|_: &str| false,
            needed: &|_: &str| true,
            shadowed: &|_: InterfaceKind, _: &str| false,
            start_timeout: DEFAULT_START_TIMEOUT,
        },
    )
}

/// What decides how a library is loaded, besides its file.
pub struct LoadPolicy<'a> {
    /// Plugin name → `sha256:<hex>` the library's digest must match.
    pub pins: &'a BTreeMap<String, String>,
    /// Plugins whose library runs in a child process (`plugins.isolate`).
    pub isolated: &'a dyn Fn(&str) -> bool,
    /// Plugins whose library is not loaded at all (`--skip-plugin`).
    pub skipped: &'a dyn Fn(&str) -> bool,
    /// Plugins the command needs: a library that provides none of them is not loaded.
    pub needed: &'a dyn Fn(&str) -> bool,
    /// (kind, name) a library found earlier already provides: a library all of whose plugins
    /// are shadowed is judged but never loaded.
    pub shadowed: &'a dyn Fn(InterfaceKind, &str) -> bool,
    /// How long its start-up code may run before the host gives up on it and exits.
    pub start_timeout: Duration,
}

/// [`load_library_pinned`] under the whole `policy`.
pub fn load_library_checked(path: &Path, policy: &LoadPolicy<'_>) -> LibraryReport {
    let LoadPolicy {
        pins,
        isolated,
        skipped,
        needed,
        shadowed,
        start_timeout,
    } = policy;
    let display_path = path.to_path_buf();
    let mut report = LibraryReport {
        path: display_path.clone(),
        manifest: None,
        outcome: Err(LoadError::NotAPlugin {
            path: display_path.clone(),
        }),
    };
    if let Err(detail) = check_library_trust(path) {
        report.outcome = Err(LoadError::Untrusted {
            path: display_path,
            detail,
        });
        return report;
    }
    let open_error = |e: std::io::Error| LoadError::Open {
        path: display_path.clone(),
        detail: e.to_string(),
    };
    // dlopen("libx.so") without a slash searches the system path, so always pass a full path.
    let opened = path.canonicalize().and_then(|canonical| {
        let (file, bytes) = read_library_file(&canonical)?;
        Ok((canonical, file, bytes))
    });
    let (canonical, file, bytes) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            report.outcome = Err(open_error(e));
            return report;
        }
    };
    let library_file = match LibraryFile::parse(&bytes) {
        Ok(file) => file,
        Err(TargetMismatch::Foreign(detail)) => {
            report.outcome = Err(LoadError::Foreign {
                path: display_path,
                detail,
            });
            return report;
        }
        Err(TargetMismatch::NotLibrary(detail)) => {
            report.outcome = Err(LoadError::NotSharedLibrary {
                path: display_path,
                detail,
            });
            return report;
        }
    };
    let manifest = read_manifest(&library_file).map_err(|error| match error {
        ManifestError::Missing => LoadError::NotAPlugin {
            path: display_path.clone(),
        },
        ManifestError::PointersOnly => LoadError::PointerManifest {
            path: display_path.clone(),
        },
        ManifestError::Corrupt(detail) => LoadError::BadManifest {
            path: display_path.clone(),
            detail,
        },
    });
    let manifest = match manifest {
        Ok(manifest) => manifest,
        Err(error) => {
            report.outcome = Err(error);
            return report;
        }
    };
    if let Err(detail) = check_manifest_plugins(&manifest) {
        report.outcome = Err(LoadError::BadManifest {
            path: display_path,
            detail,
        });
        report.manifest = Some(manifest);
        return report;
    }
    if let Some(plugin) = manifest.plugins.iter().find(|p| p.kind.is_none()) {
        report.outcome = Err(LoadError::UnknownKind {
            path: display_path,
            plugin: plugin.name.clone(),
            kind: plugin.kind_name.clone(),
        });
        report.manifest = Some(manifest);
        return report;
    }
    if let Err(detail) = library_file.check_platform() {
        report.outcome = Err(LoadError::Foreign {
            path: display_path,
            detail,
        });
        report.manifest = Some(manifest);
        return report;
    }
    if let Some(plugin) = manifest.plugins.iter().find(|p| skipped(&p.name)) {
        report.outcome = Err(LoadError::Skipped {
            path: display_path,
            plugin: plugin.name.clone(),
        });
        report.manifest = Some(manifest);
        return report;
    }
    if !manifest.plugins.iter().any(|p| needed(&p.name)) {
        report.outcome = Err(LoadError::NotNeeded { path: display_path });
        report.manifest = Some(manifest);
        return report;
    }
    let isolate = manifest.plugins.iter().any(|p| isolated(&p.name));
    let is_elf = matches!(library_file, LibraryFile::Elf(_));
    let judged = check_pins(&bytes, &display_path, &manifest, pins)
        .and_then(|()| check_abi(&display_path, &manifest))
        .and_then(|()| {
            // Judged even for an isolated library: `plugins list` says so before a child runs it.
            if is_elf {
                check_dependencies(&canonical).map_err(|detail| LoadError::Dependency {
                    path: display_path.clone(),
                    detail,
                })?;
            }
            Ok(())
        });
    // The loader maps the file itself: the copy read for judging is not needed any more.
    drop(library_file);
    drop(bytes);
    report.outcome = judged.and_then(|()| {
        if isolate {
            return Ok(unloaded_plugins(&manifest, false));
        }
        let all_shadowed = manifest
            .plugins
            .iter()
            .all(|p| p.kind.is_some_and(|kind| shadowed(kind, &p.name)));
        if all_shadowed {
            return Ok(unloaded_plugins(&manifest, true));
        }
        load_verified(&file, &canonical, &display_path, &manifest, *start_timeout)
    });
    report.manifest = Some(manifest);
    report
}

/// Whether `path` names the very file `file` is open on (same device and inode).
fn names_opened_file(file: &std::fs::File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(opened), Ok(named)) => opened.dev() == named.dev() && opened.ino() == named.ino(),
        _ => false,
    }
}

/// The file (device, inode) each path was loaded from by this process. glibc knows a loaded
/// library by its path first: asked for the path again after the file there was replaced, it
/// hands back the old copy, not the file that was just checked (a long-running dashboard).
fn loaded_files() -> &'static Mutex<BTreeMap<PathBuf, (u64, u64)>> {
    static LOADED: std::sync::OnceLock<Mutex<BTreeMap<PathBuf, (u64, u64)>>> =
        std::sync::OnceLock::new();
    LOADED.get_or_init(Default::default)
}

/// Loads the checked library by its real path (so `$ORIGIN` is its folder), once that path is
/// shown to name the file that was opened and judged, and again after, on a thread of its own
/// waited for at most `timeout` (see the module's notes for why a hang ends the process).
fn load_verified(
    file: &std::fs::File,
    canonical: &Path,
    shown: &Path,
    manifest: &ManifestInfo,
    timeout: Duration,
) -> Result<Vec<LoadedPlugin>, LoadError> {
    let replaced = |when: &str| LoadError::Open {
        path: shown.to_path_buf(),
        detail: format!(
            "{} was replaced {when}; run the command again, and find out who writes there",
            canonical.display()
        ),
    };
    if !names_opened_file(file, canonical) {
        return Err(replaced("while it was being checked"));
    }
    let identity = file
        .metadata()
        .map(|meta| (meta.dev(), meta.ino()))
        .map_err(|e| LoadError::Open {
            path: shown.to_path_buf(),
            detail: e.to_string(),
        })?;
    let earlier = loaded_files()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(canonical)
        .copied();
    if earlier.is_some_and(|earlier| earlier != identity) {
        return Err(LoadError::Open {
            path: shown.to_path_buf(),
            detail: format!(
                "{} was replaced since this process loaded it, and the loader would run the old copy: restart ao-host to load the new one",
                canonical.display()
            ),
        });
    }
    // A mutex and a condition variable, not a channel: a channel's blocking receive registers a
    // thread-local destructor, which takes the loader's lock that a hung `dlopen` holds, so the
    // waiting thread would hang with it instead of timing out.
    let answer = Arc::new((Mutex::new(None), Condvar::new()));
    let (path, owned_shown, owned_manifest, answered) = (
        canonical.to_path_buf(),
        shown.to_path_buf(),
        manifest.clone(),
        Arc::clone(&answer),
    );
    let started = std::thread::Builder::new()
        .name("ao-plugin-load".into())
        .spawn(move || {
            let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                check_and_init(&path, &owned_shown, &owned_manifest)
            }))
            .unwrap_or_else(|_| {
                Err(LoadError::Open {
                    path: owned_shown.clone(),
                    detail: "loading it panicked in ao-host".into(),
                })
            });
            let (slot, ready) = &*answered;
            *slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(loaded);
            ready.notify_one();
        });
    if let Err(e) = started {
        return Err(LoadError::Open {
            path: shown.to_path_buf(),
            detail: format!("cannot start a thread to load it: {e}"),
        });
    }
    let timeout = timeout.max(MIN_START_TIMEOUT);
    let (slot, ready) = &*answer;
    let (mut waited, _) = ready
        .wait_timeout_while(
            slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
            timeout,
            |loaded| loaded.is_none(),
        )
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(loaded) = waited.take() else {
        give_up_on_hung_start(shown, manifest, timeout)
    };
    drop(waited);
    // Mapped even when refused after `dlopen` (a layout mismatch): it stays so.
    loaded_files()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(canonical.to_path_buf(), identity);
    let loaded = loaded?;
    if !names_opened_file(file, canonical) {
        return Err(replaced("while it was being loaded"));
    }
    Ok(loaded)
}

/// Ends the process when a library's start-up code does not return: the loader lock it holds
/// would hang the next load, and the normal exit (destructors, `atexit`) takes it too.
fn give_up_on_hung_start(shown: &Path, manifest: &ManifestInfo, timeout: Duration) -> ! {
    let names: Vec<&str> = manifest.plugins.iter().map(|p| p.name.as_str()).collect();
    // Not `eprintln!`: a closed stderr must not turn this into a panic that never exits.
    let _ = writeln!(
        std::io::stderr(),
        "ao-host: the plugin library {} did not finish loading within {} ms (defaults.call_timeout_ms, at least {} ms): its start-up code hangs, and holds the dynamic loader's lock, so ao-host stops here; fix or remove the library (`--skip-plugin {}` does not load it)",
        shown.display(),
        timeout.as_millis(),
        MIN_START_TIMEOUT.as_millis(),
        names.join(" --skip-plugin ")
    );
    // SAFETY: `_exit` ends the process at once; nothing of this process runs after it.
    unsafe { libc::_exit(HUNG_START_EXIT) }
}

/// The whole error chain: libloading's Display alone hides the dynamic loader's own text.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The kind of plugin a remote constructor builds.
pub(super) fn remote_kind(constructor: &RemoteConstructor) -> InterfaceKind {
    match constructor {
        RemoteConstructor::Runtime(_) => InterfaceKind::Runtime,
        RemoteConstructor::Agent(_) => InterfaceKind::Agent,
        RemoteConstructor::Workspace(_) => InterfaceKind::Workspace,
    }
}

/// The plugins of a library not loaded here, as its manifest lists them: left to a child
/// process, or (`shadowed`) not needed at all. Their kinds are known (the library was refused
/// otherwise, `LoadError::UnknownKind`).
fn unloaded_plugins(manifest: &ManifestInfo, shadowed: bool) -> Vec<LoadedPlugin> {
    manifest
        .plugins
        .iter()
        .filter_map(|p| {
            let (kind, name, version) = (p.kind?, p.name.clone(), p.version.clone());
            let remote = manifest.remote.contains(&p.name);
            Some(if shadowed {
                LoadedPlugin::Unloaded {
                    kind,
                    name,
                    version,
                    remote,
                }
            } else {
                LoadedPlugin::Isolated {
                    kind,
                    name,
                    version,
                    remote,
                }
            })
        })
        .collect()
}

/// The ABI policy, from the manifest alone: this host's level (or 0.1.0's), no feature it
/// lacks, and no interface newer than its own (abi_stable would refuse it: the library's prefix
/// types would have fields this host's lack).
fn check_abi(shown: &Path, manifest: &ManifestInfo) -> Result<(), LoadError> {
    let path = shown.to_path_buf();
    let Some(level) = manifest.abi_level else {
        return Err(LoadError::UnknownAbiLevel {
            path,
            api: manifest.api_version.clone(),
        });
    };
    if level != ABI_LEVEL && level != first_release::ABI_LEVEL {
        return Err(LoadError::OtherAbiLevel {
            path,
            library: level,
        });
    }
    if let Some(feature) = manifest
        .needs
        .iter()
        .find(|f| !HOST_FEATURES.contains(&f.as_str()))
    {
        return Err(LoadError::MissingFeature {
            path,
            feature: feature.clone(),
        });
    }
    let newer = match (
        Version::parse(&manifest.interface_revision),
        Version::parse(INTERFACE_REVISION),
    ) {
        (Ok(library), Ok(host)) => library.cmp_precedence(&host).is_gt(),
        // Not a version: abi_stable's layout check judges it.
        _ => false,
    };
    if newer {
        return Err(LoadError::NewerInterface {
            path,
            library: manifest.interface_revision.clone(),
        });
    }
    Ok(())
}

/// Loads the library and checks its interface layout against this host's.
fn check_and_init(
    path: &Path,
    shown: &Path,
    manifest: &ManifestInfo,
) -> Result<Vec<LoadedPlugin>, LoadError> {
    let host = host_api_version();
    let layout_error = |detail: String| {
        tracing::info!(path = %shown.display(), "abi_stable's full layout report:\n{detail}");
        LoadError::LayoutMismatch {
            path: shown.to_path_buf(),
            library: manifest.api_version.clone(),
            host: host.to_string(),
            detail: first_layout_difference(&detail).unwrap_or_else(|| summarize(&detail)),
        }
    };
    let names: Vec<&str> = manifest.plugins.iter().map(|p| p.name.as_str()).collect();
    let _loading = super::crash::enter_loading(shown, &names.join(" --skip-plugin "));
    // One header per library: `RootModule::load_from_file` would cache the first library's
    // module for every later one.
    let header = lib_header_from_path(path).map_err(|e| match e {
        // The loader's own refusal (a missing symbol, a dependency it would not map): its text
        // names the real file and the cause.
        LibraryError::OpenError { err, .. } => LoadError::Open {
            path: shown.to_path_buf(),
            detail: summarize(&error_chain(&err)),
        },
        LibraryError::GetSymbolError { .. } => LoadError::BadManifest {
            path: shown.to_path_buf(),
            detail: "it has the ao manifest but not abi_stable's root module (`ao_plugin_api::export_plugins!` writes both, so do not write either by hand)".into(),
        },
        other => layout_error(error_chain(&other)),
    })?;
    let IsLayoutChecked::Yes(library_layout) = header.root_mod_consts().layout() else {
        return Err(layout_error(
            "the library was built without layout information".into(),
        ));
    };
    // The layout check runs with the library as the interface and the host as the
    // implementation, the reverse of abi_stable's own `init_root_module`. abi_stable lets the
    // implementation's prefix types (trait vtables) have *more* fields than the interface's,
    // which is what a host newer than its plugins needs: a method added to an interface after
    // a release is a vtable field an older plugin lacks, and the host reaches it through the
    // method's default body. Everything else must still match exactly. A library that fails so
    // is checked once more the way abi_stable's own loader does, the host as the interface: a
    // library built with a later ao-plugin-api of this line may have variants the host lacks in
    // the enums that can grow (`ao_plugin_api::ActivityState` …), which abi_stable allows only
    // in that direction, and the host reads them as fallbacks (`successors`). A refusal reports
    // the first check's difference. A 0.1.0 library (ABI level 0) is checked against 0.1.0's
    // root module instead (`ao_plugin_api::first_release`).
    let plugins = if manifest.abi_level == Some(first_release::ABI_LEVEL) {
        check_layout_compatibility(
            library_layout,
            <first_release::PluginLibraryRef as StableAbi>::LAYOUT,
        )
        .map_err(|e| layout_error(error_chain(&e)))?;
        // SAFETY: the layout was checked just above, against 0.1.0's root module.
        let module = unsafe {
            header.init_root_module_with_unchecked_layout::<first_release::PluginLibraryRef>()
        }
        .map_err(|e| layout_error(error_chain(&e)))?;
        module
            .plugins()
            .iter()
            .map(|declaration| LoadedPlugin::FirstRelease(*declaration))
            .collect()
    } else {
        let host_layout = <PluginLibraryRef as StableAbi>::LAYOUT;
        check_layout_compatibility(library_layout, host_layout)
            .or_else(|older| {
                check_layout_compatibility(host_layout, library_layout).map_err(|_| older)
            })
            .map_err(|e| layout_error(error_chain(&e)))?;
        // SAFETY: the layout was checked just above, in the directions explained there.
        let module = unsafe { header.init_root_module_with_unchecked_layout::<PluginLibraryRef>() }
            .map_err(|e| layout_error(error_chain(&e)))?;
        let remote = module.remote();
        let mut plugins = module
            .plugins()
            .iter()
            .map(|declaration| {
                let kind = declaration.constructor.kind().into();
                let remote_constructor = remote
                    .iter()
                    .find(|r| r.name == declaration.name && remote_kind(&r.constructor) == kind)
                    .map(|r| r.constructor);
                LoadedPlugin::InProcess(*declaration, remote_constructor)
            })
            .collect::<Vec<_>>();
        // A library built before 0.1.9 has no `added_kinds`: abi_stable answers empty.
        for declaration in module.added_kinds().iter() {
            // A kind this host lacks is named by the manifest, which refused the library
            // already; a declaration with no constructor known here is a corrupt library.
            let constructor = declaration
                .constructor()
                .ok_or_else(|| LoadError::BadManifest {
                    path: shown.to_path_buf(),
                    detail: format!(
                        "plugin `{}` has no constructor of a kind this ao-host knows",
                        declaration.name()
                    ),
                })?;
            let remote = declaration
                .remote_constructor()
                .filter(|remote| remote.kind() == constructor.kind());
            plugins.push(LoadedPlugin::InProcessAdded {
                name: declaration.name().to_string(),
                version: declaration.version().to_string(),
                constructor,
                remote,
            });
        }
        plugins
    };
    // The root module keeps the kinds added since the first release apart, so only the sets
    // must agree, not the order.
    let mut declared: Vec<(String, String)> = plugins
        .iter()
        .map(|p| (p.kind().as_str().to_string(), p.name().to_string()))
        .collect();
    let mut listed: Vec<(String, String)> = manifest
        .plugins
        .iter()
        .map(|p| (p.kind_name.clone(), p.name.clone()))
        .collect();
    declared.sort();
    listed.sort();
    if declared != listed {
        return Err(LoadError::BadManifest {
            path: shown.to_path_buf(),
            detail: format!("manifest lists {listed:?} but the library provides {declared:?}"),
        });
    }
    Ok(plugins)
}

/// The first difference abi_stable's layout report names, in one line: the type, and each way it
/// differs (its report runs to tens of kilobytes, the cause at the very end). abi_stable calls
/// the library's layout "expected" here (see `check_and_init`), and the host's "found".
fn first_layout_difference(report: &str) -> Option<String> {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let first = lines.iter().position(|l| l.starts_with("Error:"))?;
    // The type compared is the one the last "Layout of … type:" header before the errors names.
    let header = lines[..first]
        .iter()
        .rposition(|l| l.starts_with("Layout of"))
        .unwrap_or(0);
    let type_name = lines[header..first]
        .iter()
        .find_map(|l| l.strip_prefix("type:"))
        .unwrap_or("a type");
    let mut differences = Vec::new();
    let mut at = first;
    while at < lines.len() {
        let Some(error) = lines[at].strip_prefix("Error:") else {
            if lines[at].starts_with("Layout of") {
                break;
            }
            at += 1;
            continue;
        };
        let value = |label: &str, offset: usize| {
            (lines.get(at + offset) == Some(&label)).then(|| lines.get(at + offset + 1).copied())
        };
        match (value("Expected:", 1), value("Found:", 3)) {
            (Some(Some(library)), Some(Some(host))) => {
                differences.push(format!(
                    "{error} (the library's: {library}, this host's: {host})"
                ));
                at += 5;
            }
            _ => {
                differences.push(error.to_string());
                at += 1;
            }
        }
    }
    Some(summarize(&format!(
        "`{type_name}`: {}",
        differences.join("; ")
    )))
}

/// Folds a multi-line loader error into one line of bounded length.
fn summarize(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_DETAIL_CHARS {
        one_line
    } else {
        let cut: String = one_line.chars().take(MAX_DETAIL_CHARS).collect();
        format!("{cut}… (run with -v for the full report)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A library of this host's level, built with this host's crate, needing nothing.
    fn manifest() -> ManifestInfo {
        ManifestInfo {
            abi_level: Some(ABI_LEVEL),
            interface_revision: INTERFACE_REVISION.into(),
            api_version: API_VERSION.into(),
            kit_version: None,
            needs: Vec::new(),
            plugins: Vec::new(),
            remote: Vec::new(),
        }
    }

    fn refusal(manifest: ManifestInfo) -> String {
        check_abi(Path::new("/p/libx.so"), &manifest)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_host_level_loads_whatever_crate_version_built_it() {
        for api_version in ["0.1.0", "0.1.99", "0.2.0", "7.0.0"] {
            let library = ManifestInfo {
                api_version: api_version.into(),
                ..manifest()
            };
            check_abi(Path::new("/p/libx.so"), &library).unwrap();
        }
        let older_interface = ManifestInfo {
            interface_revision: "0.1.0".into(),
            needs: HOST_FEATURES.iter().map(|f| f.to_string()).collect(),
            ..manifest()
        };
        check_abi(Path::new("/p/libx.so"), &older_interface).unwrap();
    }

    #[test]
    fn another_level_is_refused_naming_both_and_the_fix() {
        let newer = refusal(ManifestInfo {
            abi_level: Some(ABI_LEVEL + 1),
            ..manifest()
        });
        assert_eq!(
            newer,
            format!(
                "/p/libx.so: built for ABI level {}, this ao-host speaks ABI level {ABI_LEVEL}: upgrade ao-host to one of ABI level {}",
                ABI_LEVEL + 1,
                ABI_LEVEL + 1
            )
        );
        // Level 0 (0.1.0) loads, through the 0.1.0 layouts the host keeps.
        check_abi(
            Path::new("/p/libx.so"),
            &ManifestInfo {
                abi_level: Some(first_release::ABI_LEVEL),
                ..manifest()
            },
        )
        .unwrap();
        let unknown = refusal(ManifestInfo {
            abi_level: None,
            api_version: "0.2.3".into(),
            ..manifest()
        });
        assert!(
            unknown.contains("built with ao-plugin-api 0.2.3, which states no ABI level"),
            "{unknown}"
        );
    }

    #[test]
    fn a_feature_the_host_lacks_is_refused_by_name() {
        let error = refusal(ManifestInfo {
            needs: vec![HOST_FEATURES[0].into(), "teleport".into()],
            ..manifest()
        });
        assert_eq!(
            error,
            format!(
                "/p/libx.so: needs host feature `teleport`, which this ao-host ({}) does not offer: upgrade ao-host",
                host_abi_summary()
            )
        );
    }

    #[test]
    fn a_newer_interface_is_refused_before_loading() {
        let error = refusal(ManifestInfo {
            interface_revision: "0.1.900".into(),
            ..manifest()
        });
        assert!(
            error.contains("built for interface revision 0.1.900, newer than this ao-host's")
                && error.contains("upgrade ao-host"),
            "{error}"
        );
    }

    #[test]
    fn long_layout_errors_fold_to_one_bounded_line() {
        let text = "line one\n".repeat(200);
        let folded = summarize(&text);
        assert!(!folded.contains('\n'));
        assert!(folded.chars().count() < MAX_DETAIL_CHARS + 60);
    }

    #[test]
    fn text_and_empty_files_are_not_libraries() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("libjunk.so");
        std::fs::write(&junk, "hello").unwrap();
        let report = load_library(&junk);
        let err = report.outcome.unwrap_err().to_string();
        assert!(
            err.contains("libjunk.so") && err.contains("not a shared library"),
            "{err}"
        );
        let empty = dir.path().join("libempty.so");
        std::fs::write(&empty, "").unwrap();
        let err = load_library(&empty).outcome.unwrap_err().to_string();
        assert!(err.contains("empty file"), "{err}");
    }
}
