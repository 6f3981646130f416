//! Running the external programs plugins drive (`tmux`, `git`, …) with argv only, never a shell.
//!
//! Shared here so every plugin reports a missing program and a failed command the same way:
//! the program, the arguments, what it printed, and how to install it.

use std::{
    ffi::OsStr,
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

use crate::error::{PluginError, PluginResult};

/// An external program and the advice to give when it is missing.
#[derive(Debug, Clone)]
pub struct Program {
    name: String,
    install_hint: String,
}

impl Program {
    /// `install_hint` completes "install it: …", e.g. "apt-get install tmux".
    pub fn new(name: impl Into<String>, install_hint: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            install_hint: install_hint.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` for this program, for callers that need to set it up further.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(&self.name);
        command.args(args);
        command
    }

    /// Runs the program to completion and returns its stdout; a non-zero exit is an error that
    /// quotes stderr.
    pub fn run<I, S>(&self, cwd: Option<&Path>, args: I) -> PluginResult<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_with_input(cwd, args, None)
    }

    /// Like [`Program::run`], feeding `input` on stdin (how text reaches a program without ever
    /// being part of a command line).
    pub fn run_with_input<I, S>(
        &self,
        cwd: Option<&Path>,
        args: I,
        input: Option<&[u8]>,
    ) -> PluginResult<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let output = self.output(cwd, args, input)?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(self.failure(&output))
        }
    }

    /// Runs the program and hands back the raw output whatever the exit status, for callers
    /// where a non-zero exit is an answer ("no such session") rather than a failure.
    pub fn output<I, S>(
        &self,
        cwd: Option<&Path>,
        args: I,
        input: Option<&[u8]>,
    ) -> PluginResult<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(args);
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        command
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| self.spawn_error(e))?;
        if let Some(bytes) = input {
            let mut stdin = child.stdin.take().expect("stdin was piped");
            stdin.write_all(bytes).map_err(|e| {
                PluginError::failed(format!("writing to `{}`'s stdin: {e}", self.name))
            })?;
        }
        child
            .wait_with_output()
            .map_err(|e| PluginError::failed(format!("waiting for `{}`: {e}", self.name)))
    }

    /// The error for a program that could not be started.
    pub fn spawn_error(&self, error: std::io::Error) -> PluginError {
        if error.kind() == std::io::ErrorKind::NotFound {
            PluginError::unavailable(format!(
                "`{}` not found on PATH: install it ({})",
                self.name, self.install_hint
            ))
        } else {
            PluginError::failed(format!("cannot run `{}`: {error}", self.name))
        }
    }

    /// The error for a run that exited non-zero.
    pub fn failure(&self, output: &Output) -> PluginError {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let detail = stderr.trim();
        let detail = if detail.is_empty() {
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        } else {
            detail.to_string()
        };
        PluginError::failed(format!(
            "`{}` failed ({}): {detail}",
            self.name, output.status
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PluginErrorKind;

    #[test]
    fn a_missing_program_is_unavailable_with_the_install_hint() {
        let program = Program::new("ao-no-such-program-xyz", "apt-get install xyz");
        let err = program.run(None, ["--version"]).unwrap_err();
        assert_eq!(err.kind, PluginErrorKind::Unavailable);
        assert_eq!(
            err.message(),
            "`ao-no-such-program-xyz` not found on PATH: install it (apt-get install xyz)"
        );
    }

    #[test]
    fn a_failing_program_reports_its_stderr_and_input_reaches_stdin() {
        let sh = Program::new("sh", "a POSIX shell");
        let err = sh.run(None, ["-c", "echo nope >&2; exit 4"]).unwrap_err();
        assert_eq!(err.kind, PluginErrorKind::Failed);
        assert!(err.message().contains("nope"), "{err}");
        let echoed = sh
            .run_with_input(None, ["-c", "cat"], Some("a\n$(b)\n".as_bytes()))
            .unwrap();
        assert_eq!(echoed, "a\n$(b)\n");
    }
}
