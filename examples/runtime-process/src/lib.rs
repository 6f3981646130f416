//! Runtime plugin `process`: the agent runs as a plain child process, for machines without
//! tmux. Written as a third party would, against `ao-plugin-api` alone.
//!
//! Every `ao-host` command is a new process, so a session's state lives on disk, under
//! `<data_dir>/process-runtime/<session>/`:
//! - `pid`: the agent's process id (also its process group: it leads a group of its own);
//! - `output.log`: everything it writes to stdout and stderr;
//! - `input`: a FIFO that is the agent's stdin. The agent holds it open for reading *and*
//!   writing, so it never sees end-of-file between messages, and any later `ao-host` process
//!   can write a message into it.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use ao_plugin_api::{
    abi_stable::std_types::RString, export_plugins, PluginContext, PluginError, PluginResult,
    Runtime, RuntimeCreateRequest,
};
use ao_plugin_kit::prelude::*;
use ao_plugin_kit::{program, program::Program, validate::validate_id};
use serde::Deserialize;

export_plugins! {
    runtime "process" => ProcessRuntime,
}

/// How much of the end of the log `capture_output` reads.
const CAPTURE_BYTES: u64 = 256 * 1024;
/// How long a message may take to go into an agent that reads slowly.
const WRITE_PATIENCE: Duration = Duration::from_secs(10);
/// How long `destroy` waits after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Opening a FIFO for writing blocks while nobody reads it (the agent died); O_NONBLOCK makes
/// that an error instead.
#[cfg(target_os = "linux")]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(not(target_os = "linux"))]
const O_NONBLOCK: i32 = 0x0004;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Where session folders go; default `<data_dir>/process-runtime`.
    root: Option<String>,
}

pub struct ProcessRuntime {
    root: PathBuf,
    kill: Program,
    ps: Program,
    mkfifo: Program,
}

impl ProcessRuntime {
    /// Starts the agent as this process's child, with `request.env` added to this process's
    /// environment, or (`exact`) as its whole environment.
    fn launch(&self, request: &RuntimeCreateRequest, exact: bool) -> PluginResult<String> {
        let id = request.session_id.as_str();
        let dir = self.dir(id)?;
        request.existing_cwd()?;
        let (program, args) = request
            .launch_command
            .split_first()
            .ok_or_else(|| PluginError::invalid_input("empty launch command"))?;
        std::fs::create_dir_all(&self.root)
            .map_err(|e| PluginError::failed(format!("creating {}: {e}", self.root.display())))?;
        std::fs::create_dir(&dir).map_err(|e| {
            PluginError::invalid_input(format!(
                "session folder {} exists or cannot be made: {e}",
                dir.display()
            ))
        })?;
        let started = (|| {
            let fifo = dir.join("input");
            self.mkfifo.run(None, [fifo.as_os_str()])?;
            let stdin = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&fifo)
                .map_err(|e| PluginError::failed(format!("opening {}: {e}", fifo.display())))?;
            let log_path = dir.join("output.log");
            let log = File::create(&log_path).map_err(|e| {
                PluginError::failed(format!("creating {}: {e}", log_path.display()))
            })?;
            let log_err = log
                .try_clone()
                .map_err(|e| PluginError::failed(format!("{}: {e}", log_path.display())))?;
            let mut command = Command::new(program.as_str());
            if exact {
                command.env_clear();
            }
            command
                .args(args.iter().map(RString::as_str))
                .current_dir(request.cwd.as_str())
                .envs(
                    request
                        .env
                        .iter()
                        .map(|v| (v.name.as_str(), v.value.as_str())),
                )
                .stdin(Stdio::from(stdin))
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(log_err));
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let mut child = command.spawn().map_err(|e| {
                Program::new(program.as_str(), "check the agent's `command`").spawn_error(e)
            })?;
            std::fs::write(dir.join("pid"), child.id().to_string())
                .map_err(|e| PluginError::failed(format!("writing pid: {e}")))?;
            // Reap the child if it exits while this process still runs; once this process
            // exits, init does.
            std::thread::spawn(move || child.wait());
            Ok(())
        })();
        if let Err(error) = started {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(error);
        }
        Ok(id.to_string())
    }

    fn dir(&self, handle: &str) -> PluginResult<PathBuf> {
        validate_id("session", handle)?;
        Ok(self.root.join(handle))
    }

    fn pid(&self, handle: &str) -> PluginResult<Option<u32>> {
        let path = self.dir(handle)?.join("pid");
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map(Some).map_err(|_| {
                PluginError::failed(format!("{} does not hold a process id", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PluginError::failed(format!(
                "reading {}: {e}",
                path.display()
            ))),
        }
    }

    /// Alive means running: a zombie (exited, not yet reaped) is not.
    fn running(&self, pid: u32) -> PluginResult<bool> {
        let output = self
            .ps
            .output(None, ["-o", "stat=", "-p", &pid.to_string()], None)?;
        let state = String::from_utf8_lossy(&output.stdout);
        Ok(output.status.success() && !state.trim().is_empty() && !state.trim().starts_with('Z'))
    }

    fn signal_group(&self, pid: u32, signal: &str) {
        let _ = self
            .kill
            .output(None, [signal, "--", &format!("-{pid}")], None);
    }

    fn write_input(&self, handle: &str, bytes: &[u8]) -> PluginResult<()> {
        let fifo = self.dir(handle)?.join("input");
        let mut input = OpenOptions::new()
            .write(true)
            .custom_flags(O_NONBLOCK)
            .open(&fifo)
            .map_err(|e| {
                PluginError::not_found(format!("session `{handle}` takes no input ({e})"))
            })?;
        // Non-blocking (see O_NONBLOCK): a message larger than the pipe's buffer goes in as the
        // agent reads it, within a bound, instead of failing half-written.
        let deadline = Instant::now() + WRITE_PATIENCE;
        let mut rest = bytes;
        while !rest.is_empty() {
            match input.write(rest) {
                Ok(written) => rest = &rest[written..],
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    return Err(PluginError::failed(format!(
                        "writing to session `{handle}` ({} of {} bytes written): {e}",
                        bytes.len() - rest.len(),
                        bytes.len()
                    )))
                }
            }
        }
        Ok(())
    }
}

use std::os::unix::fs::OpenOptionsExt;

impl Runtime for ProcessRuntime {
    fn new(context: &PluginContext) -> PluginResult<Self> {
        let settings: Settings = context.parse_config()?;
        let root = match settings.root {
            Some(root) => PathBuf::from(root),
            None => Path::new(context.data_dir.as_str()).join("process-runtime"),
        };
        Ok(Self {
            root,
            kill: Program::new("kill", "it comes with every Unix (procps / coreutils)"),
            ps: Program::new("ps", "e.g. `apt-get install procps`"),
            mkfifo: Program::new("mkfifo", "e.g. `apt-get install coreutils`"),
        })
    }

    fn create(&self, request: &RuntimeCreateRequest) -> PluginResult<String> {
        self.launch(request, false)
    }

    /// The agent is this process's child: its environment is exactly the request's, with no
    /// command line or file involved.
    fn start(&self, request: &RuntimeCreateRequest) -> PluginResult<String> {
        self.launch(request, true)
    }

    /// Writes the text and a newline to the agent's stdin: a line-reading agent gets each line
    /// of a multi-line message as a line.
    fn send_message(&self, handle: &str, text: &str) -> PluginResult<()> {
        if !self.is_alive(handle)? {
            return Err(PluginError::not_found(format!(
                "session `{handle}` is not running"
            )));
        }
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(b'\n');
        self.write_input(handle, &bytes)
    }

    fn send_keys(&self, handle: &str, keys: &[RString]) -> PluginResult<()> {
        for key in keys {
            match key.as_str() {
                "C-c" => {
                    if let Some(pid) = self.pid(handle)? {
                        self.signal_group(pid, "-INT");
                    }
                }
                "Enter" => self.write_input(handle, b"\n")?,
                "Escape" => self.write_input(handle, b"\x1b")?,
                "Up" => self.write_input(handle, b"\x1b[A")?,
                "Down" => self.write_input(handle, b"\x1b[B")?,
                literal => self.write_input(handle, literal.as_bytes())?,
            }
        }
        Ok(())
    }

    fn capture_output(&self, handle: &str, lines: u32) -> PluginResult<String> {
        let path = self.dir(handle)?.join("output.log");
        let mut file = File::open(&path)
            .map_err(|e| PluginError::not_found(format!("session `{handle}`: {e}")))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let from = len.saturating_sub(CAPTURE_BYTES);
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(from))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| PluginError::failed(format!("reading {}: {e}", path.display())))?;
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        Ok(all[all.len().saturating_sub(lines as usize)..].join("\n"))
    }

    fn is_alive(&self, handle: &str) -> PluginResult<bool> {
        match self.pid(handle)? {
            Some(pid) => self.running(pid),
            None => Ok(false),
        }
    }

    fn destroy(&self, handle: &str) -> PluginResult<()> {
        let dir = self.dir(handle)?;
        if let Some(pid) = self.pid(handle)? {
            // The agent is the leader of its own group (`process_group(0)` at create).
            program::stop_process_group(pid, TERM_GRACE);
        }
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PluginError::failed(
                format!("removing {}: {e}", dir.display()),
            )),
            _ => Ok(()),
        }
    }

    fn attach_command(&self, handle: &str) -> PluginResult<Vec<String>> {
        let log = self.dir(handle)?.join("output.log");
        Ok(vec![
            "tail".into(),
            "-n".into(),
            "+1".into(),
            "-f".into(),
            log.display().to_string(),
        ])
    }

    fn alive_handles(&self) -> PluginResult<Vec<String>> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(Vec::new());
        };
        let mut alive = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if validate_id("session", &name).is_ok() && self.is_alive(&name)? {
                alive.push(name);
            }
        }
        Ok(alive)
    }
}
