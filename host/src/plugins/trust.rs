//! Refusing libraries others could have replaced, the way ssh refuses a key file others can
//! write: loading a library runs its code with the operator's rights.

use std::{os::unix::fs::MetadataExt, path::Path};

/// Checks the library file and the folder holding it: each must be owned by the current user or
/// root, and writable by neither group nor others. Returns the reason and the fix otherwise.
pub fn check_library_trust(library: &Path) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let folder = library.parent().unwrap_or(Path::new("/"));
    for (what, path) in [("library", library), ("folder", folder)] {
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
        if meta.uid() != me && meta.uid() != 0 {
            return Err(format!(
                "refused: the {what} {} is owned by uid {}, not by you (uid {me}) or root; fix: `chown {me} {}` if you trust it",
                path.display(),
                meta.uid(),
                path.display()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "refused: the {what} {} is writable by {}, so someone else could replace the code; fix: `chmod go-w {}`",
                path.display(),
                if meta.mode() & 0o002 != 0 { "everyone" } else { "its group" },
                path.display()
            ));
        }
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
}
