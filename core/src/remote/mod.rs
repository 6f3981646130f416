//! Hosts: the other machines sessions run on, reached with the system's OpenSSH client.
//!
//! Every command to one host rides one shared connection per data dir ([`connection`]: made
//! once across processes, its socket under `<data_dir>/ssh`, kept open `ControlPersist`
//! seconds after the last use), with at most `hosts.H.max_sessions` sessions on it at once
//! ([`slots`]), so parallel commands never open more connections or sessions than sshd takes.
//! Every command line reaches `sh` on the host whatever the login shell there is ([`line`]).
//! Plugins get a [`Transport`] whose program is `ao-host transport` ([`wrapper`]), which does
//! all of that for each line they send. `BatchMode=yes`: ssh never asks a question nobody is
//! there to answer; an unknown or changed host key, or a missing key, is an error with its fix
//! instead.
//!
//! The core never runs a program on a host itself beyond asking whether it answers (and where
//! its home folder is): plugins get the [`Transport`] and run their own programs through it.

pub mod connection;
pub(crate) mod health;
pub mod line;
pub mod slots;
pub mod wrapper;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use ao_plugin_api::{PluginContext, Transport};
use ao_plugin_kit::prelude::*;
use ao_plugin_kit::shell;
use sha2::Digest;

use crate::config::HostConfig;

use self::{connection::Connection, slots::Slot};

/// How long ssh may take to connect, and to notice a host that stopped answering
/// (`ServerAliveInterval` × `ServerAliveCountMax`).
const CONNECT_TIMEOUT_SECONDS: u32 = 10;
const ALIVE_INTERVAL_SECONDS: u32 = 5;
const ALIVE_COUNT_MAX: u32 = 2;
/// A bound on the whole probe, connecting included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a command waits for the shared connection beyond ssh's own connect timeout (when
/// another process is making it, or the host is slow to log in).
const CONNECT_MARGIN: Duration = Duration::from_secs(10);
/// The longest control socket folder: a socket path (`<dir>/<40 hex digits>`, and ssh's
/// temporary `.XXXXXXXXXXXXXXXX` while it sets the master up) must fit the 104 bytes of
/// `sun_path` on every Unix.
const MAX_CONTROL_DIR_LEN: usize = 104 - 1 - 40 - 17 - 1;

/// Why a host cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    #[error("no host `{name}` in the config; configured hosts: {known}")]
    Unknown { name: String, known: String },
    /// It did not answer (down, unreachable, refused the connection, dropped it).
    #[error("host `{name}` ({target}) did not answer: {detail}")]
    Unreachable {
        name: String,
        target: String,
        detail: String,
    },
    /// Its host key is not known, or changed: refused, never accepted silently.
    #[error("host `{name}` ({target}): {detail}")]
    HostKey {
        name: String,
        target: String,
        detail: String,
    },
    /// It answered, but did not let this user in.
    #[error("host `{name}` ({target}) refused the login: {detail}")]
    Login {
        name: String,
        target: String,
        detail: String,
    },
    #[error("host `{name}`: {detail}")]
    Local { name: String, detail: String },
}

impl HostError {
    /// The host did not answer (as opposed to refusing): its sessions are `unreachable`.
    pub(crate) fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

/// One host as ao-host reaches it.
#[derive(Debug, Clone)]
pub struct SshHost {
    config: HostConfig,
    control_dir: PathBuf,
    /// This data dir's tag, naming its folder on the host.
    tag: String,
    /// The `ao-host` program that carries plugins' lines ([`wrapper`]); see
    /// [`SshHost::with_wrapper`].
    wrapper: Option<PathBuf>,
}

/// What a host said when asked: where this data dir keeps its things there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// The user's home folder there.
    pub home: String,
    /// This data dir's folder there (absolute).
    pub data_dir: String,
}

impl SshHost {
    /// `data_dir` is the local data dir: the control sockets go under it, and its tag names the
    /// folder used on the host. A data dir that was moved keeps the tag of the first path it
    /// had (the first of `earlier_paths`), so it finds its folder there again.
    pub fn new(config: HostConfig, data_dir: &Path, earlier_paths: &[String]) -> Self {
        let first_path = earlier_paths
            .first()
            .cloned()
            .unwrap_or_else(|| data_dir.display().to_string());
        let tag = PluginContext {
            plugin_name: "".into(),
            data_dir: first_path.into(),
            config_yaml: "".into(),
        }
        .owner_tag();
        let mut control_dir = data_dir.join("ssh");
        // ssh reads `-o ControlPath=…` like a config line: spaces and quotes split it, `%`
        // expands. A path with any of those, or too long for a socket, goes to a plain one.
        let plain = control_dir.to_str().is_some_and(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
        });
        if !plain || control_dir.as_os_str().len() > MAX_CONTROL_DIR_LEN {
            // SAFETY: getuid cannot fail and touches no memory.
            let uid = unsafe { libc::getuid() };
            control_dir = std::env::temp_dir().join(format!("ao-host-ssh-{uid}-{tag}"));
        }
        Self {
            config,
            control_dir,
            tag,
            wrapper: None,
        }
    }

    /// Hands plugins a transport that starts with `program` (an `ao-host` executable, run as
    /// `ao-host transport`): their lines then reach `sh` whatever the login shell on the host,
    /// over the one shared connection, within the host's session bound. Without it (the
    /// library used on its own, e.g. by tests that link it), plugins get plain ssh with
    /// `ControlMaster=auto`: their lines are read by the login shell there (which must then be
    /// POSIX), and nothing bounds connections or sessions across processes.
    pub(crate) fn with_wrapper(mut self, program: PathBuf) -> Self {
        self.wrapper = Some(program);
        self
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// `user@host port N`, for messages.
    fn target(&self) -> String {
        match self.config.port {
            Some(port) => format!("{} port {port}", self.config.destination),
            None => self.config.destination.clone(),
        }
    }

    /// The address part of the destination (no user), as `known_hosts` names it.
    fn address(&self) -> &str {
        let destination = self.config.destination.as_str();
        destination
            .rsplit_once('@')
            .map_or(destination, |(_, host)| host)
    }

    /// Whether this data dir's shared connection to the host is up (a local socket connect;
    /// nothing is started and the host is not asked).
    pub(crate) fn connection_is_up(&self) -> bool {
        connection::master_answers(&self.socket())
    }

    /// The shared connection's socket: named by a digest of how it is reached, so a host
    /// whose settings change gets a new connection rather than the old one.
    fn socket(&self) -> PathBuf {
        let mut digest = sha2::Sha256::new();
        for arg in self.argv_to(false) {
            digest.update(arg.as_bytes());
            digest.update([0]);
        }
        let name: String = digest.finalize()[..20]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.control_dir.join(name)
    }

    /// The ssh argv up to and including the destination, riding the shared connection; `tty`
    /// asks for a terminal (attach).
    fn argv(&self, tty: bool) -> Vec<String> {
        let mut argv = self.argv_to(tty);
        argv.splice(
            1..1,
            [
                "-o".to_string(),
                format!("ControlPath={}", self.socket().display()),
            ],
        );
        argv
    }

    /// [`SshHost::argv`] without the shared connection's socket.
    fn argv_to(&self, tty: bool) -> Vec<String> {
        let mut argv = vec!["ssh".to_string()];
        let mut option = |key: &str, value: String| {
            argv.extend(["-o".to_string(), format!("{key}={value}")]);
        };
        option("BatchMode", "yes".into());
        let configured = |key: &str| {
            self.config
                .options
                .keys()
                .any(|k| k.eq_ignore_ascii_case(key))
        };
        for (key, value) in [
            ("ConnectTimeout", CONNECT_TIMEOUT_SECONDS.to_string()),
            ("ServerAliveInterval", ALIVE_INTERVAL_SECONDS.to_string()),
            ("ServerAliveCountMax", ALIVE_COUNT_MAX.to_string()),
            // ssh's own default asks, which BatchMode turns into a refusal anyway; said
            // explicitly so an `accept-new` in the operator's ssh config does not apply here
            // unless the host's options say so.
            ("StrictHostKeyChecking", "yes".to_string()),
        ] {
            if !configured(key) {
                option(key, value);
            }
        }
        for (key, value) in &self.config.options {
            option(key, value.clone());
        }
        if let Some(identity) = &self.config.identity_file {
            argv.extend(["-i".to_string(), identity.display().to_string()]);
            argv.extend(["-o".to_string(), "IdentitiesOnly=yes".to_string()]);
        }
        if let Some(port) = self.config.port {
            argv.extend(["-p".to_string(), port.to_string()]);
        }
        argv.push(if tty { "-t" } else { "-T" }.to_string());
        argv.extend(["--".to_string(), self.config.destination.clone()]);
        argv
    }

    /// The argv a command line is appended to: `ao-host transport …` around ssh (see
    /// [`SshHost::with_wrapper`]), else ssh making or sharing the connection by itself.
    fn carrier(&self, tty: bool) -> Vec<String> {
        let ssh = self.argv(tty);
        let Some(program) = &self.wrapper else {
            let mut argv = ssh;
            argv.splice(
                1..1,
                [
                    "-o".to_string(),
                    "ControlMaster=auto".to_string(),
                    "-o".to_string(),
                    format!("ControlPersist={}", connection::CONTROL_PERSIST_SECONDS),
                ],
            );
            return argv;
        };
        let mut argv = self.wrapper_options(program);
        argv.push("--".to_string());
        argv.extend(ssh);
        argv
    }

    /// `ao-host transport` and its options for this host.
    fn wrapper_options(&self, program: &Path) -> Vec<String> {
        vec![
            program.display().to_string(),
            wrapper::SUBCOMMAND.to_string(),
            "--host".to_string(),
            self.config.name.clone(),
            "--socket".to_string(),
            self.socket().display().to_string(),
            "--max-sessions".to_string(),
            self.config.max_sessions.to_string(),
            "--connect-wait-ms".to_string(),
            self.connect_patience().as_millis().to_string(),
        ]
    }

    /// How long ssh may take to connect to it (its `ConnectTimeout`, ao-host's default unless
    /// the host's options set one).
    pub fn connect_timeout(&self) -> Duration {
        let configured = self
            .config
            .options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("ConnectTimeout"))
            .and_then(|(_, v)| v.parse::<u64>().ok());
        Duration::from_secs(configured.unwrap_or(CONNECT_TIMEOUT_SECONDS.into()))
    }

    /// How long to wait for the shared connection: ssh's connect timeout, and a margin.
    fn connect_patience(&self) -> Duration {
        self.connect_timeout() + CONNECT_MARGIN
    }

    /// What plugins for this host are built with.
    pub fn transport(&self) -> Transport {
        Transport {
            host: self.config.name.clone().into(),
            command: self.carrier(false).into_iter().map(Into::into).collect(),
        }
    }

    /// The argv an operator runs to reach `command` (a runtime's attach command) on the host,
    /// with a terminal.
    pub(crate) fn attach_argv(&self, command: &[String]) -> Vec<String> {
        let line = shell::join(command);
        let mut argv = self.carrier(true);
        if self.wrapper.is_some() {
            argv.push(line);
        } else {
            // Short (a runtime's attach command): never past the limit.
            argv.extend(line::login_safe(line.as_bytes()).ok());
        }
        argv
    }

    /// Makes sure the shared connection is up (see [`connection`]). The connect runs in a
    /// process of its own (`ao-host transport --connect-only`, in its own process group): a
    /// caller that stops waiting (a deadline of its own), even one whose process then exits,
    /// leaves it running, so the next command finds the connection made.
    async fn connect(&self) -> Result<(), HostError> {
        if self.connection_is_up() {
            return Ok(());
        }
        let Some(program) = &self.wrapper else {
            return self.connect_here().await;
        };
        let mut argv = self.wrapper_options(program);
        argv.push(wrapper::CONNECT_ONLY.to_string());
        argv.push("--".to_string());
        argv.extend(self.argv(false));
        let output = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .output()
            .await
            .map_err(|e| HostError::Local {
                name: self.config.name.clone(),
                detail: format!("cannot run {}: {e}", program.display()),
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(self.classify(&String::from_utf8_lossy(&output.stderr)))
    }

    /// [`SshHost::connect`] without the `ao-host` program: on a thread of its own, which a
    /// caller that stops waiting leaves running (for as long as this process lives).
    async fn connect_here(&self) -> Result<(), HostError> {
        let ssh = self.argv(false);
        let socket = self.socket();
        let patience = self.connect_patience();
        let (done, outcome) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let connection = Connection {
                ssh: &ssh,
                socket: &socket,
            };
            let _ = done.send(connection.establish(patience));
        });
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(said)) => Err(self.classify(&said)),
            Err(_) => Err(HostError::Local {
                name: self.config.name.clone(),
                detail: "connecting stopped without an answer".into(),
            }),
        }
    }

    /// Asks the host where its home folder is: whether it answers at all, over the shared
    /// connection (made here when there is none).
    pub async fn reach(&self) -> Result<Reached, HostError> {
        let local = |detail: String| HostError::Local {
            name: self.config.name.clone(),
            detail,
        };
        // Owner-only; one owned by someone else is refused (a socket there would carry this
        // user's connections).
        ao_plugin_kit::private::create_dir(&self.control_dir).map_err(|e| {
            local(format!(
                "cannot make the folder for its shared connection {}: {e}",
                self.control_dir.display()
            ))
        })?;
        // Marked: a login shell may print a banner of its own first.
        let output = self
            .run_probe("printf '\\nAO-HOME:%s\\n' \"$HOME\"")
            .await?;
        let stdout = String::from_utf8_lossy(&output);
        let home = stdout
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("AO-HOME:"))
            .unwrap_or_default()
            .to_string();
        if !home.starts_with('/') {
            return Err(local(format!(
                "its shell gave {home:?} as the home folder; set hosts.{}.data_dir to an absolute path",
                self.config.name
            )));
        }
        let base = match &self.config.data_dir {
            Some(dir) => expand_home(dir, &home),
            None => format!("{home}/.ao-rs/hosts"),
        };
        let data_dir = format!("{}/{}", base.trim_end_matches('/'), self.tag);
        Ok(Reached { home, data_dir })
    }

    /// The environment a login over ssh gets on the host (what sshd, PAM and the account
    /// set there): what a session there starts from. Over the shared connection.
    pub(crate) async fn login_environment(&self) -> Result<Vec<(String, String)>, HostError> {
        const MARK: &[u8] = b"AO-ENV\0";
        // Marked: a login shell may print a banner of its own first.
        let output = self
            .run_probe("printf 'AO-ENV\\000' && exec env -0")
            .await?;
        let start = output
            .windows(MARK.len())
            .position(|window| window == MARK)
            .map(|at| at + MARK.len())
            .ok_or_else(|| HostError::Local {
                name: self.config.name.clone(),
                detail: "its `env -0` printed no environment; it needs GNU or BusyBox `env`".into(),
            })?;
        Ok(output[start..]
            .split(|&b| b == 0)
            .filter_map(|entry| std::str::from_utf8(entry).ok()?.split_once('='))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect())
    }

    /// Runs `command` by `sh` on the host (whatever its login shell) over the shared connection
    /// (made first when none is up), in a session slot; connecting and running each within
    /// [`PROBE_TIMEOUT`]. Its stdout, or why the host could not be asked.
    async fn run_probe(&self, command: &str) -> Result<Vec<u8>, HostError> {
        let local = |detail: String| HostError::Local {
            name: self.config.name.clone(),
            detail,
        };
        let line = line::login_safe(command.as_bytes()).map_err(|e| local(e.to_string()))?;
        let no_answer = || HostError::Unreachable {
            name: self.config.name.clone(),
            target: self.target(),
            detail: format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
        };
        let mut pause = Duration::from_millis(20);
        let started = std::time::Instant::now();
        let output = loop {
            tokio::time::timeout(PROBE_TIMEOUT, self.connect())
                .await
                .map_err(|_| no_answer())??;
            // Waiting for a session slot is this machine's business, bounded on its own.
            let (socket, max, name) = (
                self.socket(),
                self.config.max_sessions,
                self.config.name.clone(),
            );
            let slot = tokio::task::spawn_blocking(move || {
                Slot::take(&socket, max, &name, slots::SLOT_PATIENCE)
            })
            .await
            .map_err(|e| local(e.to_string()))?
            .map_err(local)?;
            let argv = self.argv(false);
            let run = tokio::process::Command::new(&argv[0])
                .args(wrapper::riding(&argv[1..]))
                .arg(&line)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .output();
            let output = match tokio::time::timeout(PROBE_TIMEOUT, run).await {
                Err(_) => return Err(no_answer()),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(local(
                        "`ssh` not found on PATH: install the OpenSSH client (e.g. `apt-get install openssh-client`)".into(),
                    ))
                }
                Ok(Err(e)) => return Err(local(format!("cannot run ssh: {e}"))),
                Ok(Ok(output)) => output,
            };
            drop(slot);
            // Refused, or the connection went away meanwhile: nothing ran, so again.
            if output.status.success()
                || !wrapper::not_started(&output.stderr)
                || started.elapsed() > wrapper::REFUSAL_PATIENCE
            {
                break output;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(wrapper::REFUSAL_MAX_PAUSE);
        };
        if !output.status.success() {
            return Err(self.classify(&String::from_utf8_lossy(&output.stderr)));
        }
        Ok(output.stdout)
    }

    /// The configured host (its `pass_env`, …).
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// What ssh's complaint means, with the fix.
    fn classify(&self, stderr: &str) -> HostError {
        let (name, target) = (self.config.name.clone(), self.target());
        let said = stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("ssh failed without a word")
            .to_string();
        let known_hosts = self
            .config
            .options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("UserKnownHostsFile"))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "~/.ssh/known_hosts".into());
        let entry = match self.config.port {
            Some(port) if port != 22 => format!("[{}]:{port}", self.address()),
            _ => self.address().to_string(),
        };
        let port_flag = match self.config.port {
            Some(port) if port != 22 => format!("-p {port} "),
            _ => String::new(),
        };
        let scan = format!("ssh-keyscan {port_flag}{}", self.address());
        if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
            return HostError::HostKey {
                name,
                target,
                detail: format!(
                    "its host key CHANGED since it was recorded in {known_hosts}: refused. If the change is expected (the machine was reinstalled), check the new key's fingerprint with the machine's owner (`{scan} | ssh-keygen -lf -`), then replace the old one: `ssh-keygen -f {known_hosts} -R '{entry}' && {scan} >> {known_hosts}`"
                ),
            };
        }
        if stderr.contains("Host key verification failed")
            || stderr.contains("host key is known")
            || stderr.contains("No matching host key")
        {
            return HostError::HostKey {
                name,
                target,
                detail: format!(
                    "its host key is not in {known_hosts}, and ao-host never accepts one unseen. Check its fingerprint (`{scan} | ssh-keygen -lf -`) against the machine's, then add it: `{scan} >> {known_hosts}`"
                ),
            };
        }
        if stderr.contains("Permission denied") || stderr.contains("Too many authentication") {
            return HostError::Login {
                name,
                target,
                detail: format!(
                    "{said}; give it a key it accepts (`ssh-copy-id {port_flag}{}`, or hosts.{}.identity_file), and check `ssh {port_flag}{}` works without a password",
                    self.config.destination, self.config.name, self.config.destination
                ),
            };
        }
        HostError::Unreachable {
            name,
            target,
            detail: said,
        }
    }
}

fn expand_home(path: &str, home: &str) -> String {
    match path.strip_prefix("~/") {
        Some(rest) => format!("{}/{rest}", home.trim_end_matches('/')),
        None => path.to_string(),
    }
}

/// The clone of a project on a host, with `~/` expanded to the home folder there.
pub(crate) fn clone_path(path: &str, reached: &Reached) -> String {
    expand_home(path, &reached.home)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn host(port: Option<u16>, options: &[(&str, &str)]) -> SshHost {
        SshHost::new(
            HostConfig {
                name: "box1".into(),
                destination: "dev@10.0.0.12".into(),
                port,
                identity_file: Some("/keys/id".into()),
                options: options
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
                data_dir: None,
                pass_env: Default::default(),
                max_sessions: crate::config::DEFAULT_MAX_SESSIONS,
            },
            Path::new("/home/me/.ao-rs"),
            &[],
        )
    }

    #[test]
    fn every_command_shares_one_connection_and_never_asks() {
        let transport = host(Some(2222), &[("ConnectTimeout", "3")]).transport();
        let argv: Vec<&str> = transport.command.iter().map(|a| a.as_str()).collect();
        for expected in [
            "BatchMode=yes",
            "ControlMaster=auto",
            "ControlPersist=60",
            "StrictHostKeyChecking=yes",
            "ConnectTimeout=3",
            "IdentitiesOnly=yes",
        ] {
            assert!(argv.contains(&expected), "{expected}: {argv:?}");
        }
        let socket = argv
            .iter()
            .find_map(|a| a.strip_prefix("ControlPath=/home/me/.ao-rs/ssh/"))
            .unwrap();
        assert!(
            socket.len() == 40 && socket.bytes().all(|b| b.is_ascii_hexdigit()),
            "{socket}"
        );
        assert!(!argv.contains(&"ConnectTimeout=10"), "{argv:?}");
        assert_eq!(
            argv[argv.len() - 5..],
            ["-p", "2222", "-T", "--", "dev@10.0.0.12"]
        );
        let attach_command = ["tmux", "attach", "-t", "=a b"].map(String::from);
        let attach = host(None, &[]).attach_argv(&attach_command);
        assert_eq!(
            &attach[attach.len() - 4..],
            [
                "-t",
                "--",
                "dev@10.0.0.12",
                &line::login_safe(b"tmux attach -t '=a b'").unwrap()
            ]
        );
    }

    /// With `ao-host transport` at its head, what plugins append reaches the wrapper, which
    /// makes the connection itself: ssh is never told to be a master.
    #[test]
    fn plugins_lines_go_through_the_wrapper_with_the_hosts_bounds() {
        let wrapped =
            host(Some(2222), &[("ConnectTimeout", "3")]).with_wrapper("/opt/ao/ao-host".into());
        let transport = wrapped.transport();
        let argv: Vec<&str> = transport.command.iter().map(|a| a.as_str()).collect();
        let socket = wrapped.socket().display().to_string();
        assert_eq!(
            argv[..11],
            [
                "/opt/ao/ao-host",
                "transport",
                "--host",
                "box1",
                "--socket",
                &socket,
                "--max-sessions",
                "8",
                "--connect-wait-ms",
                "13000",
                "--",
            ]
        );
        assert_eq!(argv[11], "ssh");
        assert!(argv.contains(&format!("ControlPath={socket}").as_str()));
        assert!(
            !argv.iter().any(|a| a.starts_with("ControlMaster")),
            "{argv:?}"
        );
        assert_eq!(argv.last(), Some(&"dev@10.0.0.12"));
        let attach = wrapped.attach_argv(&["tmux".into(), "attach".into()]);
        assert_eq!(attach[0], "/opt/ao/ao-host");
        assert_eq!(
            &attach[attach.len() - 4..],
            ["-t", "--", "dev@10.0.0.12", "tmux attach"]
        );
        // Another destination, another connection.
        let mut other = wrapped.config.clone();
        other.destination = "dev@10.0.0.13".into();
        assert_ne!(
            SshHost::new(other, Path::new("/home/me/.ao-rs"), &[]).socket(),
            wrapped.socket()
        );
    }

    #[test]
    fn a_moved_data_dir_keeps_the_folder_it_had_on_the_host() {
        let first = host(None, &[]);
        let moved = SshHost::new(
            first.config.clone(),
            Path::new("/srv/ao"),
            &["/home/me/.ao-rs".into(), "/mnt/ao".into()],
        );
        assert_eq!(moved.tag, first.tag);
        let elsewhere = SshHost::new(first.config, Path::new("/srv/ao"), &[]);
        assert_ne!(elsewhere.tag, first.tag);
    }

    #[test]
    fn a_long_data_dir_gets_its_sockets_in_a_short_private_folder() {
        let long = Path::new("/home/me").join("x".repeat(80));
        let host = SshHost::new(host(None, &[]).config, &long, &[]);
        assert!(host.control_dir.as_os_str().len() <= MAX_CONTROL_DIR_LEN);
        assert!(host.control_dir.starts_with(std::env::temp_dir()));
    }

    #[test]
    fn ssh_complaints_become_the_fix() {
        let on_2222 = host(Some(2222), &[]);
        let changed = on_2222.classify(
            "@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n",
        );
        let text = changed.to_string();
        assert!(text.contains("CHANGED"), "{text}");
        assert!(
            text.contains("ssh-keygen -f ~/.ssh/known_hosts -R '[10.0.0.12]:2222'"),
            "{text}"
        );
        assert!(
            text.contains("ssh-keyscan -p 2222 10.0.0.12 >> ~/.ssh/known_hosts"),
            "{text}"
        );
        let unknown = host(None, &[("UserKnownHostsFile", "/etc/ao/known")])
            .classify("No ED25519 host key is known for 10.0.0.12 and you have requested strict checking.\nHost key verification failed.\n");
        let text = unknown.to_string();
        assert!(
            text.contains("ssh-keyscan 10.0.0.12 >> /etc/ao/known"),
            "{text}"
        );
        assert!(matches!(unknown, HostError::HostKey { .. }));
        let login = on_2222.classify("dev@10.0.0.12: Permission denied (publickey).\n");
        assert!(matches!(login, HostError::Login { .. }), "{login}");
        let down =
            on_2222.classify("ssh: connect to host 10.0.0.12 port 2222: Connection refused\n");
        assert!(down.is_unreachable());
        assert!(down.to_string().contains("Connection refused"), "{down}");
    }
}
