//! Refusing files others could have replaced, the way ssh refuses a key file others can
//! write: loading a library runs its code with the operator's rights, and a config file names
//! commands ao-host runs, so every folder and link on the way to either matters, not only the
//! file.

use std::{
    collections::VecDeque,
    ffi::OsString,
    os::unix::fs::MetadataExt,
    path::{Component, Path, PathBuf},
};

/// Symbolic links followed at most while resolving one path (as the kernel's limit).
const MAX_LINKS: usize = 40;
/// The sticky bit: in such a folder only an entry's owner may rename or remove it.
const STICKY: u32 = 0o1000;

/// Checks every folder and link that resolving `library` goes through, and the file it ends
/// at: each must be owned by the current user or root, and writable by neither group nor
/// others — except a sticky folder (like `/tmp`), where others cannot replace what they do not
/// own. A symbolic link is judged by the folder it sits in, then followed. Returns the reason
/// and the fix otherwise.
pub fn check_library_trust(library: &Path) -> Result<(), String> {
    check_path_trust(library, "library")
}

/// [`check_library_trust`] for a file that is not a library but says what code runs (the
/// loader's cache, a config file): `what` names it in the refusal.
pub fn check_path_trust(path: &Path, what: &str) -> Result<(), String> {
    walk(path, what, false)
}

/// Checks a folder the dynamic loader searches for a library by name. Stricter than a folder on
/// the way to a file: whoever may create an entry in it decides what a name there loads, so a
/// sticky world-writable folder (`/tmp`) is refused too. A folder that does not exist is judged
/// by its nearest existing ancestor, where it could be made.
pub(crate) fn check_search_folder_trust(folder: &Path) -> Result<(), String> {
    let mut existing = folder;
    while std::fs::symlink_metadata(existing).is_err() {
        match existing.parent() {
            Some(parent) => existing = parent,
            None => return Ok(()),
        }
    }
    walk(existing, "folder", true)
}

/// Walks `path` component by component (following links), checking each entry; the last is
/// called `what`, and with `strict_last` it may not be writable by others even when sticky.
fn walk(path: &Path, what: &str, strict_last: bool) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let absolute =
        std::path::absolute(path).map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    let mut pending: VecDeque<OsString> = VecDeque::new();
    push_components(&mut pending, &absolute);
    let mut current = PathBuf::from("/");
    check_entry(&current, "folder", me, strict_last && pending.is_empty())?;
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            current.pop();
            continue;
        }
        let next = current.join(&name);
        let meta = std::fs::symlink_metadata(&next)
            .map_err(|e| format!("cannot inspect {}: {e}", next.display()))?;
        if meta.file_type().is_symlink() {
            // In a sticky folder (`/tmp`), the link's owner may re-point it at will.
            if meta.uid() != me && meta.uid() != 0 {
                return Err(format!(
                    "refused: the link {} is owned by uid {}, not by you (uid {me}) or root, who could re-point it; fix: replace it with a link of your own",
                    next.display(),
                    meta.uid()
                ));
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(format!(
                    "cannot resolve {}: too many symbolic links",
                    path.display()
                ));
            }
            let target = std::fs::read_link(&next)
                .map_err(|e| format!("cannot read the link {}: {e}", next.display()))?;
            let mut rest: VecDeque<OsString> = VecDeque::new();
            if target.is_absolute() {
                current = PathBuf::from("/");
            }
            push_components(&mut rest, &target);
            rest.extend(pending);
            pending = rest;
            continue;
        }
        let last = pending.is_empty();
        check_entry(
            &next,
            if last { what } else { "folder" },
            me,
            strict_last && last,
        )?;
        current = next;
    }
    Ok(())
}

fn push_components(queue: &mut VecDeque<OsString>, path: &Path) {
    for component in path.components() {
        match component {
            Component::Normal(name) => queue.push_back(name.to_os_string()),
            Component::ParentDir => queue.push_back("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// One folder or the library itself, by the rules of [`check_library_trust`]; a `strict` folder
/// gets no exemption for the sticky bit.
fn check_entry(path: &Path, what: &str, me: u32, strict: bool) -> Result<(), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "refused: the {what} {} is owned by uid {}, not by you (uid {me}) or root; fix: `chown {me} {}` if you trust it",
            path.display(),
            meta.uid(),
            path.display()
        ));
    }
    let shared_but_sticky = !strict && meta.is_dir() && meta.mode() & STICKY != 0;
    if meta.mode() & 0o022 != 0 && !shared_but_sticky {
        return Err(format!(
            "refused: the {what} {} is writable by {}{}, so someone else could change what it runs; fix: `chmod go-w {}`",
            path.display(),
            if meta.mode() & 0o002 != 0 { "everyone" } else { "its group" },
            if meta.mode() & STICKY != 0 { " (sticky, but anyone may add a file with a name the loader looks for)" } else { "" },
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn group_or_world_writable_files_and_folders_are_refused_with_the_chmod() {
        let dir = tempfile::tempdir().unwrap();
        let library = dir.path().join("libx.so");
        std::fs::write(&library, b"x").unwrap();
        set_mode(dir.path(), 0o755);
        set_mode(&library, 0o644);
        check_library_trust(&library).unwrap();

        set_mode(&library, 0o666);
        let err = check_library_trust(&library).unwrap_err();
        assert!(
            err.contains("writable by everyone") && err.contains("chmod go-w"),
            "{err}"
        );

        set_mode(&library, 0o644);
        set_mode(dir.path(), 0o775);
        let err = check_library_trust(&library).unwrap_err();
        assert!(err.contains("folder") && err.contains("its group"), "{err}");
    }

    #[test]
    fn a_search_folder_open_to_others_is_refused_even_sticky_or_not_made_yet() {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let folder = dir.path().join("lib");
        std::fs::create_dir(&folder).unwrap();
        set_mode(&folder, 0o755);
        check_search_folder_trust(&folder).unwrap();
        check_search_folder_trust(&folder.join("glibc-hwcaps/x86-64-v3")).unwrap();
        set_mode(&folder, 0o1777);
        let err = check_search_folder_trust(&folder).unwrap_err();
        assert!(
            err.contains("sticky") && err.contains("chmod go-w"),
            "{err}"
        );
        // Not there yet: whoever may make it decides what it holds.
        let err = check_search_folder_trust(&folder.join("glibc-hwcaps/x86-64-v3")).unwrap_err();
        assert!(err.contains(&folder.display().to_string()), "{err}");
        // A file in a sticky folder is still fine on the way to it (its owner alone replaces it).
        std::fs::write(folder.join("libx.so"), b"x").unwrap();
        set_mode(&folder.join("libx.so"), 0o644);
        check_library_trust(&folder.join("libx.so")).unwrap();
    }

    #[test]
    fn every_folder_and_link_on_the_way_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let safe = dir.path().join("safe");
        std::fs::create_dir(&safe).unwrap();
        set_mode(&safe, 0o755);
        let library = safe.join("libx.so");
        std::fs::write(&library, b"x").unwrap();
        set_mode(&library, 0o644);

        // A link in an open folder pointing at a good library: anyone could re-point it.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        set_mode(&open, 0o777);
        let link = open.join("libx.so");
        std::os::unix::fs::symlink(&library, &link).unwrap();
        let err = check_library_trust(&link).unwrap_err();
        assert!(
            err.contains(&open.display().to_string()) && err.contains("everyone"),
            "{err}"
        );

        // The same link in a safe folder is followed, and the target's folders checked.
        let via = dir.path().join("via");
        std::fs::create_dir(&via).unwrap();
        set_mode(&via, 0o755);
        std::os::unix::fs::symlink("../safe/libx.so", via.join("libx.so")).unwrap();
        check_library_trust(&via.join("libx.so")).unwrap();
        set_mode(&safe, 0o777);
        let err = check_library_trust(&via.join("libx.so")).unwrap_err();
        assert!(err.contains(&safe.display().to_string()), "{err}");
        set_mode(&safe, 0o755);

        // A deeper open folder is caught too; a sticky one (like /tmp) is not a hole.
        set_mode(dir.path(), 0o777);
        assert!(check_library_trust(&library)
            .unwrap_err()
            .contains("everyone"));
        set_mode(dir.path(), 0o1777);
        check_library_trust(&library).unwrap();
        set_mode(dir.path(), 0o755);

        // In a sticky folder, a link someone else owns is theirs to re-point.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let sticky = dir.path().join("sticky");
            std::fs::create_dir(&sticky).unwrap();
            set_mode(&sticky, 0o1777);
            let theirs = sticky.join("libx.so");
            std::os::unix::fs::symlink(&library, &theirs).unwrap();
            let path = std::ffi::CString::new(theirs.to_str().unwrap()).unwrap();
            // SAFETY: lchown of a link this test made, to `nobody`.
            assert_eq!(unsafe { libc::lchown(path.as_ptr(), 65534, 65534) }, 0);
            let err = check_library_trust(&theirs).unwrap_err();
            assert!(err.contains("link") && err.contains("65534"), "{err}");
        }

        // A link loop ends with an error, not a hang.
        std::os::unix::fs::symlink(via.join("loop"), via.join("loop")).unwrap();
        assert!(check_library_trust(&via.join("loop"))
            .unwrap_err()
            .contains("links"));
    }
}
