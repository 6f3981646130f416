//! Plugins on another machine: the [`Transport`] a plugin instance was built with, and how a
//! command line travels over it.
//!
//! The host builds a plugin for another host with the transport to reach it (`ssh …`). While
//! that instance is being built and while any of its methods runs, the transport is this
//! thread's [`current`] one; [`crate::program::Program`], [`crate::files::Files`] and
//! [`crate::session_files::SessionFiles`] made then remember it, so a plugin written with them
//! works on the other machine unchanged. Anything a plugin does by itself (`std::fs`, its own
//! `std::process::Command`) still happens on the host's machine: such a plugin must not be
//! exported as `[remote]`.
//!
//! On the other machine, a program runs as one POSIX shell command line (that is what ssh
//! carries), built by [`command_line`]: every argument single-quoted by [`crate::shell::join`],
//! so no byte of a task, a branch or a path is ever read by that shell. Large inputs go on
//! stdin, never in the line.

use std::{cell::RefCell, ffi::OsStr, path::Path, process::Command};

use crate::{shell, types::Transport};

thread_local! {
    static CURRENT: RefCell<Option<Transport>> = const { RefCell::new(None) };
}

/// The transport of the plugin instance running on this thread; `None` on the host's machine.
pub fn current() -> Option<Transport> {
    CURRENT.with(|current| current.borrow().clone())
}

/// Runs `body` with `transport` as this thread's current one (the export adapter wraps every
/// constructor and method of an instance in it), restoring what was there before.
pub(crate) fn scoped<R>(transport: Option<&Transport>, body: impl FnOnce() -> R) -> R {
    let Some(transport) = transport else {
        return body();
    };
    let previous = CURRENT.with(|current| current.replace(Some(transport.clone())));
    struct Restore(Option<Transport>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|current| *current.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    body()
}

/// The exit status of a line whose `cd` into the working folder failed (see [`command_line`]).
pub const NO_SUCH_FOLDER_STATUS: i32 = 125;
/// The exit status a shell gives a program it cannot find.
pub const NOT_FOUND_STATUS: i32 = 127;
/// The exit status ssh gives when it could not reach the host or lost it (the remote command's
/// own status otherwise).
pub const TRANSPORT_FAILED_STATUS: i32 = 255;

/// The shell command line that runs `program` with `args` in `cwd` (when given) on the other
/// machine: `cd -- '<cwd>' || exit 125; exec '<program>' '<arg>'…`.
pub fn command_line<I, S>(cwd: Option<&Path>, program: &str, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut argv = vec![program.to_string()];
    argv.extend(
        args.into_iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned()),
    );
    let run = format!("exec {}", shell::join(&argv));
    match cwd {
        Some(dir) => format!(
            "cd -- {} 2>/dev/null || exit {NO_SUCH_FOLDER_STATUS}; {run}",
            shell::join(&[dir.to_string_lossy()])
        ),
        None => run,
    }
}

impl Transport {
    /// The local process that runs `line` on the host.
    pub fn command(&self, line: &str) -> Command {
        let mut argv = self.command.iter().map(|a| a.as_str());
        let mut command = Command::new(argv.next().unwrap_or("ssh"));
        command.args(argv).arg(line);
        command
    }

    /// " on host `NAME`", for messages about something on the host.
    pub fn on_host(&self) -> String {
        format!(" on host `{}`", self.host)
    }

    /// The message for a run that ended with [`TRANSPORT_FAILED_STATUS`]: what ssh said.
    pub fn failure_message(&self, stderr: &[u8]) -> String {
        let said = String::from_utf8_lossy(stderr);
        let said = said
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("no answer");
        format!("host `{}` did not answer: {said}", self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_quotes_every_argument_and_fails_distinctly_without_its_folder() {
        let line = command_line(
            Some(Path::new("/srv/it's here")),
            "git",
            ["commit", "-m", "$(rm -rf /); `x` \"y\"\n"],
        );
        assert_eq!(
            line,
            "cd -- '/srv/it'\\''s here' 2>/dev/null || exit 125; \
             exec git commit -m '$(rm -rf /); `x` \"y\"\n'"
        );
        let output = Command::new("sh")
            .args([
                "-c",
                &command_line(None, "printf", ["%s|", "a b", "$HOME", "'"]),
            ])
            .output()
            .unwrap();
        assert_eq!(output.stdout, b"a b|$HOME|'|");
        let status = Command::new("sh")
            .args([
                "-c",
                &command_line(Some(Path::new("/nonexistent")), "true", [""; 0]),
            ])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(NO_SUCH_FOLDER_STATUS));
    }

    #[test]
    fn the_current_transport_is_scoped_and_restored() {
        let transport = Transport {
            host: "box1".into(),
            command: vec!["ssh".into(), "box1".into()].into(),
        };
        assert_eq!(current(), None);
        let inside = scoped(Some(&transport), || {
            let nested = scoped(None, current);
            (current(), nested)
        });
        assert_eq!(inside, (Some(transport.clone()), Some(transport)));
        assert_eq!(current(), None);
    }
}
