//! The fake agent's terminal: raw mode, what it draws, and what it reads, with a hangup
//! (SIGHUP, or the terminal gone) told apart from the input ending.

use std::{
    io::Write,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::atomic::{AtomicI32, Ordering},
    time::Duration,
};

/// Bracketed paste on, as agent TUIs turn it on.
pub(crate) const BRACKETED_PASTE_ON: &str = "\x1b[?2004h";

/// Puts the terminal on stdin, if any, in raw mode (so it changes no byte on the way); says
/// whether it did.
pub(crate) fn make_raw() -> bool {
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

/// Writes `text` to stdout, each `\n` as `\r\n` (a raw terminal does not add the return).
pub(crate) fn draw(text: &str) {
    let mut out = std::io::stdout().lock();
    // A terminal gone is seen on the input side, as a hangup.
    let _ = out.write_all(text.replace('\n', "\r\n").as_bytes());
    let _ = out.flush();
}

/// What waiting for input gave.
pub(crate) enum Input {
    /// Bytes as read, in one chunk.
    Bytes(Vec<u8>),
    /// The timeout passed first.
    Quiet,
    /// SIGHUP: the terminal was closed (a killed tmux session, say).
    Hangup,
    /// The input ended, or can no longer be read.
    Ended,
}

/// Where the SIGHUP handler writes: the write end of the hangup pipe.
static HANGUP_WRITER: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_hangup(_: libc::c_int) {
    let fd = HANGUP_WRITER.load(Ordering::Relaxed);
    // SAFETY: write(2) is async-signal-safe; the byte only wakes the reader.
    unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
}

/// Stdin, read chunk by chunk, with SIGHUP turned into an [`Input::Hangup`] through a pipe (a
/// flag would be missed by a signal arriving just before the wait).
pub(crate) struct Reader {
    hangup: OwnedFd,
    _hangup_writer: OwnedFd,
}

impl Reader {
    /// Catches SIGHUP from now on. Make it after recording the descriptors the agent inherited:
    /// its pipe is its own.
    pub(crate) fn new() -> std::io::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two descriptors, owned from here on.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just made and are owned by nothing else.
        let (hangup, writer) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        HANGUP_WRITER.store(writer.as_raw_fd(), Ordering::Relaxed);
        // SAFETY: a handler that only writes to the pipe, installed with an empty mask.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_hangup as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGHUP, &action, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Self {
            hangup,
            _hangup_writer: writer,
        })
    }

    /// Waits for input up to `timeout` (for ever when `None`).
    pub(crate) fn next(&mut self, timeout: Option<Duration>) -> Input {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            let wait_ms = match deadline {
                None => -1,
                Some(deadline) => deadline
                    .saturating_duration_since(std::time::Instant::now())
                    .as_millis()
                    .try_into()
                    .unwrap_or(i32::MAX),
            };
            let mut fds = [
                libc::pollfd {
                    fd: 0,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.hangup.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: poll on two descriptors of a local array.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, wait_ms) };
            if ready < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Input::Ended;
            }
            if fds[1].revents != 0 {
                return Input::Hangup;
            }
            if ready == 0 {
                return Input::Quiet;
            }
            let mut buffer = vec![0u8; 65536];
            // SAFETY: read into a buffer of the length given.
            let read = unsafe { libc::read(0, buffer.as_mut_ptr().cast(), buffer.len()) };
            match read {
                n if n > 0 => {
                    buffer.truncate(n as usize);
                    return Input::Bytes(buffer);
                }
                n if n < 0
                    && std::io::Error::last_os_error().kind()
                        == std::io::ErrorKind::Interrupted =>
                {
                    continue
                }
                // The terminal closing raises SIGHUP as the read fails: its handler has run.
                _ if self.hung_up() => return Input::Hangup,
                _ => return Input::Ended,
            }
        }
    }

    /// Whether SIGHUP came, without waiting.
    fn hung_up(&self) -> bool {
        let mut byte = [0u8; 1];
        // SAFETY: a non-blocking read of one byte into a local buffer.
        unsafe { libc::read(self.hangup.as_raw_fd(), byte.as_mut_ptr().cast(), 1) == 1 }
    }
}
