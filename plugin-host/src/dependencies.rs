//! A library's dependencies, judged like the library itself before the loader maps any of them.
//!
//! `dlopen` maps every library in the `DT_NEEDED` closure and runs their constructors too, so a
//! trusted plugin that needs `libx.so` from a folder anyone can write runs anyone's code. So do
//! the filtees of `DT_FILTER` (a missing one fails the load) and `DT_AUXILIARY` (a missing one is
//! skipped; one found is mapped and run), which are searched for like needed names. Before
//! a library is loaded, its closure is resolved here the way glibc's loader resolves it, and every
//! file and folder involved is held to the rules of [`super::trust`]:
//!
//! - a name is matched first against the libraries already in the process (by soname, as the
//!   loader does: libc and friends, already trusted by the time this code runs), then looked for
//!   in the needing library's `DT_RPATH` and its loaders' (only without `DT_RUNPATH`),
//!   `LD_LIBRARY_PATH`, its `DT_RUNPATH`, the loader cache (`/etc/ld.so.cache`), and the default
//!   folders; `$ORIGIN`, `$LIB` and `$PLATFORM` are expanded as the loader does;
//! - in each folder, the glibc-hwcaps and legacy hardware subfolders come before the folder;
//! - every folder searched up to the one where the name is found must be one only its owner
//!   (the operator or root) can add files to: a file planted later in an earlier folder would
//!   win. So a world-writable folder is refused even when it is sticky (`/tmp`); a folder that
//!   does not exist is judged by the nearest folder where it could be made;
//! - the file found, every folder and link on the way to it, must pass the library rules, and
//!   be built for this machine (a library for another machine is skipped, as the loader does).
//!
//! The executable's own `DT_RPATH` is not searched (ao-host has none), nor are `LD_PRELOAD` or
//! `/etc/ld.so.preload`, which are loaded at start-up, before any of this code runs.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    ffi::CStr,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use object::{
    elf,
    read::elf::{Dyn, FileHeader, ProgramHeader},
    ReadCache,
};

use super::{
    elf::HostHeader,
    elf_target::{check_elf_target, TargetMismatch},
    loader_cache::{LoaderCache, LOADER_CACHE},
};
use crate::trust::{check_library_trust, check_path_trust, check_search_folder_trust};

/// Libraries in one closure at most: a real plugin needs a handful.
const MAX_DEPENDENCIES: usize = 512;
/// `AT_PLATFORM` (not in the `libc` crate for Linux): the auxv entry `$PLATFORM` expands to.
const AT_PLATFORM: libc::c_ulong = 15;

/// How a library names another the loader maps with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// `DT_NEEDED`, and `DT_FILTER`: must be found.
    Required,
    /// `DT_AUXILIARY`: the loader goes on without it when not found.
    Auxiliary,
}

/// What a library's dynamic section says about its dependencies.
#[derive(Debug, Default)]
struct DynamicInfo {
    /// In the order of the section, which is the order the loader maps them in.
    needed: Vec<(Link, String)>,
    rpath: Option<String>,
    runpath: Option<String>,
    soname: Option<String>,
}

/// One library of the closure, as the loader will know it.
struct Object {
    /// The path the loader opens it by (its `$ORIGIN` is this path's folder).
    path: PathBuf,
    info: DynamicInfo,
    /// The `DT_RPATH` folders of the libraries that led to it, nearest first (searched when it
    /// has no `DT_RUNPATH`).
    inherited_rpath: Vec<SearchFolder>,
}

/// A folder searched for names, and where it comes from (for the refusal).
#[derive(Debug, Clone)]
struct SearchFolder {
    path: PathBuf,
    origin: String,
}

/// Resolves and checks the whole dependency closure of `library`, which the loader will open by
/// exactly this path. Returns the dependencies it will map (not those already in the process),
/// or why one of them, or a folder searched for one, is refused.
pub(super) fn check_dependencies(library: &Path) -> Result<Vec<PathBuf>, String> {
    let mut resolver = Resolver::new();
    let info = read_dynamic(library)?;
    let mut known: HashSet<String> = resolver.loaded.clone();
    known.extend(info.soname.clone());
    let mut queue = VecDeque::from([Object {
        path: library.to_path_buf(),
        info,
        inherited_rpath: Vec::new(),
    }]);
    let mut mapped = Vec::new();
    while let Some(object) = queue.pop_front() {
        let own_rpath = if object.info.runpath.is_none() {
            expand_list(object.info.rpath.as_deref(), &object.path, "DT_RPATH")
        } else {
            Vec::new()
        };
        for (link, name) in &object.info.needed {
            if known.contains(name) {
                continue;
            }
            let found = match resolver.find(name, &object, &own_rpath) {
                Ok(found) => found,
                Err(Unfound::Missing(_)) if *link == Link::Auxiliary => continue,
                Err(Unfound::Missing(why) | Unfound::Refused(why)) => return Err(why),
            };
            let info = read_dynamic(&found)
                .map_err(|e| format!("dependency `{name}` at {}: {e}", found.display()))?;
            known.insert(name.clone());
            known.extend(info.soname.clone());
            if mapped.len() >= MAX_DEPENDENCIES {
                return Err(format!(
                    "more than {MAX_DEPENDENCIES} libraries in its dependency closure"
                ));
            }
            mapped.push(found.clone());
            let mut inherited_rpath = own_rpath.clone();
            if object.info.runpath.is_none() {
                inherited_rpath.extend(object.inherited_rpath.iter().cloned());
            }
            queue.push_back(Object {
                path: found,
                info,
                inherited_rpath,
            });
        }
    }
    Ok(mapped)
}

/// Why a name was not resolved: not there (which the loader tolerates of an auxiliary filtee), or
/// a folder searched or the file found is refused.
enum Unfound {
    Missing(String),
    Refused(String),
}

struct Resolver {
    /// Sonames of the libraries already in this process.
    loaded: HashSet<String>,
    library_path: Vec<SearchFolder>,
    cache: Option<LoaderCache>,
    /// Each folder's verdict, judged once.
    folders: HashMap<PathBuf, Result<(), String>>,
}

impl Resolver {
    fn new() -> Self {
        // In `LD_LIBRARY_PATH`, `$ORIGIN` is the program's own folder.
        let program_folder = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        // Set but empty, it is ignored (an empty entry in a longer list is the working folder).
        let library_path = std::env::var("LD_LIBRARY_PATH")
            .ok()
            .filter(|value| !value.is_empty())
            .map(|value| expand_entries(&value, program_folder.as_deref(), "LD_LIBRARY_PATH"))
            .unwrap_or_default();
        Self {
            loaded: loaded_sonames(),
            library_path,
            cache: None,
            folders: HashMap::new(),
        }
    }

    /// Where the loader finds `name` for `object`, every folder searched on the way checked.
    fn find(
        &mut self,
        name: &str,
        object: &Object,
        own_rpath: &[SearchFolder],
    ) -> Result<PathBuf, Unfound> {
        let needed_by = object.path.display();
        if name.contains('/') {
            // A path, not a name: opened as it is (relative to the working folder).
            let path = std::path::absolute(name).map_err(|e| Unfound::Missing(e.to_string()))?;
            return match self.candidate(&path, name, &object.path).map_err(Unfound::Refused)? {
                Some(found) => Ok(found),
                None => Err(Unfound::Missing(format!(
                    "missing dependency `{name}` (needed by {needed_by}): no such library; install it or rebuild the library"
                ))),
            };
        }
        let mut searched: Vec<SearchFolder> = Vec::new();
        if object.info.runpath.is_none() {
            searched.extend(own_rpath.iter().cloned());
            searched.extend(object.inherited_rpath.iter().cloned());
        }
        searched.extend(self.library_path.iter().cloned());
        searched.extend(expand_list(
            object.info.runpath.as_deref(),
            &object.path,
            "DT_RUNPATH",
        ));
        let mut looked_in = Vec::new();
        for folder in &searched {
            let found = self.search_folder(name, folder, &object.path);
            if let Some(found) = found.map_err(Unfound::Refused)? {
                return Ok(found);
            }
            looked_in.push(folder.path.display().to_string());
        }
        if let Some(cached) = self.cached(name).map_err(Unfound::Refused)? {
            let found = self.candidate(&cached, name, &object.path);
            if let Some(found) = found.map_err(Unfound::Refused)? {
                return Ok(found);
            }
        }
        for folder in default_folders() {
            let found = self.search_folder(name, &folder, &object.path);
            if let Some(found) = found.map_err(Unfound::Refused)? {
                return Ok(found);
            }
            looked_in.push(folder.path.display().to_string());
        }
        Err(Unfound::Missing(format!(
            "missing dependency `{name}` (needed by {needed_by}): not in {} nor in the loader cache; install it, or ship it beside the library and link with `-Wl,-rpath,'$ORIGIN'`",
            looked_in.join(", ")
        )))
    }

    /// `name` in `folder` (its hardware subfolders first), checking each folder searched.
    fn search_folder(
        &mut self,
        name: &str,
        folder: &SearchFolder,
        needed_by: &Path,
    ) -> Result<Option<PathBuf>, String> {
        for sub in hardware_subfolders() {
            let dir = folder.path.join(sub);
            let verdict = self
                .folders
                .entry(dir.clone())
                .or_insert_with(|| check_search_folder_trust(&dir))
                .clone();
            verdict.map_err(|why| {
                format!(
                    "dependency `{name}` (needed by {}) is looked for in {} ({}): {why}, or take {} out of the {}",
                    needed_by.display(),
                    folder.path.display(),
                    folder.origin,
                    folder.path.display(),
                    folder.origin,
                )
            })?;
            if let Some(found) = self.candidate(&dir.join(name), name, needed_by)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// `path` if the loader would take it for `name`: a file built for this machine (the
    /// loader skips others), which must then pass the library rules.
    fn candidate(
        &mut self,
        path: &Path,
        name: &str,
        needed_by: &Path,
    ) -> Result<Option<PathBuf>, String> {
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(None);
        };
        if !meta.is_file() {
            return Ok(None);
        }
        check_library_trust(path).map_err(|why| {
            format!(
                "dependency `{name}` (needed by {}) at {}: {why}",
                needed_by.display(),
                path.display()
            )
        })?;
        match read_header(path) {
            Ok(header) if check_elf_target(&header).is_ok() => Ok(Some(path.to_path_buf())),
            _ => Ok(None),
        }
    }

    /// What the loader cache says for `name`, once the cache itself is trusted.
    fn cached(&mut self, name: &str) -> Result<Option<PathBuf>, String> {
        if self.cache.is_none() {
            let cache = match std::fs::read(LOADER_CACHE) {
                Ok(bytes) => {
                    check_path_trust(Path::new(LOADER_CACHE), "loader cache")
                        .map_err(|why| format!("looking up `{name}` in the loader cache: {why}"))?;
                    LoaderCache::parse(&bytes)
                }
                Err(_) => LoaderCache::default(),
            };
            self.cache = Some(cache);
        }
        Ok(self
            .cache
            .as_ref()
            .and_then(|cache| cache.lookup(name))
            .map(Path::to_path_buf))
    }
}

/// The subfolders glibc tries in each search folder before the folder itself (glibc-hwcaps since
/// 2.33, the legacy ones until 2.37). All are tried, whatever this CPU supports: a file there
/// is then held to the rules even if this loader would not pick it.
fn hardware_subfolders() -> &'static [&'static str] {
    if cfg!(target_arch = "x86_64") {
        &[
            "glibc-hwcaps/x86-64-v4",
            "glibc-hwcaps/x86-64-v3",
            "glibc-hwcaps/x86-64-v2",
            "tls/x86_64/x86_64",
            "tls/x86_64",
            "tls",
            "x86_64/x86_64",
            "x86_64",
            "",
        ]
    } else {
        &["tls", ""]
    }
}

/// The multiarch triplet Debian-style systems keep their libraries under.
fn multiarch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("x86_64-linux-gnu"),
        "aarch64" => Some("aarch64-linux-gnu"),
        "riscv64" => Some("riscv64-linux-gnu"),
        "powerpc64" => Some("powerpc64le-linux-gnu"),
        "s390x" => Some("s390x-linux-gnu"),
        _ => None,
    }
}

/// The loader's default folders, searched last: the multiarch ones where they exist (Debian),
/// otherwise `lib64`, then `/lib` and `/usr/lib`.
fn default_folders() -> Vec<SearchFolder> {
    let folder = |path: String| SearchFolder {
        path: PathBuf::from(path),
        origin: "a default folder of the loader".into(),
    };
    let mut folders = Vec::new();
    match multiarch().filter(|triplet| Path::new("/lib").join(triplet).is_dir()) {
        Some(triplet) => {
            folders.push(folder(format!("/lib/{triplet}")));
            folders.push(folder(format!("/usr/lib/{triplet}")));
        }
        None if cfg!(target_pointer_width = "64") => {
            folders.push(folder("/lib64".into()));
            folders.push(folder("/usr/lib64".into()));
        }
        None => {}
    }
    folders.push(folder("/lib".into()));
    folders.push(folder("/usr/lib".into()));
    folders
}

/// `$LIB`: the loader's library folder name.
fn dst_lib() -> String {
    match multiarch().filter(|triplet| Path::new("/lib").join(triplet).is_dir()) {
        Some(triplet) => format!("lib/{triplet}"),
        None if cfg!(target_pointer_width = "64") => "lib64".into(),
        None => "lib".into(),
    }
}

/// `$PLATFORM`: what the kernel says this processor is (`AT_PLATFORM`).
fn dst_platform() -> String {
    // SAFETY: getauxval has no preconditions; AT_PLATFORM's value is a pointer to a C string
    // the kernel put on the stack at start, valid for the life of the process (or 0).
    let pointer = unsafe { libc::getauxval(AT_PLATFORM) } as *const libc::c_char;
    if pointer.is_null() {
        return std::env::consts::ARCH.into();
    }
    // SAFETY: non-null, NUL-terminated (see above).
    unsafe { CStr::from_ptr(pointer) }
        .to_string_lossy()
        .into_owned()
}

/// The folders of a `DT_RPATH`/`DT_RUNPATH` of the library at `path`, tokens expanded.
fn expand_list(list: Option<&str>, path: &Path, tag: &str) -> Vec<SearchFolder> {
    list.map(|list| expand_entries(list, path.parent(), &format!("{tag} of {}", path.display())))
        .unwrap_or_default()
}

/// Splits a colon-separated search list, expanding `$ORIGIN` (to `origin`), `$LIB` and
/// `$PLATFORM`; an empty entry is the working folder, as the loader takes it.
fn expand_entries(list: &str, origin: Option<&Path>, from: &str) -> Vec<SearchFolder> {
    list.split(':')
        .filter_map(|entry| {
            let mut text = entry.to_string();
            for (token, value) in [
                ("ORIGIN", origin.map(|o| o.display().to_string())),
                ("LIB", Some(dst_lib())),
                ("PLATFORM", Some(dst_platform())),
            ] {
                for form in [format!("${{{token}}}"), format!("${token}")] {
                    if text.contains(&form) {
                        // A token the loader cannot expand drops the entry.
                        text = text.replace(&form, value.as_deref()?);
                    }
                }
            }
            let path = if text.is_empty() {
                PathBuf::from(".")
            } else {
                PathBuf::from(text)
            };
            Some(SearchFolder {
                path: std::path::absolute(&path).unwrap_or(path),
                origin: from.to_string(),
            })
        })
        .collect()
}

/// Opens a library file to read: a regular file only, without blocking on a FIFO.
fn open_regular(path: &Path) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open it: {e}"))?;
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok(file),
        Ok(_) => Err("not a regular file".into()),
        Err(e) => Err(format!("cannot inspect it: {e}")),
    }
}

/// The first 64 bytes (an ELF header) of `path`.
fn read_header(path: &Path) -> Result<Vec<u8>, String> {
    let mut header = Vec::with_capacity(64);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(open_regular(path)?, 64),
        &mut header,
    )
    .map_err(|e| format!("cannot read it: {e}"))?;
    Ok(header)
}

/// The dynamic section of the library at `path`: needed names, search lists, soname.
fn read_dynamic(path: &Path) -> Result<DynamicInfo, String> {
    let header = read_header(path)?;
    if let Err(TargetMismatch::Foreign(why) | TargetMismatch::NotLibrary(why)) =
        check_elf_target(&header)
    {
        return Err(why);
    }
    let data = ReadCache::new(open_regular(path)?);
    dynamic_info(&data).map_err(|e| format!("cannot read its dynamic section: {e}"))
}

// A dynamic entry's value is a `u32` on 32-bit hosts: `.into()` is no conversion only on 64-bit.
#[allow(clippy::useless_conversion)]
fn dynamic_info(data: &ReadCache<std::fs::File>) -> Result<DynamicInfo, String> {
    let text = |e: object::Error| e.to_string();
    let header = HostHeader::parse(data).map_err(text)?;
    let endian = header.endian().map_err(text)?;
    let segments = header.program_headers(endian, data).map_err(text)?;
    let mut info = DynamicInfo::default();
    let Some(entries) = segments
        .iter()
        .find_map(|segment| segment.dynamic(endian, data).transpose())
        .transpose()
        .map_err(text)?
    else {
        return Ok(info); // statically linked: nothing to load
    };
    let value = |tag: u32| {
        entries
            .iter()
            .find(|entry| entry.tag32(endian) == Some(tag))
            .map(|entry| entry.d_val(endian).into())
    };
    let (Some(strtab), Some(strsz)) = (value(elf::DT_STRTAB), value(elf::DT_STRSZ)) else {
        return Err("dynamic section without a string table".into());
    };
    let strings = segments
        .iter()
        .filter(|segment| segment.p_type(endian) == elf::PT_LOAD)
        .find_map(|segment| {
            segment
                .data_range(endian, data, strtab, strsz)
                .ok()
                .flatten()
        })
        .ok_or("string table outside the file".to_string())?;
    let string = |offset: u64| -> Result<String, String> {
        let rest = usize::try_from(offset)
            .ok()
            .and_then(|at| strings.get(at..))
            .ok_or("string past its table".to_string())?;
        let end = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or("unterminated string".to_string())?;
        String::from_utf8(rest[..end].to_vec()).map_err(|_| "string not UTF-8".to_string())
    };
    for entry in entries {
        let text = || string(entry.d_val(endian).into());
        match entry.tag32(endian) {
            Some(elf::DT_NULL) => break,
            Some(elf::DT_NEEDED | elf::DT_FILTER) => info.needed.push((Link::Required, text()?)),
            Some(elf::DT_AUXILIARY) => info.needed.push((Link::Auxiliary, text()?)),
            Some(elf::DT_RPATH) => info.rpath = Some(text()?),
            Some(elf::DT_RUNPATH) => info.runpath = Some(text()?),
            Some(elf::DT_SONAME) => info.soname = Some(text()?),
            _ => {}
        }
    }
    Ok(info)
}

/// Sonames of the libraries loaded in this process (read from their files).
fn loaded_sonames() -> HashSet<String> {
    unsafe extern "C" fn collect(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: glibc passes a valid `info` whose name is a C string (maybe empty), and
        // `data` is the `Vec` below, borrowed for the duration of the call.
        let (info, paths) = unsafe { (&*info, &mut *(data as *mut Vec<PathBuf>)) };
        if !info.dlpi_name.is_null() {
            // SAFETY: see above.
            let name = unsafe { CStr::from_ptr(info.dlpi_name) };
            if !name.is_empty() {
                use std::os::unix::ffi::OsStrExt;
                paths.push(PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes())));
            }
        }
        0
    }
    let mut paths: Vec<PathBuf> = Vec::new();
    // SAFETY: the callback only reads what glibc passes and pushes to `paths`.
    unsafe { libc::dl_iterate_phdr(Some(collect), &mut paths as *mut Vec<PathBuf> as *mut _) };
    paths
        .iter()
        .filter_map(|path| read_dynamic(path).ok()?.soname)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `gcc -shared` of `source` into `output`, with `args`.
    fn gcc(source: &str, output: &Path, args: &[&str]) {
        let file = output.with_extension("c");
        std::fs::write(&file, source).unwrap();
        let status = std::process::Command::new("gcc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(output)
            .arg(&file)
            .args(args)
            .status()
            .expect("gcc builds the test libraries");
        assert!(status.success());
    }

    /// A DT_RPATH is searched for the dependencies of the libraries it leads to, a DT_RUNPATH
    /// only for its own library's: as glibc does.
    #[test]
    fn rpath_is_inherited_and_runpath_is_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "a", "b", "c"] {
            let folder = dir.path().join(name);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let link = |folder: &str| format!("-L{}", dir.path().join(folder).display());
        gcc(
            "int c3(void) { return 3; }",
            &dir.path().join("c/libc3.so"),
            &["-Wl,-soname,libc3.so"],
        );
        gcc(
            "int c3(void); int b2(void) { return c3(); }",
            &dir.path().join("b/libb2.so"),
            &["-Wl,-soname,libb2.so", &link("c"), "-lc3"],
        );
        for (dtags, c_found) in [("--disable-new-dtags", true), ("--enable-new-dtags", false)] {
            let a = dir.path().join("a/liba1.so");
            gcc(
                "int b2(void); int a1(void) { return b2(); }",
                &a,
                &[
                    &format!("-Wl,{dtags}"),
                    "-Wl,-rpath,$ORIGIN/../b:$ORIGIN/../c",
                    &link("b"),
                    &link("c"),
                    "-lb2",
                    "-Wl,--allow-shlib-undefined",
                ],
            );
            let found = check_dependencies(&a);
            if c_found {
                let found = found.unwrap();
                assert_eq!(found.len(), 2, "{found:?}");
                assert!(found[0].ends_with("b/libb2.so") && found[1].ends_with("c/libc3.so"));
            } else {
                let err = found.unwrap_err();
                assert!(
                    err.contains("missing dependency `libc3.so`") && err.contains("libb2.so"),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn the_tests_own_libraries_are_already_loaded() {
        let loaded = loaded_sonames();
        assert!(loaded.contains("libc.so.6"), "{loaded:?}");
    }

    #[test]
    fn origin_lib_and_platform_expand_as_the_loader_does() {
        let folders = expand_entries(
            "$ORIGIN/../lib:${ORIGIN}:/x/$LIB:/p/$PLATFORM",
            Some(Path::new("/opt/ao/plugins")),
            "DT_RUNPATH of test",
        );
        let paths: Vec<_> = folders.iter().map(|f| f.path.clone()).collect();
        assert_eq!(paths[0], Path::new("/opt/ao/plugins/../lib"));
        assert_eq!(paths[1], Path::new("/opt/ao/plugins"));
        assert!(!paths[2].to_string_lossy().contains('$'));
        assert!(!paths[3].to_string_lossy().contains('$'));
        assert!(expand_entries("$ORIGIN/x", None, "t").is_empty());
    }
}
