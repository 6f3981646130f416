//! Files on the machine a plugin's sessions live on: `std::fs` on the host's own machine, the
//! same operations over the instance's [`Transport`] on another one.
//!
//! A plugin that keeps its own records (worktree owners, intent files, locks) makes one
//! [`Files::here`] in its constructor and goes through it, and then works on another machine
//! unchanged. Each remote operation is one small POSIX `sh` script run over the transport,
//! with paths as its positional arguments (never in the script text) and contents on stdin.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use ao_plugin_api::Transport;

use crate::{private, program, remote, remote::TransportExt as _, shell};

/// The exit status the scripts below use for "no such file or folder".
const MISSING: i32 = 3;
/// The largest contents written to another host in the command line itself (single-quoted,
/// well under Linux's 128 KiB for one argument) rather than streamed on stdin over a
/// connection of its own.
const INLINE_WRITE_BYTES: usize = 64 * 1024;

/// What is at a path itself (a link is not followed), as [`Files::kinds`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Nothing (or a path through something that is not a folder).
    Missing,
    /// A folder.
    Dir,
    /// A symbolic link, dangling or not.
    Link,
    /// Anything else: a file, a socket, a device.
    File,
}

/// Where file operations happen: here, or on the host of a transport.
#[derive(Debug, Clone, Default)]
pub struct Files {
    remote: Option<Transport>,
}

/// An exclusive lock on a file, held until dropped (see [`Files::lock`]).
pub struct FileLock {
    _held: Held,
}

/// Unlocked when dropped: the file closed here, or the shell holding it there told to close it.
enum Held {
    Local { _file: fs::File },
    Remote { _lock: remote::RemoteLock },
}

impl Files {
    /// The files of the machine the current plugin instance works on (see [`remote::current`]).
    pub fn here() -> Self {
        Self {
            remote: remote::current(),
        }
    }

    /// Whether these are another machine's files.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// Runs `script` with `sh -c` on the other machine, `args` as `$1`…, `input` on stdin.
    fn run(
        transport: &Transport,
        script: &str,
        args: &[&Path],
        input: Option<&[u8]>,
    ) -> io::Result<Vec<u8>> {
        let mut argv: Vec<String> = vec!["sh".into(), "-c".into(), script.into(), "sh".into()];
        argv.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));
        let line = shell::join(&argv);
        let output = match input {
            // On a shell kept open there (see `remote::run`).
            None => remote::run(transport, &line)?,
            Some(bytes) => {
                let mut command = transport.command(&line);
                command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut child = command.spawn()?;
                let mut stdin = child.stdin.take().expect("stdin was piped");
                stdin.write_all(bytes)?;
                drop(stdin);
                child.wait_with_output()?
            }
        };
        match output.status.code() {
            Some(0) => Ok(output.stdout),
            Some(MISSING) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{}: no such file or folder{}",
                    args[0].display(),
                    transport.on_host()
                ),
            )),
            Some(remote::TRANSPORT_FAILED_STATUS) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                transport.failure_message(&output.stderr),
            )),
            _ if program::disk_full(&output.stderr) => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "disk full{}: {}",
                    transport.on_host(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            )),
            _ => Err(io::Error::other(format!(
                "{}{}: {}",
                args.first()
                    .map(|a| a.display().to_string())
                    .unwrap_or_default(),
                transport.on_host(),
                String::from_utf8_lossy(&output.stderr).trim()
            ))),
        }
    }

    /// A yes/no question answered by `test` on the other machine; no answer is an error, never
    /// a no.
    fn test(transport: &Transport, test: &str, path: &Path) -> io::Result<bool> {
        match Self::run(
            transport,
            &format!("{test} || exit {MISSING}"),
            &[path],
            None,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The whole file as UTF-8 text, here or on the transport's host.
    pub fn read_to_string(&self, path: &Path) -> io::Result<String> {
        match &self.remote {
            None => fs::read_to_string(path),
            Some(t) => {
                let bytes = Self::run(t, "[ -f \"$1\" ] || exit 3; cat -- \"$1\"", &[path], None)?;
                String::from_utf8(bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
            }
        }
    }

    /// Reads a file of this user's own state (an intent, a record a plugin keeps in the data
    /// dir): never through a link, and refused unless it is this user's and nobody else may
    /// write it (see [`private::check_trusted`]).
    pub fn read_private(&self, path: &Path) -> io::Result<String> {
        match &self.remote {
            None => private::read_to_string(path),
            Some(t) => {
                let bytes = Self::run(
                    t,
                    "[ -L \"$1\" ] && { echo \"$1 is a symbolic link; remove it\" >&2; exit 1; }; \
                     [ -f \"$1\" ] || exit 3; \
                     [ -O \"$1\" ] || { echo \"$1 is not this user's; check it, then remove it\" >&2; exit 1; }; \
                     [ -z \"$(find \"$1\" -prune \\( -perm -020 -o -perm -002 \\))\" ] || \
                     { echo \"$1 is writable by other users; check it, then make it a new file of yours \
                     (install -m 600 $1 $1.new && mv $1.new $1)\" >&2; exit 1; }; \
                     cat -- \"$1\"",
                    &[path],
                    None,
                )?;
                String::from_utf8(bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
            }
        }
    }

    /// Writes `contents` whole, owner-only (0600, whatever the umask): into a temporary file
    /// beside `path` (made exclusively under an unpredictable name), then renamed over it.
    pub fn write(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        match &self.remote {
            None => private::write(path, contents, false),
            // Small text goes in the command line (single-quoted), on a kept shell. Written by
            // `cat`, whose error names the cause (a full disk), where dash's printf says only
            // "I/O error".
            Some(t) if contents.len() <= INLINE_WRITE_BYTES && !contents.contains(&0) => {
                let Ok(text) = std::str::from_utf8(contents) else {
                    return self.write_streamed(t, path, contents);
                };
                Self::run(
                    t,
                    "umask 077; t=$(mktemp \"$1.XXXXXXXXXX\") || exit 1; \
                     printf '%s' \"$2\" | cat > \"$t\" && mv -f -- \"$t\" \"$1\" \
                     || { rm -f -- \"$t\"; exit 1; }",
                    &[path, Path::new(text)],
                    None,
                )
                .map(drop)
            }
            Some(t) => self.write_streamed(t, path, contents),
        }
    }

    /// [`Files::write`] of contents streamed on stdin. Renamed into place only when every byte
    /// arrived: a connection cut off half-way gives `cat` an early end of input, not an error.
    fn write_streamed(&self, t: &Transport, path: &Path, contents: &[u8]) -> io::Result<()> {
        Self::run(
            t,
            "umask 077; t=$(mktemp \"$1.XXXXXXXXXX\") || exit 1; cat > \"$t\" && [ \"$(wc -c < \"$t\" | tr -d ' ')\" = \"$2\" ] \
             && mv -f -- \"$t\" \"$1\" || { rm -f -- \"$t\"; exit 1; }",
            &[path, Path::new(&contents.len().to_string())],
            Some(contents),
        )
        .map(drop)
    }

    /// Creates `path` and its parents; those it creates are owner-only (0700) when `private`.
    pub fn create_dir_all(&self, path: &Path, private: bool) -> io::Result<()> {
        match &self.remote {
            None if private => private::create_dir(path),
            None => fs::create_dir_all(path),
            Some(t) if private => Self::run(
                t,
                "[ -L \"$1\" ] && { echo \"$1 is a symbolic link, not followed: remove it\" >&2; \
                 exit 1; }; (umask 077 && mkdir -p -- \"$1\") && [ -O \"$1\" ] \
                 && chmod 700 -- \"$1\"",
                &[path],
                None,
            )
            .map(drop),
            Some(t) => Self::run(t, "mkdir -p -- \"$1\"", &[path], None).map(drop),
        }
    }

    /// [`private::own_dir`]: the existing folder `path` refused unless this user's, tightened
    /// if others may write it.
    pub fn own_dir(&self, path: &Path, private: bool) -> io::Result<()> {
        match &self.remote {
            None => private::own_dir(path, private),
            Some(t) => Self::run(
                t,
                "[ -L \"$1\" ] && { echo \"$1 is a symbolic link, not followed: remove it\" >&2; \
                 exit 1; }; [ -d \"$1\" ] || exit 3; \
                 [ -O \"$1\" ] || { echo \"$1 is not this user's, so ao-host keeps nothing there: \
                 chown it to you and chmod 700 it, or pick another folder\" >&2; exit 1; }; \
                 if [ \"$2\" = private ]; then chmod go-rwx -- \"$1\"; else chmod go-w -- \"$1\"; fi",
                &[path, Path::new(if private { "private" } else { "shared" })],
                None,
            )
            .map(drop),
        }
    }

    /// [`private::check_trusted_tree`]: refused unless everything at and under `path` is this
    /// user's and not writable by others.
    pub fn check_trusted_tree(&self, path: &Path) -> io::Result<()> {
        const SCRIPT: &str = r#"[ -e "$1" ] || [ -L "$1" ] || exit 3
me=$(id -u)
if [ -n "$(find "$1" -prune \( -type l -o ! -user "$me" -o -perm -020 -o -perm -002 \))" ]; then
  bad=$1
elif [ -n "$(find "$1" -prune \( -perm -001 -o -perm -010 \))" ]; then
  bad=$(find "$1" \( -type l -o ! -user "$me" -o -perm -020 -o -perm -002 \) -print | head -n 1)
else
  bad=$(find "$1" \( -type l -o ! -user "$me" \) -print | head -n 1)
fi
[ -z "$bad" ] || { echo "$bad is a link, another user's or writable by other users, so ao-host does not act on it: check it, then make it yours and owner-only (a file: install -m 600 it to a new name and mv that over it)" >&2; exit 1; }"#;
        match &self.remote {
            None => private::check_trusted_tree(path),
            Some(t) => Self::run(t, SCRIPT, &[path], None).map(drop),
        }
    }

    /// [`private::restrict_tree`]: everything of ours at and under `path` made owner-only.
    pub fn restrict_tree(&self, path: &Path) -> io::Result<()> {
        match &self.remote {
            None => private::restrict_tree(path),
            Some(t) => Self::run(
                t,
                "[ -L \"$1\" ] && exit 0; [ -e \"$1\" ] || exit 3; \
                 find \"$1\" -user \"$(id -u)\" ! -type l -exec chmod go-rwx -- {} +",
                &[path],
                None,
            )
            .map(drop),
        }
    }

    /// Removes a file; one already gone is not an error.
    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        match &self.remote {
            None => match fs::remove_file(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
            Some(t) => Self::run(t, "rm -f -- \"$1\"", &[path], None).map(drop),
        }
    }

    /// Removes a folder and everything in it (a link is removed, not followed); one already gone
    /// is not an error.
    pub fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        match &self.remote {
            None => match fs::symlink_metadata(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Ok(meta) if !meta.is_dir() => fs::remove_file(path),
                _ => fs::remove_dir_all(path),
            },
            Some(t) => Self::run(t, "rm -rf -- \"$1\"", &[path], None).map(drop),
        }
    }

    /// Whether `path` exists; an error when that cannot be told (the other machine does not
    /// answer). Use the `try_` questions wherever "no" leads to acting as if something were
    /// gone: a lost connection must never pass for a removed file.
    pub fn try_exists(&self, path: &Path) -> io::Result<bool> {
        match &self.remote {
            None => path.try_exists(),
            Some(t) => Self::test(t, "[ -e \"$1\" ]", path),
        }
    }

    /// Whether `path` is a file (following links); an error when that cannot be told.
    pub fn try_is_file(&self, path: &Path) -> io::Result<bool> {
        match &self.remote {
            None => match fs::metadata(path) {
                Ok(meta) => Ok(meta.is_file()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
            Some(t) => Self::test(t, "[ -f \"$1\" ]", path),
        }
    }

    /// Whether `path` is a folder (following links); an error when that cannot be told.
    pub fn try_is_dir(&self, path: &Path) -> io::Result<bool> {
        match &self.remote {
            None => match fs::metadata(path) {
                Ok(meta) => Ok(meta.is_dir()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
            Some(t) => Self::test(t, "[ -d \"$1\" ]", path),
        }
    }

    /// What is at each of `paths` itself, links not followed, in the same order; an error when
    /// that cannot be told. On another machine, one round trip for all of them: a caller with
    /// many paths to check (a sandbox's rules) pays the connection once.
    pub fn kinds(&self, paths: &[&Path]) -> io::Result<Vec<PathKind>> {
        let Some(t) = &self.remote else {
            return paths
                .iter()
                .map(|path| match fs::symlink_metadata(path) {
                    Ok(meta) if meta.file_type().is_symlink() => Ok(PathKind::Link),
                    Ok(meta) if meta.is_dir() => Ok(PathKind::Dir),
                    Ok(_) => Ok(PathKind::File),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                        ) =>
                    {
                        Ok(PathKind::Missing)
                    }
                    Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
                })
                .collect();
        };
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        // One letter a line, whatever bytes the paths hold.
        let answer = Self::run(
            t,
            "for p; do if [ -L \"$p\" ]; then echo l; elif [ -d \"$p\" ]; then echo d; \
             elif [ -e \"$p\" ]; then echo f; else echo -; fi; done",
            paths,
            None,
        )?;
        let kinds: Vec<PathKind> = answer
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| match line {
                b"l" => PathKind::Link,
                b"d" => PathKind::Dir,
                b"f" => PathKind::File,
                _ => PathKind::Missing,
            })
            .collect();
        if kinds.len() != paths.len() {
            return Err(io::Error::other(format!(
                "asking what {} paths are{}: {} answers came back",
                paths.len(),
                t.on_host(),
                kinds.len()
            )));
        }
        Ok(kinds)
    }

    /// [`Files::try_exists`], with "cannot tell" as no.
    pub fn exists(&self, path: &Path) -> bool {
        self.try_exists(path).unwrap_or(false)
    }

    /// [`Files::try_is_file`], with "cannot tell" as no.
    pub fn is_file(&self, path: &Path) -> bool {
        self.try_is_file(path).unwrap_or(false)
    }

    /// [`Files::try_is_dir`], with "cannot tell" as no.
    pub fn is_dir(&self, path: &Path) -> bool {
        self.try_is_dir(path).unwrap_or(false)
    }

    /// Whether something is at `path` itself, a dangling link included; an error when that
    /// cannot be told.
    pub fn is_present(&self, path: &Path) -> io::Result<bool> {
        match &self.remote {
            None => match path.symlink_metadata() {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
            Some(t) => Self::test(t, "[ -e \"$1\" ] || [ -L \"$1\" ]", path),
        }
    }

    /// The names of what is in a folder (not `.` and `..`), in no particular order.
    pub fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        match &self.remote {
            None => fs::read_dir(path)?
                .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect(),
            Some(t) => {
                let listing = Self::run(
                    t,
                    "[ -d \"$1\" ] || exit 3; cd -- \"$1\" && for f in * .[!.]* ..?*; do \
                     [ -e \"$f\" ] || [ -L \"$f\" ] && printf '%s\\0' \"$f\"; done; true",
                    &[path],
                    None,
                )?;
                Ok(listing
                    .split(|b| *b == 0)
                    .filter(|name| !name.is_empty())
                    .map(|name| String::from_utf8_lossy(name).into_owned())
                    .collect())
            }
        }
    }

    /// Whether the file at `path` was last changed more than `age` ago (`false` when it is not
    /// there, or the time cannot be told).
    pub fn older_than(&self, path: &Path, age: Duration) -> bool {
        match &self.remote {
            None => fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().is_ok_and(|elapsed| elapsed > age)),
            Some(t) => {
                // `find -mmin +N` (POSIX has -mtime only in days; every find of note has -mmin).
                let minutes = age.as_secs().div_ceil(60).to_string();
                Self::run(
                    t,
                    "[ -n \"$(find \"$1\" -prune -mmin +\"$2\" 2>/dev/null)\" ]",
                    &[path, Path::new(&minutes)],
                    None,
                )
                .is_ok()
            }
        }
    }

    /// The absolute path of `path` with every link resolved.
    pub fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        match &self.remote {
            None => path.canonicalize(),
            Some(t) => {
                let resolved = Self::run(
                    t,
                    "[ -e \"$1\" ] || exit 3; if [ -d \"$1\" ]; then cd -P -- \"$1\" && pwd -P; \
                     else d=$(dirname -- \"$1\") && cd -P -- \"$d\" && \
                     printf '%s/%s\\n' \"$(pwd -P)\" \"$(basename -- \"$1\")\"; fi",
                    &[path],
                    None,
                )?;
                Ok(PathBuf::from(
                    String::from_utf8_lossy(&resolved).trim_end_matches('\n'),
                ))
            }
        }
    }

    /// Makes `link` a symbolic link to `source`.
    pub fn symlink(&self, source: &Path, link: &Path) -> io::Result<()> {
        match &self.remote {
            None => std::os::unix::fs::symlink(source, link),
            Some(t) => Self::run(t, "ln -s -- \"$1\" \"$2\"", &[source, link], None).map(drop),
        }
    }

    /// Whether a new file can be made in `dir` (made first if missing): a doctor check.
    pub fn check_writable(&self, dir: &Path) -> io::Result<()> {
        match &self.remote {
            None => {
                fs::create_dir_all(dir)?;
                let probe = dir.join(format!(".ao-doctor-{}", std::process::id()));
                fs::File::options()
                    .write(true)
                    .create_new(true)
                    .open(&probe)?;
                fs::remove_file(&probe)
            }
            Some(t) => Self::run(
                t,
                "mkdir -p -- \"$1\" && p=\"$1/.ao-doctor-$$\" && : > \"$p\" && rm -f -- \"$p\"",
                &[dir],
                None,
            )
            .map(drop),
        }
    }

    /// Takes an exclusive lock on `path` (created if missing), waiting for it: a `flock` on
    /// this machine; on another, `flock` there, held by a shell kept open there as long as the
    /// lock (if this process dies, so does the ssh session, and the lock is released).
    pub fn lock(&self, path: &Path) -> io::Result<FileLock> {
        match &self.remote {
            None => {
                let file = private::open_lock(path)?;
                file.lock()?;
                Ok(FileLock {
                    _held: Held::Local { _file: file },
                })
            }
            Some(t) => Ok(FileLock {
                _held: Held::Remote {
                    _lock: remote::lock(t, path)?,
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The "other machine" is this one, reached through `sh -c`: what the scripts do, and how
    /// they quote, is what runs over ssh.
    fn through_a_shell() -> Files {
        Files {
            remote: Some(Transport {
                host: "here".into(),
                command: vec!["sh".into(), "-c".into()].into(),
            }),
        }
    }

    #[test]
    fn a_machine_that_does_not_answer_is_never_taken_for_a_missing_file() {
        // ssh's own status for a connection it could not make or lost.
        let gone = Files {
            remote: Some(Transport {
                host: "gone".into(),
                command: vec!["sh".into(), "-c".into(), "exit 255".into()].into(),
            }),
        };
        for path in ["/", "/nonexistent"] {
            let path = Path::new(path);
            assert!(gone.try_exists(path).is_err(), "{}", path.display());
            assert!(gone.try_is_dir(path).is_err());
            assert!(gone.is_present(path).is_err());
            assert_ne!(
                gone.read_to_string(path).unwrap_err().kind(),
                io::ErrorKind::NotFound
            );
        }
        assert!(through_a_shell().try_exists(Path::new("/")).unwrap());
        assert!(!through_a_shell()
            .try_exists(Path::new("/nonexistent"))
            .unwrap());
    }

    #[test]
    fn every_operation_does_the_same_here_and_through_a_transport() {
        for files in [Files::default(), through_a_shell()] {
            let temp = std::env::temp_dir().join(format!(
                "ao-files-{}-{}",
                std::process::id(),
                files.is_remote()
            ));
            let dir = temp.join("a dir 'quoted' $(x)");
            files.create_dir_all(&dir, true).unwrap();
            assert!(files.is_dir(&dir) && !files.is_file(&dir));
            assert_eq!(
                fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
                0o700
            );
            let file = dir.join("f\nnew line");
            files.write(&file, b"one\ttwo\n\0three").unwrap();
            assert_eq!(fs::read(&file).unwrap(), b"one\ttwo\n\0three");
            assert_eq!(
                fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(files.read_private(&file).unwrap(), "one\ttwo\n\0three");
            // Another's, or writable by others, or a link: never read as our own state.
            fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
            let loose = files.read_private(&file).unwrap_err().to_string();
            assert!(loose.contains("install -m 600"), "{loose}");
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
            let planted = dir.join("planted.lock");
            std::os::unix::fs::symlink(&file, &planted).unwrap();
            assert!(files.read_private(&planted).is_err());
            assert!(files.lock(&planted).is_err());
            assert_eq!(fs::read(&file).unwrap(), b"one\ttwo\n\0three");
            fs::remove_file(&planted).unwrap();
            assert!(files.is_file(&file) && files.exists(&file));
            let missing = files.read_to_string(&dir.join("missing")).unwrap_err();
            assert_eq!(missing.kind(), io::ErrorKind::NotFound);
            files.symlink(&file, &dir.join(".link")).unwrap();
            let followed = files.create_dir_all(&dir.join(".link"), true).unwrap_err();
            assert!(followed.to_string().contains("symbolic link"), "{followed}");
            let mut names = files.read_dir(&dir).unwrap();
            names.sort();
            assert_eq!(names, [".link", "f\nnew line"]);
            assert_eq!(
                files.canonicalize(&dir).unwrap(),
                dir.canonicalize().unwrap()
            );
            assert!(!files.older_than(&file, Duration::from_secs(600)));
            assert_eq!(
                files
                    .kinds(&[
                        &dir,
                        &file,
                        &dir.join(".link"),
                        &dir.join("missing"),
                        &file.join("under a file")
                    ])
                    .unwrap(),
                [
                    PathKind::Dir,
                    PathKind::File,
                    PathKind::Link,
                    PathKind::Missing,
                    PathKind::Missing
                ]
            );
            assert_eq!(files.kinds(&[]).unwrap(), []);
            files.check_writable(&dir).unwrap();
            {
                let held = files.lock(&dir.join("lock")).unwrap();
                let (files2, lock_path) = (files.clone(), dir.join("lock"));
                let (sender, waiting) = std::sync::mpsc::channel();
                let other = std::thread::spawn(move || {
                    let _second = files2.lock(&lock_path).unwrap();
                    sender.send(()).unwrap();
                });
                assert!(
                    waiting.recv_timeout(Duration::from_millis(300)).is_err(),
                    "a second lock was granted while the first was held"
                );
                drop(held);
                waiting.recv_timeout(Duration::from_secs(10)).unwrap();
                other.join().unwrap();
            }
            let _again = files.lock(&dir.join("lock")).unwrap();
            // A tree whose files decide what a program does (a git admin folder).
            let tree = dir.join("tree");
            fs::create_dir_all(tree.join("sub")).unwrap();
            let leaf = tree.join("sub/f");
            fs::write(&leaf, "x").unwrap();
            let set = |path: &Path, mode: u32| {
                fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap()
            };
            let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
            set(&tree, 0o777);
            set(&leaf, 0o666);
            let loose = files.check_trusted_tree(&tree).unwrap_err().to_string();
            assert!(loose.contains("writable by other"), "{loose}");
            set(&tree, 0o755);
            let loose = files.check_trusted_tree(&tree).unwrap_err().to_string();
            assert!(loose.contains("sub/f"), "{loose}");
            files.restrict_tree(&tree).unwrap();
            assert_eq!(
                (mode(&tree), mode(&tree.join("sub")), mode(&leaf)),
                (0o700, 0o700, 0o600)
            );
            files.check_trusted_tree(&tree).unwrap();
            // Out of others' reach, a file's mode gives them nothing.
            set(&leaf, 0o666);
            files.check_trusted_tree(&tree).unwrap();
            std::os::unix::fs::symlink(&file, tree.join("link")).unwrap();
            assert!(files.check_trusted_tree(&tree).is_err());
            fs::remove_file(tree.join("link")).unwrap();
            set(&tree, 0o777);
            files.own_dir(&tree, false).unwrap();
            assert_eq!(mode(&tree), 0o755);
            files.own_dir(&tree, true).unwrap();
            assert_eq!(mode(&tree), 0o700);
            assert!(files.own_dir(&dir.join(".link"), true).is_err());
            files.remove_file(&dir.join(".link")).unwrap();
            files.remove_file(&dir.join(".link")).unwrap();
            assert!(files.is_file(&file), "removing the link left its target");
            files.remove_dir_all(&temp).unwrap();
            assert!(!files.exists(&temp));
            files.remove_dir_all(&temp).unwrap();
        }
    }
}
