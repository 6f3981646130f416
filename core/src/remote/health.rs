//! What this data dir remembers of hosts that did not answer, so the next command does not wait
//! on them again.
//!
//! There is no daemon to keep watch, so each command leaves a note for the next: one small file
//! per host under `<data_dir>/host-health` saying whether it is `connecting` (a first connection
//! was started and had not come up when the command stopped waiting) or `unreachable`, since
//! when, when it was last asked, and why. A host that answers has no note.
//!
//! Notes are owner-only, replaced whole by rename and never read through a link
//! ([`ao_plugin_kit::private`]): a process killed mid-write leaves the old note or the new one
//! (and a temp file, swept by the next note).
//! Concurrent processes replace each other's notes, the last one winning, which is all a note
//! needs: each is a fact someone just saw. A note that cannot be read counts as none (the host is
//! asked, which is what a command did before notes existed).
//!
//! A note is trusted for a bounded time only ([`RECHECK_AFTER`] after the host was last asked, or
//! the connect timeout for a connection in progress), so a host that comes back is used again
//! within seconds.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// How long a host found unreachable is not asked again. Short: a host that comes back must be
/// seen soon, and asking again costs one deadline.
pub(crate) const RECHECK_AFTER: Duration = Duration::from_secs(10);

/// The folder of the notes, under the data dir.
const NOTES_DIR: &str = "host-health";

/// Why a host cannot be asked right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Trouble {
    /// A first connection is being made and has not come up yet.
    Connecting,
    /// It did not answer.
    Unreachable,
}

/// What is remembered of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HostNote {
    pub trouble: Trouble,
    /// Since when it is in this trouble (ms since the Unix epoch).
    pub since: u64,
    /// When it was last asked (ms since the Unix epoch).
    pub asked: u64,
    /// What it (or ssh) said, or that it said nothing in time.
    pub why: String,
    /// Whether its shared connection was up when it was found in trouble: one that was not,
    /// and is up now, was connected since (by a connect a command left running), so it is
    /// asked again at once rather than after [`RECHECK_AFTER`].
    #[serde(default)]
    pub connection_was_up: bool,
}

/// What a note says to do about its host now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Ask the host (nothing against it, or the note is too old to trust).
    Ask,
    /// Do not wait on it: this is why (the note, brought up to date).
    Skip(HostNote),
    /// A connection was being made; ask it only if that connection is up by now.
    AskIfConnected(HostNote),
}

impl HostNote {
    /// What to do about the host at `now`, for a host whose connections take up to
    /// `connect_timeout` to come up.
    pub fn verdict(&self, now: u64, connect_timeout: Duration) -> Verdict {
        match self.trouble {
            Trouble::Unreachable if now < self.asked + millis(RECHECK_AFTER) => {
                Verdict::Skip(self.clone())
            }
            Trouble::Unreachable => Verdict::Ask,
            Trouble::Connecting if now < self.since + millis(connect_timeout) => {
                Verdict::AskIfConnected(self.clone())
            }
            // Its connection had all the time ssh gives one: unless it is up now, the host did
            // not answer, and is asked again like any other unreachable one.
            Trouble::Connecting => Verdict::AskIfConnected(HostNote {
                trouble: Trouble::Unreachable,
                since: self.since,
                asked: now,
                why: format!(
                    "no connection within {} s: {}",
                    connect_timeout.as_secs(),
                    self.why
                ),
                connection_was_up: false,
            }),
        }
    }

    /// `since` as a time of day in UTC with its date, for messages.
    pub(crate) fn since_text(&self) -> String {
        utc_text(self.since)
    }
}

fn millis(duration: Duration) -> u64 {
    duration.as_millis().try_into().unwrap_or(u64::MAX)
}

/// The notes of one data dir.
#[derive(Debug, Clone)]
pub(crate) struct HealthNotes {
    dir: PathBuf,
}

impl HealthNotes {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(NOTES_DIR),
        }
    }

    fn path(&self, host: &str) -> PathBuf {
        // Host names are validated ids (`config::hosts`): a plain file name.
        self.dir.join(format!("{host}.json"))
    }

    /// The note on `host`, if there is one that can be read.
    pub fn read(&self, host: &str) -> Option<HostNote> {
        let path = self.path(host);
        let text = match ao_plugin_kit::private::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("{}: {e}; asking host `{host}` again", path.display());
                return None;
            }
        };
        serde_json::from_str(&text)
            .inspect_err(|e| {
                tracing::warn!("{}: {e}; asking host `{host}` again", path.display());
            })
            .ok()
    }

    /// Leaves `note` on `host` for the next command. A note that cannot be written costs that
    /// command one deadline, nothing more: logged, not an error.
    pub(crate) fn remember(&self, host: &str, note: &HostNote) {
        let path = self.path(host);
        let written = ao_plugin_kit::private::create_dir(&self.dir).and_then(|()| {
            let text = serde_json::to_vec(note).expect("a note serializes");
            ao_plugin_kit::private::write(&path, &text, false)
        });
        if let Err(e) = written {
            tracing::warn!(
                "cannot note that host `{host}` does not answer in {}: {e}",
                path.display()
            );
        }
        // What a writer killed mid-write left behind goes with the next note.
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if crate::session::is_stale_temp(&entry) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// `host` answered: no note on it any more.
    pub fn forget(&self, host: &str) {
        let path = self.path(host);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("{}: {e}", path.display()),
        }
    }
}

/// `ms` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn utc_text(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    // Days to the civil calendar (Howard Hinnant's `civil_from_days`), for dates after 1970.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const CONNECT: Duration = Duration::from_secs(10);

    fn note(trouble: Trouble, since: u64, asked: u64) -> HostNote {
        HostNote {
            trouble,
            since,
            asked,
            why: "Connection timed out during banner exchange".into(),
            connection_was_up: false,
        }
    }

    #[test]
    fn an_unreachable_host_is_skipped_for_a_while_then_asked_again() {
        let down = note(Trouble::Unreachable, 1_000, 5_000);
        assert_eq!(
            down.verdict(5_000 + 9_999, CONNECT),
            Verdict::Skip(down.clone())
        );
        assert_eq!(down.verdict(5_000 + 10_000, CONNECT), Verdict::Ask);
    }

    #[test]
    fn a_connection_in_progress_is_looked_for_then_becomes_unreachable_since_it_began() {
        let connecting = note(Trouble::Connecting, 1_000, 1_000);
        assert_eq!(
            connecting.verdict(10_999, CONNECT),
            Verdict::AskIfConnected(connecting.clone())
        );
        let Verdict::AskIfConnected(late) = connecting.verdict(12_000, CONNECT) else {
            panic!("a connection that may be up is looked for");
        };
        assert_eq!(late.trouble, Trouble::Unreachable);
        assert_eq!((late.since, late.asked), (1_000, 12_000));
        assert!(
            late.why.contains("no connection within 10 s"),
            "{}",
            late.why
        );
        // Not asked again before the recheck time has passed since it was found so.
        assert!(matches!(late.verdict(21_999, CONNECT), Verdict::Skip(_)));
        assert_eq!(late.verdict(22_000, CONNECT), Verdict::Ask);
    }

    #[test]
    fn notes_are_private_survive_rewrites_and_refuse_links() {
        let dir = tempfile::tempdir().unwrap();
        let notes = HealthNotes::new(dir.path());
        assert_eq!(notes.read("gamma"), None);
        let first = note(Trouble::Connecting, 1, 1);
        notes.remember("gamma", &first);
        let later = note(Trouble::Unreachable, 1, 11_000);
        // A writer killed mid-write (its pid gone) left a temp file: swept by the next note.
        let torn = dir
            .path()
            .join("host-health/.gamma.json.4194304-0123456789abcdef.tmp");
        std::fs::write(&torn, "{").unwrap();
        notes.remember("gamma", &later);
        assert_eq!(notes.read("gamma"), Some(later));
        assert!(!torn.exists());
        let file = dir.path().join("host-health/gamma.json");
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        notes.forget("gamma");
        assert_eq!(notes.read("gamma"), None);
        // A planted link is not followed: no note, and the target untouched.
        let elsewhere = dir.path().join("elsewhere.json");
        std::fs::write(&elsewhere, serde_json::to_vec(&first).unwrap()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
        assert_eq!(notes.read("gamma"), None);
        // A torn or foreign file is no note either.
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, "{\"trouble\":").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(notes.read("gamma"), None);
    }

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_text(1_796_638_927_999), "2026-12-07 10:22:07 UTC");
    }
}
