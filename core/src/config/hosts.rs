//! `hosts:`: the other machines sessions may run on, reached with the system's OpenSSH client.
//!
//! What is checked here is what would otherwise reach `ssh` as something else than meant: a
//! destination that reads as an option, an option that takes over the connection sharing ao-host
//! relies on, a control character in anything.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::{resolve_path, ConfigError, VariableNames};

/// `hosts.<name>` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HostSection {
    pub ssh: String,
    pub port: Option<u16>,
    pub identity_file: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, serde_yaml::Value>,
    pub data_dir: Option<String>,
    #[serde(default)]
    pub pass_env: Vec<String>,
    pub max_sessions: Option<u32>,
}

/// One machine of `hosts:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    pub name: String,
    /// The OpenSSH destination, `[user@]host`.
    pub destination: String,
    pub port: Option<u16>,
    /// Resolved like every local path of the file (`~`, relative to the file's folder).
    pub identity_file: Option<PathBuf>,
    /// Extra `-o Key=Value` options, in key order.
    pub options: BTreeMap<String, String>,
    /// The folder on that machine under which data dirs keep their things, each in a folder
    /// named by its tag (so two installations never share one); `None`: `~/.ao-rs/hosts`.
    pub data_dir: Option<String>,
    /// Variables of `ao-host`'s own environment its sessions there get too, over the host's
    /// login environment (none by default: this machine's `PATH` or `SSH_AUTH_SOCK` mean
    /// nothing there).
    pub pass_env: VariableNames,
    /// How many sessions (commands, kept shells, attaches) ao-host runs on its one connection
    /// to the host at once, across all its processes: below the host sshd's `MaxSessions`.
    pub max_sessions: u32,
}

/// How many sessions a host's connection carries at once unless `hosts.H.max_sessions` says
/// otherwise: below sshd's default `MaxSessions` of 10, with room for an operator's own.
pub const DEFAULT_MAX_SESSIONS: u32 = 8;
const _: () = assert!(
    DEFAULT_MAX_SESSIONS < 10,
    "below sshd's default MaxSessions"
);
/// The most `hosts.H.max_sessions` may say: sshd's own ceiling is configurable, but a bound
/// this high means none.
const MAX_SESSIONS_CEILING: u32 = 1000;

/// Options ao-host sets itself: connection sharing and never asking a question it cannot answer.
const RESERVED_OPTIONS: [&str; 4] = [
    "BatchMode",
    "ControlMaster",
    "ControlPath",
    "ControlPersist",
];

impl HostConfig {
    pub(super) fn from_section(
        name: String,
        section: HostSection,
        base: &Path,
        invalid: &dyn Fn(String) -> ConfigError,
    ) -> Result<Self, ConfigError> {
        let at = format!("hosts.{name}");
        ao_plugin_kit::validate::validate_id("host name", &name)
            .map_err(|e| invalid(format!("{at}: {}", e.message())))?;
        if name == "any" || name == "local" {
            return Err(invalid(format!(
                "{at}: `{name}` means something else to `--host`; give the host another name"
            )));
        }
        let destination = section.ssh.trim().to_string();
        if destination.is_empty()
            || destination.starts_with('-')
            || destination
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(format!(
                "{at}.ssh: {:?} is not an ssh destination; write `user@host` or `host` (no spaces, not starting with `-`)",
                section.ssh
            )));
        }
        if section.port == Some(0) {
            return Err(invalid(format!("{at}.port: 0 is not a port")));
        }
        let mut options = BTreeMap::new();
        for (key, value) in section.options {
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(invalid(format!(
                    "{at}.options: {key:?} is not an ssh option name (see `man ssh_config`)"
                )));
            }
            if let Some(reserved) = RESERVED_OPTIONS
                .iter()
                .find(|r| r.eq_ignore_ascii_case(&key))
            {
                return Err(invalid(format!(
                    "{at}.options.{key}: ao-host sets {reserved} itself (one shared connection per host, never a question it cannot answer); remove it"
                )));
            }
            let value = match value {
                serde_yaml::Value::String(text) => text,
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::Bool(b) => if b { "yes" } else { "no" }.to_string(),
                other => {
                    return Err(invalid(format!(
                        "{at}.options.{key}: {other:?} is not a value; write a string"
                    )))
                }
            };
            if value.is_empty() || value.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "{at}.options.{key}: {value:?} is not a value ssh can take"
                )));
            }
            if key.eq_ignore_ascii_case("StrictHostKeyChecking") && value != "yes" {
                return Err(invalid(format!(
                    "{at}.options.{key}: ao-host never accepts a host key unseen, so only `yes`; add the host's key to known_hosts instead (`ssh-keyscan`, after checking its fingerprint)"
                )));
            }
            options.insert(key, value);
        }
        let identity_file = section
            .identity_file
            .map(|file| resolve_path(&file, base))
            .transpose()?;
        if let Some(dir) = &section.data_dir {
            if !(dir.starts_with('/') || dir.starts_with("~/")) || dir.chars().any(char::is_control)
            {
                return Err(invalid(format!(
                    "{at}.data_dir: {dir:?} must be an absolute path on that machine, or start with `~/`"
                )));
            }
        }
        let max_sessions = section.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS);
        if !(1..=MAX_SESSIONS_CEILING).contains(&max_sessions) {
            return Err(invalid(format!(
                "{at}.max_sessions: {max_sessions} is not a number of sessions; write 1 to {MAX_SESSIONS_CEILING}, below the MaxSessions of the host's sshd (10 by default; default here {})",
                DEFAULT_MAX_SESSIONS
            )));
        }
        let pass_env = VariableNames::from_list(&format!("{at}.pass_env"), section.pass_env)
            .map_err(invalid)?;
        Ok(Self {
            name,
            destination,
            port: section.port,
            identity_file,
            options,
            data_dir: section.data_dir,
            pass_env,
            max_sessions,
        })
    }
}

/// Checks `projects.<id>.hosts` (host → the project's clone there) against `hosts:`.
pub(super) fn check_project_hosts(
    project: &str,
    clones: &BTreeMap<String, String>,
    hosts: &BTreeMap<String, HostConfig>,
    invalid: &dyn Fn(String) -> ConfigError,
) -> Result<(), ConfigError> {
    for (host, path) in clones {
        if !hosts.contains_key(host) {
            let known: Vec<&str> = hosts.keys().map(String::as_str).collect();
            return Err(invalid(format!(
                "projects.{project}.hosts: no host `{host}` under `hosts:` (configured: {}); add it there, with at least `ssh: user@address`",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )));
        }
        if !(path.starts_with('/') || path.starts_with("~/")) || path.chars().any(char::is_control)
        {
            return Err(invalid(format!(
                "projects.{project}.hosts.{host}: {path:?} must be the clone's absolute path on that machine, or start with `~/`"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, std::path::Path::new("/etc/ao/ao-rs.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn hosts_and_project_clones_are_read_and_checked() {
        let config = parse(
            "hosts:\n  box1: { ssh: dev@10.0.0.12, port: 2222, identity_file: keys/id, options: { StrictHostKeyChecking: \"yes\", ConnectTimeout: 5 } }\n\
             projects:\n  app: { repo: /src/app, hosts: { box1: /srv/app } }\n",
        )
        .unwrap();
        let host = &config.hosts["box1"];
        assert_eq!(host.destination, "dev@10.0.0.12");
        assert_eq!(host.port, Some(2222));
        assert_eq!(
            host.identity_file.as_deref(),
            Some(std::path::Path::new("/etc/ao/keys/id"))
        );
        assert_eq!(host.options["ConnectTimeout"], "5");
        assert_eq!(config.projects["app"].hosts["box1"], "/srv/app");
        let config =
            parse("clear_env: [AWS_*]\nhosts:\n  b: { ssh: a, pass_env: [HTTPS_PROXY] }\n")
                .unwrap();
        assert!(config.clear_env.matches("AWS_PROFILE") && !config.clear_env.matches("PATH"));
        assert!(config.hosts["b"].pass_env.matches("HTTPS_PROXY"));
        assert!(!config.hosts["b"].pass_env.matches("PATH"));

        for (text, want) in [
            (
                "hosts:\n  b: { ssh: \"-oProxyCommand=x\" }\n",
                "hosts.b.ssh",
            ),
            ("hosts:\n  b: { ssh: \"a b\" }\n", "hosts.b.ssh"),
            ("hosts:\n  b: { ssh: a, port: 0 }\n", "hosts.b.port"),
            (
                "hosts:\n  b: { ssh: a, options: { ControlPath: /x } }\n",
                "sets ControlPath itself",
            ),
            (
                "hosts:\n  b: { ssh: a, options: { \"A=B\": x } }\n",
                "not an ssh option name",
            ),
            (
                "hosts:\n  b: { ssh: a, options: { User: \"x\\ny\" } }\n",
                "not a value ssh can take",
            ),
            (
                "hosts:\n  b: { ssh: a, data_dir: rel }\n",
                "hosts.b.data_dir",
            ),
            (
                "hosts:\n  b: { ssh: a, options: { StrictHostKeyChecking: accept-new } }\n",
                "never accepts a host key unseen",
            ),
            (
                "hosts:\n  b: { ssh: a, pass_env: [\"A B\"] }\n",
                "hosts.b.pass_env: \"A B\" is not a variable name",
            ),
            (
                "clear_env: [\"X=1\"]\n",
                "clear_env: \"X=1\" is not a variable name",
            ),
            ("clear_env: AWS\n", "clear_env"),
            ("hosts:\n  any: { ssh: a }\n", "means something else"),
            ("hosts:\n  b: { ssh: a, user: x }\n", "unknown field `user`"),
            ("hosts:\n  \"b c\": { ssh: a }\n", "host name"),
            (
                "projects:\n  app: { repo: /r, hosts: { nowhere: /srv } }\n",
                "no host `nowhere`",
            ),
            (
                "hosts:\n  b: { ssh: a }\nprojects:\n  app: { repo: /r, hosts: { b: srv } }\n",
                "projects.app.hosts.b",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
