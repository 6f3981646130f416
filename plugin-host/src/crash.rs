//! A last word when a plugin takes the whole process down.
//!
//! `catch_unwind` stops a plugin's panic, but nothing in-process stops a null dereference, an
//! `abort` or a library built with `panic = "abort"`: the host dies with the plugin. What it can
//! still do is say which plugin call was running. Each call records a ready-made message in a
//! thread-local buffer (`enter`); a handler for the fatal signals, run on the crashing thread,
//! writes it to stderr with `write(2)` (all a signal handler may safely do), puts back the
//! handler that was there before (Rust's stack-overflow report, or the default) and returns, so
//! the signal takes its normal course: the fault happens again, or `abort` raises it again.

use std::{cell::UnsafeCell, sync::OnceLock};

use ao_plugin_api::InterfaceKind;

/// The fatal signals a crashing plugin raises, and their names.
const SIGNALS: [(libc::c_int, &str); 5] = [
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGFPE, "SIGFPE"),
];

/// Longest message kept; a longer plugin name or method is cut.
const CAPACITY: usize = 512;

/// The message for the call running on this thread: `head` + signal name + `tail`.
struct Pending {
    head_len: usize,
    len: usize,
    bytes: [u8; CAPACITY],
}

thread_local! {
    // Const-initialised and without a destructor: reading it needs no lazy set-up, so it can be
    // read from a signal handler.
    static PENDING: UnsafeCell<Pending> = const {
        UnsafeCell::new(Pending { head_len: 0, len: 0, bytes: [0; CAPACITY] })
    };
}

/// The handlers that were installed before ours, by position in [`SIGNALS`].
static PREVIOUS: OnceLock<[libc::sigaction; SIGNALS.len()]> = OnceLock::new();

/// Clears this thread's pending message when the call returns, and puts back what the plugin
/// code changed for the whole process (see [`super::process_state`]).
pub(crate) struct CallGuard {
    _restore: super::process_state::Restore,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        // SAFETY: only this thread touches its own buffer (the handler runs on this thread,
        // between instructions of this code at worst, and then reads a consistent `len`).
        PENDING.with(|pending| unsafe { (*pending.get()).len = 0 });
    }
}

/// Records that this thread is now running `method` of the `kind` plugin `name`.
pub(crate) fn enter(kind: InterfaceKind, name: &str, method: &str) -> CallGuard {
    note(
        &format!("{kind} plugin `{name}`"),
        &format!(
            "in {method}, taking ao-host down with it; fix or remove its library (`ao-host plugins list` shows where it is); `ao-host gc --skip-plugin {name}` reconciles sessions without it"
        ),
    )
}

/// Records that this thread is now loading `library` (the loader runs its constructors).
pub(crate) fn enter_loading(library: &std::path::Path, plugins: &str) -> CallGuard {
    note(
        &format!("the plugin library {}", library.display()),
        &format!(
            "while loading (its own start-up code), taking ao-host down with it; fix or remove it; `--skip-plugin` does not load it: `ao-host gc --skip-plugin {plugins}`"
        ),
    )
}

/// Keeps "ao-host: WHO crashed (SIGNAL) WHAT" ready for the signal handler.
fn note(who: &str, what: &str) -> CallGuard {
    let restore = super::process_state::Restore::new(who.to_string());
    let head = format!("\nao-host: {who} crashed (");
    let tail = format!(") {what}\n");
    PENDING.with(|pending| {
        // SAFETY: see `CallGuard::drop`; `len` is set last, so the handler never sees a
        // half-written message as complete.
        let pending = unsafe { &mut *pending.get() };
        pending.len = 0;
        let head = &head.as_bytes()[..head.len().min(CAPACITY / 2)];
        let tail = &tail.as_bytes()[..tail.len().min(CAPACITY - head.len())];
        pending.bytes[..head.len()].copy_from_slice(head);
        pending.bytes[head.len()..head.len() + tail.len()].copy_from_slice(tail);
        pending.head_len = head.len();
        pending.len = head.len() + tail.len();
    });
    CallGuard { _restore: restore }
}

extern "C" fn on_fatal_signal(signal: libc::c_int) {
    let Some(index) = SIGNALS.iter().position(|(number, _)| *number == signal) else {
        return;
    };
    let _ = PENDING.try_with(|pending| {
        // SAFETY: this thread's own buffer; only `write` is called, which is async-signal-safe.
        let pending = unsafe { &mut *pending.get() };
        if pending.len > 0 {
            let name = SIGNALS[index].1.as_bytes();
            for part in [
                &pending.bytes[..pending.head_len],
                name,
                &pending.bytes[pending.head_len..pending.len],
            ] {
                unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
            }
            // Once: a stack overflow's report ends in an abort, a second signal.
            pending.len = 0;
        }
    });
    if let Some(previous) = PREVIOUS.get() {
        // SAFETY: restoring an action the kernel gave us; sigaction is async-signal-safe.
        unsafe { libc::sigaction(signal, &previous[index], std::ptr::null_mut()) };
    }
}

/// Run by `exit`: plugin code that ends the whole process with `exit(0)` in the middle of a
/// call must not pass for success. The note is there only while a plugin call or load runs on
/// this thread.
extern "C" fn on_exit_during_a_call() {
    let _ = PENDING.try_with(|pending| {
        // SAFETY: this thread's own buffer, as in the signal handler.
        let pending = unsafe { &*pending.get() };
        if pending.len > 0 {
            let head = &pending.bytes[..pending.head_len];
            for part in [
                head,
                b"exit() called",
                &pending.bytes[pending.head_len..pending.len],
            ] {
                unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
            }
            // SAFETY: ends the process at once, with a failure status instead of the plugin's.
            unsafe { libc::_exit(1) };
        }
    });
}

/// Installs the handler for the fatal signals, once per process.
pub fn install() {
    // SAFETY: registering a plain function; it only reads this thread's buffer.
    unsafe { libc::atexit(on_exit_during_a_call) };
    PREVIOUS.get_or_init(|| {
        // SAFETY: plain sigaction calls with zeroed, then filled, structs.
        unsafe {
            let mut previous: [libc::sigaction; SIGNALS.len()] = std::mem::zeroed();
            for (index, (signal, _)) in SIGNALS.iter().enumerate() {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_fatal_signal as extern "C" fn(libc::c_int) as usize;
                // On the alternate stack Rust sets up per thread, so a stack overflow is
                // reported too; reset to the previous action happens by hand (see above).
                action.sa_flags = libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(*signal, &action, &mut previous[index]);
            }
            previous
        }
    });
}
