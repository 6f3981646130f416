//! Sessions on other hosts: which host a spawn goes to, and whether a host answers.
//!
//! A host is asked whether it answers before anything is made for a spawn there (so an
//! unreachable one costs nothing anywhere), and before a listing reads its sessions (so a host
//! that went away shows its sessions `unreachable`, never `exited`).
//!
//! Every host has its own deadline: a listing (and `--host any`) waits for one at most
//! `defaults.host_answer_timeout_ms`, then shows its sessions `connecting` (a first connection
//! still being made, which ssh gives its connect timeout) or `unreachable`, and leaves a note
//! ([`crate::remote::health`]) so the next command does not wait on it again.

use std::collections::BTreeMap;

use futures_util::{future::join_all, stream::FuturesUnordered, StreamExt};

use super::{Lifecycle, LifecycleError};
use crate::{
    config::ProjectConfig,
    remote::{
        clone_path,
        health::{HostNote, Trouble, Verdict},
        HostError, Reached, SshHost,
    },
    session::{now_ms, Session, SessionStatus},
};

/// Where a spawn goes: `--host NAME` or `--host any`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostChoice {
    Named(String),
    /// The host with the fewest live sessions that answers.
    Any,
}

impl HostChoice {
    pub fn parse(text: &str) -> Self {
        match text {
            "any" => Self::Any,
            name => Self::Named(name.to_string()),
        }
    }
}

/// A host chosen for a spawn: its name, and the project's clone there.
pub(super) struct Placement {
    pub host: String,
    pub repo: String,
}

impl Lifecycle {
    pub(super) fn host(&self, name: &str) -> Result<&SshHost, HostError> {
        self.hosts.get(name).ok_or_else(|| HostError::Unknown {
            name: name.to_string(),
            known: if self.hosts.is_empty() {
                "none (add them under `hosts:` in ao-rs.yaml)".to_string()
            } else {
                self.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        })
    }

    /// Asks `host` now whether it answers, however long that takes; remembers where this data
    /// dir lives there, and notes for later commands whether it answered.
    pub async fn reach(&self, host: &str) -> Result<Reached, HostError> {
        let asked = now_ms();
        let reached = self.host(host)?.reach().await;
        self.note_answer(host, asked, &reached);
        let reached = reached?;
        self.reached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.to_string(), reached.clone());
        Ok(reached)
    }

    /// Notes what `host`, asked at `asked`, answered: nothing against one that answered (a
    /// refused login is an answer), since when one did not.
    fn note_answer(&self, host: &str, asked: u64, answer: &Result<Reached, HostError>) {
        match answer {
            Err(e) if e.is_unreachable() => {
                let note = HostNote {
                    trouble: Trouble::Unreachable,
                    since: self.health.read(host).map_or(asked, |known| known.since),
                    asked,
                    why: e.to_string(),
                    connection_was_up: self.host(host).is_ok_and(|h| h.connection_is_up()),
                };
                self.health.remember(host, &note);
            }
            Err(HostError::Unknown { .. } | HostError::Local { .. }) => {}
            _ => self.health.forget(host),
        }
    }

    /// Whether `name` answers, waiting on it no longer than `defaults.host_answer_timeout_ms`,
    /// and not at all when a recent command found it silent.
    pub(super) async fn answer(&self, name: &str) -> Result<Reached, Unanswered> {
        let host = self.host(name).map_err(Unanswered::refused)?;
        let noted = self.health.read(name);
        // Asked of the local socket once, before the host is: whether a connection is up now.
        let connected = host.connection_is_up();
        let known = match noted
            .as_ref()
            .map(|note| note.verdict(now_ms(), host.connect_timeout()))
        {
            None | Some(Verdict::Ask) => noted,
            // Connected since it was found silent (a connect left running came up): ask again.
            Some(Verdict::Skip(note)) if !note.connection_was_up && connected => Some(note),
            Some(Verdict::Skip(note)) => return Err(Unanswered::noted(name, host, &note)),
            Some(Verdict::AskIfConnected(note)) => {
                if !connected {
                    if noted.as_ref() != Some(&note) {
                        self.health.remember(name, &note);
                    }
                    return Err(Unanswered::noted(name, host, &note));
                }
                Some(note)
            }
        };
        let asked = now_ms();
        // One found silent had its full deadline then; asked again with no connection up, it
        // gets half, so the listing that asks it again stays within the deadline too.
        let deadline = match &known {
            Some(note) if note.trouble == Trouble::Unreachable && !connected => {
                self.config.host_answer_timeout_ms / 2
            }
            _ => self.config.host_answer_timeout_ms,
        };
        let deadline = std::time::Duration::from_millis(deadline);
        match tokio::time::timeout(deadline, self.reach(name)).await {
            Ok(Ok(reached)) => Ok(reached),
            // Noted by `reach` when it did not answer.
            Ok(Err(e)) => Err(match self.health.read(name) {
                Some(note) if e.is_unreachable() => Unanswered::noted(name, host, &note),
                _ => Unanswered::refused(e),
            }),
            Err(_) => {
                // A host with no connection up is being connected to for the first time (which
                // goes on: see `remote`); one with its connection up, or silent before, is not
                // answering.
                let connection_was_up = host.connection_is_up();
                let trouble = match (&known, connection_was_up) {
                    (None, false) => Trouble::Connecting,
                    _ => Trouble::Unreachable,
                };
                let note = HostNote {
                    trouble,
                    since: known.map_or(asked, |known| known.since),
                    asked,
                    why: format!(
                        "host `{name}` did not answer within {} ms (defaults.host_answer_timeout_ms)",
                        deadline.as_millis()
                    ),
                    connection_was_up,
                };
                self.health.remember(name, &note);
                Err(Unanswered::noted(name, host, &note))
            }
        }
    }

    /// What `host` said the last time it answered, asking it if it never did.
    pub(super) async fn reached(&self, host: &str) -> Result<Reached, HostError> {
        let known = self
            .reached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
            .cloned();
        match known {
            Some(reached) => Ok(reached),
            None => self.reach(host).await,
        }
    }

    /// The host a spawn of `project` goes to, checked to answer; nothing is made anywhere when
    /// this fails.
    pub(super) async fn place(
        &self,
        project: &ProjectConfig,
        choice: &HostChoice,
    ) -> Result<Placement, LifecycleError> {
        let no_clone = |host: &str| {
            LifecycleError::Refused(format!(
                "project `{}` has no clone on host `{host}`: add `{host}: /path/to/its/clone` under projects.{}.hosts in {}",
                project.id,
                project.id,
                self.config_name()
            ))
        };
        let candidates: Vec<String> = match choice {
            HostChoice::Named(host) => {
                self.host(host)?;
                if !project.hosts.contains_key(host) {
                    return Err(no_clone(host));
                }
                vec![host.clone()]
            }
            HostChoice::Any => {
                if project.hosts.is_empty() {
                    return Err(LifecycleError::Refused(format!(
                        "project `{}` has no clone on any host: add `hosts: {{ HOST: /path/to/its/clone }}` under projects.{} in {}",
                        project.id,
                        project.id,
                        self.config_name()
                    )));
                }
                return self.place_anywhere(project).await;
            }
        };
        let mut refusals = Vec::new();
        for host in candidates {
            match self.reach(&host).await {
                Ok(reached) => {
                    return Ok(Placement {
                        repo: clone_path(&project.hosts[&host], &reached),
                        host,
                    })
                }
                Err(e) => refusals.push(e),
            }
        }
        match refusals.len() {
            1 => Err(refusals.remove(0).into()),
            _ => Err(LifecycleError::Refused(format!(
                "no host of project `{}` answers: {}",
                project.id,
                refusals
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
        }
    }

    /// `--host any`: the host of `project` with the fewest live sessions that answers. Every
    /// host is asked at once, each within its deadline, and one known to be down not at all;
    /// only when none answered in time are those still connecting for the first time waited
    /// for, the first to answer taken.
    async fn place_anywhere(&self, project: &ProjectConfig) -> Result<Placement, LifecycleError> {
        let ordered = self.by_fewest_live_sessions(project.hosts.keys());
        let answers = join_all(ordered.iter().map(|host| self.answer(host))).await;
        let placement = |host: String, reached: &Reached| Placement {
            repo: clone_path(&project.hosts[&host], reached),
            host,
        };
        let mut troubles = Vec::new();
        let mut connecting = Vec::new();
        for (host, answer) in ordered.into_iter().zip(answers) {
            match answer {
                Ok(reached) => return Ok(placement(host, &reached)),
                Err(unanswered) if unanswered.status == SessionStatus::Connecting => {
                    connecting.push(host)
                }
                Err(unanswered) => troubles.push(unanswered.why),
            }
        }
        let mut pending: FuturesUnordered<_> = connecting
            .into_iter()
            .map(|host| async move { (self.reach(&host).await, host) })
            .collect();
        while let Some((answer, host)) = pending.next().await {
            match answer {
                Ok(reached) => return Ok(placement(host, &reached)),
                Err(e) => troubles.push(e.to_string()),
            }
        }
        Err(LifecycleError::Refused(format!(
            "no host of project `{}` answers: {}",
            project.id,
            troubles.join("; ")
        )))
    }

    /// `hosts` ordered by how many live sessions each runs (as recorded), fewest first; ties by
    /// name.
    fn by_fewest_live_sessions<'a>(&self, hosts: impl Iterator<Item = &'a String>) -> Vec<String> {
        let mut live: BTreeMap<&str, usize> = hosts.map(|h| (h.as_str(), 0)).collect();
        for session in self.store.list(None, false).sessions {
            let counts = !matches!(
                session.status,
                SessionStatus::Exited
                    | SessionStatus::Killed
                    | SessionStatus::Killing
                    | SessionStatus::Errored
            );
            if let (true, Some(count)) = (
                counts,
                session.host.as_deref().and_then(|h| live.get_mut(h)),
            ) {
                *count += 1;
            }
        }
        let mut ordered: Vec<(usize, &str)> = live.into_iter().map(|(h, n)| (n, h)).collect();
        ordered.sort();
        ordered.into_iter().map(|(_, h)| h.to_string()).collect()
    }

    /// Whether `session` is in lane `lane`: the sessions of one host, or (`None`) those of this
    /// machine and of hosts no longer configured (which fail at once, never waiting).
    pub(super) fn in_lane(&self, session: &Session, lane: Option<&str>) -> bool {
        let own = session
            .host
            .as_deref()
            .filter(|host| self.hosts.contains_key(*host));
        own == lane
    }

    /// The lanes a live feed follows: this machine, then each configured host.
    pub(crate) fn lanes(&self) -> Vec<Option<String>> {
        std::iter::once(None)
            .chain(self.hosts.keys().cloned().map(Some))
            .collect()
    }

    /// The config file's name for messages.
    fn config_name(&self) -> String {
        self.config
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "ao-rs.yaml".into())
    }

    /// The argv that attaches to `command` (a runtime's attach command) of a session on `host`.
    pub(super) fn attach_on(
        &self,
        host: &str,
        command: &[String],
    ) -> Result<Vec<String>, HostError> {
        Ok(self.host(host)?.attach_argv(command))
    }
}

/// Why a host's sessions cannot be asked about right now: shown as their status and note.
#[derive(Debug, Clone)]
pub(super) struct Unanswered {
    /// `connecting` or `unreachable`.
    pub status: SessionStatus,
    /// Since when, when known.
    pub since: Option<u64>,
    pub why: String,
}

impl Unanswered {
    /// A host that answered with a refusal (its key, the login), or is not configured.
    fn refused(error: HostError) -> Self {
        Self {
            status: SessionStatus::Unreachable,
            since: None,
            why: error.to_string(),
        }
    }

    fn noted(name: &str, host: &SshHost, note: &HostNote) -> Self {
        let since = note.since_text();
        match note.trouble {
            Trouble::Connecting => Self {
                status: SessionStatus::Connecting,
                since: Some(note.since),
                why: format!(
                    "connecting to host `{name}` since {since} (a first connection may take up to {} s)",
                    host.connect_timeout().as_secs()
                ),
            },
            Trouble::Unreachable => Self {
                status: SessionStatus::Unreachable,
                since: Some(note.since),
                why: format!("{}; unreachable since {since}", note.why),
            },
        }
    }

    /// Shows `session` as its host's trouble makes it.
    pub fn mark(&self, session: &mut Session) {
        session.status = self.status;
        session.unreachable_since = self.since;
        session.note = Some(self.why.clone());
    }
}
