//! What in-process plugin code may change for the whole process, put back when it returns.
//!
//! A library's start-up code, a constructor or a method runs inside ao-host and can set a signal
//! to "ignore", clear the umask or block signals on its thread. Left alone, a plugin that
//! ignores SIGTERM makes a spawn uninterruptible (it could no longer stop and undo itself), and
//! one that calls `umask(0)` makes every later file ao-host or `git` creates writable by others.
//! So the host keeps its own signal dispositions and umask ([`HostState`], taken before the first
//! plugin code runs) and every stretch of plugin code ends by putting them back ([`Restore`]).
//!
//! Plugin calls run concurrently with the host's own work, and the host legitimately installs
//! handlers later on (tokio's signal and child-process handling install theirs on first use).
//! A changed disposition whose handler lives in ao-host's own executable is therefore the
//! host's, and is kept as its new own; anything else (ignore, default, a handler in a plugin
//! library) is put back. The host's own switches to "ignore" go through [`adopt`].

use std::sync::{Mutex, PoisonError};

/// Every standard signal whose disposition a process may change.
const SIGNALS: std::ops::RangeInclusive<libc::c_int> = 1..=31;

/// The dispositions and umask the host chose, by signal number (index 0 unused).
struct HostState {
    umask: libc::mode_t,
    actions: [Option<libc::sigaction>; 32],
}

static HOST: Mutex<Option<HostState>> = Mutex::new(None);

fn host_state() -> std::sync::MutexGuard<'static, Option<HostState>> {
    HOST.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records the host's dispositions and umask, once, before the first plugin code runs.
fn remember(state: &mut Option<HostState>) -> &mut HostState {
    state.get_or_insert_with(|| {
        let mut actions = [None; 32];
        for signal in SIGNALS {
            actions[signal as usize] = current_action(signal);
        }
        HostState {
            umask: current_umask(),
            actions,
        }
    })
}

/// The host itself changed `signal`'s disposition (e.g. to ignore SIGHUP): that is its own now,
/// and is what plugin code gets put back to.
pub fn adopt(signal: libc::c_int) {
    let mut state = host_state();
    let state = remember(&mut state);
    if let Some(slot) = state.actions.get_mut(signal as usize) {
        *slot = current_action(signal);
    }
}

/// Puts back what the plugin code `who` changed when dropped; made before that code runs, on
/// the thread that runs it.
pub(crate) struct Restore {
    who: String,
    /// This thread's signal mask before the plugin code ran.
    mask: Option<libc::sigset_t>,
}

impl Restore {
    pub(crate) fn new(who: String) -> Self {
        remember(&mut host_state());
        Self {
            who,
            mask: thread_mask(),
        }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(mask) = &self.mask {
            if thread_mask().is_some_and(|now| !same_set(&now, mask)) {
                // SAFETY: sets this thread's mask to one the kernel gave us.
                unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
                tracing::warn!("{} changed its thread's signal mask; put back", self.who);
            }
        }
        put_back(&format!("as {} returned", self.who));
    }
}

/// Puts back the host's umask and signal dispositions. Also run when the host stops waiting for
/// a call that overran its timeout: that plugin code may still be running, but a spawn being
/// undone must be interruptible again. `when` says where the change was noticed (plugin calls
/// overlap, so not necessarily whose it was).
pub(crate) fn put_back(when: &str) {
    let mut state = host_state();
    let state = remember(&mut state);
    // SAFETY: umask cannot fail; it returns the mask it replaces.
    let was = unsafe { libc::umask(state.umask) };
    if was != state.umask {
        tracing::warn!(
            "plugin code set the umask to {was:03o} (noticed {when}); put back to {:03o}",
            state.umask
        );
    }
    for signal in SIGNALS {
        let Some(host) = state.actions[signal as usize] else {
            continue;
        };
        let Some(now) = current_action(signal) else {
            continue;
        };
        if same_action(&now, &host) {
            continue;
        }
        if handler_in_host(now.sa_sigaction) {
            state.actions[signal as usize] = Some(now);
            continue;
        }
        // SAFETY: re-installs an action the kernel gave us for this very signal.
        unsafe { libc::sigaction(signal, &host, std::ptr::null_mut()) };
        tracing::warn!(
            "plugin code changed how ao-host handles {} (noticed {when}); put back",
            signal_name(signal)
        );
    }
}

fn current_action(signal: libc::c_int) -> Option<libc::sigaction> {
    // SAFETY: reads the action into a zeroed struct; no action is changed.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(signal, std::ptr::null(), &mut action) == 0).then_some(action)
    }
}

fn thread_mask() -> Option<libc::sigset_t> {
    // SAFETY: reads this thread's mask into a zeroed set.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        (libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut mask) == 0).then_some(mask)
    }
}

/// The umask, read without changing it (`/proc/self/status`), else by setting it and back.
fn current_umask() -> libc::mode_t {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
            libc::mode_t::from_str_radix(line.trim(), 8).ok()
        });
    from_proc.unwrap_or_else(|| {
        // SAFETY: umask cannot fail; the second call puts back what the first returned.
        unsafe {
            let mask = libc::umask(0o077);
            libc::umask(mask);
            mask
        }
    })
}

fn same_action(a: &libc::sigaction, b: &libc::sigaction) -> bool {
    a.sa_sigaction == b.sa_sigaction && a.sa_flags == b.sa_flags && same_set(&a.sa_mask, &b.sa_mask)
}

/// Whether two signal sets hold the same signals. Not their bytes: the kernel fills only part
/// of glibc's `sigset_t`, and the rest is whatever was on the stack.
fn same_set(a: &libc::sigset_t, b: &libc::sigset_t) -> bool {
    // SAFETY: sigismember only reads the sets.
    (1..=64).all(|signal| unsafe { libc::sigismember(a, signal) == libc::sigismember(b, signal) })
}

/// Whether `handler` is a function of ao-host's own executable (not "ignore" or "default", and
/// not in a plugin library or libc).
fn handler_in_host(handler: libc::sighandler_t) -> bool {
    if handler == libc::SIG_IGN || handler == libc::SIG_DFL {
        return false;
    }
    let base = |address: *const libc::c_void| {
        // SAFETY: dladdr only reads the loader's tables; a zeroed Dl_info is a valid out-param.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            (libc::dladdr(address, &mut info) != 0).then_some(info.dli_fbase)
        }
    };
    let own = base(handler_in_host as fn(libc::sighandler_t) -> bool as *const libc::c_void);
    own.is_some() && base(handler as *const libc::c_void) == own
}

fn signal_name(signal: libc::c_int) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGALRM => "SIGALRM",
        libc::SIGWINCH => "SIGWINCH",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" fn host_handler(_: libc::c_int) {}

    #[test]
    fn only_handlers_of_the_host_itself_count_as_the_hosts() {
        assert!(handler_in_host(
            host_handler as extern "C" fn(libc::c_int) as libc::sighandler_t
        ));
        assert!(!handler_in_host(libc::SIG_IGN));
        assert!(!handler_in_host(libc::SIG_DFL));
        // A function of libc, a library like a plugin's.
        assert!(!handler_in_host(
            libc::abort as unsafe extern "C" fn() -> ! as libc::sighandler_t
        ));
    }

    #[test]
    fn signal_sets_compare_by_their_signals() {
        // SAFETY: plain sigset manipulation on local sets.
        unsafe {
            let mut a: libc::sigset_t = std::mem::zeroed();
            let mut b: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut a);
            libc::sigemptyset(&mut b);
            // Bytes past the signals the kernel knows differ, as after a read from the kernel.
            std::ptr::from_mut(&mut b).cast::<u8>().add(120).write(0xff);
            assert!(same_set(&a, &b));
            libc::sigaddset(&mut b, libc::SIGTERM);
            assert!(!same_set(&a, &b));
        }
    }
}
