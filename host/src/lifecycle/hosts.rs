//! Sessions on other hosts: which host a spawn goes to, and whether a host answers.
//!
//! A host is asked whether it answers before anything is made for a spawn there (so an
//! unreachable one costs nothing anywhere), and before a listing reads its sessions (so a host
//! that went away shows its sessions `unreachable`, never `exited`).

use std::collections::BTreeMap;

use super::{Lifecycle, LifecycleError};
use crate::{
    config::ProjectConfig,
    remote::{clone_path, HostError, Reached, SshHost},
    session::SessionStatus,
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

    /// Asks `host` now whether it answers; remembers where this data dir lives there.
    pub async fn reach(&self, host: &str) -> Result<Reached, HostError> {
        let reached = self.host(host)?.reach().await?;
        self.reached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.to_string(), reached.clone());
        Ok(reached)
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
                self.by_fewest_live_sessions(project.hosts.keys())
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
