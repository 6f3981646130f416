//! Sessions per shared connection, bounded across processes below sshd's `MaxSessions`.
//!
//! sshd refuses a session past `MaxSessions` (10 by default) on one connection ("no more
//! sessions"), and every ao-host process of a data dir rides the same connection to a host. So
//! each session takes a slot first: one of `hosts.H.max_sessions` lock files beside the socket,
//! locked with `flock` by the process that waits for the session's ssh (ssh closes descriptors
//! it did not open, so it cannot hold one itself), so a slot is taken exactly as long as that
//! ssh runs and is given back when it ends, however it ends. A command that finds every slot
//! taken waits, within a bound, then fails naming the host and the setting.

use std::{
    fs::File,
    path::Path,
    time::{Duration, Instant},
};

use ao_plugin_kit::private;

use super::connection::sibling;

/// How long a command waits for a free slot.
pub(crate) const SLOT_PATIENCE: Duration = Duration::from_secs(60);

/// A session slot of one connection, held until dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    _lock: File,
}

impl Slot {
    /// Takes a free slot of the connection whose socket is `socket`, waiting up to `patience`.
    pub fn take(
        socket: &Path,
        max_sessions: u32,
        host: &str,
        patience: Duration,
    ) -> Result<Slot, String> {
        let deadline = Instant::now() + patience;
        let mut pause = Duration::from_millis(2);
        // Each process starts at a slot of its own, so that many starting together do not all
        // try the same few first.
        let first = std::process::id() % max_sessions.max(1);
        loop {
            for i in 0..max_sessions {
                let path = sibling(socket, &format!("slot{}", (first + i) % max_sessions));
                let file =
                    private::open_lock(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                if file.try_lock().is_ok() {
                    return Ok(Slot { _lock: file });
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "host `{host}`: all {max_sessions} sessions of its connection stayed in use for {} s; \
                     wait for other ao-host commands to finish, or raise hosts.{host}.max_sessions \
                     (it must stay below the MaxSessions of the host's sshd, 10 by default)",
                    patience.as_secs()
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_shared_out_up_to_the_bound_and_come_back_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("connection");
        let held: Vec<Slot> = (0..3)
            .map(|_| Slot::take(&socket, 3, "box1", Duration::ZERO).unwrap())
            .collect();
        let full = Slot::take(&socket, 3, "box1", Duration::from_millis(30)).unwrap_err();
        assert!(
            full.contains("host `box1`") && full.contains("hosts.box1.max_sessions"),
            "{full}"
        );
        drop(held);
        Slot::take(&socket, 3, "box1", Duration::ZERO).unwrap();
    }
}
