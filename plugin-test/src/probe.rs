//! The probe agent: what the conformance kit runs in a runtime instead of a coding agent, the
//! [fake agent](crate::fake_agent) without its Claude Code screen.
//!
//! It records every byte it receives, byte-exact, so the kit can tell whether a runtime
//! delivered a message intact. In a terminal it switches it to raw mode (so the terminal
//! changes nothing on the way) and turns on bracketed paste, as agent TUIs do. It writes its
//! process id at start, so the kit can tell whether a runtime left it running.

use std::path::{Path, PathBuf};

use crate::fake_agent::{
    record::{inherited_descriptors, Record, INHERITED_FILE, PID_FILE, RECEIVED_FILE, START_FILE},
    terminal::{self, Input},
};

/// What the probe draws once it is ready; the kit looks for it on the screen.
pub const READY_LINE: &str = "ao-probe ready";

/// The files one probe keeps in its folder.
pub struct ProbeFiles {
    /// The probe's folder: its pid, what it received, what it inherited.
    pub dir: PathBuf,
}

impl ProbeFiles {
    /// The files of the probe kept in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join(PID_FILE)
    }

    fn received_file(&self) -> PathBuf {
        self.dir.join(RECEIVED_FILE)
    }

    fn inherited_file(&self) -> PathBuf {
        self.dir.join(INHERITED_FILE)
    }

    /// The probe's environment at start, `NAME=VALUE` each; empty until it wrote it.
    pub fn environment(&self) -> Vec<String> {
        let start: serde_json::Value = std::fs::read(self.dir.join(START_FILE))
            .ok()
            .and_then(|text| serde_json::from_slice(&text).ok())
            .unwrap_or_default();
        start["env"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, value)| format!("{name}={}", value.as_str().unwrap_or_default()))
            .collect()
    }

    /// The descriptors beyond stdin, stdout and stderr the probe found open at start, one
    /// `N -> target` per line.
    pub fn inherited(&self) -> String {
        std::fs::read_to_string(self.inherited_file()).unwrap_or_default()
    }

    /// Every byte received so far.
    pub fn received(&self) -> Vec<u8> {
        std::fs::read(self.received_file()).unwrap_or_default()
    }

    /// The probe's process id, once it has started.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the probe process is running. A zombie counts as gone: the process runtime's
    /// children are the kit's own, reaped whenever the plugin gets to it.
    pub fn running(&self) -> bool {
        let Some(pid) = self.pid() else {
            return false;
        };
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !matches!(
                stat.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().chars().next()),
                Some(Some('Z' | 'X'))
            ),
            Err(_) if Path::new("/proc/self").exists() => false,
            // SAFETY: signal 0 only asks whether the process exists.
            Err(_) => unsafe { libc::kill(pid as libc::pid_t, 0) == 0 },
        }
    }
}

/// Runs the probe until its input ends or its terminal hangs up. It records what it can; an
/// error is one it could not record.
pub fn run(dir: &Path) -> std::io::Result<()> {
    let mut record = Record::new(Some(dir.to_path_buf()))?;
    let raw = terminal::make_raw();
    terminal::draw(&format!(
        "{}{READY_LINE} (raw terminal: {raw})\n",
        terminal::BRACKETED_PASTE_ON
    ));
    let argv: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    record.started(&argv)?;
    let mut reader = terminal::Reader::new()?;
    let mut total = 0usize;
    loop {
        match reader.next(None) {
            Input::Bytes(bytes) => {
                record.received(&bytes)?;
                total += bytes.len();
                terminal::draw(&format!("received {total} bytes\n"));
            }
            Input::Quiet => {}
            Input::Hangup | Input::Ended => return Ok(()),
        }
    }
}

/// What the descriptors beyond 0, 1 and 2 open in this process point at (`pipe:[N]`, a path).
pub fn open_descriptors() -> Vec<String> {
    inherited_descriptors()
        .lines()
        .filter_map(|line| {
            line.split_once(" -> ")
                .map(|(_, target)| target.to_string())
        })
        .collect()
}
