//! What the fake agent writes into its folder, for tests and the kit to read back.
//!
//! - `start.json`: `{"argv": [...], "cwd": "...", "env": {...}}`, of the latest start (a restored
//!   session starts again), written whole at once;
//! - `inherited`: the descriptors beyond 0, 1 and 2 it found open at start, `N -> target` a line;
//! - `pid`: its process id, written last at start (once it is there, the rest is);
//! - `received`: every byte it read, byte-exact, appended as it comes;
//! - `messages.jsonl`: one JSON string per message it took (the Claude Code stand-in only).

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
};

/// The start record's file.
pub(crate) const START_FILE: &str = "start.json";
/// The file of every byte received.
pub(crate) const RECEIVED_FILE: &str = "received";
/// The file of inherited descriptors.
pub(crate) const INHERITED_FILE: &str = "inherited";
/// The process id's file.
pub(crate) const PID_FILE: &str = "pid";
/// The file of messages taken.
pub(crate) const MESSAGES_FILE: &str = "messages.jsonl";

/// The fake agent's folder, or nothing recorded when it has none.
pub(crate) struct Record {
    dir: Option<PathBuf>,
    received: Option<File>,
}

impl Record {
    /// Records into `dir` (made if missing); nothing when `None`.
    pub(crate) fn new(dir: Option<PathBuf>) -> std::io::Result<Self> {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Self {
            dir,
            received: None,
        })
    }

    /// The folder, if any.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Records the start: what it inherited, its argv, folder and environment, then its pid.
    pub(crate) fn started(&self, argv: &[String]) -> std::io::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        std::fs::write(dir.join(INHERITED_FILE), inherited_descriptors())?;
        let env: serde_json::Map<String, serde_json::Value> = std::env::vars_os()
            .map(|(name, value)| {
                (
                    name.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned().into(),
                )
            })
            .collect();
        let cwd = std::env::current_dir()?;
        let start = serde_json::json!({
            "argv": argv,
            "cwd": cwd.to_string_lossy(),
            "env": env,
        });
        write_whole(&dir.join(START_FILE), start.to_string().as_bytes())?;
        std::fs::write(dir.join(PID_FILE), std::process::id().to_string())
    }

    /// Appends bytes read, as read.
    pub(crate) fn received(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        if self.received.is_none() {
            self.received = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(RECEIVED_FILE))?,
            );
        }
        let file = self.received.as_mut().expect("opened above");
        file.write_all(bytes)?;
        file.flush()
    }

    /// Appends one message taken, as a JSON string on a line of its own.
    pub(crate) fn message(&self, text: &str) -> std::io::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let mut line = serde_json::Value::from(text).to_string();
        line.push('\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(MESSAGES_FILE))?
            .write_all(line.as_bytes())
    }
}

/// Writes `path` through a temporary file renamed over it: a reader sees all of it or none.
fn write_whole(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temp, contents)?;
    std::fs::rename(&temp, path)
}

/// The descriptors beyond 0, 1 and 2 open in this process, one `N -> target` per line: what it
/// inherited from whoever started it, when called first thing.
pub(crate) fn inherited_descriptors() -> String {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return String::new();
    };
    let mut lines: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let fd: u32 = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            // The listing's own descriptor is `/proc/self/fd` itself (or gone already).
            (fd > 2 && !target.starts_with("/proc"))
                .then(|| format!("{fd} -> {}", target.display()))
        })
        .collect();
    lines.sort();
    lines.join("\n")
}
