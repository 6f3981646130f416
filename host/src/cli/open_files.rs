//! The open-file limit. Plugins, their git and tmux children, the async runtime and its signal
//! handling each hold descriptors; under a very low limit (`ulimit -n 16`) the runtime's signal
//! setup fails inside tokio, which can only panic. So the limit is raised as far as this user
//! may (the soft limit up to the hard one), and a limit that cannot be raised enough is an error
//! that names it and the fix before any of that starts.

use anyhow::{bail, Result};

/// Below this, commands are refused: a spawn alone holds about 40 descriptors at once.
const NEEDED: libc::rlim_t = 64;
/// What the soft limit is raised to when it is lower (and the hard limit allows).
const WANTED: libc::rlim_t = 1024;

/// Raises the soft open-file limit towards [`WANTED`], or says how to when it is under
/// [`NEEDED`] and cannot be raised.
pub fn ensure_enough() -> Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        // Unknown is not known-low: go on.
        return Ok(());
    }
    if limit.rlim_cur >= WANTED {
        return Ok(());
    }
    let raised = libc::rlimit {
        rlim_cur: WANTED.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: `setrlimit` reads one valid `rlimit`; a soft limit within the hard one is always
    // allowed.
    let current = if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        raised.rlim_cur
    } else {
        limit.rlim_cur
    };
    if current < NEEDED {
        bail!(
            "this shell lets a process open only {current} files (`ulimit -n`), and ao-host needs at least {NEEDED}; raise the limit (`ulimit -n {WANTED}`, or ask for a higher hard limit) and run it again"
        );
    }
    Ok(())
}
