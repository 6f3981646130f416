//! CLI manners: the host's output has a channel of its own that plugin code cannot write to,
//! a closed stdout (`ao-host … | head -1`) never changes the command's verdict, what reaches the
//! terminal is escaped, slow steps show a spinner on stderr only when someone is watching, and
//! the process ends once its output is out, without running plugin code on the way.

use std::{
    borrow::Cow,
    fmt::Write as _,
    fs::File,
    io::{self, IsTerminal, Write},
    os::fd::{AsRawFd, FromRawFd},
    process::ExitCode,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, Mutex, OnceLock, PoisonError,
    },
    thread,
    time::Duration,
};

use anyhow::{Context, Result};

/// Writes one line of the host's output and returns from the enclosing function with the error
/// when that fails.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::cli::output::write_stdout(b"\n")?
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format!("{}\n", format_args!($($arg)*)).as_bytes())?
    };
}

/// The host's own stdout: a private, close-on-exec copy of descriptor 1 as the process got it.
static OUTPUT: OnceLock<Mutex<File>> = OnceLock::new();

/// Set once a write found that nobody reads stdout any more; later output is dropped.
static READER_GONE: AtomicBool = AtomicBool::new(false);

/// Moves the host's output off descriptor 1, which then points at stderr for the rest of the
/// process. In-process plugin code runs concurrently with the host's own work, so only a
/// descriptor it never writes to keeps `--json` one document whatever a plugin prints (and
/// whatever the programs it starts without redirecting their output print). Call it before any
/// other thread exists.
pub fn take_stdout() -> io::Result<()> {
    // SAFETY: fcntl/open/dup2 on this process's own standard descriptors, on its only thread.
    unsafe {
        let copy = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
        if copy >= 0 {
            let _ = OUTPUT.set(Mutex::new(File::from_raw_fd(copy)));
        }
        // Even with stdout closed, descriptor 1 must not stay free: the next file ao-host
        // opens would get it, and a plugin's prints would land in that file.
        if libc::dup2(2, 1) < 0 {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if null < 0 || libc::dup2(null, 1) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::close(null);
        }
    }
    Ok(())
}

/// Points descriptor 1 back at the host's stdout, for a program that replaces this process
/// (`attach`'s exec): it is the user's terminal that program must talk to.
pub fn give_back_stdout() -> io::Result<()> {
    let Some(output) = OUTPUT.get() else {
        return Ok(());
    };
    let file = output.lock().unwrap_or_else(PoisonError::into_inner);
    // SAFETY: dup2 of a descriptor this process owns onto its own descriptor 1.
    if unsafe { libc::dup2(file.as_raw_fd(), 1) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes `bytes` to the host's stdout (see [`take_stdout`]). Once the reader has gone
/// (`… | head -1`), the rest is dropped without an error: the command still finishes and its
/// exit status is its own verdict, never "success" because the pipe closed.
pub fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    if READER_GONE.load(Ordering::Relaxed) {
        return Ok(());
    }
    let written = match OUTPUT.get() {
        Some(output) => {
            let mut file = output.lock().unwrap_or_else(PoisonError::into_inner);
            file.write_all(bytes)
        }
        None => {
            let mut out = io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
    };
    match written {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
            READER_GONE.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}

/// Prints one JSON document on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("encoding JSON output")?;
    text.push('\n');
    write_stdout(text.as_bytes())?;
    Ok(())
}

/// Ends the process with `code` once everything written is out, without running `atexit`
/// handlers: those of a plugin library run after the command has done its work and said so,
/// and one that hangs or crashes there would hang the command or change its exit status. The
/// host's own clean-up is done by then (its output is unbuffered, logs go straight to stderr).
pub fn exit(code: ExitCode) -> ! {
    let status = (0..=u8::MAX)
        .find(|&n| ExitCode::from(n) == code)
        .map_or(1, i32::from);
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: ends the process; nothing of it is used afterwards.
    unsafe { libc::_exit(status) }
}

/// Writes one line to stderr, ignoring failure: a message for the operator must never turn a
/// command that did its work into a crash (the terminal of a session that killed itself is
/// gone by the time it would say "killed").
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// `text` with every character that could drive the terminal shown as a visible escape: C0
/// controls (ESC as `\e`, tab, newline), DEL, C1 controls (`\u{9b}` is a one-byte CSI) and the
/// bidi controls that reorder what is shown. Tasks, branches and plugin messages are someone
/// else's text: `\e[2J` or an OSC title in a task must not reach the terminal raw.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\x1b' => safe.push_str("\\e"),
            '\t' => safe.push_str("\\t"),
            '\n' => safe.push_str("\\n"),
            '\r' => safe.push_str("\\r"),
            c if is_unsafe(c) => {
                let _ = write!(safe, "\\u{{{:x}}}", u32::from(c));
            }
            c => safe.push(c),
        }
    }
    Cow::Owned(safe)
}

fn is_unsafe(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Braille spinner frames, one per redraw.
const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// About ten redraws a second.
const FRAME_INTERVAL: Duration = Duration::from_millis(100);
/// Longer phases are cut so that the line never wraps (`\r` only returns to the last line).
const MAX_PHASE_CHARS: usize = 60;

/// `⠋ phase` redrawn on stderr while a slow step runs, the line cleared when dropped. Writes
/// nothing at all when stderr is not a terminal, so logs and pipes stay clean.
pub struct Spinner {
    running: Option<Running>,
}

struct Running {
    phase: Arc<Mutex<String>>,
    /// Dropping it tells the drawing thread to clear the line and stop.
    stop: mpsc::Sender<()>,
    thread: thread::JoinHandle<()>,
}

impl Spinner {
    pub fn start(phase: &str) -> Self {
        let stderr = io::stderr();
        let terminal = stderr.is_terminal();
        Self::start_on(stderr, terminal, phase)
    }

    fn start_on(out: impl Write + Send + 'static, terminal: bool, phase: &str) -> Self {
        if !terminal {
            return Self { running: None };
        }
        let phase = Arc::new(Mutex::new(phase.to_string()));
        let (stop, stopped) = mpsc::channel();
        let shown = Arc::clone(&phase);
        // Without a thread there is no spinner, and nothing else changes.
        let running = thread::Builder::new()
            .name("spinner".into())
            .spawn(move || draw(out, &shown, &stopped))
            .ok()
            .map(|thread| Running {
                phase,
                stop,
                thread,
            });
        Self { running }
    }

    pub fn set_phase(&self, phase: &str) {
        if let Some(running) = &self.running {
            *running.phase.lock().unwrap_or_else(PoisonError::into_inner) = phase.to_string();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(Running { stop, thread, .. }) = self.running.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

/// Redraws until `stopped` disconnects, then clears the line. Write errors are ignored: a
/// spinner that cannot be drawn must not fail the command.
fn draw(mut out: impl Write, phase: &Mutex<String>, stopped: &mpsc::Receiver<()>) {
    const CLEAR_LINE: &str = "\r\x1b[2K";
    for frame in FRAMES.iter().cycle() {
        let text: String = {
            let phase = phase.lock().unwrap_or_else(PoisonError::into_inner);
            phase.chars().take(MAX_PHASE_CHARS).collect()
        };
        let _ = write!(out, "{CLEAR_LINE}{frame} {}", terminal_safe(&text));
        let _ = out.flush();
        if !matches!(
            stopped.recv_timeout(FRAME_INTERVAL),
            Err(mpsc::RecvTimeoutError::Timeout)
        ) {
            break;
        }
    }
    let _ = write!(out, "{CLEAR_LINE}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn terminal_controls_are_shown_not_obeyed() {
        assert!(matches!(terminal_safe("fix the bug ✓ é"), Cow::Borrowed(_)));
        assert_eq!(terminal_safe("\x1b[2Jgone"), "\\e[2Jgone");
        assert_eq!(terminal_safe("\x1b]0;title\x07"), "\\e]0;title\\u{7}");
        assert_eq!(terminal_safe("a\tb\nc\rd\0"), "a\\tb\\nc\\rd\\u{0}");
        assert_eq!(
            terminal_safe("\x7f \u{9b}2J \u{80}"),
            "\\u{7f} \\u{9b}2J \\u{80}"
        );
        assert_eq!(
            terminal_safe("\u{202e}txt.exe\u{2066}\u{2069}"),
            "\\u{202e}txt.exe\\u{2066}\\u{2069}"
        );
        // Neighbours of the ranges are ordinary text.
        assert!(matches!(
            terminal_safe("\u{a0}\u{2029}\u{202f}\u{2065}\u{206a}"),
            Cow::Borrowed(_)
        ));
    }

    /// A writer whose output the test can read while the spinner thread holds a clone.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn a_spinner_writes_nothing_when_stderr_is_not_a_terminal() {
        let out = Shared::default();
        let spinner = Spinner::start_on(out.clone(), false, "loading");
        spinner.set_phase("still loading");
        drop(spinner);
        assert_eq!(out.text(), "");
    }

    #[test]
    fn a_spinner_shows_each_phase_and_clears_its_line() {
        let out = Shared::default();
        let spinner = Spinner::start_on(out.clone(), true, "loading \x1b[2J");
        spinner.set_phase("starting the agent");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !out.text().contains("starting the agent") && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        drop(spinner);
        let text = out.text();
        assert!(text.contains(" starting the agent"), "{text:?}");
        assert!(!text.contains("\x1b[2J"), "{text:?}");
        assert!(text.ends_with("\r\x1b[2K"), "{text:?}");
    }
}
