//! What in-process plugin code may change for the whole process, put back when it returns.
//!
//! A library's start-up code, a constructor or a method runs inside ao-host and can set a signal
//! to "ignore", clear the umask or block signals on its thread. Left alone, a plugin that
//! ignores SIGTERM makes a spawn uninterruptible (it could no longer stop and undo itself), and
//! one that calls `umask(0)` makes every later file ao-host or `git` creates writable by others.
//! So the host keeps its own signal dispositions and umask (`HostState`, taken before the first
//! plugin code runs) and every stretch of plugin code ends by putting them back (`Restore`).
//!
//! Plugin calls run concurrently with the host's own work, and the host legitimately installs
//! handlers later on (tokio's signal and child-process handling install theirs on first use).
//! A changed disposition whose handler lives in ao-host's own executable is therefore the
//! host's, and is kept as its new own; anything else (ignore, default, a handler in a plugin
//! library) is put back. The host's own switches to "ignore" go through [`adopt`].

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, PoisonError,
    },
};

/// Every standard signal whose disposition a process may change.
const SIGNALS: std::ops::RangeInclusive<libc::c_int> = 1..=31;

/// The umask and signal dispositions at one moment, by signal number (index 0 unused).
struct Snapshot {
    umask: libc::mode_t,
    actions: [Option<libc::sigaction>; 32],
}

impl Snapshot {
    fn now() -> Self {
        let mut actions = [None; 32];
        for signal in SIGNALS {
            actions[signal as usize] = current_action(signal);
        }
        Self {
            umask: current_umask(),
            actions,
        }
    }
}

/// The dispositions and umask the host chose.
static HOST: Mutex<Option<Snapshot>> = Mutex::new(None);
/// Stretches of plugin code running now (by number, naming whose), and begun so far: whether
/// another overlapped one, and who may have made a change noticed as one of them returns.
static RUNNING: Mutex<BTreeMap<u64, String>> = Mutex::new(BTreeMap::new());
static BEGUN: AtomicU64 = AtomicU64::new(0);

fn running() -> std::sync::MutexGuard<'static, BTreeMap<u64, String>> {
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

fn host_state() -> std::sync::MutexGuard<'static, Option<Snapshot>> {
    HOST.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records the host's dispositions and umask, once, before the first plugin code runs.
fn remember(state: &mut Option<Snapshot>) -> &mut Snapshot {
    state.get_or_insert_with(Snapshot::now)
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
/// the thread that runs it. Only what changed between the two is blamed on `who`: something
/// changed before it began was someone else's.
pub(crate) struct Restore {
    who: String,
    /// This thread's signal mask before the plugin code ran.
    mask: Option<libc::sigset_t>,
    /// The whole process's state before the plugin code ran.
    before: Snapshot,
    /// Its number among all stretches begun, and whether another was running as it began.
    number: u64,
    overlapped: bool,
}

impl Restore {
    pub(crate) fn new(who: String) -> Self {
        remember(&mut host_state());
        let number = BEGUN.fetch_add(1, Ordering::SeqCst);
        let overlapped = {
            let mut running = running();
            running.insert(number, who.clone());
            running.len() > 1
        };
        Self {
            who,
            mask: thread_mask(),
            before: Snapshot::now(),
            number,
            overlapped,
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
        let alone = !self.overlapped && BEGUN.load(Ordering::SeqCst) == self.number.wrapping_add(1);
        let changes = restore_host(Some(&self.before));
        // Still running, so as likely to have made a change noticed now as `who` is.
        let alongside: Vec<String> = {
            let mut running = running();
            running.remove(&self.number);
            running
                .values()
                .filter(|w| **w != self.who)
                .cloned()
                .collect()
        };
        let (during, earlier): (Vec<Change>, Vec<Change>) =
            changes.into_iter().partition(|change| change.during);
        if !during.is_empty() {
            let suspects = if alone {
                String::new()
            } else if alongside.is_empty() {
                ", or plugin code that ran alongside it,".to_string()
            } else {
                format!(
                    ", or plugin code running alongside it ({}),",
                    alongside.join(", ")
                )
            };
            tracing::warn!(
                "{}{suspects} changed {}; put back",
                self.who,
                describe(&during)
            );
        }
        if !earlier.is_empty() {
            tracing::warn!(
                "plugin code other than {} changed {} (noticed as it returned); put back",
                self.who,
                describe(&earlier)
            );
        }
    }
}

/// Puts back the host's umask and signal dispositions. Also run when the host stops waiting for
/// a call that overran its timeout: that plugin code may still be running, but a spawn being
/// undone must be interruptible again. `when` says where the change was noticed (plugin calls
/// overlap, so not necessarily whose it was).
pub(crate) fn put_back(when: &str) {
    let changes = restore_host(None);
    if !changes.is_empty() {
        tracing::warn!(
            "plugin code changed {} (noticed {when}); put back",
            describe(&changes)
        );
    }
}

/// One thing put back: what it was ("how ao-host handles SIGTERM"), and whether it changed
/// since the snapshot it was compared with.
struct Change {
    what: String,
    during: bool,
}

fn describe(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|change| change.what.as_str())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Puts back the host's umask and every disposition not its own, and says what was changed,
/// each compared with `before` too (none: counted as changed since).
fn restore_host(before: Option<&Snapshot>) -> Vec<Change> {
    let mut state = host_state();
    let state = remember(&mut state);
    let mut changes = Vec::new();
    // SAFETY: umask cannot fail; it returns the mask it replaces.
    let was = unsafe { libc::umask(state.umask) };
    if was != state.umask {
        changes.push(Change {
            what: format!("the umask to {was:03o} (put back to {:03o})", state.umask),
            during: before.is_none_or(|before| before.umask != was),
        });
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
        // Read back, it may differ in flags only libc sets (`SA_RESTORER`): that is the host's
        // from now on, or every later stretch would seem to have changed it again.
        if let Some(reinstalled) = current_action(signal) {
            state.actions[signal as usize] = Some(reinstalled);
        }
        let earlier = before.and_then(|before| before.actions[signal as usize]);
        changes.push(Change {
            what: format!("how ao-host handles {}", signal_name(signal)),
            during: earlier.is_none_or(|earlier| !same_action(&now, &earlier)),
        });
    }
    changes
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
    fn a_change_is_blamed_on_the_stretch_it_happened_in_only() {
        remember(&mut host_state());
        let ignore_sigusr2 = || {
            // SAFETY: sets a disposition no other code of this process uses.
            unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
        };
        let sigusr2 = |changes: Vec<Change>| -> Vec<bool> {
            changes
                .into_iter()
                .filter(|change| change.what.contains("SIGUSR2"))
                .map(|change| change.during)
                .collect()
        };
        // Changed between the snapshot and the end of the stretch: its own.
        let before = Snapshot::now();
        ignore_sigusr2();
        assert_eq!(sigusr2(restore_host(Some(&before))), [true]);
        assert_ne!(
            current_action(libc::SIGUSR2).unwrap().sa_sigaction,
            libc::SIG_IGN
        );
        // Already changed when the stretch began: put back, but not its doing.
        ignore_sigusr2();
        let before = Snapshot::now();
        assert_eq!(sigusr2(restore_host(Some(&before))), [false]);
        assert_ne!(
            current_action(libc::SIGUSR2).unwrap().sa_sigaction,
            libc::SIG_IGN
        );
        // Nothing left to put back.
        assert_eq!(sigusr2(restore_host(None)), Vec::<bool>::new());
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
