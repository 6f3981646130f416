//! Owner-only files and folders on this machine: the host's data dir and every plugin's state in
//! it (records, locks, intents, agent state).
//!
//! On a shared machine another user must neither read what is there (tasks, prompts) nor steer
//! what ao-host does through it. So, whatever the umask (an in-process plugin may have set it to
//! 0): folders are made 0700 and files 0600, explicitly; nothing is opened through a link; temp
//! files are made exclusively under unpredictable names; and a file or folder that is not the
//! running user's, or that others may write, is never acted on ([`check_trusted`] says why and
//! what to do). Ours but readable by others (a data dir from before this rule) is tightened.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// Mode bits that let others write: a file or folder with any of them is never trusted.
const OTHERS_WRITE: u32 = 0o022;
/// Mode bits that let others read or search.
const OTHERS_ANY: u32 = 0o077;

/// The effective user id this process acts as.
fn me() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Refuses `path` (described by `meta`, from `lstat` or `fstat`) unless it is ours and nobody
/// else may write it; the error names the file, the reason and the fix.
pub fn check_trusted(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let what = if meta.is_dir() { "folder" } else { "file" };
    if meta.file_type().is_symlink() {
        return Err(untrusted(format!(
            "{} is a symbolic link where ao-host keeps a {what} of its own; it is not followed: \
             remove it (`rm {}`)",
            path.display(),
            path.display()
        )));
    }
    if meta.uid() != me() {
        return Err(untrusted(format!(
            "{} is owned by uid {}, not by this user (uid {}), so ao-host does not act on it: \
             check what it is, then remove it",
            path.display(),
            meta.uid(),
            me()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & OTHERS_WRITE != 0 {
        return Err(untrusted(format!(
            "{} is writable by other users (mode {mode:04o}), so ao-host does not act on it: \
             check its contents, then {}",
            path.display(),
            loose_fix(path, meta.is_dir())
        )));
    }
    Ok(())
}

/// The fix for a file or folder of ours that others may write. A folder is made owner-only in
/// place; a file is replaced by a new one: `chmod` would leave a write handle another user
/// opened meanwhile working.
pub fn loose_fix(path: &Path, is_dir: bool) -> String {
    let path = path.display();
    if is_dir {
        format!("`chmod 700 {path}`")
    } else {
        format!("make it a new file of yours (`install -m 600 {path} {path}.new && mv {path}.new {path}`)")
    }
}

fn not_a_file(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is not a regular file; ao-host does not act on it: remove it",
            path.display()
        ),
    )
}

fn untrusted(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, message)
}

/// Takes away what others may read of a file or folder already checked to be ours.
fn tighten(file: &File, meta: &fs::Metadata) -> io::Result<()> {
    let private = if meta.is_dir() { 0o700 } else { 0o600 };
    if meta.mode() & OTHERS_ANY != 0 {
        file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o700 | private))?;
    }
    Ok(())
}

/// The folder at `path` itself, opened (never through a link) to be judged by its descriptor.
fn open_dir_itself(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| link_refused(path, e, "folder"))
}

/// Opens the folder at `path` itself (never through a link), checks it is ours and makes it
/// owner-only. A folder of ours that others could write is tightened rather than refused: what
/// they may have put in it is not ours, and every file is checked on its own when opened.
fn open_dir_checked(path: &Path) -> io::Result<File> {
    let dir = open_dir_itself(path)?;
    let meta = dir.metadata()?;
    if meta.uid() != me() {
        check_trusted(path, &meta)?;
    }
    if meta.mode() & OTHERS_ANY != 0 {
        dir.set_permissions(fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

/// Claims the existing folder `path` (not followed if a link) as one ao-host keeps things in: the
/// data dir, a plugin's root. Refused unless it is this user's (another user could rename or
/// replace what is in it); one of ours that others may write is tightened: to 0700 when
/// `private`, else only others' write taken away (a root of the operator's choosing keeps
/// being readable).
pub fn own_dir(path: &Path, private: bool) -> io::Result<()> {
    let dir = open_dir_itself(path)?;
    let meta = dir.metadata()?;
    if meta.uid() != me() {
        return Err(untrusted(format!(
            "{} is owned by uid {}, not by this user (uid {}), so ao-host keeps nothing there \
             (its owner could rename or replace what ao-host puts in it): `chown` it to you and \
             `chmod 700` it, or pick another folder",
            path.display(),
            meta.uid(),
            me()
        )));
    }
    let mode = meta.mode() & 0o7777;
    let tightened = if private {
        mode & !OTHERS_ANY
    } else {
        mode & !OTHERS_WRITE
    };
    if tightened != mode {
        dir.set_permissions(fs::Permissions::from_mode(tightened))?;
    }
    Ok(())
}

/// Refuses the tree at `root` unless it is a folder (or file) of ours that others may not write,
/// and everything in it is ours, and — when others can reach into it at all — not writable by
/// them either: a folder whose contents decide what a program run as this user does (a git
/// admin folder) must not be another user's to edit. No link is followed, nor trusted.
pub fn check_trusted_tree(root: &Path) -> io::Result<()> {
    let meta = root.symlink_metadata()?;
    check_trusted(root, &meta)?;
    let reachable = meta.mode() & 0o011 != 0;
    if meta.is_dir() {
        for entry in fs::read_dir(root)? {
            check_entries(&entry?.path(), reachable)?;
        }
    }
    Ok(())
}

/// [`check_trusted_tree`] below its root: writable by others matters only where they reach.
fn check_entries(path: &Path, reachable: bool) -> io::Result<()> {
    let meta = path.symlink_metadata()?;
    if reachable || meta.uid() != me() || meta.file_type().is_symlink() {
        check_trusted(path, &meta)?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            check_entries(&entry?.path(), reachable)?;
        }
    }
    Ok(())
}

/// Makes every folder and file of ours under `root` (itself included, no link followed)
/// owner-only: what others may do is taken away, the owner's bits kept.
pub fn restrict_tree(root: &Path) -> io::Result<()> {
    let meta = root.symlink_metadata()?;
    if meta.file_type().is_symlink() || meta.uid() != me() {
        return Ok(());
    }
    if meta.mode() & OTHERS_ANY != 0 {
        fs::set_permissions(root, fs::Permissions::from_mode(meta.mode() & 0o7700))?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(root)? {
            restrict_tree(&entry?.path())?;
        }
    }
    Ok(())
}

/// Tightens what is under `root` (itself included) to owner-only, down to `depth` folders
/// below it, and returns what cannot be (links, what is another user's, what others may
/// write): the caller reports those. Files are looked at only with `files` (regular files and
/// links: a socket or FIFO is some program's, refused where ao-host would read it), folders
/// always.
/// A folder holding `.git` (a worktree: the user's code, with git's modes) is left as it is.
pub fn tighten_tree(root: &Path, depth: usize, files: bool) -> Vec<io::Error> {
    let mut problems = Vec::new();
    let dir = match open_dir_checked(root) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return problems,
        Err(e) => {
            problems.push(e);
            return problems;
        }
    };
    drop(dir);
    if depth == 0 {
        return problems;
    }
    let Ok(entries) = fs::read_dir(root) else {
        return problems;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            if path.join(".git").symlink_metadata().is_err() {
                problems.extend(tighten_tree(&path, depth - 1, files));
            }
        } else if files && (meta.is_file() || meta.file_type().is_symlink()) {
            let checked = check_trusted(&path, &meta).and_then(|()| {
                if meta.is_file() && meta.mode() & OTHERS_ANY != 0 {
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                } else {
                    Ok(())
                }
            });
            problems.extend(checked.err());
        }
    }
    problems
}

/// `ELOOP` from `O_NOFOLLOW` (and `ENOTDIR` from `O_DIRECTORY` on a link) said in words.
fn link_refused(path: &Path, error: io::Error, what: &str) -> io::Error {
    let is_link = path
        .symlink_metadata()
        .is_ok_and(|meta| meta.file_type().is_symlink());
    if matches!(
        error.raw_os_error(),
        Some(libc::ELOOP) | Some(libc::ENOTDIR)
    ) && is_link
    {
        untrusted(format!(
            "{} is a symbolic link where ao-host keeps a {what} of its own; it is not followed: \
             remove it (`rm {}`)",
            path.display(),
            path.display()
        ))
    } else {
        error
    }
}

/// Makes `path` an owner-only folder: each missing folder on the way made 0700 (whatever the
/// umask); the last one, if it was there, checked to be ours and not a link, and tightened.
pub fn create_dir(path: &Path) -> io::Result<()> {
    match path.symlink_metadata() {
        Ok(_) => open_dir_checked(path).map(drop),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                if parent.symlink_metadata().is_err() {
                    create_dir(parent)?;
                }
            }
            match fs::DirBuilder::new().mode(0o700).create(path) {
                Ok(()) => {}
                // Made meanwhile by a concurrent command: checked below like any other.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            let dir = open_dir_checked(path)?;
            dir.set_permissions(fs::Permissions::from_mode(0o700))
        }
        Err(e) => Err(e),
    }
}

/// [`create_dir`] for `path` inside `root`, where a link planted at any level from `root` down
/// would take what is made below it elsewhere: each folder from `root` to `path` is made or
/// checked in turn. (`create_dir` alone checks only the last, existing folder.)
pub fn create_dir_within(root: &Path, path: &Path) -> io::Result<()> {
    create_dir(root)?;
    let below = path.strip_prefix(root).map_err(|_| {
        io::Error::other(format!(
            "{} is not inside {}",
            path.display(),
            root.display()
        ))
    })?;
    let mut folder = root.to_path_buf();
    for part in below.components() {
        folder.push(part);
        create_dir(&folder)?;
    }
    Ok(())
}

/// Opens an existing file of ours for reading: never through a link, never blocking on a FIFO;
/// refused unless ours and not writable by others (and tightened if others may read it).
pub fn open_read(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| link_refused(path, e, "file"))?;
    let meta = file.metadata()?;
    check_trusted(path, &meta)?;
    if !meta.is_file() {
        return Err(not_a_file(path));
    }
    tighten(&file, &meta)?;
    Ok(file)
}

/// [`open_read`], then the whole file as text.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    io::read_to_string(open_read(path)?)
}

/// Opens (creating if missing, 0600) a lock file for reading and writing, never through a link;
/// refused unless ours. One of ours that others could write is tightened, not refused: what is
/// in a lock file (a pid, for messages) decides nothing.
pub fn open_lock(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| link_refused(path, e, "lock file"))?;
    let meta = file.metadata()?;
    if meta.uid() != me() {
        check_trusted(path, &meta)?;
    }
    if !meta.is_file() {
        return Err(not_a_file(path));
    }
    if meta.mode() & OTHERS_ANY != 0 {
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// A new, empty, owner-only file beside `path` under an unpredictable name (made exclusively,
/// never through a link): `.<name>.<pid>-<random>.tmp`. The pid lets a cleaner tell a dead
/// writer's leftovers.
pub fn create_temp(path: &Path) -> io::Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    loop {
        let temp = path.with_file_name(format!(
            ".{name}.{}-{:016x}.tmp",
            std::process::id(),
            random_u64()?
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
        {
            Ok(file) => {
                // The mode given at creation is cut by the umask, never widened; said again.
                file.set_permissions(fs::Permissions::from_mode(0o600))?;
                return Ok((temp, file));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Replaces (or creates) `path` with `contents` whole, owner-only: written to a [`create_temp`]
/// file (fsynced when `durable`), then renamed over it, so a reader sees the old file or the new
/// one. The folder must exist.
pub fn write(path: &Path, contents: &[u8], durable: bool) -> io::Result<()> {
    let (temp, mut file) = create_temp(path)?;
    let written = file
        .write_all(contents)
        .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
        .and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

/// Eight bytes from the kernel's random source.
fn random_u64() -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the unfilled rest of `bytes`.
        let got = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if got < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        filled += got as usize;
    }
    Ok(u64::from_ne_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        path.symlink_metadata().unwrap().mode() & 0o7777
    }

    #[test]
    fn folders_and_files_are_owner_only_whatever_was_there() {
        let temp = std::env::temp_dir().join(format!("ao-private-{}", std::process::id()));
        let nested = temp.join("a/b");
        create_dir(&nested).unwrap();
        assert_eq!(
            (mode(&temp), mode(&temp.join("a")), mode(&nested)),
            (0o700, 0o700, 0o700)
        );
        let file = nested.join("f");
        write(&file, b"one", true).unwrap();
        write(&file, b"two", false).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(
            fs::read_dir(&nested).unwrap().count(),
            1,
            "a temp file was left"
        );
        // Loose but ours and not writable by others: tightened on use.
        fs::set_permissions(&nested, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        create_dir(&nested).unwrap();
        assert_eq!(read_to_string(&file).unwrap(), "two");
        assert_eq!((mode(&nested), mode(&file)), (0o700, 0o600));
        fs::remove_dir_all(&temp).unwrap();
    }

    #[test]
    fn links_and_files_others_may_write_are_refused_naming_the_fix() {
        let temp = std::env::temp_dir().join(format!("ao-private-refused-{}", std::process::id()));
        create_dir(&temp).unwrap();
        let target = temp.join("target");
        fs::write(&target, "keep").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let link = temp.join("link.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for error in [open_lock(&link).unwrap_err(), open_read(&link).unwrap_err()] {
            assert!(error.to_string().contains("symbolic link"), "{error}");
        }
        let dir_link = temp.join("dir");
        std::os::unix::fs::symlink(&temp, &dir_link).unwrap();
        let error = create_dir(&dir_link).unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        let problems = tighten_tree(&temp, 2, true);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
        fs::set_permissions(&target, fs::Permissions::from_mode(0o666)).unwrap();
        let error = open_read(&target).unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&format!("install -m 600 {} ", target.display())),
            "{error}"
        );
        open_lock(&target).unwrap();
        assert_eq!(mode(&target), 0o600, "a lock of ours is tightened");
        fs::remove_dir_all(&temp).unwrap();
    }

    #[test]
    fn temp_names_are_unpredictable() {
        let path = Path::new("/nonexistent/x");
        let name = |_| format!("{:016x}", random_u64().unwrap());
        let names: std::collections::HashSet<String> = (0..32).map(name).collect();
        assert_eq!(names.len(), 32);
        assert!(create_temp(path).is_err());
    }
}
