//! Where plugin libraries are looked for.

use std::path::{Path, PathBuf};

/// Environment variable with extra plugin folders, colon-separated.
pub const PLUGIN_PATH_ENV: &str = "AO_PLUGIN_PATH";

/// A folder to search and why it is searched (shown by `plugins list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchDir {
    pub path: PathBuf,
    pub origin: &'static str,
}

/// The folders to search, highest priority first:
/// `--plugin-dir` > `plugins.dirs` > `$AO_PLUGIN_PATH` > the executable's folder and its
/// `plugins/` > `<data_dir>/plugins`.
pub fn search_dirs(
    cli_dirs: &[PathBuf],
    config_dirs: &[PathBuf],
    data_dir: &Path,
) -> Vec<SearchDir> {
    let mut dirs = Vec::new();
    let mut push = |path: PathBuf, origin: &'static str| dirs.push(SearchDir { path, origin });
    for dir in cli_dirs {
        push(dir.clone(), "--plugin-dir");
    }
    for dir in config_dirs {
        push(dir.clone(), "plugins.dirs");
    }
    if let Some(value) = std::env::var_os(PLUGIN_PATH_ENV) {
        for dir in std::env::split_paths(&value).filter(|d| !d.as_os_str().is_empty()) {
            push(dir, PLUGIN_PATH_ENV);
        }
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.canonicalize().ok())
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        push(exe_dir.join("plugins"), "executable folder");
        push(exe_dir, "executable folder");
    }
    push(data_dir.join("plugins"), "data_dir/plugins");
    dedup_dirs(dirs)
}

/// Drops folders already listed (by canonical path), keeping the first, highest-priority one.
fn dedup_dirs(dirs: Vec<SearchDir>) -> Vec<SearchDir> {
    let mut seen = Vec::new();
    dirs.into_iter()
        .filter(|dir| {
            let key = dir.path.canonicalize().unwrap_or_else(|_| dir.path.clone());
            if seen.contains(&key) {
                false
            } else {
                seen.push(key);
                true
            }
        })
        .collect()
}

/// Whether a file name looks like a plugin library on this platform (`lib*.so`, `lib*.dylib`,
/// `*.dll`).
pub fn is_candidate_name(name: &str) -> bool {
    name.starts_with(std::env::consts::DLL_PREFIX)
        && name.ends_with(std::env::consts::DLL_SUFFIX)
        && name.len() > std::env::consts::DLL_PREFIX.len() + std::env::consts::DLL_SUFFIX.len()
}

/// Candidate files of all folders, in priority order (by name within a folder). A file reached
/// through two folders is listed once. Missing folders are skipped.
pub fn candidates(dirs: &[SearchDir]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut seen = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir.path) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_str().is_some_and(is_candidate_name))
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .collect();
        found.sort();
        for path in found {
            let key = path.canonicalize().unwrap_or_else(|_| path.clone());
            if !seen.contains(&key) {
                seen.push(key);
                files.push(path);
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_platform_library_names_are_candidates() {
        let ext = std::env::consts::DLL_SUFFIX;
        let prefix = std::env::consts::DLL_PREFIX;
        assert!(is_candidate_name(&format!("{prefix}ao_runtime_tmux{ext}")));
        assert!(!is_candidate_name(&format!("{prefix}{ext}")));
        assert!(!is_candidate_name("notes.txt"));
        assert!(!is_candidate_name(&format!("{prefix}thing{ext}.bak")));
    }

    #[test]
    fn search_order_puts_cli_before_config_before_data_dir() {
        let dirs = search_dirs(
            &[PathBuf::from("/cli")],
            &[PathBuf::from("/config")],
            Path::new("/data"),
        );
        let origins: Vec<_> = dirs.iter().map(|d| d.origin).collect();
        let pos = |o: &str| origins.iter().position(|x| *x == o).unwrap();
        assert!(pos("--plugin-dir") < pos("plugins.dirs"));
        assert!(pos("plugins.dirs") < pos("executable folder"));
        assert!(pos("executable folder") < pos("data_dir/plugins"));
        assert_eq!(dirs.last().unwrap().path, Path::new("/data/plugins"));
    }

    #[test]
    fn a_file_seen_twice_is_listed_once_in_name_order() {
        let temp = tempfile::tempdir().unwrap();
        let ext = std::env::consts::DLL_SUFFIX;
        for name in ["libb", "liba", "readme"] {
            std::fs::write(temp.path().join(format!("{name}{ext}")), b"x").unwrap();
        }
        let dir = SearchDir {
            path: temp.path().to_path_buf(),
            origin: "test",
        };
        let found = candidates(&[dir.clone(), dir]);
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![format!("liba{ext}"), format!("libb{ext}")]);
    }
}
