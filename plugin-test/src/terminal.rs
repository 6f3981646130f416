//! Running a program under a pseudo-terminal of the kit's own, as an operator's terminal runs
//! `attach_command` and as a runtime runs an agent CLI: what it draws is read back as text.

use std::{
    fs::File,
    io::Read,
    os::{
        fd::{FromRawFd, OwnedFd},
        unix::process::CommandExt,
    },
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// A program running under a pseudo-terminal; stopped (its whole process group) when dropped.
pub(crate) struct Terminal {
    child: Child,
    drawn: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    /// Starts `argv` in `cwd` on a new 80×24 pseudo-terminal, with `env` added to this
    /// process's environment.
    pub(crate) fn start(
        argv: &[String],
        cwd: &std::path::Path,
        env: &[(String, String)],
    ) -> Result<Self, String> {
        let (program, args) = argv.split_first().ok_or("an empty argv")?;
        let (primary, secondary) = open_pair().map_err(|e| format!("opening a pty: {e}"))?;
        let stdio = |fd: &OwnedFd| {
            fd.try_clone()
                .map(Stdio::from)
                .map_err(|e| format!("sharing the pty: {e}"))
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(cwd)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("TERM", "xterm-256color")
            .stdin(stdio(&secondary)?)
            .stdout(stdio(&secondary)?)
            .stderr(stdio(&secondary)?);
        // SAFETY: setsid and ioctl are async-signal-safe; they make the pty the child's
        // controlling terminal, as a terminal emulator does.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start `{program}`: {e}"))?;
        drop(secondary);
        let drawn = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&drawn);
        let mut reader = File::from(primary);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16384];
            // Ends with EIO once every holder of the secondary side is gone.
            while let Ok(n @ 1..) = reader.read(&mut buffer) {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buffer[..n]);
            }
        });
        Ok(Self { child, drawn })
    }

    /// What the program drew so far, as plain text (escape sequences left out).
    pub(crate) fn text(&self) -> String {
        plain_text(&self.drawn.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether the program is still running.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls `condition` on the drawn text every 50 ms until it holds, the program ends, or
    /// `limit` passes; whether it held.
    pub(crate) fn wait_for(
        &mut self,
        limit: Duration,
        mut condition: impl FnMut(&str) -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if condition(&self.text()) {
                return true;
            }
            if Instant::now() >= deadline || !self.running() {
                return condition(&self.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // SAFETY: the child leads a process group of its own (setsid).
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pseudo-terminal pair (primary, secondary), close-on-exec, 80 columns by 24 lines.
fn open_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let failed = || std::io::Error::last_os_error();
    // SAFETY: the posix_openpt family on a descriptor this function owns; the name is copied
    // before anything else could call ptsname.
    unsafe {
        let primary = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if primary < 0 {
            return Err(failed());
        }
        let primary = OwnedFd::from_raw_fd(primary);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&primary);
        if libc::grantpt(fd) != 0 || libc::unlockpt(fd) != 0 {
            return Err(failed());
        }
        let name = libc::ptsname(fd);
        if name.is_null() {
            return Err(failed());
        }
        let name = std::ffi::CStr::from_ptr(name).to_owned();
        let size = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        libc::ioctl(fd, libc::TIOCSWINSZ as _, &size);
        let secondary = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if secondary < 0 {
            return Err(failed());
        }
        Ok((primary, OwnedFd::from_raw_fd(secondary)))
    }
}

/// The last `count` characters of `text`, for a report.
pub(crate) fn last_chars(text: &str, count: usize) -> String {
    let skip = text.chars().count().saturating_sub(count);
    text.chars().skip(skip).collect()
}

/// `bytes` a terminal was sent, as the text it shows: escape sequences (CSI, OSC and the
/// two-byte ones) and control characters other than newline and tab left out.
pub(crate) fn plain_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut shown = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\n' | '\t' => shown.push(c),
            c if c.is_control() => {}
            c => shown.push(c),
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_left_out() {
        let drawn = b"\x1b[?2004h\x1b]0;title\x07ready\r\n\x1b[31mred\x1b[0m$ ";
        assert_eq!(plain_text(drawn), "ready\nred$ ");
    }

    #[test]
    fn a_program_under_the_terminal_sees_a_terminal() {
        // It stays until killed: output of a program that already exited can be lost with its
        // terminal's last close.
        let argv = [
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo on-a-tty && sleep 60",
        ]
        .map(String::from);
        let mut terminal = Terminal::start(&argv, std::path::Path::new("/"), &[]).unwrap();
        assert!(terminal.wait_for(Duration::from_secs(10), |text| text.contains("on-a-tty")));
    }
}
