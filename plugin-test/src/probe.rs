//! The probe agent: what the conformance kit runs in a runtime instead of a coding agent.
//!
//! It records every byte it receives, byte-exact, so the kit can tell whether a runtime
//! delivered a message intact. In a terminal it switches it to raw mode (so the terminal
//! changes nothing on the way) and turns on bracketed paste, as agent TUIs do. It writes its
//! process id at start, so the kit can tell whether a runtime left it running.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
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
        self.dir.join("pid")
    }

    fn received_file(&self) -> PathBuf {
        self.dir.join("received")
    }

    fn inherited_file(&self) -> PathBuf {
        self.dir.join("inherited")
    }

    fn environment_file(&self) -> PathBuf {
        self.dir.join("environment")
    }

    /// The probe's environment at start, `NAME=VALUE` each; empty until it wrote it.
    pub fn environment(&self) -> Vec<String> {
        std::fs::read(self.environment_file())
            .unwrap_or_default()
            .split(|&b| b == 0)
            .filter(|entry| !entry.is_empty())
            .map(|entry| String::from_utf8_lossy(entry).into_owned())
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

/// Runs the probe until its input ends. Never returns an error to a runtime: it records what
/// it can.
pub fn run(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let files = ProbeFiles::new(dir);
    let raw = make_terminal_raw();
    let mut out = std::io::stdout();
    // Bracketed paste on; then the ready line.
    write!(out, "\x1b[?2004h{READY_LINE} (raw terminal: {raw})\r\n")?;
    out.flush()?;
    std::fs::write(files.inherited_file(), inherited_descriptors())?;
    let mut environment = Vec::new();
    for (name, value) in std::env::vars_os() {
        environment.extend_from_slice(name.as_encoded_bytes());
        environment.push(b'=');
        environment.extend_from_slice(value.as_encoded_bytes());
        environment.push(0);
    }
    std::fs::write(files.environment_file(), environment)?;
    std::fs::write(files.pid_file(), std::process::id().to_string())?;
    let mut received = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(files.received_file())?;
    let mut stdin = std::io::stdin().lock();
    let mut buffer = [0u8; 65536];
    let mut total = 0usize;
    loop {
        let n = match stdin.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        received.write_all(&buffer[..n])?;
        received.flush()?;
        total += n;
        write!(out, "received {total} bytes\r\n")?;
        out.flush()?;
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

/// The descriptors beyond 0, 1 and 2 open in this process, one `N -> target` per line: what it
/// inherited from whoever started it.
fn inherited_descriptors() -> String {
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

/// Puts the terminal on stdin, if any, in raw mode; says whether it did.
fn make_terminal_raw() -> bool {
    // SAFETY: tcgetattr/tcsetattr on fd 0 with a struct they fill; failure leaves it as it was.
    unsafe {
        let mut mode: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut mode) != 0 {
            return false;
        }
        libc::cfmakeraw(&mut mode);
        libc::tcsetattr(0, libc::TCSANOW, &mode) == 0
    }
}
