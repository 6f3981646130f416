//! Real OpenSSH servers for tests: each a "host" of its own, listening on an address of its own
//! on the loopback network (127.0.0.2, 127.0.0.3, …), with its own host key, home folder and
//! tmux folder (sshd's `SetEnv`), so the sessions of two hosts never see each other's tmux
//! server or files, as on two machines.
//!
//! Needs Debian's `openssh-server` (`.ci/run` installs it) and, for sshd's privilege separation,
//! root; without either, [`SshServer::start`] says why and the test skips.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

const SSHD: &str = "/usr/sbin/sshd";

/// A client key that every server of a test accepts.
pub struct ClientKey {
    pub private: PathBuf,
    pub public: String,
}

impl ClientKey {
    pub fn generate(dir: &Path) -> Self {
        let private = dir.join("client_key");
        keygen(&private);
        let public = std::fs::read_to_string(private.with_extension("pub")).unwrap();
        Self { private, public }
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ao-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

/// One sshd: a host.
pub struct SshServer {
    pub name: String,
    pub address: String,
    pub port: u16,
    /// Everything of this host: config, keys, log, home, tmux folder.
    pub dir: PathBuf,
    host_key: PathBuf,
    child: Option<Child>,
    /// A script (ending in `exec "$@"`) that sshd is started by in a mount namespace of its
    /// own (`crate::in_private_mounts`): what it mounts, the host's sessions see (see
    /// [`SshServer::restart_with_mounts`]).
    mounts: Option<String>,
}

impl SshServer {
    /// Why servers cannot run here, if they cannot.
    pub fn unavailable() -> Option<String> {
        if !Path::new(SSHD).exists() {
            return Some(format!(
                "{SSHD} is missing (apt-get install openssh-server)"
            ));
        }
        // SAFETY: geteuid cannot fail and touches no memory.
        if unsafe { libc::geteuid() } != 0 {
            return Some("sshd needs root for its privilege separation here".into());
        }
        None
    }

    /// Starts a server for host `name` at `127.0.0.<last>` on a free port, under `root`.
    pub fn start(name: &str, last: u8, root: &Path, client: &ClientKey) -> Self {
        Self::start_with_login_shell(name, last, root, client, None)
    }

    /// [`SshServer::start`], with `login_shell` (e.g. `/usr/bin/fish`) as the login shell of
    /// the user the tests log in as: what sshd hands every command to.
    pub fn start_with_login_shell(
        name: &str,
        last: u8,
        root: &Path,
        client: &ClientKey,
        login_shell: Option<&Path>,
    ) -> Self {
        let address = format!("127.0.0.{last}");
        let port = TcpListener::bind((address.as_str(), 0))
            .expect("a free port")
            .local_addr()
            .unwrap()
            .port();
        let dir = root.join(format!("host-{name}"));
        for sub in ["home", "tmux"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let host_key = dir.join("host_key");
        keygen(&host_key);
        std::fs::write(dir.join("authorized_keys"), &client.public).unwrap();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "ListenAddress {address}:{port}\n\
                 HostKey {key}\n\
                 AuthorizedKeysFile {dir}/authorized_keys\n\
                 PidFile {dir}/sshd.pid\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 SetEnv HOME={dir}/home TMUX_TMPDIR={dir}/tmux\n\
                 LogLevel VERBOSE\n",
                key = host_key.display(),
                dir = dir.display(),
            ),
        )
        .unwrap();
        // Privilege separation wants its empty folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let passwd = login_shell.map(|shell| {
            let passwd = dir.join("passwd");
            let users: String = std::fs::read_to_string("/etc/passwd")
                .unwrap()
                .lines()
                .map(|line| match line.strip_prefix("root:") {
                    Some(rest) => {
                        let mut fields: Vec<&str> = rest.split(':').collect();
                        let last = fields.len() - 1;
                        fields[last] = shell.to_str().unwrap();
                        format!("root:{}\n", fields.join(":"))
                    }
                    None => format!("{line}\n"),
                })
                .collect();
            std::fs::write(&passwd, users).unwrap();
            passwd
        });
        let mut server = Self {
            name: name.to_string(),
            address,
            port,
            dir,
            host_key,
            child: None,
            // Seen by this sshd alone: the namespace's bind hides the system's file.
            mounts: passwd.map(|passwd| {
                format!(
                    "mount --bind '{}' /etc/passwd && exec \"$@\"",
                    passwd.display()
                )
            }),
        };
        server.resume();
        server
    }

    fn log(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }

    /// Starts sshd again (after [`SshServer::stop`]), same address, port and keys.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut sshd = Command::new(SSHD);
        sshd.args(["-D", "-e", "-f"])
            .arg(self.dir.join("sshd_config"));
        let mut command = match &self.mounts {
            None => sshd,
            Some(script) => crate::in_private_mounts(script, &[], &sshd),
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0);
        let child = command.spawn().expect("sshd starts");
        self.child = Some(child);
        let addr: SocketAddr = format!("{}:{}", self.address, self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd for {} never listened: {}",
                self.name,
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts sshd with `extra` added to the environment it gives its sessions (sshd's
    /// `SetEnv`, e.g. `PATH=/usr/bin` without tmux): how the host's programs change.
    pub fn restart_with_env(&mut self, extra: &str) {
        self.stop();
        let config = self.dir.join("sshd_config");
        let text = std::fs::read_to_string(&config).unwrap();
        let base: String = text
            .lines()
            .map(|line| match line.strip_prefix("SetEnv ") {
                Some(vars) => {
                    let mut kept: Vec<&str> = vars
                        .split(' ')
                        .filter(|v| v.starts_with("HOME=") || v.starts_with("TMUX_TMPDIR="))
                        .collect();
                    if !extra.is_empty() {
                        kept.push(extra);
                    }
                    format!("SetEnv {}\n", kept.join(" "))
                }
                None => format!("{line}\n"),
            })
            .collect();
        std::fs::write(&config, base).unwrap();
        self.resume();
    }

    /// Restarts sshd in a mount namespace of its own, set up by `script` (run by `sh -c`, ending
    /// in `exec "$@"`): e.g. a small tmpfs over a folder, a disk that fills up on this host only.
    pub fn restart_with_mounts(&mut self, script: &str) {
        self.stop();
        self.mounts = Some(script.to_string());
        self.resume();
    }

    /// Kills sshd and every connection it serves (its process group): the host stops
    /// answering. What runs on it (a tmux server, which left the group) goes on.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Its connection handlers first: each is a session of its own (setsid), but still
            // below the listener.
            for pid in descendants(child.id()) {
                // SAFETY: kill only sends a signal.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The `known_hosts` line of this host's key.
    pub fn known_hosts_line(&self) -> String {
        let public = std::fs::read_to_string(self.host_key.with_extension("pub")).unwrap();
        let mut fields = public.split_whitespace();
        format!(
            "[{}]:{} {} {}\n",
            self.address,
            self.port,
            fields.next().unwrap(),
            fields.next().unwrap()
        )
    }

    /// How many logins the server accepted (each one TCP connection).
    pub fn logins(&self) -> usize {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .matches("Accepted publickey")
            .count()
    }

    pub fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    /// Runs tmux on this host's server `socket` (`tmux -L`), as its users would.
    pub fn tmux(&self, socket: &str, args: &[&str]) -> (bool, String) {
        let output = Command::new("tmux")
            .env("TMUX_TMPDIR", self.dir.join("tmux"))
            .env_remove("TMUX")
            .args(["-L", socket])
            .args(args)
            .output()
            .expect("tmux runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    /// The hosts entry of an `ao-rs.yaml` for this server.
    pub fn config_entry(&self, client: &ClientKey, known_hosts: &Path) -> String {
        format!(
            "  {}: {{ ssh: root@{}, port: {}, identity_file: {:?}, options: {{ UserKnownHostsFile: {:?} }} }}\n",
            self.name,
            self.address,
            self.port,
            client.private.display().to_string(),
            known_hosts.display().to_string()
        )
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every process below `pid` (children, their children, …), from `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // pid (comm) state ppid …; comm may hold spaces.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((child, ppid))
        })
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Stops the shared connections (ssh ControlMaster processes) an ao-host data dir left, so
/// none outlives the test: `ssh -O exit` on each control socket.
pub fn close_shared_connections(data_dir: &Path) {
    for entry in std::fs::read_dir(data_dir.join("ssh"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = Command::new("ssh")
            .arg("-o")
            .arg(format!("ControlPath={}", entry.path().display()))
            .args(["-O", "exit", "unused"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A TCP listener that accepts every connection and never sends a byte.
pub struct BlackHole {
    accepted: Arc<AtomicUsize>,
    closing: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlackHole {
    pub fn listen(address: &str, port: u16) -> Self {
        let listener =
            TcpListener::bind((address, port)).expect("a free address and port for the black hole");
        listener.set_nonblocking(true).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closing = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, closing) = (Arc::clone(&accepted), Arc::clone(&closing));
            std::thread::spawn(move || {
                let mut held: Vec<TcpStream> = Vec::new();
                while !closing.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            held.push(stream);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Self {
            accepted,
            closing,
            thread: Some(thread),
        }
    }

    /// How many connections it took so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every connection it held.
    pub fn close(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.shut();
    }
}

use std::os::unix::process::CommandExt as _;
