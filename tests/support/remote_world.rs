//! A local installation with sessions on other hosts: the fake-agent harness and real OpenSSH
//! servers (see [`crate::sshd`]), each with a clone of the project and named in the config.
//! One set-up for every test of remote hosts, whole or black-holed.

use std::{
    path::{Path, PathBuf},
    process::{Output, Stdio},
};

use serde_json::Value;

use crate::{
    git, json, require_program,
    sshd::{close_shared_connections, ClientKey, SshServer},
    stderr, tmux_name, Harness,
};

/// Where an extra host of [`RemoteWorld::write_hosts`] keeps the project's clone.
const EXTRA_HOST_CLONE: &str = "/srv/app";

pub struct RemoteWorld {
    pub harness: Harness,
    /// The harness's config, before hosts were added.
    base_config: String,
    /// The hosts, in the order given.
    pub hosts: Vec<SshServer>,
    pub client: ClientKey,
    pub known_hosts: PathBuf,
}

impl RemoteWorld {
    /// `hosts` (name, last byte of its 127.0.0.x address) each giving its commands to
    /// `login_shell` (the system's when `None`); `None` when sshd cannot run here (see
    /// [`require_program`]).
    pub fn start(hosts: &[(&str, u8)], login_shell: Option<&Path>) -> Option<Self> {
        Self::start_with(hosts, login_shell, || Harness::new(&[], ""))
    }

    /// [`RemoteWorld::start`] with everything outside `/tmp` ([`Harness::outside_tmp`]): a
    /// confined agent on a host gets a private `/tmp`, in which the hosts' homes would vanish.
    pub fn outside_tmp(hosts: &[(&str, u8)]) -> Option<Self> {
        Self::start_with(hosts, None, || Harness::outside_tmp(&[], ""))
    }

    fn start_with(
        hosts: &[(&str, u8)],
        login_shell: Option<&Path>,
        harness: impl FnOnce() -> Harness,
    ) -> Option<Self> {
        if !require_program(SshServer::unavailable()) {
            return None;
        }
        let harness = harness();
        let client = ClientKey::generate(harness.home());
        let hosts: Vec<SshServer> = hosts
            .iter()
            .map(|(name, last)| {
                SshServer::start_with_login_shell(name, *last, harness.home(), &client, login_shell)
            })
            .collect();
        let known_hosts = harness.home().join("known_hosts");
        let lines: String = hosts.iter().map(SshServer::known_hosts_line).collect();
        std::fs::write(&known_hosts, lines).unwrap();
        for host in &hosts {
            let clone = host.home().join("app").display().to_string();
            let repo = harness.repo().display().to_string();
            git(harness.home(), &["clone", "-q", &repo, &clone]);
        }
        let base_config = std::fs::read_to_string(harness.config_path()).unwrap();
        let world = Self {
            harness,
            base_config,
            hosts,
            client,
            known_hosts,
        };
        world.write_hosts(&[]);
        Some(world)
    }

    /// The config: the harness's, with the hosts, the project's clone on each, and `extra`
    /// hosts (name, its `hosts:` entry line) whose clone would be at `/srv/app`.
    pub fn write_hosts(&self, extra: &[(&str, &str)]) {
        let mut entries = String::from("hosts:\n");
        let mut clones = Vec::new();
        for host in &self.hosts {
            entries.push_str(&host.config_entry(&self.client, &self.known_hosts));
            let clone = host.home().join("app").display().to_string();
            clones.push(format!("{}: {clone:?}", host.name));
        }
        for (name, entry) in extra {
            entries.push_str(entry);
            clones.push(format!("{name}: {EXTRA_HOST_CLONE}"));
        }
        let config = crate::replaced(
            &self.base_config,
            &[(
                "default_branch: main }",
                &format!(
                    "default_branch: main, hosts: {{ {} }} }}",
                    clones.join(", ")
                ),
            )],
        );
        std::fs::write(self.harness.config_path(), config + &entries).unwrap();
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> &SshServer {
        self.hosts
            .iter()
            .find(|host| host.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    pub fn host_mut(&mut self, name: &str) -> &mut SshServer {
        self.hosts
            .iter_mut()
            .find(|host| host.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    pub fn ao(&self, args: &[&str]) -> Output {
        self.harness.ao(args)
    }

    pub fn ok(&self, args: &[&str]) -> Output {
        self.harness.ok(args)
    }

    /// Spawns a worker with `task` on `host`; its session object.
    pub fn spawn(&self, host: &str, task: &str) -> Value {
        let task = format!("--task={task}");
        json(&self.ok(&["spawn", "app", "--host", host, &task, "--json"]))
    }

    pub fn sessions(&self) -> Vec<Value> {
        self.harness.sessions_json(&[])
    }

    pub fn session(&self, id: &str) -> Value {
        self.sessions()
            .into_iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no session {id}"))
    }

    /// Runs the `ao-host` commands all at once; their outputs, in order.
    pub fn at_once(&self, commands: impl IntoIterator<Item = Vec<String>>) -> Vec<Output> {
        let children: Vec<_> = commands
            .into_iter()
            .map(|args| {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                self.harness
                    .command(&args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect()
    }

    /// Kills the sessions `ids` all at once, each kill checked to have succeeded.
    pub fn kill_at_once(&self, ids: &[String]) {
        let kills = ids
            .iter()
            .map(|id| vec!["session".into(), "kill".into(), id.clone()]);
        for output in self.at_once(kills) {
            assert!(output.status.success(), "{}", stderr(&output));
        }
    }

    /// Whether the tmux session of `session` runs on its host.
    pub fn tmux_alive(&self, session: &Value) -> bool {
        let name = tmux_name(session["runtime_handle"].as_str().unwrap());
        self.host(session["host"].as_str().unwrap())
            .tmux(
                &self.harness.tmux.socket,
                &["has-session", "-t", &format!("={name}")],
            )
            .0
    }
}

impl Drop for RemoteWorld {
    fn drop(&mut self) {
        close_shared_connections(&self.harness.data_dir());
        for host in &self.hosts {
            host.tmux(&self.harness.tmux.socket, &["kill-server"]);
        }
    }
}
